//! Reading and writing `timestamp,value` CSV files.
//!
//! The reader finds the `timestamp` and `value` columns by name (other
//! columns are ignored) and reports every problem with file, line and column.
//! Empty, `NaN` and `Inf` values are kept as missing values (NaN): `detect`
//! scores them 0 and `forecast` treats them as gaps. Raw fields are kept so
//! output can repeat the input exactly.
//!
//! Untrusted input is bounded: a row longer than [`MAX_RECORD_BYTES`] stops
//! the reading, and errors quote at most an excerpt of a field.

use std::io::Read;
use std::path::{Path, PathBuf};

use prognos_notifiers::secret::{EXCERPT_CHARS, excerpt};

use crate::timestamp::{self, TimestampStyle};

/// Longest row read, in bytes (a quoted field may span lines; the row ends
/// at a line break outside quotes). A `timestamp,value` row is a few dozen
/// bytes and files with extra columns stay far below this; without a bound
/// one 1 GiB field was held in memory several times over.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;

/// A problem with a CSV file.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The content is not what was expected.
    #[error("{path}:{line}{}: {message}", column.map(|c| format!(":{c}")).unwrap_or_default())]
    Format {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: u64,
        /// 1-based column (field), when one is to blame.
        column: Option<usize>,
        /// What was wrong and what was expected.
        message: String,
    },
}

/// One data row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// 1-based line in the file.
    pub line: u64,
    /// Unix seconds.
    pub timestamp: i64,
    /// The value; NaN when missing or not finite.
    pub value: f64,
    /// The timestamp field as written.
    pub raw_timestamp: String,
    /// The value field as written.
    pub raw_value: String,
}

/// The rows of a `timestamp,value` file, in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Data rows.
    pub rows: Vec<Row>,
    /// Style of the last row's timestamp (output follows it).
    pub style: TimestampStyle,
}

impl Table {
    /// The rows as `(timestamp, value)` points.
    pub fn points(&self) -> Vec<(i64, f64)> {
        self.rows.iter().map(|r| (r.timestamp, r.value)).collect()
    }
}

/// Reads a table from `path`.
pub fn read(path: &Path) -> Result<Table, TableError> {
    let file = std::fs::File::open(path).map_err(|source| TableError::Io {
        path: path.to_owned(),
        source,
    })?;
    parse(file, path)
}

/// Parses a table from `reader`; `path` names it in errors. Never panics;
/// a row longer than [`MAX_RECORD_BYTES`] is an error, and every error
/// names the file, the line, the column when one is to blame, and what was
/// expected, quoting at most an excerpt of the input.
pub fn parse(reader: impl Read, path: &Path) -> Result<Table, TableError> {
    let reader = RecordLimit::new(reader, MAX_RECORD_BYTES);
    let err = |line: u64, column: Option<usize>, message: String| TableError::Format {
        path: path.to_owned(),
        line,
        column,
        message,
    };
    let mut csv = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(reader);
    let mut records = csv.records();
    let header = match records.next() {
        None => {
            return Err(err(
                1,
                None,
                "empty file: expected a header line 'timestamp,value'".into(),
            ));
        }
        Some(Err(e)) => return Err(csv_error(path, &e)),
        Some(Ok(h)) => h,
    };
    let find = |name: &str| {
        header
            .iter()
            .position(|f| f.trim_start_matches('\u{feff}').eq_ignore_ascii_case(name))
    };
    let (Some(ts_col), Some(value_col)) = (find("timestamp"), find("value")) else {
        let got = header.iter().collect::<Vec<_>>().join(",");
        return Err(err(
            1,
            None,
            format!(
                "expected a header with columns 'timestamp' and 'value', got '{}'",
                excerpt(&got, EXCERPT_CHARS)
            ),
        ));
    };
    let mut rows = Vec::new();
    let mut style = TimestampStyle::Naive;
    for record in records {
        let record = record.map_err(|e| csv_error(path, &e))?;
        let line = record.position().map_or(0, |p| p.line());
        if record.len() == 1 && record[0].is_empty() {
            continue; // a blank line
        }
        let field = |col: usize, name: &str| {
            record.get(col).ok_or_else(|| {
                err(
                    line,
                    Some(col + 1),
                    format!(
                        "field '{name}' is missing: the row has {} fields",
                        record.len()
                    ),
                )
            })
        };
        let raw_ts = field(ts_col, "timestamp")?;
        let raw_value = field(value_col, "value")?;
        let (ts, row_style) = timestamp::parse(raw_ts)
            .map_err(|m| err(line, Some(ts_col + 1), format!("field 'timestamp': {m}")))?;
        let value = parse_value(raw_value)
            .map_err(|m| err(line, Some(value_col + 1), format!("field 'value': {m}")))?;
        style = row_style;
        rows.push(Row {
            line,
            timestamp: ts,
            value,
            raw_timestamp: raw_ts.to_owned(),
            raw_value: raw_value.to_owned(),
        });
    }
    Ok(Table { rows, style })
}

/// A value: a number, or empty/NaN/Inf for a missing value (NaN).
fn parse_value(s: &str) -> Result<f64, String> {
    if s.is_empty() {
        return Ok(f64::NAN);
    }
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Ok(f64::NAN),
        Err(_) => Err(format!(
            "expected a number, got '{}'",
            excerpt(s, EXCERPT_CHARS)
        )),
    }
}

fn csv_error(path: &Path, e: &csv::Error) -> TableError {
    if let csv::ErrorKind::Io(io) = e.kind()
        && let Some(too_long) = io.get_ref().and_then(|i| i.downcast_ref::<RecordTooLong>())
    {
        return TableError::Format {
            path: path.to_owned(),
            line: too_long.line,
            column: None,
            message: too_long.to_string(),
        };
    }
    let line = e.position().map_or(0, |p| p.line());
    TableError::Format {
        path: path.to_owned(),
        line,
        column: None,
        message: format!("malformed CSV: {}", excerpt(&e.to_string(), EXCERPT_CHARS)),
    }
}

/// A row past [`MAX_RECORD_BYTES`], found while reading.
#[derive(Debug, thiserror::Error)]
#[error(
    "row longer than {limit} bytes: expected short 'timestamp,value' rows \
     (is a quote left open?)"
)]
struct RecordTooLong {
    /// The line the row starts on.
    line: u64,
    limit: usize,
}

/// A reader that fails once a row (bytes between line breaks outside
/// double quotes) passes `limit`, before the CSV parser buffers more.
struct RecordLimit<R> {
    inner: R,
    limit: usize,
    in_quotes: bool,
    /// Bytes of the current row so far.
    row_bytes: usize,
    /// 1-based line of the current position, and of the row's start.
    line: u64,
    row_line: u64,
}

impl<R> RecordLimit<R> {
    fn new(inner: R, limit: usize) -> Self {
        RecordLimit {
            inner,
            limit,
            in_quotes: false,
            row_bytes: 0,
            line: 1,
            row_line: 1,
        }
    }
}

impl<R: Read> Read for RecordLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for &b in &buf[..n] {
            match b {
                b'"' => self.in_quotes = !self.in_quotes,
                b'\n' => {
                    self.line += 1;
                    if !self.in_quotes {
                        self.row_bytes = 0;
                        self.row_line = self.line;
                        continue;
                    }
                }
                _ => {}
            }
            self.row_bytes += 1;
            if self.row_bytes > self.limit {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    RecordTooLong {
                        line: self.row_line,
                        limit: self.limit,
                    },
                ));
            }
        }
        Ok(n)
    }
}

/// A CSV writer to a file, or to stdout for `-`.
pub fn writer(path: &Path) -> Result<csv::Writer<Box<dyn std::io::Write>>, TableError> {
    let sink: Box<dyn std::io::Write> = if path == Path::new("-") {
        Box::new(std::io::stdout().lock())
    } else {
        Box::new(
            std::fs::File::create(path).map_err(|source| TableError::Io {
                path: path.to_owned(),
                source,
            })?,
        )
    };
    Ok(csv::Writer::from_writer(sink))
}

/// Turns a csv write error into a [`TableError`] on `path`.
pub fn write_error(path: &Path, e: csv::Error) -> TableError {
    TableError::Io {
        path: path.to_owned(),
        source: std::io::Error::other(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> Result<Table, TableError> {
        parse(s.as_bytes(), Path::new("in.csv"))
    }

    #[test]
    fn reads_rows_in_order_with_lines() {
        let t = p("timestamp,value\n2014-04-01 00:05:00,1.5\n2014-04-01 00:00:00,2\n").unwrap();
        assert_eq!(t.rows.len(), 2);
        assert_eq!(t.rows[1].line, 3);
        assert_eq!(t.rows[1].value, 2.0);
        assert!(t.rows[0].timestamp > t.rows[1].timestamp);
    }

    #[test]
    fn non_numeric_value_names_line_and_column() {
        let e = p("timestamp,value\n1,2\n2,abc\n").unwrap_err().to_string();
        assert_eq!(e, "in.csv:3:2: field 'value': expected a number, got 'abc'");
    }

    #[test]
    fn bad_timestamp_names_line_and_column() {
        let e = p("value,timestamp\n2,soon\n").unwrap_err().to_string();
        assert!(e.starts_with("in.csv:2:2: field 'timestamp':"), "{e}");
    }

    #[test]
    fn empty_file_and_wrong_header_are_explained() {
        assert!(p("").unwrap_err().to_string().contains("empty file"));
        let e = p("time,val\n1,2\n").unwrap_err().to_string();
        assert!(e.contains("in.csv:1:") && e.contains("'time,val'"), "{e}");
    }

    #[test]
    fn header_only_is_an_empty_table() {
        assert!(p("timestamp,value\n").unwrap().rows.is_empty());
    }

    #[test]
    fn nan_inf_and_empty_values_are_missing() {
        let t = p("timestamp,value\n1,NaN\n2,inf\n3,\n4,-Infinity\n").unwrap();
        assert!(t.rows.iter().all(|r| r.value.is_nan()));
        assert_eq!(t.rows[2].raw_value, "");
    }

    #[test]
    fn short_row_is_explained() {
        let e = p("timestamp,value\n1\n").unwrap_err().to_string();
        assert!(e.starts_with("in.csv:2:2: field 'value' is missing"), "{e}");
    }

    #[test]
    fn a_huge_field_is_quoted_in_part() {
        let text = format!("timestamp,value\n1,{}\n", "x".repeat(MAX_RECORD_BYTES / 2));
        let e = p(&text).unwrap_err().to_string();
        assert!(
            e.starts_with("in.csv:2:2: field 'value': expected a number, got 'xxx"),
            "{e}"
        );
        assert!(e.len() < 300, "{} bytes: {e:.300}", e.len());
        let text = format!("{},value\n", "t".repeat(MAX_RECORD_BYTES / 2));
        let e = p(&text).unwrap_err().to_string();
        assert!(e.starts_with("in.csv:1: expected a header"), "{e:.300}");
        assert!(e.len() < 300, "{} bytes", e.len());
    }

    #[test]
    fn a_row_past_the_limit_stops_the_reading() {
        let text = format!(
            "timestamp,value\n1,2\n2,{}\n3,4\n",
            "9".repeat(MAX_RECORD_BYTES + 1)
        );
        let e = p(&text).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "in.csv:3: row longer than {MAX_RECORD_BYTES} bytes"
            )),
            "{e:.300}"
        );
        assert!(e.len() < 300, "{} bytes", e.len());
        // A quoted field spanning lines counts as one row, from its start.
        let text = format!(
            "timestamp,value\n1,\"{}\"\n",
            "9\n".repeat(MAX_RECORD_BYTES / 2 + 1)
        );
        let e = p(&text).unwrap_err().to_string();
        assert!(e.starts_with("in.csv:2: row longer than"), "{e:.300}");
    }

    #[test]
    fn rows_just_under_the_limit_and_quoted_fields_still_parse() {
        let pad = "0".repeat(MAX_RECORD_BYTES - 10);
        let text = format!("timestamp,value\n1,\"2\"\n2,{pad}3\n");
        let t = p(&text).unwrap();
        assert_eq!(t.rows.len(), 2);
        assert_eq!(t.rows[0].value, 2.0);
        assert_eq!(t.rows[1].value, 3.0);
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse(bytes.as_slice(), Path::new("x.csv"));
        }

        #[test]
        fn round_trips_generated_rows(rows in proptest::collection::vec((0i64..4_000_000_000, -1e12f64..1e12), 0..50)) {
            let mut text = String::from("timestamp,value\n");
            for (t, v) in &rows {
                text.push_str(&format!("{t},{v}\n"));
            }
            let table = parse(text.as_bytes(), Path::new("x.csv")).unwrap();
            prop_assert_eq!(table.rows.len(), rows.len());
            for (row, (t, v)) in table.rows.iter().zip(&rows) {
                prop_assert_eq!(row.timestamp, *t);
                prop_assert_eq!(row.value, *v);
            }
        }
    }
}
