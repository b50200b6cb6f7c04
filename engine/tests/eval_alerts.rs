//! `prognos eval alerts` on the shipped configuration (`prognos.yml`,
//! `rules/` as shipped) and the labelled suite in `engine/suite/`:
//! - the demo's headline incident, a stalled MES consumer, is alerted
//!   before the queue passes its threshold, once, with no false alert;
//! - the same scenario backfilled into a real Prometheus and replayed by
//!   `prognos backtest` gives the same alerts as the in-memory replay, so
//!   the suite measures what `prognos run` does against Prometheus.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use prognos::cli::BacktestArgs;
use prognos::commands::eval_alerts::replay;
use prognos::commands::run::load_config;
use serde_json::Value;
use support::openmetrics::openmetrics_gauges;
use support::prometheus::Prometheus;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_path_buf()
}

#[test]
fn the_stalled_consumer_is_alerted_in_time_once_and_nothing_else_fires() {
    let out = Command::new(env!("CARGO_BIN_EXE_prognos"))
        .current_dir(repo())
        .args(["eval", "alerts", "--scenario", "mes-queue-stall", "--json"])
        .output()
        .expect("running prognos");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let s = &v["scenarios"][0];
    assert_eq!(s["name"], "mes-queue-stall");
    let i = &s["incidents"][0];
    assert_eq!(i["alert"], "MesQueueBacklogSoon");
    let onset = i["onset"].as_i64().expect("onset");
    let fired = i["fired_at"].as_i64().expect("the backlog alert fired");
    let static_at = i["static_at"].as_i64().expect("the static alert fired");
    // The queue passes 10,000 ten minutes after onset; the static alert
    // fires five minutes later.
    assert!(fired < onset + 600, "fired {} s after onset", fired - onset);
    assert!(i["in_time"].as_bool().unwrap_or(false), "{i}");
    assert!(static_at - fired >= 300, "{i}");
    assert_eq!(i["notifications"], 1, "{i}");
    assert_eq!(s["false_alerts"], Value::Array(vec![]), "{s}");
    assert_eq!(s["errors"], Value::Array(vec![]), "{s}");
}

/// (alert name, labels, time) of every firing transition of a backtest report.
fn backtest_firings(report: &str) -> BTreeSet<(String, String, i64)> {
    report
        .lines()
        .filter_map(|l| {
            let mut parts = l.split("  ").map(str::trim).filter(|p| !p.is_empty());
            let at = parts.next()?;
            if parts.next()? != "firing" {
                return None;
            }
            let rule = parts.next()?;
            let labels = parts.next()?;
            let at = chrono_free_parse(at)?;
            let name = rule.rsplit('/').next()?.to_string();
            Some((name, labels.to_string(), at))
        })
        .collect()
}

/// `2025-03-17T10:08:00Z` → Unix seconds, through prognos's own parser.
fn chrono_free_parse(s: &str) -> Option<i64> {
    prognos::timestamp::parse(s).ok().map(|t| t.0)
}

/// A raw series: metric name, other labels, samples.
type Raw = (String, Vec<(String, String)>, Vec<(i64, f64)>);

#[test]
fn backtest_on_prometheus_gives_the_alerts_of_the_in_memory_replay() {
    let repo = repo();
    let spec = prognos::suite::load_file(&repo.join("engine/suite/03-mes-queue-stall.yml"))
        .expect("the scenario");
    let mut scenario = spec.generate();
    let onset = scenario.incidents[0].onset;
    // Half an hour before the stall to twenty minutes into it.
    scenario.evaluate_from = onset - 30 * 60;
    scenario.end = onset + 20 * 60;
    let config = load_config(&repo.join("prognos.yml")).expect("the shipped config");
    let memory = replay(&config, &scenario, false).expect("in-memory replay");
    let expected: BTreeSet<(String, String, i64)> = memory
        .transitions
        .iter()
        .filter(|t| t.state == "firing")
        .map(|t| {
            let labels: Vec<String> = t.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
            (t.alert.clone(), format!("{{{}}}", labels.join(", ")), t.at)
        })
        .collect();
    assert!(
        expected.iter().any(|e| e.0 == "MesQueueBacklogSoon"),
        "the in-memory replay fired {expected:?}"
    );

    // The same raw samples, up to the replay's end, in a real Prometheus.
    let series: Vec<Raw> = scenario
        .series
        .iter()
        .map(|(labels, samples)| {
            let name = labels.get("__name__").cloned().unwrap_or_default();
            let rest = labels
                .iter()
                .filter(|(k, _)| k.as_str() != "__name__")
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let samples = samples
                .iter()
                .copied()
                .filter(|s| s.0 <= scenario.end)
                .collect();
            (name, rest, samples)
        })
        .collect();
    let label_refs: Vec<Vec<(&str, &str)>> = series
        .iter()
        .map(|(_, l, _)| l.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect())
        .collect();
    let gauges: Vec<_> = series
        .iter()
        .zip(&label_refs)
        .map(|((name, _, samples), labels)| (name.as_str(), labels.as_slice(), samples.clone()))
        .collect();
    let prometheus = Prometheus::start(&openmetrics_gauges(&gauges), &[]);
    let dir = tempfile::tempdir().expect("temp dir");
    let config_path = dir.path().join("prognos.yml");
    std::fs::write(
        &config_path,
        format!(
            "global:\n  prometheus: {{url: '{}'}}\n  state_dir: {}\nrule_files:\n  - {}/rules/*.yml\n",
            prometheus.url,
            dir.path().join("state").display(),
            repo.display()
        ),
    )
    .expect("config");
    let report = prognos::commands::backtest(&BacktestArgs {
        config: config_path,
        from: scenario.evaluate_from.to_string(),
        to: scenario.end.to_string(),
        every: Some("1m".into()),
    })
    .expect("backtest");
    assert!(!report.contains("last error"), "{report}");
    let got = backtest_firings(&report);
    assert_eq!(
        got, expected,
        "backtest on Prometheus:\n{report}\nin-memory replay: {expected:?}"
    );
}
