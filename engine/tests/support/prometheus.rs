//! A real Prometheus on 127.0.0.1 for integration tests: history backfilled
//! with `promtool`, a free port, and stop/restart on the same port and data.

use std::fmt;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

const PROMETHEUS: &str = "/usr/bin/prometheus";
const PROMTOOL: &str = "/usr/bin/promtool";
/// How long `start` and `restart` wait for `/-/ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `stop` waits for a graceful exit before killing.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// Log lines quoted when Prometheus does not come up.
const LOG_TAIL_LINES: usize = 40;

/// A Prometheus process with its own data directory, removed on drop.
pub struct Prometheus {
    /// `http://127.0.0.1:PORT`, no trailing slash.
    pub url: String,
    pub port: u16,
    dir: TempDir,
    child: Option<Child>,
}

impl fmt::Debug for Prometheus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prometheus")
            .field("url", &self.url)
            .field("dir", &self.dir.path())
            .field("running", &self.child.is_some())
            .finish()
    }
}

impl Prometheus {
    /// Backfills `openmetrics` (OpenMetrics text ending in `# EOF`, see
    /// [`openmetrics_gauges`](super::openmetrics_gauges); empty for none)
    /// with `promtool tsdb create-blocks-from openmetrics`, then starts
    /// Prometheus on a free loopback port on that data directory and waits
    /// for `/-/ready`. Scrape targets (`host:port`, path `/metrics`) are
    /// scraped every second under `job="test"`.
    ///
    /// Flags: `--storage.tsdb.retention.time=3650d` (backfilled history must
    /// not be deleted), `--web.enable-lifecycle`,
    /// `--web.enable-remote-write-receiver`. Panics with the reason and the
    /// log's tail if anything fails.
    pub fn start(openmetrics: &str, scrape_targets: &[String]) -> Prometheus {
        let dir = tempfile::Builder::new()
            .prefix("prognos-prometheus-")
            .tempdir()
            .expect("creating a temporary directory for Prometheus");
        let data = dir.path().join("data");
        fs::create_dir_all(&data).expect("creating the data directory");
        if !openmetrics.is_empty() {
            backfill(dir.path(), &data, openmetrics);
        }
        fs::write(dir.path().join("prometheus.yml"), config(scrape_targets))
            .expect("writing prometheus.yml");

        // The port is free when chosen but another process may take it
        // before Prometheus binds: try a few.
        let mut last_log = String::new();
        for _ in 0..3 {
            let port = free_port();
            match spawn_and_wait(dir.path(), port) {
                Ok(child) => {
                    return Prometheus {
                        url: format!("http://127.0.0.1:{port}"),
                        port,
                        dir,
                        child: Some(child),
                    };
                }
                Err(StartError::PortTaken(log)) => last_log = log,
                Err(StartError::Failed(message)) => panic!("{message}"),
            }
        }
        panic!("Prometheus could not bind a free port three times; log tail:\n{last_log}");
    }

    /// Stops Prometheus gracefully (`POST /-/quit`, then SIGKILL after
    /// 15 s). The data directory and port are kept for [`restart`](Self::restart).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let _ = http_request(self.port, "POST", "/-/quit");
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts Prometheus again on the same port and data, and waits for
    /// `/-/ready`.
    pub fn restart(&mut self) {
        self.stop();
        match spawn_and_wait(self.dir.path(), self.port) {
            Ok(child) => self.child = Some(child),
            Err(StartError::PortTaken(log) | StartError::Failed(log)) => {
                panic!("restarting Prometheus on port {}: {log}", self.port)
            }
        }
    }

    /// Whether the process is running (started and not stopped).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The data directory (TSDB blocks).
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The last `lines` lines of Prometheus's log (all runs).
    pub fn log_tail(&self, lines: usize) -> String {
        log_tail(&self.dir.path().join("prometheus.log"), lines)
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

enum StartError {
    /// The listen address was taken between choosing and binding it.
    PortTaken(String),
    Failed(String),
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("binding 127.0.0.1:0")
}

/// Starts Prometheus on `dir` (holding `prometheus.yml` and `data/`) and
/// waits for `/-/ready`.
fn spawn_and_wait(dir: &Path, port: u16) -> Result<Child, StartError> {
    let log_path = dir.join("prometheus.log");
    let log = File::options()
        .create(true)
        .append(true)
        .open(&log_path)
        .expect("opening prometheus.log");
    let mut child = Command::new(PROMETHEUS)
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg("--storage.tsdb.retention.time=3650d")
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--web.enable-lifecycle")
        .arg("--web.enable-remote-write-receiver")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("cloning the log handle"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("starting {PROMETHEUS}: {e} (run scripts/install-deps to install it)")
        });

    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let tail = log_tail(&log_path, LOG_TAIL_LINES);
            if tail.contains("address already in use") {
                return Err(StartError::PortTaken(tail));
            }
            return Err(StartError::Failed(format!(
                "Prometheus exited with {status} before it was ready; log tail:\n{tail}"
            )));
        }
        if let Ok(response) = http_request(port, "GET", "/-/ready")
            && response
                .lines()
                .next()
                .is_some_and(|line| line.contains(" 200 "))
        {
            return Ok(child);
        }
        if started.elapsed() > READY_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            let tail = log_tail(&log_path, LOG_TAIL_LINES);
            return Err(StartError::Failed(format!(
                "Prometheus on port {port} was not ready after {} s; log tail:\n{tail}",
                READY_TIMEOUT.as_secs()
            )));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn backfill(dir: &Path, data: &Path, openmetrics: &str) {
    assert!(
        openmetrics.trim_end().ends_with("# EOF"),
        "OpenMetrics text for promtool must end with '# EOF'"
    );
    let input = dir.join("history.om");
    fs::write(&input, openmetrics).expect("writing history.om");
    let output = Command::new(PROMTOOL)
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&input)
        .arg(data)
        .output()
        .unwrap_or_else(|e| {
            panic!("running {PROMTOOL}: {e} (run scripts/install-deps to install it)")
        });
    assert!(
        output.status.success(),
        "promtool tsdb create-blocks-from openmetrics failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn config(scrape_targets: &[String]) -> String {
    let mut yaml = String::from("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n");
    if scrape_targets.is_empty() {
        yaml.push_str("scrape_configs: []\n");
    } else {
        yaml.push_str(
            "scrape_configs:\n  - job_name: test\n    static_configs:\n      - targets:\n",
        );
        for target in scrape_targets {
            yaml.push_str(&format!("          - \"{target}\"\n"));
        }
    }
    yaml
}

/// A minimal HTTP/1.0 exchange, so the harness needs no async runtime.
fn http_request(port: u16, method: &str, path: &str) -> std::io::Result<String> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

fn log_tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
