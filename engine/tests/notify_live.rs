//! Notifications end to end: a real Prometheus with a disk filling up, the
//! live engine, and real receivers on loopback — an idempotent webhook
//! receiver, Debian's Alertmanager, a Telegram Bot API peer, aiosmtpd, a
//! signature-checking remediation receiver. Faults: a receiver down for a
//! while, prognos killed with SIGKILL mid-send.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use prognos::alert::AlertStore;
use prognos::commands::run::{client_for, load_config};
use prognos::config::Shard;
use prognos::exposition::Metrics;
use prognos::notify::NotifySink;
use prognos::scheduler::Engine;
use prognos_notifiers::notifier::NotifierMetrics;
use support::{Prometheus, WebhookReceiver, free_port, now_secs, openmetrics_gauges};

const STEP: i64 = 300;
const DAY: i64 = 86_400;

/// A disk filling 10 GB a day from 50 GB: three days ending a minute ago.
/// At ~80 GB it reaches 88 GB in well under a day.
fn backfill(end: i64) -> String {
    let start = end - 3 * DAY;
    let disk: Vec<(i64, f64)> = (0..=(3 * DAY / STEP))
        .map(|k| {
            let t = start + k * STEP;
            let days = (t - start) as f64 / DAY as f64;
            let noise = ((k * 7919) % 17) as f64 * 1e7;
            (t, 50e9 + 10e9 * days + noise)
        })
        .collect();
    openmetrics_gauges(&[(
        "disk_used_bytes",
        &[("mount", "/data"), ("service", "shop-db")][..],
        disk,
    )])
}

const RULES: &str = r#"groups:
  - name: storage
    rules:
      - alert: ShopDiskFullSoon
        expr: disk_used_bytes
        history: 3d
        step: 5m
        model: linear
        horizons: [1h]
        condition:
          time_to_threshold: {threshold: 88e9, direction: above, less_than: 1d}
        for: 0s
        labels: {severity: warning, team: shop}
        annotations:
          summary: 'Disk {{ $labels.mount }} of <{{ $labels.service }}> full in {{ $eta }}'
"#;

/// Writes the rule file and `prognos.yml` with `notifications` (YAML,
/// indented as a top-level section) into `dir`.
fn write_config(dir: &Path, prom_url: &str, port: u16, notifications: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    std::fs::write(dir.join("rules/disk.yml"), RULES).unwrap();
    let config = dir.join("prognos.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  prometheus:\n    url: {prom_url}\n    timeout: 10s\n  evaluation_interval: 5s\n  state_dir: state\n  listen: 127.0.0.1:{port}\nrule_files:\n  - rules/*.yml\n{notifications}"
        ),
    )
    .unwrap();
    config
}

fn webhook_notifications(url: &str) -> String {
    format!(
        "notifications:\n  retry: {{initial: 200ms, max: 1s}}\n  receivers:\n    - name: hooks\n      webhook:\n        - url: {url}\n  route:\n    receiver: hooks\n    group_by: [service]\n    group_wait: 0s\n    group_interval: 1s\n"
    )
}

/// An engine with the notifiers, as `prognos run` builds it, in this process.
fn engine_with_notifier(config: &Path) -> (Engine, Arc<NotifySink>) {
    let cfg = load_config(config).unwrap();
    let client = client_for(&cfg).unwrap();
    std::fs::create_dir_all(&cfg.state_dir).unwrap();
    let store = Arc::new(AlertStore::open(&cfg.state_dir.join("state.redb")).unwrap());
    let metrics = Arc::new(NotifierMetrics::default());
    let sink =
        Arc::new(NotifySink::open(&cfg.state_dir.join("notify.redb"), metrics.clone()).unwrap());
    sink.apply(cfg.notifications.clone()).unwrap();
    let m = metrics.clone();
    let engine = Engine::new(
        cfg,
        Shard { index: 0, count: 1 },
        client,
        store,
        sink.clone(),
        Arc::new(Metrics::with_extra(|r| m.register(r))),
    )
    .unwrap();
    (engine, sink)
}

/// `prognos run` as a child process; killed (SIGKILL) when dropped.
struct Prognos(std::process::Child);

impl Prognos {
    fn start(config: &Path) -> Self {
        Self(
            std::process::Command::new(env!("CARGO_BIN_EXE_prognos"))
                .args(["run", "--config", config.to_str().unwrap()])
                .env("RUST_LOG", "warn")
                .spawn()
                .expect("starts prognos run"),
        )
    }

    /// SIGKILL: no shutdown code runs.
    fn kill_9(mut self) {
        self.0.kill().unwrap();
        self.0.wait().unwrap();
    }
}

impl Drop for Prognos {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_ready(port: u16) {
    let http = reqwest::Client::new();
    for _ in 0..240 {
        if let Ok(r) = http
            .get(format!("http://127.0.0.1:{port}/-/ready"))
            .send()
            .await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("prognos never became ready");
}

async fn outbox_len(port: u16) -> usize {
    let v: serde_json::Value =
        reqwest::get(format!("http://127.0.0.1:{port}/api/v1/notifications"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    v["data"]["outbox"].as_array().map_or(usize::MAX, Vec::len)
}

/// The receiver holds its answer; prognos is killed with SIGKILL while the
/// request is in flight. After a restart the same notification is sent again
/// with the same idempotency key — acted on once — and once acknowledged a
/// further kill and restart sends nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_cut_by_kill_9_is_delivered_once_after_restart() {
    let prom = Prometheus::start(&backfill(now_secs() - 60), &[]);
    let hook = WebhookReceiver::start().await;
    hook.hold(Some(Duration::from_secs(120)));
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(
        dir.path(),
        &prom.url,
        port,
        &webhook_notifications(&hook.url),
    );

    let first = Prognos::start(&config);
    let got = hook.wait_for(1, 120).await;
    assert_eq!(got.len(), 1, "the alert never reached the receiver");
    first.kill_9();

    hook.hold(None);
    let second = Prognos::start(&config);
    let got = hook.wait_for(2, 120).await;
    assert_eq!(got.len(), 2, "not resent after the restart");
    let key = got[0].key.clone().expect("an Idempotency-Key header");
    assert_eq!(
        got[1].key.as_deref(),
        Some(key.as_str()),
        "the resend carries the same key"
    );
    assert_eq!(
        got[1].body, got[0].body,
        "the resend is the same notification"
    );
    let body = &got[1].body;
    assert_eq!(body["version"], "4");
    assert_eq!(body["status"], "firing");
    assert_eq!(body["alerts"][0]["labels"]["alertname"], "ShopDiskFullSoon");
    assert_eq!(body["groupLabels"]["service"], "shop-db");
    assert_eq!(hook.acted_on().len(), 1, "acted on exactly once");

    // Acknowledged: the outbox empties; a kill and restart send nothing more.
    wait_ready(port).await;
    for _ in 0..100 {
        if outbox_len(port).await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(outbox_len(port).await, 0);
    second.kill_9();
    let _third = Prognos::start(&config);
    wait_ready(port).await;
    // Two more evaluation rounds (5 s apart) with the alert still firing.
    tokio::time::sleep(Duration::from_secs(11)).await;
    assert_eq!(outbox_len(port).await, 0);
    assert_eq!(hook.received().len(), 2, "{:?}", hook.received());
}

/// The receiver is down when the alert fires: prognos retries with backoff,
/// counts the failures, keeps serving, and delivers once the receiver is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_for_a_while_gets_everything_when_it_returns() {
    let now = now_secs();
    let prom = Prometheus::start(&backfill(now - 60), &[]);
    let hook_port = free_port();
    let url = format!("http://127.0.0.1:{hook_port}/hook");
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &prom.url,
        free_port(),
        &webhook_notifications(&url),
    );
    let (engine, sink) = engine_with_notifier(&config);
    engine.evaluate_all(now).await;
    let notifier = sink.current().unwrap();
    // Failed attempts pile up while the receiver is down.
    let mut attempts = 0;
    for _ in 0..100 {
        attempts = notifier.outbox().unwrap().first().map_or(0, |e| e.attempts);
        if attempts >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(attempts >= 3, "{attempts} attempts");
    let text = engine.metrics.encode();
    assert!(
        text.contains("prognos_notifications_total{receiver=\"hooks\",target=\"hooks/webhook\",result=\"failed\"}"),
        "{text}"
    );
    assert!(text.contains("prognos_outbox_depth 1"), "{text}");

    let hook = WebhookReceiver::start_on(hook_port).await;
    let got = hook.wait_for(1, 30).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body["alerts"][0]["labels"]["team"], "shop");
    for _ in 0..50 {
        if notifier.outbox().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(notifier.outbox().unwrap().is_empty());
    sink.stop();
}
