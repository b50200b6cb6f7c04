//! A rule's series lifecycle: vanished series dropped after their grace,
//! the cardinality guard, which series to fit (new, drifted, stale), the fits
//! themselves off the async threads (no lock held), and their installation.

use super::*;

impl Engine {
    /// Drops the series absent for longer than the grace period, and forgets
    /// drops older than the rule's history reach.
    pub(super) fn drop_vanished(&self, rt: &mut RuleRuntime, now: i64) {
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
    pub(super) async fn check_cardinality(
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
    pub(super) fn fit_candidates(
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
    pub(super) async fn fit(
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
    pub(super) fn install_fits(&self, rt: &mut RuleRuntime, fitted: Vec<Fitted>) {
        for (k, r) in fitted {
            match r {
                Ok(Ok(mut m)) => {
                    if let Some(old) = rt.series.get(&k) {
                        m.inherit_trail(old);
                    }
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
}
