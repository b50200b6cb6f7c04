//! A real moto S3 server (PyPI `moto[server]`) on a free loopback port,
//! started with `python3 -m moto.server` and killed on drop.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::free_port;

/// How long `start` waits for the server to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// The pip spec `scripts/install-deps` installs.
pub const PIP_SPEC: &str = "moto[server]==5.2.1";

/// A running moto server; its state is in memory and dies with it.
#[derive(Debug)]
pub struct Moto {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub url: String,
    child: Option<Child>,
    dir: TempDir,
}

impl Moto {
    /// Starts moto on a free port and waits until it answers `GET /`.
    /// Panics with the log when it does not come up.
    pub async fn start() -> Moto {
        let dir = tempfile::Builder::new()
            .prefix("prognos-moto-")
            .tempdir()
            .expect("creating a temporary directory for moto");
        let mut last_log = String::new();
        // The port is free when chosen but may be taken before moto binds it.
        for _ in 0..3 {
            let port = free_port();
            let log_path = dir.path().join(format!("moto-{port}.log"));
            let log = File::create(&log_path).expect("creating the moto log");
            let mut child = Command::new("python3")
                .args(["-m", "moto.server", "-H", "127.0.0.1", "-p"])
                .arg(port.to_string())
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("cloning the log handle"))
                .stderr(log)
                .spawn()
                .expect("starting python3 (needs Python 3)");
            let url = format!("http://127.0.0.1:{port}");
            let client = reqwest::Client::new();
            let deadline = Instant::now() + READY_TIMEOUT;
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    last_log = std::fs::read_to_string(&log_path).unwrap_or_default();
                    break;
                }
                if let Ok(response) = client.get(format!("{url}/")).send().await
                    && response.status().is_success()
                {
                    return Moto {
                        url,
                        child: Some(child),
                        dir,
                    };
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "moto did not answer on {url} within {READY_TIMEOUT:?}; log:\n{}",
                        std::fs::read_to_string(&log_path).unwrap_or_default()
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            if last_log.contains("No module named") {
                panic!("moto is not installed: python3 -m pip install '{PIP_SPEC}'\n{last_log}");
            }
            if !last_log.contains("in use") {
                panic!("moto exited before it was ready; log:\n{last_log}");
            }
        }
        panic!("moto could not bind a free port three times; log:\n{last_log}");
    }

    /// Kills the server and waits for it to exit; its port then refuses
    /// connections.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The request log of the server (one line per request).
    pub fn log(&self) -> String {
        let mut out = String::new();
        if let Ok(entries) = std::fs::read_dir(self.dir.path()) {
            let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            paths.sort();
            for path in paths {
                out.push_str(&std::fs::read_to_string(path).unwrap_or_default());
            }
        }
        out
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        self.stop();
    }
}
