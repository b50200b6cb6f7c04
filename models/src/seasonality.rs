//! Seasonal periods from the calendar, confirmed on the data.
//!
//! Metrics follow people and machines, so their seasons are a day and a week.
//! The candidate periods are those lengths in steps; each is kept only when
//! the series' autocorrelation at that lag is strong and stronger than at
//! lags that would be as strong without the season. A periodogram alone is
//! too coarse for this (augurs' answers 510 or 255 for a true 288).

/// One day in seconds.
pub const DAY: i64 = 86_400;
/// One week in seconds.
pub const WEEK: i64 = 7 * DAY;
/// Least autocorrelation at the seasonal lag for a season to be kept.
pub const MIN_ACF: f64 = 0.25;

/// The calendar periods (a day, a week) in steps of `step_secs`, where the
/// step divides them and the period is at least 2 steps.
pub fn calendar_periods(step_secs: i64) -> Vec<usize> {
    if step_secs <= 0 {
        return Vec::new();
    }
    [DAY, WEEK]
        .iter()
        .filter(|&&p| p % step_secs == 0 && p / step_secs >= 2)
        .map(|&p| (p / step_secs) as usize)
        .collect()
}

/// Autocorrelation of `y` at `lag` after removing a least-squares line.
pub fn acf(y: &[f64], lag: usize) -> f64 {
    let n = y.len();
    if lag == 0 || lag >= n {
        return 0.0;
    }
    let mean_x = (n as f64 - 1.0) / 2.0;
    let mean_y = y.iter().sum::<f64>() / n as f64;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (i, v) in y.iter().enumerate() {
        let dx = i as f64 - mean_x;
        sxy += dx * (v - mean_y);
        sxx += dx * dx;
    }
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    let r = |i: usize| y[i] - mean_y - slope * (i as f64 - mean_x);
    let var: f64 = (0..n).map(|i| r(i).powi(2)).sum();
    if var <= f64::EPSILON * n as f64 * mean_y.abs().max(1.0) {
        return 0.0;
    }
    (0..n - lag).map(|i| r(i) * r(i + lag)).sum::<f64>() / var
}

/// The calendar periods that the data confirm (a series must hold two full
/// periods for one to be considered).
pub fn confirmed_periods(y: &[f64], step_secs: i64) -> Vec<usize> {
    let mut out = Vec::new();
    let candidates = calendar_periods(step_secs);
    let day = (DAY % step_secs.max(1) == 0).then(|| (DAY / step_secs.max(1)) as usize);
    for p in candidates {
        if y.len() < 2 * p {
            continue;
        }
        let at = acf(y, p);
        // Off-season lag: half a period for the day; for the week, half a day
        // before it, so a purely daily series does not confirm a week.
        let off = match day {
            Some(d) if p > d => acf(y, p - d / 2).max(acf(y, d) - 0.05),
            _ => acf(y, p / 2),
        };
        if at >= MIN_ACF && at > off + 0.1 {
            out.push(p);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wave(n: usize, p: usize) -> Vec<f64> {
        (0..n)
            .map(|i| (std::f64::consts::TAU * i as f64 / p as f64).sin() + 0.001 * i as f64)
            .collect()
    }

    #[test]
    fn calendar_periods_of_five_minutes() {
        assert_eq!(calendar_periods(300), vec![288, 2016]);
        assert_eq!(calendar_periods(7 * 3600), vec![24]);
        assert_eq!(calendar_periods(7 * 60 + 1), Vec::<usize>::new());
        assert_eq!(calendar_periods(0), Vec::<usize>::new());
    }

    #[test]
    fn daily_wave_confirms_day_not_week() {
        let y = wave(288 * 15, 288);
        assert_eq!(confirmed_periods(&y, 300), vec![288]);
    }

    #[test]
    fn random_walk_confirms_nothing() {
        let mut s = 17u64;
        let mut acc = 0.0;
        let y: Vec<f64> = (0..288 * 4)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                acc += (s >> 33) as f64 / (1u64 << 31) as f64 - 0.5;
                acc
            })
            .collect();
        assert!(confirmed_periods(&y, 300).is_empty());
    }

    #[test]
    fn constant_series_confirms_nothing() {
        assert!(confirmed_periods(&[5.0; 600], 300).is_empty());
    }
}
