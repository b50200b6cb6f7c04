//! Debian's Alertmanager (`prometheus-alertmanager`, or `alertmanager`) as a
//! child process on a free loopback port, without clustering, routing every
//! alert to one webhook URL within about a second.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The binary, if installed.
pub fn binary() -> Option<PathBuf> {
    ["prometheus-alertmanager", "alertmanager"]
        .into_iter()
        .find_map(|name| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join(name))
                    .find(|p| p.is_file())
            })
        })
}

/// A running Alertmanager; killed on drop.
#[derive(Debug)]
pub struct Alertmanager {
    child: Child,
    /// Base URL, e.g. `http://127.0.0.1:PORT`.
    pub url: String,
    dir: tempfile::TempDir,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Alertmanager {
    /// Starts Alertmanager forwarding to `webhook_url`; None (with a notice)
    /// when the binary is missing.
    pub async fn start(webhook_url: &str) -> Option<Alertmanager> {
        let Some(bin) = binary() else {
            eprintln!("NOTICE: no Alertmanager binary (prometheus-alertmanager); skipping");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let config = format!(
            r#"route:
  receiver: test
  group_by: ['alertname']
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: test
    webhook_configs:
      - url: '{webhook_url}'
        send_resolved: true
"#
        );
        let config_path = dir.path().join("alertmanager.yml");
        std::fs::write(&config_path, config).unwrap();
        let storage = dir.path().join("data");
        std::fs::create_dir(&storage).unwrap();
        let port = super::smtp::free_port();
        let log = std::fs::File::create(dir.path().join("alertmanager.log")).unwrap();
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!("--storage.path={}", storage.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let am = Alertmanager {
            child,
            url: format!("http://127.0.0.1:{port}"),
            dir,
        };
        let client = reqwest::Client::new();
        for _ in 0..150 {
            if let Ok(r) = client.get(format!("{}/-/ready", am.url)).send().await
                && r.status().is_success()
            {
                return Some(am);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("Alertmanager not ready; log:\n{}", am.log());
    }

    /// Its log (stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("alertmanager.log")).unwrap_or_default()
    }
}
