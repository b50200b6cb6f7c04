//! The `notifications:` and `remediation:` sections of the main file: raw
//! serde structs and their checks, building the notifiers' typed
//! [`NotifierConfig`]. Every problem is reported with its field; secrets are
//! read from files or environment variables, never written inline.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use prognos_notifiers::channel::alertmanager::AlertmanagerConfig;
use prognos_notifiers::channel::email::{EmailConfig, Tls};
use prognos_notifiers::channel::telegram::TelegramConfig;
use prognos_notifiers::channel::webhook::WebhookConfig;
use prognos_notifiers::config::{BotConfig, NotifierConfig, Receiver, RemediationConfig, Target};
use prognos_notifiers::matcher::{Matcher, parse_matchers};
use prognos_notifiers::message::RenderOptions;
use prognos_notifiers::remediation::{Action, ApprovalPolicy, check_template};
use prognos_notifiers::retry::Backoff;
use prognos_notifiers::route::Route;
use serde::Deserialize;

use super::raw::Text;
use super::secret;
use super::validate::Report;

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

const DEFAULT_API_URL: &str = "https://api.telegram.org";
const SECS_30: Duration = Duration::from_secs(30);

fn url_at(report: &mut Report<'_>, raw: Option<&str>, path: &str) -> Option<url::Url> {
    match raw {
        None => {
            report.at(path, "", path, "is required");
            None
        }
        Some(u) => match url::Url::parse(u) {
            Ok(p) if matches!(p.scheme(), "http" | "https") && p.has_host() => Some(p),
            _ => {
                report.at(
                    path,
                    "",
                    path,
                    format!("expected an http:// or https:// URL, got {u:?}"),
                );
                None
            }
        },
    }
}

fn secret_at(
    report: &mut Report<'_>,
    base: &Path,
    file: Option<&String>,
    env: Option<&String>,
    path: &str,
    what: &str,
    required: bool,
) -> Option<String> {
    let read = match (file, env) {
        (Some(_), Some(_)) => {
            let f = format!("{path}.{what}_env");
            report.at(
                &f,
                "",
                &f,
                format!("contradicts {what}_file: set only one of them"),
            );
            return None;
        }
        (Some(f), None) => {
            secret::from_file(&base.join(f)).map_err(|e| (format!("{what}_file"), e))
        }
        (None, Some(v)) => secret::from_env(v).map_err(|e| (format!("{what}_env"), e)),
        (None, None) => {
            if required {
                report.at(
                    path,
                    "",
                    &format!("{path}.{what}_file"),
                    format!("is required (or {what}_env)"),
                );
            }
            return None;
        }
    };
    match read {
        Ok(s) => Some(s.expose().to_string()),
        Err((field, e)) => {
            let f = format!("{path}.{field}");
            report.at(&f, "", &f, e);
            None
        }
    }
}

fn matchers_at(report: &mut Report<'_>, raw: &[String], path: &str) -> Vec<Matcher> {
    let mut out = Vec::new();
    for (i, m) in raw.iter().enumerate() {
        match parse_matchers(m) {
            Ok(ms) => out.extend(ms),
            Err(e) => {
                let f = format!("{path}.matchers[{i}]");
                report.at(&f, "", &f, e.to_string());
            }
        }
    }
    out
}

fn secs(d: Duration) -> i64 {
    d.as_secs() as i64
}

/// Checks both sections; `None` after recording errors (or when absent).
pub(crate) fn load(
    report: &mut Report<'_>,
    base: &Path,
    raw: Option<&RawNotifications>,
    rem: Option<&RawRemediation>,
    external_url: &str,
) -> Option<NotifierConfig> {
    let before = report.errors.len();
    let n = match raw {
        Some(n) => n,
        None => {
            if rem.is_some() {
                report.at(
                    "remediation",
                    "",
                    "remediation",
                    "needs a notifications: section (its outbox delivers the calls)",
                );
            }
            return None;
        }
    };
    let mut receivers = Vec::new();
    let mut names = BTreeSet::new();
    for (i, r) in n.receivers.iter().enumerate() {
        let p = format!("notifications.receivers[{i}]");
        let Some(name) = r.name.clone() else {
            report.at(&p, "", &format!("{p}.name"), "is required");
            continue;
        };
        if !names.insert(name.clone()) {
            report.at(
                &format!("{p}.name"),
                "",
                &format!("{p}.name"),
                format!("duplicate receiver name {name:?}"),
            );
        }
        let mut targets = Vec::new();
        for (k, t) in r.telegram.iter().enumerate() {
            let tp = format!("{p}.telegram[{k}]");
            if let Some(c) = telegram(
                report,
                base,
                &tp,
                t.api_url.as_deref(),
                t.token_file.as_ref(),
                t.token_env.as_ref(),
                t.chat_id,
                t.min_interval.as_ref(),
                t.timeout.as_ref(),
            ) {
                targets.push(Target::Telegram(c));
            }
        }
        for (k, e) in r.email.iter().enumerate() {
            let ep = format!("{p}.email[{k}]");
            if let Some(c) = email(report, base, &ep, e) {
                targets.push(Target::Email(c));
            }
        }
        for (k, w) in r.webhook.iter().enumerate() {
            let wp = format!("{p}.webhook[{k}]");
            let url = url_at(report, w.url.as_deref(), &format!("{wp}.url"));
            let token = secret_at(
                report,
                base,
                w.bearer_token_file.as_ref(),
                None,
                &wp,
                "bearer_token",
                false,
            );
            let timeout = report.duration(
                w.timeout.as_ref(),
                SECS_30,
                &format!("{wp}.timeout"),
                "",
                &format!("{wp}.timeout"),
            );
            if let (Some(url), Some(timeout)) = (url, timeout) {
                targets.push(Target::Webhook(WebhookConfig {
                    url,
                    bearer_token: token,
                    max_alerts: w.max_alerts.unwrap_or(0),
                    timeout,
                    headers: w
                        .headers
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                }));
            }
        }
        for (k, a) in r.alertmanager.iter().enumerate() {
            let ap = format!("{p}.alertmanager[{k}]");
            let url = url_at(report, a.url.as_deref(), &format!("{ap}.url"));
            let ttl = report.duration(
                a.resend_ttl.as_ref(),
                Duration::from_secs(300),
                &format!("{ap}.resend_ttl"),
                "",
                &format!("{ap}.resend_ttl"),
            );
            let timeout = report.duration(
                a.timeout.as_ref(),
                SECS_30,
                &format!("{ap}.timeout"),
                "",
                &format!("{ap}.timeout"),
            );
            if let (Some(url), Some(resend_ttl), Some(timeout)) = (url, ttl, timeout) {
                targets.push(Target::Alertmanager(AlertmanagerConfig {
                    url,
                    timeout,
                    resend_ttl,
                }));
            }
        }
        if targets.is_empty()
            && r.telegram.is_empty()
            && r.email.is_empty()
            && r.webhook.is_empty()
            && r.alertmanager.is_empty()
        {
            report.at(
                &p,
                "",
                &p,
                "has no telegram, email, webhook or alertmanager target",
            );
        }
        receivers.push(Receiver {
            name,
            send_resolved: r.send_resolved.unwrap_or(true),
            targets,
        });
    }
    if n.receivers.is_empty() {
        report.at(
            "notifications",
            "",
            "notifications.receivers",
            "needs at least one receiver",
        );
    }
    let route = match &n.route {
        None => {
            report.at(
                "notifications",
                "",
                "notifications.route",
                "is required (at least route.receiver)",
            );
            None
        }
        Some(r) => {
            if r.receiver.is_none() {
                report.at(
                    "notifications.route",
                    "",
                    "notifications.route.receiver",
                    "is required on the root route",
                );
            }
            let defaults = Route {
                receiver: String::new(),
                matchers: Vec::new(),
                group_by: vec!["alertname".to_string()],
                group_wait: 30,
                group_interval: 300,
                repeat_interval: 4 * 3600,
                continue_matching: false,
                routes: Vec::new(),
            };
            let mut root = route(report, r, "notifications.route", &names, Some(&defaults));
            root.inherit();
            Some(root)
        }
    };
    let give_up = report.duration(
        n.give_up_after.as_ref(),
        Duration::from_secs(86_400),
        "notifications.give_up_after",
        "",
        "notifications.give_up_after",
    );
    let bot = n.telegram_bot.as_ref().and_then(|b| {
        let p = "notifications.telegram_bot";
        let poll = report.duration(
            b.poll_timeout.as_ref(),
            Duration::from_secs(10),
            &format!("{p}.poll_timeout"),
            "",
            &format!("{p}.poll_timeout"),
        );
        let telegram = telegram(
            report,
            base,
            p,
            b.api_url.as_deref(),
            b.token_file.as_ref(),
            b.token_env.as_ref(),
            b.chat_id,
            None,
            None,
        )?;
        Some(BotConfig {
            telegram,
            allowed_users: b.allowed_users.clone(),
            poll_timeout_secs: poll?.as_secs().clamp(1, 50) as u32,
        })
    });
    let defaults = Backoff::default();
    let retry = n.retry.as_ref();
    let initial = report.duration(
        retry.and_then(|r| r.initial.as_ref()),
        defaults.initial,
        "notifications.retry.initial",
        "",
        "notifications.retry.initial",
    );
    let max = report.duration(
        retry.and_then(|r| r.max.as_ref()),
        defaults.max,
        "notifications.retry.max",
        "",
        "notifications.retry.max",
    );
    let remediation = rem.and_then(|r| remediation(report, base, r, n.telegram_bot.is_some()));
    if report.errors.len() > before {
        return None;
    }
    Some(NotifierConfig {
        external_url: external_url.to_string(),
        receivers,
        route: route?,
        give_up_after_secs: secs(give_up?),
        backoff: Backoff {
            initial: initial?.max(Duration::from_millis(10)),
            max: max?.max(Duration::from_millis(10)),
        },
        render: RenderOptions {
            chart: n.charts.unwrap_or(true),
            max_alerts_listed: n.max_alerts_listed.unwrap_or(20).max(1),
            ..RenderOptions::default()
        },
        bot,
        remediation,
    })
}

#[allow(clippy::too_many_arguments)]
fn telegram(
    report: &mut Report<'_>,
    base: &Path,
    p: &str,
    api_url: Option<&str>,
    token_file: Option<&String>,
    token_env: Option<&String>,
    chat_id: Option<i64>,
    min_interval: Option<&Text>,
    timeout: Option<&Text>,
) -> Option<TelegramConfig> {
    let api = url_at(
        report,
        Some(api_url.unwrap_or(DEFAULT_API_URL)),
        &format!("{p}.api_url"),
    );
    let token = secret_at(report, base, token_file, token_env, p, "token", true);
    if chat_id.is_none() {
        report.at(p, "", &format!("{p}.chat_id"), "is required");
    }
    let min = report.duration(
        min_interval,
        Duration::from_secs(1),
        &format!("{p}.min_interval"),
        "",
        &format!("{p}.min_interval"),
    );
    let timeout = report.duration(
        timeout,
        SECS_30,
        &format!("{p}.timeout"),
        "",
        &format!("{p}.timeout"),
    );
    Some(TelegramConfig {
        api_url: api?,
        token: token?,
        chat_id: chat_id?,
        min_interval: min?,
        timeout: timeout?,
    })
}

fn email(report: &mut Report<'_>, base: &Path, p: &str, e: &RawEmail) -> Option<EmailConfig> {
    let hostport = match e.smarthost.as_deref() {
        None => {
            report.at(p, "", &format!("{p}.smarthost"), "is required (host:port)");
            None
        }
        Some(s) => match s.rsplit_once(':').map(|(h, port)| (h, port.parse::<u16>())) {
            Some((h, Ok(port))) if !h.is_empty() => {
                Some((h.trim_matches(['[', ']']).to_string(), port))
            }
            _ => {
                let f = format!("{p}.smarthost");
                report.at(
                    &f,
                    "",
                    &f,
                    format!("expected host:port such as smtp.example.com:587, got {s:?}"),
                );
                None
            }
        },
    };
    let tls = match e.tls.as_deref().unwrap_or("starttls") {
        "none" => Some(Tls::None),
        "starttls" => Some(Tls::Starttls),
        "tls" => Some(Tls::Tls),
        other => {
            let f = format!("{p}.tls");
            report.at(
                &f,
                "",
                &f,
                format!("expected none, starttls or tls, got {other:?}"),
            );
            None
        }
    };
    let password = secret_at(
        report,
        base,
        e.password_file.as_ref(),
        e.password_env.as_ref(),
        p,
        "password",
        e.username.is_some(),
    );
    if e.username.is_none() && password.is_some() {
        report.at(
            p,
            "",
            &format!("{p}.username"),
            "is required with a password",
        );
    }
    if e.from.is_none() {
        report.at(p, "", &format!("{p}.from"), "is required");
    }
    if e.to.is_empty() {
        report.at(p, "", &format!("{p}.to"), "needs at least one address");
    }
    let ca_pem = match &e.ca_file {
        None => Some(None),
        Some(f) => match std::fs::read(base.join(f)) {
            Ok(b) => Some(Some(b)),
            Err(err) => {
                let fp = format!("{p}.ca_file");
                report.at(&fp, "", &fp, format!("cannot read {f:?}: {err}"));
                None
            }
        },
    };
    let timeout = report.duration(
        e.timeout.as_ref(),
        SECS_30,
        &format!("{p}.timeout"),
        "",
        &format!("{p}.timeout"),
    );
    let (host, port) = hostport?;
    Some(EmailConfig {
        host,
        port,
        tls: tls?,
        username: e.username.clone(),
        password,
        from: e.from.clone()?,
        to: e.to.clone(),
        ca_pem: ca_pem?,
        timeout: timeout?,
        hello_name: e.hello.clone(),
    })
}

fn route(
    report: &mut Report<'_>,
    r: &RawRoute,
    p: &str,
    receivers: &BTreeSet<String>,
    defaults: Option<&Route>,
) -> Route {
    if let Some(name) = &r.receiver
        && !receivers.contains(name)
    {
        let f = format!("{p}.receiver");
        report.at(&f, "", &f, format!("names no receiver: {name:?}"));
    }
    let dur = |report: &mut Report<'_>, t: Option<&Text>, field: &str, default: i64| -> i64 {
        let f = format!("{p}.{field}");
        match t {
            None => default,
            Some(_) => report
                .duration(t, Duration::ZERO, &f, "", &f)
                .map(secs)
                .unwrap_or(default),
        }
    };
    let d = defaults;
    let mut out = Route {
        receiver: r.receiver.clone().unwrap_or_default(),
        matchers: matchers_at(report, &r.matchers, p),
        group_by: r
            .group_by
            .clone()
            .unwrap_or_else(|| d.map(|d| d.group_by.clone()).unwrap_or_default()),
        group_wait: dur(
            report,
            r.group_wait.as_ref(),
            "group_wait",
            d.map_or(0, |d| d.group_wait),
        ),
        group_interval: dur(
            report,
            r.group_interval.as_ref(),
            "group_interval",
            d.map_or(0, |d| d.group_interval),
        ),
        repeat_interval: dur(
            report,
            r.repeat_interval.as_ref(),
            "repeat_interval",
            d.map_or(0, |d| d.repeat_interval),
        ),
        continue_matching: r.continue_matching,
        routes: Vec::new(),
    };
    for (i, c) in r.routes.iter().enumerate() {
        let child = route(report, c, &format!("{p}.routes[{i}]"), receivers, None);
        out.routes.push(child);
    }
    out
}

fn remediation(
    report: &mut Report<'_>,
    base: &Path,
    r: &RawRemediation,
    has_bot: bool,
) -> Option<RemediationConfig> {
    let p = "remediation";
    let secret = secret_at(
        report,
        base,
        r.secret_file.as_ref(),
        r.secret_env.as_ref(),
        p,
        "secret",
        true,
    );
    let (max_calls, per) = match &r.rate_limit {
        None => (10, Some(Duration::from_secs(3600))),
        Some(l) => (
            l.max_calls.unwrap_or(10),
            report.duration(
                l.per.as_ref(),
                Duration::from_secs(3600),
                "remediation.rate_limit.per",
                "",
                "remediation.rate_limit.per",
            ),
        ),
    };
    let mut actions = Vec::new();
    let mut names = BTreeSet::new();
    for (i, a) in r.actions.iter().enumerate() {
        let ap = format!("{p}.actions[{i}]");
        let Some(name) = a.name.clone() else {
            report.at(&ap, "", &format!("{ap}.name"), "is required");
            continue;
        };
        if !names.insert(name.clone()) {
            report.at(
                &format!("{ap}.name"),
                "",
                &format!("{ap}.name"),
                format!("duplicate action name {name:?}"),
            );
        }
        let url = url_at(report, a.url.as_deref(), &format!("{ap}.url"));
        let method = a
            .method
            .clone()
            .unwrap_or_else(|| "POST".to_string())
            .to_uppercase();
        if !matches!(method.as_str(), "POST" | "PUT" | "PATCH" | "GET" | "DELETE") {
            report.at(
                &format!("{ap}.method"),
                "",
                &format!("{ap}.method"),
                format!("expected POST, PUT, PATCH, GET or DELETE, got {method:?}"),
            );
        }
        let body = a.body.clone().unwrap_or_default();
        if let Err(e) = check_template(&body) {
            report.at(
                &format!("{ap}.body"),
                "",
                &format!("{ap}.body"),
                e.to_string(),
            );
        }
        let matchers = matchers_at(report, &a.matchers, &ap);
        if a.matchers.is_empty() {
            report.at(
                &ap,
                "",
                &format!("{ap}.matchers"),
                "needs at least one matcher (which alerts call it)",
            );
        }
        let cooldown = report.duration(
            a.cooldown.as_ref(),
            Duration::from_secs(1800),
            &format!("{ap}.cooldown"),
            "",
            &format!("{ap}.cooldown"),
        );
        let approval = match &a.approval {
            None => None,
            Some(ap_raw) => {
                if ap_raw.approvers.is_empty() {
                    report.at(
                        &format!("{ap}.approval"),
                        "",
                        &format!("{ap}.approval.approvers"),
                        "needs at least one Telegram user id",
                    );
                }
                if !has_bot {
                    report.at(
                        &format!("{ap}.approval"),
                        "",
                        &format!("{ap}.approval"),
                        "needs notifications.telegram_bot to ask for approval",
                    );
                }
                let expires = report.duration(
                    ap_raw.expires.as_ref(),
                    Duration::from_secs(900),
                    &format!("{ap}.approval.expires"),
                    "",
                    &format!("{ap}.approval.expires"),
                );
                expires.map(|e| ApprovalPolicy {
                    expires_secs: secs(e).max(1),
                    approvers: ap_raw.approvers.clone(),
                })
            }
        };
        if let (Some(url), Some(cooldown)) = (url, cooldown) {
            actions.push(Action {
                name,
                url,
                method,
                body_template: body,
                headers: a
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                matchers,
                cooldown_secs: secs(cooldown),
                approval,
                dry_run: a.dry_run || r.dry_run,
                on_resolved: a.on_resolved,
            });
        }
    }
    Some(RemediationConfig {
        secret: secret?.into_bytes(),
        max_calls: max_calls.max(1),
        per_secs: secs(per?).max(1),
        dry_run: r.dry_run,
        actions,
    })
}
