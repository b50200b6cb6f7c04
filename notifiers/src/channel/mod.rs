//! The channels: where a rendered notification goes (Telegram, email, a
//! webhook, Alertmanager). Each send is one attempt; the durable outbox owns
//! retries and persists `progress` between attempts.

pub mod alertmanager;
pub mod email;
pub mod telegram;
pub mod webhook;

use std::time::Duration;

use crate::alert::Notification;
use crate::delivery::{Rendered, SendError};
use crate::retry::{RetryAction, classify_status, parse_retry_after};

/// One configured destination. The outbox calls `send`; `progress` counts
/// parts already acknowledged (persisted by the outbox between attempts), so
/// a retry after a partial success does not resend acknowledged parts: skip
/// parts < `*progress`, increment after each acknowledged part.
#[derive(Debug)]
pub enum Channel {
    /// A Telegram chat (message, then the chart as a photo).
    Telegram(telegram::TelegramChannel),
    /// An email via SMTP.
    Email(email::EmailChannel),
    /// An Alertmanager-compatible webhook (payload version 4).
    Webhook(webhook::WebhookChannel),
    /// An Alertmanager instance (`POST /api/v2/alerts`).
    Alertmanager(alertmanager::AlertmanagerChannel),
}

impl Channel {
    /// Whether this target delivers at most once (see
    /// [`telegram::TelegramConfig::at_most_once`]).
    pub fn at_most_once(&self) -> bool {
        matches!(self, Self::Telegram(t) if t.at_most_once())
    }

    /// Sends `n` (rendered as `r`) once, skipping the parts `progress` says
    /// were already acknowledged.
    pub async fn send(
        &self,
        n: &Notification,
        r: &Rendered,
        progress: &mut u32,
    ) -> Result<(), SendError> {
        match self {
            Self::Telegram(c) => c.send(r, progress).await,
            Self::Email(c) => c.send(n, r, progress).await,
            Self::Webhook(c) => c.send(n, progress).await,
            Self::Alertmanager(c) => c.send(n, progress).await,
        }
    }

    /// The channel's kind, for logs and metrics labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Telegram(_) => "telegram",
            Self::Email(_) => "email",
            Self::Webhook(_) => "webhook",
            Self::Alertmanager(_) => "alertmanager",
        }
    }
}

/// Maps a reqwest error: connect/timeout/request errors are retryable.
pub(crate) fn transport_error(e: reqwest::Error) -> SendError {
    // Without the URL: it may carry credentials or tokens.
    let e = e.without_url();
    if e.is_builder() || e.is_redirect() {
        SendError::permanent(format!("request failed: {e}"))
    } else if e.is_timeout() {
        SendError::retry(format!("timed out: {e}"))
    } else if e.is_connect() {
        SendError::retry(format!("connection failed: {e}"))
    } else {
        SendError::retry(format!("request failed: {e}"))
    }
}

/// The `Retry-After` header as a delay from now, clamped (see
/// [`parse_retry_after`]).
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    retry_after_at(headers, crate::clock::unix_now())
}

/// [`retry_after`] at `now` (Unix seconds): seconds or an HTTP-date, clamped
/// to [0, [`crate::retry::MAX_RETRY_AFTER`]].
fn retry_after_at(headers: &reqwest::header::HeaderMap, now: i64) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(value, now)
}

/// Classifies an HTTP response; on failure includes the start of the body.
pub(crate) async fn check_response(what: &str, resp: reqwest::Response) -> Result<(), SendError> {
    let status = resp.status();
    let after = retry_after(resp.headers());
    let action = classify_status(status.as_u16(), after);
    if action == RetryAction::Successful {
        return Ok(());
    }
    let body = resp.text().await.unwrap_or_default();
    let snippet: String = body.chars().take(200).collect();
    Err(SendError {
        action,
        message: format!("{what} answered {status}: {}", snippet.trim()),
        maybe_delivered: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The outbox spawns sends: the futures must be `Send` (checked at compile time).
    #[allow(dead_code)]
    fn sends_are_send(c: &Channel, n: &Notification, r: &Rendered, p: &mut u32) {
        fn is_send<T: Send>(_: T) {}
        is_send(c.send(n, r, p));
    }

    #[test]
    fn retry_after_reads_seconds_and_dates_clamped() {
        let now = 1_700_000_000;
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(retry_after_at(&h, now), None);
        h.insert(reqwest::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after_at(&h, now), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            reqwest::header::RETRY_AFTER,
            "Tue, 14 Nov 2023 22:13:30 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after_at(&h, now), Some(Duration::from_secs(10)));
        h.insert(
            reqwest::header::RETRY_AFTER,
            "18446744073709551615".parse().unwrap(),
        );
        assert_eq!(retry_after_at(&h, now), Some(crate::retry::MAX_RETRY_AFTER));
        h.insert(reqwest::header::RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after_at(&h, now), None);
    }
}
