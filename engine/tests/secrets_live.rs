//! No secret leaves prognos: every secret field of the configuration holds a
//! canary string, `prognos run` (a real process, logging at debug) runs on a
//! real Prometheus with an alert that fires, delivers to Telegram (a Bot API
//! peer), email (aiosmtpd), a webhook that answers 500 and a remediation
//! receiver that answers 500, so every path logs its failures. Then every API
//! endpoint, `/metrics`, the reload endpoint's errors, `prognos check`'s
//! output and the whole log are searched for every canary.

mod support;

use std::path::Path;
use std::time::Duration;

use support::{CannedPeer, Prognos, Prometheus, disk_filling, eventually, free_port, now_secs};

#[path = "../../notifiers/tests/support/smtp.rs"]
mod smtp;
#[path = "../../notifiers/tests/support/telegram_peer.rs"]
mod telegram_peer;

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
        labels: {severity: warning}
        annotations:
          summary: 'Disk {{ $labels.mount }} full in {{ $eta }}'
"#;

/// The canaries, one per secret field; all share the prefix so a leak of
/// any part of one is caught too.
struct Canaries {
    prom_token: &'static str,
    hook_bearer: &'static str,
    hook_header: &'static str,
    hook_password: &'static str,
    hook_query: &'static str,
    hmac: &'static str,
    action_bearer: &'static str,
    action_header: &'static str,
    action_password: &'static str,
    action_query: &'static str,
    admin: &'static str,
}

const C: Canaries = Canaries {
    prom_token: "CANARYpromBearerToken",
    hook_bearer: "CANARYhookBearerToken",
    hook_header: "CANARYhookHeaderValue",
    hook_password: "CANARYhookUrlPassword",
    hook_query: "CANARYhookUrlQueryKey",
    hmac: "CANARYhmacSigningSecret",
    action_bearer: "CANARYactionBearerToken",
    action_header: "CANARYactionHeaderValue",
    action_password: "CANARYactionUrlPassword",
    action_query: "CANARYactionUrlQueryKey",
    admin: "CANARYadminToken0123456789",
};

fn all_secrets() -> Vec<&'static str> {
    vec![
        C.prom_token,
        C.hook_bearer,
        C.hook_header,
        C.hook_password,
        C.hook_query,
        C.hmac,
        C.action_bearer,
        C.action_header,
        C.action_password,
        C.action_query,
        C.admin,
        telegram_peer::TOKEN,
        smtp::PASSWORD,
    ]
}

/// Fails naming the secret and where it showed, without printing the text.
fn assert_no_secret(place: &str, text: &str) {
    for s in all_secrets() {
        assert!(!text.contains(s), "{place} shows the secret {s}");
    }
    assert!(
        !text.contains("CANARY"),
        "{place} shows part of a canary secret"
    );
    // The Telegram token's secret half, alone.
    let (_, token_secret) = telegram_peer::TOKEN.split_once(':').unwrap();
    assert!(!text.contains(token_secret), "{place} shows the bot token");
}

#[allow(clippy::too_many_arguments)]
fn write_config(
    dir: &Path,
    prom_url: &str,
    port: u16,
    tg_url: &str,
    smtp_port: u16,
    hook: &str,
    action: &str,
) -> std::path::PathBuf {
    let w = |name: &str, value: &str| std::fs::write(dir.join(name), value).unwrap();
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    w("rules/disk.yml", RULES);
    w("prom.token", C.prom_token);
    w("hook.token", C.hook_bearer);
    w("hmac.key", C.hmac);
    w("admin.token", C.admin);
    w("tg.token", telegram_peer::TOKEN);
    w("smtp.password", smtp::PASSWORD);
    // URLs with credentials in the user info and the query.
    let hook = hook.replacen("http://", &format!("http://ops:{}@", C.hook_password), 1);
    let action = action.replacen("http://", &format!("http://ops:{}@", C.action_password), 1);
    let config = format!(
        r#"global:
  prometheus:
    url: {prom_url}
    timeout: 10s
    bearer_token_file: prom.token
  evaluation_interval: 5s
  state_dir: state
  listen: 127.0.0.1:{port}
rule_files:
  - rules/*.yml
notifications:
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
        - url: {hook}/hook?api_key={hook_query}&team=ops
          bearer_token_file: hook.token
          headers: {{X-Api-Key: {hook_header}}}
  route:
    receiver: ops
    group_by: [service]
    group_wait: 0s
remediation:
  secret_file: hmac.key
  actions:
    - name: expand-disk
      url: {action}/expand?token={action_query}
      headers: {{Authorization: "Bearer {action_bearer}", X-Api-Key: {action_header}}}
      body: '{{"service": "{{{{ $labels.service }}}}"}}'
      matchers: ['alertname="ShopDiskFullSoon"']
      cooldown: 0s
"#,
        smtp_user = smtp::USER,
        hook_query = C.hook_query,
        hook_header = C.hook_header,
        action_query = C.action_query,
        action_bearer = C.action_bearer,
        action_header = C.action_header,
    );
    let path = dir.join("prognos.yml");
    std::fs::write(&path, config).unwrap();
    path
}

async fn get_text(http: &reqwest::Client, url: &str, token: Option<&str>) -> (u16, String) {
    let mut req = http.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req.send().await.expect("prognos answers");
    (r.status().as_u16(), r.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_logs_metrics_api_or_errors() {
    let prom = Prometheus::start(&disk_filling(now_secs() - 60), &[]);
    let tg = telegram_peer::TelegramPeer::start().await;
    let mail = smtp::SmtpServer::start(None);
    let hook = CannedPeer::start(500, "text/plain", "webhook receiver broke").await;
    let action = CannedPeer::start(500, "text/plain", "remediation receiver broke").await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(
        dir.path(),
        &prom.url,
        port,
        tg.url().as_str(),
        mail.port,
        &hook.url,
        &action.url,
    );

    // `check` lists what it validated, but no secret.
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_prognos"))
        .args(["check", config.to_str().unwrap()])
        .output()
        .unwrap();
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    assert!(check.status.success(), "check failed: {out}");
    assert_no_secret("prognos check", &out);

    let log_path = dir.path().join("prognos.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let _prognos = Prognos(
        std::process::Command::new(env!("CARGO_BIN_EXE_prognos"))
            .args([
                "run",
                "--config",
                config.to_str().unwrap(),
                "--admin-token-file",
                dir.path().join("admin.token").to_str().unwrap(),
            ])
            .env("RUST_LOG", "debug")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starts prognos run"),
    );

    // Deliveries happen and the broken receivers are retried (so failures
    // with their URLs are logged and kept as last errors).
    assert!(
        eventually(120, async || !tg.messages().is_empty()).await,
        "nothing reached Telegram"
    );
    assert!(
        eventually(60, async || !mail.messages().is_empty()).await,
        "nothing reached the SMTP server"
    );
    assert!(
        eventually(60, async || hook.requests() >= 2 && action.requests() >= 2).await,
        "the failing webhook ({}) and remediation ({}) were not retried",
        hook.requests(),
        action.requests()
    );
    // The secrets were sent where they belong.
    assert_eq!(
        hook.last_authorization().as_deref(),
        Some(format!("Bearer {}", C.hook_bearer).as_str())
    );

    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let mut seen = Vec::new();
    let series = get_text(&http, &format!("{base}/api/v1/series"), None).await;
    let id =
        serde_json::from_str::<serde_json::Value>(&series.1).unwrap()["data"]["series"][0]["id"]
            .as_str()
            .expect("a modelled series")
            .to_string();
    seen.push(("/api/v1/series".to_string(), series));
    for path in [
        "/metrics".to_string(),
        "/-/healthy".to_string(),
        "/-/ready".to_string(),
        "/api/v1/alerts".to_string(),
        "/api/v1/rules".to_string(),
        format!("/api/v1/series/{id}/forecast"),
        "/api/v1/series/nope/forecast".to_string(),
        "/api/v1/silences".to_string(),
        "/api/v1/notifications".to_string(),
        "/api/v1/remediations".to_string(),
        "/api/v1/remediations?limit=99999999999999999999999".to_string(),
        // The web UI's pages.
        "/".to_string(),
        format!("/series/{id}"),
        "/series/nope".to_string(),
        "/alerts".to_string(),
        "/deliveries".to_string(),
        "/no-such-page".to_string(),
    ] {
        for token in [None, Some(C.admin)] {
            let got = get_text(&http, &format!("{base}{path}"), token).await;
            seen.push((path.clone(), got));
        }
    }
    // The remediation audit shows the failed call, with its URL redacted.
    let audit = &seen
        .iter()
        .find(|(p, _)| p == "/api/v1/remediations")
        .unwrap()
        .1;
    assert!(audit.1.contains("expand-disk"), "{}", audit.1);
    let outbox = &seen
        .iter()
        .find(|(p, _)| p == "/api/v1/notifications")
        .unwrap()
        .1;
    assert!(outbox.1.contains("lastError"), "{}", outbox.1);
    // The web UI's deliveries page shows the same call and its result.
    let page = &seen.iter().find(|(p, _)| p == "/deliveries").unwrap().1;
    assert!(page.1.contains("expand-disk"), "{}", page.1);

    // Mutating endpoints: refused without or with a wrong token, and what
    // they answer with the right one.
    for token in [None, Some("wrong-token-of-enough-length"), Some(C.admin)] {
        let mut req = http.post(format!("{base}/api/v1/silences")).json(&serde_json::json!({
            "matchers": "service=\"shop-db\"", "duration": "1h", "createdBy": "test", "comment": "x"
        }));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        seen.push((
            "POST /api/v1/silences".into(),
            (r.status().as_u16(), r.text().await.unwrap()),
        ));
        // The web UI's form: the token travels in the body.
        let r = http
            .post(format!("{base}/alerts/silences"))
            .form(&[
                ("token", token.unwrap_or("")),
                ("matchers", "service=\"shop-db\""),
                ("duration", "1h"),
                ("comment", "from the page"),
            ])
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        // With the token: 303 to /alerts, which the client follows.
        let want = if token == Some(C.admin) { 200 } else { 401 };
        assert_eq!(status, want, "the page's silence form with {token:?}");
        seen.push((
            "POST /alerts/silences".into(),
            (status, r.text().await.unwrap()),
        ));
        let mut req = http.post(format!("{base}/-/reload"));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.unwrap();
        seen.push((
            "POST /-/reload".into(),
            (r.status().as_u16(), r.text().await.unwrap()),
        ));
    }
    assert_eq!(seen[seen.len() - 2].1.0, 200, "{:?}", seen[seen.len() - 2]);

    // A reload onto a broken file that quotes secrets in every way it can.
    std::fs::write(dir.path().join("rules/disk.yml"), C.hmac).unwrap();
    let broken = std::fs::read_to_string(&config).unwrap().replace(
        "url: http://127.0.0.1",
        &format!("url: http://admin:{}@127.0.0.1:99999", C.hook_password),
    );
    std::fs::write(&config, broken).unwrap();
    let r = http
        .post(format!("{base}/-/reload"))
        .bearer_auth(C.admin)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    assert!(status >= 400, "a broken config was accepted: {status}");
    seen.push(("POST /-/reload (broken files)".into(), (status, text)));
    let check = std::process::Command::new(env!("CARGO_BIN_EXE_prognos"))
        .args(["check", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!check.status.success());
    let out = format!(
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    assert_no_secret("prognos check on broken files", &out);

    for (place, (_, text)) in &seen {
        assert_no_secret(place, text);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    drop(_prognos);
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        log.contains("expand-disk"),
        "the failing remediation call is logged"
    );
    assert!(log.contains("REDACTED"), "URLs in the log are redacted");
    assert_no_secret("the log", &log);
}
