//! `prognos backtest`: replays the rules over history held in Prometheus and
//! reports when each alert would have fired and resolved. Each slot is
//! evaluated exactly as the live engine would have at that time — the
//! queries end at the slot — with alert state kept in a scratch store.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};

use crate::alert::state::{Alert, Labels};
use crate::alert::{AlertSink, AlertStatus, AlertStore};
use crate::cli::BacktestArgs;
use crate::commands::run::{client_for, load_config};
use crate::exposition::Metrics;
use crate::scheduler::{Engine, RuleRuntime};
use crate::{progress, timestamp};
use prognos_notifiers::alert::{AlertInfo, Explanation, Status};

/// Keeps the events of a replay with the slot they happened at (also the
/// sink of `eval alerts`).
#[derive(Default)]
pub(crate) struct Timeline {
    /// The slot being evaluated.
    pub(crate) now: Mutex<i64>,
    /// Every event sent, with its slot.
    pub(crate) events: Mutex<Vec<(i64, AlertInfo)>>,
}

impl AlertSink for Timeline {
    fn send(&self, alerts: &[AlertInfo]) {
        let now = *self.now.lock().unwrap_or_else(|e| e.into_inner());
        let mut v = self.events.lock().unwrap_or_else(|e| e.into_inner());
        v.extend(alerts.iter().map(|a| (now, a.clone())));
    }
}

/// Replays `args.config`'s rules from `args.from` to `args.to`; returns the report.
pub fn backtest(args: &BacktestArgs) -> Result<String> {
    let from = timestamp::parse(&args.from)
        .map_err(anyhow::Error::msg)
        .context("--from")?
        .0;
    let to = timestamp::parse(&args.to)
        .map_err(anyhow::Error::msg)
        .context("--to")?
        .0;
    if to <= from {
        bail!("--to must be after --from");
    }
    let config = load_config(&args.config)?;
    let every = args
        .every
        .as_deref()
        .map(crate::config::parse_duration)
        .transpose()
        .map_err(anyhow::Error::msg)
        .context("--every")?
        .unwrap_or(std::time::Duration::from_secs(300))
        .as_secs()
        .max(1) as i64;
    let scratch = tempfile_dir()?;
    let store = Arc::new(AlertStore::open(&scratch.join("backtest.redb"))?);
    let client = client_for(&config)?;
    let timeline = Arc::new(Timeline::default());
    let shard = config.shard;
    let engine = Engine::new(
        config,
        shard,
        client,
        store,
        timeline.clone(),
        Arc::new(Metrics::new()),
    )?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let slots = ((to - from) / every + 1) as u64;
    let bar = progress::bar(slots, "replaying");
    // Pending transitions are not events (nothing is sent): read them from
    // the alert state after each slot.
    let mut pending: Vec<(i64, String, Labels, f64)> = Vec::new();
    runtime.block_on(async {
        let mut open: BTreeSet<(String, String)> = BTreeSet::new();
        let mut t = from;
        while t <= to {
            *timeline.now.lock().unwrap_or_else(|e| e.into_inner()) = t;
            engine.evaluate_all(t).await;
            for r in &engine.rules {
                let rt = r.lock().await;
                for a in newly_pending(&rt, &mut open) {
                    pending.push((t, rt.id.clone(), a.labels.clone(), a.value));
                }
            }
            bar.inc(1);
            t += every;
        }
    });
    bar.finish_and_clear();
    let _ = std::fs::remove_dir_all(&scratch);
    let mut out = String::new();
    let errors = runtime.block_on(last_errors(&engine));
    let events = timeline.events.lock().unwrap_or_else(|e| e.into_inner());
    out.push_str(&format!(
        "backtest {} → {} every {every}s: {} events\n",
        timestamp::format(from, timestamp::TimestampStyle::Rfc3339),
        timestamp::format(to, timestamp::TimestampStyle::Rfc3339),
        events.len()
    ));
    let mut lines: Vec<(i64, u8, String)> = Vec::new();
    for (t, rule, labels, value) in &pending {
        lines.push((*t, 0, line(*t, "pending ", rule, labels, *value, None)));
    }
    for (t, a) in events.iter() {
        let (what, order) = match a.status {
            Status::Firing => ("firing  ", 1),
            Status::Resolved => ("resolved", 2),
        };
        let why = a.explanation.as_ref().map(why_it_fired);
        lines.push((*t, order, line(*t, what, &a.rule, &a.labels, a.value, why)));
    }
    lines.sort_by_key(|l| (l.0, l.1));
    for (_, _, l) in lines {
        out.push_str(&l);
    }
    for e in errors {
        out.push_str(&format!("last error: {e}\n"));
    }
    Ok(out)
}

/// The alerts of `rt` that went pending since the previous call. `open`
/// holds the pending alerts seen then, as (rule id, label key), and is
/// updated for this rule.
pub(crate) fn newly_pending<'a>(
    rt: &'a RuleRuntime,
    open: &mut BTreeSet<(String, String)>,
) -> Vec<&'a Alert> {
    let now: Vec<(String, &Alert)> = rt
        .alerts
        .active()
        .filter(|a| a.status == AlertStatus::Pending)
        .map(|a| (crate::alert::state::key(&a.labels), a))
        .collect();
    let fresh = now
        .iter()
        .filter(|(k, _)| !open.contains(&(rt.id.clone(), k.clone())))
        .map(|(_, a)| *a)
        .collect();
    open.retain(|(id, _)| *id != rt.id);
    open.extend(now.into_iter().map(|(k, _)| (rt.id.clone(), k)));
    fresh
}

/// Every rule's last evaluation error, as `rule: error`.
pub(crate) async fn last_errors(engine: &Engine) -> Vec<String> {
    let mut errors = Vec::new();
    for r in &engine.rules {
        let rt = r.lock().await;
        if let Some(e) = &rt.last_error {
            errors.push(format!("{}: {e}", rt.id));
        }
    }
    errors
}

/// One line of the report: time, transition, rule, labels (without
/// `alertname`), value, and for a firing alert why it fired.
fn line(
    t: i64,
    what: &str,
    rule: &str,
    labels: &Labels,
    value: f64,
    why: Option<String>,
) -> String {
    let labels: Vec<String> = labels
        .iter()
        .filter(|(k, _)| k.as_str() != "alertname")
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect();
    let mut l = format!(
        "{}  {what}  {rule}  {{{}}}  value {value}",
        timestamp::format(t, timestamp::TimestampStyle::Rfc3339),
        labels.join(", ")
    );
    if let Some(why) = why {
        l.push_str("  why: ");
        l.push_str(&why);
    }
    l.push('\n');
    l
}

/// What the model saw when an alert fired: the ETA, the expected value and
/// band, the anomaly score.
fn why_it_fired(e: &Explanation) -> String {
    let mut parts = Vec::new();
    if let Some(eta) = &e.eta {
        let threshold = e.threshold.map_or(String::new(), |t| format!(" {t}"));
        parts.push(format!("crosses{threshold} {}", eta.text));
    }
    if let (Some(x), Some((lo, hi))) = (e.expected, e.band) {
        let level = e
            .level
            .map_or(String::new(), |l| format!(" {:.0}%", l * 100.0));
        parts.push(format!("expected {x:.4} ({lo:.4} to {hi:.4}{level})"));
    }
    if let Some(v) = e.current {
        parts.push(format!("actual {v:.4}"));
    }
    if let Some(score) = e.anomaly_score {
        parts.push(format!("score {score:.3}"));
    }
    parts.join(", ")
}

fn tempfile_dir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("prognos-backtest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
