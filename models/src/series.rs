//! A series at a regular step, with gaps as missing values (NaN), and the
//! resampling that turns irregular input into one.
//!
//! Real exports are untidy: NAB's realTraffic and realAdExchange files have
//! gaps of hours to days, several files repeat a timestamp and one steps back
//! in time. [`Series::from_points`] sorts, merges and bins such input onto a
//! grid and reports what it had to do in a [`ResampleReport`].

use crate::{Error, Result};

/// The largest number of slots a resampled series may have; it guards against
/// a wrong step or a stray timestamp exploding memory.
pub const MAX_SLOTS: usize = 50_000_000;

/// Values at `start + i·step` (Unix seconds); missing values are NaN.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    start: i64,
    step: i64,
    values: Vec<f64>,
}

/// What resampling did to the input, so callers can tell the user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResampleReport {
    /// Points given.
    pub input_points: usize,
    /// Points whose timestamp was earlier than the one before them.
    pub out_of_order: usize,
    /// Points that fell into a slot another point already filled (their values are averaged).
    pub merged: usize,
    /// Points whose value was NaN or infinite (treated as missing).
    pub non_finite: usize,
    /// Slots of the output without any point (gaps).
    pub missing_slots: usize,
}

impl Series {
    /// A series from its start, step (seconds, > 0) and values.
    pub fn new(start: i64, step: i64, values: Vec<f64>) -> Result<Self> {
        if step <= 0 {
            return Err(Error::InvalidParameter {
                name: "step",
                value: step.to_string(),
                allowed: "must be a positive number of seconds",
            });
        }
        Ok(Self {
            start,
            step,
            values,
        })
    }

    /// Resamples irregular `(timestamp, value)` points onto a regular grid.
    ///
    /// The step is `step` if given, else the most common positive difference
    /// between consecutive sorted timestamps. Each point goes to the nearest
    /// slot; points sharing a slot are averaged; slots without a finite value
    /// are NaN. Order of the input does not matter.
    pub fn from_points(points: &[(i64, f64)], step: Option<i64>) -> Result<(Self, ResampleReport)> {
        let mut report = ResampleReport {
            input_points: points.len(),
            ..ResampleReport::default()
        };
        if points.is_empty() {
            return Err(Error::InvalidSeries("no points".into()));
        }
        report.out_of_order = points.windows(2).filter(|w| w[1].0 < w[0].0).count();
        let mut sorted = points.to_vec();
        sorted.sort_by_key(|p| p.0);
        let step = match step {
            Some(s) => s,
            None => infer_step(sorted.iter().map(|p| p.0)).unwrap_or(1),
        };
        if step <= 0 {
            return Err(Error::InvalidParameter {
                name: "step",
                value: step.to_string(),
                allowed: "must be a positive number of seconds",
            });
        }
        let start = sorted[0].0;
        let end = sorted[sorted.len() - 1].0;
        let span = (end as i128 - start as i128) / step as i128;
        if span >= MAX_SLOTS as i128 {
            return Err(Error::InvalidSeries(format!(
                "timestamps span {span} steps of {step} s (from {start} to {end}), more than the {MAX_SLOTS} allowed"
            )));
        }
        let slots = span as usize + 1;
        let mut sum = vec![0.0; slots];
        let mut count = vec![0u32; slots];
        let mut seen = vec![false; slots];
        for &(t, v) in &sorted {
            let offset = (t - start) as f64 / step as f64;
            let slot = (offset.round() as usize).min(slots - 1);
            if seen[slot] {
                report.merged += 1;
            }
            seen[slot] = true;
            if v.is_finite() {
                sum[slot] += v;
                count[slot] += 1;
            } else {
                report.non_finite += 1;
            }
        }
        let values: Vec<f64> = sum
            .iter()
            .zip(&count)
            .map(|(&s, &c)| if c == 0 { f64::NAN } else { s / f64::from(c) })
            .collect();
        report.missing_slots = values.iter().filter(|v| v.is_nan()).count();
        Ok((
            Self {
                start,
                step,
                values,
            },
            report,
        ))
    }

    /// Timestamp of the first slot (Unix seconds).
    pub fn start(&self) -> i64 {
        self.start
    }

    /// Seconds between slots.
    pub fn step(&self) -> i64 {
        self.step
    }

    /// The values, NaN where missing.
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    /// Number of slots.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether there are no slots.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Number of slots holding a value.
    pub fn observed(&self) -> usize {
        self.values.iter().filter(|v| v.is_finite()).count()
    }

    /// Timestamp of slot `i` (may be past the end, for forecasts).
    pub fn timestamp_at(&self, i: usize) -> i64 {
        self.start + self.step * i as i64
    }

    /// Timestamp of the last slot.
    pub fn end(&self) -> i64 {
        self.timestamp_at(self.len().saturating_sub(1))
    }

    /// The values with gaps filled by linear interpolation (leading and
    /// trailing gaps hold the nearest value). Models that cannot take NaN,
    /// such as augurs' MSTL, are fed this.
    pub fn interpolated(&self) -> Vec<f64> {
        interpolate(&self.values)
    }
}

/// Fills NaN and infinite values by linear interpolation between their
/// neighbours; an all-missing input becomes all zeros.
pub fn interpolate(values: &[f64]) -> Vec<f64> {
    let mut out = values.to_vec();
    let mut last: Option<usize> = None;
    for i in 0..out.len() {
        if !out[i].is_finite() {
            continue;
        }
        match last {
            Some(j) if i > j + 1 => {
                let (a, b) = (out[j], out[i]);
                let width = (i - j) as f64;
                for (k, slot) in out.iter_mut().enumerate().take(i).skip(j + 1) {
                    *slot = a + (b - a) * (k - j) as f64 / width;
                }
            }
            None if i > 0 => {
                let first = out[i];
                out[..i].iter_mut().for_each(|v| *v = first);
            }
            _ => {}
        }
        last = Some(i);
    }
    match last {
        Some(j) => {
            let v = out[j];
            out[j + 1..].iter_mut().for_each(|x| *x = v);
        }
        None => out.iter_mut().for_each(|x| *x = 0.0),
    }
    out
}

/// The most common positive difference between consecutive timestamps, or
/// None with fewer than two distinct timestamps.
pub fn infer_step(sorted_timestamps: impl IntoIterator<Item = i64>) -> Option<i64> {
    let mut diffs: Vec<i64> = Vec::new();
    let mut prev: Option<i64> = None;
    for t in sorted_timestamps {
        if let Some(p) = prev
            && t > p
        {
            diffs.push(t - p);
        }
        prev = Some(t);
    }
    if diffs.is_empty() {
        return None;
    }
    diffs.sort_unstable();
    let (mut best, mut best_run) = (diffs[0], 0usize);
    let mut i = 0;
    while i < diffs.len() {
        let j = diffs[i..].iter().take_while(|&&d| d == diffs[i]).count();
        if j > best_run {
            best = diffs[i];
            best_run = j;
        }
        i += j;
    }
    Some(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_become_missing_slots() {
        let pts = [(0, 1.0), (300, 2.0), (1500, 5.0)];
        let (s, r) = Series::from_points(&pts, None).unwrap();
        assert_eq!(s.step(), 300);
        assert_eq!(s.len(), 6);
        assert!(s.values()[2].is_nan());
        assert_eq!(r.missing_slots, 3);
        assert_eq!(s.interpolated(), vec![1.0, 2.0, 2.75, 3.5, 4.25, 5.0]);
    }

    #[test]
    fn repeated_and_backward_timestamps_are_merged_in_order() {
        let pts = [(0, 1.0), (60, 2.0), (60, 4.0), (30, 9.0), (120, 3.0)];
        let (s, r) = Series::from_points(&pts, Some(60)).unwrap();
        assert_eq!(r.out_of_order, 1);
        // 30 s rounds up to slot 1 with 2.0 and 4.0: (2+4+9)/3.
        assert_eq!(s.values(), &[1.0, 5.0, 3.0]);
        assert_eq!(r.merged, 2);
    }

    #[test]
    fn non_finite_values_are_missing() {
        let pts = [(0, f64::NAN), (1, f64::INFINITY), (2, 3.0)];
        let (s, r) = Series::from_points(&pts, None).unwrap();
        assert_eq!(r.non_finite, 2);
        assert_eq!(s.observed(), 1);
        assert_eq!(s.interpolated(), vec![3.0, 3.0, 3.0]);
    }

    #[test]
    fn absurd_span_is_an_error_not_an_allocation() {
        let pts = [(0, 1.0), (1, 1.0), (i64::MAX / 2, 1.0)];
        assert!(matches!(
            Series::from_points(&pts, None),
            Err(Error::InvalidSeries(_))
        ));
    }

    #[test]
    fn empty_input_is_an_error() {
        assert!(Series::from_points(&[], None).is_err());
    }

    #[test]
    fn interpolate_all_missing_gives_zeros() {
        assert_eq!(interpolate(&[f64::NAN, f64::NAN]), vec![0.0, 0.0]);
    }
}
