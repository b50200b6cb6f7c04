//! One alert transition taken by a notifier that already holds many alert
//! groups: the path every firing and resolved alert takes from the engine
//! (through the core's queue, grouped, the changed state committed durably
//! to the store, answered).
//!
//! 10,000 alerts firing in 10,000 groups are taken first; then 1,000 single
//! transitions (an alert of one group changing value) are timed one by one,
//! wall time, each fsynced. Prints p50, p99 and the store's size.
//!
//! `cargo bench -p prognos-notifiers --bench ingest`

use std::sync::Arc;
use std::time::{Duration, Instant};

use prognos_notifiers::alert::{AlertInfo, KeyValues, Status};
use prognos_notifiers::channel::webhook::WebhookConfig;
use prognos_notifiers::config::{NotifierConfig, Receiver, Target};
use prognos_notifiers::message::RenderOptions;
use prognos_notifiers::notifier::{Notifier, NotifierMetrics};
use prognos_notifiers::retry::Backoff;
use prognos_notifiers::route::Route;
use prognos_notifiers::store::NotifyStore;

const GROUPS: usize = 10_000;
const TIMED: usize = 1_000;

fn alert(i: usize, value: f64, now: i64) -> AlertInfo {
    let labels: KeyValues = [
        ("alertname", "ApiCpuHighSoon".to_string()),
        ("service", format!("svc-{i:05}")),
        ("severity", "warning".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    AlertInfo {
        rule: "api/ApiCpuHighSoon".into(),
        labels,
        annotations: [(
            "summary".to_string(),
            "CPU forecast to cross 90 % within 30 min".to_string(),
        )]
        .into_iter()
        .collect(),
        status: Status::Firing,
        starts_at: now - 600,
        ends_at: None,
        value,
        generator_url: "http://127.0.0.1:9464/api/v1/alerts".into(),
        explanation: None,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.redb");
    let store = Arc::new(NotifyStore::open(&path).unwrap());
    let config = NotifierConfig {
        external_url: "http://127.0.0.1:9464".into(),
        receivers: vec![Receiver {
            name: "ops".into(),
            send_resolved: true,
            targets: vec![Target::Webhook(WebhookConfig {
                url: "http://127.0.0.1:9/hook".parse().unwrap(),
                bearer_token: None,
                max_alerts: 0,
                timeout: Duration::from_secs(10),
                headers: Vec::new(),
            })],
        }],
        route: Route {
            receiver: "ops".into(),
            matchers: Vec::new(),
            group_by: vec!["service".into()],
            group_wait: 30,
            group_interval: 300,
            repeat_interval: 4 * 3600,
            continue_matching: false,
            routes: Vec::new(),
        },
        give_up_after_secs: 3600,
        backoff: Backoff::default(),
        render: RenderOptions::default(),
        bot: None,
        remediation: None,
    };
    let notifier = Notifier::open(config, store, Arc::new(NotifierMetrics::default())).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let all: Vec<AlertInfo> = (0..GROUPS).map(|i| alert(i, 91.0, now)).collect();
    for chunk in all.chunks(1000) {
        notifier.ingest(chunk, now).await;
    }
    assert_eq!(notifier.groups().await.len(), GROUPS);

    let mut took = Vec::with_capacity(TIMED);
    for k in 0..TIMED {
        let one = alert((k * 7919) % GROUPS, 92.0 + k as f64 / 1000.0, now);
        let t = Instant::now();
        notifier.ingest(std::slice::from_ref(&one), now + 1).await;
        took.push(t.elapsed());
    }
    took.sort();
    let size = std::fs::metadata(&path).map_or(0, |m| m.len());
    println!(
        "ingest: one transition into {GROUPS} held groups, {TIMED} timed: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; store {:.1} MiB",
        percentile(&took, 0.5).as_secs_f64() * 1e3,
        percentile(&took, 0.99).as_secs_f64() * 1e3,
        took.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
        size as f64 / (1024.0 * 1024.0)
    );
}
