//! `auto`: fits every candidate and keeps the one with the lowest
//! rolling-origin error on the series' own recent history.
//!
//! Candidates: seasonal naive (longest confirmed season, else naive), linear
//! trend, ETS, and MSTL over the confirmed seasons. Each is fitted once on the
//! whole history and replayed: its forecasts from origins in the last part of
//! the history use only the points before each origin (states are causal; the
//! few smoothing parameters are shared). The score is the mean absolute error
//! over a ladder of horizons up to the one requested.

use super::ets::Ets;
use super::linear::Linear;
use super::mstl::Mstl;
use super::naive::SeasonalNaive;
use super::{FittedModel, Forecaster};
use crate::Result;

/// Most validation origins per candidate.
const MAX_ORIGINS: usize = 200;

/// Model selection by rolling-origin validation.
#[derive(Debug, Clone)]
pub struct Auto {
    periods: Vec<usize>,
    horizon: usize,
}

impl Auto {
    /// Selects for forecasts up to `horizon` steps, with the given confirmed
    /// seasonal periods (see [`crate::seasonality::confirmed_periods`]).
    pub fn new(periods: Vec<usize>, horizon: usize) -> Self {
        Self {
            periods,
            horizon: horizon.max(1),
        }
    }
}

/// The model `auto` chose, with every candidate's validation error.
#[derive(Debug)]
pub struct FittedAuto {
    chosen: Box<dyn FittedModel>,
    /// (candidate, mean absolute error) for every candidate that fitted.
    pub scores: Vec<(&'static str, f64)>,
}

impl FittedAuto {
    /// The chosen model.
    pub fn chosen(&self) -> &dyn FittedModel {
        self.chosen.as_ref()
    }
}

fn validation_error(model: &dyn FittedModel, y: &[f64], horizon: usize) -> f64 {
    let n = y.len();
    let horizons: Vec<usize> = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
        .into_iter()
        .filter(|&h| h < horizon)
        .chain(std::iter::once(horizon))
        .collect();
    // Origins in the last third, leaving room for the longest horizon where possible.
    let last = n.saturating_sub(1).max(1);
    let first = model.min_origin().max(n - n / 3).min(last);
    let span = last - first + 1;
    let count = span.min(MAX_ORIGINS);
    let origins: Vec<usize> = (0..count).map(|i| first + i * span / count).collect();
    let f = model.replay(y, &origins, &horizons);
    let (mut sum, mut cnt) = (0.0, 0usize);
    for (i, &o) in origins.iter().enumerate() {
        for (j, &h) in horizons.iter().enumerate() {
            let t = o + h - 1;
            let v = f[i * horizons.len() + j];
            if t < n && v.is_finite() {
                sum += (y[t] - v).abs();
                cnt += 1;
            }
        }
    }
    if cnt == 0 {
        f64::INFINITY
    } else {
        sum / cnt as f64
    }
}

impl Forecaster for Auto {
    type Fitted = FittedAuto;
    fn fit(&self, y: &[f64]) -> Result<FittedAuto> {
        let season = self
            .periods
            .iter()
            .copied()
            .filter(|&p| y.len() > p)
            .max()
            .unwrap_or(1);
        let mut candidates: Vec<Box<dyn FittedModel>> = Vec::new();
        let mut first_error = None;
        let mut push = |r: Result<Box<dyn FittedModel>>| match r {
            Ok(m) => candidates.push(m),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        };
        push(SeasonalNaive::new(season).and_then(|m| Ok(Box::new(m.fit(y)?) as _)));
        push(Linear::default().fit(y).map(|m| Box::new(m) as _));
        push(Ets.fit(y).map(|m| Box::new(m) as _));
        if !self.periods.is_empty() {
            push(Mstl::new(self.periods.clone()).and_then(|m| Ok(Box::new(m.fit(y)?) as _)));
        }
        if candidates.is_empty() {
            return Err(first_error.expect("a candidate failed"));
        }
        let scores: Vec<(&'static str, f64)> = candidates
            .iter()
            .map(|m| (m.name(), validation_error(m.as_ref(), y, self.horizon)))
            .collect();
        let best = scores
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.1.total_cmp(&b.1.1))
            .map(|(i, _)| i)
            .unwrap_or(0);
        Ok(FittedAuto {
            chosen: candidates.swap_remove(best),
            scores,
        })
    }
}

impl FittedModel for FittedAuto {
    fn name(&self) -> &'static str {
        self.chosen.name()
    }
    fn predict(&self, horizon: usize) -> Vec<f64> {
        self.chosen.predict(horizon)
    }
    fn replay(&self, y: &[f64], origins: &[usize], horizons: &[usize]) -> Vec<f64> {
        self.chosen.replay(y, origins, horizons)
    }
    fn min_origin(&self) -> usize {
        self.chosen.min_origin()
    }
    fn update(&mut self, y: &[f64]) -> bool {
        self.chosen.update(y)
    }
    fn size_bytes(&self) -> usize {
        self.chosen.size_bytes() + self.scores.capacity() * 24
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_linear_for_a_clean_line() {
        let y: Vec<f64> = (0..300).map(|i| 2.0 * i as f64).collect();
        let m = Auto::new(vec![], 12).fit(&y).unwrap();
        assert!(matches!(m.name(), "linear" | "ets"), "{}", m.name());
    }

    #[test]
    fn picks_a_seasonal_model_for_a_daily_wave() {
        let p = 48;
        let y: Vec<f64> = (0..p * 8)
            .map(|i| {
                10.0 * (std::f64::consts::TAU * i as f64 / p as f64).sin()
                    + ((i * 31) % 7) as f64 * 0.1
            })
            .collect();
        let m = Auto::new(vec![p], p).fit(&y).unwrap();
        assert!(
            matches!(m.name(), "mstl" | "seasonal_naive"),
            "{}",
            m.name()
        );
    }
}
