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
use support::{Prometheus, WebhookReceiver, disk_filling, free_port, now_secs};

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
async fn engine_with_notifier(config: &Path) -> (Engine, Arc<NotifySink>) {
    let cfg = load_config(config).unwrap();
    let client = client_for(&cfg).unwrap();
    std::fs::create_dir_all(&cfg.state_dir).unwrap();
    let store = Arc::new(AlertStore::open(&cfg.state_dir.join("state.redb")).unwrap());
    let metrics = Arc::new(NotifierMetrics::default());
    let sink =
        Arc::new(NotifySink::open(&cfg.state_dir.join("notify.redb"), metrics.clone()).unwrap());
    let m = metrics.clone();
    sink.apply(cfg.notifications.clone()).await.unwrap();
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
    let prom = Prometheus::start(&disk_filling(now_secs() - 60), &[]);
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
    let prom = Prometheus::start(&disk_filling(now - 60), &[]);
    let hook_port = free_port();
    let url = format!("http://127.0.0.1:{hook_port}/hook");
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &prom.url,
        free_port(),
        &webhook_notifications(&url),
    );
    let (engine, sink) = engine_with_notifier(&config).await;
    engine.evaluate_all(now).await;
    let notifier = sink.current().unwrap();
    // Failed attempts pile up while the receiver is down.
    let mut attempts = 0;
    for _ in 0..100 {
        attempts = notifier
            .outbox()
            .await
            .unwrap()
            .first()
            .map_or(0, |e| e.attempts);
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
        if notifier.outbox().await.unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(notifier.outbox().await.unwrap().is_empty());
    sink.stop().await;
}

#[path = "../../notifiers/tests/support/alertmanager.rs"]
mod alertmanager;
#[path = "../../notifiers/tests/support/smtp.rs"]
mod smtp;
#[path = "../../notifiers/tests/support/telegram_peer.rs"]
mod telegram_peer;

use telegram_peer::{Recorded, TelegramPeer};

/// Polls `f` every 100 ms for up to `secs` seconds until it returns Some.
async fn eventually<T>(secs: u64, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    for _ in 0..secs * 10 {
        if let Some(v) = f() {
            return Some(v);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    f()
}

/// [`eventually`] with an async check.
async fn eventually_async<T, F: std::future::Future<Output = Option<T>>>(
    secs: u64,
    mut f: impl FnMut() -> F,
) -> Option<T> {
    for _ in 0..secs * 10 {
        if let Some(v) = f().await {
            return Some(v);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    f().await
}

fn sent(peer: &TelegramPeer, method: &str) -> Vec<Recorded> {
    peer.messages()
        .into_iter()
        .filter(|m| m.method == method)
        .collect()
}

/// One firing alert reaches Telegram (HTML message and PNG chart), email
/// (aiosmtpd: text, HTML and the chart inline), a webhook (Alertmanager's
/// payload) and Debian's Alertmanager, which forwards it to its own webhook.
/// Every message explains itself, with the untrusted label escaped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_alert_reaches_telegram_email_webhook_and_alertmanager() {
    let now = now_secs();
    let prom = Prometheus::start(&disk_filling(now - 60), &[]);
    let tg = TelegramPeer::start().await;
    let mail = smtp::SmtpServer::start(None);
    let hook = WebhookReceiver::start().await;
    let am_hook = WebhookReceiver::start().await;
    let am = alertmanager::Alertmanager::start(&am_hook.url)
        .await
        .expect("Debian's Alertmanager (scripts/install-deps installs it)");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tg.token"), format!("{}\n", tg.token)).unwrap();
    std::fs::write(dir.path().join("smtp.password"), smtp::PASSWORD).unwrap();
    let notifications = format!(
        r#"notifications:
  retry: {{initial: 200ms, max: 1s}}
  receivers:
    - name: ops
      telegram:
        - api_url: {tg_url}
          token_file: tg.token
          chat_id: 4242
          min_interval: 50ms
      email:
        - smarthost: 127.0.0.1:{smtp_port}
          tls: none
          username: {smtp_user}
          password_file: smtp.password
          from: prognos@example.com
          to: [ops@example.com]
      webhook:
        - url: {hook}
    - name: am
      alertmanager:
        - url: {am_url}
  route:
    receiver: ops
    group_by: [service]
    group_wait: 0s
    routes:
      - matchers: ['severity="warning"']
        receiver: ops
        continue: true
      - matchers: ['severity="warning"']
        receiver: am
"#,
        tg_url = tg.url(),
        smtp_port = mail.port,
        smtp_user = smtp::USER,
        hook = hook.url,
        am_url = am.url,
    );
    let config = write_config(dir.path(), &prom.url, free_port(), &notifications);
    let (engine, sink) = engine_with_notifier(&config).await;
    engine.evaluate_all(now).await;

    // Telegram: the message, then the chart.
    let photo = eventually(60, || sent(&tg, "sendPhoto").into_iter().next())
        .await
        .expect("a chart in Telegram");
    let msg = sent(&tg, "sendMessage").remove(0);
    assert_eq!(msg.chat_id, Some(4242));
    assert_eq!(msg.parse_mode.as_deref(), Some("HTML"));
    let text = msg.text.unwrap();
    assert!(text.contains("ShopDiskFullSoon"), "{text}");
    assert!(
        text.contains("&lt;shop-db&gt;"),
        "the label is escaped: {text}"
    );
    assert!(!text.contains("<shop-db>"), "{text}");
    assert!(text.to_lowercase().contains("threshold"), "{text}");
    assert!(text.contains("expected"), "{text}");
    assert!(photo.photo_len.unwrap() > 1000);
    assert!(photo.text.unwrap().len() <= 1024 * 4);

    // Email through a real SMTP server, with AUTH.
    let m = eventually(60, || mail.messages().into_iter().next())
        .await
        .expect("an email");
    assert!(
        m["subject"]
            .as_str()
            .unwrap()
            .contains("[FIRING:1] ShopDiskFullSoon"),
        "{m}"
    );
    assert_eq!(m["auth"], smtp::USER, "{m}");
    let parts = m["parts"].as_array().unwrap();
    assert!(parts.iter().any(|p| p["type"] == "text/plain"), "{m}");
    assert!(
        parts.iter().any(|p| p["type"] == "text/html"
            && p["text"].as_str().unwrap().contains("cid:chart")
            && p["text"].as_str().unwrap().contains("&lt;shop-db&gt;")),
        "{m}"
    );
    assert!(
        parts
            .iter()
            .any(|p| p["type"] == "image/png" && p["png"] == true),
        "{m}"
    );

    // The webhook: Alertmanager's payload, version 4.
    let w = hook.wait_for(1, 30).await;
    assert_eq!(w[0].body["version"], "4");
    assert_eq!(w[0].body["receiver"], "ops");
    assert_eq!(w[0].body["alerts"][0]["labels"]["severity"], "warning");

    // Alertmanager took the alert and forwarded it through its own route.
    let f = am_hook.wait_for(1, 60).await;
    assert!(
        !f.is_empty(),
        "Alertmanager forwarded nothing:\n{}",
        am.log()
    );
    assert_eq!(
        f[0].body["alerts"][0]["labels"]["alertname"],
        "ShopDiskFullSoon"
    );
    assert_eq!(f[0].body["alerts"][0]["labels"]["service"], "shop-db");
    assert_eq!(f[0].body["status"], "firing");

    // Each target delivered once, and the metrics say so. Each target delivers in its own task,
    // which counts the send after the peer has answered, so a counter can trail the peer's log.
    for target in [
        "ops/telegram",
        "ops/email",
        "ops/webhook",
        "am/alertmanager",
    ] {
        let receiver = target.split('/').next().unwrap();
        let line = format!(
            "prognos_notifications_total{{receiver=\"{receiver}\",target=\"{target}\",result=\"sent\"}} 1"
        );
        let counted =
            eventually(30, || engine.metrics.encode().contains(&line).then_some(())).await;
        assert!(
            counted.is_some(),
            "missing {line} in\n{}",
            engine.metrics.encode()
        );
    }
    sink.stop().await;
    let text = engine.metrics.encode();
    assert!(
        !text.contains("result=\"sent\"} 2"),
        "a target delivered twice:\n{text}"
    );
}

fn remediation_config(tg: &TelegramPeer, hook: &str, remediate: &str) -> String {
    format!(
        r#"notifications:
  retry: {{initial: 200ms, max: 1s}}
  receivers:
    - name: hooks
      webhook:
        - url: {hook}
  route:
    receiver: hooks
    group_by: [service]
    group_wait: 0s
    group_interval: 1s
  telegram_bot:
    api_url: {tg_url}
    token_file: tg.token
    chat_id: 4242
    allowed_users: [111]
    poll_timeout: 1s
remediation:
  secret_file: remediation.secret
  actions:
    - name: grow-volume
      url: {remediate}/grow
      body: '{{"service": "{{{{ $labels.service }}}}", "alert": "{{{{ $alertname }}}}"}}'
      matchers: ['alertname="ShopDiskFullSoon"']
      cooldown: 1h
      approval: {{approvers: [111], expires: 10m}}
"#,
        tg_url = tg.url(),
    )
}

/// A remediation bound to the alert asks for approval in Telegram. A user
/// not on the allowlist cannot approve (refused, audited, counted); an
/// allowlisted one can, and the signed call reaches a receiver that verifies
/// its signature. The audit log has what, why, who and the result.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remediation_runs_only_after_an_allowlisted_approval() {
    let now = now_secs();
    let prom = Prometheus::start(&disk_filling(now - 60), &[]);
    let tg = TelegramPeer::start().await;
    let hook = WebhookReceiver::start().await;
    let secret = b"remediation shared secret".to_vec();
    let calls = Arc::new(std::sync::Mutex::new(Vec::<serde_json::Value>::new()));
    let seen = calls.clone();
    let router = prognos_notifiers::receiver::router(secret.clone(), 300, move |v| {
        let body: serde_json::Value = serde_json::from_slice(&v.body).unwrap();
        seen.lock().unwrap().push(body);
        serde_json::json!({"ok": true})
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let remediate = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tg.token"), &tg.token).unwrap();
    std::fs::write(dir.path().join("remediation.secret"), &secret).unwrap();
    let config = write_config(
        dir.path(),
        &prom.url,
        free_port(),
        &remediation_config(&tg, &hook.url, &remediate),
    );
    let (engine, sink) = engine_with_notifier(&config).await;
    engine.evaluate_all(now).await;
    let notifier = sink.current().unwrap();

    // The approval request, with its two buttons.
    let ask = eventually(30, || {
        sent(&tg, "sendMessage")
            .into_iter()
            .find(|m| m.reply_markup.is_some())
    })
    .await
    .expect("an approval request in Telegram");
    let markup = ask.reply_markup.unwrap();
    let approve = markup["inline_keyboard"][0][0]["callback_data"]
        .as_str()
        .unwrap()
        .to_string();
    let reject = markup["inline_keyboard"][0][1]["callback_data"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        approve.starts_with("approve:") && reject.starts_with("reject:"),
        "{markup}"
    );
    assert!(ask.text.unwrap().contains("grow-volume"));
    let audit = notifier.audit(10).await.unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(
        serde_json::to_value(audit[0].status).unwrap(),
        "awaiting_approval"
    );

    // Mallory is not on the allowlist.
    tg.push_callback(999, Some("mallory"), &approve);
    let refused = eventually(30, || sent(&tg, "answerCallbackQuery").into_iter().next())
        .await
        .expect("the press is answered");
    assert!(refused.text.unwrap().contains("not on"), "told why");
    assert!(calls.lock().unwrap().is_empty(), "nothing was called");
    let audit = notifier.audit(10).await.unwrap();
    assert!(
        audit[0].refusals.iter().any(|r| r.contains("999")),
        "{:?}",
        audit[0]
    );

    // Alice is.
    tg.push_callback(111, Some("alice"), &approve);
    let body = eventually(30, || calls.lock().unwrap().first().cloned())
        .await
        .expect("the remediation receiver got a verified call");
    assert_eq!(body["service"], "shop-db");
    assert_eq!(body["alert"], "ShopDiskFullSoon");
    let r = eventually_async(30, || async {
        notifier
            .audit(10)
            .await
            .unwrap()
            .into_iter()
            .find(|r| serde_json::to_value(r.status).unwrap() == "sent")
    })
    .await
    .expect("the audit log records the call");
    assert!(r.decided_by.as_deref().unwrap().contains("111"), "{r:?}");
    assert_eq!(r.result.as_deref(), Some("HTTP 200"));
    assert_eq!(r.alert["alertname"], "ShopDiskFullSoon");
    assert!(
        eventually(30, || sent(&tg, "editMessageText").into_iter().next())
            .await
            .is_some_and(|m| m.text.unwrap().contains("Approved"))
    );
    // A second press of each, after the call: refused again, and already
    // decided. Each remediation state is counted once, when it is reached.
    tg.push_callback(999, Some("mallory"), &approve);
    tg.push_callback(111, Some("alice"), &approve);
    eventually(30, || {
        (sent(&tg, "answerCallbackQuery").len() >= 4).then_some(())
    })
    .await
    .expect("every press is answered");
    let text = engine.metrics.encode();
    for (status, n) in [("awaiting_approval", 1), ("sent", 1)] {
        let line = format!(
            "prognos_remediations_total{{action=\"grow-volume\",status=\"{status}\"}} {n}\n"
        );
        assert!(text.contains(&line), "{line}in:\n{text}");
    }
    assert!(
        text.contains(
            "prognos_approval_refusals_total{action=\"grow-volume\",reason=\"not_allowed\"} 2"
        ),
        "{text}"
    );
    assert_eq!(calls.lock().unwrap().len(), 1);
    sink.stop().await;
}

/// A silence made over the API (with the admin token) keeps the alert from
/// being notified; `/unsilence` in Telegram by an allowed user ends it and
/// the alert goes out; a stranger's `/silence` is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silences_from_the_api_and_telegram() {
    let now = now_secs();
    let prom = Prometheus::start(&disk_filling(now - 60), &[]);
    let tg = TelegramPeer::start().await;
    let hook = WebhookReceiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tg.token"), &tg.token).unwrap();
    std::fs::write(dir.path().join("remediation.secret"), "x").unwrap();
    let notifications = remediation_config(&tg, &hook.url, "http://127.0.0.1:9")
        .split("remediation:")
        .next()
        .unwrap()
        .to_string();
    let config = write_config(dir.path(), &prom.url, free_port(), &notifications);
    let (engine, sink) = engine_with_notifier(&config).await;
    let (tx, _rx) = tokio::sync::mpsc::channel(1);
    let state = Arc::new(prognos::server::ServerState {
        engine: tokio::sync::RwLock::new(Arc::new(engine)),
        reload: Some((prognos_notifiers::secret::Secret::new("tok3n"), tx)),
        notify: Some(sink.clone()),
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api = format!("http://{}/api/v1/silences", listener.local_addr().unwrap());
    tokio::spawn(axum::serve(listener, prognos::server::app(state.clone())).into_future());
    let http = reqwest::Client::new();
    let body = serde_json::json!({"matchers": "service=\"shop-db\"", "duration": "2h", "createdBy": "test", "comment": "maintenance"});
    let r = http.post(&api).json(&body).send().await.unwrap();
    assert_eq!(r.status(), 401, "no token, no silence");
    let r = http
        .post(&api)
        .bearer_auth("tok3n")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let id = r.json::<serde_json::Value>().await.unwrap()["data"]["silenceId"]
        .as_str()
        .unwrap()
        .to_string();
    let bad = serde_json::json!({"matchers": "service=~\"(\"", "duration": "2h"});
    let r = http
        .post(&api)
        .bearer_auth("tok3n")
        .json(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("regular expression"));

    let engine = state.engine.read().await.clone();
    engine.evaluate_all(now).await;
    let notifier = sink.current().unwrap();
    // The group holds the alert, muted: nothing to deliver.
    assert_eq!(notifier.groups().await.len(), 1);
    assert_eq!(notifier.flush(now_secs() + 1).await.0, 0);
    assert!(notifier.outbox().await.unwrap().is_empty());
    assert!(hook.received().is_empty());

    // A stranger cannot silence; the allowed user ends the silence.
    tg.push_text(999, 4242, "/silence 1h service=\"shop-db\"");
    tg.push_text(111, 4242, &format!("/unsilence {id}"));
    let replies = eventually(30, || {
        let r = sent(&tg, "sendMessage");
        (r.len() >= 2).then_some(r)
    })
    .await
    .expect("both commands answered");
    assert!(
        replies[0].text.as_deref().unwrap().contains("not allowed"),
        "{replies:?}"
    );
    assert!(
        replies[1].text.as_deref().unwrap().contains("ended"),
        "{replies:?}"
    );
    let got = hook.wait_for(1, 30).await;
    assert_eq!(got.len(), 1, "notified once the silence ended");
    let listed: serde_json::Value = http.get(&api).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["data"][0]["id"], id.as_str());
    sink.stop().await;
}

/// A reload while a webhook send is under way lets that send finish: the
/// receiver gets the notification once, not once from the old notifier's
/// cut-off send and again from the new notifier's outbox.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_during_a_send_does_not_send_it_twice() {
    use prognos::alert::AlertSink as _;
    use prognos_notifiers::alert::AlertInfo;
    use prognos_notifiers::payload::Status;

    let hook = WebhookReceiver::start().await;
    hook.hold(Some(Duration::from_secs(2)));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "http://127.0.0.1:9",
        free_port(),
        &webhook_notifications(&hook.url),
    );
    let cfg = load_config(&config).unwrap();
    std::fs::create_dir_all(&cfg.state_dir).unwrap();
    let sink = NotifySink::open(
        &cfg.state_dir.join("notify.redb"),
        Arc::new(NotifierMetrics::default()),
    )
    .unwrap();
    let sink = Arc::new(sink);
    sink.apply(cfg.notifications.clone()).await.unwrap();
    let labels = [("alertname", "ShopDiskFullSoon"), ("service", "shop-db")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    // The engine hands alerts over from a blocking thread.
    let engine_side = sink.clone();
    let firing = [AlertInfo {
        rule: "storage/ShopDiskFullSoon".into(),
        labels,
        annotations: Default::default(),
        status: Status::Firing,
        starts_at: now_secs(),
        ends_at: None,
        value: 1.0,
        generator_url: "http://127.0.0.1/api/v1/alerts".into(),
        explanation: None,
    }];
    tokio::task::spawn_blocking(move || engine_side.send(&firing))
        .await
        .unwrap();
    assert_eq!(hook.wait_for(1, 60).await.len(), 1, "never sent");

    // The receiver holds its answer: reload now, with the same settings.
    sink.apply(cfg.notifications.clone()).await.unwrap();
    let n = sink.current().expect("a notifier in force");
    eventually_async(60, || async { n.outbox().await.ok().filter(Vec::is_empty) })
        .await
        .expect("the outbox empties");
    assert_eq!(
        hook.received().len(),
        1,
        "the send under way at the reload was repeated"
    );
    sink.stop().await;
}
