//! Pattern model: k-means (linfa) over short windows of recent values, expressed relative to the
//! current level and scale so it learns shapes, not levels, plus the time of day. It collects
//! windows during the learning period, is fitted once, and then reports how far a new window is
//! from its nearest centroid in units of the training windows' typical distance.

use linfa::DatasetBase;
use linfa::traits::Fit;
use linfa_clustering::KMeans;
use ndarray::Array2;
use rand_xoshiro::Xoshiro256Plus;
use rand_xoshiro::rand_core::SeedableRng;

/// Values per window.
pub(crate) const WINDOW: usize = 5;
/// Features per window: the values and the time of day as a point on the unit circle.
pub(crate) const DIM: usize = WINDOW + 2;

/// One feature vector.
pub(crate) type Features = [f64; DIM];

/// Builds the features of a window: `values` oldest first, already centred and scaled; `phase`
/// the fraction of the day in [0, 1).
pub(crate) fn features(values: &[f64; WINDOW], phase: f64, phase_weight: f64) -> Features {
    let mut f = [0.0; DIM];
    for (slot, v) in f.iter_mut().zip(values) {
        // Clamp so one wild value cannot dominate the distance.
        *slot = v.clamp(-20.0, 20.0);
    }
    let angle = phase * std::f64::consts::TAU;
    f[WINDOW] = phase_weight * angle.cos();
    f[WINDOW + 1] = phase_weight * angle.sin();
    f
}

/// The k-means pattern model: collecting, then fitted.
#[derive(Debug, Clone)]
pub(crate) enum Pattern {
    /// Gathering training windows until `capacity` are held.
    Collecting {
        samples: Vec<Features>,
        clusters: usize,
    },
    /// Fitted centroids and the training windows' mean distance to their nearest centroid.
    Fitted {
        centroids: Vec<Features>,
        typical: f64,
    },
    /// Fitting failed (e.g. too few distinct windows): the model stays silent.
    Off,
}

impl Pattern {
    pub(crate) fn new(capacity: usize, clusters: usize) -> Self {
        if capacity == 0 || clusters == 0 {
            return Self::Off;
        }
        Self::Collecting {
            samples: Vec::with_capacity(capacity),
            clusters,
        }
    }

    /// Distance of `f` to the nearest centroid in typical distances, once fitted.
    pub(crate) fn distance(&self, f: &Features) -> Option<f64> {
        match self {
            Self::Fitted { centroids, typical } => {
                let d = nearest(centroids, f).sqrt() / typical;
                d.is_finite().then_some(d)
            }
            _ => None,
        }
    }

    /// Learns one window; fits when the training set is full.
    pub(crate) fn learn(&mut self, f: Features) {
        if let Self::Collecting { samples, clusters } = self {
            samples.push(f);
            if samples.len() == samples.capacity() {
                *self = fit(samples, *clusters).unwrap_or(Self::Off);
            }
        }
    }
}

/// Squared distance from `f` to the nearest of `centroids`.
fn nearest(centroids: &[Features], f: &Features) -> f64 {
    centroids
        .iter()
        .map(|c| c.iter().zip(f).map(|(a, b)| (a - b) * (a - b)).sum::<f64>())
        .fold(f64::INFINITY, f64::min)
}

fn fit(samples: &[Features], clusters: usize) -> Option<Pattern> {
    let records = Array2::from_shape_fn((samples.len(), DIM), |(i, j)| samples[i][j]);
    let model = KMeans::params_with_rng(
        clusters.min(samples.len()),
        Xoshiro256Plus::seed_from_u64(7),
    )
    .max_n_iterations(50)
    .n_runs(2)
    .fit(&DatasetBase::from(records))
    .ok()?;
    let centroids: Vec<Features> = model
        .centroids()
        .rows()
        .into_iter()
        .map(|row| std::array::from_fn(|j| row[j]))
        .collect();
    let typical = samples
        .iter()
        .map(|f| nearest(&centroids, f).sqrt())
        .sum::<f64>()
        / samples.len() as f64;
    (typical > 1e-9 && typical.is_finite()).then_some(Pattern::Fitted { centroids, typical })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unseen_shape_is_far_and_seen_shape_is_near() {
        let mut p = Pattern::new(200, 4);
        for i in 0..200 {
            let v = if i % 2 == 0 {
                [0.0, 1.0, 0.0, 1.0, 0.0]
            } else {
                [1.0, 0.0, 1.0, 0.0, 1.0]
            };
            let noise = (i % 7) as f64 * 0.01;
            p.learn(features(&v.map(|x| x + noise), 0.5, 1.0));
        }
        let near = p
            .distance(&features(&[0.0, 1.0, 0.0, 1.0, 0.0], 0.5, 1.0))
            .unwrap();
        let far = p
            .distance(&features(&[5.0, 5.0, 5.0, 5.0, 5.0], 0.5, 1.0))
            .unwrap();
        assert!(near < 2.0 && far > 10.0, "near {near} far {far}");
    }

    #[test]
    fn constant_windows_switch_the_model_off() {
        let mut p = Pattern::new(50, 4);
        for _ in 0..50 {
            p.learn(features(&[0.0; WINDOW], 0.0, 0.0));
        }
        assert!(p.distance(&features(&[1.0; WINDOW], 0.0, 0.0)).is_none());
    }
}
