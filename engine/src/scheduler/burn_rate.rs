//! Burn-rate rules (multi-window SLO error budgets): evaluated from their
//! own queries, without modelled series.

use super::*;

impl Engine {
    pub(super) async fn evaluate_burn_rate(
        &self,
        h: &RuleHandle,
        now: i64,
    ) -> Result<(), PromError> {
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
                    eta_earliest_secs: None,
                    eta_latest_secs: None,
                    holds: worst.is_some(),
                    value: rate,
                };
                observed.push(self.alert_input(&h.rule, labels, &v));
            }
        }
        let events = {
            let mut rt = h.lock().await;
            self.run_alerts(&mut rt, now, observed).await
        };
        self.announce(h, now, events, &HashMap::new()).await;
        Ok(())
    }
}
