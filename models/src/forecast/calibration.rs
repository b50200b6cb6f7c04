//! Calibrated intervals by split-conformal prediction on the model's own
//! rolling-origin errors.
//!
//! After fitting, the model is replayed over its history: from each of up to
//! [`MAX_ORIGINS`] origins in the later two thirds it forecasts ahead, and the
//! signed errors at a ladder of horizons are summarised as quantiles on a
//! fixed probability grid. A band at level L is the central path plus the
//! (1−L)/2 and (1+L)/2 error quantiles of its horizon, interpolated between
//! horizons and widened by √h past the longest horizon the history supports.
//! This needs no distributional assumption, follows skewed errors, and keeps
//! a few hundred numbers per model instead of the history.

use super::{FittedModel, Forecast, Level, normal_quantile};

/// Most origins replayed for calibration (spread evenly over the history).
pub const MAX_ORIGINS: usize = 1500;
/// Fewest errors a horizon needs to be calibrated on its own.
pub const MIN_ERRORS: usize = 12;
/// Probabilities at which error quantiles are kept.
pub const PROBS: [f64; 17] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.975, 0.99, 0.995,
];
const LADDER: [usize; 24] = [
    1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024, 1536, 2048,
    3072, 4096,
];

/// Error quantiles per horizon knot.
#[derive(Debug, Clone, PartialEq)]
pub struct Calibration {
    /// Local scale at the end of the training data: errors are stored in
    /// units of the local scale at their origin, and bands multiply back.
    scale: f64,
    knots: Vec<u32>,
    counts: Vec<u32>,
    quantiles: Vec<[f32; PROBS.len()]>,
}

/// A fitted model with its calibration: what the engine holds per series.
#[derive(Debug)]
pub struct Calibrated<M> {
    /// The fitted model.
    pub model: M,
    /// Its error quantiles.
    pub calibration: Calibration,
}

impl Calibration {
    /// Calibrates `model`, fitted on `y`, for horizons up to `max_horizon`.
    pub fn estimate(model: &dyn FittedModel, y: &[f64], max_horizon: usize) -> Self {
        let n = y.len();
        let max_horizon = max_horizon.max(1);
        let mut knots: Vec<usize> = LADDER
            .iter()
            .copied()
            .filter(|&h| h < max_horizon)
            .collect();
        knots.push(max_horizon);
        let first = model.min_origin().max(n / 3).max(1);
        let origins: Vec<usize> = if first >= n {
            Vec::new()
        } else {
            let span = n - first;
            let count = span.min(MAX_ORIGINS);
            (0..count).map(|i| first + i * span / count).collect()
        };
        let forecasts = model.replay(y, &origins, &knots);
        let local = LocalScale::new(y);
        let mut out = Self {
            scale: local.at(n),
            knots: Vec::new(),
            counts: Vec::new(),
            quantiles: Vec::new(),
        };
        let mut errors = Vec::with_capacity(origins.len());
        for (j, &h) in knots.iter().enumerate() {
            errors.clear();
            for (i, &o) in origins.iter().enumerate() {
                let target = o + h - 1;
                let f = forecasts[i * knots.len() + j];
                if target < n && f.is_finite() {
                    errors.push((y[target] - f) / local.at(o));
                }
            }
            if errors.len() < MIN_ERRORS {
                break;
            }
            errors.sort_by(f64::total_cmp);
            out.knots.push(h as u32);
            out.counts.push(errors.len() as u32);
            out.quantiles
                .push(PROBS.map(|p| quantile_sorted(&errors, p) as f32));
        }
        if out.knots.is_empty() {
            out = Self::gaussian(y);
        }
        out
    }

    /// Fallback for histories too short to replay: a normal band whose
    /// one-step spread is the standard deviation of first differences.
    fn gaussian(y: &[f64]) -> Self {
        let diffs: Vec<f64> = y.windows(2).map(|w| w[1] - w[0]).collect();
        let sigma = if diffs.is_empty() {
            0.0
        } else {
            let m = diffs.iter().sum::<f64>() / diffs.len() as f64;
            (diffs.iter().map(|d| (d - m).powi(2)).sum::<f64>() / diffs.len() as f64).sqrt()
        };
        Self {
            scale: 1.0,
            knots: vec![1],
            counts: vec![u32::MAX],
            quantiles: vec![PROBS.map(|p| (sigma * normal_quantile(p)) as f32)],
        }
    }

    /// The error quantile at probability `p` for step `h` (1-based).
    pub fn error_quantile(&self, h: usize, p: f64) -> f64 {
        self.scale * self.normalised_quantile(h, p)
    }

    fn normalised_quantile(&self, h: usize, p: f64) -> f64 {
        let h = h.max(1) as f64;
        let last = self.knots.len() - 1;
        let at = |k: usize| {
            // Finite-sample (conformal) correction: stretch p away from the median.
            let m = f64::from(self.counts[k]);
            let p = 0.5 + (p - 0.5) * (m + 1.0) / m;
            interp_probs(&self.quantiles[k], p)
        };
        if h <= f64::from(self.knots[0]) {
            return at(0);
        }
        let top = f64::from(self.knots[last]);
        if h >= top {
            let median = interp_probs(&self.quantiles[last], 0.5);
            return median + (at(last) - median) * (h / top).sqrt();
        }
        let k = self
            .knots
            .iter()
            .position(|&x| f64::from(x) >= h)
            .unwrap_or(last);
        let (h0, h1) = (f64::from(self.knots[k - 1]), f64::from(self.knots[k]));
        let w = (h - h0) / (h1 - h0);
        at(k - 1) * (1.0 - w) + at(k) * w
    }

    /// Approximate size in bytes.
    pub fn size_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + self.knots.len() * (8 + 4 * PROBS.len())
    }
}

/// The local scale of a series at each point: the mean absolute change over
/// the window before it, floored at a tenth of the whole series' so quiet
/// stretches do not make bands vanish. Normalising errors by it keeps them
/// exchangeable when a series moves between calm and busy regimes
/// (normalised conformal prediction).
struct LocalScale {
    prefix: Vec<f64>,
    window: usize,
    floor: f64,
}

impl LocalScale {
    fn new(y: &[f64]) -> Self {
        let mut prefix = Vec::with_capacity(y.len());
        prefix.push(0.0);
        for w in y.windows(2) {
            let last = prefix[prefix.len() - 1];
            prefix.push(last + (w[1] - w[0]).abs());
        }
        let total = prefix[prefix.len() - 1] / (prefix.len().max(2) - 1) as f64;
        let floor = (total * 0.1).max(f64::MIN_POSITIVE);
        Self {
            window: (y.len() / 6).clamp(12, 288),
            prefix,
            floor,
        }
    }

    /// The scale from the changes before index `o` (exclusive).
    fn at(&self, o: usize) -> f64 {
        let end = o.saturating_sub(1).min(self.prefix.len() - 1);
        let start = end.saturating_sub(self.window);
        if end == start {
            return 1.0_f64.max(self.floor);
        }
        ((self.prefix[end] - self.prefix[start]) / (end - start) as f64).max(self.floor)
    }
}

/// Linear interpolation along [`PROBS`]; clamps outside the grid.
fn interp_probs(q: &[f32; PROBS.len()], p: f64) -> f64 {
    if p <= PROBS[0] {
        return f64::from(q[0]);
    }
    for i in 1..PROBS.len() {
        if p <= PROBS[i] {
            let w = (p - PROBS[i - 1]) / (PROBS[i] - PROBS[i - 1]);
            return f64::from(q[i - 1]) * (1.0 - w) + f64::from(q[i]) * w;
        }
    }
    f64::from(q[PROBS.len() - 1])
}

/// Quantile of sorted data by linear interpolation (type 7).
pub fn quantile_sorted(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = p.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let i = pos.floor() as usize;
    let j = (i + 1).min(sorted.len() - 1);
    sorted[i] + (sorted[j] - sorted[i]) * (pos - i as f64)
}

impl<M: FittedModel> Calibrated<M> {
    /// Calibrates a model fitted on `y` for horizons up to `max_horizon`.
    pub fn new(model: M, y: &[f64], max_horizon: usize) -> Self {
        let calibration = Calibration::estimate(&model, y, max_horizon);
        Self { model, calibration }
    }

    /// Forecast with a band at `level`. A horizon of zero gives an empty forecast.
    pub fn forecast(&self, horizon: usize, level: Level) -> Forecast {
        let point = self.model.predict(horizon);
        let (lo, hi) = ((1.0 - level.value()) / 2.0, (1.0 + level.value()) / 2.0);
        let mut lower = Vec::with_capacity(horizon);
        let mut upper = Vec::with_capacity(horizon);
        for (k, p) in point.iter().enumerate() {
            let ql = self.calibration.error_quantile(k + 1, lo);
            let qh = self.calibration.error_quantile(k + 1, hi);
            lower.push(p + ql.min(0.0));
            upper.push(p + qh.max(0.0));
        }
        Forecast {
            point,
            lower,
            upper,
            level: level.value(),
        }
    }

    /// Advances the model by new points (see [`FittedModel::update`]); the
    /// calibration is kept. False when the model must be refitted.
    pub fn update(&mut self, y: &[f64]) -> bool {
        self.model.update(y)
    }

    /// Size of model and calibration in bytes: what a live series costs.
    pub fn size_bytes(&self) -> usize {
        self.model.size_bytes() + self.calibration.size_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::super::{Forecaster, ets::Ets};
    use super::*;

    /// A deterministic pseudo-random normal stream (xorshift + Box–Muller).
    fn noise(n: usize, mut s: u64) -> Vec<f64> {
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        (0..n)
            .map(|_| {
                let (u, v) = (next().max(1e-12), next());
                (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
            })
            .collect()
    }

    #[test]
    fn band_covers_about_the_level_on_white_noise() {
        let level = Level::try_from(0.9).unwrap();
        let (mut inside, mut total) = (0, 0);
        for seed in 1..40u64 {
            let y: Vec<f64> = noise(600, seed * 7919).iter().map(|e| 50.0 + e).collect();
            let m = Calibrated::new(Ets.fit(&y[..500]).unwrap(), &y[..500], 10);
            let f = m.forecast(10, level);
            for k in 0..10 {
                total += 1;
                inside += usize::from(y[500 + k] >= f.lower[k] && y[500 + k] <= f.upper[k]);
            }
        }
        let coverage = inside as f64 / total as f64;
        assert!((0.84..=0.96).contains(&coverage), "coverage {coverage}");
    }

    #[test]
    fn band_widens_with_horizon_on_a_random_walk() {
        let mut y = noise(800, 3);
        for i in 1..y.len() {
            y[i] += y[i - 1];
        }
        let m = Calibrated::new(Ets.fit(&y).unwrap(), &y, 100);
        let f = m.forecast(400, Level::try_from(0.95).unwrap());
        let width = |k: usize| f.upper[k] - f.lower[k];
        assert!(width(0) < width(20) && width(20) < width(99) && width(99) < width(399));
    }

    #[test]
    fn zero_horizon_gives_empty_forecast() {
        let y: Vec<f64> = (0..50).map(f64::from).collect();
        let m = Calibrated::new(Ets.fit(&y).unwrap(), &y, 5);
        assert!(m.forecast(0, Level::try_from(0.95).unwrap()).is_empty());
    }

    #[test]
    fn short_history_falls_back_to_a_finite_band() {
        let y = [1.0, 2.0, 1.5, 2.5];
        let m = Calibrated::new(Ets.fit(&y).unwrap(), &y, 3);
        let f = m.forecast(3, Level::try_from(0.95).unwrap());
        assert!(f.lower.iter().chain(&f.upper).all(|v| v.is_finite()));
        assert!(f.upper[0] > f.lower[0]);
    }
}
