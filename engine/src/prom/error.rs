//! What can go wrong talking to Prometheus, with a low-cardinality kind for
//! metrics and whether retrying can help.

/// An error from [`PromClient`](super::PromClient). Messages name the URL
/// (without credentials) and what came back; no secret reaches them.
#[derive(Debug, thiserror::Error)]
pub enum PromError {
    /// The settings cannot make a client (bad URL, unreadable CA, ...).
    #[error("invalid Prometheus client settings: {0}")]
    Settings(String),
    /// The caller asked for something that cannot be queried
    /// (a step of 0, an end before the start).
    #[error("invalid query arguments: {0}")]
    InvalidArgument(String),
    /// No answer within the per-request timeout.
    #[error("{method} {url}: timed out after {timeout_ms} ms")]
    Timeout {
        method: &'static str,
        url: String,
        timeout_ms: u128,
    },
    /// The TCP or TLS connection could not be made.
    #[error("{method} {url}: cannot connect: {message}")]
    Connect {
        method: &'static str,
        url: String,
        message: String,
    },
    /// The connection broke while sending the request or reading the answer.
    #[error("{method} {url}: {message}")]
    Transport {
        method: &'static str,
        url: String,
        message: String,
    },
    /// A non-2xx status without a Prometheus error envelope (a proxy's page,
    /// a 503 while starting).
    #[error("{method} {url}: HTTP {status}: {body_start}")]
    Http {
        method: &'static str,
        url: String,
        status: u16,
        /// The first characters of the body, whitespace collapsed.
        body_start: String,
    },
    /// Prometheus answered with `"status": "error"`: a PromQL syntax error
    /// (`bad_data`, HTTP 400), an execution error (422), a query timeout
    /// (503), ...
    #[error("{method} {url}: Prometheus error {error_type} (HTTP {status}): {message}")]
    Query {
        method: &'static str,
        url: String,
        status: u16,
        /// Prometheus's `errorType`: `bad_data`, `execution`, `timeout`,
        /// `canceled`, `internal`, `unavailable`, ...
        error_type: String,
        message: String,
    },
    /// A 2xx answer that is not the JSON Prometheus sends (HTML from a proxy,
    /// an unexpected result type, an unparsable sample).
    #[error(
        "{method} {url}: HTTP {status}: not a Prometheus API response ({detail}): {body_start}"
    )]
    BadResponse {
        method: &'static str,
        url: String,
        status: u16,
        detail: String,
        body_start: String,
    },
    /// The answer was longer than `max_response_bytes` (its
    /// `Content-Length`, or what was read before reading stopped). Not
    /// retried: the same query gives the same answer.
    #[error(
        "{method} {url}: response larger than the limit of {limit} bytes \
         (global.prometheus.max_response_bytes); narrow the query or raise the limit"
    )]
    ResponseTooLarge {
        method: &'static str,
        url: String,
        /// The limit in force, in bytes.
        limit: u64,
    },
}

impl PromError {
    /// A low-cardinality label for a metric or a log field.
    pub fn kind(&self) -> &'static str {
        match self {
            PromError::Settings(_) => "settings",
            PromError::InvalidArgument(_) => "invalid_argument",
            PromError::Timeout { .. } => "timeout",
            PromError::Connect { .. } => "connect",
            PromError::Transport { .. } => "transport",
            PromError::Http { status, .. } => match status {
                500..=599 => "http_5xx",
                400..=499 => "http_4xx",
                _ => "http_other",
            },
            PromError::Query { .. } => "query_error",
            PromError::BadResponse { .. } => "bad_response",
            PromError::ResponseTooLarge { .. } => "response_too_large",
        }
    }

    /// Whether the same request may succeed later: connection failures,
    /// timeouts, 429, 408 and 5xx, not other 4xx (a PromQL error stays one).
    pub fn retryable(&self) -> bool {
        match self {
            PromError::Timeout { .. } | PromError::Connect { .. } | PromError::Transport { .. } => {
                true
            }
            PromError::Http { status, .. } | PromError::Query { status, .. } => {
                retryable_status(*status)
            }
            PromError::Settings(_)
            | PromError::InvalidArgument(_)
            | PromError::BadResponse { .. }
            | PromError::ResponseTooLarge { .. } => false,
        }
    }

    /// The HTTP status Prometheus (or a proxy) answered with, if any.
    pub fn status(&self) -> Option<u16> {
        match self {
            PromError::Http { status, .. }
            | PromError::Query { status, .. }
            | PromError::BadResponse { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// 408 Request Timeout, 429 Too Many Requests and every 5xx.
pub(crate) fn retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500..=599)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(status: u16) -> PromError {
        PromError::Http {
            method: "POST",
            url: "http://p/api/v1/query".into(),
            status,
            body_start: String::new(),
        }
    }

    fn query(status: u16, error_type: &str) -> PromError {
        PromError::Query {
            method: "POST",
            url: "http://p/api/v1/query".into(),
            status,
            error_type: error_type.into(),
            message: "m".into(),
        }
    }

    #[test]
    fn retryable_statuses_are_429_408_and_5xx() {
        for status in [408, 429, 500, 502, 503, 504] {
            assert!(http(status).retryable(), "{status}");
        }
        for status in [400, 401, 403, 404, 422, 499] {
            assert!(!http(status).retryable(), "{status}");
        }
    }

    #[test]
    fn promql_bad_data_is_not_retried_but_query_timeout_is() {
        assert!(!query(400, "bad_data").retryable());
        assert!(!query(422, "execution").retryable());
        assert!(query(503, "timeout").retryable());
        assert_eq!(query(400, "bad_data").kind(), "query_error");
    }

    #[test]
    fn a_too_large_response_is_not_retried_and_names_the_limit() {
        let err = PromError::ResponseTooLarge {
            method: "POST",
            url: "http://p/api/v1/query".into(),
            limit: 1024,
        };
        assert!(!err.retryable());
        assert_eq!(err.kind(), "response_too_large");
        assert_eq!(err.status(), None);
        let message = err.to_string();
        assert!(message.contains("limit of 1024 bytes"), "{message}");
        assert!(message.contains("max_response_bytes"), "{message}");
    }

    #[test]
    fn kinds_are_low_cardinality() {
        assert_eq!(http(503).kind(), "http_5xx");
        assert_eq!(http(404).kind(), "http_4xx");
        assert_eq!(http(302).kind(), "http_other");
    }
}
