//! The live engine against a real Prometheus (Debian's, started on loopback
//! with days of backfilled history): predictions on /metrics and in
//! Prometheus, a predictive disk-fill alert, restarts, outages and shards.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

use prognos::alert::{AlertSink, AlertStore};
use prognos::commands::run::{build_engine, client_for, load_config};
use prognos::config::Shard;
use prognos::exposition::Metrics;
use prognos::scheduler::{Engine, Health};
use prognos_notifiers::alert::{AlertInfo, Status};
use support::{Prometheus, free_port, now_secs, openmetrics_gauges};

const STEP: i64 = 300;
const DAY: i64 = 86_400;

/// A disk filling 10 GB a day from 50 GB with a small daily wiggle: three
/// days of history ending a minute ago.
fn disk_history(end: i64) -> Vec<(i64, f64)> {
    let start = end - 3 * DAY;
    (0..=(3 * DAY / STEP))
        .map(|k| {
            let t = start + k * STEP;
            let days = (t - start) as f64 / DAY as f64;
            let wiggle = 0.2e9 * (std::f64::consts::TAU * days).sin();
            let noise = ((k * 7919) % 17) as f64 * 1e7;
            (t, 50e9 + 10e9 * days + wiggle + noise)
        })
        .collect()
}

/// CPU of `n` instances with a daily cycle.
fn cpu_history(end: i64, n: usize) -> Vec<(String, Vec<(i64, f64)>)> {
    (0..n)
        .map(|i| {
            let start = end - 3 * DAY;
            let samples = (0..=(3 * DAY / STEP))
                .map(|k| {
                    let t = start + k * STEP;
                    let phase = (t % DAY) as f64 / DAY as f64;
                    (
                        t,
                        40.0 + 5.0 * i as f64 % 30.0
                            + 20.0 * (std::f64::consts::TAU * phase).sin()
                            + ((k as usize * 31 + i) % 7) as f64,
                    )
                })
                .collect();
            (format!("host{i:02}"), samples)
        })
        .collect()
}

fn backfill(end: i64, cpu_instances: usize) -> String {
    let disk = disk_history(end);
    let cpu = cpu_history(end, cpu_instances);
    let labels: Vec<Vec<(&str, &str)>> = cpu
        .iter()
        .map(|(h, _)| vec![("instance", h.as_str())])
        .collect();
    let mut series: Vec<support::GaugeSeries> =
        vec![("disk_used_bytes", &[("mount", "/data")][..], disk)];
    for ((_, samples), l) in cpu.iter().zip(&labels) {
        series.push(("cpu_percent", l.as_slice(), samples.clone()));
    }
    openmetrics_gauges(&series)
}

fn write_config(dir: &Path, prom_url: &str, listen_port: u16) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    std::fs::write(
        dir.join("rules/test.yml"),
        r#"groups:
  - name: storage
    rules:
      - alert: DataDiskFullSoon
        expr: disk_used_bytes
        history: 3d
        step: 5m
        model: auto
        horizons: [1h, 1d]
        condition:
          time_to_threshold: {threshold: 88e9, direction: above, less_than: 1d}
        for: 0s
        labels: {severity: warning}
        annotations:
          summary: 'Disk {{ $labels.mount }} full in {{ $eta }}'
  - name: compute
    rules:
      - alert: CpuAnomalous
        expr: cpu_percent
        history: 3d
        step: 5m
        model: auto
        horizons: [1h]
        condition:
          anomaly: {score_above: 0.99}
        for: 10m
"#,
    )
    .unwrap();
    let config = dir.join("prognos.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  prometheus:\n    url: {prom_url}\n    timeout: 10s\n  evaluation_interval: 15s\n  state_dir: state\n  listen: 127.0.0.1:{listen_port}\nrule_files:\n  - rules/*.yml\n"
        ),
    )
    .unwrap();
    config
}

/// A sink that keeps every event (a peer standing in for the notifiers).
#[derive(Default)]
struct Recorder(Mutex<Vec<AlertInfo>>);

impl AlertSink for Recorder {
    fn send(&self, alerts: &[AlertInfo]) {
        self.0.lock().unwrap().extend(alerts.iter().cloned());
    }
}

fn engine_with(config: &Path, shard: Shard, sink: Arc<Recorder>) -> Engine {
    let cfg = load_config(config).expect("config loads");
    std::fs::create_dir_all(&cfg.state_dir).unwrap();
    let file = format!("state-{}-{}.redb", shard.index, shard.count);
    let store = Arc::new(AlertStore::open(&cfg.state_dir.join(file)).unwrap());
    let client = client_for(&cfg).unwrap();
    Engine::new(cfg, shard, client, store, sink, Arc::new(Metrics::new())).unwrap()
}

fn metrics_text(engine: &Engine) -> String {
    engine.metrics.encode()
}

async fn series_keys(engine: &Engine, rule: &str) -> BTreeSet<String> {
    for r in &engine.rules {
        let rt = r.lock().await;
        if rt.id == rule {
            return rt.series.keys().cloned().collect();
        }
    }
    panic!("no rule {rule}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predicts_alerts_ahead_survives_restart_and_outage() {
    let now = now_secs();
    let end = now - 60;
    let mut prom = Prometheus::start(&backfill(end, 3), &[]);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &prom.url, free_port());
    let sink = Arc::new(Recorder::default());
    let engine = engine_with(&config, Shard { index: 0, count: 1 }, sink.clone());
    engine.evaluate_all(now).await;

    // Predictions with the series' labels plus `rule`.
    let text = metrics_text(&engine);
    for want in [
        "prognos_expected_value{mount=\"/data\",rule=\"storage/DataDiskFullSoon\"}",
        "prognos_forecast_value{mount=\"/data\",rule=\"storage/DataDiskFullSoon\",horizon=\"1d\"}",
        "prognos_time_to_threshold_seconds{mount=\"/data\",rule=\"storage/DataDiskFullSoon\"}",
        "prognos_anomaly_score{instance=\"host00\",rule=\"compute/CpuAnomalous\"}",
        "prognos_series_modelled{rule=\"compute/CpuAnomalous\"} 3",
    ] {
        assert!(text.contains(want), "missing {want} in\n{text}");
    }
    // The disk is at ~80 GB, below 88 GB: the alert fires ahead of the crossing.
    let events = sink.0.lock().unwrap().clone();
    let fired: Vec<_> = events
        .iter()
        .filter(|a| a.status == Status::Firing)
        .cloned()
        .collect();
    assert_eq!(fired.len(), 1, "{events:?}");
    let a = &fired[0];
    assert_eq!(a.labels["alertname"], "DataDiskFullSoon");
    assert_eq!(a.labels["severity"], "warning");
    assert!(
        a.annotations["summary"].starts_with("Disk /data full in ~"),
        "{:?}",
        a.annotations
    );
    // The notification explains itself: value, expectation, time to the
    // threshold, recent history and a forecast for the chart.
    let x = a
        .explanation
        .as_ref()
        .expect("a firing alert carries its explanation");
    assert_eq!(x.condition, "time_to_threshold");
    assert_eq!(x.threshold, Some(88e9));
    assert!(x.current.is_some_and(|v| v > 70e9 && v < 88e9), "{x:?}");
    assert!(x.expected.is_some() && x.band.is_some(), "{x:?}");
    assert!(
        x.eta
            .as_ref()
            .is_some_and(|e| e.seconds > 0.0 && !e.text.is_empty()),
        "{x:?}"
    );
    assert!(x.history.len() > 10, "{} history points", x.history.len());
    assert!(!x.forecast.is_empty() && x.forecast[0].t > x.history.last().unwrap().0);
    assert!(
        a.generator_url.contains("/series/") && !a.generator_url.contains("/api/"),
        "{}",
        a.generator_url
    );
    let eta_line = text
        .lines()
        .find(|l| l.starts_with("prognos_time_to_threshold_seconds{"))
        .unwrap();
    let eta: f64 = eta_line.rsplit(' ').next().unwrap().parse().unwrap();
    // 8 GB at 10 GB a day: about 19 hours.
    assert!((12.0 * 3600.0..=26.0 * 3600.0).contains(&eta), "{eta_line}");
    assert!(disk_history(end).last().unwrap().1 < 88e9);

    // A restart resumes the firing alert without notifying again.
    drop(engine);
    let sink2 = Arc::new(Recorder::default());
    let engine = engine_with(&config, Shard { index: 0, count: 1 }, sink2.clone());
    engine.evaluate_all(now + 15).await;
    assert!(
        sink2.0.lock().unwrap().is_empty(),
        "{:?}",
        sink2.0.lock().unwrap()
    );
    let active: usize = {
        let mut n = 0;
        for r in &engine.rules {
            n += r.lock().await.alerts.active().count();
        }
        n
    };
    assert_eq!(active, 1);

    // Prometheus down: the engine keeps serving and reports the error; it recovers.
    prom.stop();
    engine.evaluate_all(now + 330).await;
    let rt = engine.rules[0].lock().await;
    assert_eq!(rt.health, Health::Err);
    assert!(rt.last_error.is_some());
    drop(rt);
    let text = metrics_text(&engine);
    assert!(
        text.contains("prognos_errors_total{rule=\"storage/DataDiskFullSoon\",kind=\"connect\"}"),
        "{text}"
    );
    assert!(
        text.contains("prognos_expected_value{mount=\"/data\""),
        "predictions stay served"
    );
    prom.restart();
    engine.evaluate_all(now + 630).await;
    assert_eq!(engine.rules[0].lock().await.health, Health::Ok);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shards_model_exactly_what_one_engine_models() {
    let now = now_secs();
    let prom = Prometheus::start(&backfill(now - 60, 24), &[]);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &prom.url, free_port());
    let whole = engine_with(&config, Shard { index: 0, count: 1 }, Arc::default());
    let a = engine_with(&config, Shard { index: 0, count: 2 }, Arc::default());
    let b = engine_with(&config, Shard { index: 1, count: 2 }, Arc::default());
    for e in [&whole, &a, &b] {
        e.evaluate_all(now).await;
    }
    let rule = "compute/CpuAnomalous";
    let (all, sa, sb) = (
        series_keys(&whole, rule).await,
        series_keys(&a, rule).await,
        series_keys(&b, rule).await,
    );
    assert_eq!(all.len(), 24);
    assert!(sa.is_disjoint(&sb));
    assert_eq!(sa.union(&sb).cloned().collect::<BTreeSet<_>>(), all);
    assert!(!sa.is_empty() && !sb.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_predictions() {
    let now = now_secs();
    let port = free_port();
    let prom = Prometheus::start(&backfill(now - 60, 1), &[format!("127.0.0.1:{port}")]);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &prom.url, port);
    let cfg = load_config(&config).unwrap();
    let engine = Arc::new(build_engine(cfg, Shard { index: 0, count: 1 }).unwrap());
    engine.evaluate_all(now).await;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let app = prognos::server::app(prognos::server::ServerState::new(engine.clone()));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = client_for(&load_config(&config).unwrap()).unwrap();
    let mut found = Vec::new();
    for _ in 0..60 {
        let r = client.query("prognos_expected_value", None).await.unwrap();
        if !r.data.is_empty() {
            found = r.data;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert!(
        !found.is_empty(),
        "Prometheus never scraped prognos_expected_value"
    );
    let s = found
        .iter()
        .find(|s| s.labels.get("mount").map(String::as_str) == Some("/data"))
        .expect("the disk series");
    assert_eq!(s.labels["rule"], "storage/DataDiskFullSoon");
    assert!(s.value > 70e9 && s.value < 90e9, "{}", s.value);

    // The JSON API over the same socket.
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let get = |path: &str| {
        let (http, url) = (http.clone(), format!("{base}{path}"));
        async move {
            http.get(url)
                .send()
                .await
                .unwrap()
                .json::<serde_json::Value>()
                .await
                .unwrap()
        }
    };
    let series = get("/api/v1/series").await;
    let disk = series["data"]["series"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["labels"]["mount"] == "/data")
        .expect("the disk series is listed")
        .clone();
    // One rule's series only.
    let rule = disk["rule"].as_str().unwrap().to_string();
    let of_rule = get(&format!("/api/v1/series?rule={rule}")).await;
    let of_rule = of_rule["data"]["series"].as_array().unwrap();
    assert!(!of_rule.is_empty());
    assert!(
        of_rule.iter().all(|s| s["rule"] == rule.as_str()),
        "{of_rule:?}"
    );
    let none = get("/api/v1/series?rule=no/such").await;
    assert_eq!(none["data"]["series"].as_array().unwrap().len(), 0);
    let f = get(&format!(
        "/api/v1/series/{}/forecast?steps=12",
        disk["id"].as_str().unwrap()
    ))
    .await;
    let path = f["data"]["forecast"].as_array().unwrap();
    assert_eq!(path.len(), 12);
    for p in path {
        let (lo, y, hi) = (
            p["yhat_lower"].as_f64().unwrap(),
            p["yhat"].as_f64().unwrap(),
            p["yhat_upper"].as_f64().unwrap(),
        );
        assert!(lo <= y && y <= hi, "{p}");
    }
    let history = f["data"]["history"]
        .as_array()
        .expect("recent history from Prometheus");
    assert!(
        history.len() >= 60,
        "6 hours at 5 minutes: {}",
        history.len()
    );
    assert!(
        f["data"]["time_to_threshold"]
            .as_str()
            .unwrap()
            .starts_with('~'),
        "{f}"
    );
    let missing = http
        .get(format!("{base}/api/v1/series/nope/forecast"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let alerts = get("/api/v1/alerts").await;
    assert_eq!(
        alerts["data"]["alerts"][0]["labels"]["alertname"],
        "DataDiskFullSoon"
    );
    let rules = get("/api/v1/rules").await;
    assert!(
        rules["data"]["rules"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["health"] == "ok"),
        "{rules}"
    );
    let ready = http.get(format!("{base}/-/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
}

#[test]
fn backtest_replays_when_the_disk_alert_would_have_fired() {
    let now = now_secs();
    let prom = Prometheus::start(&backfill(now - 60, 1), &[]);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &prom.url, free_port());
    let args = prognos::cli::BacktestArgs {
        config,
        from: (now - 2 * DAY).to_string(),
        to: now.to_string(),
        every: Some("1h".to_string()),
    };
    let report = prognos::commands::backtest(&args).expect("backtest runs");
    let firing: Vec<&str> = report
        .lines()
        .filter(|l| l.contains("firing") && l.contains("DataDiskFullSoon"))
        .collect();
    assert_eq!(firing.len(), 1, "{report}");
    // The disk crosses 88 GB about 19 h after `now`; with a 1-day bound the
    // alert must fire within the last day of the replay, ahead of the crossing.
    let when = firing[0].split_whitespace().next().unwrap();
    let t = chrono::DateTime::parse_from_rfc3339(when)
        .unwrap()
        .timestamp();
    assert!(t > now - DAY && t <= now, "{report}");
    assert!(!report.contains("last error"), "{report}");
}

/// `prognos run` as a process: ready after its first evaluation, reloads
/// through an authenticated `POST /-/reload` and on SIGHUP, and keeps the
/// running rules when the new files are broken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_reloads_over_http_and_sighup_keeping_the_old_rules_on_error() {
    let now = now_secs();
    let prom = Prometheus::start(&backfill(now - 60, 2), &[]);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(dir.path(), &prom.url, port);
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret-admin-token-0123\n").unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_prognos"))
        .args([
            "run",
            "--config",
            config.to_str().unwrap(),
            "--reload-token-file",
            token.to_str().unwrap(),
        ])
        .env("RUST_LOG", "warn")
        .spawn()
        .expect("starts prognos run");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let pid = child.id();
    let _guard = Kill(std::mem::replace(
        &mut child,
        std::process::Command::new("true").spawn().unwrap(),
    ));
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..120 {
        if let Ok(r) = http.get(format!("{base}/-/ready")).send().await
            && r.status().is_success()
        {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(ready, "prognos never became ready");
    let rule_ids = || async {
        let v: serde_json::Value = http
            .get(format!("{base}/api/v1/rules"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["data"]["rules"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        rule_ids().await,
        ["storage/DataDiskFullSoon", "compute/CpuAnomalous"]
    );

    let r = http.post(format!("{base}/-/reload")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .post(format!("{base}/-/reload"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // A broken rule file: the reload is refused with the reason and the old rules stay.
    let rules = dir.path().join("rules/test.yml");
    let good = std::fs::read_to_string(&rules).unwrap();
    std::fs::write(
        &rules,
        good.replace("expr: cpu_percent", "expr: cpu_percent{"),
    )
    .unwrap();
    let r = http
        .post(format!("{base}/-/reload"))
        .bearer_auth("s3cret-admin-token-0123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("test.yml") && body.contains("PromQL"),
        "{body}"
    );
    assert_eq!(rule_ids().await.len(), 2);

    // A valid change over HTTP: one rule removed.
    let one_rule = good.split("  - name: compute").next().unwrap().to_string();
    std::fs::write(&rules, &one_rule).unwrap();
    let r = http
        .post(format!("{base}/-/reload"))
        .bearer_auth("s3cret-admin-token-0123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    assert_eq!(rule_ids().await, ["storage/DataDiskFullSoon"]);
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics
            .contains("prognos_expected_value{mount=\"/data\",rule=\"storage/DataDiskFullSoon\"}"),
        "{metrics}"
    );
    for gone in [
        "prognos_anomaly_score{instance=\"host00\",rule=\"compute/CpuAnomalous\"}",
        "prognos_series_modelled{rule=\"compute/CpuAnomalous\"}",
    ] {
        assert!(
            !metrics.contains(gone),
            "the removed rule still exports {gone}"
        );
    }

    // SIGHUP: the full file again.
    std::fs::write(&rules, &good).unwrap();
    assert!(
        std::process::Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    let mut back = false;
    for _ in 0..80 {
        if rule_ids().await.len() == 2 {
            back = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert!(back, "SIGHUP did not reload");
}

/// A rule over its series limit models the first series and counts the
/// rest; one far over it is refused with a clear error; the others run on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn series_limits_guard_cardinality_and_other_rules_keep_running() {
    let now = now_secs();
    let prom = Prometheus::start(&backfill(now - 60, 24), &[]);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &prom.url, free_port());
    std::fs::write(
        dir.path().join("rules/limits.yml"),
        r#"groups:
  - name: limits
    rules:
      - alert: SomeCpu
        expr: cpu_percent
        history: 3d
        series_limit: 5
        condition:
          anomaly: {score_above: 0.99}
      - alert: FarTooMany
        expr: cpu_percent
        history: 3d
        series_limit: 2
        condition:
          anomaly: {score_above: 0.99}
"#,
    )
    .unwrap();
    let engine = engine_with(&config, Shard { index: 0, count: 1 }, Arc::default());
    engine.evaluate_all(now).await;
    let mut by_id = std::collections::HashMap::new();
    for r in &engine.rules {
        let rt = r.lock().await;
        by_id.insert(
            rt.id.clone(),
            (rt.series.len(), rt.health, rt.last_error.clone()),
        );
    }
    assert_eq!(by_id["limits/SomeCpu"].0, 5);
    assert_eq!(by_id["limits/SomeCpu"].1, Health::Ok);
    let (n, health, err) = &by_id["limits/FarTooMany"];
    assert_eq!((*n, *health), (0, Health::Err));
    assert!(
        err.as_deref().unwrap().contains("returns 24 series"),
        "{err:?}"
    );
    assert_eq!(by_id["compute/CpuAnomalous"].0, 24);
    assert_eq!(by_id["storage/DataDiskFullSoon"].1, Health::Ok);
    let text = metrics_text(&engine);
    assert!(
        text.contains("prognos_series_limit_dropped_total{rule=\"limits/SomeCpu\"} 19"),
        "{text}"
    );
}
