//! The main config file: read it, check `global:`, expand `rule_files` and
//! hand each rule file to [`super::rules`]. Problems are collected in a
//! [`Report`], never returned early.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::{ConfigError, ConfigErrors};
use super::locate::{Doc, parse_path};
use super::raw::{RawConfig, RawPrometheus, Text};
use super::{Config, PrometheusConfig, Secret, Shard, glob, parse_duration, rules, secret};

/// Default `global.evaluation_interval`.
pub(crate) const DEFAULT_EVALUATION_INTERVAL: Duration = Duration::from_secs(60);
/// Default `global.prometheus.timeout`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default `global.state_dir`.
const DEFAULT_STATE_DIR: &str = "state";
/// Default `global.listen`.
const DEFAULT_LISTEN: &str = "127.0.0.1:9464";
/// Default `global.series_limit_per_rule`.
const DEFAULT_SERIES_LIMIT: usize = 1000;

/// Errors of one file, located in its text.
pub(crate) struct Report<'a> {
    pub file: &'a Path,
    pub doc: Doc<'a>,
    pub errors: &'a mut Vec<ConfigError>,
}

impl Report<'_> {
    /// Records an error at the field `path` of the document (`a.b[2].c`),
    /// shown with `context` and `field`.
    pub fn at(&mut self, path: &str, context: &str, field: &str, message: impl Into<String>) {
        let pos = self.doc.locate(&parse_path(path));
        self.push_at(pos.line, pos.column, context, field, message);
    }

    pub fn push_at(
        &mut self,
        line: usize,
        column: usize,
        context: &str,
        field: &str,
        message: impl Into<String>,
    ) {
        self.errors.push(ConfigError {
            file: self.file.to_path_buf(),
            line,
            column,
            context: context.to_string(),
            field: field.to_string(),
            message: message.into(),
        });
    }

    /// Parses an optional duration at `path`, `default` when absent.
    /// `None` after recording an error.
    pub fn duration(
        &mut self,
        raw: Option<&Text>,
        default: Duration,
        path: &str,
        context: &str,
        field: &str,
    ) -> Option<Duration> {
        match raw {
            None => Some(default),
            Some(t) => match parse_duration(&t.0) {
                Ok(d) => Some(d),
                Err(e) => {
                    self.at(path, context, field, e);
                    None
                }
            },
        }
    }
}

/// An error with no place in a file (it cannot be read).
fn file_error(file: &Path, message: String) -> ConfigError {
    ConfigError {
        file: file.to_path_buf(),
        line: 0,
        column: 0,
        context: String::new(),
        field: String::new(),
        message,
    }
}

/// A serde_norway error as a [`ConfigError`]: its location (or `fallback`
/// when it has none, or when `relocate` says the text was re-serialised),
/// its path as the field, and its message without the location suffix.
pub(crate) fn serde_error(
    file: &Path,
    err: &serde_norway::Error,
    context: &str,
) -> (ConfigError, Option<String>) {
    let text = strip_location(&err.to_string());
    let (path, message) = split_path(&text);
    let mut field = path.map(str::to_string);
    if let Some(name) = unknown_field(message) {
        field = Some(match field {
            Some(p) => format!("{p}.{name}"),
            None => name.to_string(),
        });
    }
    let (line, column) = err.location().map_or((0, 0), |l| (l.line(), l.column()));
    (
        ConfigError {
            file: file.to_path_buf(),
            line,
            column,
            context: context.to_string(),
            field: field.clone().unwrap_or_default(),
            message: message.to_string(),
        },
        field,
    )
}

/// Removes the first ` at line N column M` from a serde_norway message.
fn strip_location(msg: &str) -> String {
    if let Some(start) = msg.find(" at line ") {
        let rest = &msg[start + " at line ".len()..];
        let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
        let n = digits(rest);
        if let Some(after) = rest[n..].strip_prefix(" column ") {
            let m = digits(after);
            let end = start + " at line ".len() + n + " column ".len() + m;
            return format!("{}{}", &msg[..start], &msg[end..]);
        }
    }
    msg.to_string()
}

/// Splits `groups[0].rules: invalid type…` into the path and the message.
fn split_path(msg: &str) -> (Option<&str>, &str) {
    if let Some((path, rest)) = msg.split_once(": ") {
        let path_like = !path.is_empty()
            && path
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '[' | ']'));
        if path_like && path != "." {
            return (Some(path), rest);
        }
    }
    (None, msg)
}

/// The name in ``unknown field `x`, expected …``.
fn unknown_field(msg: &str) -> Option<&str> {
    let rest = msg.strip_prefix("unknown field `")?;
    Some(&rest[..rest.find('`')?])
}

/// Loads and checks everything; see [`super::load`].
pub(crate) fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let mut errors = Vec::new();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            return Err(ConfigErrors(vec![file_error(
                path,
                format!("cannot read: {e}"),
            )]));
        }
    };
    let raw: RawConfig = match serde_norway::from_str(&text) {
        Ok(r) => r,
        Err(e) => return Err(ConfigErrors(vec![serde_error(path, &e, "").0])),
    };
    let base = path.parent().unwrap_or(Path::new("")).to_path_buf();
    let mut report = Report {
        file: path,
        doc: Doc::new(&text),
        errors: &mut errors,
    };
    let g = &raw.global;
    let prometheus = prometheus(&mut report, &base, &g.prometheus);
    let evaluation_interval = report
        .duration(
            g.evaluation_interval.as_ref(),
            DEFAULT_EVALUATION_INTERVAL,
            "global.evaluation_interval",
            "",
            "global.evaluation_interval",
        )
        .and_then(|d| positive(&mut report, d, "global.evaluation_interval"));
    let state_dir = base.join(g.state_dir.as_deref().unwrap_or(DEFAULT_STATE_DIR));
    let listen_text = g.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
    let listen = listen_text.parse::<SocketAddr>().map_err(|_| {
        report.at(
            "global.listen",
            "",
            "global.listen",
            format!("expected IP:port such as 127.0.0.1:9464, got {listen_text:?}"),
        )
    });
    let external_url = match (&g.external_url, &listen) {
        (Some(u), _) => match url::Url::parse(u) {
            Ok(p) if matches!(p.scheme(), "http" | "https") => u.trim_end_matches('/').to_string(),
            _ => {
                report.at(
                    "global.external_url",
                    "",
                    "global.external_url",
                    format!("expected an http:// or https:// URL, got {u:?}"),
                );
                String::new()
            }
        },
        (None, Ok(l)) => format!("http://{l}"),
        (None, Err(())) => String::new(),
    };
    let shard = match &g.shard {
        None => Ok(Shard::default()),
        Some(s) => s
            .parse::<Shard>()
            .map_err(|e| report.at("global.shard", "", "global.shard", e)),
    };
    let series_limit_per_rule = match g.series_limit_per_rule {
        None => Some(DEFAULT_SERIES_LIMIT),
        Some(n) if n > 0 => Some(n as usize),
        Some(n) => {
            report.at(
                "global.series_limit_per_rule",
                "",
                "global.series_limit_per_rule",
                format!("must be > 0, got {n}"),
            );
            None
        }
    };

    let mut files: Vec<PathBuf> = Vec::new();
    for (k, pattern) in raw.rule_files.iter().enumerate() {
        let found = glob::expand(&base, pattern);
        if found.is_empty() {
            report.at(
                &format!("rule_files[{k}]"),
                "",
                &format!("rule_files[{k}]"),
                format!(
                    "{pattern:?} matches no file (relative to {:?})",
                    shown_dir(&base)
                ),
            );
        }
        for f in found {
            if !files.contains(&f) {
                files.push(f);
            }
        }
    }

    let notifications = super::notify::load(
        &mut report,
        &base,
        raw.notifications.as_ref(),
        raw.remediation.as_ref(),
        &external_url,
    );
    let defaults = rules::Defaults {
        interval: evaluation_interval.unwrap_or(DEFAULT_EVALUATION_INTERVAL),
        series_limit: series_limit_per_rule.unwrap_or(DEFAULT_SERIES_LIMIT),
    };
    let mut groups = Vec::new();
    for file in &files {
        match std::fs::read_to_string(file) {
            Ok(text) => groups.extend(rules::load_file(file, &text, &defaults, &mut errors)),
            Err(e) => errors.push(file_error(file, format!("cannot read: {e}"))),
        }
    }

    match (
        prometheus,
        evaluation_interval,
        listen,
        shard,
        series_limit_per_rule,
    ) {
        (Some(prometheus), Some(evaluation_interval), Ok(listen), Ok(shard), Some(limit))
            if errors.is_empty() =>
        {
            Ok(Config {
                source: path.to_path_buf(),
                prometheus,
                evaluation_interval,
                state_dir,
                listen,
                external_url,
                shard,
                series_limit_per_rule: limit,
                groups,
                notifications,
            })
        }
        _ => Err(ConfigErrors(errors)),
    }
}

fn shown_dir(base: &Path) -> String {
    if base.as_os_str().is_empty() {
        ".".to_string()
    } else {
        base.display().to_string()
    }
}

fn positive(report: &mut Report<'_>, d: Duration, field: &str) -> Option<Duration> {
    if d.is_zero() {
        report.at(field, "", field, "must be > 0s, got \"0s\"");
        return None;
    }
    Some(d)
}

/// Checks `global.prometheus` and reads its secrets and CA.
fn prometheus(report: &mut Report<'_>, base: &Path, p: &RawPrometheus) -> Option<PrometheusConfig> {
    const F: &str = "global.prometheus";
    let before = report.errors.len();
    let url = match p.url.as_deref() {
        None => {
            report.at(F, "", &format!("{F}.url"), "is required");
            None
        }
        Some(u) => match url::Url::parse(u) {
            Ok(url) if !matches!(url.scheme(), "http" | "https") || !url.has_host() => {
                report.at(
                    &format!("{F}.url"),
                    "",
                    &format!("{F}.url"),
                    format!("expected an http:// or https:// URL, got {u:?}"),
                );
                None
            }
            Ok(url) if !url.username().is_empty() || url.password().is_some() => {
                report.at(
                    &format!("{F}.url"),
                    "",
                    &format!("{F}.url"),
                    "must not hold credentials: use basic_auth with password_file or password_env",
                );
                None
            }
            Ok(url) => Some(url),
            Err(e) => {
                report.at(
                    &format!("{F}.url"),
                    "",
                    &format!("{F}.url"),
                    format!("expected an http:// or https:// URL, got {u:?}: {e}"),
                );
                None
            }
        },
    };
    let timeout = report
        .duration(
            p.timeout.as_ref(),
            DEFAULT_TIMEOUT,
            &format!("{F}.timeout"),
            "",
            &format!("{F}.timeout"),
        )
        .and_then(|d| positive(report, d, &format!("{F}.timeout")));

    let read = |report: &mut Report<'_>, field: &str, r: Result<Secret, String>| match r {
        Ok(s) => Some(s),
        Err(e) => {
            let f = format!("{F}.{field}");
            report.at(&f, "", &f, e);
            None
        }
    };
    if p.bearer_token_file.is_some() && p.bearer_token_env.is_some() {
        let f = format!("{F}.bearer_token_env");
        report.at(
            &f,
            "",
            &f,
            "contradicts bearer_token_file: set only one of them",
        );
    }
    if (p.bearer_token_file.is_some() || p.bearer_token_env.is_some()) && p.basic_auth.is_some() {
        let f = format!("{F}.basic_auth");
        report.at(
            &f,
            "",
            &f,
            "contradicts the bearer token: set either a bearer token or basic_auth",
        );
    }
    let bearer_token = match (&p.bearer_token_file, &p.bearer_token_env) {
        (Some(file), _) => read(
            report,
            "bearer_token_file",
            secret::from_file(&base.join(file)),
        ),
        (None, Some(var)) => read(report, "bearer_token_env", secret::from_env(var)),
        (None, None) => None,
    };
    let basic_auth = match &p.basic_auth {
        None => None,
        Some(b) => {
            let f = format!("{F}.basic_auth");
            if b.username.as_deref().is_none_or(str::is_empty) {
                report.at(&f, "", &format!("{f}.username"), "is required");
            }
            let password = match (&b.password_file, &b.password_env) {
                (Some(_), Some(_)) => {
                    report.at(
                        &format!("{f}.password_env"),
                        "",
                        &format!("{f}.password_env"),
                        "contradicts password_file: set only one of them",
                    );
                    None
                }
                (Some(file), None) => read(
                    report,
                    "basic_auth.password_file",
                    secret::from_file(&base.join(file)),
                ),
                (None, Some(var)) => read(report, "basic_auth.password_env", secret::from_env(var)),
                (None, None) => {
                    report.at(&f, "", &f, "needs password_file or password_env");
                    None
                }
            };
            b.username.clone().zip(password)
        }
    };
    let ca_cert_pem = p.ca_file.as_ref().and_then(|file| {
        let f = format!("{F}.ca_file");
        let path = base.join(file);
        match std::fs::read(&path) {
            Ok(pem) if pem.windows(11).any(|w| w == b"-----BEGIN ") => Some(pem),
            Ok(_) => {
                report.at(
                    &f,
                    "",
                    &f,
                    format!("{:?} is not a PEM file", path.display().to_string()),
                );
                None
            }
            Err(e) => {
                report.at(
                    &f,
                    "",
                    &f,
                    format!("cannot read {:?}: {e}", path.display().to_string()),
                );
                None
            }
        }
    });
    let max_response_bytes = p
        .max_response_bytes
        .unwrap_or(crate::prom::DEFAULT_MAX_RESPONSE_BYTES);
    if max_response_bytes == 0 {
        let f = format!("{F}.max_response_bytes");
        report.at(&f, "", &f, "must be ≥ 1 (bytes), got 0");
    }
    if report.errors.len() > before {
        return None;
    }
    Some(PrometheusConfig {
        url: url?,
        timeout: timeout?,
        bearer_token,
        basic_auth,
        ca_cert_pem,
        max_response_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_serde_locations() {
        assert_eq!(
            strip_location("did not find expected key at line 3 column 2, while parsing"),
            "did not find expected key, while parsing"
        );
        assert_eq!(
            split_path("global.prometheus: unknown field `x`"),
            (Some("global.prometheus"), "unknown field `x`")
        );
        assert_eq!(
            split_path("invalid type: string"),
            (None, "invalid type: string")
        );
        assert_eq!(
            unknown_field("unknown field `tokn`, expected one of"),
            Some("tokn")
        );
    }
}
