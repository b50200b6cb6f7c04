//! `prognos eval alerts`: replays the configured rules (the shipped
//! `rules/` through `prognos.yml`) over the labelled incident suite and
//! reports, per incident, whether and when the expected alert went pending
//! and fired, its lead over the classic static alert, and every alert that
//! no incident explains (a false alert).
//!
//! The replay runs the engine `prognos run` runs — the same scheduler,
//! models, conditions and alert state machine — reading from a
//! [`MemorySource`] instead of Prometheus, one evaluation per group interval.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use prognos_models::threshold::humanize_seconds;
use prognos_notifiers::alert::Status;
use serde::Serialize;

use super::backtest::{Timeline, last_errors, newly_pending};
use crate::alert::AlertStore;
use crate::cli::EvalAlertsArgs;
use crate::commands::run::load_config;
use crate::config::Shard;
use crate::exposition::Metrics;
use crate::scheduler::Engine;
use crate::source::memory::{MAX_STEPS, MemorySource};
use crate::suite::{self, Scenario, Truth};

/// After an incident ends, alerts of its series within this long are still
/// its own (a resolved-then-late firing is not a false alert of another).
pub const AFTER_END_SECS: i64 = 3600;

/// An abrupt incident counts as caught in time if it fires this soon after onset.
pub const ABRUPT_WITHIN_SECS: i64 = 600;

/// One alert transition seen in a replay.
#[derive(Debug, Clone, Serialize)]
pub struct Seen {
    /// Unix seconds.
    pub at: i64,
    /// `pending`, `firing` or `resolved`.
    pub state: &'static str,
    /// The alert's name.
    pub alert: String,
    /// Its labels, `alertname` left out.
    pub labels: BTreeMap<String, String>,
    /// `$value` at the transition.
    pub value: f64,
}

/// One series' evaluations during a replay.
#[derive(Debug, Clone, Serialize)]
pub struct SeriesTimeline {
    /// The series' labels.
    pub labels: BTreeMap<String, String>,
    /// One point per evaluation, in time order.
    pub points: Vec<TimelinePoint>,
}

/// What one evaluation saw of a series: what `prognos run` exports for it
/// (`prognos_expected*`, `prognos_anomaly_score`, `prognos_time_to_threshold_seconds`)
/// and the alert's state after it.
#[derive(Debug, Clone, Serialize)]
pub struct TimelinePoint {
    /// Unix seconds.
    pub at: i64,
    /// The series' latest value.
    pub value: f64,
    /// The model's expectation for it and the band (lower, upper), once fitted.
    pub expected: Option<(f64, f64, f64)>,
    /// The anomaly score of the latest point.
    pub score: f64,
    /// Seconds to the threshold by the central forecast, and the range.
    pub eta_secs: Option<i64>,
    pub eta_earliest_secs: Option<i64>,
    pub eta_latest_secs: Option<i64>,
    /// Whether the rule's condition held.
    pub holds: bool,
    /// `inactive`, `pending` or `firing`.
    pub state: &'static str,
}

/// How one incident was caught.
#[derive(Debug, Clone, Serialize)]
pub struct IncidentResult {
    pub scenario: String,
    pub kind: String,
    pub alert: String,
    pub labels: BTreeMap<String, String>,
    pub onset: i64,
    pub end: i64,
    /// When the classic static alert would have fired.
    pub static_at: Option<i64>,
    /// When the rule's condition truly held.
    pub holds_from: Option<i64>,
    pub pending_at: Option<i64>,
    pub fired_at: Option<i64>,
    /// Seconds the alert fired before the static one (negative: after).
    pub lead_secs: Option<i64>,
    /// Seconds from onset to firing.
    pub delay_secs: Option<i64>,
    /// Seconds from when the condition truly held to firing.
    pub delay_from_holds_secs: Option<i64>,
    /// Firing notifications of the expected alert for this incident.
    pub notifications: usize,
    pub abrupt: bool,
    /// The static alert's threshold (the number its comparison is against).
    pub static_threshold: Option<f64>,
    /// The static alert's `for`, seconds: it fires this long after the breach.
    pub static_for_secs: i64,
    /// The prognos rule's threshold, for a forecast or time-to-threshold rule.
    pub rule_threshold: Option<f64>,
    /// Which way the series crosses it: `above` or `below`.
    pub rule_direction: Option<&'static str>,
    /// With `--timelines`: every evaluation of the rule on the incident's
    /// series, one entry per matching series.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeline: Option<Vec<SeriesTimeline>>,
    /// Whether it meets the bar: fired; abrupt within 10 min of onset;
    /// growth within an hour of the condition truly holding, and ahead of
    /// the static alert by half the time from onset to its breach when the
    /// rule's look-ahead reaches that far.
    pub in_time: bool,
}

/// An alert no incident explains.
#[derive(Debug, Clone, Serialize)]
pub struct FalseAlert {
    pub scenario: String,
    pub at: i64,
    pub alert: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// One scenario's replay.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioResult {
    pub name: String,
    pub description: String,
    pub traps: Vec<String>,
    pub evaluated_from: i64,
    pub evaluated_to: i64,
    pub incidents: Vec<IncidentResult>,
    pub false_alerts: Vec<FalseAlert>,
    pub transitions: Vec<Seen>,
    /// Rules whose last evaluation failed, with the error.
    pub errors: Vec<String>,
}

/// The whole suite's replay.
#[derive(Debug, Clone, Serialize)]
pub struct SuiteResult {
    pub scenarios: Vec<ScenarioResult>,
    /// Scenarios that could not be replayed, with the error: the others are
    /// still reported, and the command then exits non-zero.
    pub failed: Vec<FailedScenario>,
}

/// A scenario whose replay failed.
#[derive(Debug, Clone, Serialize)]
pub struct FailedScenario {
    pub name: String,
    pub error: String,
}

/// Runs `args`: the suite folder (or one scenario file) under the configuration.
pub fn eval_alerts(args: &EvalAlertsArgs) -> Result<SuiteResult> {
    let config = load_config(&args.config)?;
    let specs = if args.suite.is_file() {
        vec![suite::load_file(&args.suite)?]
    } else {
        suite::load_dir(&args.suite)?
    };
    let specs: Vec<_> = specs
        .iter()
        .filter(|s| args.scenario.is_empty() || args.scenario.contains(&s.name))
        .collect();
    let jobs = args.jobs.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get().min(16)),
        usize::from,
    );
    // Each scenario replays on its own thread with its own runtime and
    // store; the results are reported in the suite's order.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<(usize, Result<ScenarioResult>)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..jobs.min(specs.len()))
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(spec) = specs.get(i) else { break done };
                        let scenario = spec.generate();
                        tracing::info!(scenario = %scenario.name, "Replaying.");
                        done.push((i, replay(&config, &scenario, args.timelines)));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    results.sort_by_key(|(i, _)| *i);
    let mut scenarios = Vec::new();
    let mut failed = Vec::new();
    for (i, r) in results {
        match r {
            Ok(result) => scenarios.push(result),
            Err(e) => {
                tracing::error!(scenario = %specs[i].name, "Replay failed: {e:#}");
                failed.push(FailedScenario {
                    name: specs[i].name.clone(),
                    error: format!("{e:#}"),
                });
            }
        }
    }
    if scenarios.is_empty() && failed.is_empty() {
        bail!(
            "no scenario to replay in {} (names asked: {:?})",
            args.suite.display(),
            args.scenario
        );
    }
    Ok(SuiteResult { scenarios, failed })
}

/// Replays `config`'s rules over `scenario`; with `timelines`, records
/// every evaluation of each incident's rule on its series.
pub fn replay(
    config: &crate::config::Config,
    scenario: &Scenario,
    timelines: bool,
) -> Result<ScenarioResult> {
    let source = Arc::new(MemorySource::new(scenario.series.clone(), scenario.end));
    // The static alerts first: one the in-memory source cannot evaluate
    // fails the scenario before minutes of replay, not after.
    let static_ats = scenario
        .incidents
        .iter()
        .map(|truth| match &truth.static_expr {
            Some(expr) => static_fire(&source, expr, truth, scenario),
            None => Ok(None),
        })
        .collect::<Result<Vec<_>>>()?;
    let scratch = std::env::temp_dir().join(format!(
        "prognos-eval-alerts-{}-{}",
        std::process::id(),
        scenario.name
    ));
    std::fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    let store = Arc::new(AlertStore::open(&scratch.join("state.redb"))?);
    let timeline = Arc::new(Timeline::default());
    let engine = Engine::new(
        config.clone(),
        Shard::default(),
        source.clone(),
        store,
        timeline.clone(),
        Arc::new(Metrics::new()),
    )?;
    let intervals: BTreeMap<String, i64> = config
        .groups
        .iter()
        .map(|g| (g.name.clone(), g.interval.as_secs().max(1) as i64))
        .collect();
    let tick = intervals.values().copied().min().unwrap_or(60);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut pending: Vec<Seen> = Vec::new();
    let mut recorded: Vec<BTreeMap<String, SeriesTimeline>> =
        vec![BTreeMap::new(); scenario.incidents.len()];
    let mut open_pending: BTreeSet<(String, String)> = BTreeSet::new();
    let from = scenario.evaluate_from.div_euclid(tick) * tick;
    runtime.block_on(async {
        let mut t = from;
        while t <= scenario.end {
            *timeline.now.lock().unwrap_or_else(|e| e.into_inner()) = t;
            for r in &engine.rules {
                if t % intervals.get(&r.group).copied().unwrap_or(tick) != 0 {
                    continue;
                }
                engine.evaluate_rule(r, t).await;
                let rt = r.lock().await;
                for a in newly_pending(&rt, &mut open_pending) {
                    pending.push(seen(t, "pending", &a.labels, a.value));
                }
                if timelines {
                    for (truth, recorded) in scenario.incidents.iter().zip(&mut recorded) {
                        if truth.alert == rt.rule.name {
                            record(&rt, truth, t, recorded);
                        }
                    }
                }
            }
            t += tick;
        }
    });
    let _ = std::fs::remove_dir_all(&scratch);
    let errors = runtime.block_on(last_errors(&engine));
    let events = std::mem::take(&mut *timeline.events.lock().unwrap_or_else(|e| e.into_inner()));
    let mut transitions: Vec<Seen> = events
        .iter()
        .map(|(t, a)| {
            let state = match a.status {
                Status::Firing => "firing",
                Status::Resolved => "resolved",
            };
            seen(*t, state, &a.labels, a.value)
        })
        .chain(pending)
        .collect();
    transitions.sort_by(|a, b| (a.at, &a.alert).cmp(&(b.at, &b.alert)));

    let mut incidents = Vec::new();
    for ((truth, static_at), recorded) in scenario.incidents.iter().zip(static_ats).zip(recorded) {
        let mut r = judge(scenario, truth, static_at, &transitions);
        r.static_threshold = truth.static_expr.as_deref().and_then(compared_to);
        let crossing = config
            .groups
            .iter()
            .flat_map(|g| &g.rules)
            .find(|rule| rule.name == truth.alert)
            .and_then(|rule| match &rule.condition {
                crate::config::Condition::Forecast {
                    threshold,
                    direction,
                    ..
                }
                | crate::config::Condition::TimeToThreshold {
                    threshold,
                    direction,
                    ..
                } => Some((*threshold, *direction)),
                _ => None,
            });
        r.rule_threshold = crossing.map(|(t, _)| t);
        r.rule_direction = crossing.map(|(_, d)| match d {
            prognos_models::threshold::Direction::Above => "above",
            prognos_models::threshold::Direction::Below => "below",
        });
        r.timeline = timelines.then(|| recorded.into_values().collect());
        incidents.push(r);
    }
    let false_alerts = transitions
        .iter()
        .filter(|s| s.state == "firing")
        .filter(|s| !scenario.incidents.iter().any(|i| explains(i, s)))
        .map(|s| FalseAlert {
            scenario: scenario.name.clone(),
            at: s.at,
            alert: s.alert.clone(),
            labels: s.labels.clone(),
            value: s.value,
        })
        .collect();
    Ok(ScenarioResult {
        name: scenario.name.clone(),
        description: scenario.description.clone(),
        traps: scenario.traps.clone(),
        evaluated_from: from,
        evaluated_to: scenario.end,
        incidents,
        false_alerts,
        transitions,
        errors,
    })
}

/// Records what this evaluation of `rt` saw of the series of `truth`.
fn record(
    rt: &crate::scheduler::RuleRuntime,
    truth: &Truth,
    at: i64,
    into: &mut BTreeMap<String, SeriesTimeline>,
) {
    for (key, s) in &rt.series {
        if !truth.labels.iter().all(|(k, v)| s.labels.get(k) == Some(v)) {
            continue;
        }
        let verdict = rt.verdicts.get(key);
        // Its alert: the one carrying every label of the series.
        let state = rt
            .alerts
            .active()
            .filter(|a| {
                s.labels
                    .iter()
                    .filter(|(k, _)| k.as_str() != "__name__")
                    .all(|(k, v)| a.labels.get(k) == Some(v))
            })
            .map(|a| a.status)
            .max_by_key(|status| *status == crate::alert::AlertStatus::Firing);
        let state = match state {
            Some(crate::alert::AlertStatus::Firing) => "firing",
            Some(crate::alert::AlertStatus::Pending) => "pending",
            _ => "inactive",
        };
        let t = into.entry(key.clone()).or_insert_with(|| SeriesTimeline {
            labels: s
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            points: Vec::new(),
        });
        t.points.push(TimelinePoint {
            at,
            value: s.last_value,
            expected: s.expected,
            score: s.score,
            eta_secs: verdict.and_then(|v| v.eta_secs),
            eta_earliest_secs: verdict.and_then(|v| v.eta_earliest_secs),
            eta_latest_secs: verdict.and_then(|v| v.eta_latest_secs),
            holds: verdict.is_some_and(|v| v.holds),
            state,
        });
    }
}

/// The number a comparison such as `sum(x) > 10000` compares against.
fn compared_to(expr: &str) -> Option<f64> {
    use promql_parser::parser::{Expr, parse};
    match parse(expr).ok()? {
        Expr::Binary(b) => match (*b.lhs, *b.rhs) {
            (_, Expr::NumberLiteral(n)) | (Expr::NumberLiteral(n), _) => Some(n.val),
            _ => None,
        },
        _ => None,
    }
}

fn seen(at: i64, state: &'static str, labels: &BTreeMap<String, String>, value: f64) -> Seen {
    let mut labels = labels.clone();
    let alert = labels.remove("alertname").unwrap_or_default();
    Seen {
        at,
        state,
        alert,
        labels,
        value,
    }
}

/// Whether `s` carries every label of the incident's identifying set.
fn matches_labels(truth: &Truth, s: &Seen) -> bool {
    truth.labels.iter().all(|(k, v)| s.labels.get(k) == Some(v))
}

/// The window in which alerts about `truth` are its own.
fn window(truth: &Truth) -> (i64, i64) {
    (truth.onset, truth.end + AFTER_END_SECS)
}

/// Whether an alert is explained by the incident: about its series, during it.
fn explains(truth: &Truth, s: &Seen) -> bool {
    let (from, to) = window(truth);
    matches_labels(truth, s) && s.at >= from && s.at <= to
}

/// When the static alert `expr` (held for `static_for`) first fires after onset.
fn static_fire(
    source: &MemorySource,
    expr: &str,
    truth: &Truth,
    scenario: &Scenario,
) -> Result<Option<i64>> {
    let step = 60;
    let from = truth.onset.div_euclid(step) * step;
    // In spans of at most MAX_STEPS evaluations, as Prometheus would need.
    let mut series: BTreeMap<BTreeMap<String, String>, Vec<(i64, f64)>> = BTreeMap::new();
    let mut a = from;
    while a <= scenario.end {
        let b = (a + (MAX_STEPS - 1) * step).min(scenario.end);
        for s in source
            .range(expr, a, b, step)
            .with_context(|| format!("the static alert of {} in {}", truth.kind, scenario.name))?
        {
            series.entry(s.labels).or_default().extend(s.samples);
        }
        a = b + step;
    }
    let mut first: Option<i64> = None;
    for samples in series.into_values() {
        // A comparison returns the points where it holds: find a run of `for`.
        let mut run_start: Option<i64> = None;
        let mut prev: Option<i64> = None;
        for &(t, _) in &samples {
            if prev.is_none_or(|p| t - p > step) {
                run_start = Some(t);
            }
            prev = Some(t);
            if let Some(r) = run_start
                && t - r >= truth.static_for
            {
                first = Some(first.map_or(t, |f| f.min(t)));
                break;
            }
        }
    }
    Ok(first)
}

fn judge(
    scenario: &Scenario,
    truth: &Truth,
    static_at: Option<i64>,
    transitions: &[Seen],
) -> IncidentResult {
    let mine: Vec<&Seen> = transitions
        .iter()
        .filter(|s| s.alert == truth.alert && explains(truth, s))
        .collect();
    let fired_at = mine.iter().find(|s| s.state == "firing").map(|s| s.at);
    let pending_at = mine
        .iter()
        .filter(|s| s.state == "pending" && fired_at.is_none_or(|f| s.at <= f))
        .map(|s| s.at)
        .next();
    let notifications = mine.iter().filter(|s| s.state == "firing").count();
    let lead_secs = fired_at.zip(static_at).map(|(f, s)| s - f);
    let delay_secs = fired_at.map(|f| f - truth.onset);
    let delay_from_holds_secs = fired_at.zip(truth.holds_from).map(|(f, h)| f - h);
    let in_time = match fired_at {
        None => false,
        Some(f) if truth.abrupt => f - truth.onset <= ABRUPT_WITHIN_SECS,
        Some(f) => {
            // Half the time to the static breach, where the rule's look-ahead
            // allows it: a rule that holds only 6 h before the breach cannot
            // lead by 17 h, and is held to firing soon after it holds.
            let half_lead = static_at.is_none_or(|s| {
                let half = (s - truth.onset) / 2;
                let allowed = truth.holds_from.is_none_or(|h| s - h >= half);
                !allowed || s - f >= half
            });
            let soon_after_holds = truth.holds_from.is_none_or(|h| f - h <= 3600);
            half_lead && soon_after_holds
        }
    };
    IncidentResult {
        scenario: scenario.name.clone(),
        kind: truth.kind.clone(),
        alert: truth.alert.clone(),
        labels: truth.labels.clone(),
        onset: truth.onset,
        end: truth.end,
        static_at,
        holds_from: truth.holds_from,
        pending_at,
        fired_at,
        lead_secs,
        delay_secs,
        delay_from_holds_secs,
        notifications,
        abrupt: truth.abrupt,
        static_threshold: None,
        static_for_secs: truth.static_for,
        rule_threshold: None,
        rule_direction: None,
        timeline: None,
        in_time,
    }
}

fn rel(secs: Option<i64>) -> String {
    match secs {
        None => "—".to_string(),
        Some(s) if s < 0 => format!("-{}", humanize_seconds(-s)),
        Some(s) => humanize_seconds(s),
    }
}

impl SuiteResult {
    /// Days of evaluated time over all scenarios.
    pub fn days(&self) -> f64 {
        self.scenarios
            .iter()
            .map(|s| (s.evaluated_to - s.evaluated_from) as f64 / 86_400.0)
            .sum()
    }

    /// Every incident.
    pub fn incidents(&self) -> impl Iterator<Item = &IncidentResult> {
        self.scenarios.iter().flat_map(|s| s.incidents.iter())
    }

    /// Every false alert.
    pub fn false_alerts(&self) -> impl Iterator<Item = &FalseAlert> {
        self.scenarios.iter().flat_map(|s| s.false_alerts.iter())
    }

    /// The report as a table.
    pub fn report(&self) -> String {
        let mut out = String::new();
        out.push_str(&format!(
            "{:<22} {:<18} {:<22} {:>9} {:>9} {:>9} {:>9} {:>8} {:>6}  {}\n",
            "scenario",
            "incident",
            "alert",
            "pending",
            "fired",
            "static",
            "lead",
            "vs holds",
            "notif",
            "verdict"
        ));
        for i in self.incidents() {
            let since = |t: Option<i64>| rel(t.map(|t| t - i.onset));
            let verdict = match (i.fired_at, i.in_time) {
                (None, _) => "MISSED",
                (Some(_), true) if i.notifications == 1 => "ok",
                (Some(_), true) => "ok, repeated",
                (Some(_), false) => "LATE",
            };
            out.push_str(&format!(
                "{:<22} {:<18} {:<22} {:>9} {:>9} {:>9} {:>9} {:>8} {:>6}  {}\n",
                i.scenario,
                i.kind,
                i.alert,
                since(i.pending_at),
                since(i.fired_at),
                since(i.static_at),
                rel(i.lead_secs),
                rel(i.delay_from_holds_secs),
                i.notifications,
                verdict
            ));
        }
        out.push_str("(times after onset; lead: before the static alert; vs holds: after the condition truly held)\n");
        let days = self.days();
        let mut per_rule: BTreeMap<&str, usize> = BTreeMap::new();
        for f in self.false_alerts() {
            *per_rule.entry(f.alert.as_str()).or_default() += 1;
        }
        if per_rule.is_empty() {
            out.push_str(&format!("false alerts: none in {days:.1} days evaluated\n"));
        } else {
            out.push_str(&format!("false alerts in {days:.1} days evaluated:\n"));
            for f in self.false_alerts() {
                let labels: Vec<String> =
                    f.labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
                out.push_str(&format!(
                    "  {:<22} {}  {} {{{}}} value {}\n",
                    f.scenario,
                    crate::timestamp::format(f.at, crate::timestamp::TimestampStyle::Rfc3339),
                    f.alert,
                    labels.join(", "),
                    f.value
                ));
            }
            for (rule, n) in &per_rule {
                out.push_str(&format!(
                    "  {rule}: {n} ({:.1} per week)\n",
                    *n as f64 * 7.0 / days.max(1e-9)
                ));
            }
        }
        for s in &self.scenarios {
            for e in &s.errors {
                out.push_str(&format!("error in {}: {e}\n", s.name));
            }
        }
        for f in &self.failed {
            out.push_str(&format!("FAILED {}: {}\n", f.name, f.error));
        }
        let n = self.incidents().count();
        let detected = self.incidents().filter(|i| i.fired_at.is_some()).count();
        let in_time = self.incidents().filter(|i| i.in_time).count();
        let once = self.incidents().filter(|i| i.notifications == 1).count();
        out.push_str(&format!(
            "summary: {detected}/{n} incidents alerted, {in_time}/{n} in time, {once}/{n} with one notification, {} false alerts in {days:.1} days{}\n",
            self.false_alerts().count(),
            if self.failed.is_empty() {
                String::new()
            } else {
                format!(", {} scenarios failed", self.failed.len())
            }
        ));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .expect("the workspace")
            .to_path_buf()
    }

    /// The demo's `stalled_consumer`: `mes.work` empty for days, then
    /// growing by about 1,000 messages a minute.
    fn stalled_consumer() -> Scenario {
        let onset = 1_795_000_000 / 60 * 60;
        let start = onset - 4 * 86_400;
        let end = onset + 20 * 60;
        let mut work = Vec::new();
        let mut dead = Vec::new();
        let mut t = start;
        while t <= end {
            let grown = if t > onset {
                (t - onset) as f64 / 60.0 * 1000.0
            } else {
                0.0
            };
            work.push((t, grown.round()));
            dead.push((t, 3.0));
            t += 60;
        }
        let labels = |q: &str| -> BTreeMap<String, String> {
            [
                ("__name__", "rabbitmq_queue_messages_ready"),
                ("queue", q),
                ("instance", "rabbitmq:15692"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
        };
        Scenario {
            name: "stall".into(),
            description: String::new(),
            start,
            evaluate_from: onset - 30 * 60,
            end,
            series: vec![(labels("mes.work"), work), (labels("mes.dead"), dead)],
            incidents: vec![Truth {
                kind: "consumer_stall".into(),
                alert: "MesQueueBacklogSoon".into(),
                labels: [("queue".to_string(), "mes.work".to_string())].into(),
                onset,
                end,
                static_expr: Some(
                    r#"sum by (queue) (rabbitmq_queue_messages_ready{queue="mes.work"}) > 10000"#
                        .into(),
                ),
                static_for: 300,
                holds_from: Some(onset),
                abrupt: false,
            }],
            traps: Vec::new(),
        }
    }

    #[test]
    fn a_static_alert_is_found_past_one_query_s_worth_of_steps() {
        let mut scenario = stalled_consumer();
        let onset = scenario.incidents[0].onset;
        // A crossing 9 days after onset: 12,960 one-minute steps.
        let late = onset + 9 * 86_400;
        let labels = scenario.series[0].0.clone();
        let samples: Vec<(i64, f64)> = (0..=(9 * 1440 + 20))
            .map(|k| {
                let t = onset + k * 60;
                (t, if t >= late { 20_000.0 } else { 0.0 })
            })
            .collect();
        scenario.end = late + 20 * 60;
        let source = MemorySource::new(vec![(labels, samples)], scenario.end);
        let truth = &scenario.incidents[0];
        let expr = truth.static_expr.clone().expect("a static alert");
        let at = static_fire(&source, &expr, truth, &scenario).expect("evaluated");
        assert_eq!(at, Some(late + 300));
    }

    #[test]
    fn a_static_alert_the_source_cannot_evaluate_fails_the_scenario_by_name() {
        let config = load_config(&repo().join("prognos.yml")).expect("the shipped config");
        let mut scenario = stalled_consumer();
        scenario.incidents[0].static_expr =
            Some("histogram_quantile(0.9, rabbitmq_queue_messages_ready) > 1".into());
        let err = replay(&config, &scenario, false).expect_err("refused");
        let msg = format!("{err:#}");
        assert!(
            msg.contains("static alert of consumer_stall in stall"),
            "{msg}"
        );
    }

    #[test]
    fn a_stalled_consumer_fires_the_shipped_backlog_rule_before_the_queue_passes_its_threshold() {
        let config = load_config(&repo().join("prognos.yml")).expect("the shipped config");
        let scenario = stalled_consumer();
        let r = replay(&config, &scenario, true).expect("replay");
        let i = &r.incidents[0];
        println!(
            "{}",
            SuiteResult {
                scenarios: vec![r.clone()],
                failed: Vec::new(),
            }
            .report()
        );
        let fired = i.fired_at.expect("MesQueueBacklogSoon fired for mes.work");
        // The queue passes 10,000 ten minutes after onset.
        assert!(
            fired < i.onset + 600,
            "fired {}s after onset",
            fired - i.onset
        );
        assert_eq!(i.notifications, 1);
        assert!(r.false_alerts.is_empty(), "{:?}", r.false_alerts);

        // The timeline agrees with the transitions and carries the ETA.
        assert_eq!(i.static_threshold, Some(10_000.0));
        assert_eq!(i.rule_threshold, Some(10_000.0));
        assert_eq!(i.rule_direction, Some("above"));
        let timeline = i.timeline.as_ref().expect("timelines asked for");
        assert_eq!(timeline.len(), 1, "one series: mes.work");
        let points = &timeline[0].points;
        let first = |state: &str| points.iter().find(|p| p.state == state).map(|p| p.at);
        assert_eq!(first("pending"), i.pending_at);
        assert_eq!(first("firing"), i.fired_at);
        let at_fire = points
            .iter()
            .find(|p| p.at == fired)
            .expect("a point at firing");
        let eta = at_fire.eta_secs.expect("an ETA when it fires");
        assert!(eta <= 3600, "within the rule's look-ahead: {eta}");
        let (lo, hi) = (
            at_fire.eta_earliest_secs.expect("earliest"),
            at_fire.eta_latest_secs.unwrap_or(i64::MAX),
        );
        assert!(lo <= eta && eta <= hi, "{lo} <= {eta} <= {hi}");
        assert!(
            points
                .iter()
                .filter(|p| p.at < i.onset)
                .all(|p| p.state == "inactive"),
            "nothing before onset"
        );
    }
}
