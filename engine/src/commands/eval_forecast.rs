//! `prognos eval forecast`: MASE and interval coverage by rolling origin, the
//! model under test beside seasonal naive and linear, at several horizons.

use std::fmt::Write as _;

use anyhow::{Context, Result, bail};
use prognos_models::accuracy::{HorizonAccuracy, rolling_origin, rolling_origin_with};
use prognos_models::forecast::{Level, ModelKind};
use prognos_models::series::Series;

use crate::cli::EvalForecastArgs;
use crate::modelled::{FitSpec, Labels, ModelledSeries};
use crate::{nab_corpus, progress, table};

/// Evaluates every series under `args.data` and returns the printed table.
pub fn eval_forecast(args: &EvalForecastArgs) -> Result<String> {
    let level = Level::try_from(args.level).context("--level")?;
    if args.horizons.is_empty() || args.horizons.contains(&0) {
        bail!("--horizons: expected positive step counts such as 12,288");
    }
    let mut paths = Vec::new();
    nab_corpus::collect_csv(&args.data, &mut paths)?;
    // Names as NAB writes them (`category/file.csv`), for the split.
    let names: Vec<String> = paths
        .iter()
        .map(|p| {
            p.strip_prefix(&args.data)
                .unwrap_or(p)
                .to_string_lossy()
                .replace('\\', "/")
        })
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let paths: Vec<_> = paths
        .iter()
        .zip(&names)
        .filter(|(_, n)| nab_corpus::in_split(n, &refs, args.split))
        .map(|(p, _)| p.clone())
        .collect();
    let mut models = vec![args.model, ModelKind::SeasonalNaive, ModelKind::Linear];
    models.dedup();
    let bar = progress::bar(paths.len() as u64, "evaluating");
    // per model, per horizon: (sum of MASE, series, points inside, points)
    let mut totals = vec![vec![(0.0, 0usize, 0.0, 0.0); args.horizons.len()]; models.len()];
    let mut used = 0;
    let mut skipped = Vec::new();
    let mut per_series = String::new();
    for path in &paths {
        bar.set_message(
            path.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        );
        bar.inc(1);
        let t = table::read(path)?;
        if t.rows.len() < 2 {
            skipped.push(format!("{}: fewer than 2 rows", path.display()));
            continue;
        }
        let (series, _) = Series::from_points(&t.points(), None)?;
        if args.step != 0 && series.step() != args.step {
            continue;
        }
        // The model under test is fitted as `prognos run` fits a series
        // (band floor, bounds, held-out last point); the baselines plainly.
        let results: Result<Vec<Vec<HorizonAccuracy>>, _> = models
            .iter()
            .enumerate()
            .map(|(i, &m)| {
                if i == 0 {
                    as_run(&series, m, &args.horizons, level, args.origins)
                } else {
                    rolling_origin(&series, m, &args.horizons, level, args.origins)
                }
            })
            .collect();
        match results {
            Ok(results) => {
                used += 1;
                if args.verbose {
                    let _ = write!(
                        per_series,
                        "{:<60}",
                        path.strip_prefix(&args.data).unwrap_or(path).display()
                    );
                    for a in &results[0] {
                        let _ = write!(per_series, " {:>8.3} {:>6.1}%", a.mase, 100.0 * a.coverage);
                    }
                    per_series.push('\n');
                }
                for (mi, per_h) in results.iter().enumerate() {
                    for (hi, a) in per_h.iter().enumerate() {
                        let tot = &mut totals[mi][hi];
                        if a.mase.is_finite() {
                            tot.0 += a.mase;
                            tot.1 += 1;
                        }
                        if a.points > 0 {
                            tot.2 += a.coverage * a.points as f64;
                            tot.3 += a.points as f64;
                        }
                    }
                }
            }
            Err(e) => skipped.push(format!("{}: {e}", path.display())),
        }
    }
    bar.finish_and_clear();
    let mut s = format!(
        "forecast accuracy: {used} series, {} origins each, band level {}\n\n{:<16}",
        args.origins, args.level, "model"
    );
    for h in &args.horizons {
        let _ = write!(
            s,
            " {:>14} {:>10}",
            format!("MASE@{h}"),
            format!("cover@{h}")
        );
    }
    s.push('\n');
    for (mi, m) in models.iter().enumerate() {
        let name = if mi == 0 {
            format!("{m} (as run)")
        } else {
            m.to_string()
        };
        let _ = write!(s, "{name:<16}");
        for tot in &totals[mi] {
            let mase = if tot.1 > 0 {
                tot.0 / tot.1 as f64
            } else {
                f64::NAN
            };
            let cover = if tot.3 > 0.0 { tot.2 / tot.3 } else { f64::NAN };
            let _ = write!(s, " {mase:>14.3} {:>9.1}%", 100.0 * cover);
        }
        s.push('\n');
    }
    if args.verbose {
        let _ = write!(
            s,
            "\nper series ({}: MASE and coverage at each horizon):\n{per_series}",
            models[0]
        );
    }
    for k in skipped {
        let _ = writeln!(s, "skipped {k}");
    }
    Ok(s)
}

/// Rolling-origin accuracy of `kind` fitted at each origin as the engine
/// fits a series ([`ModelledSeries::fit`] on the raw points before it).
fn as_run(
    series: &Series,
    kind: ModelKind,
    horizons: &[usize],
    level: Level,
    origins: usize,
) -> prognos_models::Result<Vec<HorizonAccuracy>> {
    let raw = series.values();
    rolling_origin_with(series, horizons, origins, |o, _, max_h| {
        let points: Vec<(i64, f64)> = (0..o).map(|i| (series.timestamp_at(i), raw[i])).collect();
        let now = series.timestamp_at(o.saturating_sub(1));
        let fitted = ModelledSeries::fit(
            Labels::new(),
            &points,
            &FitSpec::new(series.step(), kind, max_h),
            now,
        )?;
        Ok(fitted.forecast(max_h, level))
    })
}
