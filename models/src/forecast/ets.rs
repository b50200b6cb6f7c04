//! Automatic exponential smoothing without seasonality: simple (ANN), Holt
//! (AAN) and damped Holt (AAdN), chosen by AIC, parameters by a coarse grid
//! refined by coordinate search on the one-step squared error.
//!
//! augurs' AutoETS does the same job by Nelder–Mead and takes ~30 ms on a week
//! of 5-minute data; this one, a fraction of a millisecond, so that prognos can
//! refit ten thousand series a minute. It is also the trend model inside
//! [`super::mstl`].

use super::{FittedModel, Forecaster, check_input};
use crate::Result;

/// Automatic non-seasonal exponential smoothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Ets;

/// Smoothing parameters of an additive (damped) trend model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EtsParams {
    /// Level smoothing, in (0, 1).
    pub alpha: f64,
    /// Trend smoothing, in [0, alpha); 0 with `trend == false`.
    pub beta: f64,
    /// Damping, in (0, 1]; 1 is an undamped trend.
    pub phi: f64,
    /// Whether the model has a trend component.
    pub trend: bool,
}

/// A fitted ETS model: parameters and the state after the training data.
#[derive(Debug, Clone, Copy)]
pub struct FittedEts {
    /// The chosen parameters.
    pub params: EtsParams,
    level: f64,
    slope: f64,
    init: (f64, f64),
    /// Standard deviation of one-step errors in the training data.
    pub sigma: f64,
}

/// Initial level and slope: the first point and the mean change over the
/// first few points.
fn initial_state(y: &[f64]) -> (f64, f64) {
    let k = (y.len() / 2).clamp(1, 12);
    let a = y[..k].iter().sum::<f64>() / k as f64;
    let b = y[k..2 * k].iter().sum::<f64>() / k as f64;
    let slope = (b - a) / k as f64;
    (y[0], slope)
}

/// Runs the filter; returns the sum of squared one-step errors and the final state.
fn filter(y: &[f64], p: &EtsParams, init: (f64, f64)) -> (f64, f64, f64) {
    let (mut l, mut b) = (init.0, if p.trend { init.1 } else { 0.0 });
    let mut sse = 0.0;
    for &v in y {
        let yhat = l + p.phi * b;
        let e = v - yhat;
        sse += e * e;
        l = yhat + p.alpha * e;
        b = p.phi * b + p.beta * e;
    }
    (sse, l, b)
}

/// Sum of φ + φ² + … + φ^h.
fn damped_sum(phi: f64, h: usize) -> f64 {
    if phi >= 1.0 {
        h as f64
    } else {
        phi * (1.0 - phi.powi(h as i32)) / (1.0 - phi)
    }
}

fn search(y: &[f64], init: (f64, f64), trend: bool, damped: bool) -> (EtsParams, f64) {
    const ALPHAS: [f64; 8] = [0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.7, 0.95];
    const BETA_FRACTIONS: [f64; 4] = [0.005, 0.03, 0.1, 0.3];
    let phis: &[f64] = match (trend, damped) {
        (false, _) => &[1.0],
        (true, false) => &[1.0],
        (true, true) => &[0.85, 0.93, 0.98],
    };
    let fractions: &[f64] = if trend { &BETA_FRACTIONS } else { &[0.0] };
    let mut best = (
        EtsParams {
            alpha: 0.5,
            beta: 0.0,
            phi: 1.0,
            trend,
        },
        f64::INFINITY,
    );
    for &alpha in &ALPHAS {
        for &f in fractions {
            for &phi in phis {
                let p = EtsParams {
                    alpha,
                    beta: alpha * f,
                    phi,
                    trend,
                };
                let sse = filter(y, &p, init).0;
                if sse < best.1 {
                    best = (p, sse);
                }
            }
        }
    }
    // Coordinate refinement: halve the step around the best point.
    let (mut p, mut sse) = best;
    let mut step = (0.08, 0.4, 0.03);
    for _ in 0..4 {
        for dir in [-1.0, 1.0] {
            let mut q = p;
            q.alpha = (p.alpha + dir * step.0).clamp(0.005, 0.995);
            q.beta = q.beta.min(q.alpha * 0.95);
            let s = filter(y, &q, init).0;
            if s < sse {
                (p, sse) = (q, s);
            }
            if trend {
                let mut q = p;
                let frac = (p.beta / p.alpha * (1.0 + dir * step.1)).clamp(0.0, 0.95);
                q.beta = p.alpha * frac;
                let s = filter(y, &q, init).0;
                if s < sse {
                    (p, sse) = (q, s);
                }
            }
            if trend && damped {
                let mut q = p;
                q.phi = (p.phi + dir * step.2).clamp(0.8, 0.995);
                let s = filter(y, &q, init).0;
                if s < sse {
                    (p, sse) = (q, s);
                }
            }
        }
        step = (step.0 / 2.0, step.1 / 2.0, step.2 / 2.0);
    }
    (p, sse)
}

impl Forecaster for Ets {
    type Fitted = FittedEts;
    fn fit(&self, y: &[f64]) -> Result<FittedEts> {
        check_input("ets", y, 3)?;
        let init = initial_state(y);
        let n = y.len() as f64;
        let aic = |sse: f64, k: f64| n * (sse.max(1e-300) / n).ln() + 2.0 * k;
        let mut best: Option<(EtsParams, f64)> = None;
        for (trend, damped, k) in [(false, false, 2.0), (true, false, 4.0), (true, true, 5.0)] {
            if trend && y.len() < 10 {
                continue;
            }
            let (p, sse) = search(y, init, trend, damped);
            let score = aic(sse, k);
            if best.is_none_or(|(_, b)| score < b) {
                best = Some((p, score));
            }
        }
        let (params, _) = best.expect("the non-trend model is always tried");
        let (sse, level, slope) = filter(y, &params, init);
        Ok(FittedEts {
            params,
            level,
            slope,
            init,
            sigma: (sse / n).sqrt(),
        })
    }
}

impl FittedEts {
    /// The model's state (level, slope) after `y`, starting from the same
    /// initial state as the training data.
    pub fn state_after(&self, y: &[f64]) -> (f64, f64) {
        let (_, l, b) = filter(y, &self.params, self.init);
        (l, b)
    }

    /// Forecast `h` steps ahead from state `(level, slope)`.
    pub fn ahead(&self, state: (f64, f64), h: usize) -> f64 {
        state.0 + damped_sum(self.params.phi, h) * state.1
    }
}

impl FittedModel for FittedEts {
    fn name(&self) -> &'static str {
        "ets"
    }

    fn predict(&self, horizon: usize) -> Vec<f64> {
        (1..=horizon)
            .map(|h| self.ahead((self.level, self.slope), h))
            .collect()
    }

    fn replay(&self, y: &[f64], origins: &[usize], horizons: &[usize]) -> Vec<f64> {
        replay_states(
            y,
            &self.params,
            self.init,
            origins,
            horizons,
            |o, h, state| {
                let _ = o;
                self.ahead(state, h)
            },
        )
    }

    fn min_origin(&self) -> usize {
        2
    }

    fn update(&mut self, y: &[f64]) -> bool {
        if y.iter().any(|v| !v.is_finite()) {
            return false;
        }
        (self.level, self.slope) = self.advance((self.level, self.slope), y);
        true
    }

    fn size_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
    }
}

impl FittedEts {
    /// The state after `y`, starting from `state`.
    pub fn advance(&self, state: (f64, f64), y: &[f64]) -> (f64, f64) {
        let p = &self.params;
        let (mut l, mut b) = state;
        for &v in y {
            let yhat = l + p.phi * b;
            let e = v - yhat;
            l = yhat + p.alpha * e;
            b = p.phi * b + p.beta * e;
        }
        (l, b)
    }
}

/// Runs the filter once over `y` and calls `forecast(origin, h, state)` at
/// every origin (which must be sorted ascending); unsorted or out-of-range
/// origins give NaN.
pub(crate) fn replay_states(
    y: &[f64],
    params: &EtsParams,
    init: (f64, f64),
    origins: &[usize],
    horizons: &[usize],
    forecast: impl Fn(usize, usize, (f64, f64)) -> f64,
) -> Vec<f64> {
    let mut out = vec![f64::NAN; origins.len() * horizons.len()];
    let (mut l, mut b) = (init.0, if params.trend { init.1 } else { 0.0 });
    let mut consumed = 0usize;
    for (i, &o) in origins.iter().enumerate() {
        if o < 2 || o > y.len() || o < consumed {
            continue;
        }
        while consumed < o {
            let yhat = l + params.phi * b;
            let e = y[consumed] - yhat;
            l = yhat + params.alpha * e;
            b = params.phi * b + params.beta * e;
            consumed += 1;
        }
        for (j, &h) in horizons.iter().enumerate() {
            if h > 0 {
                out[i * horizons.len() + j] = forecast(o, h, (l, b));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_a_trend() {
        let y: Vec<f64> = (0..200)
            .map(|i| 10.0 + 0.5 * i as f64 + ((i * 7919) % 13) as f64 * 0.01)
            .collect();
        let m = Ets.fit(&y).unwrap();
        assert!(m.params.trend);
        let f = m.predict(10);
        assert!((f[9] - (10.0 + 0.5 * 209.0)).abs() < 1.0, "{f:?}");
    }

    #[test]
    fn constant_series_forecasts_the_constant() {
        let m = Ets.fit(&[4.0; 50]).unwrap();
        assert!(m.predict(5).iter().all(|v| (v - 4.0).abs() < 1e-9));
    }

    #[test]
    fn update_equals_fitting_state_over_the_longer_series() {
        let y: Vec<f64> = (0..300)
            .map(|i| (i as f64 * 0.1).sin() * 3.0 + 0.02 * i as f64)
            .collect();
        let mut m = Ets.fit(&y[..250]).unwrap();
        assert!(m.update(&y[250..]));
        let direct = m.replay(&y, &[300], &[1, 5]);
        let p = m.predict(5);
        assert!((direct[0] - p[0]).abs() < 1e-9 && (direct[1] - p[4]).abs() < 1e-9);
        assert!(!m.update(&[f64::NAN]));
    }

    #[test]
    fn replay_at_end_matches_predict() {
        let y: Vec<f64> = (0..120)
            .map(|i| (i as f64 * 0.2).sin() + 0.01 * i as f64)
            .collect();
        let m = Ets.fit(&y).unwrap();
        let r = m.replay(&y, &[60, 120], &[1, 4]);
        let p = m.predict(4);
        assert!((r[2] - p[0]).abs() < 1e-9 && (r[3] - p[3]).abs() < 1e-9);
        assert!(r[0].is_finite());
    }
}
