//! The notifiers' settings as typed values. The engine reads and checks the
//! `notifications:` and `remediation:` sections of its configuration file
//! and builds these; nothing here reads files.

use crate::channel::alertmanager::AlertmanagerConfig;
use crate::channel::email::EmailConfig;
use crate::channel::telegram::TelegramConfig;
use crate::channel::webhook::WebhookConfig;
use crate::message::RenderOptions;
use crate::remediation::Action;
use crate::retry::Backoff;
use crate::route::Route;
use crate::secret::Secret;

/// Everything the notifiers need.
#[derive(Debug, Clone)]
pub struct NotifierConfig {
    /// prognos's external URL (links, webhook payloads).
    pub external_url: String,
    /// The receivers routes name.
    pub receivers: Vec<Receiver>,
    /// The routing tree (its root matches everything).
    pub route: Route,
    /// A notification still undelivered after this long is given up, seconds.
    pub give_up_after_secs: i64,
    /// Retry delays of failed sends.
    pub backoff: Backoff,
    /// How messages are rendered.
    pub render: RenderOptions,
    /// The Telegram bot taking commands and approvals, if any.
    pub bot: Option<BotConfig>,
    /// Remediation actions, if any.
    pub remediation: Option<RemediationConfig>,
}

/// A named receiver: where a route's notifications go.
#[derive(Debug, Clone)]
pub struct Receiver {
    /// Its name, as routes refer to it.
    pub name: String,
    /// Whether resolved alerts are notified too.
    pub send_resolved: bool,
    /// Where it delivers (each gets every notification, with its own outbox entry).
    pub targets: Vec<Target>,
}

/// One destination of a receiver.
#[derive(Debug, Clone)]
pub enum Target {
    /// A Telegram chat.
    Telegram(TelegramConfig),
    /// Email over SMTP.
    Email(EmailConfig),
    /// A webhook taking Alertmanager's payload.
    Webhook(WebhookConfig),
    /// One Alertmanager instance (an HA pair is two targets).
    Alertmanager(AlertmanagerConfig),
}

impl Target {
    /// Short name of the kind, used in target names and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Target::Telegram(_) => "telegram",
            Target::Email(_) => "email",
            Target::Webhook(_) => "webhook",
            Target::Alertmanager(_) => "alertmanager",
        }
    }
}

/// The Telegram bot's chat commands (silences) and approvals.
#[derive(Debug, Clone)]
pub struct BotConfig {
    /// The Telegram connection (token, API URL, chat approvals are posted to).
    pub telegram: TelegramConfig,
    /// Telegram user ids allowed to silence alerts from the chat.
    pub allowed_users: Vec<u64>,
    /// Long-poll timeout of `getUpdates`, seconds.
    pub poll_timeout_secs: u32,
}

/// Remediation webhooks.
#[derive(Debug, Clone)]
pub struct RemediationConfig {
    /// The HMAC key calls are signed with.
    pub secret: Secret,
    /// At most this many calls …
    pub max_calls: u32,
    /// … per this many seconds, over all actions.
    pub per_secs: i64,
    /// Record what would be called, call nothing.
    pub dry_run: bool,
    /// The actions and the alerts they are bound to.
    pub actions: Vec<Action>,
    /// Finished records older than this many seconds leave the audit log.
    pub audit_retention_secs: i64,
}

/// How long finished remediation records stay in the audit log by default.
pub const AUDIT_RETENTION_SECS: i64 = 90 * 86_400;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remediation_debug_hides_the_hmac_key() {
        let c = RemediationConfig {
            secret: Secret::new("CANARY-hmac-key"),
            max_calls: 1,
            per_secs: 60,
            dry_run: false,
            actions: Vec::new(),
            audit_retention_secs: AUDIT_RETENTION_SECS,
        };
        let s = format!("{c:?}");
        assert!(!s.contains("CANARY"), "{s}");
        assert!(s.contains("<secret>"), "{s}");
    }
}
