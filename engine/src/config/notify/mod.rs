//! The `notifications:` and `remediation:` sections of the main file, checked
//! and turned into the notifiers' typed [`NotifierConfig`]. Every problem is
//! reported with its field; secrets are read from files or environment
//! variables, never written inline.
//!
//! - [`raw`]: the sections as written (serde, unknown fields rejected).
//! - [`targets`]: Telegram and email targets.
//! - [`remediation`]: the remediation actions.

pub mod raw;
mod remediation;
mod targets;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use prognos_notifiers::channel::alertmanager::AlertmanagerConfig;
use prognos_notifiers::channel::webhook::WebhookConfig;
use prognos_notifiers::config::{BotConfig, NotifierConfig, Receiver, Target};
use prognos_notifiers::matcher::{Matcher, parse_matchers};
use prognos_notifiers::message::RenderOptions;
use prognos_notifiers::retry::Backoff;
use prognos_notifiers::route::Route;
use prognos_notifiers::secret::redact_url_str;

use super::raw::Text;
use super::secret::{self, Secret};
use super::validate::Report;
use raw::{RawNotifications, RawRemediation, RawRoute};
use remediation::remediation;
use targets::{email, telegram};

pub(super) const DEFAULT_API_URL: &str = "https://api.telegram.org";
pub(super) const SECS_30: Duration = Duration::from_secs(30);

pub(super) fn url_at(report: &mut Report<'_>, raw: Option<&str>, path: &str) -> Option<url::Url> {
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
                    format!(
                        "expected an http:// or https:// URL, got {:?}",
                        redact_url_str(u)
                    ),
                );
                None
            }
        },
    }
}

pub(super) fn secret_at(
    report: &mut Report<'_>,
    base: &Path,
    file: Option<&String>,
    env: Option<&String>,
    path: &str,
    what: &str,
    required: bool,
) -> Option<Secret> {
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
        Ok(s) => Some(s),
        Err((field, e)) => {
            let f = format!("{path}.{field}");
            report.at(&f, "", &f, e);
            None
        }
    }
}

pub(super) fn matchers_at(report: &mut Report<'_>, raw: &[String], path: &str) -> Vec<Matcher> {
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

pub(super) fn secs(d: Duration) -> i64 {
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
                t.at_most_once,
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
