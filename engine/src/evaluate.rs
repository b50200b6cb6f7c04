//! Evaluating one rule's condition on one modelled series: what to export
//! and whether the alert condition holds. Pure: the time and the series are
//! passed in.

use std::time::Duration;

use prognos_models::forecast::Level;
use prognos_models::threshold::{Direction, describe, humanize_seconds, time_to_threshold};

use crate::config::{Condition, Rule};
use crate::modelled::ModelledSeries;

/// Longest forecast computed to look for a threshold crossing, in steps.
pub const MAX_LOOKAHEAD_STEPS: usize = 8640;

/// What one evaluation of a rule found for one series.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesVerdict {
    /// Forecasts at the rule's horizons: (label such as "1h", central, lower, upper).
    pub forecasts: Vec<(String, f64, f64, f64)>,
    /// Seconds until the central forecast crosses the rule's threshold, if it does within the look-ahead.
    pub eta_secs: Option<i64>,
    /// The crossing in words: "in ~3d 4h (between 2d and 5d)".
    pub eta_text: Option<String>,
    /// Whether the rule's condition holds.
    pub holds: bool,
    /// The value reported with the alert (`$value`): the latest value, or the anomaly score for anomaly rules.
    pub value: f64,
}

/// Steps in `d` at `step` seconds, at least 1.
pub fn steps(d: Duration, step: i64) -> usize {
    ((d.as_secs() as i64 / step.max(1)).max(1) as usize).min(MAX_LOOKAHEAD_STEPS)
}

/// A horizon as a label: "1h", "1d", "90m".
pub fn horizon_label(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Evaluates `rule` on `series`. Burn-rate rules are evaluated from
/// Prometheus ratios, not from a model: here they never hold.
pub fn evaluate(rule: &Rule, series: &ModelledSeries, level: Level) -> SeriesVerdict {
    let step = series.step();
    let horizon_steps: Vec<usize> = rule.horizons.iter().map(|&h| steps(h, step)).collect();
    let (threshold, lookahead) = match &rule.condition {
        Condition::Forecast {
            threshold,
            direction,
            within,
        } => (Some((*threshold, *direction)), steps(*within, step)),
        Condition::TimeToThreshold {
            threshold,
            direction,
            less_than,
        } => {
            // Look twice as far as the bound so the time is known before it alerts.
            (Some((*threshold, *direction)), steps(*less_than * 2, step))
        }
        Condition::Anomaly { .. } | Condition::BurnRate { .. } => (None, 0),
    };
    let longest = horizon_steps
        .iter()
        .copied()
        .max()
        .unwrap_or(0)
        .max(lookahead);
    let f = series.forecast(longest, level);
    let forecasts = rule
        .horizons
        .iter()
        .zip(&horizon_steps)
        .filter(|(_, k)| **k <= f.len())
        .map(|(h, &k)| {
            (
                horizon_label(*h),
                f.point[k - 1],
                f.lower[k - 1],
                f.upper[k - 1],
            )
        })
        .collect();
    let mut verdict = SeriesVerdict {
        forecasts,
        eta_secs: None,
        eta_text: None,
        holds: false,
        value: series.last_value,
    };
    if let Some((threshold, direction)) = threshold {
        let now_crossed = match direction {
            Direction::Above => series.last_value >= threshold,
            Direction::Below => series.last_value <= threshold,
        };
        let mut crossing = time_to_threshold(&f, threshold, direction);
        if now_crossed {
            crossing.expected = Some(0);
            crossing.earliest = Some(0);
        }
        verdict.eta_secs = crossing.expected.map(|k| k as i64 * step);
        verdict.eta_text = crossing.expected.map(|k| {
            if k == 0 {
                "now".to_string()
            } else if crossing.latest.is_none() || crossing.earliest.is_none() {
                format!("~{}", humanize_seconds(k as i64 * step))
            } else {
                describe(&crossing, step)
                    .trim_start_matches("in ")
                    .to_string()
            }
        });
        verdict.holds = match &rule.condition {
            Condition::Forecast { .. } => crossing.expected.is_some(),
            Condition::TimeToThreshold { less_than, .. } => verdict
                .eta_secs
                .is_some_and(|s| s <= less_than.as_secs() as i64),
            _ => false,
        };
    }
    if let Condition::Anomaly { score_above } = rule.condition {
        verdict.value = series.peak_score;
        verdict.holds = series.peak_score >= score_above;
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn horizon_labels() {
        assert_eq!(horizon_label(Duration::from_secs(3600)), "1h");
        assert_eq!(horizon_label(Duration::from_secs(86_400)), "1d");
        assert_eq!(horizon_label(Duration::from_secs(5400)), "90m");
        assert_eq!(horizon_label(Duration::from_secs(45)), "45s");
    }

    #[test]
    fn steps_are_at_least_one_and_capped() {
        assert_eq!(steps(Duration::from_secs(10), 300), 1);
        assert_eq!(steps(Duration::from_secs(3600), 300), 12);
        assert_eq!(
            steps(Duration::from_secs(365 * 86_400), 60),
            MAX_LOOKAHEAD_STEPS
        );
    }
}
