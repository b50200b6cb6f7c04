//! The `prognos-s3-exporter` binary, run as a child process on a free
//! loopback port, scraped over HTTP.

use std::fs::File;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::exposition::{Exposition, parse};
use super::free_port;
use super::s3::{ACCESS_KEY_ID, SECRET_ACCESS_KEY};

/// The binary under test.
pub const BINARY: &str = env!("CARGO_BIN_EXE_prognos-s3-exporter");
/// How long `start` waits for `/healthz`.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running exporter, killed on drop.
#[derive(Debug)]
pub struct Exporter {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    child: Child,
    dir: TempDir,
    http: reqwest::Client,
}

impl Exporter {
    /// Starts the exporter with `args` plus `--listen` on a free port and
    /// the test credentials, and waits for `/healthz`.
    pub async fn start(args: &[&str]) -> Exporter {
        Self::start_with_env(args, &[]).await
    }

    /// [`start`](Self::start) with extra environment variables.
    pub async fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Exporter {
        // The port is free when chosen but may be taken before the exporter
        // binds it: try a few.
        for _ in 0..3 {
            if let Some(exporter) = Self::try_start(args, env).await {
                return exporter;
            }
        }
        panic!("the exporter could not bind a free port three times");
    }

    async fn try_start(args: &[&str], env: &[(&str, &str)]) -> Option<Exporter> {
        let dir = tempfile::Builder::new()
            .prefix("prognos-s3-exporter-")
            .tempdir()
            .expect("temporary directory");
        let port = free_port();
        let log = File::create(dir.path().join("exporter.log")).expect("log file");
        let child = Command::new(BINARY)
            .args(args)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
            .env_remove("AWS_SESSION_TOKEN")
            .env("RUST_LOG", "prognos_s3_exporter=debug")
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("cloning the log handle"))
            .stderr(log)
            .spawn()
            .expect("starting the exporter");
        let mut exporter = Exporter {
            url: format!("http://127.0.0.1:{port}"),
            child,
            dir,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("client"),
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = exporter.child.try_wait() {
                let log = exporter.log();
                if log.contains("could not listen") {
                    return None;
                }
                panic!("the exporter exited with {status}; log:\n{log}");
            }
            if let Ok(response) = exporter
                .http
                .get(format!("{}/healthz", exporter.url))
                .send()
                .await
                && response.status().is_success()
            {
                return Some(exporter);
            }
            assert!(
                Instant::now() < deadline,
                "the exporter did not serve /healthz within {READY_TIMEOUT:?}; log:\n{}",
                exporter.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `GET /metrics`, checked for status and content type, parsed.
    pub async fn scrape(&self) -> Exposition {
        let response = self
            .http
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .unwrap_or_else(|e| panic!("scraping {}: {e}; log:\n{}", self.url, self.log()));
        assert_eq!(response.status(), 200);
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(
            content_type.starts_with("application/openmetrics-text"),
            "{content_type}"
        );
        let body = response.text().await.expect("metrics body");
        parse(&body).unwrap_or_else(|e| panic!("/metrics does not parse: {e}\n{body}"))
    }

    /// Scrapes until `done` holds for the exposition, or panics after
    /// `timeout` with `what`, the last scrape and the log.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(&Exposition) -> bool,
    ) -> Exposition {
        let deadline = Instant::now() + timeout;
        loop {
            let exposition = self.scrape().await;
            if done(&exposition) {
                return exposition;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out after {timeout:?} waiting for {what}; last scrape:\n{}\nlog:\n{}",
                    exposition.text,
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The exporter's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("exporter.log")).unwrap_or_default()
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the binary with `args` and no credentials until it exits (flag
/// errors exit at once); kills it and panics if it still runs after 20 s.
pub fn run_to_exit(args: &[&str]) -> Output {
    let mut child = Command::new(BINARY)
        .args(args)
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running the exporter");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if child
            .try_wait()
            .expect("waiting for the exporter")
            .is_some()
        {
            return child.wait_with_output().expect("reading the output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().expect("reading the output");
            panic!(
                "prognos-s3-exporter {args:?} did not exit; stderr:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
