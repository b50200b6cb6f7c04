//! The outgoing call: what is sent ([`RemediationCall`], kept in the outbox:
//! URL, configured headers, body), what is shown of it ([`AuditedCall`], in
//! the audit log, the API and the approval message: action, method, redacted
//! URL and body, never headers), and the signed HTTP [`call`] itself. Every
//! error that names the URL redacts it with [`redact_url`].

use std::fmt::Write as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::action::Action;
use super::template::{BodyType, TemplateError, is_json};
use crate::delivery::SendError;
use crate::retry::{RetryAction, classify_status};
use crate::secret::{EXCERPT_CHARS, excerpt, redact_url, redact_url_str};
use crate::signature::{SIGNATURE_HEADER, SignedRequest, TIMESTAMP_HEADER, sign};

/// Header carrying the audit id, so a receiver recognises a retried call
/// (signed: see [`crate::signature`]).
pub use crate::signature::IDEMPOTENCY_HEADER;

/// How much of a failed call's response body is read and kept in the
/// error, in bytes: enough for the receiver's reason, bounded whatever it sends.
const ERROR_BODY_BYTES: usize = 4096;

/// How much of that response body the error quotes, in characters.
const ERROR_BODY_CHARS: usize = 200;

/// One planned HTTP call of an action, as stored in the outbox: everything
/// needed to send it, including the configured headers and the URL with any
/// credentials. Never shown: the audit log and the API get an
/// [`AuditedCall`], and `Debug` redacts the URL and omits header values.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct RemediationCall {
    /// The audit record's id, sent as the idempotency key.
    pub audit_id: String,
    /// The action's name.
    pub action: String,
    /// Where to call.
    pub url: String,
    /// HTTP method.
    pub method: String,
    /// Configured headers (with the `Content-Type` for the body type).
    pub headers: Vec<(String, String)>,
    /// The rendered body.
    pub body: String,
}

impl std::fmt::Debug for RemediationCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemediationCall")
            .field("audit_id", &self.audit_id)
            .field("action", &self.action)
            .field("url", &redact_url_str(&self.url))
            .field("method", &self.method)
            .field(
                "headers",
                &self.headers.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("body", &self.body)
            .finish()
    }
}

/// What the audit log, the API and the approval message show of a call: the
/// action, the method, the URL without user info or sensitive query values
/// ([`redact_url`]) and the body — never the configured headers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditedCall {
    /// The action's name.
    pub action: String,
    /// HTTP method.
    pub method: String,
    /// Where it calls, redacted (also when read from a record stored
    /// before redaction existed).
    #[serde(deserialize_with = "deserialize_redacted_url")]
    pub url: String,
    /// The rendered body.
    pub body: String,
}

fn deserialize_redacted_url<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    String::deserialize(d).map(|u| redact_url_str(&u))
}

impl From<&RemediationCall> for AuditedCall {
    fn from(c: &RemediationCall) -> Self {
        AuditedCall {
            action: c.action.clone(),
            method: c.method.clone(),
            url: redact_url_str(&c.url),
            body: c.body.clone(),
        }
    }
}

/// The call `action` makes with `body` under the audit id `id`: its URL,
/// method and headers, with a `Content-Type` for its body type unless one
/// is configured.
pub(super) fn outgoing(
    action: &Action,
    id: String,
    body: String,
) -> Result<RemediationCall, TemplateError> {
    let mut headers = action.headers.clone();
    if action.content_type().is_none() {
        headers.push((
            "Content-Type".to_string(),
            action.body_type()?.default_content_type().to_string(),
        ));
    }
    Ok(RemediationCall {
        audit_id: id,
        action: action.name.clone(),
        url: action.url.to_string(),
        method: action.method.clone(),
        headers,
        body,
    })
}

/// The delay a `Retry-After` header asks for: seconds, or an HTTP date;
/// clamped (see [`crate::retry::parse_retry_after`]).
fn retry_after(value: &str, now: i64) -> Option<Duration> {
    crate::retry::parse_retry_after(value, now)
}

/// Reads at most `max` bytes of a response body (what a failed call's error
/// quotes), however much the receiver sends.
async fn read_prefix(mut resp: reqwest::Response, max: usize) -> String {
    let mut buf = Vec::new();
    while buf.len() < max {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let take = chunk.len().min(max - buf.len());
                buf.extend_from_slice(&chunk[..take]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// Performs a call, signed with scheme `v1` (see [`crate::signature`]) over
/// the method, the URL's path and query, `now`, the audit id and the body:
/// [`SIGNATURE_HEADER`], [`TIMESTAMP_HEADER`] and
/// [`IDEMPOTENCY_HEADER`]`: <audit_id>`, then the configured headers (which
/// cannot override those three), the method, and the client's timeout. The
/// status is classified with [`classify_status`] (with `Retry-After`).
/// Returns the HTTP status on success. Errors name the URL only redacted
/// ([`redact_url`]) and quote a bounded excerpt of the answer.
pub async fn call(
    client: &reqwest::Client,
    c: &RemediationCall,
    secret: &[u8],
    now: i64,
) -> Result<u16, SendError> {
    let method = reqwest::Method::from_bytes(c.method.as_bytes()).map_err(|_| {
        SendError::permanent(format!(
            "remediation {}: invalid HTTP method '{}'",
            c.action,
            excerpt(&c.method, EXCERPT_CHARS)
        ))
    })?;
    let url = url::Url::parse(&c.url).map_err(|e| {
        SendError::permanent(format!(
            "remediation {}: invalid URL '{}': {e}",
            c.action,
            redact_url_str(&c.url)
        ))
    })?;
    let shown = redact_url(&url);
    // What goes on the request line, and so what the receiver verifies.
    let path = url[url::Position::BeforePath..url::Position::AfterQuery].to_string();
    let signature = sign(
        secret,
        &SignedRequest {
            method: method.as_str(),
            path: &path,
            timestamp: now,
            idempotency_key: &c.audit_id,
            body: c.body.as_bytes(),
        },
    );
    let reserved = [SIGNATURE_HEADER, TIMESTAMP_HEADER, IDEMPOTENCY_HEADER];
    let mut req = client.request(method, url);
    let mut has_content_type = false;
    for (k, v) in &c.headers {
        if reserved.iter().any(|r| r.eq_ignore_ascii_case(k)) {
            continue;
        }
        has_content_type |= k.eq_ignore_ascii_case("content-type");
        req = req.header(k.as_str(), v.as_str());
    }
    if !has_content_type {
        // Calls queued before plans added the Content-Type themselves.
        let ct = if is_json(&c.body) {
            BodyType::Json
        } else {
            BodyType::Verbatim
        };
        req = req.header("Content-Type", ct.default_content_type());
    }
    let resp = req
        .header(SIGNATURE_HEADER, signature)
        .header(TIMESTAMP_HEADER, now.to_string())
        .header(IDEMPOTENCY_HEADER, c.audit_id.as_str())
        .body(c.body.clone())
        .send()
        .await
        .map_err(|e| {
            // reqwest's errors carry the full URL; ours names it redacted.
            let e = e.without_url();
            let message = format!("remediation {} to {shown}: {e}", c.action);
            // Connection failures and timeouts may pass; a malformed request will not.
            if e.is_builder() {
                SendError::permanent(message)
            } else {
                SendError::retry(message)
            }
        })?;
    let status = resp.status().as_u16();
    let after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| retry_after(v, now));
    let action = classify_status(status, after);
    // 409: the receiver already has this idempotency key — a retry after a
    // lost answer (or a crash) of a call that did arrive. Done, not failed.
    if action == RetryAction::Successful || status == 409 {
        return Ok(status);
    }
    let text = read_prefix(resp, ERROR_BODY_BYTES).await;
    let mut message = format!("remediation {} to {shown}: HTTP {status}", c.action);
    let snippet = excerpt(text.trim(), ERROR_BODY_CHARS);
    if !snippet.is_empty() {
        let _ = write!(message, ": {snippet}");
    }
    Err(SendError {
        action,
        message,
        maybe_delivered: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remediation::testing::assert_no_canary;

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        assert_eq!(retry_after("7", 0), Some(Duration::from_secs(7)));
        assert_eq!(
            retry_after("Tue, 14 Nov 2023 22:13:30 GMT", 1_700_000_000),
            Some(Duration::from_secs(10))
        );
        assert_eq!(retry_after("soon", 0), None);
    }

    #[test]
    fn retry_after_is_clamped() {
        let max = Some(crate::retry::MAX_RETRY_AFTER);
        assert_eq!(retry_after("18446744073709551615", 0), max);
        assert_eq!(retry_after("99999999999", 0), max);
    }

    #[test]
    fn records_stored_before_redaction_are_shown_redacted() {
        let old = r#"{"audit_id":"x","action":"a","url":"http://u:CANARY-PASS@h/p?token=CANARY-QUERYKEY","method":"POST","headers":[["Authorization","Bearer CANARY-BEARER"]],"body":"{}"}"#;
        let shown: AuditedCall = serde_json::from_str(old).unwrap();
        assert_no_canary("an old record", &serde_json::to_string(&shown).unwrap());
        assert_eq!(shown.url, "http://REDACTED@h/p?token=REDACTED");
    }
}
