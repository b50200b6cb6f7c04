//! Telegram chats and SMTP servers: the targets with secrets and TLS.

use std::path::Path;
use std::time::Duration;

use prognos_notifiers::channel::email::{EmailConfig, Tls};
use prognos_notifiers::channel::telegram::TelegramConfig;

use super::super::raw::Text;
use super::super::validate::Report;
use super::raw::RawEmail;
use super::{DEFAULT_API_URL, SECS_30, secret_at, url_at};

#[allow(clippy::too_many_arguments)]
pub(super) fn telegram(
    report: &mut Report<'_>,
    base: &Path,
    p: &str,
    api_url: Option<&str>,
    token_file: Option<&String>,
    token_env: Option<&String>,
    chat_id: Option<i64>,
    min_interval: Option<&Text>,
    timeout: Option<&Text>,
    at_most_once: Option<bool>,
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
        at_most_once: at_most_once.unwrap_or(false),
    })
}

pub(super) fn email(
    report: &mut Report<'_>,
    base: &Path,
    p: &str,
    e: &RawEmail,
) -> Option<EmailConfig> {
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
                    format!(
                        "expected host:port such as smtp.example.com:587, got {:?}",
                        // Never the user info of a `user:password@host` mistake.
                        s.rsplit('@').next().unwrap_or_default()
                    ),
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
