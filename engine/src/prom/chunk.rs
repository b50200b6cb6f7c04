//! Splitting a long range query into requests Prometheus accepts (at most
//! 11,000 points per series) and merging the answers per label set.

use std::collections::BTreeMap;

use super::response::sort_dedup;
use super::types::{Labels, RangeSeries};

/// Splits the evaluation steps `start, start + step, …, ≤ end` into
/// consecutive `(start, end)` chunks of at most `max_points` steps each.
/// Chunks neither overlap nor leave a step out: each starts one step after
/// the previous one's last step. Needs `step > 0`, `end >= start` and
/// `max_points >= 1` (the client checks them first).
pub(crate) fn split_range(start: i64, end: i64, step: i64, max_points: usize) -> Vec<(i64, i64)> {
    debug_assert!(step > 0 && end >= start && max_points >= 1);
    let span = step.saturating_mul(i64::try_from(max_points - 1).unwrap_or(i64::MAX));
    let mut chunks = Vec::new();
    let mut chunk_start = start;
    loop {
        let chunk_end = chunk_start.saturating_add(span).min(end);
        // The last step at or before `chunk_end` on the grid of `start`.
        let last_step = chunk_start + (chunk_end - chunk_start) / step * step;
        chunks.push((chunk_start, last_step));
        match last_step.checked_add(step) {
            Some(next) if next <= end => chunk_start = next,
            _ => break,
        }
    }
    chunks
}

/// Merges the series of several chunk answers by label set: samples sorted
/// by time, a timestamp answered twice kept once. Series come out ordered by
/// label set.
pub(crate) fn merge_series(chunks: impl IntoIterator<Item = Vec<RangeSeries>>) -> Vec<RangeSeries> {
    let mut merged: BTreeMap<Labels, Vec<(i64, f64)>> = BTreeMap::new();
    for series in chunks.into_iter().flatten() {
        merged
            .entry(series.labels)
            .or_default()
            .extend(series.samples);
    }
    merged
        .into_iter()
        .map(|(labels, mut samples)| {
            sort_dedup(&mut samples);
            RangeSeries { labels, samples }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn steps(start: i64, end: i64, step: i64) -> Vec<i64> {
        (0..)
            .map(|k| start + k * step)
            .take_while(|&t| t <= end)
            .collect()
    }

    #[test]
    fn three_days_at_twenty_seconds_splits_into_two_full_requests() {
        let (start, end, step) = (1_700_000_000, 1_700_000_000 + 3 * 86_400, 20);
        let chunks = split_range(start, end, step, 11_000);
        assert_eq!(steps(start, end, step).len(), 12_961);
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0], (start, start + 10_999 * 20));
        assert_eq!(chunks[1], (start + 11_000 * 20, end));
    }

    #[test]
    fn chunks_cover_every_step_exactly_once_within_the_limit() {
        for (start, end, step, max) in [
            (0, 1_000_000, 60, 11_000),
            (5, 1_000_003, 7, 1_000),
            (100, 100, 60, 11_000),
            (0, 59, 60, 11_000),
            (0, 600, 60, 1),
            (-3_600, 3_600, 1, 11_000),
            (0, 11_000 * 60, 60, 11_000),
        ] {
            let chunks = split_range(start, end, step, max);
            let mut covered = Vec::new();
            for &(a, b) in &chunks {
                let chunk_steps = steps(a, b, step);
                assert!(chunk_steps.len() <= max, "{chunk_steps:?} > {max}");
                // What Prometheus checks: (end - start) / step must not exceed the limit.
                assert!((b - a) / step < max as i64);
                covered.extend(chunk_steps);
            }
            assert_eq!(
                covered,
                steps(start, end, step),
                "{start} {end} {step} {max}"
            );
        }
    }

    #[test]
    fn huge_max_points_does_not_overflow() {
        assert_eq!(split_range(0, 100, 10, usize::MAX), [(0, 100)]);
        assert_eq!(split_range(i64::MAX - 10, i64::MAX, 5, 2).len(), 2);
    }

    #[test]
    fn merge_joins_label_sets_and_drops_repeated_edges() {
        let labels = |v: &str| Labels::from([("instance".to_string(), v.to_string())]);
        let merged = merge_series([
            vec![
                RangeSeries {
                    labels: labels("b"),
                    samples: vec![(0, 1.0), (60, 2.0)],
                },
                RangeSeries {
                    labels: labels("a"),
                    samples: vec![(60, 5.0)],
                },
            ],
            vec![RangeSeries {
                labels: labels("b"),
                samples: vec![(60, 2.0), (120, f64::NAN)],
            }],
        ]);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].labels, labels("a"));
        assert_eq!(merged[1].labels, labels("b"));
        let b = &merged[1].samples;
        assert_eq!(b.iter().map(|s| s.0).collect::<Vec<_>>(), [0, 60, 120]);
        assert!(b[2].1.is_nan());
    }
}
