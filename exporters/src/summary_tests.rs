//! Unit tests for the sliding-window summary.

use super::*;
use proptest::prelude::*;

fn config(max_samples: usize) -> SummaryConfig {
    SummaryConfig {
        window: Duration::from_secs(600),
        buckets: 5,
        max_samples,
        quantiles: vec![0.5, 0.9, 0.99],
    }
}

/// Fraction of `sorted` that is ≤ `v`.
fn rank_of(sorted: &[f64], v: f64) -> f64 {
    sorted.partition_point(|&x| x <= v) as f64 / sorted.len() as f64
}

#[test]
fn exact_when_under_the_cap() {
    let t0 = Instant::now();
    let s = SlidingSummary::with_origin(config(2048), t0);
    for i in 1..=1000 {
        s.record_at(f64::from(i), t0);
    }
    let snap = s.snapshot_at(t0);
    assert_eq!(snap.count, 1000);
    assert_eq!(snap.window_count, 1000);
    assert_eq!(snap.sum, 500_500.0);
    assert_eq!(
        snap.quantiles,
        vec![(0.5, 500.0), (0.9, 900.0), (0.99, 990.0)]
    );
}

#[test]
fn empty_window_reports_nan() {
    let s = SlidingSummary::default();
    let snap = s.snapshot();
    assert_eq!(snap.count, 0);
    assert!(snap.quantiles.iter().all(|(_, v)| v.is_nan()));
}

#[test]
fn nan_is_ignored() {
    let s = SlidingSummary::default();
    s.record(f64::NAN);
    s.record(1.0);
    assert_eq!(s.snapshot().count, 1);
    assert_eq!(s.snapshot().sum, 1.0);
}

#[test]
fn window_forgets_old_samples() {
    let t0 = Instant::now();
    let s = SlidingSummary::with_origin(config(2048), t0);
    // Slow requests at the start, fast ones 9 minutes later.
    for _ in 0..100 {
        s.record_at(5.0, t0);
    }
    let later = t0 + Duration::from_secs(9 * 60);
    for _ in 0..100 {
        s.record_at(0.01, later);
    }
    let snap = s.snapshot_at(later);
    assert_eq!(snap.window_count, 200);
    assert_eq!(snap.quantiles[2], (0.99, 5.0));

    // 11 minutes after the start the first bucket has left the window.
    let snap = s.snapshot_at(t0 + Duration::from_secs(11 * 60));
    assert_eq!(snap.window_count, 100);
    assert!(snap.quantiles.iter().all(|&(_, v)| v == 0.01));
    // _sum and _count stay cumulative.
    assert_eq!(snap.count, 200);
    assert!((snap.sum - 501.0).abs() < 1e-9);

    // Long after, nothing is left in the window.
    let snap = s.snapshot_at(t0 + Duration::from_secs(3600));
    assert_eq!(snap.window_count, 0);
    assert!(snap.quantiles[0].1.is_nan());
}

#[test]
fn rotated_bucket_is_cleared_before_reuse() {
    let t0 = Instant::now();
    let s = SlidingSummary::with_origin(config(16), t0);
    s.record_at(100.0, t0);
    // Same bucket index one full window later.
    let t1 = t0 + Duration::from_secs(600);
    s.record_at(1.0, t1);
    let snap = s.snapshot_at(t1);
    assert_eq!(snap.window_count, 1);
    assert_eq!(snap.quantiles[0].1, 1.0);
    // An observation stamped before the bucket's current slot is dropped
    // from the window but still counted.
    s.record_at(50.0, t0);
    let snap = s.snapshot_at(t1);
    assert_eq!(snap.window_count, 1);
    assert_eq!(snap.count, 3);
}

#[test]
fn buckets_are_weighted_by_traffic() {
    let t0 = Instant::now();
    let s = SlidingSummary::with_origin(config(100), t0);
    // 10 000 fast requests in one bucket (sampled down to 100) and 200 slow
    // ones in the next: the slow ones are ~2 % of the window.
    for _ in 0..10_000 {
        s.record_at(0.01, t0);
    }
    let t1 = t0 + Duration::from_secs(130);
    for _ in 0..200 {
        s.record_at(1.0, t1);
    }
    let snap = s.snapshot_at(t1);
    assert_eq!(snap.window_count, 10_200);
    assert_eq!(snap.quantiles[0].1, 0.01);
    assert_eq!(snap.quantiles[1].1, 0.01);
    assert_eq!(snap.quantiles[2].1, 1.0);
}

#[test]
fn family_encodes_openmetrics_summary() {
    let family: SummaryFamily<Vec<(String, String)>> = SummaryFamily::default();
    let labels = vec![("route".to_owned(), "/a \"b\"".to_owned())];
    let s = family.get_or_create(&labels);
    s.record(0.25);
    s.record(0.75);
    assert!(Arc::ptr_eq(&s, &family.get_or_create(&labels)));
    let mut out = String::new();
    family
        .encode_text_at(&mut out, "x_seconds", "help\nme", Instant::now())
        .unwrap();
    let expected = "# HELP x_seconds help\\nme\n\
        # TYPE x_seconds summary\n\
        x_seconds{route=\"/a \\\"b\\\"\",quantile=\"0.5\"} 0.25\n\
        x_seconds{route=\"/a \\\"b\\\"\",quantile=\"0.9\"} 0.75\n\
        x_seconds{route=\"/a \\\"b\\\"\",quantile=\"0.99\"} 0.75\n\
        x_seconds_sum{route=\"/a \\\"b\\\"\"} 1\n\
        x_seconds_count{route=\"/a \\\"b\\\"\"} 2\n";
    assert_eq!(out, expected);
}

#[test]
fn collector_writes_only_into_the_sink() {
    let family: Arc<SummaryFamily<Vec<(String, String)>>> = Arc::new(SummaryFamily::default());
    family.get_or_create(&vec![]).record(1.0);
    let mut registry = Registry::default();
    family.register(&mut registry, "y_seconds", "y");
    let mut plain = String::new();
    prometheus_client::encoding::text::encode(&mut plain, &registry).unwrap();
    assert_eq!(plain, "# EOF\n");
    let (res, captured) = with_summary_sink(|| {
        let mut s = String::new();
        prometheus_client::encoding::text::encode_registry(&mut s, &registry).map(|_| s)
    });
    assert_eq!(res.unwrap(), "");
    assert!(captured.contains("# TYPE y_seconds summary\n"));
    assert!(captured.contains("y_seconds{quantile=\"0.5\"} 1\n"));
    assert!(captured.contains("y_seconds_count 1\n"));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Uniform samples, several buckets, far over the per-bucket cap: each
    /// estimated quantile's rank in the true window is within the
    /// documented 0.05 of the requested quantile.
    #[test]
    fn sampled_quantiles_within_rank_error(
        seed in any::<u64>(),
        per_bucket in prop::collection::vec(100usize..6000, 1..5),
    ) {
        let t0 = Instant::now();
        let s = SlidingSummary::with_origin(config(2048), t0);
        let mut rng = seed | 1;
        let mut all = Vec::new();
        for (b, &n) in per_bucket.iter().enumerate() {
            let at = t0 + Duration::from_secs(120 * b as u64 + 1);
            for _ in 0..n {
                let v = (next_random(&mut rng) >> 11) as f64 / (1u64 << 53) as f64;
                s.record_at(v, at);
                all.push(v);
            }
        }
        let now = t0 + Duration::from_secs(120 * per_bucket.len() as u64 - 60);
        let snap = s.snapshot_at(now);
        prop_assert_eq!(snap.window_count as usize, all.len());
        all.sort_by(f64::total_cmp);
        for (q, v) in snap.quantiles {
            let rank = rank_of(&all, v);
            prop_assert!((rank - q).abs() <= 0.05, "q={} v={} rank={}", q, v, rank);
        }
    }
}
