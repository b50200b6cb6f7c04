//! One modelled series: its fitted forecaster, its streaming detector, and
//! its latest outputs. Fitted from history, then advanced point by point as
//! new samples arrive; it asks for a refit when the model cannot update
//! online or the series drifts out of its band.

use std::collections::BTreeMap;

use prognos_models::detector::{Detector, DetectorConfig};
use prognos_models::forecast::{Calibrated, FittedModel, Forecast, Level, ModelKind, fit_model};
use prognos_models::series::Series;

/// Consecutive points outside the band after which a series is refitted.
pub const DRIFT_POINTS: u32 = 6;

/// A series' labels.
pub type Labels = BTreeMap<String, String>;

/// Makes a raw counter monotonic again: a drop is a reset (the process
/// restarted), so the value before it is carried as an offset, as PromQL's
/// `rate()` does. Without it a restart looks like a collapse of the series.
#[derive(Debug, Clone, Default)]
pub struct ResetCorrection {
    last_raw: Option<f64>,
    offset: f64,
}

impl ResetCorrection {
    /// The corrected value of the next raw sample.
    pub fn apply(&mut self, raw: f64) -> f64 {
        if let Some(last) = self.last_raw
            && raw < last
        {
            self.offset += last;
        }
        self.last_raw = Some(raw);
        raw + self.offset
    }
}

/// Whether a series is a raw counter by Prometheus naming (`*_total`); a
/// PromQL function such as `rate()` drops `__name__`, so rates are not.
pub fn is_raw_counter(labels: &Labels) -> bool {
    labels
        .get("__name__")
        .is_some_and(|n| n.ends_with("_total"))
}

/// A series under watch.
#[derive(Debug)]
pub struct ModelledSeries {
    /// The series' labels as Prometheus returned them.
    pub labels: Labels,
    model: Calibrated<Box<dyn FittedModel>>,
    detector: Detector,
    step: i64,
    /// Timestamp of the latest point absorbed.
    pub last_ts: i64,
    /// Latest value.
    pub last_value: f64,
    /// Anomaly score of the latest point.
    pub score: f64,
    /// Highest anomaly score among the points of the latest absorb.
    pub peak_score: f64,
    /// What the model expected for the latest point: (central, lower, upper).
    pub expected: Option<(f64, f64, f64)>,
    /// When the model was fitted (Unix seconds).
    pub fitted_at: i64,
    /// Last evaluation that returned this series.
    pub last_seen: i64,
    drift: u32,
    /// Set for raw counters: their values are modelled reset-corrected.
    resets: Option<ResetCorrection>,
}

/// The detector as the live engine runs it: the one configuration, the same as
/// `prognos detect` and `prognos eval nab` use.
pub fn live_detector_config() -> DetectorConfig {
    DetectorConfig::default()
}

impl ModelledSeries {
    /// Fits on `samples` (Unix seconds, value; NaN and ±Inf are gaps) at
    /// `step` seconds, calibrated for `max_horizon` steps; the detector
    /// learns the same history.
    pub fn fit(
        labels: Labels,
        samples: &[(i64, f64)],
        step: i64,
        kind: ModelKind,
        max_horizon: usize,
        now: i64,
    ) -> Result<Self, prognos_models::Error> {
        let finite: Vec<(i64, f64)> = samples
            .iter()
            .copied()
            .filter(|s| s.1.is_finite())
            .collect();
        if finite.len() < 3 {
            return Err(prognos_models::Error::TooShort {
                model: "series history",
                needed: 3,
                got: finite.len(),
            });
        }
        let mut sorted = finite;
        sorted.sort_by_key(|s| s.0);
        sorted.dedup_by_key(|s| s.0);
        let mut resets = is_raw_counter(&labels).then(ResetCorrection::default);
        if let Some(r) = &mut resets {
            for s in &mut sorted {
                s.1 = r.apply(s.1);
            }
        }
        // The last point is held out and absorbed after fitting, so a new
        // series has an expectation (and band) for its latest point at once.
        let (last_ts, last_value) = sorted[sorted.len() - 1];
        let history = &sorted[..sorted.len() - 1];
        let (series, _) = Series::from_points(history, Some(step))?;
        let model = fit_model(kind, &series.interpolated(), step, max_horizon)?;
        let mut detector = Detector::new(live_detector_config());
        let mut score = 0.0;
        for &(t, v) in history {
            score = detector.update(t, v);
        }
        let mut modelled = Self {
            labels,
            model,
            detector,
            step,
            last_ts: series.end(),
            last_value: history[history.len() - 1].1,
            score,
            peak_score: score,
            expected: None,
            fitted_at: now,
            last_seen: now,
            drift: 0,
            resets: None,
        };
        let level = Level::try_from(0.95).expect("a constant level in (0, 1)");
        // Already corrected: the correction starts with the next samples.
        modelled.absorb(&[(last_ts, last_value)], level);
        modelled.resets = resets;
        Ok(modelled)
    }

    /// Absorbs the samples newer than the latest one: scores each, advances
    /// the model, records what was expected. Returns true when the series
    /// should be refitted (the model cannot update, or it drifted).
    pub fn absorb(&mut self, samples: &[(i64, f64)], level: Level) -> bool {
        let mut fresh: Vec<(i64, f64)> = samples
            .iter()
            .copied()
            .filter(|s| s.0 > self.last_ts && s.1.is_finite())
            .collect();
        fresh.sort_by_key(|s| s.0);
        fresh.dedup_by_key(|s| s.0);
        let mut refit = false;
        let mut path = Vec::new();
        self.peak_score = 0.0;
        for (t, raw) in fresh {
            let v = match &mut self.resets {
                Some(r) => r.apply(raw),
                None => raw,
            };
            let steps = ((t - self.last_ts) as f64 / self.step as f64)
                .round()
                .max(1.0) as usize;
            let f = self.model.forecast(steps, level);
            let (p, lo, hi) = (f.point[steps - 1], f.lower[steps - 1], f.upper[steps - 1]);
            self.expected = Some((p, lo, hi));
            self.drift = if v < lo || v > hi { self.drift + 1 } else { 0 };
            refit |= self.drift >= DRIFT_POINTS;
            // Fill skipped steps linearly so the model's clock stays on the grid.
            path.clear();
            for k in 1..steps {
                path.push(self.last_value + (v - self.last_value) * k as f64 / steps as f64);
            }
            path.push(v);
            refit |= !self.model.update(&path);
            self.score = self.detector.update(t, v);
            self.peak_score = self.peak_score.max(self.score);
            self.last_ts = t;
            self.last_value = v;
        }
        refit
    }

    /// The forecast for the `horizon` steps after the latest point.
    pub fn forecast(&self, horizon: usize, level: Level) -> Forecast {
        self.model.forecast(horizon, level)
    }

    /// The model's name.
    pub fn model_name(&self) -> &'static str {
        self.model.model.name()
    }

    /// Seconds between points.
    pub fn step(&self) -> i64 {
        self.step
    }

    /// Approximate memory of the model, calibration and labels, in bytes. It
    /// leaves out the detector's heap (its daily and weekly profiles, ~7 KiB)
    /// and the exported metric families: the live bench measures the whole
    /// cost by RSS (16 KiB per series).
    pub fn size_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.model.size_bytes()
            + self
                .labels
                .iter()
                .map(|(k, v)| k.len() + v.len() + 48)
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prognos_models::synthetic::{Shape, series};

    fn samples(n: usize, from: usize) -> Vec<(i64, f64)> {
        let y = series(&Shape::default(), 1_700_000_000, n, 3);
        (from..n)
            .map(|i| (1_700_000_000 + 300 * i as i64, y[i]))
            .collect()
    }

    #[test]
    fn fits_then_absorbs_new_points_with_expectations() {
        let level = Level::try_from(0.95).unwrap();
        let all = samples(2100, 0);
        let mut s =
            ModelledSeries::fit(Labels::new(), &all[..2016], 300, ModelKind::Auto, 24, 0).unwrap();
        assert_eq!(s.last_ts, all[2015].0);
        assert!(
            s.expected.is_some(),
            "the held-out last point has an expectation"
        );
        let refit = s.absorb(&all[2000..2030], level);
        assert_eq!(s.last_ts, all[2029].0);
        assert!(!refit, "a steady series needs no refit");
        let (p, lo, hi) = s.expected.unwrap();
        assert!(lo <= p && p <= hi && (p - all[2029].1).abs() < 30.0);
        assert!(s.size_bytes() < 64 * 1024);
    }

    #[test]
    fn a_level_shift_asks_for_a_refit() {
        let level = Level::try_from(0.95).unwrap();
        let mut all = samples(2100, 0);
        for s in &mut all[2020..] {
            s.1 += 1000.0;
        }
        let mut s =
            ModelledSeries::fit(Labels::new(), &all[..2016], 300, ModelKind::Mstl, 24, 0).unwrap();
        assert!(s.absorb(&all[2016..2040], level));
        assert!(s.peak_score > 0.5, "the shift scores {}", s.peak_score);
    }

    #[test]
    fn counter_resets_are_corrected_not_taken_for_a_collapse() {
        let level = Level::try_from(0.95).unwrap();
        let labels: Labels = [("__name__".to_string(), "http_requests_total".to_string())].into();
        // About 10 requests a step, with restarts at steps 500 and 1030.
        let inc = |i: i64| 10.0 + ((i * 7919) % 7) as f64;
        let raw = |i: i64| {
            let from = if i >= 1030 {
                1030
            } else if i >= 500 {
                500
            } else {
                0
            };
            (i * 300, (from..=i).map(inc).sum::<f64>() - inc(from))
        };
        let truth = |i: i64| (1..=i).map(inc).sum::<f64>();
        let history: Vec<(i64, f64)> = (0..1000).map(raw).collect();
        let mut s = ModelledSeries::fit(labels, &history, 300, ModelKind::Ets, 12, 0).unwrap();
        // Like rate(), a reset loses that one step's increase.
        assert!(
            (s.last_value - (truth(999) - inc(500))).abs() < 1e-6,
            "{}",
            s.last_value
        );
        let next: Vec<(i64, f64)> = (1000..1060).map(raw).collect();
        assert!(!s.absorb(&next, level), "a reset is no drift");
        let want = truth(1059) - inc(500) - inc(1030);
        assert!(
            (s.last_value - want).abs() < 1e-6,
            "{} vs {want}",
            s.last_value
        );
        assert!(s.forecast(12, level).point[11] > s.last_value);
        assert!(
            s.peak_score < 0.5,
            "a reset is no anomaly: {}",
            s.peak_score
        );
        assert!(!is_raw_counter(
            &[("job".to_string(), "x".to_string())].into()
        ));
    }

    #[test]
    fn gaps_and_nan_do_not_break_it() {
        let level = Level::try_from(0.95).unwrap();
        let all = samples(2100, 0);
        let mut s =
            ModelledSeries::fit(Labels::new(), &all[..2016], 300, ModelKind::Ets, 12, 0).unwrap();
        let mut next = vec![all[2050], (all[2051].0, f64::NAN), all[2060]];
        next.push((all[2060].0, 1.0)); // a repeated timestamp is ignored
        s.absorb(&next, level);
        assert_eq!(s.last_ts, all[2060].0);
        assert!(
            ModelledSeries::fit(Labels::new(), &[(0, f64::NAN)], 300, ModelKind::Auto, 12, 0)
                .is_err()
        );
    }
}
