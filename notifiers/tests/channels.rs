//! The channels against real peers on loopback: a Telegram Bot API peer,
//! aiosmtpd, an HTTP receiver and Debian's Alertmanager.

mod support;

use std::time::Duration;

use prognos_notifiers::alert::Status;
use prognos_notifiers::channel::Channel;
use prognos_notifiers::channel::alertmanager::{AlertmanagerChannel, AlertmanagerConfig};
use prognos_notifiers::channel::email::{EmailChannel, EmailConfig, Tls};
use prognos_notifiers::channel::telegram::{BotUpdateKind, TelegramChannel, TelegramConfig};
use prognos_notifiers::channel::webhook::{WebhookChannel, WebhookConfig};
use prognos_notifiers::retry::RetryAction;
use prognos_notifiers::secret::Secret;
use serde_json::{Value, json};
use support::smtp::{self, SmtpServer};
use support::telegram_peer::{Fail, TelegramPeer};
use support::{HttpRecorder, alert, notification, png, rendered};

const CHAT: i64 = 4242;

fn telegram(peer: &TelegramPeer) -> TelegramChannel {
    TelegramChannel::new(TelegramConfig {
        api_url: peer.url(),
        token: Secret::new(peer.token.clone()),
        chat_id: CHAT,
        min_interval: Duration::from_millis(20),
        timeout: Duration::from_secs(20),
        at_most_once: false,
    })
    .unwrap()
}

#[tokio::test]
async fn telegram_delivers_the_message_then_the_chart() {
    let peer = TelegramPeer::start().await;
    let ch = Channel::Telegram(telegram(&peer));
    assert_eq!(ch.kind(), "telegram");
    let r = rendered(true);
    let mut progress = 0;
    ch.send(
        &notification("k1", vec![alert("MesQueueBacklog", "api")]),
        &r,
        &mut progress,
    )
    .await
    .unwrap();
    assert_eq!(progress, 2);
    let m = peer.messages();
    assert_eq!(m.len(), 2, "{m:?}");
    assert_eq!(m[0].method, "sendMessage");
    assert_eq!(m[0].chat_id, Some(CHAT));
    assert_eq!(m[0].text.as_deref(), Some(r.telegram_html.as_str()));
    assert_eq!(m[0].parse_mode.as_deref(), Some("HTML"));
    assert!(m[0].link_preview_disabled);
    assert_eq!(m[1].method, "sendPhoto");
    assert_eq!(m[1].chat_id, Some(CHAT));
    assert_eq!(m[1].photo_len, Some(png().len()));
    assert_eq!(m[1].photo_name.as_deref(), Some("chart.png"));
    assert_eq!(m[1].text.as_deref(), Some(r.telegram_caption_html.as_str()));
    assert_eq!(m[1].parse_mode.as_deref(), Some("HTML"));
}

#[tokio::test]
async fn telegram_without_a_chart_sends_one_part() {
    let peer = TelegramPeer::start().await;
    let ch = telegram(&peer);
    let mut progress = 0;
    ch.send(&rendered(false), &mut progress).await.unwrap();
    assert_eq!(progress, 1);
    assert_eq!(peer.calls(), vec!["sendMessage"]);
}

#[tokio::test]
async fn telegram_flood_control_asks_for_its_delay() {
    let peer = TelegramPeer::start().await;
    let ch = telegram(&peer);
    peer.fail_next(1, Fail::RetryAfter(7));
    let mut progress = 0;
    let e = ch.send(&rendered(true), &mut progress).await.unwrap_err();
    assert_eq!(
        e.action,
        RetryAction::Retry {
            after: Some(Duration::from_secs(7))
        }
    );
    assert_eq!(progress, 0);
    assert!(peer.messages().is_empty());
    // The retry delivers both parts.
    ch.send(&rendered(true), &mut progress).await.unwrap();
    assert_eq!(progress, 2);
    assert_eq!(peer.messages().len(), 2);
}

#[tokio::test]
async fn telegram_server_errors_are_retried() {
    // teloxide waits 10 s after a 5xx before answering: this test is slow.
    let peer = TelegramPeer::start().await;
    let ch = telegram(&peer);
    peer.fail_next(1, Fail::Status(500));
    let mut progress = 0;
    let e = ch.send(&rendered(false), &mut progress).await.unwrap_err();
    assert_eq!(e.action, RetryAction::Retry { after: None }, "{e}");
    assert_eq!(progress, 0);
}

#[tokio::test]
async fn telegram_client_errors_are_not_retried() {
    let peer = TelegramPeer::start().await;
    let ch = telegram(&peer);
    peer.fail_next(1, Fail::Status(400));
    let mut progress = 0;
    let e = ch.send(&rendered(false), &mut progress).await.unwrap_err();
    assert_eq!(e.action, RetryAction::DontRetry);
    assert!(e.message.contains("chat not found"), "{e}");
    peer.fail_next(1, Fail::Status(403));
    let e = ch.send(&rendered(false), &mut progress).await.unwrap_err();
    assert_eq!(e.action, RetryAction::DontRetry);
    assert!(!e.message.contains(&peer.token), "token leaked: {e}");
}

#[tokio::test]
async fn telegram_limits_and_html_are_really_checked() {
    let peer = TelegramPeer::start().await;
    let ch = telegram(&peer);
    let mut r = rendered(false);
    // Exactly 4,096 characters of text (tags do not count) pass.
    r.telegram_html = format!("<b>{}</b>", "x".repeat(4096));
    let mut progress = 0;
    ch.send(&r, &mut progress).await.unwrap();
    // One more is refused, for good.
    r.telegram_html = "y".repeat(4097);
    let mut progress = 0;
    let e = ch.send(&r, &mut progress).await.unwrap_err();
    assert_eq!(e.action, RetryAction::DontRetry);
    assert!(e.message.contains("too long"), "{e}");
    // Unbalanced tags and unescaped text are refused.
    for bad in ["<b>open", "a < b", "<b><i>x</b></i>", "<div>x</div>"] {
        r.telegram_html = bad.to_string();
        let e = ch.send(&r, &mut 0).await.unwrap_err();
        assert_eq!(e.action, RetryAction::DontRetry, "{bad}");
        assert!(e.message.contains("can't parse entities"), "{bad}: {e}");
    }
    // A caption over 1,024 characters.
    let mut r = rendered(true);
    r.telegram_caption_html = "z".repeat(1025);
    let mut progress = 0;
    let e = ch.send(&r, &mut progress).await.unwrap_err();
    assert!(e.message.contains("too long"), "{e}");
    assert_eq!(progress, 1);
}

#[tokio::test]
async fn telegram_retry_after_a_failed_photo_skips_the_message() {
    let peer = TelegramPeer::start().await;
    let ch = telegram(&peer);
    peer.fail_next_method("sendPhoto", 1, Fail::RetryAfter(1));
    let r = rendered(true);
    let mut progress = 0;
    let e = ch.send(&r, &mut progress).await.unwrap_err();
    assert!(matches!(e.action, RetryAction::Retry { .. }));
    assert_eq!(progress, 1, "the message part was acknowledged");
    ch.send(&r, &mut progress).await.unwrap();
    assert_eq!(progress, 2);
    let methods: Vec<String> = peer.messages().into_iter().map(|m| m.method).collect();
    assert_eq!(methods, vec!["sendMessage", "sendPhoto"]);
    // A finished notification sends nothing more.
    ch.send(&r, &mut progress).await.unwrap();
    assert_eq!(peer.messages().len(), 2);
}

#[tokio::test]
async fn telegram_approvals_round_trip() {
    let peer = TelegramPeer::start().await;
    let ch = telegram(&peer);
    let id = ch
        .send_approval("Restart <b>mes-api</b>? &lt;prod&gt;", "rem-17")
        .await
        .unwrap();
    let m = peer.messages();
    assert_eq!(m[0].message_id, Some(id));
    let kb = m[0].reply_markup.clone().unwrap();
    let buttons = &kb["inline_keyboard"][0];
    assert_eq!(buttons[0]["text"], "✅ Approve");
    assert_eq!(buttons[0]["callback_data"], "approve:rem-17");
    assert_eq!(buttons[1]["text"], "❌ Reject");
    assert_eq!(buttons[1]["callback_data"], "reject:rem-17");

    let first = peer.push_callback(777, Some("alice"), "approve:rem-17");
    let ups = ch.updates(0, 5).await.unwrap();
    assert_eq!(ups.len(), 1);
    assert_eq!(i64::from(ups[0].update_id), first);
    let BotUpdateKind::Callback {
        id: cb,
        user_id,
        username,
        data,
        chat_id,
        message_id,
    } = ups[0].kind.clone()
    else {
        panic!("not a callback: {ups:?}");
    };
    assert_eq!(user_id, 777);
    assert_eq!(username.as_deref(), Some("alice"));
    assert_eq!(data, "approve:rem-17");
    assert_eq!(chat_id, Some(CHAT));
    assert_eq!(message_id, Some(id));

    ch.answer_callback(&cb, "Approved").await.unwrap();
    ch.edit(id, "✅ Approved by <b>alice</b>").await.unwrap();
    let m = peer.messages();
    assert_eq!(m[1].method, "answerCallbackQuery");
    assert_eq!(m[1].callback_query_id.as_deref(), Some(cb.as_str()));
    assert_eq!(m[2].method, "editMessageText");
    assert_eq!(m[2].message_id, Some(id));
    assert_eq!(m[2].reply_markup, Some(json!({ "inline_keyboard": [] })));

    // Polling on from the next id confirms the callback: only the text comes.
    peer.push_text(777, CHAT, "/silences");
    let next = ups[0].update_id + 1;
    let ups = ch.updates(next, 5).await.unwrap();
    assert_eq!(ups.len(), 1, "{ups:?}");
    assert_eq!(
        ups[0].kind,
        BotUpdateKind::Text {
            user_id: 777,
            username: Some("operator".into()),
            chat_id: CHAT,
            text: "/silences".into()
        }
    );
    ch.reply(CHAT, "No silences &amp; no <i>approvals</i>")
        .await
        .unwrap();
    assert_eq!(peer.messages().last().unwrap().chat_id, Some(CHAT));
}

#[tokio::test]
async fn telegram_long_poll_returns_when_an_update_arrives() {
    let peer = std::sync::Arc::new(TelegramPeer::start().await);
    let ch = telegram(&peer);
    let p = peer.clone();
    let pusher = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        p.push_callback(5, None, "reject:x")
    });
    // Waits (up to 30 s) for the update pushed while polling.
    let ups = ch.updates(0, 30).await.unwrap();
    pusher.await.unwrap();
    assert_eq!(ups.len(), 1);
    assert!(matches!(
        &ups[0].kind,
        BotUpdateKind::Callback { user_id: 5, username: None, data, .. } if data == "reject:x"
    ));
    // An empty poll returns nothing.
    let next = ups[0].update_id + 1;
    assert!(ch.updates(next, 0).await.unwrap().is_empty());
}

#[tokio::test]
async fn telegram_down_is_retried() {
    let port = smtp::free_port();
    let ch = TelegramChannel::new(TelegramConfig {
        api_url: format!("http://127.0.0.1:{port}/").parse().unwrap(),
        token: Secret::new("1:x"),
        chat_id: CHAT,
        min_interval: Duration::ZERO,
        timeout: Duration::from_secs(5),
        at_most_once: false,
    })
    .unwrap();
    let e = ch.send(&rendered(false), &mut 0).await.unwrap_err();
    assert_eq!(e.action, RetryAction::Retry { after: None }, "{e}");
    assert!(!e.maybe_delivered, "a refused connection sent nothing: {e}");
}

// ---- email ----

fn email_config(server: &SmtpServer) -> EmailConfig {
    EmailConfig {
        host: "127.0.0.1".into(),
        port: server.port,
        tls: Tls::None,
        username: None,
        password: None,
        from: "prognos <prognos@example.com>".into(),
        to: vec![
            "ops@example.com".into(),
            "Dev Team <dev@example.com>".into(),
        ],
        ca_pem: None,
        timeout: Duration::from_secs(10),
        hello_name: Some("prognos.test".into()),
    }
}

fn types(msg: &Value) -> Vec<String> {
    msg["parts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["type"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn email_reaches_a_real_smtp_server_with_text_html_and_chart() {
    assert!(
        smtp::available(),
        "python3 with aiosmtpd is missing: run scripts/install-deps"
    );
    let server = SmtpServer::start(None);
    let ch = Channel::Email(EmailChannel::new(email_config(&server)).unwrap());
    let n = notification("ab12cd34", vec![alert("MesQueueBacklog", "api")]);
    let r = rendered(true);
    let mut progress = 0;
    ch.send(&n, &r, &mut progress).await.unwrap();
    assert_eq!(progress, 1);
    let msgs = server.messages();
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    assert_eq!(m["subject"], r.email_subject);
    assert_eq!(m["message_id"], "<ab12cd34@prognos>");
    assert_eq!(m["x_prognos_key"], "ab12cd34");
    assert_eq!(m["mail_from"], "prognos@example.com");
    assert_eq!(m["rcpt_tos"], json!(["ops@example.com", "dev@example.com"]));
    assert_eq!(
        types(m),
        vec![
            "multipart/alternative",
            "text/plain",
            "multipart/related",
            "text/html",
            "image/png"
        ]
    );
    let parts = m["parts"].as_array().unwrap();
    assert_eq!(
        parts[1]["text"].as_str().unwrap().replace("\r\n", "\n"),
        r.email_text
    );
    assert!(parts[3]["text"].as_str().unwrap().contains("cid:chart"));
    assert_eq!(parts[4]["cid"], "<chart>");
    assert_eq!(parts[4]["disposition"], "inline");
    assert_eq!(parts[4]["png"], true);
    assert_eq!(parts[4]["len"], png().len());
    assert!(server.raw_messages()[0].contains("Message-ID: <ab12cd34@prognos>"));

    // Acknowledged: not sent again. A resend from scratch keeps the Message-ID.
    ch.send(&n, &r, &mut progress).await.unwrap();
    assert_eq!(server.messages().len(), 1);
    ch.send(&n, &rendered(false), &mut 0).await.unwrap();
    let msgs = server.messages();
    assert_eq!(msgs[1]["message_id"], "<ab12cd34@prognos>");
    assert_eq!(
        types(&msgs[1]),
        vec![
            "multipart/alternative",
            "text/plain",
            "multipart/related",
            "text/html"
        ]
    );
}

#[tokio::test]
async fn email_authenticates() {
    assert!(
        smtp::available(),
        "python3 with aiosmtpd is missing: run scripts/install-deps"
    );
    let server = SmtpServer::start(None);
    let mut c = email_config(&server);
    c.username = Some(smtp::USER.into());
    c.password = Some(Secret::new(smtp::PASSWORD));
    let ch = EmailChannel::new(c.clone()).unwrap();
    let n = notification("auth1", vec![alert("MesCpuHigh", "api")]);
    ch.send(&n, &rendered(false), &mut 0).await.unwrap();
    let msgs = server.messages();
    assert_eq!(msgs[0]["auth"], smtp::USER);
    assert_eq!(msgs[0]["tls"], false);

    // A wrong password is refused (535): retrying cannot help.
    c.password = Some(Secret::new("wrong"));
    let ch = EmailChannel::new(c).unwrap();
    let e = ch.send(&n, &rendered(false), &mut 0).await.unwrap_err();
    assert_eq!(e.action, RetryAction::DontRetry, "{e}");
    assert_eq!(server.messages().len(), 1);
}

#[tokio::test]
async fn email_over_starttls() {
    assert!(
        smtp::available(),
        "python3 with aiosmtpd is missing: run scripts/install-deps"
    );
    let dir = tempfile::tempdir().unwrap();
    let cert = smtp::make_cert(dir.path())
        .expect("a self-signed certificate (python cryptography or the openssl CLI)");
    let server = SmtpServer::start(Some(cert));
    let mut c = email_config(&server);
    c.tls = Tls::Starttls;
    c.ca_pem = server.cert_pem.clone();
    c.username = Some(smtp::USER.into());
    c.password = Some(Secret::new(smtp::PASSWORD));
    let ch = EmailChannel::new(c.clone()).unwrap();
    let n = notification("tls1", vec![alert("MesCpuHigh", "api")]);
    let mut progress = 0;
    ch.send(&n, &rendered(true), &mut progress).await.unwrap();
    assert_eq!(progress, 1);
    let msgs = server.messages();
    assert_eq!(msgs[0]["tls"], true);
    assert_eq!(msgs[0]["auth"], smtp::USER);
    assert_eq!(msgs[0]["message_id"], "<tls1@prognos>");

    // Without trusting the self-signed certificate the handshake fails.
    let mut untrusted = c.clone();
    untrusted.ca_pem = None;
    let e = EmailChannel::new(untrusted)
        .unwrap()
        .send(&n, &rendered(false), &mut 0)
        .await
        .unwrap_err();
    assert!(
        e.message.to_lowercase().contains("tls") || e.message.contains("certificate"),
        "{e}"
    );
    // Plain text where the server requires STARTTLS: refused permanently (530).
    let mut plain = c;
    plain.tls = Tls::None;
    plain.username = None;
    let e = EmailChannel::new(plain)
        .unwrap()
        .send(&n, &rendered(false), &mut 0)
        .await
        .unwrap_err();
    assert_eq!(e.action, RetryAction::DontRetry, "{e}");
    assert_eq!(server.messages().len(), 1);
}

#[tokio::test]
async fn email_server_down_is_retried() {
    let port = smtp::free_port();
    let ch = EmailChannel::new(EmailConfig {
        host: "127.0.0.1".into(),
        port,
        tls: Tls::None,
        username: None,
        password: None,
        from: "prognos@example.com".into(),
        to: vec!["ops@example.com".into()],
        ca_pem: None,
        timeout: Duration::from_secs(5),
        hello_name: None,
    })
    .unwrap();
    let mut progress = 0;
    let e = ch
        .send(
            &notification("down", vec![]),
            &rendered(false),
            &mut progress,
        )
        .await
        .unwrap_err();
    assert_eq!(e.action, RetryAction::Retry { after: None }, "{e}");
    assert_eq!(progress, 0);
}

// ---- webhook ----

fn webhook(url: &str) -> WebhookChannel {
    WebhookChannel::new(
        WebhookConfig {
            url: url.parse().unwrap(),
            bearer_token: Some(Secret::new("tok-123")),
            max_alerts: 1,
            timeout: Duration::from_secs(5),
            headers: vec![("X-Team".into(), "mes".into())],
        },
        reqwest::Client::new(),
    )
}

#[tokio::test]
async fn webhook_posts_a_v4_payload_with_an_idempotency_key() {
    let rec = HttpRecorder::start().await;
    let ch = Channel::Webhook(webhook(&rec.url));
    assert_eq!(ch.kind(), "webhook");
    let n = notification(
        "key-42",
        vec![
            alert("MesQueueBacklog", "api"),
            alert("MesQueueBacklog", "db"),
        ],
    );
    let mut progress = 0;
    ch.send(&n, &rendered(false), &mut progress).await.unwrap();
    assert_eq!(progress, 1);
    let got = rec.received();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(r.header("idempotency-key").as_deref(), Some("key-42"));
    assert_eq!(
        r.header("content-type").as_deref(),
        Some("application/json")
    );
    assert_eq!(r.header("authorization").as_deref(), Some("Bearer tok-123"));
    assert_eq!(r.header("x-team").as_deref(), Some("mes"));
    let body = r.json();
    assert_eq!(body["version"], "4");
    assert_eq!(body["status"], "firing");
    assert_eq!(body["receiver"], "ops");
    assert_eq!(body["truncatedAlerts"], 1);
    assert_eq!(body["alerts"].as_array().unwrap().len(), 1);
    assert_eq!(body["alerts"][0]["labels"]["service"], "api");
    assert_eq!(
        body["alerts"][0]["annotations"]["summary"],
        "Queue <backlog> & growth"
    );
    // Acknowledged: not posted again.
    ch.send(&n, &rendered(false), &mut progress).await.unwrap();
    assert_eq!(rec.received().len(), 1);
}

#[tokio::test]
async fn webhook_statuses_decide_retries() {
    let rec = HttpRecorder::start().await;
    let ch = webhook(&rec.url);
    let n = notification("key-43", vec![alert("MesQueueBacklog", "api")]);
    let mut progress = 0;
    rec.answer_next(503, Some(9));
    let e = ch.send(&n, &mut progress).await.unwrap_err();
    assert_eq!(
        e.action,
        RetryAction::Retry {
            after: Some(Duration::from_secs(9))
        }
    );
    rec.answer_next(500, None);
    let e = ch.send(&n, &mut progress).await.unwrap_err();
    assert_eq!(e.action, RetryAction::Retry { after: None });
    rec.answer_next(404, None);
    let e = ch.send(&n, &mut progress).await.unwrap_err();
    assert_eq!(e.action, RetryAction::DontRetry);
    assert!(e.message.contains("404"), "{e}");
    assert_eq!(progress, 0);
    ch.send(&n, &mut progress).await.unwrap();
    assert_eq!(progress, 1);
    // Every attempt carried the same key.
    let keys: Vec<_> = rec
        .received()
        .iter()
        .map(|r| r.header("idempotency-key").unwrap())
        .collect();
    assert_eq!(keys, vec!["key-43"; 4]);
}

#[tokio::test]
async fn webhook_down_is_retried() {
    let port = smtp::free_port();
    let ch = webhook(&format!("http://127.0.0.1:{port}/hook"));
    let e = ch
        .send(&notification("k", vec![alert("A", "b")]), &mut 0)
        .await
        .unwrap_err();
    assert_eq!(e.action, RetryAction::Retry { after: None }, "{e}");
}

// ---- Alertmanager ----

#[tokio::test]
async fn alertmanager_takes_forwards_and_resolves_our_alerts() {
    let rec = HttpRecorder::start().await;
    let am = support::alertmanager::Alertmanager::start(&rec.url)
        .await
        .expect("Debian's Alertmanager: run scripts/install-deps");
    let ch = Channel::Alertmanager(AlertmanagerChannel::new(
        AlertmanagerConfig {
            url: am.url.parse().unwrap(),
            timeout: Duration::from_secs(5),
            resend_ttl: Duration::from_secs(300),
        },
        reqwest::Client::new(),
    ));
    assert_eq!(ch.kind(), "alertmanager");
    let mut a = alert("PrognosChannelTest", "mes-api");
    let n = notification("am-1", vec![a.clone()]);
    let mut progress = 0;
    ch.send(&n, &rendered(false), &mut progress)
        .await
        .unwrap_or_else(|e| panic!("{e}; log:\n{}", am.log()));
    assert_eq!(progress, 1);

    // Alertmanager lists it as active …
    let client = reqwest::Client::new();
    let listed: Value = client
        .get(format!("{}/api/v2/alerts", am.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ours: Vec<&Value> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["labels"]["alertname"] == "PrognosChannelTest")
        .collect();
    assert_eq!(ours.len(), 1, "{listed}");
    assert_eq!(ours[0]["labels"]["service"], "mes-api");
    assert_eq!(ours[0]["status"]["state"], "active");
    assert_eq!(
        ours[0]["annotations"]["summary"],
        "Queue <backlog> & growth"
    );
    assert_eq!(ours[0]["generatorURL"], a.generator_url);

    // … and forwards it with its own webhook (version 4) to the receiver.
    let got = rec
        .wait_for(Duration::from_secs(30), |r| {
            let b: Value = serde_json::from_slice(&r.body).unwrap_or_default();
            b["status"] == "firing"
        })
        .await;
    let body = got.json();
    assert_eq!(body["version"], "4");
    assert_eq!(body["receiver"], "test");
    assert_eq!(
        body["alerts"][0]["labels"]["alertname"],
        "PrognosChannelTest"
    );
    assert_eq!(body["alerts"][0]["labels"]["service"], "mes-api");
    assert_eq!(body["alerts"][0]["status"], "firing");

    // Resolving it resolves it in Alertmanager and at the receiver.
    a.status = Status::Resolved;
    a.ends_at = Some(chrono::Utc::now().timestamp() - 1);
    let mut progress = 0;
    ch.send(
        &notification("am-2", vec![a]),
        &rendered(false),
        &mut progress,
    )
    .await
    .unwrap();
    let got = rec
        .wait_for(Duration::from_secs(30), |r| {
            let b: Value = serde_json::from_slice(&r.body).unwrap_or_default();
            b["status"] == "resolved"
        })
        .await;
    assert_eq!(got.json()["alerts"][0]["status"], "resolved");
    let listed: Value = client
        .get(format!("{}/api/v2/alerts", am.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        !listed.as_array().unwrap().iter().any(|x| {
            x["labels"]["alertname"] == "PrognosChannelTest"
                && x["status"]["state"] == "active"
                && x["endsAt"]
                    .as_str()
                    .is_some_and(|e| e > chrono::Utc::now().to_rfc3339().as_str())
        }),
        "{listed}"
    );
}

#[tokio::test]
async fn alertmanager_refusals_and_outages() {
    let rec = HttpRecorder::start().await;
    let ch = AlertmanagerChannel::new(
        AlertmanagerConfig {
            url: rec.url.trim_end_matches("/hook").parse().unwrap(),
            timeout: Duration::from_secs(5),
            resend_ttl: Duration::from_secs(300),
        },
        reqwest::Client::new(),
    );
    let n = notification("am-x", vec![alert("A", "b")]);
    rec.answer_next(400, None);
    let e = ch.send(&n, &mut 0).await.unwrap_err();
    assert_eq!(e.action, RetryAction::DontRetry);
    rec.answer_next(503, None);
    let e = ch.send(&n, &mut 0).await.unwrap_err();
    assert_eq!(e.action, RetryAction::Retry { after: None });
    let body = rec.received()[0].json();
    assert_eq!(body[0]["labels"]["alertname"], "A");
    assert!(body[0]["endsAt"].as_str().unwrap() > body[0]["startsAt"].as_str().unwrap());

    let port = smtp::free_port();
    let down = AlertmanagerChannel::new(
        AlertmanagerConfig {
            url: format!("http://127.0.0.1:{port}").parse().unwrap(),
            timeout: Duration::from_secs(5),
            resend_ttl: Duration::from_secs(300),
        },
        reqwest::Client::new(),
    );
    let e = down.send(&n, &mut 0).await.unwrap_err();
    assert_eq!(e.action, RetryAction::Retry { after: None }, "{e}");
}

#[tokio::test]
async fn telegram_peer_takes_form_requests_too() {
    let peer = TelegramPeer::start().await;
    let url = format!("{}bot{}/sendMessage", peer.url(), peer.token);
    let client = reqwest::Client::new();
    let resp: Value = client
        .post(&url)
        .form(&[
            ("chat_id", "-100"),
            ("text", "<b>form</b> &amp; done"),
            ("parse_mode", "HTML"),
            (
                "reply_markup",
                r#"{"inline_keyboard":[[{"text":"x","callback_data":"d"}]]}"#,
            ),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resp["ok"], true);
    assert_eq!(resp["result"]["chat"]["type"], "group");
    let m = peer.messages();
    assert_eq!(m[0].chat_id, Some(-100));
    assert_eq!(
        m[0].reply_markup.as_ref().unwrap()["inline_keyboard"][0][0]["callback_data"],
        "d"
    );
    // A wrong token is refused as Telegram does.
    let resp = client
        .post(format!("{}botWRONG/sendMessage", peer.url()))
        .form(&[("chat_id", "1"), ("text", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}
