//! One rule's state and the snapshot of it that readers see.
//!
//! A rule's mutable state ([`RuleRuntime`]) belongs to the task of its rule
//! group: only that task locks it, and only for in-memory work — Prometheus
//! queries and model fits run between its locked sections. After every
//! evaluation the task publishes an immutable [`RuleView`]; the HTTP API,
//! `/-/ready` and the notifier's start-up resync read views and never wait for
//! an evaluation.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use tokio::sync::{Mutex, MutexGuard, watch};

use crate::alert::{Alert, AlertEvent, AlertStatus, RuleAlerts};
use crate::config::Rule;
use crate::evaluate::SeriesVerdict;
use crate::modelled::{Labels, ModelledSeries};

/// Health of a rule's last evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Not evaluated yet.
    Unknown,
    /// The last evaluation succeeded.
    Ok,
    /// The last evaluation failed (see last_error).
    Err,
}

/// Alerts of a rule that ended (resolved, or pending and dropped) kept in
/// memory for the web UI, newest last. Not stored: a restart forgets them.
pub const PAST_ALERTS: usize = 50;

/// Everything the engine keeps for one rule, owned by its group's task.
#[derive(Debug)]
pub struct RuleRuntime {
    /// `group/alert`: the rule's id in the store, the API and logs.
    pub id: String,
    /// The group.
    pub group: String,
    /// The rule as configured.
    pub rule: Arc<Rule>,
    /// Modelled series by label key.
    pub series: HashMap<String, ModelledSeries>,
    /// Alert state.
    pub alerts: RuleAlerts,
    /// The alert state the store holds: an evaluation that changed nothing
    /// writes nothing, and one whose write failed goes back to it.
    pub(crate) saved: RuleAlerts,
    /// Last evaluation slot (Unix seconds).
    pub last_eval: Option<i64>,
    /// How long it took.
    pub last_duration: Duration,
    /// Health of the last evaluation.
    pub health: Health,
    /// Its error, if any, cut to the scheduler's `MAX_LAST_ERROR_CHARS`.
    pub last_error: Option<String>,
    /// The latest verdict per series key (for the API).
    pub verdicts: HashMap<String, SeriesVerdict>,
    /// Series dropped as vanished, by key: the timestamp of the last sample
    /// each had. A history query still returns their old samples, which
    /// must not bring them back (see the scheduler's `is_back`).
    pub dropped: HashMap<String, i64>,
    /// The latest [`PAST_ALERTS`] alerts that ended, oldest first: resolved
    /// ones with their `resolved_at`, and pending ones that never fired
    /// with `resolved_at` set to when they were dropped.
    pub past: VecDeque<Alert>,
}

impl RuleRuntime {
    /// Records the alerts that ended in an evaluation at `now`: those of
    /// `pending_before` (the pending alerts before it) that are gone, and
    /// the resolved ones among `events`.
    pub fn record_ended(&mut self, pending_before: Vec<Alert>, events: &[AlertEvent], now: i64) {
        let gone = pending_before
            .into_iter()
            .filter(|a| !self.alerts.contains(&crate::alert::state::key(&a.labels)));
        let ended: Vec<Alert> = gone
            .map(|mut a| {
                a.resolved_at = Some(now);
                a
            })
            .chain(events.iter().filter_map(|e| match e {
                AlertEvent::Resolved(a) => Some(a.clone()),
                AlertEvent::Firing(_) => None,
            }))
            .collect();
        for a in ended {
            if self.past.len() == PAST_ALERTS {
                self.past.pop_front();
            }
            self.past.push_back(a);
        }
    }

    /// The pending alerts, for [`RuleRuntime::record_ended`].
    pub fn pending(&self) -> Vec<Alert> {
        self.alerts
            .active()
            .filter(|a| a.status == AlertStatus::Pending)
            .cloned()
            .collect()
    }
}

/// A rule as the engine holds it: what never changes (id, group, rule), its
/// runtime behind a lock, and the view last published.
#[derive(Debug)]
pub struct RuleHandle {
    /// `group/alert`.
    pub id: String,
    /// The group.
    pub group: String,
    /// The rule as configured.
    pub rule: Arc<Rule>,
    /// A hash of the last set of Prometheus warnings logged for this rule
    /// (0: none yet), so a repeated set is logged once.
    pub last_warnings: AtomicU64,
    runtime: Mutex<RuleRuntime>,
    view: watch::Sender<Arc<RuleView>>,
}

impl RuleHandle {
    /// A rule not evaluated yet, with the alert state loaded from the store.
    pub fn new(group: &str, rule: Rule, alerts: RuleAlerts) -> Self {
        let id = format!("{group}/{}", rule.name);
        let rule = Arc::new(rule);
        let runtime = RuleRuntime {
            id: id.clone(),
            group: group.to_string(),
            rule: rule.clone(),
            series: HashMap::new(),
            saved: alerts.clone(),
            alerts,
            last_eval: None,
            last_duration: Duration::ZERO,
            health: Health::Unknown,
            last_error: None,
            verdicts: HashMap::new(),
            dropped: HashMap::new(),
            past: VecDeque::new(),
        };
        let (view, _) = watch::channel(Arc::new(RuleView::of(&runtime)));
        Self {
            id,
            group: group.to_string(),
            rule,
            last_warnings: AtomicU64::new(0),
            runtime: Mutex::new(runtime),
            view,
        }
    }

    /// The runtime, for its group's task (and for a reload, once the tasks
    /// have stopped). Hold it only for in-memory work.
    pub async fn lock(&self) -> MutexGuard<'_, RuleRuntime> {
        self.runtime.lock().await
    }

    /// The view last published: never waits.
    pub fn view(&self) -> Arc<RuleView> {
        self.view.borrow().clone()
    }

    /// Publishes the view of `rt` (this rule's runtime, locked by the caller).
    pub fn publish(&self, rt: &RuleRuntime) {
        self.view.send_replace(Arc::new(RuleView::of(rt)));
    }
}

/// An immutable snapshot of a rule after an evaluation.
#[derive(Debug, Clone)]
pub struct RuleView {
    /// `group/alert`.
    pub id: String,
    /// The group.
    pub group: String,
    /// The rule as configured.
    pub rule: Arc<Rule>,
    /// Health of the last evaluation.
    pub health: Health,
    /// Its error, if any.
    pub last_error: Option<String>,
    /// Last evaluation slot (Unix seconds).
    pub last_eval: Option<i64>,
    /// How long it took.
    pub last_duration: Duration,
    /// Pending and firing alerts.
    pub alerts: Vec<Alert>,
    /// Alerts that ended, newest first (see [`RuleRuntime::past`]).
    pub past: Vec<Alert>,
    /// The modelled series, by label key.
    pub series: Vec<SeriesView>,
}

/// What a snapshot tells of one modelled series.
#[derive(Debug, Clone)]
pub struct SeriesView {
    /// The series' id in the API ([`series_id`]).
    pub id: String,
    /// Its label key.
    pub key: String,
    /// Its labels.
    pub labels: Labels,
    /// The model's name.
    pub model: &'static str,
    /// Seconds between points.
    pub step: i64,
    /// Timestamp of the latest point absorbed.
    pub last_ts: i64,
    /// The latest value.
    pub last_value: f64,
    /// Anomaly score of the latest point.
    pub score: f64,
    /// What the model expected for the latest point (central, lower, upper).
    pub expected: Option<(f64, f64, f64)>,
    /// The threshold crossing in words, when one is expected.
    pub eta_text: Option<String>,
    /// Seconds to the crossing, with its earliest and latest (the band's).
    pub eta_secs: Option<(i64, Option<i64>, Option<i64>)>,
    /// Whether the rule's condition holds for it.
    pub holds: bool,
    /// When its model was fitted (Unix seconds).
    pub fitted_at: i64,
}

impl RuleView {
    fn of(rt: &RuleRuntime) -> Self {
        let mut series: Vec<SeriesView> = rt
            .series
            .iter()
            .map(|(k, s)| SeriesView {
                id: series_id(&rt.id, k),
                key: k.clone(),
                labels: s.labels.clone(),
                model: s.model_name(),
                step: s.step(),
                last_ts: s.last_ts,
                last_value: s.last_value,
                score: s.score,
                expected: s.expected,
                eta_text: rt.verdicts.get(k).and_then(|v| v.eta_text.clone()),
                eta_secs: rt.verdicts.get(k).and_then(|v| {
                    v.eta_secs
                        .map(|e| (e, v.eta_earliest_secs, v.eta_latest_secs))
                }),
                holds: rt.verdicts.get(k).is_some_and(|v| v.holds),
                fitted_at: s.fitted_at,
            })
            .collect();
        series.sort_by(|a, b| a.key.cmp(&b.key));
        Self {
            id: rt.id.clone(),
            group: rt.group.clone(),
            rule: rt.rule.clone(),
            health: rt.health,
            last_error: rt.last_error.clone(),
            last_eval: rt.last_eval,
            last_duration: rt.last_duration,
            alerts: rt.alerts.active().cloned().collect(),
            past: rt.past.iter().rev().cloned().collect(),
            series,
        }
    }
}

/// A series' id in the API: the hash of its rule and labels, in hex.
pub fn series_id(rule: &str, key: &str) -> String {
    format!("{:016x}", label_hash(&format!("{rule}\u{0}{key}")))
}

/// A stable hash of a label set (FNV-1a over its key), for sharding and ids.
pub fn label_hash(key: &str) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}
