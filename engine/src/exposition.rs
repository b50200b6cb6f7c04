//! What prognos exports on `/metrics`: its predictions for every modelled
//! series (with the series' labels plus `rule`) and its own health.
//!
//! Prediction metrics, all gauges:
//! - `prognos_expected_value`, `prognos_expected_lower`, `prognos_expected_upper`: what the
//!   model expected for the latest point, and its band;
//! - `prognos_anomaly_score`: the detector's score of the latest point, in [0, 1];
//! - `prognos_forecast_value`, `_lower`, `_upper` with `horizon` ("1h", "1d"): the forecast
//!   that far ahead;
//! - `prognos_time_to_threshold_seconds`: when the central forecast crosses the rule's
//!   threshold; absent while no crossing is forecast within the horizon looked at.
//!
//! Health: query and fit durations, series modelled per rule, evaluation lag,
//! errors by kind, series dropped by the per-rule limit, alerts by state.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// A label set as exported.
pub type LabelPairs = Vec<(String, String)>;

type FloatGauge = Gauge<f64, AtomicU64>;

/// The content type of the OpenMetrics text exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Every metric prognos exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Expected value of the latest point.
    pub expected: Family<LabelPairs, FloatGauge>,
    /// Lower bound of the expected value.
    pub expected_lower: Family<LabelPairs, FloatGauge>,
    /// Upper bound of the expected value.
    pub expected_upper: Family<LabelPairs, FloatGauge>,
    /// Anomaly score of the latest point.
    pub anomaly_score: Family<LabelPairs, FloatGauge>,
    /// Forecast at each configured horizon.
    pub forecast: Family<LabelPairs, FloatGauge>,
    /// Lower bound of the forecast.
    pub forecast_lower: Family<LabelPairs, FloatGauge>,
    /// Upper bound of the forecast.
    pub forecast_upper: Family<LabelPairs, FloatGauge>,
    /// Seconds until the central forecast crosses the rule's threshold.
    pub time_to_threshold: Family<LabelPairs, FloatGauge>,
    /// Seconds per Prometheus query, by rule.
    pub query_duration: Family<LabelPairs, Histogram>,
    /// Seconds per model fit, by rule.
    pub fit_duration: Family<LabelPairs, Histogram>,
    /// Series modelled, by rule.
    pub series_modelled: Family<LabelPairs, Gauge>,
    /// Seconds between an evaluation's slot and its end, by group.
    pub evaluation_lag: Family<LabelPairs, FloatGauge>,
    /// Errors by rule and kind.
    pub errors: Family<LabelPairs, Counter>,
    /// Series left unmodelled because the rule's series limit was reached.
    pub series_limit_dropped: Family<LabelPairs, Counter>,
    /// Alerts by rule and state (pending, firing).
    pub alerts: Family<LabelPairs, Gauge>,
    /// Evaluation slots missed because the previous evaluation ran late, by group.
    pub missed_evaluations: Family<LabelPairs, Counter>,
    /// Failed operations of the stores, by store (`state`, `notify`).
    pub store_errors: Family<LabelPairs, Counter>,
    /// The (rule, kind) pairs `errors` holds, so a removed rule's are found.
    error_kinds: std::sync::Mutex<std::collections::BTreeSet<(String, String)>>,
}

fn histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0005, 4.0, 10))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric registered, and what `extra` registers.
    pub fn with_extra(extra: impl FnOnce(&mut Registry)) -> Self {
        let mut m = Self::new();
        extra(&mut m.registry);
        m
    }

    /// A registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let expected = Family::default();
        let expected_lower = Family::default();
        let expected_upper = Family::default();
        let anomaly_score = Family::default();
        let forecast = Family::default();
        let forecast_lower = Family::default();
        let forecast_upper = Family::default();
        let time_to_threshold = Family::default();
        let query_duration = Family::new_with_constructor(histogram as fn() -> Histogram);
        let fit_duration = Family::new_with_constructor(histogram as fn() -> Histogram);
        let series_modelled = Family::default();
        let evaluation_lag = Family::default();
        let errors = Family::default();
        let series_limit_dropped = Family::default();
        let alerts = Family::default();
        let missed_evaluations = Family::default();
        let store_errors = Family::default();
        let r = &mut registry;
        prognos_exporters::process::register(r);
        r.register(
            "prognos_expected_value",
            "What the model expected for the latest point",
            expected.clone(),
        );
        r.register(
            "prognos_expected_lower",
            "Lower bound of the expected value",
            expected_lower.clone(),
        );
        r.register(
            "prognos_expected_upper",
            "Upper bound of the expected value",
            expected_upper.clone(),
        );
        r.register(
            "prognos_anomaly_score",
            "Anomaly score of the latest point, 0 to 1",
            anomaly_score.clone(),
        );
        r.register(
            "prognos_forecast_value",
            "Forecast at the horizon",
            forecast.clone(),
        );
        r.register(
            "prognos_forecast_lower",
            "Lower bound of the forecast at the horizon",
            forecast_lower.clone(),
        );
        r.register(
            "prognos_forecast_upper",
            "Upper bound of the forecast at the horizon",
            forecast_upper.clone(),
        );
        r.register(
            "prognos_time_to_threshold_seconds",
            "Seconds until the central forecast crosses the rule's threshold (absent: not within the horizon)",
            time_to_threshold.clone(),
        );
        r.register(
            "prognos_query_duration_seconds",
            "Duration of Prometheus queries",
            query_duration.clone(),
        );
        r.register(
            "prognos_fit_duration_seconds",
            "Duration of model fits",
            fit_duration.clone(),
        );
        r.register(
            "prognos_series_modelled",
            "Series modelled",
            series_modelled.clone(),
        );
        r.register(
            "prognos_evaluation_lag_seconds",
            "Delay from an evaluation slot to its end",
            evaluation_lag.clone(),
        );
        r.register("prognos_errors", "Errors by kind", errors.clone());
        r.register(
            "prognos_series_limit_dropped",
            "Series not modelled because the rule's series limit was reached",
            series_limit_dropped.clone(),
        );
        r.register("prognos_alerts", "Alerts by state", alerts.clone());
        r.register(
            "prognos_missed_evaluations",
            "Evaluation slots skipped because the previous one ran late",
            missed_evaluations.clone(),
        );
        r.register(
            "prognos_store_errors",
            "Failed operations of a store (state: alert state; notify: outbox, groups, audit); each closes the store until it is reopened",
            store_errors.clone(),
        );
        Self {
            registry,
            expected,
            expected_lower,
            expected_upper,
            anomaly_score,
            forecast,
            forecast_lower,
            forecast_upper,
            time_to_threshold,
            query_duration,
            fit_duration,
            series_modelled,
            evaluation_lag,
            errors,
            series_limit_dropped,
            alerts,
            missed_evaluations,
            store_errors,
            error_kinds: Default::default(),
        }
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }

    /// Counts an error of `rule`, of `kind`.
    pub fn count_error(&self, rule: &str, kind: &str) {
        self.errors
            .get_or_create(&vec![
                ("rule".into(), rule.to_string()),
                ("kind".into(), kind.to_string()),
            ])
            .inc();
        self.error_kinds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((rule.to_string(), kind.to_string()));
    }

    /// Removes every health metric of a rule that went away: its series
    /// count, query and fit durations, errors, limit drops and alert counts.
    pub fn forget_rule(&self, rule: &str) {
        let by_rule = one("rule", rule);
        self.series_modelled.remove(&by_rule);
        self.query_duration.remove(&by_rule);
        self.fit_duration.remove(&by_rule);
        self.series_limit_dropped.remove(&by_rule);
        for state in ["pending", "firing"] {
            self.alerts.remove(&with_label(&by_rule, "state", state));
        }
        let mut kinds = self.error_kinds.lock().unwrap_or_else(|e| e.into_inner());
        kinds.retain(|(r, kind)| {
            if r == rule {
                self.errors.remove(&with_label(&by_rule, "kind", kind));
            }
            r != rule
        });
    }

    /// Removes every prediction metric of one series (it vanished or its rule went away).
    pub fn forget_series(&self, labels: &LabelPairs, horizons: &[String]) {
        for f in [
            &self.expected,
            &self.expected_lower,
            &self.expected_upper,
            &self.anomaly_score,
            &self.time_to_threshold,
        ] {
            f.remove(labels);
        }
        for h in horizons {
            let with = with_label(labels, "horizon", h);
            for f in [&self.forecast, &self.forecast_lower, &self.forecast_upper] {
                f.remove(&with);
            }
        }
    }
}

/// The exported labels of a series: its own labels (without `__name__`;
/// a label named `rule` or `horizon` becomes `exported_rule` / `exported_horizon`)
/// plus `rule`.
pub fn series_labels(
    rule: &str,
    labels: &std::collections::BTreeMap<String, String>,
) -> LabelPairs {
    let mut out: LabelPairs = labels
        .iter()
        .filter(|(k, _)| k.as_str() != "__name__")
        .map(|(k, v)| {
            let k = match k.as_str() {
                "rule" | "horizon" => format!("exported_{k}"),
                _ => k.clone(),
            };
            (k, v.clone())
        })
        .collect();
    out.push(("rule".to_string(), rule.to_string()));
    out.sort();
    out
}

/// `labels` with one more label.
pub fn with_label(labels: &LabelPairs, key: &str, value: &str) -> LabelPairs {
    let mut out = labels.clone();
    out.push((key.to_string(), value.to_string()));
    out
}

/// One-label set helper for self-metrics.
pub fn one(key: &str, value: &str) -> LabelPairs {
    vec![(key.to_string(), value.to_string())]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exports_predictions_with_series_labels_and_forgets_them() {
        let m = Metrics::new();
        let labels = series_labels(
            "ShopDbFull",
            &[
                ("__name__".into(), "pg_database_size_bytes".into()),
                ("datname".into(), "shop".into()),
            ]
            .into(),
        );
        m.expected.get_or_create(&labels).set(42.5);
        m.forecast
            .get_or_create(&with_label(&labels, "horizon", "1h"))
            .set(50.0);
        m.time_to_threshold.get_or_create(&labels).set(3600.0);
        let text = m.encode();
        assert!(
            text.contains("prognos_expected_value{datname=\"shop\",rule=\"ShopDbFull\"} 42.5"),
            "{text}"
        );
        assert!(
            text.contains(
                "prognos_forecast_value{datname=\"shop\",rule=\"ShopDbFull\",horizon=\"1h\"} 50.0"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "prognos_time_to_threshold_seconds{datname=\"shop\",rule=\"ShopDbFull\"} 3600.0"
            ),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"));
        m.forget_series(&labels, &["1h".to_string()]);
        let text = m.encode();
        assert!(!text.contains("shop"), "{text}");
    }

    #[test]
    fn a_removed_rule_leaves_no_health_metric_behind() {
        let m = Metrics::new();
        for rule in ["g/A", "g/B"] {
            m.series_modelled.get_or_create(&one("rule", rule)).set(3);
            m.query_duration
                .get_or_create(&one("rule", rule))
                .observe(0.1);
            m.fit_duration
                .get_or_create(&one("rule", rule))
                .observe(0.1);
            m.series_limit_dropped
                .get_or_create(&one("rule", rule))
                .inc();
            m.alerts
                .get_or_create(&with_label(&one("rule", rule), "state", "firing"))
                .set(1);
            m.count_error(rule, "timeout");
            m.count_error(rule, "fit");
        }
        m.forget_rule("g/A");
        let text = m.encode();
        assert!(!text.contains("rule=\"g/A\""), "{text}");
        for family in [
            "prognos_series_modelled",
            "prognos_query_duration_seconds_count",
            "prognos_fit_duration_seconds_count",
            "prognos_errors_total",
            "prognos_alerts",
        ] {
            assert!(
                text.lines()
                    .any(|l| l.starts_with(family) && l.contains("rule=\"g/B\"")),
                "{family} of g/B kept:\n{text}"
            );
        }
    }

    #[test]
    fn a_series_label_named_rule_does_not_clash() {
        let l = series_labels("R", &[("rule".into(), "theirs".into())].into());
        assert_eq!(
            l,
            vec![
                ("exported_rule".into(), "theirs".into()),
                ("rule".into(), "R".into())
            ]
        );
    }
}
