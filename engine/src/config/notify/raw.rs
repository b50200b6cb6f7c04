//! The `notifications:` and `remediation:` sections as written: serde
//! structs that reject unknown fields, each field documented with its
//! meaning and default.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::super::raw::Text;

/// `notifications:` — where alerts go.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotifications {
    /// Receivers the routes name. At least one.
    #[serde(default)]
    pub receivers: Vec<RawReceiver>,
    /// The routing tree. Its root matches every alert and needs `receiver`.
    pub route: Option<RawRoute>,
    /// Give a notification up when it could not be delivered for this long.
    /// Default `24h`.
    pub give_up_after: Option<Text>,
    /// Attach a PNG chart of recent history and forecast. Default true.
    pub charts: Option<bool>,
    /// Alerts listed in full in one message; the rest are counted. Default 20.
    pub max_alerts_listed: Option<usize>,
    /// Telegram bot for chat commands (silences) and remediation approvals.
    pub telegram_bot: Option<RawBot>,
    /// Delays between attempts: exponential from `initial` up to `max`,
    /// with full jitter. Default `500ms` and `5m`.
    pub retry: Option<RawRetry>,
}

/// `notifications.retry`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    /// Ceiling of the first delay. Default `500ms`.
    pub initial: Option<Text>,
    /// Largest delay. Default `5m`.
    pub max: Option<Text>,
}

/// One receiver.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReceiver {
    /// Unique name. Required.
    pub name: Option<String>,
    /// Notify resolved alerts too. Default true.
    pub send_resolved: Option<bool>,
    /// Telegram chats.
    #[serde(default)]
    pub telegram: Vec<RawTelegram>,
    /// Email over SMTP.
    #[serde(default)]
    pub email: Vec<RawEmail>,
    /// Webhooks taking Alertmanager's payload (version 4).
    #[serde(default)]
    pub webhook: Vec<RawWebhook>,
    /// Alertmanager instances (all replicas of an HA cluster).
    #[serde(default)]
    pub alertmanager: Vec<RawAlertmanager>,
}

/// A Telegram chat (and the bot's connection).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTelegram {
    /// Bot API base URL. Default `https://api.telegram.org`.
    pub api_url: Option<String>,
    /// File holding the bot token. One of `token_file`, `token_env`.
    pub token_file: Option<String>,
    /// Environment variable holding the bot token.
    pub token_env: Option<String>,
    /// The chat id (negative for groups). Required.
    pub chat_id: Option<i64>,
    /// Least time between two messages to the chat. Default `1s` (Telegram
    /// allows about one message a second per chat, 20 a minute in groups).
    pub min_interval: Option<Text>,
    /// Deadline of one API call. Default `30s`.
    pub timeout: Option<Text>,
    /// Never repeat a message that may have been sent (a crash, a timeout),
    /// at the cost of losing it. Default false: at least once.
    pub at_most_once: Option<bool>,
}

/// Email over SMTP.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEmail {
    /// `host:port` of the SMTP server. Required.
    pub smarthost: Option<String>,
    /// `none`, `starttls` or `tls` (implicit, port 465). Default `starttls`.
    pub tls: Option<String>,
    /// SMTP user, with `password_file` or `password_env`.
    pub username: Option<String>,
    /// File holding the password.
    pub password_file: Option<String>,
    /// Environment variable holding the password.
    pub password_env: Option<String>,
    /// Sender address. Required.
    pub from: Option<String>,
    /// Recipients. At least one.
    #[serde(default)]
    pub to: Vec<String>,
    /// PEM file of a CA to trust besides the system roots.
    pub ca_file: Option<String>,
    /// Name sent in EHLO. Default: the host name.
    pub hello: Option<String>,
    /// Deadline of one delivery. Default `30s`.
    pub timeout: Option<Text>,
}

/// A webhook.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhook {
    /// URL to POST to. Required.
    pub url: Option<String>,
    /// File holding a bearer token.
    pub bearer_token_file: Option<String>,
    /// Most alerts in one payload (0: all). Default 0.
    pub max_alerts: Option<usize>,
    /// Extra headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Deadline of one call. Default `30s`.
    pub timeout: Option<Text>,
}

/// An Alertmanager instance.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAlertmanager {
    /// Base URL, e.g. `http://alertmanager:9093`. Required.
    pub url: Option<String>,
    /// How long Alertmanager keeps a firing alert without hearing of it
    /// again (`endsAt`). Default `5m`.
    pub resend_ttl: Option<Text>,
    /// Deadline of one call. Default `30s`.
    pub timeout: Option<Text>,
}

/// A route.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// The receiver. Required on the root; children inherit it.
    pub receiver: Option<String>,
    /// Label matchers (`severity="critical"`, `service=~"mes.*"`).
    #[serde(default)]
    pub matchers: Vec<String>,
    /// Labels alerts are grouped by; `[...]` for all. Default: the parent's
    /// (root: `[alertname]`).
    pub group_by: Option<Vec<String>>,
    /// Wait before the first notification of a new group. Default `30s`.
    pub group_wait: Option<Text>,
    /// Wait before notifying changes of a group. Default `5m`.
    pub group_interval: Option<Text>,
    /// Resend a still-firing group after. Default `4h`.
    pub repeat_interval: Option<Text>,
    /// Keep matching siblings after this route matched. Default false.
    #[serde(default, rename = "continue")]
    pub continue_matching: bool,
    /// Child routes.
    #[serde(default)]
    pub routes: Vec<RawRoute>,
}

/// The Telegram bot.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBot {
    /// Bot API base URL. Default `https://api.telegram.org`.
    pub api_url: Option<String>,
    /// File holding the bot token. One of `token_file`, `token_env`.
    pub token_file: Option<String>,
    /// Environment variable holding the bot token.
    pub token_env: Option<String>,
    /// Chat approval requests are posted to. Required.
    pub chat_id: Option<i64>,
    /// Telegram user ids allowed to silence from the chat.
    #[serde(default)]
    pub allowed_users: Vec<u64>,
    /// Long-poll timeout. Default `10s`.
    pub poll_timeout: Option<Text>,
}

/// `remediation:` — webhooks called when alerts fire.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRemediation {
    /// File holding the HMAC secret calls are signed with. One of
    /// `secret_file`, `secret_env`. Required.
    pub secret_file: Option<String>,
    /// Environment variable holding the secret.
    pub secret_env: Option<String>,
    /// Global rate limit over all actions.
    pub rate_limit: Option<RawRateLimit>,
    /// Record what would be called; call nothing. Default false.
    #[serde(default)]
    pub dry_run: bool,
    /// How long finished records stay in the audit log. Default `90d`.
    pub audit_retention: Option<Text>,
    /// The actions.
    #[serde(default)]
    pub actions: Vec<RawAction>,
}

/// `remediation.rate_limit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    /// At most this many calls … Default 10.
    pub max_calls: Option<u32>,
    /// … per this long. Default `1h`.
    pub per: Option<Text>,
}

/// One remediation action.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAction {
    /// Unique name. Required.
    pub name: Option<String>,
    /// URL to call. Required.
    pub url: Option<String>,
    /// HTTP method. Default `POST`.
    pub method: Option<String>,
    /// Body template: `{{ $labels.x }}`, `{{ $annotations.x }}`, `{{ $value }}`,
    /// `{{ $alertname }}`, `{{ $fingerprint }}`, `{{ $status }}`. Default: empty.
    pub body: Option<String>,
    /// Extra headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Alerts it is bound to: all matchers must match. At least one.
    #[serde(default)]
    pub matchers: Vec<String>,
    /// Least time between two calls for the same alert. Default `30m`.
    pub cooldown: Option<Text>,
    /// Call when the alert resolves instead of when it fires. Default false.
    #[serde(default)]
    pub on_resolved: bool,
    /// Record, don't call. Default false (or `remediation.dry_run`).
    #[serde(default)]
    pub dry_run: bool,
    /// Ask a human first, in Telegram.
    pub approval: Option<RawApproval>,
}

/// An action's approval policy.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApproval {
    /// Telegram user ids allowed to approve or reject. At least one.
    #[serde(default)]
    pub approvers: Vec<u64>,
    /// The request expires after this long. Default `15m`.
    pub expires: Option<Text>,
}
