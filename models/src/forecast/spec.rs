//! Choosing a model by name and fitting it with its calibration in one call:
//! the path the CLI and the live engine share.

use std::fmt;
use std::str::FromStr;

use super::auto::Auto;
use super::ets::Ets;
use super::linear::Linear;
use super::mstl::Mstl;
use super::naive::SeasonalNaive;
use super::{Calibrated, FittedModel, Forecaster};
use crate::seasonality::{calendar_periods, confirmed_periods};
use crate::{Error, Result};

/// The forecasting models prognos offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ModelKind {
    /// Picks one of the others by rolling-origin validation.
    #[default]
    Auto,
    /// The last value.
    Naive,
    /// The same time one season ago (a day, or a week when confirmed).
    SeasonalNaive,
    /// Least-squares line over the history, like PromQL `predict_linear`.
    Linear,
    /// Automatic non-seasonal exponential smoothing.
    Ets,
    /// MSTL decomposition (daily and weekly seasons) with an ETS trend.
    Mstl,
}

impl ModelKind {
    /// Every model, in the order `--help` lists them.
    pub const ALL: [ModelKind; 6] = [
        Self::Auto,
        Self::Naive,
        Self::SeasonalNaive,
        Self::Linear,
        Self::Ets,
        Self::Mstl,
    ];

    /// The model's name as written in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Naive => "naive",
            Self::SeasonalNaive => "seasonal_naive",
            Self::Linear => "linear",
            Self::Ets => "ets",
            Self::Mstl => "mstl",
        }
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ModelKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| Error::InvalidParameter {
                name: "model",
                value: format!("'{s}'"),
                allowed: "must be one of 'auto', 'naive', 'seasonal_naive', 'linear', 'ets', 'mstl'",
            })
    }
}

/// Fits `kind` on `y` (gaps already interpolated), a series with a step of
/// `step_secs`, and calibrates it for forecasts up to `max_horizon` steps.
///
/// Seasonal periods are the calendar's (a day, a week) confirmed on the data;
/// `seasonal_naive` and `mstl` fall back to the calendar day when the data
/// confirm none but hold two days.
pub fn fit_model(
    kind: ModelKind,
    y: &[f64],
    step_secs: i64,
    max_horizon: usize,
) -> Result<Calibrated<Box<dyn FittedModel>>> {
    let confirmed = confirmed_periods(y, step_secs);
    let seasons = || -> Vec<usize> {
        if confirmed.is_empty() {
            calendar_periods(step_secs)
                .into_iter()
                .take(1)
                .filter(|&p| y.len() >= 2 * p)
                .collect()
        } else {
            confirmed.clone()
        }
    };
    let model: Box<dyn FittedModel> = match kind {
        ModelKind::Auto => Box::new(Auto::new(confirmed.clone(), max_horizon).fit(y)?),
        ModelKind::Naive => Box::new(SeasonalNaive::new(1)?.fit(y)?),
        ModelKind::SeasonalNaive => {
            let p = seasons().into_iter().max().unwrap_or(1);
            Box::new(SeasonalNaive::new(p)?.fit(y)?)
        }
        ModelKind::Linear => Box::new(Linear::default().fit(y)?),
        ModelKind::Ets => Box::new(Ets.fit(y)?),
        ModelKind::Mstl => {
            let periods = seasons();
            if periods.is_empty() {
                let day = calendar_periods(step_secs).first().copied().unwrap_or(2);
                return Err(Error::TooShort {
                    model: "mstl",
                    needed: 2 * day,
                    got: y.len(),
                });
            }
            Box::new(Mstl::new(periods)?.fit(y)?)
        }
    };
    Ok(Calibrated::new(model, y, max_horizon))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_is_explained() {
        for k in ModelKind::ALL {
            assert_eq!(k.as_str().parse::<ModelKind>().unwrap(), k);
        }
        let e = "prophet".parse::<ModelKind>().unwrap_err().to_string();
        assert!(e.contains("'prophet'") && e.contains("'mstl'"), "{e}");
    }

    #[test]
    fn every_model_fits_a_constant_series() {
        let y = vec![7.0; 288 * 3];
        for k in ModelKind::ALL {
            let m = fit_model(k, &y, 300, 12).unwrap();
            let f = m.forecast(12, 0.95.try_into().unwrap());
            assert!(
                f.point.iter().all(|v| (v - 7.0).abs() < 1e-6),
                "{k}: {:?}",
                f.point
            );
        }
    }

    #[test]
    fn mstl_on_a_short_series_is_a_clear_error() {
        let y: Vec<f64> = (0..100).map(f64::from).collect();
        let e = fit_model(ModelKind::Mstl, &y, 300, 12).unwrap_err();
        assert!(matches!(e, Error::TooShort { needed: 576, .. }), "{e}");
    }
}
