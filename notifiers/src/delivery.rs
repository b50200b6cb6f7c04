//! What passes between rendering, the channels and the outbox: a rendered
//! notification, and how a send failed.

use crate::retry::RetryAction;

/// A notification rendered once for every channel.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rendered {
    /// One line, e.g. "[FIRING:3] MES API: MesQueueBacklog, MesCpuHigh".
    pub title: String,
    /// Telegram message, HTML parse mode, at most 4,096 characters.
    pub telegram_html: String,
    /// Telegram photo caption, HTML parse mode, at most 1,024 characters.
    pub telegram_caption_html: String,
    /// Email subject.
    pub email_subject: String,
    /// Email plain-text part.
    pub email_text: String,
    /// Email HTML part; refers to the chart as `cid:chart` when there is one.
    pub email_html: String,
    /// PNG chart of the lead alert's recent history and forecast band.
    pub chart_png: Option<Vec<u8>>,
}

/// A failed send and whether to try again.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    /// Retry (maybe after a requested delay) or give up.
    pub action: RetryAction,
    /// What happened, for the log and the outbox entry.
    pub message: String,
    /// Whether the request may have been delivered all the same (a timeout
    /// or a connection cut after it was sent), as opposed to refused.
    pub maybe_delivered: bool,
}

impl SendError {
    /// A failure worth retrying (connection refused, timeout, 5xx).
    pub fn retry(message: impl Into<String>) -> Self {
        Self {
            action: RetryAction::Retry { after: None },
            message: message.into(),
            maybe_delivered: false,
        }
    }

    /// A failure retrying cannot fix (4xx, bad configuration).
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            action: RetryAction::DontRetry,
            message: message.into(),
            maybe_delivered: false,
        }
    }

    /// The same failure, noted as one that may have been delivered.
    pub fn maybe_delivered(mut self) -> Self {
        self.maybe_delivered = true;
        self
    }
}
