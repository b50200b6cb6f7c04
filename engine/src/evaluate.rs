//! Evaluating one rule's condition on one modelled series: what to export
//! and whether the alert condition holds. Pure: the time and the series are
//! passed in.

use std::time::Duration;

use prognos_models::forecast::Level;
use prognos_models::threshold::{Direction, describe, humanize_seconds, time_to_threshold};

use crate::config::{Condition, Rule};
use crate::modelled::ModelledSeries;

pub use crate::config::MAX_LOOKAHEAD_STEPS;

/// What one evaluation of a rule found for one series.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesVerdict {
    /// Forecasts at the rule's horizons: (label such as "1h", central, lower, upper).
    pub forecasts: Vec<(String, f64, f64, f64)>,
    /// Seconds until the central forecast crosses the rule's threshold, if it does within the look-ahead.
    pub eta_secs: Option<i64>,
    /// The crossing in words: "in ~3d 4h (between 2d and 5d)".
    pub eta_text: Option<String>,
    /// Seconds until the band's near edge crosses the threshold (the
    /// earliest plausible crossing), if it does within the look-ahead.
    pub eta_earliest_secs: Option<i64>,
    /// Seconds until the band's far edge crosses it (the latest plausible
    /// crossing), if it does within the look-ahead.
    pub eta_latest_secs: Option<i64>,
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
///
/// The forecast is searched for a threshold crossing as far as the longest
/// of the rule's horizons and its condition's look-ahead reach, so the ETA
/// is reported whenever it is known; the condition holds only when the
/// crossing is expected within `within` (forecast) or sooner than
/// `less_than` (time to threshold), to the second. A series already past
/// the threshold holds with an ETA of 0. The forecast is kept inside the
/// rule's `bounds`.
pub fn evaluate(rule: &Rule, series: &ModelledSeries, level: Level) -> SeriesVerdict {
    let step = series.step();
    let horizon_steps: Vec<usize> = rule.horizons.iter().map(|&h| steps(h, step)).collect();
    // The threshold, how far to search, and the longest ETA that holds.
    let (threshold, lookahead, limit) = match &rule.condition {
        Condition::Forecast {
            threshold,
            direction,
            within,
        } => (
            Some((*threshold, *direction)),
            steps(*within, step),
            *within,
        ),
        Condition::TimeToThreshold {
            threshold,
            direction,
            less_than,
        } => {
            // Look twice as far as the bound so the time is known before it alerts.
            (
                Some((*threshold, *direction)),
                steps(*less_than * 2, step),
                *less_than,
            )
        }
        Condition::Anomaly { .. } | Condition::BurnRate { .. } => (None, 0, Duration::ZERO),
    };
    let longest = horizon_steps
        .iter()
        .copied()
        .max()
        .unwrap_or(0)
        .max(lookahead);
    let f = rule.bounds.apply(series.forecast(longest, level));
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
        eta_earliest_secs: None,
        eta_latest_secs: None,
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
        verdict.eta_earliest_secs = crossing.earliest.map(|k| k as i64 * step);
        verdict.eta_latest_secs = if now_crossed {
            Some(0)
        } else {
            crossing.latest.map(|k| k as i64 * step)
        };
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
        let limit = i64::try_from(limit.as_secs()).unwrap_or(i64::MAX);
        verdict.holds = verdict.eta_secs.is_some_and(|s| s <= limit);
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
    use std::collections::BTreeMap;

    use prognos_models::forecast::{Bounds, ModelKind};

    use crate::config::BurnWindow;
    use crate::modelled::Labels;

    const STEP: i64 = 60;

    fn mins(m: u64) -> Duration {
        Duration::from_secs(60 * m)
    }

    fn rule(condition: Condition, horizons: &[Duration]) -> Rule {
        Rule {
            name: "R".into(),
            expr: "x".into(),
            history: Duration::from_secs(86_400),
            step: Duration::from_secs(STEP as u64),
            model: ModelKind::Linear,
            horizons: horizons.to_vec(),
            series_limit: 10,
            condition,
            for_: Duration::ZERO,
            keep_firing_for: Duration::ZERO,
            bounds: Bounds::NONE,
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            line: 1,
        }
    }

    /// A series of 200 points a minute apart, `f(i)` at point `i`, fitted
    /// with `kind`.
    fn series(kind: ModelKind, f: impl Fn(i64) -> f64) -> ModelledSeries {
        let samples: Vec<(i64, f64)> = (0..200).map(|i| (i * STEP, f(i))).collect();
        ModelledSeries::fit(
            Labels::new(),
            &samples,
            &crate::modelled::FitSpec::new(STEP, kind, 2 * 1440),
            0,
        )
        .unwrap()
    }

    /// Rises by 1 a minute: 209 at the last point, so 238.5 is crossed in 30 minutes.
    fn rising() -> ModelledSeries {
        series(ModelKind::Linear, |i| 10.0 + i as f64)
    }

    /// Falls by 1 a minute: 190 at the last point, so 160.5 is crossed in 30 minutes.
    fn falling() -> ModelledSeries {
        series(ModelKind::Linear, |i| 389.0 - i as f64)
    }

    fn forecast(threshold: f64, direction: Direction, within: Duration) -> Condition {
        Condition::Forecast {
            threshold,
            direction,
            within,
        }
    }

    fn ttt(threshold: f64, direction: Direction, less_than: Duration) -> Condition {
        Condition::TimeToThreshold {
            threshold,
            direction,
            less_than,
        }
    }

    /// Rows: what, the series, the condition, the horizons, whether it
    /// holds, the ETA in seconds.
    type Row = (
        &'static str,
        fn() -> ModelledSeries,
        Condition,
        Vec<Duration>,
        bool,
        Option<i64>,
    );

    fn check_rows(rows: Vec<Row>) {
        let level = Level::try_from(0.95).unwrap();
        for (what, make, condition, horizons, holds, eta) in rows {
            let v = evaluate(&rule(condition, &horizons), &make(), level);
            assert_eq!(v.holds, holds, "{what}: {v:?}");
            // Within a step: a model that cannot update online forecasts
            // from the point before the latest until it is refitted.
            let close = match (v.eta_secs, eta) {
                (Some(got), Some(want)) => (got - want).abs() <= STEP,
                (got, want) => got == want,
            };
            assert!(close, "{what}: ETA {:?}, want {eta:?}: {v:?}", v.eta_secs);
        }
    }

    /// `within` and `less_than` are honoured to the second, whatever the
    /// horizons: an ETA equal to the limit holds, one a second longer not.
    #[test]
    fn the_limit_is_exact() {
        use Direction::*;
        let level = Level::try_from(0.95).unwrap();
        let long = [mins(60), mins(1440)];
        let eta = evaluate(
            &rule(forecast(238.5, Above, mins(60)), &long),
            &rising(),
            level,
        )
        .eta_secs
        .expect("a crossing within the hour");
        let at = Duration::from_secs(eta as u64);
        let before = at - Duration::from_secs(1);
        for (condition, holds) in [
            (forecast(238.5, Above, at), true),
            (forecast(238.5, Above, before), false),
            (ttt(238.5, Above, at), true),
            (ttt(238.5, Above, before), false),
        ] {
            let v = evaluate(&rule(condition.clone(), &long), &rising(), level);
            assert_eq!(v.holds, holds, "{condition:?}: {v:?}");
            assert_eq!(v.eta_secs, Some(eta), "{condition:?}");
        }
    }

    #[test]
    fn forecast_holds_only_within_within() {
        use Direction::*;
        let short = vec![mins(15)];
        let long = vec![mins(60), mins(1440)];
        check_rows(vec![
            (
                "crossing in 30m, within 1h, horizons shorter",
                rising,
                forecast(238.5, Above, mins(60)),
                short.clone(),
                true,
                Some(1800),
            ),
            (
                "crossing in 30m, within 10m, horizons 1h and 1d: ETA told, no alert",
                rising,
                forecast(238.5, Above, mins(10)),
                long.clone(),
                false,
                Some(1800),
            ),
            (
                "crossing in 30m, within 40m",
                rising,
                forecast(238.5, Above, mins(40)),
                long.clone(),
                true,
                Some(1800),
            ),
            (
                "crossing in 30m, within 25m",
                rising,
                forecast(238.5, Above, mins(25)),
                long.clone(),
                false,
                Some(1800),
            ),
            (
                "crossing in 10h, within 1h, horizons 1d",
                rising,
                forecast(808.5, Above, mins(60)),
                long.clone(),
                false,
                Some(36_000),
            ),
            (
                "beyond every horizon and within",
                rising,
                forecast(1e6, Above, mins(60)),
                long.clone(),
                false,
                None,
            ),
            (
                "already above",
                rising,
                forecast(100.0, Above, mins(5)),
                short.clone(),
                true,
                Some(0),
            ),
            (
                "falling, below 160 in 30m, within 1h",
                falling,
                forecast(160.5, Below, mins(60)),
                short.clone(),
                true,
                Some(1800),
            ),
            (
                "falling, below 160 in 30m, within 20m, horizons 1d",
                falling,
                forecast(160.5, Below, mins(20)),
                long.clone(),
                false,
                Some(1800),
            ),
            (
                "falling, already below",
                falling,
                forecast(195.0, Below, mins(5)),
                short.clone(),
                true,
                Some(0),
            ),
            (
                "falling never rises above",
                falling,
                forecast(250.0, Above, mins(60)),
                long.clone(),
                false,
                None,
            ),
        ]);
    }

    #[test]
    fn time_to_threshold_holds_only_under_less_than() {
        use Direction::*;
        let short = vec![mins(15)];
        let long = vec![mins(60), mins(1440)];
        check_rows(vec![
            (
                "30m away, less than 1h",
                rising,
                ttt(238.5, Above, mins(60)),
                short.clone(),
                true,
                Some(1800),
            ),
            (
                "30m away, less than 40m",
                rising,
                ttt(238.5, Above, mins(40)),
                short.clone(),
                true,
                Some(1800),
            ),
            (
                "30m away, less than 20m: seen within the 2× look-ahead",
                rising,
                ttt(238.5, Above, mins(20)),
                short.clone(),
                false,
                Some(1800),
            ),
            (
                "30m away, less than 20m, horizons 1d",
                rising,
                ttt(238.5, Above, mins(20)),
                long.clone(),
                false,
                Some(1800),
            ),
            (
                "30m away, less than 10m: past the look-ahead of 20m",
                rising,
                ttt(238.5, Above, mins(10)),
                short.clone(),
                false,
                None,
            ),
            (
                "already above",
                rising,
                ttt(100.0, Above, mins(10)),
                short.clone(),
                true,
                Some(0),
            ),
            (
                "falling, below 160 in 30m, less than 1h",
                falling,
                ttt(160.5, Below, mins(60)),
                short.clone(),
                true,
                Some(1800),
            ),
            (
                "falling, below 160 in 30m, less than 15m, horizons 1d",
                falling,
                ttt(160.5, Below, mins(15)),
                long.clone(),
                false,
                Some(1800),
            ),
        ]);
    }

    #[test]
    fn anomaly_holds_when_the_peak_score_reaches_score_above() {
        let level = Level::try_from(0.95).unwrap();
        let calm = || series(ModelKind::Naive, |i| 100.0 + (i % 3) as f64);
        let mut spiked = calm();
        spiked.absorb(&[(200 * STEP, 100_000.0)], level);
        let mut recovered = calm();
        recovered.absorb(&[(200 * STEP, 100_000.0)], level);
        recovered.absorb(&[(201 * STEP, 101.0), (202 * STEP, 102.0)], level);
        assert!(spiked.peak_score > 0.5, "{}", spiked.peak_score);
        let rows: [(&str, &ModelledSeries, f64, bool); 5] = [
            ("calm, 0.9", &calm(), 0.9, false),
            ("calm, 0", &calm(), 0.0, true),
            ("spike, 0.5", &spiked, 0.5, true),
            (
                "spike, 1.0 is above any score below 1",
                &spiked,
                1.0,
                spiked.peak_score >= 1.0,
            ),
            (
                "back to normal, 0.5",
                &recovered,
                0.5,
                recovered.peak_score >= 0.5,
            ),
        ];
        for (what, s, score_above, holds) in rows {
            let v = evaluate(
                &rule(Condition::Anomaly { score_above }, &[mins(60)]),
                s,
                level,
            );
            assert_eq!(v.holds, holds, "{what}: {v:?}");
            assert_eq!(v.value, s.peak_score, "{what}: the value is the score");
            assert_eq!(v.eta_secs, None, "{what}");
            assert_eq!(v.forecasts.len(), 1, "{what}: horizons still exported");
        }
    }

    #[test]
    fn burn_rate_never_holds_from_a_model() {
        let level = Level::try_from(0.95).unwrap();
        let r = rule(
            Condition::BurnRate {
                objective: 0.999,
                errors: "e".into(),
                total: "t".into(),
                windows: BurnWindow::defaults(),
            },
            &[mins(60)],
        );
        for s in [rising(), falling()] {
            let v = evaluate(&r, &s, level);
            assert!(!v.holds && v.eta_secs.is_none(), "{v:?}");
            assert_eq!(v.value, s.last_value);
        }
    }

    #[test]
    fn forecasts_stay_inside_the_rule_bounds() {
        let level = Level::try_from(0.95).unwrap();
        let mut r = rule(
            forecast(-5.0, Direction::Below, mins(600)),
            &[mins(60), mins(600)],
        );
        r.bounds = Bounds::NON_NEGATIVE;
        // Falls from 190 by 1 a minute: the line passes 0 after 190 minutes.
        let v = evaluate(&r, &falling(), level);
        let (_, p, lo, _) = &v.forecasts[1];
        assert_eq!((*p, *lo), (0.0, 0.0), "{v:?}");
        assert!(!v.holds, "a bounded series never goes below -5: {v:?}");
    }

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
