//! How to reach a Prometheus server: URL, timeout, credentials, CA, retry,
//! chunking and response-size limits.

use std::fmt;
use std::time::Duration;

use prognos_notifiers::secret::Secret;

/// The most points per series Prometheus returns from one range query; it
/// refuses more with "exceeded maximum resolution of 11,000 points".
pub const PROMETHEUS_MAX_POINTS: usize = 11_000;

/// Default cap on one response body, in bytes: 256 MiB. A range query at
/// the 11,000-point limit takes about 40 bytes a point, so this holds some
/// 600 such series per request; an answer larger than that is a runaway
/// query or a hostile peer, and reading it whole once took 8 GB of memory.
pub const DEFAULT_MAX_RESPONSE_BYTES: u64 = 256 * 1024 * 1024;

/// Settings of a [`PromClient`](super::PromClient). `Debug` prints whether a
/// credential is set, never its value.
#[derive(Clone)]
pub struct ClientSettings {
    /// Base URL of the server, e.g. `http://127.0.0.1:9090`; a path prefix
    /// (`https://host/prometheus`) is kept. Default `http://127.0.0.1:9090`.
    pub url: String,
    /// Timeout of each HTTP request, connecting included. Default 30 s.
    pub timeout: Duration,
    /// Sent as `Authorization: Bearer …`. Exclusive with `basic_auth`.
    pub bearer_token: Option<Secret>,
    /// `(user, password)` sent as HTTP basic auth. Exclusive with
    /// `bearer_token`.
    pub basic_auth: Option<(String, Secret)>,
    /// PEM certificate(s) trusted in addition to the built-in roots, for a
    /// server behind a private CA.
    pub ca_cert_pem: Option<Vec<u8>>,
    /// Retries after the first attempt of a retryable failure. Default 3.
    pub max_retries: u32,
    /// Most steps per range request; longer ranges are split. Default
    /// [`PROMETHEUS_MAX_POINTS`]; must be at least 1.
    pub max_points_per_query: usize,
    /// Largest response body read, in bytes; a longer answer fails with
    /// [`PromError::ResponseTooLarge`](super::PromError::ResponseTooLarge)
    /// without being read further. Default [`DEFAULT_MAX_RESPONSE_BYTES`];
    /// must be at least 1.
    pub max_response_bytes: u64,
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            url: "http://127.0.0.1:9090".to_string(),
            timeout: Duration::from_secs(30),
            bearer_token: None,
            basic_auth: None,
            ca_cert_pem: None,
            max_retries: 3,
            max_points_per_query: PROMETHEUS_MAX_POINTS,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }
}

impl fmt::Debug for ClientSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSettings")
            .field("url", &super::client::redact_url_str(&self.url))
            .field("timeout", &self.timeout)
            .field("bearer_token", &self.bearer_token)
            .field("basic_auth", &self.basic_auth)
            .field(
                "ca_cert_pem",
                &self.ca_cert_pem.as_ref().map(|pem| pem.len()),
            )
            .field("max_retries", &self.max_retries)
            .field("max_points_per_query", &self.max_points_per_query)
            .field("max_response_bytes", &self.max_response_bytes)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_does_not_print_secrets() {
        let settings = ClientSettings {
            url: "http://admin:hunter2@prom:9090".into(),
            bearer_token: Some(Secret::new("s3cr3t-token")),
            basic_auth: Some(("alice".into(), Secret::new("pa55word"))),
            ..ClientSettings::default()
        };
        let printed = format!("{settings:?}");
        for secret in ["hunter2", "s3cr3t-token", "pa55word"] {
            assert!(!printed.contains(secret), "{printed}");
        }
        assert!(printed.contains("alice"), "{printed}");
    }
}
