//! MSTL: augurs' multiple seasonal-trend decomposition by LOESS, with the
//! fast [`super::ets::Ets`] forecasting the deseasonalised series.
//!
//! The fitted model keeps only what forecasting needs — the last season of
//! each seasonal component and the ETS state — so a week-long season of
//! 5-minute data costs 8 KiB (f32), not the whole decomposition.
//!
//! augurs' pitfalls handled here: MSTL fails on NaN (callers interpolate;
//! [`super::check_input`] refuses NaN with a clear error), needs two full
//! periods (shorter periods are dropped, and with none left this is an error)
//! and works in f32 (the series is standardised first, so byte counts keep
//! their precision).

use augurs_core::Fit as _;
use augurs_mstl::MSTLModel;

use super::ets::{Ets, FittedEts, replay_states};
use super::linear::{FittedLinear, Linear};
use super::{FittedModel, Forecaster, check_input};
use crate::{Error, Result};

/// MSTL with the given seasonal periods (in steps).
#[derive(Debug, Clone)]
pub struct Mstl {
    periods: Vec<usize>,
}

impl Mstl {
    /// An MSTL model; periods below 2 steps are rejected.
    pub fn new(mut periods: Vec<usize>) -> Result<Self> {
        periods.sort_unstable();
        periods.dedup();
        if periods.is_empty() || periods[0] < 2 {
            return Err(Error::InvalidParameter {
                name: "periods",
                value: format!("{periods:?}"),
                allowed: "must name at least one period of 2 steps or more",
            });
        }
        Ok(Self { periods })
    }
}

/// A fitted MSTL model: the last season of each component and the trend model.
#[derive(Debug, Clone)]
pub struct FittedMstl {
    /// (period, last `period` values of that seasonal component, in f32).
    seasons: Vec<(usize, Vec<f32>)>,
    trend: FittedEts,
    /// Length of the training data, to align the seasonal phase.
    n_train: usize,
}

impl FittedMstl {
    /// The summed seasonal contribution at index `j` of the series (training
    /// indices and beyond), using the latest season of each component.
    fn seasonal_at(&self, j: usize) -> f64 {
        self.seasons
            .iter()
            .map(|(p, tail)| {
                let phase = (j + p * (self.n_train / p + 1) - self.n_train) % p;
                f64::from(tail[phase])
            })
            .sum()
    }

    fn deseasonalise(&self, y: &[f64]) -> Vec<f64> {
        y.iter()
            .enumerate()
            .map(|(j, v)| v - self.seasonal_at(j))
            .collect()
    }
}

impl Mstl {
    /// The seasons of `y` before its last `regime` points, with a line
    /// fitted on its last `window` of them, deseasonalised, as the trend: a
    /// growth or a leak that began recently on a series with a calendar
    /// rhythm, extrapolated at its own pace without the rhythm bending the
    /// line. The seasons are learned before the regime so that its trend
    /// does not leak into them. The window is the model's training data
    /// (its replay and calibration start there).
    pub fn fit_with_recent_line(
        &self,
        y: &[f64],
        regime: usize,
        window: usize,
    ) -> Result<FittedSeasonalLine> {
        let regime = regime.min(y.len());
        let window = window.clamp(2, regime.max(2)).min(y.len());
        let seasons = self.fit(&y[..y.len() - regime])?;
        let start = y.len() - window;
        let d: Vec<f64> = y[start..]
            .iter()
            .enumerate()
            .map(|(i, v)| v - seasons.seasonal_at(start + i))
            .collect();
        let line = Linear::default().fit(&d)?;
        Ok(FittedSeasonalLine {
            seasons,
            offset: start,
            n: d.len(),
            line,
        })
    }
}

/// MSTL's seasons plus a line fitted on a recent window of the
/// deseasonalised series (see [`Mstl::fit_with_recent_line`]). A line does
/// not update online: it is refitted.
#[derive(Debug, Clone)]
pub struct FittedSeasonalLine {
    /// The seasons, learned on the points before the window.
    seasons: FittedMstl,
    /// Points before the window.
    offset: usize,
    /// Points in the window.
    n: usize,
    line: FittedLinear,
}

impl FittedModel for FittedSeasonalLine {
    fn name(&self) -> &'static str {
        "mstl+linear"
    }

    fn predict(&self, horizon: usize) -> Vec<f64> {
        let at = self.offset + self.n;
        self.line
            .predict(horizon)
            .into_iter()
            .enumerate()
            .map(|(k, t)| t + self.seasons.seasonal_at(at + k))
            .collect()
    }

    fn replay(&self, y: &[f64], origins: &[usize], horizons: &[usize]) -> Vec<f64> {
        let d: Vec<f64> = y
            .iter()
            .enumerate()
            .map(|(i, v)| v - self.seasons.seasonal_at(self.offset + i))
            .collect();
        let mut out = self.line.replay(&d, origins, horizons);
        for (i, &o) in origins.iter().enumerate() {
            for (j, &h) in horizons.iter().enumerate() {
                out[i * horizons.len() + j] += self.seasons.seasonal_at(self.offset + o + h - 1);
            }
        }
        out
    }

    fn min_origin(&self) -> usize {
        self.line.min_origin()
    }

    fn size_bytes(&self) -> usize {
        self.seasons.size_bytes() + std::mem::size_of::<FittedLinear>()
    }
}

impl Forecaster for Mstl {
    type Fitted = FittedMstl;
    fn fit(&self, y: &[f64]) -> Result<FittedMstl> {
        check_input("mstl", y, 4)?;
        let periods: Vec<usize> = self
            .periods
            .iter()
            .copied()
            .filter(|&p| y.len() >= 2 * p)
            .collect();
        if periods.is_empty() {
            return Err(Error::TooShort {
                model: "mstl",
                needed: 2 * self.periods[0],
                got: y.len(),
            });
        }
        let n = y.len() as f64;
        let mean = y.iter().sum::<f64>() / n;
        let sd = (y.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
        let scale = if sd > 0.0 { sd } else { 1.0 };
        let standardised: Vec<f64> = y.iter().map(|v| (v - mean) / scale).collect();
        let fitted = MSTLModel::naive(periods.clone())
            .fit(&standardised)
            .map_err(|e| Error::Fit {
                model: "mstl",
                message: e.to_string(),
            })?;
        let seasons = periods
            .iter()
            .zip(fitted.fit().seasonal())
            .map(|(&p, comp)| {
                let tail = comp[comp.len() - p..]
                    .iter()
                    .map(|&v| (f64::from(v) * scale) as f32)
                    .collect();
                (p, tail)
            })
            .collect();
        let mut model = FittedMstl {
            seasons,
            trend: Ets.fit(&[0.0; 3])?,
            n_train: y.len(),
        };
        model.trend = Ets.fit(&model.deseasonalise(y))?;
        Ok(model)
    }
}

impl FittedModel for FittedMstl {
    fn name(&self) -> &'static str {
        "mstl"
    }

    fn predict(&self, horizon: usize) -> Vec<f64> {
        self.trend
            .predict(horizon)
            .into_iter()
            .enumerate()
            .map(|(k, t)| t + self.seasonal_at(self.n_train + k))
            .collect()
    }

    fn replay(&self, y: &[f64], origins: &[usize], horizons: &[usize]) -> Vec<f64> {
        let d = self.deseasonalise(y);
        replay_states(
            &d,
            &self.trend.params,
            self.trend.state_after(&[]),
            origins,
            horizons,
            |o, h, state| self.trend.ahead(state, h) + self.seasonal_at(o + h - 1),
        )
    }

    fn min_origin(&self) -> usize {
        2
    }

    fn update(&mut self, y: &[f64]) -> bool {
        if y.iter().any(|v| !v.is_finite()) {
            return false;
        }
        let d: Vec<f64> = y
            .iter()
            .enumerate()
            .map(|(i, v)| v - self.seasonal_at(self.n_train + i))
            .collect();
        if !self.trend.update(&d) {
            return false;
        }
        self.n_train += y.len();
        true
    }

    fn size_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self
                .seasons
                .iter()
                .map(|(_, t)| std::mem::size_of::<(usize, Vec<f32>)>() + t.len() * 4)
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn daily(n: usize, p: usize) -> Vec<f64> {
        (0..n)
            .map(|i| {
                1e9 + 1e6 * (std::f64::consts::TAU * i as f64 / p as f64).sin() + 100.0 * i as f64
            })
            .collect()
    }

    #[test]
    fn forecasts_a_seasonal_series_with_large_values() {
        let p = 24;
        let y = daily(24 * 10, p);
        let m = Mstl::new(vec![p]).unwrap().fit(&y).unwrap();
        let truth = daily(24 * 11, p);
        let f = m.predict(24);
        for (k, v) in f.iter().enumerate() {
            let t = truth[y.len() + k];
            assert!((v - t).abs() < 2e4, "step {k}: {v} vs {t}");
        }
    }

    #[test]
    fn a_recent_line_follows_a_leak_on_a_daily_rhythm() {
        // Eight days of a daily wave, the last 18 hours leaking 1e4 a step.
        let p = 48;
        let onset = 8 * p - p / 4;
        let y: Vec<f64> = daily(8 * p, p)
            .into_iter()
            .enumerate()
            .map(|(i, v)| v + 1e4 * i.saturating_sub(onset) as f64)
            .collect();
        let m = Mstl::new(vec![p])
            .unwrap()
            .fit_with_recent_line(&y, y.len() - onset, y.len() - onset)
            .unwrap();
        let f = m.predict(p);
        // A day on, the wave is back at its phase, 1e4 + 100 a step further along.
        let expected = y[y.len() - 1] + (1e4 + 100.0) * p as f64;
        assert!(
            (f[p - 1] - expected).abs() < 0.1 * 1e4 * p as f64,
            "{} vs {expected}",
            f[p - 1]
        );
        // The seasons need two periods before the window.
        let m = Mstl::new(vec![p]).unwrap();
        assert!(m.fit_with_recent_line(&y, y.len() - p, 10).is_err());
    }

    #[test]
    fn too_short_for_two_periods_is_an_error() {
        let y = daily(30, 24);
        assert!(matches!(
            Mstl::new(vec![24]).unwrap().fit(&y),
            Err(Error::TooShort { .. })
        ));
    }

    #[test]
    fn nan_is_refused_with_a_message() {
        let mut y = daily(100, 10);
        y[5] = f64::NAN;
        let err = Mstl::new(vec![10]).unwrap().fit(&y).unwrap_err();
        assert!(err.to_string().contains("index 5"), "{err}");
    }

    #[test]
    fn update_continues_the_season_and_trend() {
        let y = daily(24 * 12, 24);
        let mut m = Mstl::new(vec![24]).unwrap().fit(&y[..24 * 10]).unwrap();
        assert!(m.update(&y[24 * 10..]));
        let truth = daily(24 * 13, 24);
        for (k, v) in m.predict(24).iter().enumerate() {
            assert!((v - truth[24 * 12 + k]).abs() < 2e4, "step {k}");
        }
    }

    #[test]
    fn replay_at_end_matches_predict() {
        let y = daily(24 * 6, 24);
        let m = Mstl::new(vec![24]).unwrap().fit(&y).unwrap();
        let r = m.replay(&y, &[y.len()], &[1, 7]);
        let p = m.predict(7);
        assert!((r[0] - p[0]).abs() < 1e-6 && (r[1] - p[6]).abs() < 1e-6);
    }
}
