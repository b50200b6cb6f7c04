//! Forecast accuracy by rolling origin: MASE and interval coverage.
//!
//! From each of several origins in the second half of a series, a model is
//! fitted on the points before the origin and its forecast compared with the
//! points that follow. MASE scales the mean absolute error by the in-sample
//! mean absolute error of the seasonal naive forecast (the season being a day
//! when the step divides one, else 1), so values below 1 beat it in-sample.

use crate::forecast::{Forecast, Level, ModelKind, fit_model};
use crate::series::{Series, interpolate};
use crate::{Error, Result};

/// Accuracy of one model at one horizon over all origins.
#[derive(Debug, Clone, PartialEq)]
pub struct HorizonAccuracy {
    /// Forecast horizon in steps.
    pub horizon: usize,
    /// Mean MASE over origins.
    pub mase: f64,
    /// Fraction of observed points inside the band.
    pub coverage: f64,
    /// Origins that contributed to MASE (those with a non-zero scale).
    pub origins: usize,
    /// Observed points compared with the band.
    pub points: usize,
}

/// Evaluates `kind` on `series` at each of `horizons` from `origins` origins.
pub fn rolling_origin(
    series: &Series,
    kind: ModelKind,
    horizons: &[usize],
    level: Level,
    origins: usize,
) -> Result<Vec<HorizonAccuracy>> {
    rolling_origin_with(series, horizons, origins, |_, train, max_h| {
        Ok(fit_model(kind, train, series.step(), max_h)?.forecast(max_h, level))
    })
}

/// Evaluates a forecaster on `series` as [`rolling_origin`] does. At each
/// origin `forecast(origin, filled, max_h)` gets the index of the origin, the
/// points before it with gaps interpolated (the raw ones are
/// `series.values()[..origin]`), and returns `max_h` steps.
pub fn rolling_origin_with(
    series: &Series,
    horizons: &[usize],
    origins: usize,
    mut forecast: impl FnMut(usize, &[f64], usize) -> Result<Forecast>,
) -> Result<Vec<HorizonAccuracy>> {
    let max_h = horizons.iter().copied().max().unwrap_or(0);
    let n = series.len();
    let observed = series.values();
    let filled = interpolate(observed);
    let season = crate::seasonality::calendar_periods(series.step())
        .first()
        .copied()
        .filter(|&p| p < n / 4)
        .unwrap_or(1);
    let first = n / 2;
    if max_h == 0 || origins == 0 || first + max_h > n {
        return Err(Error::TooShort {
            model: "rolling-origin evaluation",
            needed: 2 * max_h.max(1),
            got: n,
        });
    }
    let span = n - max_h - first + 1;
    let count = origins.min(span);
    let mut sums = vec![(0.0, 0usize, 0usize, 0usize); horizons.len()];
    for i in 0..count {
        let o = first + i * span / count;
        let train = &filled[..o];
        let scale = train
            .windows(season + 1)
            .map(|w| (w[season] - w[0]).abs())
            .sum::<f64>()
            / (o - season) as f64;
        let f = forecast(o, train, max_h)?;
        if f.len() < max_h {
            return Err(Error::TooShort {
                model: "rolling-origin forecast",
                needed: max_h,
                got: f.len(),
            });
        }
        for (j, &h) in horizons.iter().enumerate() {
            let (mut abs, mut cnt, mut inside) = (0.0, 0usize, 0usize);
            for k in 0..h {
                let actual = observed[o + k];
                if actual.is_finite() {
                    abs += (actual - f.point[k]).abs();
                    cnt += 1;
                    inside += usize::from(actual >= f.lower[k] && actual <= f.upper[k]);
                }
            }
            let s = &mut sums[j];
            if cnt > 0 && scale > 0.0 {
                s.0 += abs / cnt as f64 / scale;
                s.1 += 1;
            }
            s.2 += inside;
            s.3 += cnt;
        }
    }
    Ok(horizons
        .iter()
        .zip(sums)
        .map(|(&h, (mase, k, inside, total))| HorizonAccuracy {
            horizon: h,
            mase: if k > 0 { mase / k as f64 } else { f64::NAN },
            coverage: if total > 0 {
                inside as f64 / total as f64
            } else {
                f64::NAN
            },
            origins: k,
            points: total,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seasonal_model_beats_naive_on_a_daily_wave() {
        let values: Vec<f64> = (0..288 * 8)
            .map(|i| {
                100.0
                    + 30.0 * (std::f64::consts::TAU * i as f64 / 288.0).sin()
                    + ((i * 7) % 5) as f64
            })
            .collect();
        let s = Series::new(0, 300, values).unwrap();
        let level = Level::try_from(0.95).unwrap();
        let auto = rolling_origin(&s, ModelKind::Auto, &[12, 288], level, 4).unwrap();
        let naive = rolling_origin(&s, ModelKind::Naive, &[12, 288], level, 4).unwrap();
        assert!(auto[1].mase < naive[1].mase, "{auto:?} vs {naive:?}");
        assert_eq!(auto[0].origins, 4);
    }

    #[test]
    fn too_short_for_the_horizon_is_an_error() {
        let s = Series::new(0, 300, vec![1.0; 10]).unwrap();
        assert!(
            rolling_origin(
                &s,
                ModelKind::Naive,
                &[288],
                Level::try_from(0.9).unwrap(),
                3
            )
            .is_err()
        );
    }
}
