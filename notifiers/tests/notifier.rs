//! The notifier service over its durable outbox, driven step by step with
//! explicit times: Telegram's `429 retry_after` honoured, deliveries given
//! up after their age, approvals that expire, dry runs that call nothing.
//! Peers are real servers on loopback (a Telegram Bot API peer, an HTTP
//! receiver).

mod support;

use std::sync::Arc;
use std::time::Duration;

use prognos_notifiers::channel::telegram::TelegramConfig;
use prognos_notifiers::channel::webhook::WebhookConfig;
use prognos_notifiers::config::{BotConfig, NotifierConfig, RemediationConfig, Target};
use prognos_notifiers::matcher::parse_matchers;
use prognos_notifiers::notifier::{Notifier, NotifierMetrics, unix_now};
use prognos_notifiers::remediation::{Action, ApprovalPolicy, AuditStatus};
use prognos_notifiers::secret::Secret;
use prognos_notifiers::store::NotifyStore;
use prometheus_client::registry::Registry;
use support::telegram_peer::{Fail, TelegramPeer};
use support::{HttpRecorder, alert, notifier_config};

fn telegram(peer: &TelegramPeer) -> TelegramConfig {
    let mut c = TelegramConfig::new(peer.token.clone(), 4242);
    c.api_url = peer.url();
    c.min_interval = Duration::from_millis(10);
    c
}

fn open(c: NotifierConfig) -> (Notifier, Arc<NotifierMetrics>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(NotifyStore::open(&dir.path().join("notify.redb")).unwrap());
    let metrics = Arc::new(NotifierMetrics::default());
    (
        Notifier::open(c, store, metrics.clone()).unwrap(),
        metrics,
        dir,
    )
}

fn encode(m: &NotifierMetrics) -> String {
    let mut r = Registry::default();
    m.register(&mut r);
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &r).unwrap();
    out
}

#[tokio::test]
async fn telegram_retry_after_is_honoured() {
    let tg = TelegramPeer::start().await;
    let (n, metrics, _dir) = open(notifier_config(vec![Target::Telegram(telegram(&tg))]));
    let now = unix_now();
    tg.fail_next(1, Fail::RetryAfter(30));
    n.ingest(&[alert("MesQueueBacklog", "mes-api")], now).await;
    assert_eq!(n.flush(now).await.0, 1);
    assert_eq!(n.deliver_due(now).await, 0);
    let e = n.outbox().await.unwrap().remove(0);
    assert_eq!(e.attempts, 1);
    assert!(
        e.next_attempt_at >= now + 30,
        "waits what Telegram asked: {e:?}"
    );
    assert!(
        e.last_error.as_deref().unwrap().contains("Retry after 30s"),
        "{e:?}"
    );
    // Not due before the time Telegram gave.
    assert_eq!(n.deliver_due(now + 29).await, 0);
    assert!(tg.messages().is_empty());
    assert_eq!(n.deliver_due(now + 30).await, 1);
    assert_eq!(tg.messages().len(), 1);
    assert!(n.outbox().await.unwrap().is_empty());
    let text = encode(&metrics);
    assert!(text.contains("result=\"failed\"} 1"), "{text}");
    assert!(text.contains("result=\"sent\"} 1"), "{text}");
}

#[tokio::test]
async fn an_undeliverable_notification_is_given_up_after_its_age() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let hook = WebhookConfig {
        url: format!("http://127.0.0.1:{port}/hook").parse().unwrap(),
        bearer_token: None,
        max_alerts: 0,
        timeout: Duration::from_secs(2),
        headers: Vec::new(),
    };
    let (n, metrics, _dir) = open(notifier_config(vec![Target::Webhook(hook)]));
    let now = unix_now();
    n.ingest(&[alert("MesQueueBacklog", "mes-api")], now).await;
    n.flush(now).await;
    assert_eq!(n.deliver_due(now).await, 0);
    assert_eq!(n.outbox().await.unwrap().len(), 1, "kept for a retry");
    // Past give_up_after (600 s): dropped, counted, not retried again.
    assert_eq!(n.deliver_due(now + 601).await, 0);
    assert!(n.outbox().await.unwrap().is_empty());
    let text = encode(&metrics);
    assert!(
        text.contains("prognos_notifications_total{receiver=\"ops\",target=\"ops/webhook\",result=\"given_up\"} 1"),
        "{text}"
    );
    assert!(text.contains("prognos_outbox_depth 0"), "{text}");
}

fn action(url: &str, approval: Option<ApprovalPolicy>, dry_run: bool) -> Action {
    Action {
        name: "restart-consumer".into(),
        url: url.parse().unwrap(),
        method: "POST".into(),
        body_template: r#"{"service": "{{ $labels.service }}"}"#.into(),
        headers: Vec::new(),
        matchers: parse_matchers(r#"alertname="MesQueueBacklog""#).unwrap(),
        cooldown_secs: 600,
        approval,
        dry_run,
        on_resolved: false,
    }
}

fn with_remediation(mut c: NotifierConfig, tg: &TelegramPeer, a: Action) -> NotifierConfig {
    c.bot = Some(BotConfig {
        telegram: telegram(tg),
        allowed_users: vec![111],
        poll_timeout_secs: 1,
    });
    c.remediation = Some(RemediationConfig {
        secret: Secret::new("k"),
        max_calls: 10,
        per_secs: 3600,
        dry_run: false,
        actions: vec![a],
        audit_retention_secs: prognos_notifiers::config::AUDIT_RETENTION_SECS,
    });
    c
}

#[tokio::test]
async fn an_unanswered_approval_expires_and_nothing_is_called() {
    let tg = TelegramPeer::start().await;
    let target = HttpRecorder::start().await;
    let hooks = HttpRecorder::start().await;
    let policy = ApprovalPolicy {
        expires_secs: 300,
        approvers: vec![111],
    };
    let c = notifier_config(vec![Target::Webhook(WebhookConfig {
        url: hooks.url.parse().unwrap(),
        bearer_token: None,
        max_alerts: 0,
        timeout: Duration::from_secs(5),
        headers: Vec::new(),
    })]);
    let (n, _m, _dir) = open(with_remediation(
        c,
        &tg,
        action(&target.url, Some(policy), false),
    ));
    let now = unix_now();
    n.ingest(&[alert("MesQueueBacklog", "mes-api")], now).await;
    n.flush(now).await;
    n.deliver_due(now).await;
    let ask = tg.messages().into_iter().find(|m| m.reply_markup.is_some());
    assert!(ask.is_some(), "the approval request went out");
    assert_eq!(
        n.audit(5).await.unwrap()[0].status,
        AuditStatus::AwaitingApproval
    );

    n.expire_approvals(now + 299).await;
    assert_eq!(
        n.audit(5).await.unwrap()[0].status,
        AuditStatus::AwaitingApproval
    );
    n.expire_approvals(now + 300).await;
    assert_eq!(n.audit(5).await.unwrap()[0].status, AuditStatus::Expired);
    let edited = tg
        .messages()
        .into_iter()
        .find(|m| m.method == "editMessageText")
        .expect("the request is marked expired in the chat");
    assert!(edited.text.unwrap().contains("Expired"));
    // Too late to approve now.
    let data = ask.unwrap().reply_markup.unwrap()["inline_keyboard"][0][0]["callback_data"]
        .as_str()
        .unwrap()
        .to_string();
    let answer = n.decide(&data, 111, Some("alice"), now + 301).await;
    assert!(
        answer.contains("expired") || answer.contains("Already"),
        "{answer}"
    );
    n.deliver_due(now + 302).await;
    assert!(target.received().is_empty(), "nothing was called");
}

#[tokio::test]
async fn a_dry_run_is_audited_and_calls_nothing() {
    let tg = TelegramPeer::start().await;
    let target = HttpRecorder::start().await;
    let hooks = HttpRecorder::start().await;
    let c = notifier_config(vec![Target::Webhook(WebhookConfig {
        url: hooks.url.parse().unwrap(),
        bearer_token: None,
        max_alerts: 0,
        timeout: Duration::from_secs(5),
        headers: Vec::new(),
    })]);
    let (n, metrics, _dir) = open(with_remediation(c, &tg, action(&target.url, None, true)));
    let now = unix_now();
    n.ingest(&[alert("MesQueueBacklog", "mes-api")], now).await;
    n.flush(now).await;
    n.deliver_due(now).await;
    let audit = n.audit(5).await.unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].status, AuditStatus::DryRun);
    let request = audit[0]
        .request
        .as_ref()
        .expect("what would have been called");
    assert_eq!(request.body, r#"{"service": "mes-api"}"#);
    assert!(target.received().is_empty());
    assert_eq!(
        hooks.received().len(),
        1,
        "the notification itself still goes out"
    );
    assert!(encode(&metrics).contains("status=\"dry_run\"} 1"));
    // The same transition seen again (a restart) is not planned twice.
    n.ingest(&[alert("MesQueueBacklog", "mes-api")], now + 5)
        .await;
    assert_eq!(n.audit(5).await.unwrap().len(), 1);
}

/// In a group every bot sees `/silence@other_bot …`: only commands without a
/// suffix or addressed to this bot (its name from `getMe`) are obeyed.
#[tokio::test]
async fn commands_addressed_to_another_bot_are_ignored() {
    let tg = TelegramPeer::start().await;
    let mut c = notifier_config(Vec::new());
    c.bot = Some(BotConfig {
        telegram: telegram(&tg),
        allowed_users: vec![111],
        poll_timeout_secs: 0,
    });
    let (n, _m, _dir) = open(c);
    tg.push_text(111, -4242, "/silence@other_bot 1h service=\"mes-api\"");
    tg.push_text(
        111,
        -4242,
        "/silence@prognos_test_bot 1h service=\"shop-db\"",
    );
    assert!(n.poll_bot().await);
    assert!(
        tg.calls().contains(&"getMe".to_string()),
        "{:?}",
        tg.calls()
    );
    let silences = n.silences().await;
    assert_eq!(
        silences.len(),
        1,
        "{silences:?} {:?} {:?}",
        tg.calls(),
        tg.messages()
    );
    assert_eq!(silences[0].matchers[0].value, "shop-db");
    let replies = tg.messages();
    assert_eq!(
        replies.len(),
        1,
        "no answer to another bot's command: {replies:?}"
    );
    assert!(
        replies[0]
            .text
            .as_deref()
            .unwrap_or("")
            .contains("Silenced"),
        "{replies:?}"
    );
}

/// `Retry-After: 18446744073709551615` used to wrap the due time into the
/// past (a retry storm); `99999999999` parked the delivery for millennia.
/// Either way the retry now waits until the give-up age, where it is given up.
#[tokio::test]
async fn a_huge_retry_after_neither_wraps_nor_outlives_the_give_up_age() {
    for retry_after in [u64::MAX, 99_999_999_999] {
        let hooks = HttpRecorder::start().await;
        let (n, metrics, _dir) = open(notifier_config(vec![Target::Webhook(WebhookConfig {
            url: hooks.url.parse().unwrap(),
            bearer_token: None,
            max_alerts: 0,
            timeout: Duration::from_secs(5),
            headers: Vec::new(),
        })]));
        hooks.answer_next(429, Some(retry_after));
        let now = unix_now();
        n.ingest(&[alert("MesQueueBacklog", "mes-api")], now).await;
        n.flush(now).await;
        assert_eq!(n.deliver_due(now).await, 0);
        let e = n.outbox().await.unwrap().remove(0);
        assert_eq!(
            e.next_attempt_at,
            e.created_at + 600 + 1,
            "Retry-After {retry_after}: {e:?}"
        );
        assert_eq!(n.deliver_due(now + 1).await, 0, "not due again at once");
        assert_eq!(hooks.received().len(), 1);
        assert_eq!(n.deliver_due(e.next_attempt_at).await, 0);
        assert!(n.outbox().await.unwrap().is_empty(), "given up at its age");
        assert_eq!(hooks.received().len(), 1);
        assert!(encode(&metrics).contains("result=\"given_up\"} 1"));
    }
}

/// Telegram's `retry_after` (in the 429 body) is bounded the same way.
#[tokio::test]
async fn a_huge_telegram_retry_after_is_bounded_by_the_give_up_age() {
    let tg = TelegramPeer::start().await;
    let (n, _metrics, _dir) = open(notifier_config(vec![Target::Telegram(telegram(&tg))]));
    tg.fail_next(1, Fail::RetryAfter(u32::MAX));
    let now = unix_now();
    n.ingest(&[alert("MesQueueBacklog", "mes-api")], now).await;
    n.flush(now).await;
    assert_eq!(n.deliver_due(now).await, 0);
    let e = n.outbox().await.unwrap().remove(0);
    assert_eq!(e.next_attempt_at, e.created_at + 601, "{e:?}");
}

/// At start the engine hands over what it has firing. An alert the groups
/// hold as firing but the engine no longer has (its Resolved was lost in a
/// crash) is resolved and told once, not repeated every repeat_interval;
/// one the groups lack is grouped and told.
#[tokio::test]
async fn resync_resolves_what_no_longer_fires_and_adds_what_does() {
    let tg = TelegramPeer::start().await;
    let (n, _metrics, _dir) = open(notifier_config(vec![Target::Telegram(telegram(&tg))]));
    let now = unix_now();
    let gone = alert("ShopDbFullSoon", "shop-api");
    n.ingest(std::slice::from_ref(&gone), now).await;
    n.flush(now).await;
    n.deliver_due(now).await;
    assert_eq!(tg.messages().len(), 1);

    let new = alert("MesQueueBacklog", "mes-api");
    n.resync(std::slice::from_ref(&new), now + 10).await;
    let firing: Vec<String> = n
        .groups()
        .await
        .iter()
        .flat_map(|g| &g.alerts)
        .filter(|a| a.status == prognos_notifiers::payload::Status::Firing)
        .map(|a| a.name().to_string())
        .collect();
    assert_eq!(firing, ["MesQueueBacklog"]);
    n.flush(now + 70).await;
    n.deliver_due(now + 70).await;
    let texts: Vec<String> = tg
        .messages()
        .into_iter()
        .map(|m| m.text.unwrap_or_default())
        .collect();
    assert_eq!(texts.len(), 3, "{texts:?}");
    assert!(
        texts
            .iter()
            .any(|t| t.contains("RESOLVED") || t.contains("Resolved")),
        "{texts:?}"
    );
    // Hours later nothing about the resolved alert is repeated.
    n.flush(now + 4 * 3600).await;
    n.deliver_due(now + 4 * 3600).await;
    let later: Vec<String> = tg
        .messages()
        .into_iter()
        .map(|m| m.text.unwrap_or_default())
        .collect();
    assert!(
        later[3..].iter().all(|t| !t.contains("ShopDbFullSoon")),
        "{later:?}"
    );
}

/// An SMTP server that accepts connections and never says a word: each
/// email attempt waits for its whole timeout. Telegram's first attempt
/// fails (retryable); its retry is due within a second and must not wait
/// for the hung email, as it did when a delivery round waited for every
/// target (issue: retries due in 1 s ran after 4 minutes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_smtp_server_does_not_hold_telegram_back() {
    use prognos_notifiers::channel::email::{EmailConfig, Tls};

    let tg = TelegramPeer::start().await;
    tg.fail_next(1, Fail::Status(502));
    let hung = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = hung.local_addr().unwrap().port();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = hung.accept().await {
            held.push(socket);
        }
    });
    let email = EmailConfig {
        host: "127.0.0.1".into(),
        port,
        tls: Tls::None,
        username: None,
        password: None,
        from: "prognos <prognos@example.com>".into(),
        to: vec!["ops@example.com".into()],
        ca_pem: None,
        // Far longer than the test waits for Telegram.
        timeout: Duration::from_secs(600),
        hello_name: Some("prognos.test".into()),
    };
    let (n, _metrics, _dir) = open(notifier_config(vec![
        Target::Telegram(telegram(&tg)),
        Target::Email(email),
    ]));
    let (stop, rx) = tokio::sync::watch::channel(false);
    let loops = n.spawn(rx);
    n.ingest(&[alert("MesQueueBacklog", "mes-api")], unix_now())
        .await;
    let mut delivered = false;
    for _ in 0..600 {
        if !tg.messages().is_empty() {
            delivered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        delivered,
        "Telegram's retry waited for the hung email server"
    );
    let _ = stop.send(true);
    for l in loops {
        l.abort();
    }
    silent.abort();
}

/// Opens a notifier for `c` on the store in `dir` (a restart opens it again).
fn reopen(c: &NotifierConfig, dir: &std::path::Path) -> (Notifier, Arc<NotifierMetrics>) {
    let store = Arc::new(NotifyStore::open(&dir.join("notify.redb")).unwrap());
    let metrics = Arc::new(NotifierMetrics::default());
    (
        Notifier::open(c.clone(), store, metrics.clone()).unwrap(),
        metrics,
    )
}

fn sends(tg: &TelegramPeer) -> usize {
    tg.calls().iter().filter(|c| *c == "sendMessage").count()
}

/// Issue 11, finding 9: a crash while Telegram holds the request repeats the
/// message after the restart (at least once, the default); a target with
/// `at_most_once` marks the attempt in the outbox before the request and
/// gives it up after the restart instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_telegram_send_cut_by_a_crash_is_repeated_unless_at_most_once() {
    for at_most_once in [false, true] {
        let tg = TelegramPeer::start().await;
        let mut t = telegram(&tg);
        t.at_most_once = at_most_once;
        let c = notifier_config(vec![Target::Telegram(t)]);
        let dir = tempfile::tempdir().unwrap();
        let (n, _) = reopen(&c, dir.path());
        let now = unix_now();
        tg.fail_next_method("sendMessage", 1, Fail::Hang);
        n.ingest(&[alert("MesQueueBacklog", "mes-api")], now).await;
        n.flush(now).await;
        let sending = tokio::spawn({
            let n = n.clone();
            async move { n.deliver_due(now).await }
        });
        for _ in 0..200 {
            if sends(&tg) == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert_eq!(sends(&tg), 1, "the peer holds the request");
        let pending = n.outbox().await.unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(
            pending[0].in_flight, at_most_once,
            "marked before the request"
        );
        // The crash: the send is cut, the process's state is gone.
        sending.abort();
        let _ = sending.await;
        drop(n);
        // The cut send's tasks let go of the store as they are dropped.
        let mut reopened = None;
        for _ in 0..200 {
            if let Ok(store) = NotifyStore::open(&dir.path().join("notify.redb")) {
                reopened = Some(store);
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let metrics = Arc::new(NotifierMetrics::default());
        let n = Notifier::open(
            c.clone(),
            Arc::new(reopened.expect("the store is released")),
            metrics.clone(),
        )
        .unwrap();
        n.deliver_due(now + 60).await;
        let text = encode(&metrics);
        assert!(n.outbox().await.unwrap().is_empty());
        if at_most_once {
            assert_eq!(sends(&tg), 1, "repeated although at most once");
            assert!(text.contains("result=\"given_up\"} 1"), "{text}");
        } else {
            assert_eq!(sends(&tg), 2, "at least once: sent again after the restart");
            assert!(text.contains("result=\"sent\"} 1"), "{text}");
        }
    }
}

/// A request that times out may have been delivered: retried by default,
/// given up at once with `at_most_once`. One refused outright (Telegram's
/// 429) is retried in both modes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_once_gives_up_a_timed_out_send_and_retries_a_refused_one() {
    for at_most_once in [false, true] {
        let tg = TelegramPeer::start().await;
        let mut t = telegram(&tg);
        t.at_most_once = at_most_once;
        t.timeout = Duration::from_millis(300);
        let dir = tempfile::tempdir().unwrap();
        let (n, metrics) = reopen(&notifier_config(vec![Target::Telegram(t)]), dir.path());
        let now = unix_now();
        tg.fail_next_method("sendMessage", 1, Fail::RetryAfter(1));
        tg.fail_next_method("sendMessage", 1, Fail::Hang);
        n.ingest(&[alert("MesQueueBacklog", "mes-api")], now).await;
        n.flush(now).await;
        // Refused: kept for a retry, in both modes.
        assert_eq!(n.deliver_due(now).await, 0);
        assert_eq!(
            n.outbox().await.unwrap().len(),
            1,
            "{:?} {}",
            tg.calls(),
            encode(&metrics)
        );
        assert!(!n.outbox().await.unwrap()[0].in_flight);
        // Timed out.
        assert_eq!(n.deliver_due(now + 60).await, 0);
        let text = encode(&metrics);
        if at_most_once {
            assert!(n.outbox().await.unwrap().is_empty(), "given up");
            assert!(text.contains("result=\"given_up\"} 1"), "{text}");
            assert_eq!(sends(&tg), 2);
        } else {
            assert_eq!(n.outbox().await.unwrap().len(), 1, "kept for a retry");
            assert_eq!(n.deliver_due(now + 120).await, 1);
            assert_eq!(sends(&tg), 3);
        }
    }
}
