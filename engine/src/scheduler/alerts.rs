//! From verdicts to alerts: the predictions exported, what the state machine
//! sees of each series, its state saved before its events are announced, and
//! the announcement (with the chart's history) to the sink.

use super::*;

impl Engine {
    pub(super) fn export(&self, rule_id: &str, s: &ModelledSeries, v: &SeriesVerdict) {
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
    pub(super) fn alert_input(
        &self,
        rule: &Rule,
        labels: &Labels,
        v: &SeriesVerdict,
    ) -> Observation {
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
    pub(super) async fn run_alerts(
        &self,
        rt: &mut RuleRuntime,
        now: i64,
        observed: Vec<Observation>,
    ) -> Vec<AlertEvent> {
        let pending = rt.pending();
        let events = rt.alerts.eval(
            now,
            observed,
            Timing {
                for_secs: rt.rule.for_.as_secs() as i64,
                keep_firing_for_secs: rt.rule.keep_firing_for.as_secs() as i64,
            },
        );
        rt.record_ended(pending, &events, now);
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
        // The write is durable (an fsync): on a blocking thread, not on the
        // async threads the other groups and the API run on.
        let (store, id, alerts) = (self.store.clone(), rt.id.clone(), rt.alerts.clone());
        let saved = tokio::task::spawn_blocking(move || store.save(&[(id.as_str(), &alerts)]))
            .await
            .unwrap_or_else(|e| {
                Err(crate::alert::StoreError::Db {
                    path: String::new(),
                    message: format!("the store task failed: {e}"),
                })
            });
        if let Err(e) = saved {
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
    pub(super) async fn announce(
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
                        "{}/series/{}",
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
}
