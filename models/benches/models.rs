//! Benchmarks of what the live engine does per series: fit + 12-step
//! forecast of a week of 5-minute data, and streaming anomaly scoring.
//! `cargo bench -p prognos-models`; figures go into the README.

use std::hint::black_box;

use augurs_core::{Fit as _, Predict as _};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use prognos_models::detector::{Detector, DetectorConfig};
use prognos_models::forecast::{Level, ModelKind, fit_model};
use prognos_models::synthetic::{Shape, series};

const WEEK: usize = 2016;
const STEP: i64 = 300;
const SERIES: usize = 1000;

fn week_set() -> Vec<Vec<f64>> {
    (0..SERIES)
        .map(|i| {
            let shape = Shape {
                level: 50.0 + (i % 17) as f64 * 10.0,
                daily: 5.0 + (i % 7) as f64 * 4.0,
                trend_per_day: (i % 5) as f64 - 2.0,
                noise: 1.0 + (i % 3) as f64,
                ..Shape::default()
            };
            series(&shape, 1_700_000_000, WEEK, i as u64 + 1)
        })
        .collect()
}

fn fit_forecast(c: &mut Criterion) {
    let set = week_set();
    let level = Level::try_from(0.95).expect("valid level");
    let mut group = c.benchmark_group("fit_forecast_week_5m_h12");
    for kind in [
        ModelKind::Auto,
        ModelKind::Mstl,
        ModelKind::Ets,
        ModelKind::SeasonalNaive,
    ] {
        let mut i = 0;
        group.bench_function(kind.as_str(), |b| {
            b.iter(|| {
                let y = &set[i % SERIES];
                i += 1;
                let m = fit_model(kind, black_box(y), STEP, 12).expect("fits");
                black_box(m.forecast(12, level))
            })
        });
    }
    // The reference: augurs' stock MSTL with AutoETS as trend model.
    group.sample_size(10);
    let mut i = 0;
    group.bench_function("augurs_mstl_autoets", |b| {
        b.iter(|| {
            let y = &set[i % SERIES];
            i += 1;
            let model = augurs_mstl::MSTLModel::new(
                vec![288],
                augurs_ets::AutoETS::non_seasonal().into_trend_model(),
            );
            let fitted = model.fit(black_box(y)).expect("fits");
            black_box(fitted.predict(12, 0.95).expect("predicts"))
        })
    });
    group.finish();
    let sizes: Vec<usize> = set
        .iter()
        .take(100)
        .map(|y| {
            fit_model(ModelKind::Auto, y, STEP, 288)
                .expect("fits")
                .size_bytes()
        })
        .collect();
    eprintln!(
        "fitted auto model held for live use: mean {} B, max {} B over 100 series",
        sizes.iter().sum::<usize>() / sizes.len(),
        sizes.iter().max().copied().unwrap_or(0)
    );
    eprintln!("detector state: {} B", std::mem::size_of::<Detector>());
}

fn streaming(c: &mut Criterion) {
    let n = 100_000;
    let shape = Shape::default();
    let values = series(&shape, 1_700_000_000, n, 42);
    let mut group = c.benchmark_group("streaming_score");
    group.throughput(Throughput::Elements(n as u64));
    group.sample_size(20);
    group.bench_function("detector_100k_points", |b| {
        b.iter(|| {
            let mut d = Detector::new(DetectorConfig::default());
            let mut acc = 0.0;
            for (i, v) in values.iter().enumerate() {
                acc += d.update(1_700_000_000 + i as i64 * STEP, *v);
            }
            black_box(acc)
        })
    });
    group.finish();
}

criterion_group!(benches, fit_forecast, streaming);
criterion_main!(benches);
