//! `prognos backtest`: replays the rules over history held in Prometheus and
//! reports when each alert would have fired and resolved. Each slot is
//! evaluated exactly as the live engine would have at that time — the
//! queries end at the slot — with alert state kept in a scratch store.

use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, bail};

use crate::alert::{AlertSink, AlertStore};
use crate::cli::BacktestArgs;
use crate::commands::run::{client_for, load_config};
use crate::exposition::Metrics;
use crate::scheduler::Engine;
use crate::{progress, timestamp};
use prognos_notifiers::alert::{AlertInfo, Status};

/// Keeps the events of a replay with the slot they happened at.
#[derive(Default)]
struct Timeline {
    now: Mutex<i64>,
    events: Mutex<Vec<(i64, AlertInfo)>>,
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
    runtime.block_on(async {
        let mut t = from;
        while t <= to {
            *timeline.now.lock().unwrap_or_else(|e| e.into_inner()) = t;
            engine.evaluate_all(t).await;
            bar.inc(1);
            t += every;
        }
    });
    bar.finish_and_clear();
    let _ = std::fs::remove_dir_all(&scratch);
    let mut out = String::new();
    let mut errors = Vec::new();
    runtime.block_on(async {
        for r in &engine.rules {
            let rt = r.lock().await;
            if let Some(e) = &rt.last_error {
                errors.push(format!("{}: {e}", rt.id));
            }
        }
    });
    let events = timeline.events.lock().unwrap_or_else(|e| e.into_inner());
    out.push_str(&format!(
        "backtest {} → {} every {every}s: {} events\n",
        timestamp::format(from, timestamp::TimestampStyle::Rfc3339),
        timestamp::format(to, timestamp::TimestampStyle::Rfc3339),
        events.len()
    ));
    for (t, a) in events.iter() {
        let rule = &a.rule;
        let what = match a.status {
            Status::Firing => "firing  ",
            Status::Resolved => "resolved",
        };
        let labels: Vec<String> = a
            .labels
            .iter()
            .filter(|(k, _)| k.as_str() != "alertname")
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect();
        out.push_str(&format!(
            "{}  {what}  {rule}  {{{}}}  value {}\n",
            timestamp::format(*t, timestamp::TimestampStyle::Rfc3339),
            labels.join(", "),
            a.value
        ));
    }
    for e in errors {
        out.push_str(&format!("last error: {e}\n"));
    }
    Ok(out)
}

fn tempfile_dir() -> Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("prognos-backtest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
