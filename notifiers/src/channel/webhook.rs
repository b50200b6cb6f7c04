//! A webhook receiving Alertmanager's payload (version 4), so receivers
//! written for Alertmanager take prognos's notifications unchanged.

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};

use crate::alert::Notification;
use crate::delivery::SendError;
use crate::secret::Secret;

/// Where and how to post.
#[derive(Clone)]
pub struct WebhookConfig {
    /// The receiver's URL.
    pub url: url::Url,
    /// Sent as `Authorization: Bearer …` when set.
    pub bearer_token: Option<Secret>,
    /// At most this many alerts per payload (0: all); the rest are counted in `truncatedAlerts`.
    pub max_alerts: usize,
    /// Whole-request timeout.
    pub timeout: Duration,
    /// Extra headers (name, value).
    pub headers: Vec<(String, String)>,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Tokens and header values may be secrets: names only.
        f.debug_struct("WebhookConfig")
            .field("url", &redact_url(&self.url))
            .field("bearer_token", &self.bearer_token)
            .field("max_alerts", &self.max_alerts)
            .field("timeout", &self.timeout)
            .field(
                "headers",
                &self.headers.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// The URL without user info or query (either may carry a secret).
pub(crate) fn redact_url(u: &url::Url) -> String {
    let mut u = u.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    if u.query().is_some() {
        u.set_query(Some("…"));
    }
    u.to_string()
}

/// Posts notifications to one webhook.
#[derive(Debug)]
pub struct WebhookChannel {
    config: WebhookConfig,
    client: reqwest::Client,
    /// The configured headers, or why they are invalid (reported on send:
    /// `new` cannot fail).
    headers: Result<HeaderMap, String>,
}

fn build_headers(c: &WebhookConfig) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    for (k, v) in &c.headers {
        let name = HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| format!("invalid webhook header name {k:?}"))?;
        let value = HeaderValue::from_str(v)
            .map_err(|_| format!("invalid value for webhook header {k:?}"))?;
        map.insert(name, value);
    }
    if let Some(t) = &c.bearer_token {
        let mut value = HeaderValue::from_str(&format!("Bearer {}", t.expose()))
            .map_err(|_| "invalid webhook bearer token".to_string())?;
        value.set_sensitive(true);
        map.insert(AUTHORIZATION, value);
    }
    map.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(map)
}

impl WebhookChannel {
    /// A channel posting with `client` (shared, for connection reuse).
    pub fn new(c: WebhookConfig, client: reqwest::Client) -> Self {
        let headers = build_headers(&c);
        Self {
            config: c,
            client,
            headers,
        }
    }

    /// Posts the version 4 payload of `n` with `Idempotency-Key: {n.key}`.
    /// One part: skipped when `*progress >= 1`.
    pub async fn send(&self, n: &Notification, progress: &mut u32) -> Result<(), SendError> {
        if *progress >= 1 {
            return Ok(());
        }
        let headers = self.headers.clone().map_err(SendError::permanent)?;
        let body = serde_json::to_vec(&n.webhook_payload(self.config.max_alerts))
            .map_err(|e| SendError::permanent(format!("cannot encode payload: {e}")))?;
        let key = HeaderValue::from_str(&n.key)
            .map_err(|_| SendError::permanent("notification key is not a valid header value"))?;
        let resp = self
            .client
            .post(self.config.url.clone())
            .headers(headers)
            .header("Idempotency-Key", key)
            .timeout(self.config.timeout)
            .body(body)
            .send()
            .await
            .map_err(super::transport_error)?;
        super::check_response("webhook", resp).await?;
        *progress = 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_secrets() {
        let c = WebhookConfig {
            url: "https://user:pw@example.com/hook?token=abc"
                .parse()
                .unwrap(),
            bearer_token: Some(Secret::new("s3cret")),
            max_alerts: 0,
            timeout: Duration::from_secs(1),
            headers: vec![("X-Api-Key".into(), "k3y".into())],
        };
        let s = format!("{c:?}");
        assert!(!s.contains("s3cret") && !s.contains("k3y") && !s.contains("pw"));
        assert!(!s.contains("abc"));
        assert!(s.contains("X-Api-Key"));
    }

    #[test]
    fn bad_headers_are_reported() {
        let c = WebhookConfig {
            url: "http://127.0.0.1/".parse().unwrap(),
            bearer_token: None,
            max_alerts: 0,
            timeout: Duration::from_secs(1),
            headers: vec![("bad name".into(), "v".into())],
        };
        assert!(build_headers(&c).is_err());
    }
}
