//! Macro benchmark of the live engine against a real Prometheus: the figures
//! of the issue "Figures to reach, benchmark against the real Prometheus".
//!
//! Debian's Prometheus is started on loopback (the integration-test harness)
//! with a week of 5-minute history for `PROGNOS_BENCH_SERIES` gauges
//! (default 10,000) `bench_metric{shard, instance}`, in 100 shards, each with
//! a daily season, a weekend dip, a trend and noise. An engine with one rule
//! per shard (`auto` model, 1 h horizon, anomaly condition) then runs:
//!
//! 1. the first evaluation: full fetch and fit of every series (goal ≤ 60 s);
//! 2. steady rounds: one new 5-minute point per series, and 15-second ticks
//!    with no new point; process CPU as % of one core per 15 s (goal ≤ 10%);
//! 3. resident memory growth per modelled series (goal ≤ 64 KiB).
//!
//! Run: `cargo bench -p prognos --bench live`; a quick check:
//! `PROGNOS_BENCH_SERIES=200 cargo bench -p prognos --bench live`.
//!
//! The history is written to a file and backfilled with promtool's
//! `--max-block-duration` (one pass per 162 h block instead of one per 2 h
//! block, which is what the harness's in-memory backfill would do), into the
//! data directory of a harness Prometheus that is stopped and restarted.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use prognos::alert::{AlertSink, AlertStore};
use prognos::commands::run::{client_for, load_config};
use prognos::config::Shard;
use prognos::evaluate::evaluate;
use prognos::exposition::Metrics;
use prognos::modelled::{FitSpec, ModelledSeries, live_detector_config};
use prognos::scheduler::{BAND_LEVEL, Engine, Health, REFIT_EVERY_SECS, align};
use prognos_models::detector::Detector;
use prognos_models::forecast::{Level, ModelKind};
use prognos_models::synthetic::{Shape, series};
use prognos_notifiers::alert::AlertInfo;
use support::{Prometheus, free_port, now_secs};

const STEP: i64 = 300;
const WEEK: i64 = 7 * 86_400;
/// Rules, one per value of the `shard` label.
const SHARDS: usize = 100;
/// Steady rounds with a new point each (the backfill extends this far past
/// the first evaluation).
const NEW_STEP_ROUNDS: i64 = 12;
/// 15-second ticks without a new point measured after each new-step round.
const QUIET_TICKS_PER_STEP: i64 = 3;
const TICK_SECS: i64 = 15;
const DEFAULT_SERIES: usize = 10_000;
/// promtool's block length: the 162 h compaction range, so a week of history
/// is parsed in two or three passes.
const MAX_BLOCK_DURATION: &str = "200h";
/// How long to wait for Prometheus to go idle after loading the blocks.
const PROMETHEUS_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

const GOAL_FIT_SECS: f64 = 60.0;
const GOAL_CORE_PERCENT: f64 = 10.0;
const GOAL_BYTES_PER_SERIES: f64 = 64.0 * 1024.0;

/// A sink that only counts events.
#[derive(Debug, Default)]
struct CountingSink(AtomicUsize);

impl AlertSink for CountingSink {
    fn send(&self, alerts: &[AlertInfo]) {
        self.0.fetch_add(alerts.len(), Ordering::Relaxed);
    }
}

/// CPU time (user + system) of a process, in seconds, from `/proc/PID/stat`.
fn cpu_secs(pid: &str) -> f64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / clock_ticks()
}

fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// Resident memory of this process, in bytes (`VmRSS`).
fn rss_bytes() -> f64 {
    fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb * 1024.0)
}

/// Busy and total jiffies of the whole machine (`/proc/stat`).
fn machine_jiffies() -> (f64, f64) {
    let stat = fs::read_to_string("/proc/stat").unwrap_or_default();
    let cpu: Vec<f64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: f64 = cpu.iter().sum();
    let idle = cpu.get(3).unwrap_or(&0.0) + cpu.get(4).unwrap_or(&0.0);
    (total - idle, total)
}

fn loadavg() -> String {
    fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The pid of our child Prometheus (the harness keeps its `Child` private).
fn prometheus_pid() -> Option<String> {
    let me = std::process::id().to_string();
    fs::read_dir("/proc").ok()?.flatten().find_map(|entry| {
        let pid = entry.file_name().into_string().ok()?;
        let stat = fs::read_to_string(entry.path().join("stat")).ok()?;
        let (head, rest) = stat.rsplit_once(") ")?;
        let ppid = rest.split_whitespace().nth(1)?;
        (head.ends_with("(prometheus") && ppid == me).then_some(pid)
    })
}

/// Waits until Prometheus uses under 5% of a core for three seconds running
/// (after a restart it loads blocks and may compact them).
fn wait_until_idle(pid: &str) -> Duration {
    let started = Instant::now();
    let mut quiet = 0;
    let mut last = cpu_secs(pid);
    while quiet < 3 && started.elapsed() < PROMETHEUS_IDLE_TIMEOUT {
        std::thread::sleep(Duration::from_secs(1));
        let now = cpu_secs(pid);
        quiet = if now - last < 0.05 { quiet + 1 } else { 0 };
        last = now;
    }
    started.elapsed()
}

/// Series `i`'s shape: levels, amplitudes, trends and noise vary by series.
fn shape(i: usize) -> Shape {
    Shape {
        step_secs: STEP,
        level: 50.0 + (i % 97) as f64 * 10.0,
        daily: 5.0 + (i % 13) as f64 * 3.0,
        weekend: 0.3,
        trend_per_day: (i % 7) as f64 * 0.5 - 1.5,
        noise: 1.0 + (i % 5) as f64,
    }
}

/// Writes OpenMetrics for `n` series of points from `start` to `end`
/// inclusive; returns the number of samples.
fn write_history(path: &Path, n: usize, start: i64, end: i64) -> usize {
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path).expect("history file"));
    let points = ((end - start) / STEP + 1) as usize;
    writeln!(out, "# TYPE bench_metric gauge").unwrap();
    let mut line = String::new();
    for i in 0..n {
        let labels = format!("{{shard=\"{}\",instance=\"host{i:05}\"}}", i % SHARDS);
        let values = series(&shape(i), start, points, i as u64 + 1);
        for (k, v) in values.into_iter().enumerate() {
            line.clear();
            let t = start + k as i64 * STEP;
            writeln!(line, "bench_metric{labels} {v:.3} {t}").unwrap();
            out.write_all(line.as_bytes()).unwrap();
        }
    }
    writeln!(out, "# EOF").unwrap();
    out.flush().unwrap();
    n * points
}

fn backfill(history: &Path, data: &Path) {
    let output = Command::new("/usr/bin/promtool")
        .args(["tsdb", "create-blocks-from", "openmetrics", "--quiet"])
        .arg(format!("--max-block-duration={MAX_BLOCK_DURATION}"))
        .arg(history)
        .arg(data)
        .output()
        .expect("running promtool (scripts/install-deps installs it)");
    assert!(
        output.status.success(),
        "promtool failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn write_config(dir: &Path, prom_url: &str) -> PathBuf {
    fs::create_dir_all(dir.join("rules")).unwrap();
    let mut rules = String::from("groups:\n  - name: bench\n    rules:\n");
    for k in 0..SHARDS {
        write!(
            rules,
            "      - alert: BenchShard{k:02}\n        expr: bench_metric{{shard=\"{k}\"}}\n        history: 7d\n        step: 5m\n        model: auto\n        horizons: [1h]\n        condition:\n          anomaly: {{score_above: 0.99}}\n"
        )
        .unwrap();
    }
    fs::write(dir.join("rules/bench.yml"), rules).unwrap();
    let config = dir.join("prognos.yml");
    fs::write(
        &config,
        format!(
            "global:\n  prometheus:\n    url: {prom_url}\n    timeout: 60s\n  evaluation_interval: 15s\n  state_dir: state\n  listen: 127.0.0.1:{}\nrule_files:\n  - rules/*.yml\n",
            free_port()
        ),
    )
    .unwrap();
    config
}

/// Sum and count of a histogram family over all its label sets.
fn histogram_totals(text: &str, name: &str) -> (f64, f64) {
    let value = |suffix: &str| -> f64 {
        let prefix = format!("{name}_{suffix}");
        text.lines()
            .filter(|l| {
                l.strip_prefix(&prefix)
                    .is_some_and(|r| r.starts_with('{') || r.starts_with(' '))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    (value("sum"), value("count"))
}

/// Sum of a counter family (`name_total`) over all its label sets.
fn counter_total(text: &str, name: &str) -> f64 {
    let prefix = format!("{name}_total");
    text.lines()
        .filter(|l| l.starts_with(&prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>()
        + 0.0 // an empty sum is -0.0
}

/// What one measured stretch cost.
#[derive(Debug, Clone, Copy, Default)]
struct Cost {
    wall: f64,
    cpu: f64,
    prometheus_cpu: f64,
    machine_busy: f64,
    query: f64,
    queries: f64,
    fit: f64,
    fits: f64,
}

async fn measure(engine: &Engine, prom_pid: &str, times: &[i64]) -> Cost {
    let before_text = engine.metrics.encode();
    let (q0, qn0) = histogram_totals(&before_text, "prognos_query_duration_seconds");
    let (f0, fn0) = histogram_totals(&before_text, "prognos_fit_duration_seconds");
    let (busy0, total0) = machine_jiffies();
    let (cpu0, prom0) = (cpu_secs("self"), cpu_secs(prom_pid));
    let started = Instant::now();
    for &t in times {
        engine.evaluate_all(t).await;
    }
    let wall = started.elapsed().as_secs_f64();
    let (cpu1, prom1) = (cpu_secs("self"), cpu_secs(prom_pid));
    let (busy1, total1) = machine_jiffies();
    let after_text = engine.metrics.encode();
    let (q1, qn1) = histogram_totals(&after_text, "prognos_query_duration_seconds");
    let (f1, fn1) = histogram_totals(&after_text, "prognos_fit_duration_seconds");
    let cores = std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64);
    Cost {
        wall,
        cpu: cpu1 - cpu0,
        prometheus_cpu: prom1 - prom0,
        // Machine-wide busy time in core-seconds over the stretch.
        machine_busy: if total1 > total0 {
            (busy1 - busy0) / (total1 - total0) * wall * cores
        } else {
            0.0
        },
        query: q1 - q0,
        queries: qn1 - qn0,
        fit: f1 - f0,
        fits: fn1 - fn0,
    }
}

fn verdict(ok: bool, miss: String) -> String {
    if ok { "met".to_string() } else { miss }
}

fn main() {
    // `cargo bench` passes `--bench`; no other arguments are taken.
    let n: usize = std::env::var("PROGNOS_BENCH_SERIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_SERIES)
        .max(1);
    let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
    println!("prognos live benchmark: {n} series in {SHARDS} rules, {cores} cores");
    println!("load average at start: {}", loadavg());

    // History: a week before the first evaluation plus the steady rounds'
    // new points, all in the past.
    let last = align(now_secs(), STEP) - STEP;
    let t0 = last - NEW_STEP_ROUNDS * STEP;
    let start = align(t0 - WEEK, STEP) - STEP;
    let work = tempfile::Builder::new()
        .prefix("prognos-bench-live-")
        .tempdir()
        .expect("temporary directory");
    let history = work.path().join("history.om");
    let clock = Instant::now();
    let samples = write_history(&history, n, start, last);
    let size = fs::metadata(&history).map_or(0, |m| m.len());
    println!(
        "history: {samples} samples, {:.0} MB of OpenMetrics written in {:.1} s",
        size as f64 / 1e6,
        clock.elapsed().as_secs_f64()
    );

    let mut prom = Prometheus::start("", &[]);
    prom.stop();
    let clock = Instant::now();
    backfill(&history, &prom.data_dir());
    println!("promtool backfill: {:.1} s", clock.elapsed().as_secs_f64());
    fs::remove_file(&history).ok();
    let clock = Instant::now();
    prom.restart();
    let prom_pid = prometheus_pid().expect("finding the Prometheus child process");
    println!(
        "Prometheus ready in {:.1} s; idle after {:.1} s more (pid {prom_pid})",
        clock.elapsed().as_secs_f64(),
        wait_until_idle(&prom_pid).as_secs_f64()
    );

    let config = write_config(work.path(), &prom.url);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let cfg = load_config(&config).expect("benchmark config loads");
    fs::create_dir_all(&cfg.state_dir).unwrap();
    let store = Arc::new(AlertStore::open(&cfg.state_dir.join("state.redb")).unwrap());
    let client = client_for(&cfg).unwrap();
    let sink = Arc::new(CountingSink::default());
    let engine = Arc::new(
        Engine::new(
            cfg.clone(),
            Shard { index: 0, count: 1 },
            client.clone(),
            store,
            sink.clone(),
            Arc::new(Metrics::new()),
        )
        .unwrap(),
    );

    // 1. First evaluation: fetch and fit everything.
    println!("load average before the fit: {}", loadavg());
    let rss_before = rss_bytes();
    let fit = runtime.block_on(measure(&engine, &prom_pid, &[t0]));
    let rss_after_fit = rss_bytes();
    let (modelled, sizes, models, unhealthy) = runtime.block_on(async {
        let mut modelled = 0usize;
        let mut sizes = 0usize;
        let mut models: BTreeMap<&'static str, usize> = BTreeMap::new();
        let mut unhealthy = Vec::new();
        for r in &engine.rules {
            let rt = r.lock().await;
            modelled += rt.series.len();
            for s in rt.series.values() {
                sizes += s.size_bytes();
                *models.entry(s.model_name()).or_default() += 1;
            }
            if rt.health != Health::Ok {
                unhealthy.push(format!("{}: {:?}", rt.id, rt.last_error));
            }
        }
        (modelled, sizes, models, unhealthy)
    });
    assert!(unhealthy.is_empty(), "rules failed: {unhealthy:?}");

    // 2. Steady state: a new point, then ticks without one.
    let mut new_step = Cost::default();
    let mut quiet = Cost::default();
    let add = |sum: &mut Cost, c: Cost| {
        sum.wall += c.wall;
        sum.cpu += c.cpu;
        sum.prometheus_cpu += c.prometheus_cpu;
        sum.machine_busy += c.machine_busy;
        sum.query += c.query;
        sum.queries += c.queries;
        sum.fit += c.fit;
        sum.fits += c.fits;
    };
    let mut worst_new_step = 0.0f64;
    println!("load average before the steady rounds: {}", loadavg());
    for k in 1..=NEW_STEP_ROUNDS {
        let at = t0 + k * STEP;
        let c = runtime.block_on(measure(&engine, &prom_pid, &[at]));
        worst_new_step = worst_new_step.max(c.cpu);
        add(&mut new_step, c);
        let ticks: Vec<i64> = (1..=QUIET_TICKS_PER_STEP)
            .map(|j| at + j * TICK_SECS)
            .collect();
        add(
            &mut quiet,
            runtime.block_on(measure(&engine, &prom_pid, &ticks)),
        );
    }
    let rss_after_steady = rss_bytes();
    let new_rounds = NEW_STEP_ROUNDS as f64;
    let quiet_rounds = (NEW_STEP_ROUNDS * QUIET_TICKS_PER_STEP) as f64;
    let new_cpu = new_step.cpu / new_rounds;
    let quiet_cpu = quiet.cpu / quiet_rounds;
    let ticks_per_step = (STEP / TICK_SECS) as f64;
    // Per 5-minute step: one tick with a new point, the others without.
    let cycle_cpu = (new_cpu + (ticks_per_step - 1.0) * quiet_cpu) / ticks_per_step;
    let refit_cpu = fit.cpu / REFIT_EVERY_SECS as f64 * TICK_SECS as f64;
    let pct = |cpu: f64| cpu / TICK_SECS as f64 * 100.0;
    let events = sink.0.load(Ordering::Relaxed);
    let text = engine.metrics.encode();
    let errors = counter_total(&text, "prognos_errors");

    // 3. The HTTP API while another engine fits every series from scratch
    //    (all cores busy) and this one keeps ticking.
    println!("load average before the API phase: {}", loadavg());
    let api = runtime.block_on(api_under_fit(
        engine.clone(),
        &cfg,
        &client,
        &work.path().join("other-state"),
        last,
    ));

    // 4. A rough profile of one rule, outside the measured rounds.
    let profile = runtime.block_on(profile(&client, &prom.url, t0));

    let scale = DEFAULT_SERIES as f64 / n as f64;
    let growth = rss_after_fit - rss_before;
    let per_series = growth / modelled.max(1) as f64;
    println!();
    println!("== Results ({modelled} series modelled of {n}; models chosen: {models:?}) ==");
    println!(
        "machine load during the fit: {:.2} cores busy of {cores} (prognos {:.2}, Prometheus {:.2}, other {:.2})",
        fit.machine_busy / fit.wall,
        fit.cpu / fit.wall,
        fit.prometheus_cpu / fit.wall,
        ((fit.machine_busy - fit.cpu - fit.prometheus_cpu) / fit.wall).max(0.0)
    );
    println!("| figure | goal | measured | verdict |");
    println!("| --- | --- | --- | --- |");
    let fit_10k = fit.wall * scale;
    println!(
        "| first evaluation, fetch + fit of all series | ≤ {GOAL_FIT_SECS:.0} s for 10,000 | {:.1} s wall{} (prognos CPU {:.1} s, Prometheus CPU {:.1} s; query wall {:.1} s in {:.0} queries, fit {:.1} s summed over {:.0} fits on {cores} threads) | {} |",
        fit.wall,
        if n == DEFAULT_SERIES {
            String::new()
        } else {
            format!(", ×{scale:.0} = {fit_10k:.1} s extrapolated to 10,000")
        },
        fit.cpu,
        fit.prometheus_cpu,
        fit.query,
        fit.queries,
        fit.fit,
        fit.fits,
        verdict(
            fit_10k <= GOAL_FIT_SECS,
            format!("missed by {:.1} s", fit_10k - GOAL_FIT_SECS)
        )
    );
    println!(
        "| steady round with a new point (mean of {NEW_STEP_ROUNDS}) | — | {:.3} s CPU = {:.2}% of a core per 15 s (worst {:.2}%); wall {:.3} s; query wall {:.3} s; Prometheus CPU {:.3} s | |",
        new_cpu,
        pct(new_cpu),
        pct(worst_new_step),
        new_step.wall / new_rounds,
        new_step.query / new_rounds,
        new_step.prometheus_cpu / new_rounds,
    );
    println!(
        "| steady tick without a new point (mean of {quiet_rounds:.0}) | — | {:.4} s CPU = {:.2}% of a core; wall {:.4} s | |",
        quiet_cpu,
        pct(quiet_cpu),
        quiet.wall / quiet_rounds
    );
    let steady_pct = pct(cycle_cpu + refit_cpu) * scale;
    println!(
        "| steady state, every 15 s: mean over a 5-min step + 6-hourly refit amortised ({:.3}%) | ≤ {GOAL_CORE_PERCENT:.0}% of one core | {:.2}%{} (worst tick {:.2}%{}) | {} |",
        pct(refit_cpu),
        pct(cycle_cpu + refit_cpu),
        if n == DEFAULT_SERIES {
            String::new()
        } else {
            format!(", ×{scale:.0} = {steady_pct:.2}% extrapolated")
        },
        pct(worst_new_step),
        if n == DEFAULT_SERIES {
            String::new()
        } else {
            format!(", ×{scale:.0} = {:.2}%", pct(worst_new_step) * scale)
        },
        verdict(
            steady_pct <= GOAL_CORE_PERCENT,
            format!("missed by {:.2} points", steady_pct - GOAL_CORE_PERCENT)
        )
    );
    println!(
        "| resident memory per modelled series | ≤ 64 KiB | {:.1} KiB (RSS {:.0} → {:.0} MB after the fit, {:.0} MB after the steady rounds); size_bytes mean {:.1} KiB | {} |",
        per_series / 1024.0,
        rss_before / 1e6,
        rss_after_fit / 1e6,
        rss_after_steady / 1e6,
        sizes as f64 / modelled.max(1) as f64 / 1024.0,
        verdict(
            per_series <= GOAL_BYTES_PER_SERIES,
            format!(
                "missed by {:.1} KiB",
                (per_series - GOAL_BYTES_PER_SERIES) / 1024.0
            )
        )
    );
    println!(
        "steady rounds: {:.0} refits, {:.0} queries; alert events {events}; errors counted {errors:.0}",
        new_step.fits + quiet.fits,
        new_step.queries + quiet.queries
    );
    println!("{api}");
    println!("{profile}");
    println!("load average at the end: {}", loadavg());
    println!(
        "reproduce: cargo bench -p prognos --bench live   (PROGNOS_BENCH_SERIES={n}; default {DEFAULT_SERIES})"
    );
}

/// Goal for the API's p99 latency while a fit runs.
const GOAL_API_P99_MS: f64 = 50.0;

/// Serves `engine` over HTTP on loopback and requests its endpoints one
/// after the other — rules, alerts, ready, one series' forecast (without
/// history: that part is Prometheus's time), the series list, `/metrics` —
/// while a second engine on the same rules fits every series from scratch
/// and `engine` evaluates a tick every second. Returns a table of latencies
/// per endpoint.
async fn api_under_fit(
    engine: Arc<Engine>,
    cfg: &prognos::config::Config,
    client: &prognos::prom::PromClient,
    other_state: &Path,
    at: i64,
) -> String {
    use prognos::server::{self, ServerSettings, ServerState};
    fs::create_dir_all(other_state).unwrap();
    let other = Arc::new(
        Engine::new(
            cfg.clone(),
            Shard { index: 0, count: 1 },
            client.clone(),
            Arc::new(AlertStore::open(&other_state.join("state.redb")).unwrap()),
            Arc::new(CountingSink::default()),
            Arc::new(Metrics::new()),
        )
        .unwrap(),
    );
    let state = Arc::new(ServerState {
        engine: tokio::sync::RwLock::new(engine.clone()),
        reload: None,
        notify: None,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let served = tokio::spawn(server::serve(
        listener,
        server::app(state),
        ServerSettings::default(),
        async move {
            let _ = stop_rx.await;
        },
    ));
    let forecast_id = engine
        .rules
        .iter()
        .find_map(|r| r.view().series.first().map(|s| s.id.clone()))
        .expect("a modelled series");
    let paths = [
        "/api/v1/rules".to_string(),
        "/api/v1/alerts".to_string(),
        "/-/ready".to_string(),
        format!("/api/v1/series/{forecast_id}/forecast?history=0"),
        "/api/v1/series".to_string(),
        "/metrics".to_string(),
    ];
    let http = reqwest::Client::new();
    let fit_started = Instant::now();
    let fitting = tokio::spawn({
        let other = other.clone();
        async move { other.evaluate_all(at).await }
    });
    let ticking = tokio::spawn({
        let engine = engine.clone();
        async move {
            for k in 1.. {
                engine.evaluate_all(at + k).await;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    });
    let mut latencies: BTreeMap<usize, Vec<f64>> = BTreeMap::new();
    let mut bytes: BTreeMap<usize, usize> = BTreeMap::new();
    let mut i = 0usize;
    while !fitting.is_finished() {
        let k = i % paths.len();
        let t = Instant::now();
        let r = http
            .get(format!("http://{addr}{}", paths[k]))
            .send()
            .await
            .expect("the API answers");
        assert!(r.status().is_success(), "{}: {}", paths[k], r.status());
        let body = r.bytes().await.expect("a body");
        latencies
            .entry(k)
            .or_default()
            .push(t.elapsed().as_secs_f64() * 1e3);
        bytes.insert(k, body.len());
        i += 1;
    }
    let fit_secs = fit_started.elapsed().as_secs_f64();
    fitting.await.unwrap();
    ticking.abort();
    let _ = stop_tx.send(());
    let _ = served.await;
    let fitted: usize = other.rules.iter().map(|r| r.view().series.len()).sum();
    let quantile = |v: &mut Vec<f64>, q: f64| {
        v.sort_by(f64::total_cmp);
        v[((v.len() - 1) as f64 * q).round() as usize]
    };
    let mut out = format!(
        "API while another engine fits {fitted} series ({fit_secs:.1} s) and this one ticks every second:\n\
         | endpoint | requests | body | p50 | p99 | max | p99 ≤ {GOAL_API_P99_MS:.0} ms |\n| --- | --- | --- | --- | --- | --- | --- |\n"
    );
    let mut all = Vec::new();
    for (k, mut v) in latencies {
        all.extend_from_slice(&v);
        let (p50, p99) = (quantile(&mut v, 0.5), quantile(&mut v, 0.99));
        let max = v.last().copied().unwrap_or(0.0);
        writeln!(
            out,
            "| `{}` | {} | {:.0} KiB | {p50:.1} ms | {p99:.1} ms | {max:.1} ms | {} |",
            paths[k].split('?').next().unwrap_or(""),
            v.len(),
            bytes.get(&k).copied().unwrap_or(0) as f64 / 1024.0,
            verdict(p99 <= GOAL_API_P99_MS, "missed".to_string())
        )
        .unwrap();
    }
    let (p50, p99) = (quantile(&mut all, 0.5), quantile(&mut all, 0.99));
    write!(
        out,
        "| all | {} | | {p50:.1} ms | {p99:.1} ms | {:.1} ms | {} |",
        all.len(),
        all.last().copied().unwrap_or(0.0),
        verdict(p99 <= GOAL_API_P99_MS, "missed".to_string())
    )
    .unwrap();
    out
}

/// Times the parts of one rule's work on its own, single-threaded: the
/// query (HTTP and Prometheus vs JSON parsing), fitting (model vs detector
/// learning), absorbing one point and the verdict.
async fn profile(client: &prognos::prom::PromClient, url: &str, t0: i64) -> String {
    let expr = "bench_metric{shard=\"0\"}";
    let (start, end) = (align(t0 - WEEK, STEP), t0);
    let mut out = String::from("profile of rule 0 (full history), single-threaded:\n");

    let clock = Instant::now();
    let full = client
        .query_range(expr, start, end, STEP)
        .await
        .expect("profile query")
        .data;
    let client_secs = clock.elapsed().as_secs_f64();

    let form = [
        ("query", expr.to_string()),
        ("start", start.to_string()),
        ("end", end.to_string()),
        ("step", STEP.to_string()),
    ];
    let http = reqwest::Client::new();
    let clock = Instant::now();
    let body = http
        .post(format!("{url}/api/v1/query_range"))
        .form(&form)
        .send()
        .await
        .expect("raw query")
        .bytes()
        .await
        .expect("raw body");
    let http_secs = clock.elapsed().as_secs_f64();
    let clock = Instant::now();
    let value: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    let json_secs = clock.elapsed().as_secs_f64();
    drop(value);
    writeln!(
        out,
        "  query: PromClient::query_range {:.1} ms for {} series; raw HTTP {:.1} ms for {:.1} MB; serde_json::Value parse of that body {:.1} ms",
        client_secs * 1e3,
        full.len(),
        http_secs * 1e3,
        body.len() as f64 / 1e6,
        json_secs * 1e3
    )
    .unwrap();

    let level = Level::try_from(BAND_LEVEL).unwrap();
    let (mut fit_secs, mut detector_secs, mut absorb_secs) = (0.0, 0.0, 0.0);
    let mut fitted = Vec::new();
    for s in &full {
        let (history, next) = s.samples.split_at(s.samples.len() - 1);
        let clock = Instant::now();
        let spec = FitSpec::new(STEP, ModelKind::Auto, 12);
        let m = ModelledSeries::fit(s.labels.clone(), history, &spec, t0).expect("profile fit");
        fit_secs += clock.elapsed().as_secs_f64();
        let clock = Instant::now();
        let mut d = Detector::new(live_detector_config());
        for &(t, v) in history {
            d.update(t, v);
        }
        detector_secs += clock.elapsed().as_secs_f64();
        fitted.push((m, next[0]));
    }
    for (m, next) in &mut fitted {
        let clock = Instant::now();
        m.absorb(&[*next], level);
        absorb_secs += clock.elapsed().as_secs_f64();
    }
    let cfg_rule = {
        // The verdict needs a rule: the benchmark's first one.
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), url);
        load_config(&config).unwrap().groups[0].rules[0].clone()
    };
    let clock = Instant::now();
    for (m, _) in &fitted {
        std::hint::black_box(evaluate(&cfg_rule, m, level));
    }
    let verdict_secs = clock.elapsed().as_secs_f64();
    let per = |secs: f64| secs / fitted.len().max(1) as f64 * 1e3;
    writeln!(
        out,
        "  per series: ModelledSeries::fit {:.2} ms (of which detector learning {:.2} ms); absorb one point {:.3} ms; evaluate (verdict) {:.3} ms",
        per(fit_secs),
        per(detector_secs),
        per(absorb_secs),
        per(verdict_secs)
    )
    .unwrap();
    out
}
