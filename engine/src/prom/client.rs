//! [`PromClient`]: POSTs form-encoded queries to `/api/v1/query` and
//! `/api/v1/query_range`, with auth, a custom CA, a per-request timeout,
//! retries, range chunking and a cap on the size of an answer.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use prognos_notifiers::secret::Secret;
use url::Url;

use super::chunk::{merge_series, split_range};
use super::error::PromError;
use super::response::{self, Expect, Origin, Parsed, Warnings};
use super::retry::{Backoff, prom_backoff, with_retries};
use super::settings::ClientSettings;
use super::types::{InstantSample, QueryResult, RangeSeries};

/// A Prometheus HTTP API client. Cloning is cheap (the connection pool and
/// settings are shared); `Debug` shows the URL and which auth is used, never
/// a credential.
#[derive(Clone)]
pub struct PromClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    /// Base URL without credentials, for messages.
    base_display: String,
    query: Endpoint,
    query_range: Endpoint,
    ready: Endpoint,
    auth: Auth,
    timeout: Duration,
    max_retries: u32,
    max_points: usize,
    max_response_bytes: u64,
    backoff: Backoff,
}

struct Endpoint {
    url: Url,
    /// `url` as text (it never holds credentials: they are moved to `auth`).
    display: String,
}

enum Auth {
    None,
    Bearer(Secret),
    Basic(String, Secret),
}

impl Auth {
    fn name(&self) -> &'static str {
        match self {
            Auth::None => "none",
            Auth::Bearer(_) => "bearer",
            Auth::Basic(..) => "basic",
        }
    }
}

impl fmt::Debug for PromClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        f.debug_struct("PromClient")
            .field("url", &inner.base_display)
            .field("auth", &inner.auth.name())
            .field("timeout", &inner.timeout)
            .field("max_retries", &inner.max_retries)
            .field("max_points_per_query", &inner.max_points)
            .field("max_response_bytes", &inner.max_response_bytes)
            .finish()
    }
}

impl PromClient {
    /// Checks the settings and builds the HTTP client; does no I/O.
    /// Credentials in the URL (`http://user:pass@host`) are used as basic
    /// auth. Two kinds of credentials at once are rejected.
    pub fn new(settings: ClientSettings) -> Result<Self, PromError> {
        let invalid = |message: String| PromError::Settings(message);
        let mut base = Url::parse(&settings.url)
            .map_err(|e| invalid(format!("url '{}': {e}", redact_url_str(&settings.url))))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(invalid(format!(
                "url '{}': scheme '{}', must be 'http' or 'https'",
                redact_url_str(&settings.url),
                base.scheme()
            )));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(invalid(format!(
                "url '{}': must not have a query or fragment",
                redact_url_str(&settings.url)
            )));
        }
        let url_credentials =
            take_credentials(&mut base).map(|(user, password)| (user, Secret::new(password)));
        let auth = match (settings.bearer_token, settings.basic_auth, url_credentials) {
            (None, None, None) => Auth::None,
            (Some(token), None, None) => Auth::Bearer(token),
            (None, Some((user, password)), None) | (None, None, Some((user, password))) => {
                Auth::Basic(user, password)
            }
            _ => {
                return Err(invalid(
                    "more than one of bearer_token, basic_auth and credentials in the url; \
                     set only one"
                        .to_string(),
                ));
            }
        };
        if settings.max_points_per_query == 0 {
            return Err(invalid(
                "max_points_per_query: must be ≥ 1, got 0".to_string(),
            ));
        }
        if settings.max_response_bytes == 0 {
            return Err(invalid(
                "max_response_bytes: must be ≥ 1, got 0".to_string(),
            ));
        }
        if settings.timeout.is_zero() {
            return Err(invalid("timeout: must be > 0s, got 0s".to_string()));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let endpoint = |path: &str| -> Result<Endpoint, PromError> {
            let url = base
                .join(path)
                .map_err(|e| invalid(format!("url '{base}': joining '{path}': {e}")))?;
            Ok(Endpoint {
                display: url.to_string(),
                url,
            })
        };

        let mut builder = reqwest::Client::builder()
            .timeout(settings.timeout)
            .user_agent(concat!("prognos/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &settings.ca_cert_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| invalid(format!("ca_cert_pem: {e}")))?;
            if certs.is_empty() {
                return Err(invalid(
                    "ca_cert_pem: no '-----BEGIN CERTIFICATE-----' block found".to_string(),
                ));
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder
            .build()
            .map_err(|e| invalid(format!("building the HTTP client: {}", error_chain(&e))))?;

        Ok(PromClient {
            inner: Arc::new(Inner {
                http,
                base_display: base.to_string(),
                query: endpoint("api/v1/query")?,
                query_range: endpoint("api/v1/query_range")?,
                ready: endpoint("-/ready")?,
                auth,
                timeout: settings.timeout,
                max_retries: settings.max_retries,
                max_points: settings.max_points_per_query,
                max_response_bytes: settings.max_response_bytes,
                backoff: prom_backoff(),
            }),
        })
    }

    /// The base URL, without credentials.
    pub fn url(&self) -> &str {
        &self.inner.base_display
    }

    /// Range query over `[start, end]` (unix seconds) at `step_secs`. A range
    /// of more than `max_points_per_query` steps is split into consecutive
    /// requests, run one after the other, and the answers are merged per
    /// label set: each series sorted, with no repeated timestamp. Warnings
    /// of all requests are merged, each once, at most
    /// [`MAX_WARNINGS`](response::MAX_WARNINGS).
    pub async fn query_range(
        &self,
        expr: &str,
        start: i64,
        end: i64,
        step_secs: i64,
    ) -> Result<QueryResult<Vec<RangeSeries>>, PromError> {
        if step_secs <= 0 {
            return Err(PromError::InvalidArgument(format!(
                "step must be > 0 seconds, got {step_secs}"
            )));
        }
        if end < start {
            return Err(PromError::InvalidArgument(format!(
                "end {end} is before start {start}"
            )));
        }
        let chunks = split_range(start, end, step_secs, self.inner.max_points);
        let mut answers = Vec::with_capacity(chunks.len());
        let mut warnings = Warnings::default();
        let mut partial = false;
        for (chunk_start, chunk_end) in chunks {
            let form = [
                ("query", expr.to_string()),
                ("start", chunk_start.to_string()),
                ("end", chunk_end.to_string()),
                ("step", step_secs.to_string()),
            ];
            let result = self
                .post(&self.inner.query_range, &form, Expect::Matrix)
                .await?;
            partial |= result.partial;
            for warning in &result.warnings {
                warnings.push(warning);
            }
            warnings.add_left_out(result.warnings_left_out);
            match result.data {
                Parsed::Matrix(series) => answers.push(series),
                Parsed::Instant(_) => unreachable!("parse checks the result type"),
            }
        }
        let data = if answers.len() == 1 {
            answers.pop().unwrap_or_default()
        } else {
            merge_series(answers)
        };
        let (warnings, warnings_left_out) = warnings.finish();
        Ok(QueryResult {
            data,
            warnings,
            warnings_left_out,
            partial,
        })
    }

    /// Instant query at `time` (unix seconds; Prometheus's "now" if `None`).
    /// A scalar result comes back as one sample with empty labels.
    pub async fn query(
        &self,
        expr: &str,
        time: Option<i64>,
    ) -> Result<QueryResult<Vec<InstantSample>>, PromError> {
        let mut form = vec![("query", expr.to_string())];
        if let Some(time) = time {
            form.push(("time", time.to_string()));
        }
        let result = self.post(&self.inner.query, &form, Expect::Instant).await?;
        let data = match result.data {
            Parsed::Instant(samples) => samples,
            Parsed::Matrix(_) => unreachable!("parse checks the result type"),
        };
        Ok(QueryResult {
            data,
            warnings: result.warnings,
            warnings_left_out: result.warnings_left_out,
            partial: result.partial,
        })
    }

    /// `GET /-/ready`: `Ok` once the server answers 200. One attempt, no
    /// retries: a caller waiting for Prometheus polls this.
    pub async fn ready(&self) -> Result<(), PromError> {
        let endpoint = &self.inner.ready;
        let request = self.authorize(self.inner.http.get(endpoint.url.clone()));
        let response = request
            .send()
            .await
            .map_err(|e| self.request_error("GET", endpoint, e))?;
        let status = response.status().as_u16();
        if status == 200 {
            return Ok(());
        }
        // Only the start of an error page is quoted.
        let body = match read_capped(response, ERROR_PAGE_BYTES).await {
            Ok(Body::Whole(body) | Body::Cut(body)) => body,
            Err(_) => Vec::new(),
        };
        Err(response::http_error(
            Origin {
                method: "GET",
                url: &endpoint.display,
                status,
            },
            &body,
        ))
    }

    async fn post(
        &self,
        endpoint: &Endpoint,
        form: &[(&str, String)],
        expect: Expect,
    ) -> Result<QueryResult<Parsed>, PromError> {
        let inner = &*self.inner;
        with_retries(
            &endpoint.display,
            inner.max_retries,
            inner.backoff,
            || async {
                let request = self.authorize(
                    inner
                        .http
                        .post(endpoint.url.clone())
                        .header(reqwest::header::ACCEPT, "application/json")
                        .form(form),
                );
                let response = request
                    .send()
                    .await
                    .map_err(|e| self.request_error("POST", endpoint, e))?;
                let status = response.status().as_u16();
                let origin = Origin {
                    method: "POST",
                    url: &endpoint.display,
                    status,
                };
                let success = (200..300).contains(&status);
                let too_large = || PromError::ResponseTooLarge {
                    method: "POST",
                    url: endpoint.display.clone(),
                    limit: inner.max_response_bytes,
                };
                if success
                    && response
                        .content_length()
                        .is_some_and(|n| n > inner.max_response_bytes)
                {
                    return Err(too_large());
                }
                let body = read_capped(response, inner.max_response_bytes)
                    .await
                    .map_err(|e| self.request_error("POST", endpoint, e))?;
                match body {
                    Body::Whole(body) => response::parse(origin, &body, expect),
                    Body::Cut(_) if success => Err(too_large()),
                    // An error status stays that error (and keeps its
                    // retryability); its body is only quoted.
                    Body::Cut(body) => Err(response::http_error(origin, &body)),
                }
            },
        )
        .await
    }

    fn authorize(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.inner.auth {
            Auth::None => request,
            Auth::Bearer(token) => request.bearer_auth(token.expose()),
            Auth::Basic(user, password) => request.basic_auth(user, Some(password.expose())),
        }
    }

    fn request_error(
        &self,
        method: &'static str,
        endpoint: &Endpoint,
        err: reqwest::Error,
    ) -> PromError {
        let url = endpoint.display.clone();
        if err.is_timeout() {
            PromError::Timeout {
                method,
                url,
                timeout_ms: self.inner.timeout.as_millis(),
            }
        } else if err.is_connect() {
            PromError::Connect {
                method,
                url,
                message: error_chain(&err),
            }
        } else {
            PromError::Transport {
                method,
                url,
                message: error_chain(&err),
            }
        }
    }
}

/// How much of a non-200 `/-/ready` answer is read, to quote its start.
const ERROR_PAGE_BYTES: u64 = 64 * 1024;

/// Most bytes reserved up front from a `Content-Length`: a peer may claim
/// a large body and send little.
const INITIAL_BODY_CAPACITY: u64 = 4 * 1024 * 1024;

/// Reads the body chunk by chunk, stopping once it would pass `limit` bytes:
/// memory never holds more than `limit` plus one chunk.
async fn read_capped(mut response: reqwest::Response, limit: u64) -> Result<Body, reqwest::Error> {
    let expected = response
        .content_length()
        .unwrap_or(0)
        .min(limit)
        .min(INITIAL_BODY_CAPACITY);
    let mut body = Vec::with_capacity(usize::try_from(expected).unwrap_or(0));
    while let Some(chunk) = response.chunk().await? {
        let room = limit.saturating_sub(body.len() as u64);
        if chunk.len() as u64 > room {
            // `room` < `chunk.len()`, so it fits in usize.
            body.extend_from_slice(&chunk[..room as usize]);
            return Ok(Body::Cut(body));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Body::Whole(body))
}

/// A response body as far as it was read.
enum Body {
    /// All of it, within the limit.
    Whole(Vec<u8>),
    /// The first `limit` bytes of a longer body; the rest was not read.
    Cut(Vec<u8>),
}

/// An error and its causes on one line, without reqwest's URL (which is
/// already in our message), its generic wrappers, or a cause another quotes:
/// "tcp connect error: Connection refused (os error 111)".
fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut current = Some(err);
    while let Some(e) = current {
        let text = match e.downcast_ref::<reqwest::Error>() {
            Some(re) if re.url().is_some() => {
                // `without_url` needs ownership; rebuild the message instead.
                let full = re.to_string();
                let url = re.url().map(Url::as_str).unwrap_or_default();
                full.replace(&format!(" for url ({url})"), "")
            }
            _ => e.to_string(),
        };
        let generic = matches!(
            text.as_str(),
            "error sending request" | "client error (Connect)"
        );
        if !generic && !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        current = e.source();
    }
    parts.join(": ")
}

/// Moves `user:password@` out of the URL.
fn take_credentials(url: &mut Url) -> Option<(String, String)> {
    if url.username().is_empty() && url.password().is_none() {
        return None;
    }
    let user = percent_decode(url.username());
    let password = url.password().map(percent_decode).unwrap_or_default();
    // Cannot fail for http(s) URLs, which have a host.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    Some((user, password))
}

/// Decodes `%XX` escapes (the URL keeps userinfo percent-encoded); `+`
/// stays a plus, as in any URL part but a form.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A URL for messages: credentials removed, or a placeholder if it does not
/// parse (it may hold a secret we cannot find).
pub(crate) fn redact_url_str(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut parsed) => {
            take_credentials(&mut parsed);
            parsed.to_string()
        }
        Err(_) => "(unparsable URL)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(url: &str) -> ClientSettings {
        ClientSettings {
            url: url.to_string(),
            ..ClientSettings::default()
        }
    }

    #[test]
    fn endpoints_keep_a_path_prefix() {
        let client = PromClient::new(settings("https://example.com/prometheus")).unwrap();
        assert_eq!(
            client.inner.query_range.display,
            "https://example.com/prometheus/api/v1/query_range"
        );
        let client = PromClient::new(settings("http://127.0.0.1:9090")).unwrap();
        assert_eq!(
            client.inner.query.display,
            "http://127.0.0.1:9090/api/v1/query"
        );
        assert_eq!(client.inner.ready.display, "http://127.0.0.1:9090/-/ready");
    }

    #[test]
    fn url_credentials_become_basic_auth_and_never_print() {
        let client = PromClient::new(settings("http://admin:p%40s+s@prom:9090/")).unwrap();
        let Auth::Basic(user, password) = &client.inner.auth else {
            panic!("expected basic auth");
        };
        assert_eq!((user.as_str(), password.expose()), ("admin", "p@s+s"));
        assert_eq!(client.url(), "http://prom:9090/");
        let printed = format!("{client:?}");
        assert!(
            !printed.contains("p@s+s") && !printed.contains("p%40s+s"),
            "{printed}"
        );
        assert!(printed.contains("basic"), "{printed}");
    }

    #[test]
    fn contradictory_or_invalid_settings_are_rejected() {
        let both = ClientSettings {
            bearer_token: Some(Secret::new("t")),
            basic_auth: Some(("u".into(), Secret::new("p"))),
            ..ClientSettings::default()
        };
        let err = PromClient::new(both).unwrap_err();
        assert!(err.to_string().contains("set only one"), "{err}");
        assert_eq!(err.kind(), "settings");

        let err = PromClient::new(settings("ftp://prom")).unwrap_err();
        assert!(
            err.to_string().contains("must be 'http' or 'https'"),
            "{err}"
        );
        let err = PromClient::new(settings("not a url")).unwrap_err();
        assert!(err.to_string().contains("url '(unparsable URL)'"), "{err}");

        let zero = ClientSettings {
            max_points_per_query: 0,
            ..ClientSettings::default()
        };
        assert!(PromClient::new(zero).is_err());

        let garbage_ca = ClientSettings {
            ca_cert_pem: Some(b"not a certificate".to_vec()),
            ..ClientSettings::default()
        };
        let err = PromClient::new(garbage_ca).unwrap_err();
        assert!(err.to_string().contains("ca_cert_pem"), "{err}");
    }

    #[tokio::test]
    async fn bad_range_arguments_fail_before_any_request() {
        // Port 9 (discard) is never contacted: the arguments are checked first.
        let client = PromClient::new(settings("http://127.0.0.1:9")).unwrap();
        let err = client.query_range("up", 100, 200, 0).await.unwrap_err();
        assert_eq!(err.kind(), "invalid_argument");
        let err = client.query_range("up", 200, 100, 60).await.unwrap_err();
        assert!(
            err.to_string().contains("end 100 is before start 200"),
            "{err}"
        );
    }
}
