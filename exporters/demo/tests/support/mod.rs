//! Test support: the real PostgreSQL and RabbitMQ started through
//! `deploy/baremetal/stack`, the demo services as child processes, polling
//! with deadlines, and Prometheus text parsing.

#![allow(dead_code)]

use std::fs::File;
use std::future::Future;
use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Ports of the test stack: PostgreSQL on +32, AMQP on +72, management on +73.
pub const PORT_BASE: u16 = 24000;

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The stack script: `$PROGNOS_STACK_SCRIPT`, else `deploy/baremetal/stack`.
fn stack_script() -> PathBuf {
    std::env::var_os("PROGNOS_STACK_SCRIPT")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("deploy/baremetal/stack"))
}

/// Runs `cmd` until it exits or `timeout` passes (then kills it); returns
/// (success, stdout + stderr).
fn run_with_timeout(mut cmd: Command, timeout: Duration, log: &Path) -> (bool, String) {
    let out = File::create(log).expect("create log file");
    let err = out.try_clone().expect("clone log file");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait().expect("wait for child") {
            Some(status) => break Some(status),
            None if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            None => std::thread::sleep(Duration::from_millis(200)),
        }
    };
    let text = std::fs::read_to_string(log).unwrap_or_default();
    (status.is_some_and(|s| s.success()), text)
}

/// PostgreSQL and RabbitMQ on loopback, stopped when dropped.
#[derive(Debug)]
pub struct Stack {
    pub dir: PathBuf,
    pub port_base: u16,
    pub postgres_url: String,
    pub amqp_url: String,
}

impl Stack {
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("bash");
        cmd.arg(stack_script())
            .args(args)
            .env("PORT_BASE", self.port_base.to_string())
            .env("STACK_DIR", &self.dir);
        cmd
    }

    /// `stack up postgres rabbitmq` in a fresh directory under the target
    /// directory (a leftover stack of an interrupted run is stopped first).
    pub fn up(port_base: u16) -> Self {
        let script = stack_script();
        assert!(
            script.exists(),
            "{} is missing: it starts PostgreSQL and RabbitMQ for these tests \
             (set PROGNOS_STACK_SCRIPT to use another script with the same contract)",
            script.display()
        );
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("demo-stack-{port_base}"));
        let mut stack = Self {
            dir,
            port_base,
            postgres_url: String::new(),
            amqp_url: String::new(),
        };
        if stack.dir.exists() {
            let log = std::env::temp_dir().join(format!("demo-stack-{port_base}-predown.log"));
            let _ = run_with_timeout(stack.command(&["down"]), Duration::from_secs(60), &log);
            std::fs::remove_dir_all(&stack.dir).expect("remove the old stack directory");
        }
        std::fs::create_dir_all(&stack.dir).expect("create the stack directory");
        let log = stack.dir.with_extension("up.log");
        let (ok, output) = run_with_timeout(
            stack.command(&["up", "postgres", "rabbitmq"]),
            Duration::from_secs(180),
            &log,
        );
        assert!(ok, "stack up failed:\n{output}");
        let env = std::fs::read_to_string(stack.dir.join("env")).expect("stack wrote no env file");
        for line in env.lines() {
            match line.split_once('=') {
                Some(("POSTGRES_URL", v)) => stack.postgres_url = v.to_owned(),
                Some(("AMQP_URL", v)) => stack.amqp_url = v.to_owned(),
                _ => {}
            }
        }
        assert!(
            !stack.postgres_url.is_empty() && !stack.amqp_url.is_empty(),
            "env file lacks POSTGRES_URL or AMQP_URL:\n{env}"
        );
        stack
    }

    pub fn management_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port_base + 73)
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let log = self.dir.with_extension("down.log");
        let (ok, output) = run_with_timeout(self.command(&["down"]), Duration::from_secs(90), &log);
        if !ok {
            eprintln!("stack down failed:\n{output}");
        }
        // Keep the data and logs of a failed run for a post-mortem.
        if ok && !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A free loopback port (released for the child to bind).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// The demo binary built for these tests.
pub fn demo_bin() -> &'static str {
    env!("CARGO_BIN_EXE_prognos-demo")
}

/// A `prognos-demo serve` child process, killed when dropped.
#[derive(Debug)]
pub struct Service {
    pub name: String,
    pub url: String,
    child: Child,
    log: PathBuf,
}

impl Service {
    /// Starts `prognos-demo serve --listen <free port> ARGS`, logging to
    /// `log_dir/NAME.log`.
    pub fn spawn(name: &str, args: &[&str], log_dir: &Path) -> Self {
        let port = free_port();
        let log = log_dir.join(format!("{name}.log"));
        let out = File::create(&log).expect("create service log");
        let err = out.try_clone().expect("clone service log");
        let child = Command::new(demo_bin())
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start prognos-demo serve");
        Self {
            name: name.to_owned(),
            url: format!("http://127.0.0.1:{port}"),
            child,
            log,
        }
    }

    /// The last `max` bytes of the service's log.
    pub fn log_tail(&self, max: u64) -> String {
        let Ok(mut file) = File::open(&self.log) else {
            return String::new();
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = file.seek(SeekFrom::Start(len.saturating_sub(max)));
        let mut text = String::new();
        let _ = file.read_to_string(&mut text);
        text
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `probe` every 200 ms until it returns `Ok`, failing after `timeout`
/// with the last observation.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        let last = match probe().await {
            Ok(value) => return Ok(value),
            Err(observed) => observed,
        };
        if Instant::now() > deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}; last seen: {last}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Sum of the samples of `name` (exact metric name) whose labels include
/// every `key="value"` of `labels`.
pub fn metric_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric, rest) = match series.split_once('{') {
                Some((m, rest)) => (m, rest),
                None => (series, ""),
            };
            (metric == name
                && labels
                    .iter()
                    .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\""))))
            .then(|| value.parse::<f64>().ok())
            .flatten()
        })
        .sum()
}
