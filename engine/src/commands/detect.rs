//! `prognos detect`: the streaming detector over a CSV file, row by row in
//! file order, exactly as the live engine feeds it points.

use anyhow::Result;
use prognos_models::detector::{Detector, DetectorConfig};

use crate::cli::DetectArgs;
use crate::table;

/// Columns `--explain` adds after `anomaly_score`, one per field of
/// [`prognos_models::detector::Explained`].
const EXPLAIN_COLUMNS: [&str; 8] = [
    "expected",
    "model",
    "surprise",
    "raw_score",
    "likelihood",
    "extreme",
    "onset_score",
    "sustained_score",
];

/// Scores every row of `args.input` and writes them with `anomaly_score`
/// (and, with `--explain`, the parts of the score).
///
/// Rows keep their order and raw text. Missing values score 0. A row whose
/// timestamp repeats or steps back is scored but not learned from.
pub fn detect(args: &DetectArgs) -> Result<()> {
    let input = table::read(&args.input)?;
    let mut detector = Detector::new(DetectorConfig::default());
    let mut out = table::writer(&args.output)?;
    let werr = |e| table::write_error(&args.output, e);
    let mut header = vec!["timestamp", "value", "anomaly_score"];
    if args.explain {
        header.extend(EXPLAIN_COLUMNS);
    }
    out.write_record(&header).map_err(werr)?;
    for row in &input.rows {
        let (timestamp, value) = (row.raw_timestamp.as_str(), row.raw_value.as_str());
        if args.explain {
            let e = detector.update_explained(row.timestamp, row.value);
            let f = |x: f64| format!("{x:.6}");
            out.write_record([
                timestamp,
                value,
                &f(e.score),
                &e.expected.map(f).unwrap_or_default(),
                e.model.unwrap_or_default(),
                &f(e.surprise),
                &f(e.raw),
                &f(e.likelihood),
                &f(e.extreme),
                &f(e.onset),
                &f(e.sustained),
            ])
            .map_err(werr)?;
        } else {
            let score = detector.update(row.timestamp, row.value);
            out.write_record([timestamp, value, &format!("{score:.6}")])
                .map_err(werr)?;
        }
    }
    out.flush().map_err(|source| table::TableError::Io {
        path: args.output.clone(),
        source,
    })?;
    tracing::info!(rows = input.rows.len(), output = %args.output.display(), "Scored.");
    Ok(())
}
