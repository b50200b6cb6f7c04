//! 1,000 alerts firing at once, delivered through the durable outbox to a
//! Telegram Bot API peer and a webhook on loopback, as the live engine does:
//! ingest (routing, grouping, one durable commit), flush (notifications and
//! dispatcher state in one commit), render (HTML, email, PNG chart), send,
//! acknowledge (a commit each). Reports the process's CPU time per alert —
//! the peers run in this process too, so the figure includes them — and
//! checks Telegram's limits held: no call refused, at most one call per
//! second to the chat.
//!
//! `cargo bench -p prognos-notifiers --bench delivery`

#[path = "../tests/support/telegram_peer.rs"]
mod telegram_peer;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use prognos_notifiers::alert::{AlertInfo, Eta, Explanation, ForecastPoint, Status};
use prognos_notifiers::channel::telegram::TelegramConfig;
use prognos_notifiers::channel::webhook::WebhookConfig;
use prognos_notifiers::config::{NotifierConfig, Receiver, Target};
use prognos_notifiers::message::RenderOptions;
use prognos_notifiers::notifier::{Notifier, NotifierMetrics};
use prognos_notifiers::retry::Backoff;
use prognos_notifiers::route::Route;
use prognos_notifiers::store::NotifyStore;

const ALERTS: usize = 1000;
const SERVICES: usize = 10;
const GOAL_CPU_MS_PER_ALERT: f64 = 1.0;

/// CPU time of the whole process (all threads), from /proc/self/stat.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let ticks: u64 = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse::<u64>().ok())
        .sum();
    Duration::from_millis(ticks * 10)
}

fn alert(i: usize, now: i64) -> AlertInfo {
    let service = format!("svc-{:02}", i % SERVICES);
    let labels = [
        ("alertname", "QueueBacklogSoon".to_string()),
        ("service", service),
        ("queue", format!("q-{i:04}")),
        ("severity", "warning".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let history = (0..144)
        .map(|k| {
            (
                now - (144 - k) * 300,
                500.0 + k as f64 * 3.0 + (k as f64 * 0.4).sin() * 20.0,
            )
        })
        .collect();
    let forecast = (1..=72)
        .map(|k| ForecastPoint {
            t: now + k * 300,
            mean: 930.0 + k as f64 * 3.0,
            lower: 900.0 + k as f64 * 2.0,
            upper: 960.0 + k as f64 * 4.0,
        })
        .collect();
    AlertInfo {
        rule: "queues/QueueBacklogSoon".into(),
        labels,
        annotations: [(
            "summary".to_string(),
            format!("Queue q-{i:04} reaches 1k messages in ~3h"),
        )]
        .into(),
        status: Status::Firing,
        starts_at: now,
        ends_at: None,
        value: 930.0,
        generator_url: "http://127.0.0.1:9464/api/v1/alerts".into(),
        explanation: Some(Explanation {
            condition: "time_to_threshold".into(),
            expr: "rabbitmq_queue_messages_ready".into(),
            current: Some(930.0),
            expected: Some(925.0),
            band: Some((900.0, 950.0)),
            level: Some(0.95),
            threshold: Some(1000.0),
            eta: Some(Eta {
                seconds: 10_800.0,
                earliest: None,
                latest: None,
                text: "in ~3h (between 2h and 5h)".into(),
            }),
            anomaly_score: Some(0.2),
            dashboard_url: None,
            history,
            forecast,
        }),
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(run());
}

async fn run() {
    let tg = telegram_peer::TelegramPeer::start().await;
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let hook = axum::Router::new().fallback(move || {
        h.fetch_add(1, Ordering::Relaxed);
        async { "ok" }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook_url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, hook).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(NotifyStore::open(&dir.path().join("notify.redb")).unwrap());
    let mut telegram = TelegramConfig::new(tg.token.clone(), 4242);
    telegram.api_url = tg.url();
    telegram.min_interval = Duration::from_secs(1);
    let config = NotifierConfig {
        external_url: "http://127.0.0.1:9464".into(),
        receivers: vec![Receiver {
            name: "ops".into(),
            send_resolved: true,
            targets: vec![
                Target::Telegram(telegram),
                Target::Webhook(WebhookConfig {
                    url: hook_url.parse().unwrap(),
                    bearer_token: None,
                    max_alerts: 0,
                    timeout: Duration::from_secs(10),
                    headers: Vec::new(),
                }),
            ],
        }],
        route: Route {
            receiver: "ops".into(),
            matchers: Vec::new(),
            group_by: vec!["service".into()],
            group_wait: 0,
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
    let alerts: Vec<AlertInfo> = (0..ALERTS).map(|i| alert(i, now)).collect();

    let (cpu0, wall0) = (cpu_time(), Instant::now());
    notifier.ingest(&alerts, now).await;
    let (cpu_ingest, wall_ingest) = (cpu_time() - cpu0, wall0.elapsed());
    let (queued, _) = notifier.flush(now).await;
    let mut rounds = 0;
    while !notifier.outbox().await.unwrap().is_empty() {
        notifier.deliver_due(now + rounds).await;
        rounds += 1;
        assert!(rounds < 600, "the outbox does not drain");
    }
    let (cpu, wall) = (cpu_time() - cpu0, wall0.elapsed());

    let calls = tg.messages();
    let refused = tg.calls().len() - calls.len();
    let per_alert = cpu.as_secs_f64() * 1e3 / ALERTS as f64;
    println!(
        "delivery: {ALERTS} alerts in {SERVICES} groups -> {queued} outbox entries, {} Telegram calls ({refused} refused), {} webhook calls",
        calls.len(),
        hits.load(Ordering::Relaxed)
    );
    println!(
        "delivery: CPU {:.0} ms in all = {per_alert:.3} ms per alert (goal <= {GOAL_CPU_MS_PER_ALERT} ms); ingest {:.0} ms CPU / {:.0} ms wall; wall {:.1} s (Telegram paced at 1 call/s per chat)",
        cpu.as_secs_f64() * 1e3,
        cpu_ingest.as_secs_f64() * 1e3,
        wall_ingest.as_secs_f64() * 1e3,
        wall.as_secs_f64()
    );
    assert_eq!(refused, 0, "Telegram refused calls");
    assert!(
        wall.as_secs_f64() >= (calls.len().saturating_sub(1)) as f64 * 0.99,
        "faster than one call per second to the chat"
    );
}
