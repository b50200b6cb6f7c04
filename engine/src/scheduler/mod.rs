//! The rule loop: one task per rule group ticking on aligned slots. Each
//! evaluation of a rule fetches what is new from Prometheus, advances every
//! modelled series (fitting new ones at once, refitting drifted or stale
//! ones, dropping vanished ones after a grace period), exports predictions
//! and runs the alert state machine, whose state is saved before its events
//! go to the sink.
//!
//! This file holds the engine and one rule's evaluation (query, then the
//! phases under the rule's lock); [`lifecycle`] the series' drop, fit and
//! refit; [`alerts`] export, the state machine's input, its saved state and
//! the announcement; [`burn_rate`] the SLO burn-rate rules.

mod alerts;
mod burn_rate;
mod lifecycle;

use std::collections::{BTreeMap, HashMap};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use prognos_models::forecast::Level;

use crate::alert::{
    AlertEvent, AlertSink, AlertStatus, AlertStore, Observation, RuleAlerts, Timing, alert_info,
};
use crate::config::{Condition, Config, Rule, Shard, render, uses_eta, window_query};
use crate::evaluate::{SeriesVerdict, evaluate, horizon_label, steps};
use crate::explain::{CHART_POINTS, DASHBOARD_ANNOTATION, explanation};
use crate::exposition::{LabelPairs, Metrics, one, series_labels, with_label};
use crate::modelled::{FitSpec, Labels, ModelledSeries};
use crate::prom::{PromError, RangeSeries};
use crate::rule_state::series_id;
pub use crate::rule_state::{Health, RuleHandle, RuleRuntime, label_hash};
use crate::source::Source;

/// Level of the bands prognos exports and alerts on.
pub const BAND_LEVEL: f64 = 0.95;
/// A model is refitted from full history at least this often.
pub const REFIT_EVERY_SECS: i64 = 6 * 3600;
/// A rule returning more than this many times its series limit is refused
/// before its history is fetched; up to it, the first series (by labels) are
/// modelled and the rest counted as dropped.
pub const REFUSE_FACTOR: usize = 10;
/// A series absent for this long is dropped.
pub const VANISH_GRACE_SECS: i64 = 15 * 60;
/// Longest `last_error` kept per rule, in characters: it is logged and
/// served by the API on every evaluation, so a peer's megabyte of error
/// text must not be.
pub const MAX_LAST_ERROR_CHARS: usize = 1000;

/// The engine: configuration, client, metrics, store and the rules' state.
pub struct Engine {
    /// The configuration in force.
    pub config: Config,
    /// Which part of the series this engine models.
    pub shard: Shard,
    client: Box<dyn Source>,
    /// Exported metrics.
    pub metrics: Arc<Metrics>,
    store: Arc<AlertStore>,
    sink: Arc<dyn AlertSink>,
    /// Every rule, in configuration order.
    pub rules: Vec<Arc<RuleHandle>>,
    /// Saved alert state of rules the configuration no longer has, until
    /// [`Engine::resolve_removed_rules`] resolves it.
    removed: std::sync::Mutex<Vec<(String, RuleAlerts)>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("rules", &self.rules.len())
            .finish_non_exhaustive()
    }
}

/// A series' fit: its key, and the model, the reason it could not be
/// fitted, or the message of the panic that stopped its fit.
type Fitted = (
    String,
    Result<Result<ModelledSeries, prognos_models::Error>, String>,
);

/// See [`Engine::resolve_gone`]: saves the gone rules' alerts as resolved,
/// announces them to `sink`, then forgets the rules' state.
fn resolve(
    store: &AlertStore,
    sink: &dyn AlertSink,
    mut gone: Vec<(String, RuleAlerts)>,
    url: &str,
    now: i64,
) {
    let mut infos = Vec::new();
    for (id, alerts) in &mut gone {
        for e in alerts.resolve_all(now) {
            infos.push(alert_info(id, &e, url.to_string()));
        }
    }
    if !infos.is_empty() {
        let resolved: Vec<(&str, &RuleAlerts)> =
            gone.iter().map(|(id, a)| (id.as_str(), a)).collect();
        if let Err(e) = store.save(&resolved) {
            tracing::error!(error = %e, alerts = infos.len(), "Could not save the removed rules' alerts as resolved; they are resolved at the next start or reload.");
            return;
        }
        tracing::info!(
            alerts = infos.len(),
            "Resolving the alerts of removed rules."
        );
        sink.send(&infos);
    }
    let ids: Vec<&str> = gone.iter().map(|(id, _)| id.as_str()).collect();
    if let Err(e) = store.remove(&ids) {
        tracing::warn!(error = %e, "Could not forget the state of removed rules (it holds nothing firing).");
    }
}

/// Whether `shard` models the series with label key `key`.
pub fn owns(shard: Shard, key: &str) -> bool {
    shard.count <= 1 || label_hash(key) % u64::from(shard.count) == u64::from(shard.index)
}

/// Floor of `t` to a multiple of `step`.
pub fn align(t: i64, step: i64) -> i64 {
    t.div_euclid(step.max(1)) * step.max(1)
}

impl Engine {
    /// An engine for `config`; alert state is loaded from the store. The
    /// store and metrics outlive reloads, so they are passed in.
    pub fn new(
        config: Config,
        shard: Shard,
        client: impl Source + 'static,
        store: Arc<AlertStore>,
        sink: Arc<dyn AlertSink>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, crate::alert::StoreError> {
        let mut saved: BTreeMap<String, RuleAlerts> = store.load_all()?.into_iter().collect();
        let mut rules = Vec::new();
        for g in &config.groups {
            for r in &g.rules {
                let alerts = saved
                    .remove(&format!("{}/{}", g.name, r.name))
                    .unwrap_or_default();
                rules.push(Arc::new(RuleHandle::new(&g.name, r.clone(), alerts)));
            }
        }
        Ok(Self {
            config,
            shard,
            client: Box::new(client),
            metrics,
            store,
            sink,
            rules,
            removed: std::sync::Mutex::new(saved.into_iter().collect()),
        })
    }

    /// Whether the alert state store can be written (a failed write closes
    /// it until it can be reopened).
    pub fn store_healthy(&self) -> bool {
        self.store.healthy()
    }

    /// Resolves the alerts that rules removed from the configuration while
    /// prognos was stopped left firing: each is announced as resolved once,
    /// then their saved state is forgotten. Call once the sink is ready.
    pub async fn resolve_removed_rules(&self, now: i64) {
        let removed = std::mem::take(&mut *self.removed.lock().unwrap_or_else(|e| e.into_inner()));
        self.resolve_gone(removed, now).await;
    }

    /// Announces the firing alerts of rules that are gone as resolved, then
    /// forgets the rules' saved state. The resolved state is saved first:
    /// a crash after that never announces them again (the notifier's
    /// start-up resync resolves what it still holds as firing), and a crash
    /// before it announces them at the next start. When the save fails
    /// nothing is announced; the state on disk still fires, so the next
    /// start or reload resolves it. Its writes and the sink run on a
    /// blocking thread.
    async fn resolve_gone(&self, gone: Vec<(String, RuleAlerts)>, now: i64) {
        if gone.is_empty() {
            return;
        }
        let url = format!("{}/api/v1/alerts", self.config.external_url);
        let (store, sink) = (self.store.clone(), self.sink.clone());
        let done = tokio::task::spawn_blocking(move || resolve(&store, &*sink, gone, &url, now));
        if let Err(e) = done.await {
            tracing::error!(error = %e, "Resolving the alerts of removed rules failed.");
        }
    }

    /// After a reload: takes over the modelled series of every rule whose
    /// definition did not change (where it sits in its file aside), so they
    /// are not refitted; forgets the store entries and exported series of
    /// rules that are gone.
    pub async fn carry_over(&self, old: &Engine, now: i64) {
        let same = |a: &Rule, b: &Rule| {
            let (mut a, mut b) = (a.clone(), b.clone());
            a.line = 0;
            b.line = 0;
            a == b
        };
        let mut kept = std::collections::HashSet::new();
        for new in &self.rules {
            let mut n = new.lock().await;
            for o in &old.rules {
                let mut o = o.lock().await;
                if o.id == n.id {
                    kept.insert(o.id.clone());
                    if same(&o.rule, &n.rule) && old.shard == self.shard {
                        n.series = std::mem::take(&mut o.series);
                        n.verdicts = std::mem::take(&mut o.verdicts);
                        n.dropped = std::mem::take(&mut o.dropped);
                        n.last_eval = o.last_eval;
                        n.health = o.health;
                    }
                }
            }
            new.publish(&n);
        }
        let mut gone = Vec::new();
        for o in &old.rules {
            let mut o = o.lock().await;
            let horizons: Vec<String> = o.rule.horizons.iter().map(|&h| horizon_label(h)).collect();
            // Series not taken over (the rule changed or went away) stop being exported.
            for s in o.series.values() {
                self.metrics
                    .forget_series(&series_labels(&o.id, &s.labels), &horizons);
            }
            if !kept.contains(&o.id) {
                self.metrics.forget_rule(&o.id);
                gone.push((o.id.clone(), std::mem::take(&mut o.alerts)));
            }
        }
        // What this engine loaded for rules it lacks: the old engine's state
        // of the same rules is newer; the rest was never resolved.
        let stale = std::mem::take(&mut *self.removed.lock().unwrap_or_else(|e| e.into_inner()));
        for (id, alerts) in stale {
            if !gone.iter().any(|(g, _)| *g == id) {
                gone.push((id, alerts));
            }
        }
        self.resolve_gone(gone, now).await;
    }

    /// The recent history of one series of `rule` from Prometheus: the
    /// rule's expression over `[end - window, end]` at its step, the series
    /// with exactly `labels`. Empty when Prometheus no longer has it.
    /// Prometheus is asked for that series alone, not every series of the
    /// rule ([`crate::prom::narrow`]).
    pub async fn recent_history(
        &self,
        rule: &Rule,
        labels: &Labels,
        end: i64,
        window: i64,
    ) -> Result<Vec<(i64, f64)>, PromError> {
        let step = rule.step.as_secs().max(1) as i64;
        let expr = if self.client.full_promql() {
            crate::prom::narrow::one_series(&rule.expr, labels)
        } else {
            rule.expr.clone()
        };
        let r = self
            .client
            .query_range(&expr, align(end - window, step), end, step)
            .await?;
        Ok(r.data
            .into_iter()
            .find(|s| &s.labels == labels)
            .map(|s| s.samples)
            .unwrap_or_default())
    }

    /// Evaluates every rule once at `now` (the CLI's one-shot path and tests).
    pub async fn evaluate_all(&self, now: i64) {
        for r in &self.rules {
            self.evaluate_rule(r, now).await;
        }
    }

    /// Evaluates one rule at `now`, records its health and publishes its
    /// view. Only the rule's group task calls it (or a one-shot path that
    /// runs no tasks): the rule's runtime is locked for in-memory work only,
    /// never across a Prometheus query or a fit, so readers never wait long.
    pub async fn evaluate_rule(&self, h: &RuleHandle, now: i64) {
        let started = Instant::now();
        let result = self.try_evaluate(h, now).await;
        let mut rt = h.lock().await;
        rt.last_eval = Some(now);
        rt.last_duration = started.elapsed();
        match result {
            Ok(()) => {
                rt.health = Health::Ok;
                rt.last_error = None;
            }
            Err(e) => {
                let message =
                    prognos_notifiers::secret::excerpt(&e.to_string(), MAX_LAST_ERROR_CHARS);
                if rt.last_error.as_deref() != Some(message.as_str()) {
                    tracing::warn!(rule = %h.id, kind = e.kind(), error = %message, "Evaluation failed; will retry next interval.");
                }
                self.metrics.count_error(&h.id, e.kind());
                rt.health = Health::Err;
                rt.last_error = Some(message);
            }
        }
        h.publish(&rt);
    }

    async fn query(
        &self,
        h: &RuleHandle,
        start: i64,
        end: i64,
    ) -> Result<Vec<RangeSeries>, PromError> {
        let step = h.rule.step.as_secs().max(1) as i64;
        let t = Instant::now();
        let r = self
            .client
            .query_range(&h.rule.expr, start, end, step)
            .await;
        self.metrics
            .query_duration
            .get_or_create(&one("rule", &h.id))
            .observe(t.elapsed().as_secs_f64());
        let r = r?;
        if !r.warnings.is_empty() {
            // One line per distinct set of warnings, not one per warning
            // and evaluation (the client keeps at most 100, each cut).
            let mut hasher = std::hash::DefaultHasher::new();
            (&r.warnings, r.warnings_left_out).hash(&mut hasher);
            let hash = hasher.finish().max(1);
            if h.last_warnings.swap(hash, Ordering::Relaxed) != hash {
                tracing::warn!(
                    rule = %h.id,
                    count = r.warnings.len(),
                    left_out = r.warnings_left_out,
                    warnings = ?r.warnings,
                    "Prometheus warned."
                );
            }
        }
        Ok(r.data)
    }

    async fn try_evaluate(&self, h: &RuleHandle, now: i64) -> Result<(), PromError> {
        let rule = &h.rule;
        if matches!(rule.condition, Condition::BurnRate { .. }) {
            return self.evaluate_burn_rate(h, now).await;
        }
        let step = rule.step.as_secs().max(1) as i64;
        let end = align(now, step);
        let level = Level::try_from(BAND_LEVEL).expect("a constant level in (0, 1)");
        let max_horizon = rule
            .horizons
            .iter()
            .map(|&d| steps(d, step))
            .chain(lookahead(&rule.condition).map(|d| steps(d, step)))
            .max()
            .unwrap_or(12);

        // New points since the oldest latest point; a first run fetches full history.
        let since = h.lock().await.series.values().map(|s| s.last_ts).min();
        let fetched = match since {
            Some(t) if t + step <= end => self.query(h, t + step, end).await?,
            _ => Vec::new(),
        };
        let (needs_full, refit_keys) = {
            let mut rt = h.lock().await;
            let rt = &mut *rt;
            let mut needs_full = rt.series.is_empty();
            let mut refit_keys = Vec::new();
            for s in fetched {
                let key = crate::alert::state::key(&s.labels);
                if !owns(self.shard, &key) || !is_back(&rt.dropped, &key, &s.samples) {
                    continue;
                }
                rt.dropped.remove(&key);
                match rt.series.get_mut(&key) {
                    Some(m) => {
                        m.last_seen = now;
                        let drifted = m.absorb(&s.samples, level);
                        if drifted || now - m.fitted_at >= REFIT_EVERY_SECS {
                            refit_keys.push(key);
                        }
                    }
                    None => needs_full = true, // a new label set: model it now
                }
            }
            (needs_full, refit_keys)
        };
        if needs_full || !refit_keys.is_empty() {
            let modelled = h.lock().await.series.len();
            self.check_cardinality(h, modelled, now).await?;
            let history = rule.history.as_secs() as i64;
            let full = self.query(h, align(now - history, step), end).await?;
            let candidates = {
                let mut rt = h.lock().await;
                self.fit_candidates(&mut rt, full, now, max_horizon, &refit_keys)
            };
            let fitted = self.fit(&h.id, candidates, now).await;
            self.install_fits(&mut *h.lock().await, fitted);
        }
        let (events, series_of) = {
            let mut rt = h.lock().await;
            let rt = &mut *rt;
            self.drop_vanished(rt, now);
            // Verdicts, exports and alerts: every series is observed, holding or
            // not, so alerts carry the value of the latest evaluation.
            let mut observed = Vec::new();
            let mut series_of = HashMap::new();
            rt.verdicts.clear();
            for (k, s) in &rt.series {
                let v = evaluate(&rt.rule, s, level);
                tracing::trace!(
                    rule = %rt.id,
                    series = %k,
                    at = s.last_ts,
                    value = v.value,
                    holds = v.holds,
                    score = s.score,
                    eta = ?v.eta_secs,
                    model = s.model_name(),
                    "Verdict."
                );
                self.export(&rt.id, s, &v);
                let input = self.alert_input(&rt.rule, &s.labels, &v);
                if v.holds {
                    series_of.insert(crate::alert::state::key(&input.labels), k.clone());
                }
                observed.push(input);
                rt.verdicts.insert(k.clone(), v);
            }
            (self.run_alerts(rt, now, observed).await, series_of)
        };
        self.announce(h, now, events, &series_of).await;
        Ok(())
    }
}

/// Whether a series Prometheus returned with `samples` may be modelled:
/// one never dropped, or a dropped one with a sample newer than the last it
/// had when it was dropped (it came back). The old samples of a dropped
/// series, still within a history query's range, do not count.
pub fn is_back(dropped: &HashMap<String, i64>, key: &str, samples: &[(i64, f64)]) -> bool {
    dropped
        .get(key)
        .is_none_or(|&last| samples.iter().any(|&(t, v)| t > last && v.is_finite()))
}

/// Forgets dropped series whose last sample is older than `reach` seconds
/// before `now`: no history query returns it any more.
pub fn forget_old_drops(dropped: &mut HashMap<String, i64>, now: i64, reach: i64) {
    dropped.retain(|_, last| now - *last <= reach);
}

/// How far a condition looks ahead.
fn lookahead(c: &Condition) -> Option<Duration> {
    match c {
        Condition::Forecast { within, .. } => Some(*within),
        Condition::TimeToThreshold { less_than, .. } => Some(*less_than * 2),
        _ => None,
    }
}

/// The message of a caught panic, when it has one.
fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}

#[cfg(test)]
mod tests;
