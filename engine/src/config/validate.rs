//! The main config file: read it, check `global:`, expand `rule_files` and
//! hand each rule file to [`super::rules`]. Problems are collected in a
//! [`Report`], never returned early.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::{ConfigError, ConfigErrors};
use super::locate::{Doc, parse_path};
use super::raw::{RawConfig, RawPrometheus, Text};
use super::{
    Config, PrometheusConfig, Secret, Shard, glob, parse_duration, peel, rules, secret, state_dir,
};
use prognos_notifiers::secret::redact_url_str;

/// Default `global.evaluation_interval`.
pub(crate) const DEFAULT_EVALUATION_INTERVAL: Duration = Duration::from_secs(60);
/// Default `global.prometheus.timeout`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
/// Default `global.state_dir`.
const DEFAULT_STATE_DIR: &str = "state";
/// Default `global.listen`.
const DEFAULT_LISTEN: &str = "127.0.0.1:9464";
/// What a configuration file is, for errors that find something else.
const CONFIG_DOCUMENT: &str = "a mapping with `global:`";
/// Default `global.series_limit_per_rule`.
pub(crate) const DEFAULT_SERIES_LIMIT: usize = 1000;

/// Errors of one file, located in its text.
pub(crate) struct Report<'a> {
    pub file: &'a Path,
    pub doc: Doc<'a>,
    pub errors: &'a mut Vec<ConfigError>,
    /// Paths (`a.b[2].c`) whose bad values were reported and removed
    /// before validation ([`super::peel`]): nothing more is said of them.
    pub peeled: Vec<String>,
}

impl<'a> Report<'a> {
    pub fn new(file: &'a Path, doc: Doc<'a>, errors: &'a mut Vec<ConfigError>) -> Self {
        Report {
            file,
            doc,
            errors,
            peeled: Vec::new(),
        }
    }
}

impl Report<'_> {
    /// Whether `path` is, or is below, a path already reported and removed.
    pub fn is_peeled(&self, path: &str) -> bool {
        self.peeled.iter().any(|p| {
            path.strip_prefix(p.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with(['.', '[']))
        })
    }

    /// Records an error at the field `path` of the document (`a.b[2].c`),
    /// shown with `context` and `field`; nothing when `path` or `field`
    /// was already reported and removed (a bad value is not also missing).
    pub fn at(&mut self, path: &str, context: &str, field: &str, message: impl Into<String>) {
        if self.is_peeled(path) || self.is_peeled(field) {
            return;
        }
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
        self.errors.push(ConfigError::new(
            self.file,
            line,
            column,
            context,
            field,
            &message.into(),
        ));
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
    ConfigError::new(file, 0, 0, "", "", &message)
}

/// A serde_norway error as a [`ConfigError`]: its location, its path as the
/// field (and the returned path, for callers that relocate it), and its
/// message without the location suffix.
///
/// serde's messages quote the offending token, which may be a whole file
/// (a rule file that is really a key file, `/etc/shadow`): a document that
/// is not a mapping is described by kind and length (`document` says what
/// was expected, e.g. "a mapping with `groups:`"), an unknown key that is
/// not even a name is not quoted, and other tokens are cut by
/// [`ConfigError::new`].
pub(crate) fn serde_error(
    file: &Path,
    err: &serde_norway::Error,
    context: &str,
    document: &str,
) -> (ConfigError, Option<String>) {
    let text = strip_location(&err.to_string());
    let (path, message) = split_path(&text);
    let mut field = path.map(str::to_string);
    let mut shown = message.to_string();
    if let Some((name, expected)) = unknown_field(message) {
        if is_field_name(name) {
            field = Some(match field {
                Some(p) => format!("{p}.{name}"),
                None => name.to_string(),
            });
        } else {
            shown = format!(
                "unknown field (a key of {} characters that is not a field name){expected}",
                name.chars().count()
            );
        }
    } else if path.is_none()
        && let Some(kind) = top_level_type(message)
    {
        shown = format!("expected {document}, got {kind}");
    }
    let (line, column) = err.location().map_or((0, 0), |l| (l.line(), l.column()));
    (
        ConfigError::new(
            file,
            line,
            column,
            context,
            field.as_deref().unwrap_or_default(),
            &shown,
        ),
        field,
    )
}

/// Whether an unknown key may be quoted: it looks like a field name.
fn is_field_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= super::error::QUOTED_CHARS
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// The kind of value in ``invalid type: string "…", expected struct X``,
/// without the value: "a string (64 characters)", "a sequence".
fn top_level_type(msg: &str) -> Option<String> {
    let rest = msg.strip_prefix("invalid type: ")?;
    if let Some(token) = rest.strip_prefix("string \"") {
        let end = token.rfind("\", expected").unwrap_or(token.len());
        return Some(format!(
            "a string ({} characters)",
            token[..end].chars().count()
        ));
    }
    let kind = rest.split([',', '`', '"']).next()?.trim();
    let article = if kind.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    Some(format!("{article} {kind}"))
}

/// Removes the first ` at line N column M` from a serde_norway message.
pub(crate) fn strip_location(msg: &str) -> String {
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
pub(crate) fn split_path(msg: &str) -> (Option<&str>, &str) {
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

/// The name in ``unknown field `x`, expected …`` and what follows it
/// (``, expected …``). The name comes from the file and may hold anything,
/// backticks too: it ends at the last ``` `, ``` (serde's own text after it
/// never holds one).
pub(crate) fn unknown_field(msg: &str) -> Option<(&str, &str)> {
    let rest = msg.strip_prefix("unknown field `")?;
    let end = rest
        .rfind("`, expected")
        .or_else(|| rest.rfind("`, there are no fields"))
        .or_else(|| rest.strip_suffix('`').map(str::len))?;
    Some((&rest[..end], &rest[end + 1..]))
}

/// What a check asks of a configuration beyond what [`load`] does.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Strict {
    /// Refuse a configuration whose rule files hold no rule.
    pub rules_required: bool,
    /// Refuse a `state_dir` that cannot hold the state database (probed).
    pub state_dir_writable: bool,
}

/// Loads and checks everything; see [`super::load`].
pub(crate) fn load(path: &Path) -> Result<Config, ConfigErrors> {
    match std::fs::read_to_string(path) {
        Ok(text) => load_text(path, &text, Strict::default()),
        Err(e) => Err(ConfigErrors(vec![file_error(
            path,
            format!("cannot read: {e}"),
        )])),
    }
}

/// Checks the configuration `text` read from `path`, and every file it
/// names; with `strict`, also what a running engine needs of it.
pub(crate) fn load_text(path: &Path, text: &str, strict: Strict) -> Result<Config, ConfigErrors> {
    let mut errors = Vec::new();
    let value: serde_norway::Value = match serde_norway::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return Err(ConfigErrors(vec![
                serde_error(path, &e, "", CONFIG_DOCUMENT).0,
            ]));
        }
    };
    let mut report = Report::new(path, Doc::new(text), &mut errors);
    let Some(raw) = peel::read::<RawConfig>(&mut report, value, "", "", CONFIG_DOCUMENT) else {
        return Err(ConfigErrors(errors));
    };
    let base = path.parent().unwrap_or(Path::new("")).to_path_buf();
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
    if strict.state_dir_writable
        && !report.is_peeled("global.state_dir")
        && let Err(why) = state_dir::probe(&state_dir)
    {
        let default = if g.state_dir.is_none() {
            " (the default, `state` next to the config)"
        } else {
            ""
        };
        report.at(
            "global.state_dir",
            "",
            "global.state_dir",
            format!("cannot hold the state database{default}: {why}"),
        );
    }
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
                    format!(
                        "expected an http:// or https:// URL, got {:?}",
                        redact_url_str(u)
                    ),
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
    let rule_files_peeled = report.is_peeled("rule_files");
    let mut groups = Vec::new();
    let before = errors.len();
    for file in &files {
        match std::fs::read_to_string(file) {
            Ok(text) => groups.extend(rules::load_file(file, &text, &defaults, &mut errors)),
            Err(e) => errors.push(file_error(file, format!("cannot read: {e}"))),
        }
    }
    let no_rule = groups.iter().all(|g: &super::RuleGroup| g.rules.is_empty());
    // When every glob matches nothing, each has said so already; when a
    // rule file is broken, its errors say why it gave no rule.
    let globs_all_failed = files.is_empty() && !raw.rule_files.is_empty();
    if strict.rules_required
        && no_rule
        && errors.len() == before
        && !globs_all_failed
        && !rule_files_peeled
    {
        let message = if raw.rule_files.is_empty() {
            "the rule set is empty: no rule_files are given, so there is nothing to evaluate"
                .to_string()
        } else {
            let globs: Vec<String> = raw.rule_files.iter().map(|g| format!("{g:?}")).collect();
            format!(
                "the rule set is empty: {} {} {} {} holding no rule, so there is nothing to evaluate",
                globs.join(", "),
                if globs.len() == 1 { "matches" } else { "match" },
                files.len(),
                if files.len() == 1 { "file" } else { "files" },
            )
        };
        Report::new(path, Doc::new(text), &mut errors).at("rule_files", "", "rule_files", message);
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
                    format!(
                        "expected an http:// or https:// URL, got {:?}",
                        redact_url_str(u)
                    ),
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
                    format!(
                        "expected an http:// or https:// URL, got {:?}: {e}",
                        redact_url_str(u)
                    ),
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
            unknown_field("unknown field `tokn`, expected one of `token`"),
            Some(("tokn", ", expected one of `token`"))
        );
        assert_eq!(
            unknown_field("unknown field `a`, expected b`, expected one of `c`"),
            Some(("a`, expected b", ", expected one of `c`"))
        );
    }

    fn rule_file_error(text: &str) -> String {
        let e = serde_norway::from_str::<super::super::raw::RawRuleFile>(text).unwrap_err();
        let (err, _) = serde_error(Path::new("r.yml"), &e, "", "a mapping with `groups:`");
        err.to_string()
    }

    #[test]
    fn a_document_that_is_a_string_is_described_not_quoted() {
        let key = "c0ffee".repeat(11);
        let shown = rule_file_error(&key);
        assert!(!shown.contains("c0ffee"), "{shown}");
        assert!(
            shown.contains("expected a mapping with `groups:`, got a string (66 characters)"),
            "{shown}"
        );
        let shown = rule_file_error("- a\n- b\n");
        assert!(shown.contains("got a sequence"), "{shown}");
    }

    #[test]
    fn unknown_keys_that_are_not_names_are_not_quoted() {
        let shown = rule_file_error("root:SECRETCANARY:19000:0:99999:7:::\n");
        assert!(!shown.contains("SECRETCANARY"), "{shown}");
        assert!(
            shown.contains("unknown field (a key of 35 characters"),
            "{shown}"
        );
        assert!(shown.contains("expected `groups`"), "{shown}");
        // A misspelt name is still shown, and named as the field.
        let shown = rule_file_error("grups: []\n");
        assert!(
            shown.contains("field 'grups': unknown field `grups`"),
            "{shown}"
        );
    }

    #[test]
    fn a_huge_token_is_cut() {
        let huge = "x".repeat(1 << 20);
        let shown = rule_file_error(&format!("groups: \"{huge}\"\n"));
        assert!(shown.len() < 400, "{} bytes", shown.len());
        assert!(shown.contains("invalid type: string"), "{shown}");
    }
}
