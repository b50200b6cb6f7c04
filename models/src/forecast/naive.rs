//! Seasonal naive: tomorrow at 10:00 looks like today at 10:00. With a
//! period of 1 it is the plain naive forecast (the last value).

use super::{FittedModel, Forecaster, check_input};
use crate::{Error, Result};

/// Seasonal naive forecaster with a period in steps (1 for plain naive).
#[derive(Debug, Clone, Copy)]
pub struct SeasonalNaive {
    period: usize,
}

impl SeasonalNaive {
    /// A seasonal naive model repeating the last `period` steps.
    pub fn new(period: usize) -> Result<Self> {
        if period == 0 {
            return Err(Error::InvalidParameter {
                name: "period",
                value: "0".into(),
                allowed: "must be at least 1 step",
            });
        }
        Ok(Self { period })
    }
}

/// A fitted seasonal naive model: the last season of the training data.
#[derive(Debug, Clone)]
pub struct FittedSeasonalNaive {
    last_season: Vec<f64>,
}

impl Forecaster for SeasonalNaive {
    type Fitted = FittedSeasonalNaive;
    fn fit(&self, y: &[f64]) -> Result<FittedSeasonalNaive> {
        check_input("seasonal naive", y, self.period)?;
        Ok(FittedSeasonalNaive {
            last_season: y[y.len() - self.period..].to_vec(),
        })
    }
}

impl FittedModel for FittedSeasonalNaive {
    fn name(&self) -> &'static str {
        if self.last_season.len() == 1 {
            "naive"
        } else {
            "seasonal_naive"
        }
    }

    fn predict(&self, horizon: usize) -> Vec<f64> {
        let p = self.last_season.len();
        (0..horizon).map(|k| self.last_season[k % p]).collect()
    }

    fn replay(&self, y: &[f64], origins: &[usize], horizons: &[usize]) -> Vec<f64> {
        let p = self.last_season.len();
        let mut out = Vec::with_capacity(origins.len() * horizons.len());
        for &o in origins {
            for &h in horizons {
                out.push(if o < p || o > y.len() || h == 0 {
                    f64::NAN
                } else {
                    y[o - p + (h - 1) % p]
                });
            }
        }
        out
    }

    fn min_origin(&self) -> usize {
        self.last_season.len()
    }

    fn update(&mut self, y: &[f64]) -> bool {
        if y.iter().any(|v| !v.is_finite()) {
            return false;
        }
        let p = self.last_season.len();
        let take = y.len().min(p);
        self.last_season.rotate_left(take);
        self.last_season[p - take..].copy_from_slice(&y[y.len() - take..]);
        true
    }

    fn size_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.last_season.len() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_last_season() {
        let m = SeasonalNaive::new(3)
            .unwrap()
            .fit(&[1., 2., 3., 4., 5., 6.])
            .unwrap();
        assert_eq!(m.predict(5), vec![4., 5., 6., 4., 5.]);
    }

    #[test]
    fn replay_matches_predict_at_the_end() {
        let y = [1., 2., 3., 4., 5., 6., 7.];
        let m = SeasonalNaive::new(2).unwrap().fit(&y).unwrap();
        assert_eq!(m.replay(&y, &[7], &[1, 2, 3]), m.predict(3));
    }

    #[test]
    fn update_rolls_the_season() {
        let mut m = SeasonalNaive::new(3).unwrap().fit(&[1., 2., 3.]).unwrap();
        assert!(m.update(&[4., 5.]));
        assert_eq!(m.predict(3), vec![3., 4., 5.]);
        assert!(m.update(&[6., 7., 8., 9.]));
        assert_eq!(m.predict(3), vec![7., 8., 9.]);
    }

    #[test]
    fn period_zero_rejected_and_short_input_errors() {
        assert!(SeasonalNaive::new(0).is_err());
        assert!(SeasonalNaive::new(5).unwrap().fit(&[1.0]).is_err());
    }
}
