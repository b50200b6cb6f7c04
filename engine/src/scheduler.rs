//! The rule loop: one task per rule group ticking on aligned slots. Each
//! evaluation of a rule fetches what is new from Prometheus, advances every
//! modelled series (fitting new ones at once, refitting drifted or stale
//! ones, dropping vanished ones after a grace period), exports predictions
//! and runs the alert state machine, whose state is saved before its events
//! go to the sink.

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
    pub async fn recent_history(
        &self,
        rule: &Rule,
        labels: &Labels,
        end: i64,
        window: i64,
    ) -> Result<Vec<(i64, f64)>, PromError> {
        let step = rule.step.as_secs().max(1) as i64;
        let r = self
            .client
            .query_range(&rule.expr, align(end - window, step), end, step)
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
            (self.run_alerts(rt, now, observed), series_of)
        };
        self.announce(h, now, events, &series_of).await;
        Ok(())
    }

    /// Drops the series absent for longer than the grace period, and forgets
    /// drops older than the rule's history reach.
    fn drop_vanished(&self, rt: &mut RuleRuntime, now: i64) {
        let step = rt.rule.step.as_secs().max(1) as i64;
        let gone: Vec<String> = rt
            .series
            .iter()
            .filter(|(_, s)| now - s.last_seen > VANISH_GRACE_SECS.max(3 * step))
            .map(|(k, _)| k.clone())
            .collect();
        let horizons: Vec<String> = rt.rule.horizons.iter().map(|&h| horizon_label(h)).collect();
        for k in gone {
            if let Some(s) = rt.series.remove(&k) {
                tracing::info!(rule = %rt.id, labels = ?s.labels, "Series vanished; dropped.");
                rt.dropped.insert(k.clone(), s.last_ts);
                self.metrics
                    .forget_series(&series_labels(&rt.id, &s.labels), &horizons);
                rt.verdicts.remove(&k);
            }
        }
        forget_old_drops(
            &mut rt.dropped,
            now,
            rt.rule.history.as_secs() as i64 + step,
        );
        self.metrics
            .series_modelled
            .get_or_create(&one("rule", &rt.id))
            .set(rt.series.len() as i64);
    }

    /// Before fetching full history, counts the series the rule returns: far
    /// past its limit, fetching them all would cost memory for nothing, so the
    /// rule fails with a clear error instead (the other rules keep running).
    async fn check_cardinality(
        &self,
        h: &RuleHandle,
        modelled: usize,
        now: i64,
    ) -> Result<(), PromError> {
        let r = self
            .client
            .query(&format!("count({})", h.rule.expr), Some(now))
            .await?;
        let count = r.data.first().map_or(0.0, |s| s.value);
        let limit = h.rule.series_limit;
        if count > (REFUSE_FACTOR * limit) as f64 {
            self.metrics
                .series_limit_dropped
                .get_or_create(&one("rule", &h.id))
                .inc_by((count as u64).saturating_sub(modelled as u64));
            return Err(PromError::InvalidArgument(format!(
                "the expression returns {count} series, more than {REFUSE_FACTOR}× its series_limit of {limit}: narrow it or raise series_limit"
            )));
        }
        Ok(())
    }

    /// The series of `full` to fit — new ones and those listed in `refit`,
    /// within the rule's series limit — each with its fit's spec. A dropped
    /// series stays dropped until it has a newer sample.
    fn fit_candidates(
        &self,
        rt: &mut RuleRuntime,
        mut full: Vec<RangeSeries>,
        now: i64,
        max_horizon: usize,
        refit: &[String],
    ) -> Vec<(String, RangeSeries, FitSpec)> {
        full.retain(|s| {
            is_back(
                &rt.dropped,
                &crate::alert::state::key(&s.labels),
                &s.samples,
            )
        });
        for s in &full {
            rt.dropped.remove(&crate::alert::state::key(&s.labels));
        }
        let step = rt.rule.step.as_secs().max(1) as i64;
        let mut candidates: Vec<(String, RangeSeries)> = full
            .into_iter()
            .map(|s| (crate::alert::state::key(&s.labels), s))
            .filter(|(k, _)| owns(self.shard, k))
            .filter(|(k, _)| !rt.series.contains_key(k) || refit.contains(k))
            .collect();
        candidates.sort_by(|a, b| a.0.cmp(&b.0));
        let room = rt.rule.series_limit.saturating_sub(
            rt.series.len() - rt.series.keys().filter(|k| refit.contains(k)).count(),
        );
        if candidates.len() > room {
            let dropped = candidates.len() - room;
            tracing::warn!(rule = %rt.id, limit = rt.rule.series_limit, dropped, "Series limit reached; extra series are not modelled.");
            self.metrics
                .series_limit_dropped
                .get_or_create(&one("rule", &rt.id))
                .inc_by(dropped as u64);
            candidates.truncate(room);
        }
        let spec = FitSpec::new(step, rt.rule.model, max_horizon).bounds(rt.rule.bounds);
        // A series refitted after a change of regime fits its model on the
        // points since the change.
        candidates
            .into_iter()
            .map(|(k, s)| {
                let spec = rt.series.get(&k).map_or(spec, |m| m.refit_spec(spec, now));
                (k, s, spec)
            })
            .collect()
    }

    /// Fits `candidates` off the async threads, spread over the cores; a
    /// panic in one series' fit is that series' error.
    async fn fit(
        &self,
        rule_id: &str,
        mut candidates: Vec<(String, RangeSeries, FitSpec)>,
        now: i64,
    ) -> Vec<Fitted> {
        let workers = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(candidates.len().max(1));
        let chunk = candidates.len().div_ceil(workers).max(1);
        let mut jobs = Vec::new();
        while !candidates.is_empty() {
            let part: Vec<_> = candidates.drain(..chunk.min(candidates.len())).collect();
            let (metrics, rule_id) = (self.metrics.clone(), rule_id.to_string());
            jobs.push(tokio::task::spawn_blocking(move || {
                part.into_iter()
                    .map(|(k, s, spec)| {
                        let t = Instant::now();
                        // The others of its chunk are still fitted.
                        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            ModelledSeries::fit(s.labels, &s.samples, &spec, now)
                        }))
                        .map_err(|p| panic_message(p.as_ref()));
                        metrics
                            .fit_duration
                            .get_or_create(&one("rule", &rule_id))
                            .observe(t.elapsed().as_secs_f64());
                        (k, r)
                    })
                    .collect::<Vec<_>>()
            }));
        }
        let mut fitted = Vec::new();
        for j in jobs {
            match j.await {
                Ok(part) => fitted.extend(part),
                Err(e) => {
                    tracing::error!(rule = %rule_id, error = %e, "A fitting task failed; its series keep their previous models.");
                    self.metrics.count_error(rule_id, "fit_panic");
                }
            }
        }
        fitted
    }

    /// Puts the models fitted into the rule's runtime.
    fn install_fits(&self, rt: &mut RuleRuntime, fitted: Vec<Fitted>) {
        for (k, r) in fitted {
            match r {
                Ok(Ok(m)) => {
                    rt.series.insert(k, m);
                }
                Err(panic) => {
                    tracing::error!(rule = %rt.id, series = %k, panic = %panic, "Fitting this series panicked; it keeps its previous model, if any. Please report it.");
                    self.metrics.count_error(&rt.id, "fit_panic");
                }
                Ok(Err(e)) => {
                    tracing::debug!(rule = %rt.id, series = %k, error = %e, "Not enough history to model yet.");
                    self.metrics.count_error(&rt.id, "fit");
                }
            }
        }
    }

    fn export(&self, rule_id: &str, s: &ModelledSeries, v: &SeriesVerdict) {
        let labels: LabelPairs = series_labels(rule_id, &s.labels);
        let m = &self.metrics;
        if let Some((p, lo, hi)) = s.expected {
            m.expected.get_or_create(&labels).set(p);
            m.expected_lower.get_or_create(&labels).set(lo);
            m.expected_upper.get_or_create(&labels).set(hi);
        }
        m.anomaly_score.get_or_create(&labels).set(s.score);
        for (h, p, lo, hi) in &v.forecasts {
            let l = with_label(&labels, "horizon", h);
            m.forecast.get_or_create(&l).set(*p);
            m.forecast_lower.get_or_create(&l).set(*lo);
            m.forecast_upper.get_or_create(&l).set(*hi);
        }
        match v.eta_secs {
            Some(eta) => {
                m.time_to_threshold.get_or_create(&labels).set(eta as f64);
            }
            None => {
                m.time_to_threshold.remove(&labels);
            }
        }
    }

    /// What the state machine sees of one series: its alert labels and
    /// value, whether the condition holds, and the rendered annotations.
    /// When the condition does not hold and there is no ETA, annotations
    /// using `{{ $eta }}` are left out, so a resolved alert keeps the ETA it
    /// fired with and takes the current value everywhere else.
    fn alert_input(&self, rule: &Rule, labels: &Labels, v: &SeriesVerdict) -> Observation {
        let mut l = labels.clone();
        l.remove("__name__");
        let eta = v.eta_text.as_deref();
        for (k, t) in &rule.labels {
            l.insert(k.clone(), render(t, labels, v.value, eta));
        }
        l.insert("alertname".into(), rule.name.clone());
        let annotations = rule
            .annotations
            .iter()
            .filter(|(_, t)| v.holds || eta.is_some() || !uses_eta(t))
            .map(|(k, t)| (k.clone(), render(t, labels, v.value, eta)))
            .collect();
        Observation {
            labels: l,
            value: v.value,
            annotations,
            holds: v.holds,
        }
    }

    /// Runs the state machine, saves its state and returns the transitions
    /// to announce (none when the state could not be saved).
    fn run_alerts(
        &self,
        rt: &mut RuleRuntime,
        now: i64,
        observed: Vec<Observation>,
    ) -> Vec<AlertEvent> {
        let events = rt.alerts.eval(
            now,
            observed,
            Timing {
                for_secs: rt.rule.for_.as_secs() as i64,
                keep_firing_for_secs: rt.rule.keep_firing_for.as_secs() as i64,
            },
        );
        for status in [AlertStatus::Pending, AlertStatus::Firing] {
            let n = rt.alerts.active().filter(|a| a.status == status).count();
            let name = if status == AlertStatus::Pending {
                "pending"
            } else {
                "firing"
            };
            self.metrics
                .alerts
                .get_or_create(&vec![
                    ("rule".into(), rt.id.clone()),
                    ("state".into(), name.into()),
                ])
                .set(n as i64);
        }
        // Persist before announcing: a crash between the two re-announces
        // nothing. An evaluation that changed nothing (most rules, most of
        // the time: no alert at all) writes nothing.
        if rt.saved == rt.alerts {
            return events;
        }
        if let Err(e) = self.store.save(&[(rt.id.as_str(), &rt.alerts)]) {
            // The state goes back to what the store holds, so the next
            // evaluation finds these transitions again: held back, not lost.
            tracing::error!(rule = %rt.id, error = %e, "Could not save alert state; its transitions are held back until it can be.");
            self.metrics.count_error(&rt.id, "store");
            rt.alerts = rt.saved.clone();
            return Vec::new();
        }
        rt.saved = rt.alerts.clone();
        events
    }

    /// Hands `events` to the sink, each with what the model saw: firing
    /// alerts of modelled series get their recent history (one query for the
    /// rule) and forecast for the chart. `series_of` maps an alert's label
    /// key to its series key.
    async fn announce(
        &self,
        h: &RuleHandle,
        now: i64,
        events: Vec<AlertEvent>,
        series_of: &HashMap<String, String>,
    ) {
        if events.is_empty() {
            return;
        }
        let level = Level::try_from(BAND_LEVEL).expect("a constant level in (0, 1)");
        let step = h.rule.step.as_secs().max(1) as i64;
        let charted = events.iter().any(|e| {
            matches!(e, AlertEvent::Firing(a) if series_of.contains_key(&crate::alert::state::key(&a.labels)))
        });
        // One range query gives every series' recent history.
        let mut history: HashMap<String, Vec<(i64, f64)>> = HashMap::new();
        if charted {
            let start = align(now - step * CHART_POINTS as i64, step);
            match self.query(h, start, align(now, step)).await {
                Ok(found) => {
                    for s in found {
                        history.insert(crate::alert::state::key(&s.labels), s.samples);
                    }
                }
                Err(e) => {
                    tracing::warn!(rule = %h.id, error = %e, "No history for the alert charts.")
                }
            }
        }
        let rt = h.lock().await;
        let infos: Vec<_> = events
            .iter()
            .map(|e| {
                let a = match e {
                    AlertEvent::Firing(a) | AlertEvent::Resolved(a) => a,
                };
                let series_key = series_of.get(&crate::alert::state::key(&a.labels));
                let url = match series_key {
                    Some(k) => format!(
                        "{}/api/v1/series/{}/forecast",
                        self.config.external_url,
                        series_id(&rt.id, k)
                    ),
                    None => format!("{}/api/v1/alerts", self.config.external_url),
                };
                let mut info = alert_info(&rt.id, e, url);
                if matches!(e, AlertEvent::Firing(_)) {
                    let series = series_key.and_then(|k| rt.series.get(k));
                    let verdict = series_key.and_then(|k| rt.verdicts.get(k));
                    let h = series_key
                        .and_then(|k| history.remove(k))
                        .unwrap_or_default();
                    let dashboard = a.annotations.get(DASHBOARD_ANNOTATION).cloned();
                    info.explanation =
                        Some(explanation(&rt.rule, series, verdict, h, dashboard, level));
                }
                info
            })
            .collect();
        drop(rt);
        // The sink writes durably (the notifier's outbox): off the async
        // threads, awaited so the next evaluation's events come after these.
        let sink = self.sink.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || sink.send(&infos)).await {
            tracing::error!(rule = %h.id, error = %e, "Handing alerts to the notifier failed.");
        }
    }

    async fn evaluate_burn_rate(&self, h: &RuleHandle, now: i64) -> Result<(), PromError> {
        let Condition::BurnRate {
            objective,
            errors,
            total,
            windows,
        } = h.rule.condition.clone()
        else {
            return Ok(());
        };
        let budget = 1.0 - objective;
        // Burn rate per label set and window.
        let mut rates: HashMap<String, (Labels, HashMap<u64, f64>)> = HashMap::new();
        let mut durations: Vec<Duration> = windows.iter().flat_map(|w| [w.long, w.short]).collect();
        durations.sort();
        durations.dedup();
        for d in &durations {
            // The same substitution `prognos check` validated.
            let expr = format!(
                "({}) / ({})",
                window_query(&errors, *d),
                window_query(&total, *d)
            );
            let r = self.client.query(&expr, Some(now)).await?;
            for s in r.data {
                let key = crate::alert::state::key(&s.labels);
                let e = rates
                    .entry(key)
                    .or_insert_with(|| (s.labels.clone(), HashMap::new()));
                if s.value.is_finite() {
                    e.1.insert(d.as_secs(), s.value / budget);
                }
            }
        }
        let mut observed = Vec::new();
        for (labels, by_window) in rates.values() {
            // The value: the worst long-window rate among the pairs that
            // hold, or among all pairs when none does (a resolved alert
            // tells the rate at resolution).
            let (mut worst, mut highest): (Option<f64>, Option<f64>) = (None, None);
            for w in &windows {
                let (Some(long), Some(short)) = (
                    by_window.get(&w.long.as_secs()),
                    by_window.get(&w.short.as_secs()),
                ) else {
                    continue;
                };
                highest = Some(highest.map_or(*long, |x: f64| x.max(*long)));
                if *long >= w.factor && *short >= w.factor {
                    worst = Some(worst.map_or(*long, |x: f64| x.max(*long)));
                }
            }
            if let Some(rate) = worst.or(highest) {
                let v = SeriesVerdict {
                    forecasts: Vec::new(),
                    eta_secs: None,
                    eta_text: None,
                    holds: worst.is_some(),
                    value: rate,
                };
                observed.push(self.alert_input(&h.rule, labels, &v));
            }
        }
        let events = self.run_alerts(&mut *h.lock().await, now, observed);
        self.announce(h, now, events, &HashMap::new()).await;
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
mod tests {
    use super::*;

    /// Keeps every alert sent.
    #[derive(Default)]
    struct Recorder(std::sync::Mutex<Vec<prognos_notifiers::alert::AlertInfo>>);

    impl AlertSink for Recorder {
        fn send(&self, alerts: &[prognos_notifiers::alert::AlertInfo]) {
            self.0.lock().unwrap().extend_from_slice(alerts);
        }
    }

    impl Recorder {
        /// (alertname, status) of every alert sent, in order.
        fn sent(&self) -> Vec<(String, String)> {
            self.0
                .lock()
                .unwrap()
                .iter()
                .map(|a| (a.name().to_string(), format!("{:?}", a.status)))
                .collect()
        }
    }

    /// A configuration in `dir` with one rule per name, each firing at once
    /// on `queue_ready` (10, over a threshold of 5).
    fn config_with(dir: &std::path::Path, names: &[&str]) -> Config {
        let mut rules = String::from("groups:\n  - name: g\n    interval: 1m\n    rules:\n");
        for n in names {
            rules.push_str(&format!(
                "      - alert: {n}\n        expr: queue_ready\n        history: 1h\n        step: 1m\n        model: naive\n        condition:\n          forecast: {{threshold: 5, direction: above, within: 5m}}\n        for: 0s\n"
            ));
        }
        std::fs::write(dir.join("rules.yml"), rules).unwrap();
        let main = dir.join("prognos.yml");
        std::fs::write(
            &main,
            "global:\n  prometheus:\n    url: http://127.0.0.1:9\n  state_dir: .state\nrule_files: [rules.yml]\n",
        )
        .unwrap();
        crate::config::load(&main).unwrap_or_else(|e| panic!("{e}"))
    }

    fn engine(config: Config, store: &Arc<AlertStore>, sink: &Arc<Recorder>, end: i64) -> Engine {
        let labels: Labels = [("__name__", "queue_ready"), ("queue", "q")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let samples = (0..120).map(|k| (end - 7200 + 60 * k, 10.0)).collect();
        let source = crate::source::memory::MemorySource::new(vec![(labels, samples)], end);
        Engine::new(
            config,
            Shard::default(),
            source,
            store.clone(),
            sink.clone(),
            Arc::new(Metrics::new()),
        )
        .unwrap()
    }

    #[tokio::test]
    async fn an_evaluation_that_changes_no_alert_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let end = 1_800_000_000 / 60 * 60;
        let store = Arc::new(AlertStore::open(&dir.path().join("s.redb")).unwrap());
        let sink = Arc::new(Recorder::default());
        let mut config = config_with(dir.path(), &["Quiet"]);
        // A threshold the queue never nears: no alert, ever.
        for g in &mut config.groups {
            for r in &mut g.rules {
                if let Condition::Forecast { threshold, .. } = &mut r.condition {
                    *threshold = 1e9;
                }
            }
        }
        let e = engine(config, &store, &sink, end);
        e.evaluate_all(end).await;
        e.evaluate_all(end + 60).await;
        assert!(sink.sent().is_empty());
        assert!(
            store.load_all().unwrap().is_empty(),
            "a rule without alerts was written to the store"
        );
    }

    /// A source whose range queries wait for a permit while `hold` is set.
    struct Gated {
        inner: crate::source::memory::MemorySource,
        hold: std::sync::atomic::AtomicBool,
        entered: tokio::sync::Notify,
        release: tokio::sync::Semaphore,
    }

    impl Source for Gated {
        fn query_range<'a>(
            &'a self,
            expr: &'a str,
            start: i64,
            end: i64,
            step: i64,
        ) -> crate::source::SourceFuture<'a, crate::prom::QueryResult<Vec<RangeSeries>>> {
            Box::pin(async move {
                if self.hold.load(Ordering::SeqCst) {
                    self.entered.notify_one();
                    let _permit = self.release.acquire().await;
                }
                self.inner.query_range(expr, start, end, step).await
            })
        }

        fn query<'a>(
            &'a self,
            expr: &'a str,
            time: Option<i64>,
        ) -> crate::source::SourceFuture<
            'a,
            crate::prom::QueryResult<Vec<crate::prom::InstantSample>>,
        > {
            self.inner.query(expr, time)
        }
    }

    /// A rule's life as a step table on paused time — pending, firing, a
    /// reload that removes it, a restart — run once without a fault and
    /// once with a store failure at each step in turn: every run announces
    /// the alert firing once and resolved once, in that order.
    #[tokio::test(start_paused = true)]
    async fn a_rules_life_announces_each_transition_once_whatever_write_fails() {
        const STEPS: usize = 6;
        let end = 1_800_000_000 / 60 * 60;
        for fail_at in (0..STEPS).map(Some).chain([None]) {
            let dir = tempfile::tempdir().unwrap();
            let mut names = vec!["Life"];
            let with_for = |names: &[&str]| {
                let c = config_with(dir.path(), names);
                let rules = std::fs::read_to_string(dir.path().join("rules.yml")).unwrap();
                std::fs::write(
                    dir.path().join("rules.yml"),
                    rules.replace("for: 0s", "for: 2m"),
                )
                .unwrap();
                let _ = c;
                crate::config::load(&dir.path().join("prognos.yml")).unwrap()
            };
            let store = Arc::new(AlertStore::open(&dir.path().join("s.redb")).unwrap());
            let sink = Arc::new(Recorder::default());
            let mut e = engine(with_for(&names), &store, &sink, end);
            // The fault hits the step's first write (a failed read at
            // start-up stops prognos instead).
            let fault = |step: usize| {
                if fail_at == Some(step) {
                    store.inject_faults(1);
                }
            };
            for step in 0..STEPS {
                let t = end + 60 * step as i64;
                match step {
                    // Pending at 0, firing from 2 minutes on.
                    0..=3 => {
                        fault(step);
                        e.evaluate_all(t).await;
                    }
                    // A reload removes the rule.
                    4 => {
                        names.clear();
                        names.push("Other");
                        let new = engine(with_for(&names), &store, &sink, end);
                        fault(step);
                        new.carry_over(&e, t).await;
                        new.resolve_removed_rules(t).await;
                        e = new;
                    }
                    // A restart with the rule still gone.
                    _ => {
                        drop(e);
                        e = engine(with_for(&names), &store, &sink, end);
                        fault(step);
                        e.resolve_removed_rules(t).await;
                    }
                }
                tokio::time::advance(Duration::from_secs(60)).await;
            }
            let life: Vec<_> = sink
                .sent()
                .into_iter()
                .filter(|(n, _)| n == "Life")
                .collect();
            assert_eq!(
                life,
                [
                    ("Life".to_string(), "Firing".to_string()),
                    ("Life".to_string(), "Resolved".to_string())
                ],
                "a store failure at step {fail_at:?}"
            );
        }
    }

    /// Finding 7 of issue 11: a failed write of the alert state dropped the
    /// evaluation's transitions for good (the state had moved on), and the
    /// store was never reopened. Now the transition is held back, found
    /// again once the store is back, and announced once.
    #[tokio::test(start_paused = true)]
    async fn a_failed_state_write_holds_transitions_back_and_loses_none() {
        let dir = tempfile::tempdir().unwrap();
        let end = 1_700_000_000 / 60 * 60;
        let store = Arc::new(AlertStore::open(&dir.path().join("state.redb")).unwrap());
        let sink = Arc::new(Recorder::default());
        let e = engine(config_with(dir.path(), &["Full"]), &store, &sink, end);
        store.inject_faults(1);
        e.evaluate_all(end).await;
        assert!(sink.sent().is_empty(), "announced without being saved");
        assert!(!e.store_healthy());
        assert!(
            e.metrics
                .encode()
                .contains(r#"prognos_errors_total{rule="g/Full",kind="store"} 1"#)
        );
        // Still closed on the next slot: held back again, not lost.
        e.evaluate_all(end + 60).await;
        assert!(sink.sent().is_empty());
        tokio::time::advance(prognos_notifiers::database::REOPEN_FIRST).await;
        assert!(e.store_healthy());
        e.evaluate_all(end + 120).await;
        e.evaluate_all(end + 180).await;
        assert_eq!(sink.sent(), [("Full".to_string(), "Firing".to_string())]);
        // What was announced is what a restart finds.
        drop(e);
        let again = engine(config_with(dir.path(), &["Full"]), &store, &sink, end);
        again.evaluate_all(end + 240).await;
        assert_eq!(sink.sent().len(), 1, "announced twice after a restart");
    }

    /// Finding 1 of issue 11: a rule waiting on Prometheus held its lock, and
    /// every reader (the API, `/-/ready`) and every other group waited with it.
    #[tokio::test(start_paused = true)]
    async fn nothing_waits_for_a_rule_whose_query_hangs() {
        let dir = tempfile::tempdir().unwrap();
        let end = 1_700_000_000 / 60 * 60;
        let config = config_with(dir.path(), &["Slow", "Other"]);
        let store = Arc::new(AlertStore::open(&dir.path().join("state.redb")).unwrap());
        let sink = Arc::new(Recorder::default());
        let labels: Labels = [("__name__", "queue_ready"), ("queue", "q")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let samples = (0..120).map(|k| (end - 7200 + 60 * k, 10.0)).collect();
        let gated = Arc::new(Gated {
            inner: crate::source::memory::MemorySource::new(vec![(labels, samples)], end),
            hold: std::sync::atomic::AtomicBool::new(true),
            entered: tokio::sync::Notify::new(),
            release: tokio::sync::Semaphore::new(0),
        });
        let engine = Arc::new(
            Engine::new(
                config,
                Shard::default(),
                gated.clone(),
                store,
                sink.clone(),
                Arc::new(Metrics::new()),
            )
            .unwrap(),
        );
        let (slow, other) = (engine.rules[0].clone(), engine.rules[1].clone());
        let running = tokio::spawn({
            let (engine, slow) = (engine.clone(), slow.clone());
            async move { engine.evaluate_rule(&slow, end).await }
        });
        gated.entered.notified().await;
        gated.hold.store(false, Ordering::SeqCst);
        // While its query hangs: its lock is free, its view readable, and the
        // other rule is evaluated to the end.
        let free = tokio::time::timeout(Duration::from_secs(5), slow.lock()).await;
        assert!(free.is_ok(), "the rule's lock is held across its query");
        drop(free);
        assert_eq!(slow.view().last_eval, None);
        engine.evaluate_rule(&other, end).await;
        let o = other.view();
        assert_eq!(
            (o.last_eval, o.series.len(), o.alerts.len()),
            (Some(end), 1, 1)
        );
        assert!(!running.is_finished());
        // Released, it finishes and publishes what it found.
        gated.release.add_permits(1);
        running.await.unwrap();
        let v = slow.view();
        assert_eq!(
            (v.last_eval, v.series.len(), v.alerts.len()),
            (Some(end), 1, 1)
        );
        assert_eq!(v.health, Health::Ok);
        assert_eq!(sink.sent().len(), 2);
    }

    #[tokio::test]
    async fn a_rule_removed_by_a_reload_or_while_stopped_resolves_its_alerts_once() {
        let dir = tempfile::tempdir().unwrap();
        let end = 1_800_000_000 / 60 * 60;
        let firing = |n: &str| (n.to_string(), "Firing".to_string());
        let resolved = |n: &str| (n.to_string(), "Resolved".to_string());

        // A reload removes `Gone` while it fires.
        let store = Arc::new(AlertStore::open(&dir.path().join("a.redb")).unwrap());
        let sink = Arc::new(Recorder::default());
        let old = engine(
            config_with(dir.path(), &["Kept", "Gone"]),
            &store,
            &sink,
            end,
        );
        old.evaluate_all(end).await;
        assert_eq!(sink.sent(), [firing("Kept"), firing("Gone")]);
        let new = engine(config_with(dir.path(), &["Kept"]), &store, &sink, end);
        new.carry_over(&old, end + 60).await;
        new.resolve_removed_rules(end + 60).await;
        assert_eq!(
            sink.sent()[2..],
            [resolved("Gone")],
            "resolved once, by the reload"
        );
        assert!(
            store
                .load_all()
                .unwrap()
                .iter()
                .all(|(id, _)| id != "g/Gone")
        );

        // Removed while prognos was stopped: resolved once at the next start.
        let store = Arc::new(AlertStore::open(&dir.path().join("b.redb")).unwrap());
        let sink = Arc::new(Recorder::default());
        engine(
            config_with(dir.path(), &["Kept", "Gone"]),
            &store,
            &sink,
            end,
        )
        .evaluate_all(end)
        .await;
        let restarted = engine(config_with(dir.path(), &["Kept"]), &store, &sink, end);
        restarted.resolve_removed_rules(end + 60).await;
        restarted.resolve_removed_rules(end + 120).await;
        engine(config_with(dir.path(), &["Kept"]), &store, &sink, end)
            .resolve_removed_rules(end + 180)
            .await;
        assert_eq!(sink.sent()[2..], [resolved("Gone")]);
    }

    #[test]
    fn a_caught_panic_keeps_its_message() {
        let formatted = std::panic::catch_unwind(|| panic!("fit failed at {}", 7)).unwrap_err();
        assert_eq!(panic_message(formatted.as_ref()), "fit failed at 7");
        let plain = std::panic::catch_unwind(|| panic!("plain")).unwrap_err();
        assert_eq!(panic_message(plain.as_ref()), "plain");
    }

    #[test]
    fn shards_partition_the_series() {
        let keys: Vec<String> = (0..1000)
            .map(|i| format!("instance=\"host{i}\","))
            .collect();
        let a = Shard { index: 0, count: 2 };
        let b = Shard { index: 1, count: 2 };
        let (na, nb) = (
            keys.iter().filter(|k| owns(a, k)).count(),
            keys.iter().filter(|k| owns(b, k)).count(),
        );
        assert_eq!(na + nb, 1000);
        assert!(na > 400 && nb > 400, "{na} / {nb}");
        assert!(keys.iter().all(|k| owns(a, k) != owns(b, k)));
        assert!(keys.iter().all(|k| owns(Shard { index: 0, count: 1 }, k)));
    }

    #[test]
    fn a_dropped_series_stays_dropped_until_it_has_a_newer_sample() {
        let mut dropped = HashMap::new();
        dropped.insert("queue=\"mes.work\",".to_string(), 1_000);
        let key = "queue=\"mes.work\",";
        // A full-history query returns its old samples: not back.
        let old = [(700, 5.0), (850, 6.0), (1_000, 7.0)];
        assert!(!is_back(&dropped, key, &old));
        assert!(!is_back(&dropped, key, &[]));
        // A gap marker after the drop is no return either.
        assert!(!is_back(&dropped, key, &[(1_000, 7.0), (1_060, f64::NAN)]));
        // A new sample is.
        assert!(is_back(&dropped, key, &[(1_000, 7.0), (1_060, 1.0)]));
        // Other series are unaffected.
        assert!(is_back(&dropped, "queue=\"mes.dead\",", &old));
    }

    #[test]
    fn drops_are_forgotten_once_out_of_history_reach() {
        let mut dropped: HashMap<String, i64> =
            [("a".to_string(), 1_000), ("b".to_string(), 5_000)].into();
        forget_old_drops(&mut dropped, 8_000, 3_000);
        assert_eq!(dropped.keys().collect::<Vec<_>>(), ["b"]);
    }

    #[test]
    fn align_floors_to_the_step() {
        assert_eq!(align(1000, 300), 900);
        assert_eq!(align(-1, 300), -300);
    }
}
