//! The notifier's core, the one task that owns groups, silences, governor
//! and approvals: requests from many tasks at once (more than its queue
//! holds) are all taken and durable; a reload keeps what it holds; a failed
//! store write forgets the whole decision; a closed core says so.

mod support;

use std::sync::Arc;
use std::time::Duration;

use prognos_notifiers::channel::webhook::WebhookConfig;
use prognos_notifiers::config::{NotifierConfig, RemediationConfig, Target};
use prognos_notifiers::matcher::parse_matchers;
use prognos_notifiers::notifier::{Notifier, NotifierError, NotifierMetrics, unix_now};
use prognos_notifiers::remediation::{Action, AuditStatus};
use prognos_notifiers::route::GroupView;
use prognos_notifiers::secret::Secret;
use prognos_notifiers::store::NotifyStore;
use support::{alert, notifier_config};

fn config(group_interval: i64) -> NotifierConfig {
    // Nothing is delivered in these tests: the port is never asked.
    let mut c = notifier_config(vec![Target::Webhook(WebhookConfig {
        url: "http://127.0.0.1:9/hook".parse().unwrap(),
        bearer_token: None,
        max_alerts: 0,
        timeout: Duration::from_secs(1),
        headers: Vec::new(),
    })]);
    c.route.group_interval = group_interval;
    c
}

fn store(dir: &tempfile::TempDir) -> Arc<NotifyStore> {
    Arc::new(NotifyStore::open(&dir.path().join("notify.redb")).unwrap())
}

fn keys(groups: &[GroupView]) -> Vec<(String, usize)> {
    groups
        .iter()
        .map(|g| (g.group_key.clone(), g.alerts.len()))
        .collect()
}

/// 600 transitions from 600 tasks at once (the queue holds 256) while a
/// reload swaps the configuration: every one is grouped, and what the
/// core holds is what a notifier opened afterwards on the same store reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transitions_sent_during_a_reload_are_all_kept_and_durable() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let metrics = Arc::new(NotifierMetrics::default());
    let n = Notifier::open(config(60), store.clone(), metrics.clone()).unwrap();
    let now = unix_now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..600 {
        let n = n.clone();
        tasks.spawn(async move {
            n.ingest(&[alert("MesQueueBacklog", &format!("svc-{i}"))], now)
                .await;
        });
    }
    let reloaded = n.reconfigure(config(300)).await.unwrap();
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    let held = reloaded.groups().await;
    assert_eq!(held.len(), 600, "every transition is grouped");
    assert_eq!(keys(&n.groups().await), keys(&held), "one core, one state");

    reloaded.close().await;
    let reopened = Notifier::open(config(300), store, metrics).unwrap();
    assert_eq!(keys(&reopened.groups().await), keys(&held));
}

/// The engine hands alerts over from a blocking thread; once the call
/// returns they are grouped. A closed core takes nothing and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_handover_is_grouped_and_a_closed_core_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let n = Notifier::open(
        config(60),
        store(&dir),
        Arc::new(NotifierMetrics::default()),
    )
    .unwrap();
    let m = n.clone();
    tokio::task::spawn_blocking(move || {
        m.ingest_blocking(&[alert("MesQueueBacklog", "mes-api")], unix_now());
    })
    .await
    .unwrap();
    assert_eq!(n.groups().await.len(), 1);

    n.close().await;
    let refused = n
        .add_silence(
            parse_matchers(r#"service="mes-api""#).unwrap(),
            unix_now(),
            unix_now() + 60,
            "test",
            "",
        )
        .await;
    assert!(matches!(refused, Err(NotifierError::Closed)), "{refused:?}");
    assert!(n.groups().await.is_empty());
}

fn remediation() -> RemediationConfig {
    RemediationConfig {
        secret: Secret::new("k"),
        max_calls: 10,
        per_secs: 3600,
        dry_run: false,
        actions: vec![Action {
            name: "restart-consumer".into(),
            url: "http://127.0.0.1:9/restart".parse().unwrap(),
            method: "POST".into(),
            body_template: r#"{"service": "{{ $labels.service }}"}"#.into(),
            headers: Vec::new(),
            matchers: parse_matchers(r#"alertname="MesQueueBacklog""#).unwrap(),
            cooldown_secs: 600,
            approval: None,
            dry_run: false,
            on_resolved: false,
        }],
        audit_retention_secs: prognos_notifiers::config::AUDIT_RETENTION_SECS,
    }
}

/// A store that fails while a transition is taken (disk full) leaves no
/// trace of the decision: not the group, and not the cooldown the
/// remediation governor would have started, so once the store is back the
/// same transition is acted on instead of being skipped as "in cooldown".
#[tokio::test(start_paused = true)]
async fn a_failed_write_forgets_the_whole_decision_so_the_retry_acts() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir);
    let mut c = config(60);
    c.remediation = Some(remediation());
    let n = Notifier::open(c, store.clone(), Arc::new(NotifierMetrics::default())).unwrap();
    let now = unix_now();
    let firing = alert("MesQueueBacklog", "mes-api");

    // The audit log's read fails, then the decision's write.
    for fault in 0..=1 {
        store.inject_fault_after(fault);
        n.ingest(std::slice::from_ref(&firing), now).await;
        assert!(
            n.groups().await.is_empty(),
            "fault {fault}: nothing grouped"
        );
        // The store reopens after its backoff.
        tokio::time::advance(Duration::from_secs(120)).await;
        assert!(n.audit(5).await.unwrap().is_empty(), "fault {fault}");
    }

    n.ingest(std::slice::from_ref(&firing), now).await;
    assert_eq!(n.groups().await.len(), 1);
    let audit = n.audit(5).await.unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].status, AuditStatus::Approved, "{audit:?}");
    let outbox = n.outbox().await.unwrap();
    assert!(
        outbox
            .iter()
            .any(|e| e.target == "remediation:restart-consumer"),
        "the call is queued: {outbox:?}"
    );
}
