//! What the model saw when an alert fired — the current and expected value
//! with its band, the time to threshold, the anomaly score, recent history
//! and the forecast — for notifications that explain. Pure.

use prognos_models::forecast::Level;
use prognos_notifiers::alert::{Eta, Explanation, ForecastPoint};

use crate::config::{Condition, Rule};
use crate::evaluate::SeriesVerdict;
use crate::modelled::ModelledSeries;

/// Most points of history, and of forecast, a chart shows.
pub const CHART_POINTS: usize = 144;

/// The annotation whose (rendered) value links to a Grafana panel.
pub const DASHBOARD_ANNOTATION: &str = "dashboard";

/// The condition's name as notifications print it.
pub fn condition_name(c: &Condition) -> &'static str {
    match c {
        Condition::Forecast { .. } => "forecast",
        Condition::TimeToThreshold { .. } => "time_to_threshold",
        Condition::Anomaly { .. } => "anomaly",
        Condition::BurnRate { .. } => "burn_rate",
    }
}

/// How many forecast steps a chart of `rule` shows: to the crossing and a
/// little past it when there is one, else half the chart.
pub fn chart_steps(verdict: Option<&SeriesVerdict>, step: i64) -> usize {
    let to_crossing = verdict
        .and_then(|v| v.eta_secs)
        .map(|s| (s / step.max(1)) as usize * 5 / 4 + 1);
    to_crossing
        .unwrap_or(CHART_POINTS / 2)
        .clamp(1, CHART_POINTS)
}

/// The explanation of an alert of `rule` on `series` (None for burn-rate
/// alerts, which have no model), with `history` for the chart.
pub fn explanation(
    rule: &Rule,
    series: Option<&ModelledSeries>,
    verdict: Option<&SeriesVerdict>,
    history: Vec<(i64, f64)>,
    dashboard_url: Option<String>,
    level: Level,
) -> Explanation {
    let threshold = match &rule.condition {
        Condition::Forecast { threshold, .. } | Condition::TimeToThreshold { threshold, .. } => {
            Some(*threshold)
        }
        _ => None,
    };
    let mut e = Explanation {
        condition: condition_name(&rule.condition).to_string(),
        expr: rule.expr.clone(),
        threshold,
        dashboard_url,
        level: Some(level.value()),
        ..Explanation::default()
    };
    if let Some(v) = verdict {
        e.eta = v.eta_secs.map(|s| Eta {
            seconds: s as f64,
            earliest: None,
            latest: None,
            text: v.eta_text.clone().unwrap_or_default(),
        });
        if series.is_none() {
            e.current = Some(v.value);
        }
    }
    if let Some(s) = series {
        e.current = Some(s.last_value);
        // JSON (the outbox) has no NaN: keep only finite numbers.
        if let Some((p, lo, hi)) = s.expected {
            e.expected = Some(p).filter(|v| v.is_finite());
            e.band = Some((lo, hi)).filter(|(l, h)| l.is_finite() && h.is_finite());
        }
        e.anomaly_score = Some(s.peak_score.max(s.score));
        let step = s.step();
        let f = s.forecast(chart_steps(verdict, step), level);
        e.forecast = (0..f.point.len())
            .map(|k| ForecastPoint {
                t: s.last_ts + (k as i64 + 1) * step,
                mean: f.point[k],
                lower: f.lower[k],
                upper: f.upper[k],
            })
            .collect();
    }
    let finite: Vec<(i64, f64)> = history.into_iter().filter(|p| p.1.is_finite()).collect();
    let skip = finite.len().saturating_sub(CHART_POINTS);
    e.history = finite.into_iter().skip(skip).collect();
    e.current = e.current.filter(|v| v.is_finite());
    e.anomaly_score = e.anomaly_score.filter(|v| v.is_finite());
    e
}
