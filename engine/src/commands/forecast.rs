//! `prognos forecast`: fit a model on a CSV series and write the forecast
//! with its calibrated band.

use anyhow::{Context, Result, bail};
use prognos_models::forecast::Level;
use prognos_models::series::Series;
use prognos_models::threshold::{Direction, describe, time_to_threshold};

use crate::cli::{CrossDirection, ForecastArgs};
use crate::modelled::{FitSpec, Labels, ModelledSeries};
use crate::{table, timestamp};

/// Fits `args.model` on `args.input` and writes `args.horizon` steps.
///
/// The input is resampled to its most common step (gaps interpolated for
/// fitting; repeated timestamps averaged). A horizon of zero writes only the
/// header. Fewer than three rows with values is an error (a model and its
/// band need them, as in `prognos run`).
pub fn forecast(args: &ForecastArgs) -> Result<()> {
    let level = Level::try_from(args.level).context("--level")?;
    let input = table::read(&args.input)?;
    let observed = input.rows.iter().filter(|r| r.value.is_finite()).count();
    if observed < 3 {
        bail!(
            "{}: need at least 3 rows with values to forecast, got {observed} (of {} rows)",
            args.input.display(),
            input.rows.len()
        );
    }
    let (series, report) = Series::from_points(&input.points(), None)
        .with_context(|| format!("{}: resampling", args.input.display()))?;
    if report.out_of_order + report.merged + report.non_finite + report.missing_slots > 0 {
        tracing::warn!(
            out_of_order = report.out_of_order,
            merged = report.merged,
            missing_values = report.non_finite,
            gaps = report.missing_slots,
            step_secs = series.step(),
            "Input is irregular; resampled."
        );
    }
    let mut out = table::writer(&args.output)?;
    let werr = |e| table::write_error(&args.output, e);
    out.write_record(["timestamp", "yhat", "yhat_lower", "yhat_upper"])
        .map_err(werr)?;
    if args.horizon > 0 {
        // Fitted as `prognos run` fits a series: the band floored and never
        // collapsed, forecasts of a non-negative history kept non-negative.
        let points = input.points();
        let now = points.iter().map(|p| p.0).max().unwrap_or(0);
        let model = ModelledSeries::fit(
            Labels::new(),
            &points,
            &FitSpec::new(series.step(), args.model, args.horizon),
            now,
        )
        .with_context(|| format!("{}: fitting {}", args.input.display(), args.model))?;
        let f = model.forecast(args.horizon, level);
        tracing::info!(
            model = model.model_name(),
            points = series.len(),
            step_secs = series.step(),
            "Fitted."
        );
        if let Some(level) = args.threshold {
            let (direction, word) = match args.direction {
                CrossDirection::Above => (Direction::Above, "rises to"),
                CrossDirection::Below => (Direction::Below, "falls to"),
            };
            let crossing = time_to_threshold(&f, level, direction);
            eprintln!("{word} {level} {}", describe(&crossing, series.step()));
        }
        for k in 0..f.len() {
            let ts = timestamp::format(series.timestamp_at(series.len() + k), input.style);
            out.write_record([ts, num(f.point[k]), num(f.lower[k]), num(f.upper[k])])
                .map_err(werr)?;
        }
    }
    out.flush()
        .with_context(|| format!("writing {}", args.output.display()))?;
    Ok(())
}

fn num(v: f64) -> String {
    format!("{v}")
}
