//! Time to threshold: from a forecast, when a series will cross a level, with
//! its uncertainty — "shop DB full in ~3 d, between 2 d and 5 d".

use crate::forecast::Forecast;

/// Which way the series must go to cross the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Alert when the series rises to or above the threshold (disk full).
    Above,
    /// Alert when the series falls to or below the threshold (free space gone).
    Below,
}

/// Steps ahead (1 = the next step) at which the threshold is crossed.
/// `None` means not within the forecast's horizon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crossing {
    /// When the central path crosses.
    pub expected: Option<usize>,
    /// When the pessimistic bound crosses (the upper bound for `Above`).
    pub earliest: Option<usize>,
    /// When the optimistic bound crosses (the lower bound for `Above`).
    pub latest: Option<usize>,
}

/// When `forecast` crosses `threshold` going `direction`.
pub fn time_to_threshold(forecast: &Forecast, threshold: f64, direction: Direction) -> Crossing {
    let crosses = |v: f64| match direction {
        Direction::Above => v >= threshold,
        Direction::Below => v <= threshold,
    };
    let first = |path: &[f64]| path.iter().position(|&v| crosses(v)).map(|i| i + 1);
    let (pessimistic, optimistic) = match direction {
        Direction::Above => (&forecast.upper, &forecast.lower),
        Direction::Below => (&forecast.lower, &forecast.upper),
    };
    Crossing {
        expected: first(&forecast.point),
        earliest: first(pessimistic),
        latest: first(optimistic),
    }
}

/// A duration in seconds as people say it: "45s", "12m", "3h 20m", "3d 4h".
pub fn humanize_seconds(secs: i64) -> String {
    let s = secs.max(0);
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, m) => format!("{m}m"),
        (0, h, 0) => format!("{h}h"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, 0, _) => format!("{d}d"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

/// A crossing in words with the step length: "in ~3d 4h (between 2d and 5d)".
pub fn describe(crossing: &Crossing, step_secs: i64) -> String {
    let t = |k: usize| humanize_seconds(k as i64 * step_secs);
    match (crossing.expected, crossing.earliest, crossing.latest) {
        (None, None, _) => "not within the horizon".to_string(),
        (None, Some(e), _) => format!("not expected within the horizon (possibly in {})", t(e)),
        (Some(x), e, l) => {
            let lo = e.map_or_else(|| t(x), t);
            let hi = l.map_or_else(|| "beyond the horizon".to_string(), t);
            format!("in ~{} (between {lo} and {hi})", t(x))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rising() -> Forecast {
        let point: Vec<f64> = (1..=10).map(|k| 10.0 * k as f64).collect();
        Forecast {
            lower: point.iter().map(|v| v - 15.0).collect(),
            upper: point.iter().map(|v| v + 15.0).collect(),
            point,
            level: 0.95,
        }
    }

    #[test]
    fn rising_series_crosses_with_bounds() {
        let c = time_to_threshold(&rising(), 50.0, Direction::Above);
        assert_eq!(
            c,
            Crossing {
                expected: Some(5),
                earliest: Some(4),
                latest: Some(7)
            }
        );
        assert_eq!(describe(&c, 3600), "in ~5h (between 4h and 7h)");
    }

    #[test]
    fn never_crossing_is_none() {
        let c = time_to_threshold(&rising(), 1000.0, Direction::Above);
        assert_eq!(c.expected, None);
        assert_eq!(describe(&c, 60), "not within the horizon");
        let c = time_to_threshold(&rising(), -5.0, Direction::Below);
        assert_eq!(c.expected, None);
    }

    #[test]
    fn optimistic_bound_beyond_horizon() {
        let c = time_to_threshold(&rising(), 95.0, Direction::Above);
        assert_eq!(c.latest, None);
        assert!(describe(&c, 86_400).contains("beyond the horizon"));
    }

    #[test]
    fn humanized_durations() {
        assert_eq!(humanize_seconds(45), "45s");
        assert_eq!(humanize_seconds(3 * 86_400 + 4 * 3600 + 59), "3d 4h");
        assert_eq!(humanize_seconds(2 * 3600 + 5 * 60), "2h 5m");
        assert_eq!(humanize_seconds(-3), "0s");
    }
}
