//! How long the web UI takes to answer with 1,000 series modelled: the
//! overview (`/`), a series' page (`/series/{id}`, history and all), a
//! rule's page listing all its series, and the alerts page.
//!
//! An engine is built as `prognos run` builds it, over an in-memory source
//! of 1,000 disk series (three days at a 5-minute step, a tenth of them
//! filling fast enough to fire a time-to-threshold rule), evaluated once,
//! and served on loopback by the server `prognos run` uses. Each page is
//! then fetched `PROGNOS_BENCH_ROUNDS` times (default 50) one after the
//! other; the times are from request to the last byte of the answer, so
//! they bound the server's time from above.
//!
//! Run: `cargo bench -p prognos --bench ui` (`PROGNOS_BENCH_SERIES` changes
//! the 1,000).

use std::sync::Arc;
use std::time::{Duration, Instant};

use prognos::alert::{AlertStore, LogSink};
use prognos::config::Shard;
use prognos::exposition::Metrics;
use prognos::modelled::Labels;
use prognos::scheduler::Engine;
use prognos::server::{self, ServerSettings, ServerState};
use prognos::source::memory::MemorySource;

const STEP: i64 = 300;
const DAY: i64 = 86_400;
const DEFAULT_SERIES: usize = 1_000;
const DEFAULT_ROUNDS: usize = 50;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `n` disks: most steady with a daily wiggle, every tenth filling towards
/// its 100 GB limit within a day or two.
fn disks(n: usize, end: i64) -> Vec<(Labels, Vec<(i64, f64)>)> {
    (0..n)
        .map(|i| {
            let labels: Labels = [
                ("__name__".to_string(), "disk_used_bytes".to_string()),
                ("instance".to_string(), format!("host{i:04}")),
                ("service".to_string(), format!("svc{}", i % 7)),
            ]
            .into_iter()
            .collect();
            let fill = if i % 10 == 0 { 25e9 } else { 0.2e9 };
            let samples = (0..=(3 * DAY / STEP))
                .map(|k| {
                    let t = end - 3 * DAY + k * STEP;
                    let days = (t - end + 3 * DAY) as f64 / DAY as f64;
                    let wiggle = 1e9 * (std::f64::consts::TAU * days).sin();
                    let noise = ((k as usize * 7919 + i * 31) % 17) as f64 * 2e7;
                    (t, 30e9 + fill * days + wiggle + noise)
                })
                .collect();
            (labels, samples)
        })
        .collect()
}

fn config(dir: &std::path::Path) -> prognos::config::Config {
    std::fs::write(
        dir.join("rules.yml"),
        "groups:\n  - name: storage\n    interval: 1m\n    rules:\n      - alert: DiskFullSoon\n        expr: disk_used_bytes\n        history: 3d\n        step: 5m\n        horizons: [1h, 1d]\n        condition:\n          time_to_threshold: {threshold: 100e9, direction: above, less_than: 2d}\n        for: 0s\n        annotations:\n          summary: \"{{ $labels.instance }} fills up\"\n",
    )
    .unwrap();
    let main = dir.join("prognos.yml");
    std::fs::write(
        &main,
        "global:\n  prometheus:\n    url: http://127.0.0.1:9\n  state_dir: .state\nrule_files: [rules.yml]\n",
    )
    .unwrap();
    prognos::config::load(&main).unwrap_or_else(|e| panic!("{e}"))
}

fn quantile(sorted: &[Duration], q: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

#[tokio::main]
async fn main() {
    let n = env_usize("PROGNOS_BENCH_SERIES", DEFAULT_SERIES);
    let rounds = env_usize("PROGNOS_BENCH_ROUNDS", DEFAULT_ROUNDS).max(1);
    let dir = tempfile::tempdir().unwrap();
    let end = 1_800_000_000 / STEP * STEP;
    let store = Arc::new(AlertStore::open(&dir.path().join("state.redb")).unwrap());
    let engine = Engine::new(
        config(dir.path()),
        Shard::default(),
        MemorySource::new(disks(n, end), end),
        store,
        Arc::new(LogSink),
        Arc::new(Metrics::new()),
    )
    .unwrap();
    let t = Instant::now();
    engine.evaluate_all(end).await;
    let view = engine.rules[0].view();
    eprintln!(
        "{} series modelled in {:.1} s, {} alerts",
        view.series.len(),
        t.elapsed().as_secs_f64(),
        view.alerts.len()
    );
    assert_eq!(view.series.len(), n, "every series is modelled");
    // A firing series' page has the most to draw.
    let firing = view
        .series
        .iter()
        .find(|s| s.holds)
        .unwrap_or(&view.series[0])
        .id
        .clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state = ServerState::new(Arc::new(engine));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(server::serve(
        listener,
        server::app(state),
        ServerSettings::default(),
        async {
            let _ = stopped.await;
        },
    ));
    let http = reqwest::Client::new();
    println!("page                          | bytes   | p50 ms | p95 ms | max ms");
    println!("------------------------------|---------|--------|--------|-------");
    for (name, path) in [
        ("overview /", "/".to_string()),
        ("series /series/{id}", format!("/series/{firing}")),
        (
            "rule (1,000 rows)",
            "/rules/storage/DiskFullSoon".to_string(),
        ),
        ("alerts /alerts", "/alerts".to_string()),
    ] {
        let mut times = Vec::with_capacity(rounds);
        let mut bytes = 0;
        for _ in 0..rounds {
            let t = Instant::now();
            let r = http.get(format!("{base}{path}")).send().await.unwrap();
            assert!(r.status().is_success(), "{path}: {}", r.status());
            bytes = r.bytes().await.unwrap().len();
            times.push(t.elapsed());
        }
        times.sort();
        println!(
            "{name:<30}| {bytes:>7} | {:>6.1} | {:>6.1} | {:>6.1}",
            quantile(&times, 0.5),
            quantile(&times, 0.95),
            quantile(&times, 1.0)
        );
    }
    let _ = stop.send(());
    let _ = served.await;
}
