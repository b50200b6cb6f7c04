//! `prognos detect`: the streaming detector over a CSV file, row by row in
//! file order, exactly as the live engine feeds it points.

use anyhow::Result;
use prognos_models::detector::{Detector, DetectorConfig};

use crate::cli::DetectArgs;
use crate::table;

/// Scores every row of `args.input` and writes them with `anomaly_score`.
///
/// Rows keep their order and raw text. Missing values score 0. A row whose
/// timestamp repeats or steps back is scored but not learned from.
pub fn detect(args: &DetectArgs) -> Result<()> {
    let input = table::read(&args.input)?;
    let mut detector = Detector::new(DetectorConfig::default());
    let mut out = table::writer(&args.output)?;
    let werr = |e| table::write_error(&args.output, e);
    out.write_record(["timestamp", "value", "anomaly_score"])
        .map_err(werr)?;
    for row in &input.rows {
        let score = detector.update(row.timestamp, row.value);
        out.write_record([
            row.raw_timestamp.as_str(),
            row.raw_value.as_str(),
            &format!("{score:.6}"),
        ])
        .map_err(werr)?;
    }
    out.flush().map_err(|source| table::TableError::Io {
        path: args.output.clone(),
        source,
    })?;
    tracing::info!(rows = input.rows.len(), output = %args.output.display(), "Scored.");
    Ok(())
}
