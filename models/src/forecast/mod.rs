//! Forecasters behind one trait.
//!
//! An unfitted model is configuration ([`Forecaster`]); `fit` turns it into a
//! fitted model ([`FittedModel`]) that forecasts a central path. Intervals
//! come from [`calibration`]: split-conformal quantiles of the model's own
//! rolling-origin errors on its history, so a 95% band holds about 95% of what
//! follows whatever the model's own error assumptions.
//!
//! Models: [`naive::SeasonalNaive`], [`linear::Linear`] (PromQL's
//! `predict_linear`), [`ets::Ets`] (automatic non-seasonal exponential
//! smoothing), [`mstl::Mstl`] (augurs' MSTL decomposition with an ETS trend) and
//! [`auto::Auto`], which picks one of them by rolling-origin validation.

pub mod auto;
pub mod bounds;
pub mod calibration;
pub mod ets;
pub mod linear;
pub mod mstl;
pub mod naive;
mod spec;

pub use bounds::Bounds;
pub use calibration::{Calibrated, Calibration};
pub use spec::{ModelKind, fit_model};

use crate::{Error, Result};

/// A confidence level for intervals, strictly between 0 and 1.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Level(f64);

impl Level {
    /// The level as a fraction, such as 0.95.
    pub fn value(self) -> f64 {
        self.0
    }
}

impl TryFrom<f64> for Level {
    type Error = Error;
    fn try_from(v: f64) -> Result<Self> {
        if v > 0.0 && v < 1.0 {
            Ok(Self(v))
        } else {
            Err(Error::InvalidParameter {
                name: "level",
                value: v.to_string(),
                allowed: "must be strictly between 0 and 1, such as 0.95",
            })
        }
    }
}

/// A forecast: the central path and its band, one entry per future step.
#[derive(Debug, Clone, PartialEq)]
pub struct Forecast {
    /// Central path.
    pub point: Vec<f64>,
    /// Lower bound at `level`.
    pub lower: Vec<f64>,
    /// Upper bound at `level`.
    pub upper: Vec<f64>,
    /// The level of the band.
    pub level: f64,
}

impl Forecast {
    /// Number of steps.
    pub fn len(&self) -> usize {
        self.point.len()
    }

    /// Whether the forecast has no steps (a horizon of zero).
    pub fn is_empty(&self) -> bool {
        self.point.is_empty()
    }
}

/// An unfitted model: configuration that `fit` turns into state.
pub trait Forecaster {
    /// The fitted model.
    type Fitted: FittedModel + 'static;
    /// Fits on `y`, a series at a regular step without missing values
    /// (interpolate gaps first).
    fn fit(&self, y: &[f64]) -> Result<Self::Fitted>;
}

/// A fitted model: parameters and the state after its training data.
pub trait FittedModel: std::fmt::Debug + Send + Sync {
    /// Short name, such as "ets" or "mstl".
    fn name(&self) -> &'static str;

    /// Central forecast for the `horizon` steps after the training data.
    fn predict(&self, horizon: usize) -> Vec<f64>;

    /// Replays the fitted parameters over `y` — the training data, possibly
    /// followed by newer points — and for each origin `o` in `origins` gives
    /// the forecast of `y[o + h - 1]` made from `y[..o]` alone, for each `h`
    /// in `horizons`. Row-major: `out[i * horizons.len() + j]`. Origins below
    /// [`FittedModel::min_origin`] give NaN.
    fn replay(&self, y: &[f64], origins: &[usize], horizons: &[usize]) -> Vec<f64>;

    /// The smallest origin the model can forecast from.
    fn min_origin(&self) -> usize {
        1
    }

    /// Advances the state by the points that followed the training data
    /// (or the last update), keeping the parameters: forecasts then start
    /// after them. Returns false when the model cannot update online and must
    /// be refitted; the state is then unchanged.
    fn update(&mut self, y: &[f64]) -> bool {
        let _ = y;
        false
    }

    /// Approximate heap and inline size of the fitted state, in bytes.
    fn size_bytes(&self) -> usize;
}

impl<M: FittedModel + ?Sized> FittedModel for Box<M> {
    fn name(&self) -> &'static str {
        (**self).name()
    }
    fn predict(&self, horizon: usize) -> Vec<f64> {
        (**self).predict(horizon)
    }
    fn replay(&self, y: &[f64], origins: &[usize], horizons: &[usize]) -> Vec<f64> {
        (**self).replay(y, origins, horizons)
    }
    fn min_origin(&self) -> usize {
        (**self).min_origin()
    }
    fn update(&mut self, y: &[f64]) -> bool {
        (**self).update(y)
    }
    fn size_bytes(&self) -> usize {
        (**self).size_bytes()
    }
}

/// Checks that `y` is long enough and finite.
pub(crate) fn check_input(model: &'static str, y: &[f64], needed: usize) -> Result<()> {
    if y.len() < needed {
        return Err(Error::TooShort {
            model,
            needed,
            got: y.len(),
        });
    }
    if let Some(i) = y.iter().position(|v| !v.is_finite()) {
        return Err(Error::InvalidSeries(format!(
            "{model}: value {} at index {i} is not finite (interpolate gaps before fitting)",
            y[i]
        )));
    }
    Ok(())
}

/// Quantile of the standard normal distribution (Acklam's rational
/// approximation, relative error below 1.2e-9).
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.383_577_518_672_69e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] = [
        -5.447609879822406e1,
        1.615858368580409e2,
        -1.556989798598866e2,
        6.680131188771972e1,
        -1.328068155288572e1,
    ];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [
        7.784695709041462e-3,
        3.224671290700398e-1,
        2.445134137142996,
        3.754408661907416,
    ];
    let p = p.clamp(1e-300, 1.0 - 1e-16);
    let low = 0.02425;
    if p < low {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - low {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        -normal_quantile(1.0 - p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_outside_unit_interval_is_rejected() {
        assert!(Level::try_from(0.0).is_err());
        assert!(Level::try_from(1.0).is_err());
        assert!(Level::try_from(f64::NAN).is_err());
        assert_eq!(Level::try_from(0.95).unwrap().value(), 0.95);
    }

    #[test]
    fn normal_quantile_known_values() {
        assert!((normal_quantile(0.975) - 1.959964).abs() < 1e-5);
        assert!((normal_quantile(0.5)).abs() < 1e-12);
        assert!((normal_quantile(0.01) + 2.326348).abs() < 1e-5);
    }
}
