//! Linear trend: least squares over a trailing window, extrapolated — the
//! same answer as PromQL `predict_linear` over the same window, evaluated at
//! the last sample.

use super::{FittedModel, Forecaster, check_input};
use crate::{Error, Result};

/// Least-squares line over the last `window` points (all points if None).
#[derive(Debug, Clone, Copy, Default)]
pub struct Linear {
    window: Option<usize>,
}

impl Linear {
    /// A linear model over the last `window` points (`None` for all).
    pub fn new(window: Option<usize>) -> Result<Self> {
        if window.is_some_and(|w| w < 2) {
            return Err(Error::InvalidParameter {
                name: "window",
                value: format!("{window:?}"),
                allowed: "must be at least 2 points",
            });
        }
        Ok(Self { window })
    }
}

/// A fitted line: its value at the last training point and its slope per step.
#[derive(Debug, Clone, Copy)]
pub struct FittedLinear {
    /// Value of the line at the last training point.
    pub intercept: f64,
    /// Change per step.
    pub slope: f64,
    window: Option<usize>,
}

/// Slope and value at the last point of the least-squares line through
/// `y[0..]` at x = 0, 1, …; computed on centred data for precision.
fn fit_line(y: &[f64]) -> (f64, f64) {
    let n = y.len() as f64;
    let mean_x = (n - 1.0) / 2.0;
    let mean_y = y.iter().sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (i, v) in y.iter().enumerate() {
        let dx = i as f64 - mean_x;
        sxy += dx * (v - mean_y);
        sxx += dx * dx;
    }
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    (mean_y + slope * (n - 1.0 - mean_x), slope)
}

/// Whether the least-squares slope through `y` (at x = 0, 1, …) differs
/// from zero at the 95 % level (Student's t with n − 2 degrees of freedom).
/// A trend drawn through a few points of a level shift or a spike is not:
/// extrapolated hours ahead it would predict crossings that never come.
pub fn slope_is_significant(y: &[f64]) -> bool {
    let n = y.len();
    if n < 3 || y.iter().any(|v| !v.is_finite()) {
        return false;
    }
    let nf = n as f64;
    let mean_x = (nf - 1.0) / 2.0;
    let mean_y = y.iter().sum::<f64>() / nf;
    let (intercept_last, slope) = fit_line(y);
    let intercept0 = intercept_last - slope * (nf - 1.0);
    let (mut sxx, mut sse) = (0.0, 0.0);
    for (i, v) in y.iter().enumerate() {
        let dx = i as f64 - mean_x;
        sxx += dx * dx;
        let r = v - (intercept0 + slope * i as f64);
        sse += r * r;
    }
    if slope == 0.0 || sxx <= 0.0 {
        return false;
    }
    let scale = mean_y.abs().max(slope.abs()).max(1e-300);
    let se = (sse / (nf - 2.0) / sxx).sqrt();
    // A perfect line (no residual beyond rounding) is as significant as can be.
    if se <= scale * 1e-12 {
        return true;
    }
    (slope / se).abs() > t_critical(n - 2)
}

/// The latest points of `y` that show a trend still going on, as a count:
/// `Some(k)` when the slope of the whole of `y` is significant (see
/// [`slope_is_significant`]) and so is the slope of its latest half (at least
/// [`RECENT_TREND_POINTS`] points) in the same direction; `k` is that half's
/// length, the points a line of the trend should be fitted on. A ramp that
/// has levelled off (a nightly backup lifting CPU from 16 % to 27 % in three
/// minutes, then holding) fails the second test at once, while a queue
/// filling at 1,000 a minute passes both.
pub fn recent_trend(y: &[f64]) -> Option<usize> {
    if !slope_is_significant(y) {
        return None;
    }
    let k = (y.len() / 2).max(RECENT_TREND_POINTS).min(y.len());
    let recent = &y[y.len() - k..];
    (k == y.len()
        || slope_is_significant(recent) && fit_line(recent).1.signum() == fit_line(y).1.signum())
    .then_some(k)
}

/// Fewest latest points whose own slope must confirm a trend (see
/// [`recent_trend`]): with four, Student's t has two degrees of freedom.
pub const RECENT_TREND_POINTS: usize = 4;

/// Two-sided 95 % quantile of Student's t with `dof` degrees of freedom.
fn t_critical(dof: usize) -> f64 {
    const TABLE: [f64; 10] = [12.71, 4.30, 3.18, 2.78, 2.57, 2.45, 2.36, 2.31, 2.26, 2.23];
    match dof {
        0 => f64::INFINITY,
        d if d <= TABLE.len() => TABLE[d - 1],
        d => 1.96 + 2.4 / d as f64,
    }
}

impl Forecaster for Linear {
    type Fitted = FittedLinear;
    fn fit(&self, y: &[f64]) -> Result<FittedLinear> {
        check_input("linear", y, 2)?;
        let w = self.window.unwrap_or(y.len()).min(y.len());
        let (intercept, slope) = fit_line(&y[y.len() - w..]);
        Ok(FittedLinear {
            intercept,
            slope,
            window: self.window,
        })
    }
}

impl FittedModel for FittedLinear {
    fn name(&self) -> &'static str {
        "linear"
    }

    fn predict(&self, horizon: usize) -> Vec<f64> {
        (1..=horizon)
            .map(|h| self.intercept + self.slope * h as f64)
            .collect()
    }

    fn replay(&self, y: &[f64], origins: &[usize], horizons: &[usize]) -> Vec<f64> {
        // Prefix sums of centred values make each origin O(1).
        let centre = y.iter().sum::<f64>() / y.len().max(1) as f64;
        let mut s0 = Vec::with_capacity(y.len() + 1);
        let mut s1 = Vec::with_capacity(y.len() + 1);
        s0.push(0.0);
        s1.push(0.0);
        for (i, v) in y.iter().enumerate() {
            s0.push(s0[i] + (v - centre));
            s1.push(s1[i] + i as f64 * (v - centre));
        }
        let mut out = Vec::with_capacity(origins.len() * horizons.len());
        for &o in origins {
            let line = (o >= 2 && o <= y.len()).then(|| {
                let a = o - self.window.unwrap_or(o).min(o);
                let k = (o - a) as f64;
                let sum_y = s0[o] - s0[a];
                let sum_xy = s1[o] - s1[a];
                let (fa, fo) = (a as f64, o as f64);
                let sum_x = (fo - 1.0) * fo / 2.0 - (fa - 1.0) * fa / 2.0;
                let sum_xx =
                    ((fo - 1.0) * fo * (2.0 * fo - 1.0) - (fa - 1.0) * fa * (2.0 * fa - 1.0)) / 6.0;
                let den = k * sum_xx - sum_x * sum_x;
                let slope = if den > 0.0 {
                    (k * sum_xy - sum_x * sum_y) / den
                } else {
                    0.0
                };
                let at_last = sum_y / k + slope * ((fo - 1.0) - sum_x / k) + centre;
                (at_last, slope)
            });
            for &h in horizons {
                out.push(match line {
                    Some((c, s)) => c + s * h as f64,
                    None => f64::NAN,
                });
            }
        }
        out
    }

    fn min_origin(&self) -> usize {
        2
    }

    fn size_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
    }
}

/// PromQL's `predict_linear(v[range], t)` on raw samples, evaluated at
/// `eval_time`: a least-squares line of value on time relative to
/// `eval_time`, its value `t` seconds later. None with fewer than two samples.
pub fn predict_linear(samples: &[(f64, f64)], eval_time: f64, t: f64) -> Option<f64> {
    if samples.len() < 2 {
        return None;
    }
    let n = samples.len() as f64;
    let (mut sx, mut sy, mut sxy, mut sxx) = (0.0, 0.0, 0.0, 0.0);
    for &(ts, v) in samples {
        let x = ts - eval_time;
        sx += x;
        sy += v;
        sxy += x * v;
        sxx += x * x;
    }
    let cov = sxy - sx * sy / n;
    let var = sxx - sx * sx / n;
    let slope = if var != 0.0 { cov / var } else { 0.0 };
    let intercept = sy / n - slope * sx / n;
    Some(intercept + slope * t)
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_slope_counts_only_when_it_stands_out_of_the_noise() {
        let ramp: Vec<f64> = (0..10).map(|i| 1000.0 * i as f64).collect();
        assert!(slope_is_significant(&ramp));
        let noisy_ramp: Vec<f64> = (0..30)
            .map(|i| 100.0 * i as f64 + [30.0, -20.0, 5.0][i % 3])
            .collect();
        assert!(slope_is_significant(&noisy_ramp));
        // A plateau after a step: a few points, no trend worth extrapolating.
        assert!(!slope_is_significant(&[55.0, 61.0, 58.0]));
        assert!(!slope_is_significant(&[60.0, 62.0, 59.0, 61.0, 60.5, 59.5]));
        assert!(!slope_is_significant(&[5.0, 5.0, 5.0, 5.0]));
        assert!(!slope_is_significant(&[1.0, 2.0]));
    }

    use super::*;

    #[test]
    fn a_trend_counts_only_while_its_latest_points_follow_it() {
        // CPU during a nightly backup (from a replay): a three-minute ramp,
        // then a plateau. The whole window's slope is significant, the
        // latest points' is not.
        let backup = [16.2, 20.1, 23.9, 27.4, 27.5, 27.3];
        assert!(slope_is_significant(&backup));
        assert_eq!(recent_trend(&backup), None);
        assert_eq!(recent_trend(&[22.1, 25.5, 29.0, 29.0, 29.0]), None);
        // CPU saturating: still climbing.
        assert_eq!(recent_trend(&[33.8, 37.0, 43.6, 53.1, 65.5]), Some(4));
        // A queue filling at 1,000 a minute, with a little jitter.
        let queue: Vec<f64> = (0..12)
            .map(|i| 1000.0 * i as f64 + [12.0, -8.0, 3.0][i % 3])
            .collect();
        assert_eq!(recent_trend(&queue), Some(6));
        // Slow growth in noise over many points: the latest half confirms it.
        let slow: Vec<f64> = (0..72)
            .map(|i| 100.0 + 2.0 * i as f64 + [9.0, -7.0, 4.0, -6.0][i % 4])
            .collect();
        assert_eq!(recent_trend(&slow), Some(36));
        // A ramp that slows to a creep: the line is fitted on the creep.
        let slowing = [11.7, 14.8, 18.2, 21.7, 25.0, 25.4, 25.8, 26.4, 27.4, 27.7];
        assert_eq!(recent_trend(&slowing), Some(5));
        // A rise that turned into a fall.
        let turned: Vec<f64> = (0..20)
            .map(|i| {
                if i < 14 {
                    i as f64 * 10.0
                } else {
                    130.0 - (i - 13) as f64 * 8.0
                }
            })
            .collect();
        assert_eq!(recent_trend(&turned), None);
    }

    #[test]
    fn extends_an_exact_line() {
        let y: Vec<f64> = (0..10).map(|i| 3.0 + 2.0 * i as f64).collect();
        let m = Linear::default().fit(&y).unwrap();
        let f = m.predict(3);
        assert!((f[0] - 23.0).abs() < 1e-9 && (f[2] - 27.0).abs() < 1e-9);
    }

    #[test]
    fn same_answer_as_promql_predict_linear() {
        let step = 300.0;
        let y: Vec<f64> = (0..50)
            .map(|i| (i as f64 * 0.37).sin() * 5.0 + i as f64)
            .collect();
        let window = 20;
        let m = Linear::new(Some(window)).unwrap().fit(&y).unwrap();
        let samples: Vec<(f64, f64)> = (30..50).map(|i| (i as f64 * step, y[i])).collect();
        let eval = 49.0 * step;
        for h in [1usize, 6, 12] {
            let ours = m.predict(h)[h - 1];
            let prom = predict_linear(&samples, eval, h as f64 * step).unwrap();
            assert!((ours - prom).abs() < 1e-9, "h={h}: {ours} vs {prom}");
        }
    }

    #[test]
    fn replay_at_end_matches_fit() {
        let y: Vec<f64> = (0..40)
            .map(|i| (i as f64 * 0.5).cos() + 0.1 * i as f64)
            .collect();
        for window in [None, Some(10)] {
            let m = Linear::new(window).unwrap().fit(&y).unwrap();
            let r = m.replay(&y, &[40], &[1, 5]);
            let p = m.predict(5);
            assert!((r[0] - p[0]).abs() < 1e-9 && (r[1] - p[4]).abs() < 1e-9);
        }
    }

    #[test]
    fn window_below_two_rejected() {
        assert!(Linear::new(Some(1)).is_err());
        assert!(Linear::default().fit(&[1.0]).is_err());
    }
}
