//! The data the client hands back: label sets, range series, instant samples
//! and the query result that carries Prometheus's warnings beside them.

use std::collections::BTreeMap;

/// A series' label set, `__name__` included when Prometheus returns it.
pub type Labels = BTreeMap<String, String>;

/// One series of a range query.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeSeries {
    pub labels: Labels,
    /// `(unix seconds, value)`, sorted by time with no repeated timestamp.
    /// Values are kept as Prometheus sent them: `NaN`, `+Inf` and `-Inf`
    /// included; the caller decides what they mean.
    pub samples: Vec<(i64, f64)>,
}

/// One sample of an instant query. A scalar result comes back as one sample
/// with empty labels.
#[derive(Debug, Clone, PartialEq)]
pub struct InstantSample {
    pub labels: Labels,
    /// Unix seconds, rounded down (Prometheus answers an instant query
    /// without a time with a fractional "now").
    pub timestamp: i64,
    pub value: f64,
}

/// A successful answer with what Prometheus said about it.
#[derive(Debug, Clone)]
pub struct QueryResult<T> {
    pub data: T,
    /// Prometheus's `warnings`, then its `infos` prefixed with `info: `,
    /// each message once (a chunked range query merges them), at most
    /// [`MAX_WARNINGS`](super::response::MAX_WARNINGS), each cut to
    /// [`MAX_WARNING_CHARS`](super::response::MAX_WARNING_CHARS).
    pub warnings: Vec<String>,
    /// How many distinct messages were left out past the cap (summed over
    /// the requests of a chunked range query).
    pub warnings_left_out: usize,
    /// True when Prometheus returned warnings: it does so when the answer may
    /// be incomplete (a remote-read or a storage error). Infos do not set it.
    pub partial: bool,
}
