//! Parsing Prometheus's JSON envelope (`status`, `data.resultType`,
//! `errorType`/`error`, `warnings`, `infos`) into our types, and turning
//! anything else (HTML from a proxy, a bare 5xx) into a clear error.
//!
//! Nothing Prometheus sends is kept unbounded: error messages are cut to
//! [`MAX_MESSAGE_CHARS`], warnings are de-duplicated in linear time and at
//! most [`MAX_WARNINGS`] of them, each cut to [`MAX_WARNING_CHARS`], are kept.

use std::collections::HashSet;
use std::fmt;
use std::hash::{Hash, Hasher};

use prognos_notifiers::secret::{EXCERPT_CHARS, excerpt};
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use super::error::PromError;
use super::types::{InstantSample, Labels, QueryResult, RangeSeries};

/// How much of an unexpected body an error quotes.
const BODY_START_CHARS: usize = 200;

/// How many bytes of a body are looked at to quote its start: enough for
/// [`BODY_START_CHARS`] characters after collapsing a page's indentation,
/// without copying a body of hundreds of megabytes to quote 200 characters.
const BODY_START_SCAN_BYTES: usize = 64 * 1024;

/// Longest error message from Prometheus (or a parse error quoting its
/// answer) kept, in characters. PromQL errors are one line of well under
/// 500 characters; a longer one is cut so a hostile or broken peer cannot
/// make us hold (and log, and serve in the API) megabytes of text.
pub const MAX_MESSAGE_CHARS: usize = 500;

/// Most distinct warnings (and infos) kept from one query. Prometheus sends
/// a handful; 60,000 once cost a 14 s evaluation and 60,000 log lines.
pub const MAX_WARNINGS: usize = 100;

/// Longest warning kept, in characters: Prometheus's info messages quote a
/// metric name and a position, well under this.
pub const MAX_WARNING_CHARS: usize = 300;

/// Which result types the caller can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// `query_range`: a matrix.
    Matrix,
    /// `query`: a vector or a scalar.
    Instant,
}

/// What a successful response held, already in our types.
#[derive(Debug)]
pub enum Parsed {
    /// The series of a matrix.
    Matrix(Vec<RangeSeries>),
    /// The samples of a vector, or a scalar as one sample without labels.
    Instant(Vec<InstantSample>),
}

/// Where a response came from, for error messages.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// The HTTP method (`POST`, `GET`).
    pub method: &'static str,
    /// The endpoint's URL, without credentials.
    pub url: &'a str,
    /// The HTTP status of the answer.
    pub status: u16,
}

/// Distinct messages in first-seen order, at most [`MAX_WARNINGS`], each cut
/// to [`MAX_WARNING_CHARS`]; counts the distinct messages it left out (by
/// hash, 8 bytes each). Linear in the number of messages offered.
#[derive(Debug, Default)]
pub(crate) struct Warnings {
    kept: Vec<String>,
    seen: HashSet<String>,
    left_out: HashSet<u64>,
    /// Left out by answers merged in ([`Warnings::add_left_out`]).
    left_out_elsewhere: usize,
}

impl Warnings {
    /// Offers one message: kept if new and there is room.
    pub(crate) fn push(&mut self, message: &str) {
        let message = excerpt(message, MAX_WARNING_CHARS);
        if self.seen.contains(&message) {
            return;
        }
        if self.kept.len() == MAX_WARNINGS {
            let mut hasher = std::hash::DefaultHasher::new();
            message.hash(&mut hasher);
            self.left_out.insert(hasher.finish());
            return;
        }
        self.seen.insert(message.clone());
        self.kept.push(message);
    }

    /// Adds the count another answer left out.
    pub(crate) fn add_left_out(&mut self, n: usize) {
        self.left_out_elsewhere = self.left_out_elsewhere.saturating_add(n);
    }

    /// The kept messages and how many distinct ones were left out (an
    /// upper bound when answers were merged).
    pub(crate) fn finish(self) -> (Vec<String>, usize) {
        let left_out = self.left_out.len().saturating_add(self.left_out_elsewhere);
        (self.kept, left_out)
    }
}

/// Interprets one HTTP answer of `/api/v1/query` or `/api/v1/query_range`:
/// its status and its whole body. Never panics; every message it returns
/// or keeps is bounded (see the module's constants).
pub fn parse(
    origin: Origin<'_>,
    body: &[u8],
    expect: Expect,
) -> Result<QueryResult<Parsed>, PromError> {
    let success = (200..300).contains(&origin.status);
    let envelope = match serde_json::from_slice::<Envelope>(body) {
        Ok(envelope) => envelope,
        Err(full_error) => {
            // The data may be what failed to parse; an error envelope still
            // deserves to be reported as Prometheus worded it.
            if let Ok(head) = serde_json::from_slice::<Head>(body)
                && head.status == "error"
            {
                return Err(query_error(origin, head.error_type, head.error));
            }
            if !success {
                return Err(http_error(origin, body));
            }
            return Err(bad_response(origin, full_error.to_string(), body));
        }
    };
    match envelope.status.as_str() {
        "error" => return Err(query_error(origin, envelope.error_type, envelope.error)),
        "success" if success => {}
        "success" => return Err(http_error(origin, body)),
        other => {
            return Err(bad_response(
                origin,
                format!("status '{other}', expected 'success' or 'error'"),
                body,
            ));
        }
    }
    let Some(data) = envelope.data else {
        return Err(bad_response(origin, "no 'data'".to_string(), body));
    };
    let parsed = match (expect, data) {
        (Expect::Matrix, Data::Matrix(series)) => Parsed::Matrix(
            series
                .into_iter()
                .map(MatrixSeries::into_range_series)
                .collect(),
        ),
        (Expect::Instant, Data::Vector(samples)) => Parsed::Instant(
            samples
                .into_iter()
                // A native-histogram sample has no float value: skip it.
                .filter_map(|sample| {
                    sample.value.map(|pair| InstantSample {
                        labels: sample.metric,
                        timestamp: pair.timestamp(),
                        value: pair.1.0,
                    })
                })
                .collect(),
        ),
        (Expect::Instant, Data::Scalar(pair)) => Parsed::Instant(vec![InstantSample {
            labels: Labels::new(),
            timestamp: pair.timestamp(),
            value: pair.1.0,
        }]),
        (expect, data) => {
            let wanted = match expect {
                Expect::Matrix => "matrix",
                Expect::Instant => "vector or scalar",
            };
            return Err(bad_response(
                origin,
                format!("result type {}, expected {wanted}", data.result_type()),
                body,
            ));
        }
    };
    let (warnings, warnings_left_out) = merge_messages(&envelope.warnings, &envelope.infos);
    Ok(QueryResult {
        data: parsed,
        partial: !envelope.warnings.is_empty(),
        warnings,
        warnings_left_out,
    })
}

/// Warnings, then infos prefixed with `info: `, each once, bounded as
/// [`Warnings`] bounds them.
fn merge_messages(warnings: &[String], infos: &[String]) -> (Vec<String>, usize) {
    let mut out = Warnings::default();
    for warning in warnings {
        out.push(warning);
    }
    for info in infos {
        // Cut before prefixing so a huge info is not copied whole.
        out.push(&format!("info: {}", excerpt(info, MAX_WARNING_CHARS)));
    }
    out.finish()
}

fn query_error(origin: Origin<'_>, error_type: Option<String>, error: Option<String>) -> PromError {
    PromError::Query {
        method: origin.method,
        url: origin.url.to_string(),
        status: origin.status,
        error_type: error_type
            .map_or_else(|| "unknown".to_string(), |t| excerpt(&t, EXCERPT_CHARS)),
        message: error.map_or_else(
            || "(no message)".to_string(),
            |m| excerpt(&m, MAX_MESSAGE_CHARS),
        ),
    }
}

pub(crate) fn http_error(origin: Origin<'_>, body: &[u8]) -> PromError {
    PromError::Http {
        method: origin.method,
        url: origin.url.to_string(),
        status: origin.status,
        body_start: body_start(body),
    }
}

fn bad_response(origin: Origin<'_>, detail: String, body: &[u8]) -> PromError {
    PromError::BadResponse {
        method: origin.method,
        url: origin.url.to_string(),
        status: origin.status,
        detail: excerpt(&detail, MAX_MESSAGE_CHARS),
        body_start: body_start(body),
    }
}

/// The first [`BODY_START_CHARS`] characters of a body, whitespace runs
/// collapsed to one space so an HTML page reads on one line, control
/// characters replaced.
pub(crate) fn body_start(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(&body[..body.len().min(BODY_START_SCAN_BYTES)]);
    let mut out = String::new();
    let mut chars = 0;
    for word in text.split_whitespace() {
        if !out.is_empty() {
            if chars >= BODY_START_CHARS {
                out.push('…');
                return out;
            }
            out.push(' ');
            chars += 1;
        }
        for c in word.chars() {
            if chars >= BODY_START_CHARS {
                out.push('…');
                return out;
            }
            // Control characters (NUL, ESC, …) would reach terminals and
            // logs raw: shown as U+FFFD.
            out.push(if c.is_control() { '\u{fffd}' } else { c });
            chars += 1;
        }
    }
    if out.is_empty() {
        out.push_str("(empty body)");
    }
    out
}

#[derive(Deserialize)]
struct Envelope {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(rename = "errorType", default)]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    warnings: Vec<String>,
    #[serde(default)]
    infos: Vec<String>,
}

/// The envelope without its data, to report an error envelope whose data
/// did not parse.
#[derive(Deserialize)]
struct Head {
    status: String,
    #[serde(rename = "errorType", default)]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(tag = "resultType", content = "result", rename_all = "lowercase")]
enum Data {
    Matrix(Vec<MatrixSeries>),
    Vector(Vec<VectorSample>),
    Scalar(Pair),
    String(de::IgnoredAny),
}

impl Data {
    fn result_type(&self) -> &'static str {
        match self {
            Data::Matrix(_) => "matrix",
            Data::Vector(_) => "vector",
            Data::Scalar(_) => "scalar",
            Data::String(_) => "string",
        }
    }
}

#[derive(Deserialize)]
struct MatrixSeries {
    #[serde(default)]
    metric: Labels,
    /// Absent for a native-histogram series (its points are `histograms`).
    #[serde(default)]
    values: Vec<Pair>,
}

impl MatrixSeries {
    fn into_range_series(self) -> RangeSeries {
        let mut samples: Vec<(i64, f64)> = self
            .values
            .into_iter()
            .map(|pair| (pair.timestamp(), pair.1.0))
            .collect();
        sort_dedup(&mut samples);
        RangeSeries {
            labels: self.metric,
            samples,
        }
    }
}

/// Sorts samples by time and keeps the first of each timestamp.
pub(crate) fn sort_dedup(samples: &mut Vec<(i64, f64)>) {
    if samples.is_sorted_by(|a, b| a.0 < b.0) {
        return;
    }
    samples.sort_by_key(|&(t, _)| t);
    samples.dedup_by_key(|&mut (t, _)| t);
}

#[derive(Deserialize)]
struct VectorSample {
    #[serde(default)]
    metric: Labels,
    #[serde(default)]
    value: Option<Pair>,
}

/// `[unix seconds (maybe fractional), "value"]`.
#[derive(Deserialize)]
struct Pair(f64, SampleValue);

impl Pair {
    fn timestamp(&self) -> i64 {
        self.0.floor() as i64
    }
}

/// A sample value: Prometheus writes it as a string (`"1.5"`, `"NaN"`,
/// `"+Inf"`, `"-Inf"`); a bare JSON number is accepted too.
struct SampleValue(f64);

impl<'de> Deserialize<'de> for SampleValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ValueVisitor;
        impl Visitor<'_> for ValueVisitor {
            type Value = SampleValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sample value as a string such as \"1.5\", \"NaN\" or \"+Inf\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<SampleValue, E> {
                parse_sample_value(v).map(SampleValue).ok_or_else(|| {
                    E::custom(format!(
                        "invalid sample value '{}', must be a number, 'NaN', '+Inf' or '-Inf'",
                        excerpt(v, EXCERPT_CHARS)
                    ))
                })
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<SampleValue, E> {
                Ok(SampleValue(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<SampleValue, E> {
                Ok(SampleValue(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<SampleValue, E> {
                Ok(SampleValue(v as f64))
            }
        }
        deserializer.deserialize_any(ValueVisitor)
    }
}

/// Go's `strconv.FormatFloat(v, 'f', -1, 64)` output as Prometheus sends it.
fn parse_sample_value(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        // Rust also parses "inf"/"nan" spellings Prometheus never sends;
        // refuse them so a garbled body is not taken for data.
        _ if text
            .bytes()
            .any(|b| b.is_ascii_alphabetic() && b != b'e' && b != b'E') =>
        {
            None
        }
        _ => text.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "http://prom:9090/api/v1/query_range";

    fn origin(status: u16) -> Origin<'static> {
        Origin {
            method: "POST",
            url: URL,
            status,
        }
    }

    fn matrix(body: &str) -> QueryResult<Vec<RangeSeries>> {
        match parse(origin(200), body.as_bytes(), Expect::Matrix).unwrap() {
            QueryResult {
                data: Parsed::Matrix(series),
                warnings,
                warnings_left_out,
                partial,
            } => QueryResult {
                data: series,
                warnings,
                warnings_left_out,
                partial,
            },
            other => panic!("not a matrix: {other:?}"),
        }
    }

    fn instant(body: &str) -> Vec<InstantSample> {
        match parse(origin(200), body.as_bytes(), Expect::Instant)
            .unwrap()
            .data
        {
            Parsed::Instant(samples) => samples,
            other => panic!("not instant: {other:?}"),
        }
    }

    #[test]
    fn matrix_keeps_nan_and_infinities() {
        let result = matrix(
            r#"{"status":"success","data":{"resultType":"matrix","result":[
                {"metric":{"__name__":"h","job":"x"},"values":[[100,"NaN"],[160,"+Inf"],[220,"-Inf"],[280,"1.5e+3"],[340,"-0.25"]]}]}}"#,
        );
        assert!(!result.partial);
        let series = &result.data[0];
        assert_eq!(series.labels["__name__"], "h");
        assert_eq!(series.labels["job"], "x");
        let times: Vec<i64> = series.samples.iter().map(|s| s.0).collect();
        assert_eq!(times, [100, 160, 220, 280, 340]);
        let values: Vec<f64> = series.samples.iter().map(|s| s.1).collect();
        assert!(values[0].is_nan());
        assert_eq!(
            values[1..],
            [f64::INFINITY, f64::NEG_INFINITY, 1500.0, -0.25]
        );
    }

    #[test]
    fn matrix_samples_are_sorted_and_deduplicated() {
        let result = matrix(
            r#"{"status":"success","data":{"resultType":"matrix","result":[
                {"metric":{},"values":[[200,"2"],[100,"1"],[200,"3"]]}]}}"#,
        );
        assert_eq!(result.data[0].samples, [(100, 1.0), (200, 2.0)]);
    }

    #[test]
    fn warnings_set_partial_and_infos_do_not() {
        let result = matrix(
            r#"{"status":"success","data":{"resultType":"matrix","result":[]},
                "warnings":["remote read failed","remote read failed"],"infos":["metric might not be a counter"]}"#,
        );
        assert!(result.partial);
        assert_eq!(
            result.warnings,
            ["remote read failed", "info: metric might not be a counter"]
        );
        let infos_only = matrix(
            r#"{"status":"success","data":{"resultType":"matrix","result":[]},"infos":["x"]}"#,
        );
        assert!(!infos_only.partial);
        assert_eq!(infos_only.warnings, ["info: x"]);
    }

    #[test]
    fn vector_and_scalar_become_instant_samples() {
        let samples = instant(
            r#"{"status":"success","data":{"resultType":"vector","result":[
                {"metric":{"instance":"a"},"value":[1795497312.551,"42"]},
                {"metric":{"instance":"b"},"histogram":[1795497312.551,{"count":"1"}]}]}}"#,
        );
        assert_eq!(samples.len(), 1, "histogram samples are skipped");
        assert_eq!(samples[0].labels["instance"], "a");
        assert_eq!(samples[0].timestamp, 1795497312);
        assert_eq!(samples[0].value, 42.0);

        let scalar = instant(
            r#"{"status":"success","data":{"resultType":"scalar","result":[1000,"+Inf"]}}"#,
        );
        assert_eq!(
            scalar,
            [InstantSample {
                labels: Labels::new(),
                timestamp: 1000,
                value: f64::INFINITY
            }]
        );
    }

    #[test]
    fn error_envelope_is_a_query_error() {
        let body = r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:3: parse error: unexpected end of input"}"#;
        let err = parse(origin(400), body.as_bytes(), Expect::Instant).unwrap_err();
        match &err {
            PromError::Query {
                status, error_type, ..
            } => {
                assert_eq!(*status, 400);
                assert_eq!(error_type, "bad_data");
            }
            other => panic!("{other:?}"),
        }
        assert!(!err.retryable());
        assert!(
            err.to_string()
                .contains("parse error: unexpected end of input"),
            "{err}"
        );
    }

    #[test]
    fn html_with_200_is_a_bad_response_quoting_the_body() {
        let body = "<!DOCTYPE html>\n<html>\n  <head><title>Sign in</title></head>\n<body>please log in</body></html>";
        let err = parse(origin(200), body.as_bytes(), Expect::Matrix).unwrap_err();
        assert_eq!(err.kind(), "bad_response");
        assert!(!err.retryable());
        let message = err.to_string();
        assert!(message.contains("HTTP 200"), "{message}");
        assert!(
            message.contains("<!DOCTYPE html> <html> <head><title>Sign in"),
            "{message}"
        );
        assert!(message.contains(URL), "{message}");
    }

    #[test]
    fn html_with_502_is_a_retryable_http_error() {
        let body = format!("<html><body>{}</body></html>", "Bad gateway ".repeat(100));
        let err = parse(origin(502), body.as_bytes(), Expect::Matrix).unwrap_err();
        assert_eq!(err.kind(), "http_5xx");
        assert!(err.retryable());
        let PromError::Http { body_start, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(body_start.chars().count(), BODY_START_CHARS + 1);
        assert!(body_start.ends_with('…'));
    }

    #[test]
    fn garbled_values_and_unexpected_types_are_bad_responses() {
        let err = parse(
            origin(200),
            br#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1,"abc"]]}]}}"#,
            Expect::Matrix,
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("invalid sample value 'abc'"),
            "{err}"
        );

        let err = parse(
            origin(200),
            br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#,
            Expect::Matrix,
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("result type vector, expected matrix"),
            "{err}"
        );

        let err = parse(
            origin(200),
            br#"{"status":"success","data":{"resultType":"string","result":[1,"abc"]}}"#,
            Expect::Instant,
        )
        .unwrap_err();
        assert!(err.to_string().contains("result type string"), "{err}");
    }

    #[test]
    fn sample_value_spellings() {
        assert!(parse_sample_value("NaN").unwrap().is_nan());
        assert_eq!(parse_sample_value("+Inf"), Some(f64::INFINITY));
        assert_eq!(parse_sample_value("-Inf"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_sample_value("1e-7"), Some(1e-7));
        assert_eq!(parse_sample_value("-12"), Some(-12.0));
        assert_eq!(parse_sample_value("nan"), None);
        assert_eq!(parse_sample_value("infinity"), None);
        assert_eq!(parse_sample_value(""), None);
    }

    #[test]
    fn many_warnings_are_deduplicated_capped_and_cut() {
        // 60,000 warnings, half of them repeats, one of them huge.
        let mut warnings: Vec<String> = (0..30_000).map(|i| format!("w{i}")).collect();
        warnings.extend((0..30_000).map(|i| format!("w{i}")));
        warnings.insert(0, "x".repeat(100_000));
        let body = serde_json::json!({
            "status": "success",
            "data": {"resultType": "matrix", "result": []},
            "warnings": warnings,
            "infos": ["an info"],
        })
        .to_string();
        let result = matrix(&body);
        assert!(result.partial);
        assert_eq!(result.warnings.len(), MAX_WARNINGS);
        assert!(result.warnings[0].chars().count() < MAX_WARNING_CHARS + 30);
        assert!(
            result.warnings[0].contains("more bytes"),
            "cut with excerpt"
        );
        assert_eq!(result.warnings[1], "w0");
        assert_eq!(result.warnings[2], "w1");
        // Distinct messages beyond the cap: 30,001 + 1 info − 100 kept.
        assert_eq!(result.warnings_left_out, 30_002 - MAX_WARNINGS);
    }

    #[test]
    fn a_huge_error_message_is_cut() {
        let body = serde_json::json!({
            "status": "error",
            "errorType": "x".repeat(10_000),
            "error": format!("too many samples {}", "y".repeat(1_000_000)),
        })
        .to_string();
        let err = parse(origin(422), body.as_bytes(), Expect::Matrix).unwrap_err();
        let PromError::Query {
            message,
            error_type,
            ..
        } = &err
        else {
            panic!("{err:?}")
        };
        assert!(message.starts_with("too many samples yyy"), "{message}");
        assert!(
            message.chars().count() < MAX_MESSAGE_CHARS + 30,
            "{message}"
        );
        assert!(error_type.chars().count() < EXCERPT_CHARS + 30);
        assert!(err.to_string().len() < 2_000);
    }

    #[test]
    fn a_huge_garbled_value_is_quoted_only_in_part() {
        let body = format!(
            r#"{{"status":"success","data":{{"resultType":"matrix","result":[{{"metric":{{}},"values":[[1,"{}"]]}}]}}}}"#,
            "z".repeat(1_000_000)
        );
        let err = parse(origin(200), body.as_bytes(), Expect::Matrix).unwrap_err();
        assert_eq!(err.kind(), "bad_response");
        assert!(
            err.to_string().contains("invalid sample value 'zzz"),
            "{err}"
        );
        assert!(
            err.to_string().len() < 2_000,
            "{} bytes",
            err.to_string().len()
        );
    }

    #[test]
    fn empty_body_is_named() {
        assert_eq!(body_start(b"  \n "), "(empty body)");
    }

    /// Found by the fuzz target: a word ending exactly at the limit let the
    /// following space step past it, and the quote never stopped.
    #[test]
    fn a_body_quote_stops_at_the_limit_whatever_the_word_breaks() {
        for first in 1..=BODY_START_CHARS {
            let body = format!("{} {}", "a".repeat(first), "b ".repeat(10_000));
            let quoted = body_start(body.as_bytes());
            assert!(
                quoted.chars().count() <= BODY_START_CHARS + 1,
                "{first}: {} characters",
                quoted.chars().count()
            );
        }
        assert_eq!(body_start(b"a\0b\x1b[31m"), "a\u{fffd}b\u{fffd}[31m");
    }
}
