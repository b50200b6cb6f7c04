//! Remediation: webhooks bound to alerts, called when an alert fires (and, if
//! configured, when it resolves). Every call is governed (a cooldown per
//! action and alert, and a global rate limit), may require a human approval
//! over Telegram, may be a dry run, and leaves an [`AuditRecord`].
//!
//! Everything here is pure except [`call`]: the delivery worker persists the
//! records and the planned deliveries in the store and performs the calls.
//!
//! What is sent ([`RemediationCall`], kept in the outbox: URL, configured
//! headers, body) is kept apart from what is shown ([`AuditedCall`], in the
//! audit log, the API and the approval message: action, method, redacted URL
//! and body, never headers). Every error that names the URL redacts it with
//! [`redact_url`].
//!
//! A body template is escaped for its content type ([`BodyType`]), taken
//! from the action's `Content-Type` header or, without one, inferred from
//! the template: JSON values are JSON-escaped, form values percent-encoded,
//! and placeholders are refused in any other type.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::alert::{AlertInfo, KeyValues, Status, rfc3339};
use crate::delivery::SendError;
use crate::matcher::{Matcher, all_match};
use crate::retry::{RetryAction, classify_status};
use crate::secret::{EXCERPT_CHARS, excerpt, redact_url, redact_url_str};
use crate::signature::{SIGNATURE_HEADER, SignedRequest, TIMESTAMP_HEADER, sign};
use crate::store::Delivery;

/// Header carrying the audit id, so a receiver recognises a retried call
/// (signed: see [`crate::signature`]).
pub use crate::signature::IDEMPOTENCY_HEADER;

/// How much of a request body the approval message shows, in characters.
const APPROVAL_BODY_CHARS: usize = 1500;

/// How much of a failed call's response body is read and kept in the
/// error, in bytes: enough for the receiver's reason, bounded whatever it sends.
const ERROR_BODY_BYTES: usize = 4096;

/// How much of that response body the error quotes, in characters.
const ERROR_BODY_CHARS: usize = 200;

/// A remediation action: a webhook bound to alerts by label matchers.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    /// Unique name (configuration).
    pub name: String,
    /// Where to call.
    pub url: url::Url,
    /// HTTP method: POST, PUT, …
    pub method: String,
    /// Body template (see [`render_body`]).
    pub body_template: String,
    /// Extra headers sent as configured.
    pub headers: Vec<(String, String)>,
    /// Which alerts it is bound to (all must match).
    pub matchers: Vec<Matcher>,
    /// Least time between two calls for the same alert, seconds.
    pub cooldown_secs: i64,
    /// Whether a human must approve each call.
    pub approval: Option<ApprovalPolicy>,
    /// Render and audit the call but never send it.
    pub dry_run: bool,
    /// Also act when the alert resolves (default false: act on firing only).
    pub on_resolved: bool,
}

/// Who may approve an action's calls, and for how long a request stands.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalPolicy {
    /// Seconds after the request after which it can no longer be approved.
    pub expires_secs: i64,
    /// Telegram user ids allowed to decide.
    pub approvers: Vec<u64>,
}

impl Action {
    /// The action's configured `Content-Type` header, if any.
    pub fn content_type(&self) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| v.as_str())
    }

    /// How its body template is escaped (see [`BodyType::resolve`]).
    pub fn body_type(&self) -> Result<BodyType, TemplateError> {
        BodyType::resolve(self.content_type(), &self.body_template)
    }
}

/// A body template that cannot be rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A `{{ … }}` the renderer does not know.
    #[error(
        "unknown placeholder '{{{{ {placeholder} }}}}': expected $labels.NAME, $annotations.NAME, $value, $alertname, $fingerprint or $status"
    )]
    UnknownPlaceholder {
        /// What was written between the braces (trimmed).
        placeholder: String,
    },
    /// A `{{` without its `}}`.
    #[error("placeholder opened at byte {at} is not closed with '}}}}'")]
    Unclosed {
        /// Byte offset of the `{{`.
        at: usize,
    },
    /// A JSON template that does not render to valid JSON.
    #[error("the JSON body template does not render to valid JSON: {message}")]
    InvalidJson {
        /// The parser's complaint.
        message: String,
    },
    /// Placeholders in a body whose content type prognos cannot escape
    /// values for, so a label value could change its structure.
    #[error(
        "placeholders are not allowed in a '{content_type}' body (values cannot be escaped for it): set the Content-Type header to application/json or application/x-www-form-urlencoded, or use a body without placeholders"
    )]
    UnescapableContentType {
        /// The configured content type (cut to a bounded length).
        content_type: String,
    },
    /// Placeholders in a body that is not JSON, without a `Content-Type`
    /// header saying how to escape them.
    #[error(
        "a body with placeholders that is not JSON needs a Content-Type header, application/json or application/x-www-form-urlencoded, so values are escaped for it"
    )]
    NoContentType,
}

/// How values are inserted into a body template: escaped for the body's
/// content type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyType {
    /// `application/json` or any `…+json`: values are JSON-escaped inside
    /// string literals and quoted outside them (`$value` as a number).
    Json,
    /// `application/x-www-form-urlencoded`: each value is percent-encoded
    /// (form style), so it cannot add a parameter (`&`) or a value (`=`).
    Form,
    /// Any other type: sent as written, placeholders refused — prognos
    /// cannot know what a value would mean to the receiver (a `text/plain`
    /// body may well be parsed as a form), so it inserts none.
    Verbatim,
}

impl BodyType {
    /// The body type for a `Content-Type` header value (parameters such as
    /// `charset` ignored), or, without one, for the template: JSON if it
    /// looks like JSON (starts with `{` or `[`), verbatim if it has no
    /// placeholders, otherwise [`TemplateError::NoContentType`]. A content
    /// type other than JSON or form with placeholders is
    /// [`TemplateError::UnescapableContentType`].
    pub fn resolve(content_type: Option<&str>, template: &str) -> Result<Self, TemplateError> {
        let placeholders = template.contains("{{");
        let Some(ct) = content_type else {
            return if is_json(template) {
                Ok(BodyType::Json)
            } else if placeholders {
                Err(TemplateError::NoContentType)
            } else {
                Ok(BodyType::Verbatim)
            };
        };
        let essence = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if essence == "application/json"
            || (essence.starts_with("application/") && essence.ends_with("+json"))
        {
            Ok(BodyType::Json)
        } else if essence == "application/x-www-form-urlencoded" {
            Ok(BodyType::Form)
        } else if placeholders {
            Err(TemplateError::UnescapableContentType {
                content_type: excerpt(ct, EXCERPT_CHARS),
            })
        } else {
            Ok(BodyType::Verbatim)
        }
    }

    /// The `Content-Type` sent when the action configures none.
    pub fn default_content_type(self) -> &'static str {
        match self {
            BodyType::Json => "application/json",
            BodyType::Form => "application/x-www-form-urlencoded",
            BodyType::Verbatim => "text/plain; charset=utf-8",
        }
    }
}

/// One piece of a parsed template.
enum Piece<'a> {
    /// Literal text.
    Text(&'a str),
    /// A placeholder; `in_string` says whether it sits inside a JSON string literal.
    Var { var: Var<'a>, in_string: bool },
}

/// A known placeholder.
enum Var<'a> {
    Label(&'a str),
    Annotation(&'a str),
    Value,
    AlertName,
    Fingerprint,
    Status,
}

fn is_json(template: &str) -> bool {
    let t = template.trim_start();
    // `{{` opens a placeholder, never a JSON object.
    (t.starts_with('{') && !t.starts_with("{{")) || t.starts_with('[')
}

fn parse_var(inner: &str) -> Result<Var<'_>, TemplateError> {
    let name_ok =
        |n: &str| !n.is_empty() && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    let var = if let Some(n) = inner.strip_prefix("$labels.") {
        name_ok(n).then_some(Var::Label(n))
    } else if let Some(n) = inner.strip_prefix("$annotations.") {
        name_ok(n).then_some(Var::Annotation(n))
    } else {
        match inner {
            "$value" => Some(Var::Value),
            "$alertname" => Some(Var::AlertName),
            "$fingerprint" => Some(Var::Fingerprint),
            "$status" => Some(Var::Status),
            _ => None,
        }
    };
    var.ok_or_else(|| TemplateError::UnknownPlaceholder {
        placeholder: excerpt(inner, EXCERPT_CHARS),
    })
}

/// Splits a template into text and placeholders, tracking (for JSON
/// templates) whether each placeholder lies inside a string literal.
fn parse(template: &str, json: bool) -> Result<Vec<Piece<'_>>, TemplateError> {
    let mut pieces = Vec::new();
    let mut in_string = false;
    let mut escaped = false;
    let mut rest = template;
    let mut offset = 0;
    loop {
        let (text, tail) = match rest.find("{{") {
            Some(i) => (&rest[..i], Some(i)),
            None => (rest, None),
        };
        if json {
            for c in text.chars() {
                match c {
                    _ if escaped => escaped = false,
                    '\\' if in_string => escaped = true,
                    '"' => in_string = !in_string,
                    _ => {}
                }
            }
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        let Some(i) = tail else { break };
        let after = &rest[i + 2..];
        let end = after
            .find("}}")
            .ok_or(TemplateError::Unclosed { at: offset + i })?;
        let var = parse_var(after[..end].trim())?;
        pieces.push(Piece::Var {
            var,
            in_string: json && in_string,
        });
        let consumed = i + 2 + end + 2;
        offset += consumed;
        rest = &rest[consumed..];
    }
    Ok(pieces)
}

/// The characters of `s` escaped for the inside of a JSON string.
fn json_escape(s: &str) -> String {
    let quoted = serde_json::Value::String(s.to_string()).to_string();
    // Serialising a string always gives `"…"`.
    quoted[1..quoted.len() - 1].to_string()
}

/// Renders a body template with `{{ $labels.NAME }}`, `{{ $annotations.NAME }}`,
/// `{{ $value }}`, `{{ $alertname }}`, `{{ $fingerprint }}`, `{{ $status }}`
/// (a missing label or annotation renders empty), each value escaped for
/// `body_type`:
///
/// - [`BodyType::Json`]: values are JSON-escaped so untrusted label values
///   cannot break out of a string or inject fields: inside a string literal
///   the escaped characters are inserted; outside one, a quoted JSON string
///   (and `$value` as a number, `null` if not finite);
/// - [`BodyType::Form`]: values are percent-encoded (`&` → `%26`, `=` →
///   `%3D`, space → `+`), so they cannot add parameters;
/// - [`BodyType::Verbatim`]: any placeholder is
///   [`TemplateError::UnescapableContentType`].
pub fn render_body(
    template: &str,
    body_type: BodyType,
    alert: &AlertInfo,
) -> Result<String, TemplateError> {
    let json = body_type == BodyType::Json;
    let mut out = String::with_capacity(template.len() + 64);
    for piece in parse(template, json)? {
        let (var, in_string) = match piece {
            Piece::Text(t) => {
                out.push_str(t);
                continue;
            }
            Piece::Var { var, in_string } => (var, in_string),
        };
        let text = match var {
            Var::Label(n) => alert.labels.get(n).cloned().unwrap_or_default(),
            Var::Annotation(n) => alert.annotations.get(n).cloned().unwrap_or_default(),
            Var::Value => {
                if json && !in_string {
                    // A bare number in JSON; NaN and infinities are not JSON.
                    if alert.value.is_finite() {
                        out.push_str(&alert.value.to_string());
                    } else {
                        out.push_str("null");
                    }
                    continue;
                }
                alert.value.to_string()
            }
            Var::AlertName => alert.name().to_string(),
            Var::Fingerprint => alert.fingerprint(),
            Var::Status => match alert.status {
                Status::Firing => "firing".to_string(),
                Status::Resolved => "resolved".to_string(),
            },
        };
        match (body_type, in_string) {
            (BodyType::Json, true) => out.push_str(&json_escape(&text)),
            (BodyType::Json, false) => {
                out.push_str(&serde_json::Value::String(text).to_string());
            }
            (BodyType::Form, _) => {
                out.extend(url::form_urlencoded::byte_serialize(text.as_bytes()))
            }
            (BodyType::Verbatim, _) => {
                return Err(TemplateError::UnescapableContentType {
                    content_type: BodyType::Verbatim.default_content_type().to_string(),
                });
            }
        }
    }
    Ok(out)
}

/// Checks a body template at configuration load and returns how it will be
/// escaped: its body type ([`BodyType::resolve`] from the `Content-Type`
/// header, if configured), known placeholders, closed braces, and (for a
/// JSON body) that it renders to valid JSON, also with hostile label values.
pub fn check_template(
    template: &str,
    content_type: Option<&str>,
) -> Result<BodyType, TemplateError> {
    let body_type = BodyType::resolve(content_type, template)?;
    let pieces = parse(template, body_type == BodyType::Json)?;
    if body_type == BodyType::Json {
        let hostile = "\"},\\\n{\"x\":1";
        let labels: KeyValues = [("alertname".to_string(), "Check".to_string())].into();
        let mut probe = AlertInfo {
            rule: "check/Check".to_string(),
            labels,
            annotations: KeyValues::new(),
            status: Status::Firing,
            starts_at: 0,
            ends_at: None,
            value: 1.5,
            generator_url: String::new(),
            explanation: None,
        };
        // Every label and annotation the template names gets the hostile value.
        for piece in pieces {
            match piece {
                Piece::Var {
                    var: Var::Label(n), ..
                } => {
                    probe.labels.insert(n.to_string(), hostile.to_string());
                }
                Piece::Var {
                    var: Var::Annotation(n),
                    ..
                } => {
                    probe.annotations.insert(n.to_string(), hostile.to_string());
                }
                _ => {}
            }
        }
        let body = render_body(template, body_type, &probe)?;
        serde_json::from_str::<serde_json::Value>(&body).map_err(|e| {
            TemplateError::InvalidJson {
                message: e.to_string(),
            }
        })?;
    }
    Ok(body_type)
}

/// One planned HTTP call of an action, as stored in the outbox: everything
/// needed to send it, including the configured headers and the URL with any
/// credentials. Never shown: the audit log and the API get an
/// [`AuditedCall`], and `Debug` redacts the URL and omits header values.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
pub struct RemediationCall {
    /// The audit record's id, sent as the idempotency key.
    pub audit_id: String,
    /// The action's name.
    pub action: String,
    /// Where to call.
    pub url: String,
    /// HTTP method.
    pub method: String,
    /// Configured headers (with the `Content-Type` for the body type).
    pub headers: Vec<(String, String)>,
    /// The rendered body.
    pub body: String,
}

impl std::fmt::Debug for RemediationCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemediationCall")
            .field("audit_id", &self.audit_id)
            .field("action", &self.action)
            .field("url", &redact_url_str(&self.url))
            .field("method", &self.method)
            .field(
                "headers",
                &self.headers.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .field("body", &self.body)
            .finish()
    }
}

/// What the audit log, the API and the approval message show of a call: the
/// action, the method, the URL without user info or sensitive query values
/// ([`redact_url`]) and the body — never the configured headers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditedCall {
    /// The action's name.
    pub action: String,
    /// HTTP method.
    pub method: String,
    /// Where it calls, redacted (also when read from a record stored
    /// before redaction existed).
    #[serde(deserialize_with = "deserialize_redacted_url")]
    pub url: String,
    /// The rendered body.
    pub body: String,
}

fn deserialize_redacted_url<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    String::deserialize(d).map(|u| redact_url_str(&u))
}

impl From<&RemediationCall> for AuditedCall {
    fn from(c: &RemediationCall) -> Self {
        AuditedCall {
            action: c.action.clone(),
            method: c.method.clone(),
            url: redact_url_str(&c.url),
            body: c.body.clone(),
        }
    }
}

/// A request for a human decision, sent to Telegram.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRequest {
    /// The audit record awaiting the decision.
    pub audit_id: String,
    /// The action's name.
    pub action: String,
    /// Telegram HTML explaining what will be called and why (escaped).
    pub html: String,
    /// After this (Unix seconds) the request can no longer be approved.
    pub expires_at: i64,
}

/// Where a remediation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditStatus {
    /// Waiting for an approver.
    AwaitingApproval,
    /// Approved (by a person or by policy); the call is queued.
    Approved,
    /// An approver said no.
    Rejected,
    /// Nobody decided in time.
    Expired,
    /// Rendered and recorded, never sent.
    DryRun,
    /// The receiver acknowledged the call.
    Sent,
    /// The call failed for good.
    Failed,
    /// Not called: the action is cooling down for this alert.
    SkippedCooldown,
    /// Not called: the global rate limit was reached.
    SkippedRateLimit,
}

impl AuditStatus {
    /// Whether nothing more will happen to the remediation: not waiting
    /// for an approver, nor for its call.
    pub fn is_final(self) -> bool {
        !matches!(self, Self::AwaitingApproval | Self::Approved)
    }
}

/// The audit trail of one remediation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Deterministic id (see [`plan`]), also the idempotency key.
    pub id: String,
    /// The action's name.
    pub action: String,
    /// The alert's labels.
    pub alert: KeyValues,
    /// Why: the alert's summary annotation, or its name.
    pub reason: String,
    /// When it was planned (Unix seconds).
    pub requested_at: i64,
    /// Where it stands.
    pub status: AuditStatus,
    /// Who decided: `telegram:<id> (@name)` or `policy`.
    pub decided_by: Option<String>,
    /// When it was decided.
    pub decided_at: Option<i64>,
    /// The call (rendered, URL redacted, no headers), if one was made or
    /// would have been.
    pub request: Option<AuditedCall>,
    /// The outcome, e.g. `HTTP 200` or an error.
    pub result: Option<String>,
    /// When the call finished.
    pub finished_at: Option<i64>,
    /// Refused decisions, e.g. `telegram:999 not on the allowlist at <t>`.
    pub refusals: Vec<String>,
}

/// Cooldown per (action, alert fingerprint) and a global rate limit (at most
/// `max_calls` per `per_secs` over all actions; `max_calls` 0: no limit).
/// Serialisable so it survives restarts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Governor {
    /// Most calls in any `per_secs` window (0: unlimited).
    pub max_calls: u32,
    /// The rate limit's window, seconds.
    pub per_secs: i64,
    /// `action \0 fingerprint` → end of its cooldown (Unix seconds).
    #[serde(default)]
    cooldown_until: BTreeMap<String, i64>,
    /// Times of the calls within the window, oldest first.
    #[serde(default)]
    calls: Vec<i64>,
}

/// What the governor says about a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead.
    Allow,
    /// The action was called for this alert too recently.
    Cooldown {
        /// When the cooldown ends.
        until: i64,
    },
    /// Too many calls in the window.
    RateLimited {
        /// When a slot frees.
        until: i64,
    },
}

fn cooldown_key(action: &str, fingerprint: &str) -> String {
    format!("{action}\0{fingerprint}")
}

impl Governor {
    /// A governor allowing `max_calls` per `per_secs` (0: unlimited).
    pub fn new(max_calls: u32, per_secs: i64) -> Self {
        Self {
            max_calls,
            per_secs,
            ..Self::default()
        }
    }

    /// Whether `action` may be called for the alert `fingerprint` at `now`.
    pub fn check(&self, action: &Action, fingerprint: &str, now: i64) -> Verdict {
        if let Some(&until) = self
            .cooldown_until
            .get(&cooldown_key(&action.name, fingerprint))
            && until > now
        {
            return Verdict::Cooldown { until };
        }
        if self.max_calls > 0 {
            let window: Vec<i64> = self
                .calls
                .iter()
                .copied()
                .filter(|&t| t > now - self.per_secs)
                .collect();
            let max = self.max_calls as usize;
            if window.len() >= max {
                // The slot frees when enough of the oldest calls leave the window.
                return Verdict::RateLimited {
                    until: window[window.len() - max] + self.per_secs,
                };
            }
        }
        Verdict::Allow
    }

    /// Records a call of `action` for `fingerprint` at `now`, and forgets
    /// what no longer matters (ended cooldowns, calls out of the window).
    pub fn record(&mut self, action: &Action, fingerprint: &str, now: i64) {
        self.cooldown_until.retain(|_, until| *until > now);
        if action.cooldown_secs > 0 {
            self.cooldown_until.insert(
                cooldown_key(&action.name, fingerprint),
                now.saturating_add(action.cooldown_secs),
            );
        }
        let per = self.per_secs;
        self.calls.retain(|&t| t > now - per);
        if self.max_calls > 0 {
            let at = self.calls.partition_point(|&t| t <= now);
            self.calls.insert(at, now);
        }
    }
}

/// One action's plan for an alert transition.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    /// The audit record to store.
    pub record: AuditRecord,
    /// What to put in the outbox (a call, or an approval request), if anything.
    pub enqueue: Option<Delivery>,
}

/// The deterministic audit id of an action for an alert transition: a hex
/// hash of (action, fingerprint, starts_at, status), so the same transition
/// planned again after a crash gets the same id.
pub fn audit_id(action: &str, fingerprint: &str, starts_at: i64, status: Status) -> String {
    let mut h = Sha256::new();
    let status = match status {
        Status::Firing => "firing",
        Status::Resolved => "resolved",
    };
    // NUL separators keep ("ab","c") and ("a","bc") apart.
    for part in [action, fingerprint, &starts_at.to_string(), status] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    hex::encode(&h.finalize()[..16])
}

fn reason(alert: &AlertInfo) -> String {
    alert
        .annotations
        .get("summary")
        .filter(|s| !s.is_empty())
        .cloned()
        .unwrap_or_else(|| alert.name().to_string())
}

fn approval_html(record: &AuditRecord, call: &AuditedCall, expires_at: i64) -> String {
    use crate::telegram::{escape, line, message};
    let labels = record
        .alert
        .iter()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut body: String = call.body.chars().take(APPROVAL_BODY_CHARS).collect();
    if body.len() < call.body.len() {
        body.push('…');
    }
    let lines = vec![
        format!(
            "🛠 <b>Remediation awaits approval:</b> {}",
            escape(&call.action)
        ),
        line("Why:", &record.reason),
        line("Alert:", &labels),
        line("Will call:", &format!("{} {}", call.method, call.url)),
        line("Expires:", &rfc3339(expires_at)),
        line("Audit id:", &record.id),
        format!("<pre>{}</pre>", escape(&body)),
    ];
    message(&lines)
}

/// The call `action` makes with `body` under the audit id `id`: its URL,
/// method and headers, with a `Content-Type` for its body type unless one
/// is configured.
fn outgoing(action: &Action, id: String, body: String) -> Result<RemediationCall, TemplateError> {
    let mut headers = action.headers.clone();
    if action.content_type().is_none() {
        headers.push((
            "Content-Type".to_string(),
            action.body_type()?.default_content_type().to_string(),
        ));
    }
    Ok(RemediationCall {
        audit_id: id,
        action: action.name.clone(),
        url: action.url.to_string(),
        method: action.method.clone(),
        headers,
        body,
    })
}

/// What to do for an alert transition: the actions bound to it (all
/// matchers match; firing, or resolved for actions with `on_resolved`),
/// each turned into a planned [`AuditRecord`] and what to enqueue.
///
/// - governor says cooldown / rate limited → `SkippedCooldown` /
///   `SkippedRateLimit`, nothing enqueued;
/// - dry run → `DryRun` with the rendered request, nothing enqueued, the
///   governor not consumed;
/// - approval required → `AwaitingApproval` and an [`ApprovalRequest`]
///   expiring at `now + expires_secs` (the governor is consumed on approval);
/// - otherwise → `Approved` by `policy`, the call enqueued, the governor consumed.
///
/// Templates are all rendered before the governor changes, so an error leaves it untouched.
pub fn plan(
    actions: &[Action],
    governor: &mut Governor,
    alert: &AlertInfo,
    now: i64,
) -> Result<Vec<Planned>, TemplateError> {
    let fingerprint = alert.fingerprint();
    let bound: Vec<&Action> = actions
        .iter()
        .filter(|a| all_match(&a.matchers, &alert.labels))
        .filter(|a| alert.status == Status::Firing || a.on_resolved)
        .collect();
    let mut calls = Vec::with_capacity(bound.len());
    for a in &bound {
        let id = audit_id(&a.name, &fingerprint, alert.starts_at, alert.status);
        let body = render_body(&a.body_template, a.body_type()?, alert)?;
        calls.push(outgoing(a, id, body)?);
    }
    let mut out = Vec::with_capacity(bound.len());
    for (a, call) in bound.into_iter().zip(calls) {
        let mut record = AuditRecord {
            id: call.audit_id.clone(),
            action: a.name.clone(),
            alert: alert.labels.clone(),
            reason: reason(alert),
            requested_at: now,
            status: AuditStatus::Approved,
            decided_by: None,
            decided_at: None,
            request: Some(AuditedCall::from(&call)),
            result: None,
            finished_at: None,
            refusals: Vec::new(),
        };
        let enqueue = match governor.check(a, &fingerprint, now) {
            Verdict::Cooldown { until } => {
                record.status = AuditStatus::SkippedCooldown;
                record.result = Some(format!("cooldown until {}", rfc3339(until)));
                None
            }
            Verdict::RateLimited { until } => {
                record.status = AuditStatus::SkippedRateLimit;
                record.result = Some(format!("rate limited until {}", rfc3339(until)));
                None
            }
            Verdict::Allow if a.dry_run => {
                record.status = AuditStatus::DryRun;
                record.decided_by = Some("policy".to_string());
                record.decided_at = Some(now);
                None
            }
            Verdict::Allow => match &a.approval {
                Some(p) => {
                    record.status = AuditStatus::AwaitingApproval;
                    let expires_at = now.saturating_add(p.expires_secs);
                    Some(Delivery::Approval(ApprovalRequest {
                        audit_id: record.id.clone(),
                        action: a.name.clone(),
                        html: approval_html(&record, &AuditedCall::from(&call), expires_at),
                        expires_at,
                    }))
                }
                None => {
                    record.decided_by = Some("policy".to_string());
                    record.decided_at = Some(now);
                    governor.record(a, &fingerprint, now);
                    Some(Delivery::Remediate(call))
                }
            },
        };
        out.push(Planned { record, enqueue });
    }
    Ok(out)
}

/// A decision on an approval request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Make the call.
    Approve,
    /// Do not.
    Reject,
}

/// Why a decision was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The user is not on the action's approvers list.
    #[error("you are not allowed to decide on this action")]
    NotAllowed,
    /// The request expired before the decision.
    #[error("the approval request has expired")]
    Expired,
    /// Someone (or something) decided already.
    #[error("already decided: {0:?}")]
    AlreadyDecided(AuditStatus),
    /// The record does not belong to the action or has no request.
    #[error("unknown remediation request")]
    Unknown,
    /// The action's method or URL changed (a configuration reload) since the
    /// request was shown to the approvers: what they saw is not what would run.
    #[error("the action changed since this request was made; not called")]
    Changed,
}

fn who(user_id: u64, username: Option<&str>) -> String {
    match username {
        Some(n) if !n.is_empty() => format!("telegram:{user_id} (@{n})"),
        _ => format!("telegram:{user_id}"),
    }
}

/// A Telegram user's decision on an awaiting record: only users on the
/// action's approvers list (other users' attempts are appended to
/// `record.refusals`); not at or after expiry (the status becomes
/// `Expired`); only once. On approval the governor is checked again: if it
/// now says cooldown or rate limited, the status becomes `SkippedCooldown` /
/// `SkippedRateLimit` and nothing is returned; otherwise the call to enqueue.
pub fn decide(
    record: &mut AuditRecord,
    action: &Action,
    governor: &mut Governor,
    user_id: u64,
    username: Option<&str>,
    decision: Decision,
    now: i64,
) -> Result<Option<Delivery>, Refusal> {
    if record.action != action.name {
        return Err(Refusal::Unknown);
    }
    let user = who(user_id, username);
    let policy = match &action.approval {
        Some(p) if p.approvers.contains(&user_id) => p,
        _ => {
            record
                .refusals
                .push(format!("{user} not on the allowlist at {}", rfc3339(now)));
            return Err(Refusal::NotAllowed);
        }
    };
    match record.status {
        AuditStatus::AwaitingApproval => {}
        AuditStatus::Expired => return Err(Refusal::Expired),
        s => return Err(Refusal::AlreadyDecided(s)),
    }
    if expire(
        record,
        record.requested_at.saturating_add(policy.expires_secs),
        now,
    ) {
        return Err(Refusal::Expired);
    }
    let Some(shown) = &record.request else {
        return Err(Refusal::Unknown);
    };
    // The call is rebuilt from the configuration (the record keeps no
    // headers); it must still be the one the approvers were shown.
    if shown.method != action.method || shown.url != redact_url(&action.url) {
        return Err(Refusal::Changed);
    }
    let Ok(call) = outgoing(action, record.id.clone(), shown.body.clone()) else {
        return Err(Refusal::Changed);
    };
    record.decided_by = Some(user);
    record.decided_at = Some(now);
    if decision == Decision::Reject {
        record.status = AuditStatus::Rejected;
        return Ok(None);
    }
    let fingerprint = crate::payload::fingerprint(&record.alert);
    match governor.check(action, &fingerprint, now) {
        Verdict::Cooldown { until } => {
            record.status = AuditStatus::SkippedCooldown;
            record.result = Some(format!("cooldown until {}", rfc3339(until)));
            Ok(None)
        }
        Verdict::RateLimited { until } => {
            record.status = AuditStatus::SkippedRateLimit;
            record.result = Some(format!("rate limited until {}", rfc3339(until)));
            Ok(None)
        }
        Verdict::Allow => {
            record.status = AuditStatus::Approved;
            governor.record(action, &fingerprint, now);
            Ok(Some(Delivery::Remediate(call)))
        }
    }
}

/// Marks an awaiting record whose approval expired at `expires_at`
/// (status → `Expired`, `decided_at` = now). Returns true if it changed the record.
pub fn expire(record: &mut AuditRecord, expires_at: i64, now: i64) -> bool {
    if record.status != AuditStatus::AwaitingApproval || now < expires_at {
        return false;
    }
    record.status = AuditStatus::Expired;
    record.decided_at = Some(now);
    true
}

/// The delay a `Retry-After` header asks for: seconds, or an HTTP date;
/// clamped (see [`crate::retry::parse_retry_after`]).
fn retry_after(value: &str, now: i64) -> Option<Duration> {
    crate::retry::parse_retry_after(value, now)
}

/// Reads at most `max` bytes of a response body (what a failed call's error
/// quotes), however much the receiver sends.
async fn read_prefix(mut resp: reqwest::Response, max: usize) -> String {
    let mut buf = Vec::new();
    while buf.len() < max {
        match resp.chunk().await {
            Ok(Some(chunk)) => {
                let take = chunk.len().min(max - buf.len());
                buf.extend_from_slice(&chunk[..take]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// Performs a call, signed with scheme `v1` (see [`crate::signature`]) over
/// the method, the URL's path and query, `now`, the audit id and the body:
/// [`SIGNATURE_HEADER`], [`TIMESTAMP_HEADER`] and
/// [`IDEMPOTENCY_HEADER`]`: <audit_id>`, then the configured headers (which
/// cannot override those three), the method, and the client's timeout. The
/// status is classified with [`classify_status`] (with `Retry-After`).
/// Returns the HTTP status on success. Errors name the URL only redacted
/// ([`redact_url`]) and quote a bounded excerpt of the answer.
pub async fn call(
    client: &reqwest::Client,
    c: &RemediationCall,
    secret: &[u8],
    now: i64,
) -> Result<u16, SendError> {
    let method = reqwest::Method::from_bytes(c.method.as_bytes()).map_err(|_| {
        SendError::permanent(format!(
            "remediation {}: invalid HTTP method '{}'",
            c.action,
            excerpt(&c.method, EXCERPT_CHARS)
        ))
    })?;
    let url = url::Url::parse(&c.url).map_err(|e| {
        SendError::permanent(format!(
            "remediation {}: invalid URL '{}': {e}",
            c.action,
            redact_url_str(&c.url)
        ))
    })?;
    let shown = redact_url(&url);
    // What goes on the request line, and so what the receiver verifies.
    let path = url[url::Position::BeforePath..url::Position::AfterQuery].to_string();
    let signature = sign(
        secret,
        &SignedRequest {
            method: method.as_str(),
            path: &path,
            timestamp: now,
            idempotency_key: &c.audit_id,
            body: c.body.as_bytes(),
        },
    );
    let reserved = [SIGNATURE_HEADER, TIMESTAMP_HEADER, IDEMPOTENCY_HEADER];
    let mut req = client.request(method, url);
    let mut has_content_type = false;
    for (k, v) in &c.headers {
        if reserved.iter().any(|r| r.eq_ignore_ascii_case(k)) {
            continue;
        }
        has_content_type |= k.eq_ignore_ascii_case("content-type");
        req = req.header(k.as_str(), v.as_str());
    }
    if !has_content_type {
        // Calls queued before plans added the Content-Type themselves.
        let ct = if is_json(&c.body) {
            BodyType::Json
        } else {
            BodyType::Verbatim
        };
        req = req.header("Content-Type", ct.default_content_type());
    }
    let resp = req
        .header(SIGNATURE_HEADER, signature)
        .header(TIMESTAMP_HEADER, now.to_string())
        .header(IDEMPOTENCY_HEADER, c.audit_id.as_str())
        .body(c.body.clone())
        .send()
        .await
        .map_err(|e| {
            // reqwest's errors carry the full URL; ours names it redacted.
            let e = e.without_url();
            let message = format!("remediation {} to {shown}: {e}", c.action);
            // Connection failures and timeouts may pass; a malformed request will not.
            if e.is_builder() {
                SendError::permanent(message)
            } else {
                SendError::retry(message)
            }
        })?;
    let status = resp.status().as_u16();
    let after = resp
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| retry_after(v, now));
    let action = classify_status(status, after);
    // 409: the receiver already has this idempotency key — a retry after a
    // lost answer (or a crash) of a call that did arrive. Done, not failed.
    if action == RetryAction::Successful || status == 409 {
        return Ok(status);
    }
    let text = read_prefix(resp, ERROR_BODY_BYTES).await;
    let mut message = format!("remediation {} to {shown}: HTTP {status}", c.action);
    let snippet = excerpt(text.trim(), ERROR_BODY_CHARS);
    if !snippet.is_empty() {
        let _ = write!(message, ": {snippet}");
    }
    Err(SendError { action, message })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(labels: &[(&str, &str)], status: Status) -> AlertInfo {
        AlertInfo {
            rule: "mes/MesQueueBacklogSoon".to_string(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            annotations: [("summary".to_string(), "Queue <fills> soon".to_string())].into(),
            status,
            starts_at: 1_700_000_000,
            ends_at: None,
            value: 3600.5,
            generator_url: "http://prognos/api".to_string(),
            explanation: None,
        }
    }

    fn firing() -> AlertInfo {
        alert(
            &[
                ("alertname", "MesQueueBacklogSoon"),
                ("service", "mes-api"),
                ("instance", "node-1"),
            ],
            Status::Firing,
        )
    }

    fn action(name: &str) -> Action {
        Action {
            name: name.to_string(),
            url: url::Url::parse("http://127.0.0.1:9/hook").unwrap(),
            method: "POST".to_string(),
            body_template:
                r#"{"action":"restart","host":"{{ $labels.instance }}","value":{{ $value }}}"#
                    .to_string(),
            headers: vec![],
            matchers: crate::matcher::parse_matchers(r#"service="mes-api""#).unwrap(),
            cooldown_secs: 600,
            approval: None,
            dry_run: false,
            on_resolved: false,
        }
    }

    const FORM: &str = "application/x-www-form-urlencoded";

    #[test]
    fn templates_render_every_placeholder() {
        let a = firing();
        let t = "\"{{ $alertname }} on {{$labels.instance}} is {{ $status }} ({{ $value }}), {{ $annotations.summary }} [{{ $fingerprint }}] {{ $labels.missing }}.\"";
        let out = render_body(t, BodyType::Json, &a).unwrap();
        assert_eq!(
            out,
            format!(
                "\"MesQueueBacklogSoon on node-1 is firing (3600.5), Queue <fills> soon [{}] .\"",
                a.fingerprint()
            )
        );
    }

    #[test]
    fn hostile_values_cannot_break_out_of_json() {
        let mut a = firing();
        for hostile in [
            "a\"b",
            "back\\slash",
            "new\nline",
            r#"x","admin":true,"y":""#,
        ] {
            a.labels.insert("instance".to_string(), hostile.to_string());
            a.annotations
                .insert("summary".to_string(), hostile.to_string());
            let t = r#"{"host":"{{ $labels.instance }}","bare":{{ $annotations.summary }},"v":{{ $value }}}"#;
            let body = render_body(t, BodyType::Json, &a).unwrap();
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            let obj = v.as_object().unwrap();
            assert_eq!(obj.len(), 3, "no injected fields: {body}");
            assert_eq!(v["host"], hostile);
            assert_eq!(v["bare"], hostile);
            assert_eq!(v["v"], 3600.5);
        }
        // Verbatim (e.g. text/plain) bodies take no values at all.
        a.labels.insert("instance".to_string(), "a\"b".to_string());
        assert!(matches!(
            render_body("host={{ $labels.instance }}", BodyType::Verbatim, &a),
            Err(TemplateError::UnescapableContentType { .. })
        ));
    }

    #[test]
    fn non_finite_values_are_null_outside_strings() {
        let mut a = firing();
        a.value = f64::NAN;
        let body = render_body(
            r#"{"v":{{ $value }},"s":"{{ $value }}"}"#,
            BodyType::Json,
            &a,
        )
        .unwrap();
        assert_eq!(body, r#"{"v":null,"s":"NaN"}"#);
    }

    #[test]
    fn unknown_placeholders_and_bad_json_are_named() {
        let e = render_body(
            "x {{ $labels.a }} {{ .Labels.b }}",
            BodyType::Form,
            &firing(),
        )
        .unwrap_err();
        assert_eq!(
            e,
            TemplateError::UnknownPlaceholder {
                placeholder: ".Labels.b".to_string()
            }
        );
        assert!(e.to_string().contains(".Labels.b"), "{e}");
        let e = check_template("{{ $valu }}", Some(FORM)).unwrap_err();
        assert!(e.to_string().contains("$valu"), "{e}");
        assert_eq!(
            check_template("a {{ $value", Some(FORM)).unwrap_err(),
            TemplateError::Unclosed { at: 2 }
        );
        assert!(matches!(
            check_template(r#"{"a": {{ $value }}"#, None),
            Err(TemplateError::InvalidJson { .. })
        ));
        assert_eq!(
            check_template(r#"{"a":"{{ $labels.x }}","b":{{ $labels.y }}}"#, None),
            Ok(BodyType::Json)
        );
        assert_eq!(
            check_template("plain {{ $status }}", None),
            Err(TemplateError::NoContentType)
        );
        assert_eq!(
            check_template("plain {{ $status }}", Some(FORM)),
            Ok(BodyType::Form)
        );
    }

    #[test]
    fn cooldown_is_per_action_and_alert() {
        let a = action("restart");
        let mut g = Governor::new(0, 60);
        assert_eq!(g.check(&a, "fp1", 1000), Verdict::Allow);
        g.record(&a, "fp1", 1000);
        assert_eq!(g.check(&a, "fp1", 1599), Verdict::Cooldown { until: 1600 });
        assert_eq!(g.check(&a, "fp2", 1599), Verdict::Allow);
        assert_eq!(g.check(&action("other"), "fp1", 1599), Verdict::Allow);
        assert_eq!(g.check(&a, "fp1", 1600), Verdict::Allow);
    }

    #[test]
    fn rate_limit_counts_all_actions_in_a_sliding_window() {
        let mut a = action("restart");
        a.cooldown_secs = 0;
        let mut g = Governor::new(2, 60);
        g.record(&a, "fp1", 100);
        g.record(&action("other"), "fp2", 130);
        assert_eq!(g.check(&a, "fp3", 140), Verdict::RateLimited { until: 160 });
        assert_eq!(g.check(&a, "fp3", 159), Verdict::RateLimited { until: 160 });
        assert_eq!(g.check(&a, "fp3", 160), Verdict::Allow);
        g.record(&a, "fp3", 160);
        assert_eq!(g.check(&a, "fp4", 170), Verdict::RateLimited { until: 190 });
        // It persists.
        let json = serde_json::to_string(&g).unwrap();
        assert_eq!(serde_json::from_str::<Governor>(&json).unwrap(), g);
    }

    #[test]
    fn plan_calls_by_policy_and_skips_in_cooldown() {
        let acts = [action("restart")];
        let mut g = Governor::new(10, 3600);
        let a = firing();
        let p = plan(&acts, &mut g, &a, 2000).unwrap();
        assert_eq!(p.len(), 1);
        let r = &p[0].record;
        assert_eq!(r.status, AuditStatus::Approved);
        assert_eq!(r.decided_by.as_deref(), Some("policy"));
        assert_eq!(r.reason, "Queue <fills> soon");
        let Some(Delivery::Remediate(call)) = &p[0].enqueue else {
            panic!("expected a call: {:?}", p[0].enqueue)
        };
        assert_eq!(call.audit_id, r.id);
        assert_eq!(
            call.body,
            r#"{"action":"restart","host":"node-1","value":3600.5}"#
        );
        assert_eq!(call.url, "http://127.0.0.1:9/hook");
        // The same transition again within the cooldown: skipped, same id.
        let p2 = plan(&acts, &mut g, &a, 2100).unwrap();
        assert_eq!(p2[0].record.status, AuditStatus::SkippedCooldown);
        assert_eq!(p2[0].record.id, r.id, "ids are deterministic");
        assert!(p2[0].enqueue.is_none());
    }

    #[test]
    fn plan_ids_are_deterministic_and_distinguish_transitions() {
        let acts = [action("restart")];
        let a = firing();
        let id1 = plan(&acts, &mut Governor::default(), &a, 1).unwrap()[0]
            .record
            .id
            .clone();
        let id2 = plan(&acts, &mut Governor::default(), &a, 999).unwrap()[0]
            .record
            .id
            .clone();
        assert_eq!(id1, id2);
        assert_eq!(id1.len(), 32);
        let mut later = a.clone();
        later.starts_at += 1;
        assert_ne!(
            plan(&acts, &mut Governor::default(), &later, 1).unwrap()[0]
                .record
                .id,
            id1
        );
        assert_ne!(
            audit_id("restart", &a.fingerprint(), a.starts_at, Status::Resolved),
            id1
        );
    }

    #[test]
    fn plan_binds_by_matchers_and_firing_unless_on_resolved() {
        let mut on_resolved = action("scale-down");
        on_resolved.on_resolved = true;
        let acts = [action("restart"), on_resolved];
        let mut g = Governor::default();
        let other = alert(&[("alertname", "X"), ("service", "shop")], Status::Firing);
        assert!(plan(&acts, &mut g, &other, 0).unwrap().is_empty());
        let mut resolved = firing();
        resolved.status = Status::Resolved;
        let p = plan(&acts, &mut g, &resolved, 0).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].record.action, "scale-down");
    }

    #[test]
    fn dry_run_renders_but_neither_enqueues_nor_consumes() {
        let mut a = action("restart");
        a.dry_run = true;
        let mut g = Governor::new(1, 60);
        let p = plan(&[a], &mut g, &firing(), 100).unwrap();
        assert_eq!(p[0].record.status, AuditStatus::DryRun);
        assert!(
            p[0].record
                .request
                .as_ref()
                .unwrap()
                .body
                .contains("node-1")
        );
        assert!(p[0].enqueue.is_none());
        assert_eq!(g, Governor::new(1, 60), "governor not consumed");
    }

    #[test]
    fn template_errors_leave_the_governor_alone() {
        let good = action("restart");
        let mut bad = action("bad");
        bad.body_template = "{{ $nope }}".to_string();
        let mut g = Governor::new(5, 60);
        assert!(plan(&[good, bad], &mut g, &firing(), 1).is_err());
        assert_eq!(g, Governor::new(5, 60));
    }

    fn approval_action() -> Action {
        let mut a = action("restart");
        a.approval = Some(ApprovalPolicy {
            expires_secs: 900,
            approvers: vec![42],
        });
        a
    }

    fn awaiting(g: &mut Governor) -> (AuditRecord, ApprovalRequest) {
        let mut p = plan(&[approval_action()], g, &firing(), 1000).unwrap();
        let p = p.remove(0);
        let Some(Delivery::Approval(req)) = p.enqueue else {
            panic!("expected an approval request")
        };
        (p.record, req)
    }

    #[test]
    fn approval_request_explains_and_escapes() {
        let mut g = Governor::new(10, 60);
        let (r, req) = awaiting(&mut g);
        assert_eq!(r.status, AuditStatus::AwaitingApproval);
        assert_eq!(req.expires_at, 1900);
        assert_eq!(req.audit_id, r.id);
        assert!(
            req.html.contains("Queue &lt;fills&gt; soon"),
            "{}",
            req.html
        );
        assert!(req.html.contains("POST http://127.0.0.1:9/hook"));
        assert!(req.html.contains("&quot;host&quot;"));
        assert_eq!(g, Governor::new(10, 60), "consumed only on approval");
    }

    #[test]
    fn an_allowlisted_approval_enqueues_the_call() {
        let mut g = Governor::new(10, 60);
        let (mut r, _) = awaiting(&mut g);
        let a = approval_action();
        let d = decide(&mut r, &a, &mut g, 42, Some("ops"), Decision::Approve, 1100).unwrap();
        let Some(Delivery::Remediate(call)) = d else {
            panic!("expected a call")
        };
        assert_eq!(call.audit_id, r.id);
        assert_eq!(r.status, AuditStatus::Approved);
        assert_eq!(r.decided_by.as_deref(), Some("telegram:42 (@ops)"));
        assert_eq!(r.decided_at, Some(1100));
        // Governor consumed: the cooldown now holds.
        assert!(matches!(
            g.check(&a, &firing().fingerprint(), 1101),
            Verdict::Cooldown { .. }
        ));
        // Only once.
        assert_eq!(
            decide(&mut r, &a, &mut g, 42, None, Decision::Reject, 1102),
            Err(Refusal::AlreadyDecided(AuditStatus::Approved))
        );
    }

    #[test]
    fn a_stranger_is_refused_and_recorded() {
        let mut g = Governor::new(10, 60);
        let (mut r, _) = awaiting(&mut g);
        let a = approval_action();
        assert_eq!(
            decide(
                &mut r,
                &a,
                &mut g,
                999,
                Some("mallory"),
                Decision::Approve,
                1100
            ),
            Err(Refusal::NotAllowed)
        );
        assert_eq!(r.status, AuditStatus::AwaitingApproval);
        assert_eq!(r.refusals.len(), 1);
        assert!(
            r.refusals[0].starts_with("telegram:999 (@mallory) not on the allowlist at 1970-"),
            "{:?}",
            r.refusals
        );
    }

    #[test]
    fn rejection_and_expiry() {
        let mut g = Governor::new(10, 60);
        let a = approval_action();
        let (mut r, req) = awaiting(&mut g);
        assert_eq!(
            decide(&mut r, &a, &mut g, 42, None, Decision::Reject, 1200),
            Ok(None)
        );
        assert_eq!(r.status, AuditStatus::Rejected);
        assert_eq!(r.decided_by.as_deref(), Some("telegram:42"));

        let (mut r, _) = awaiting(&mut g);
        assert_eq!(
            decide(
                &mut r,
                &a,
                &mut g,
                42,
                None,
                Decision::Approve,
                req.expires_at
            ),
            Err(Refusal::Expired)
        );
        assert_eq!(r.status, AuditStatus::Expired);
        assert_eq!(r.decided_at, Some(req.expires_at));
        assert_eq!(
            decide(
                &mut r,
                &a,
                &mut g,
                42,
                None,
                Decision::Approve,
                req.expires_at + 1
            ),
            Err(Refusal::Expired)
        );

        let (mut r, _) = awaiting(&mut g);
        assert!(!expire(&mut r, req.expires_at, req.expires_at - 1));
        assert!(expire(&mut r, req.expires_at, req.expires_at + 5));
        assert_eq!(r.status, AuditStatus::Expired);
        assert!(!expire(&mut r, req.expires_at, req.expires_at + 6), "once");
    }

    #[test]
    fn approval_rechecks_the_governor() {
        let a = approval_action();
        let mut g = Governor::new(10, 60);
        let (mut r, _) = awaiting(&mut g);
        // Meanwhile the action was called for this alert (another approval).
        g.record(&a, &firing().fingerprint(), 1050);
        assert_eq!(
            decide(&mut r, &a, &mut g, 42, None, Decision::Approve, 1100),
            Ok(None)
        );
        assert_eq!(r.status, AuditStatus::SkippedCooldown);
    }

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        assert_eq!(retry_after("7", 0), Some(Duration::from_secs(7)));
        assert_eq!(
            retry_after("Tue, 14 Nov 2023 22:13:30 GMT", 1_700_000_000),
            Some(Duration::from_secs(10))
        );
        assert_eq!(retry_after("soon", 0), None);
    }

    #[test]
    fn retry_after_is_clamped() {
        let max = Some(crate::retry::MAX_RETRY_AFTER);
        assert_eq!(retry_after("18446744073709551615", 0), max);
        assert_eq!(retry_after("99999999999", 0), max);
    }

    #[test]
    fn form_bodies_percent_encode_so_a_label_cannot_add_a_parameter() {
        let mut a = firing();
        a.labels
            .insert("service".to_string(), "shop&action=drop".to_string());
        let t = "service={{ $labels.service }}&action=scale";
        assert_eq!(check_template(t, Some(FORM)), Ok(BodyType::Form));
        let body = render_body(t, BodyType::Form, &a).unwrap();
        assert_eq!(body, "service=shop%26action%3Ddrop&action=scale");
        let pairs: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes())
            .into_owned()
            .collect();
        assert_eq!(
            pairs,
            [
                ("service".to_string(), "shop&action=drop".to_string()),
                ("action".to_string(), "scale".to_string()),
            ]
        );
        // Through a plan, with the header as configured (any case).
        let mut act = action("scale");
        act.body_template = t.to_string();
        act.headers = vec![("content-type".to_string(), FORM.to_string())];
        act.matchers = crate::matcher::parse_matchers(r#"service=~".+""#).unwrap();
        let p = plan(&[act], &mut Governor::default(), &a, 0).unwrap();
        let Some(Delivery::Remediate(call)) = &p[0].enqueue else {
            panic!("expected a call")
        };
        assert_eq!(call.body, body);
        assert_eq!(
            call.headers,
            [("content-type".to_string(), FORM.to_string())]
        );
    }

    #[test]
    fn content_types_decide_the_escaping_and_unknown_ones_take_no_placeholders() {
        let with = "service={{ $labels.service }}";
        let cases: &[(Option<&str>, &str, Result<BodyType, ()>)] = &[
            (
                Some("application/json; charset=utf-8"),
                "{{ $value }}",
                Ok(BodyType::Json),
            ),
            (
                Some("Application/Merge-Patch+JSON"),
                "[]",
                Ok(BodyType::Json),
            ),
            (
                Some("application/x-www-form-urlencoded; charset=utf-8"),
                with,
                Ok(BodyType::Form),
            ),
            (Some("text/plain"), with, Err(())),
            (Some("application/xml"), "<a>{{ $value }}</a>", Err(())),
            (
                Some("application/xml"),
                "<restart/>",
                Ok(BodyType::Verbatim),
            ),
            (Some("text/plain"), "restart", Ok(BodyType::Verbatim)),
            (None, with, Err(())),
            (None, "", Ok(BodyType::Verbatim)),
            (None, r#"{"a":{{ $value }}}"#, Ok(BodyType::Json)),
        ];
        for (ct, template, want) in cases {
            let got = check_template(template, *ct);
            assert_eq!(
                got.clone().map_err(|_| ()),
                *want,
                "{ct:?} {template:?}: {got:?}"
            );
        }
        let e = check_template(with, Some("text/plain")).unwrap_err();
        assert!(
            e.to_string().contains("'text/plain'")
                && e.to_string().contains("application/x-www-form-urlencoded"),
            "{e}"
        );
        // Without a configured Content-Type, the call gets the one of its type.
        let p = plan(&[action("restart")], &mut Governor::default(), &firing(), 0).unwrap();
        let Some(Delivery::Remediate(call)) = &p[0].enqueue else {
            panic!("expected a call")
        };
        assert_eq!(
            call.headers,
            [("Content-Type".to_string(), "application/json".to_string())]
        );
    }

    const CANARIES: [&str; 5] = [
        "CANARY-BEARER",
        "CANARY-APIKEY",
        "CANARY-PASS",
        "CANARY-QUERYKEY",
        "CANARY-USER",
    ];

    fn secret_action() -> Action {
        let mut a = action("keyed-action");
        a.url = url::Url::parse(
            "http://CANARY-USER:CANARY-PASS@127.0.0.1:9/hook?api_key=CANARY-QUERYKEY&team=ops",
        )
        .unwrap();
        a.headers = vec![
            (
                "Authorization".to_string(),
                "Bearer CANARY-BEARER".to_string(),
            ),
            ("X-Api-Key".to_string(), "CANARY-APIKEY".to_string()),
        ];
        a
    }

    fn assert_no_canary(what: &str, text: &str) {
        for c in CANARIES {
            assert!(!text.contains(c), "{c} in {what}: {text}");
        }
    }

    #[test]
    fn the_audit_record_and_approval_show_no_secret_but_the_outbox_call_has_them() {
        let mut g = Governor::new(10, 60);
        let p = plan(&[secret_action()], &mut g, &firing(), 1000).unwrap();
        let record = &p[0].record;
        let json = serde_json::to_string(record).unwrap();
        assert_no_canary("the audit JSON", &json);
        assert_no_canary("the plan's Debug", &format!("{p:?}"));
        let shown = record.request.as_ref().unwrap();
        assert_eq!(
            shown.url,
            "http://REDACTED@127.0.0.1:9/hook?api_key=REDACTED&team=ops"
        );
        assert!(
            json.contains(r#""method":"POST""#) && json.contains("keyed-action"),
            "{json}"
        );
        assert!(
            !json.contains("headers") && !json.contains("Authorization"),
            "{json}"
        );
        // What is sent keeps what it needs.
        let Some(Delivery::Remediate(call)) = &p[0].enqueue else {
            panic!("expected a call")
        };
        assert!(call.url.contains("CANARY-PASS"));
        assert!(
            call.headers
                .iter()
                .any(|(_, v)| v == "Bearer CANARY-BEARER")
        );

        let mut approval = secret_action();
        approval.approval = Some(ApprovalPolicy {
            expires_secs: 900,
            approvers: vec![42],
        });
        let p = plan(&[approval], &mut Governor::new(10, 60), &firing(), 1000).unwrap();
        let Some(Delivery::Approval(req)) = &p[0].enqueue else {
            panic!("expected an approval request")
        };
        assert_no_canary("the approval message", &req.html);
        assert!(
            req.html.contains("http://REDACTED@127.0.0.1:9/hook"),
            "{}",
            req.html
        );
    }

    #[test]
    fn records_stored_before_redaction_are_shown_redacted() {
        let old = r#"{"audit_id":"x","action":"a","url":"http://u:CANARY-PASS@h/p?token=CANARY-QUERYKEY","method":"POST","headers":[["Authorization","Bearer CANARY-BEARER"]],"body":"{}"}"#;
        let shown: AuditedCall = serde_json::from_str(old).unwrap();
        assert_no_canary("an old record", &serde_json::to_string(&shown).unwrap());
        assert_eq!(shown.url, "http://REDACTED@h/p?token=REDACTED");
    }

    #[test]
    fn an_approval_rebuilds_the_call_from_the_configuration() {
        let mut a = secret_action();
        a.approval = Some(ApprovalPolicy {
            expires_secs: 900,
            approvers: vec![42],
        });
        let mut g = Governor::new(10, 60);
        let mut r = plan(std::slice::from_ref(&a), &mut g, &firing(), 1000).unwrap()[0]
            .record
            .clone();
        // The URL changed since the approvers saw it: refused.
        let mut moved = a.clone();
        moved.url = url::Url::parse("http://127.0.0.1:9/other").unwrap();
        assert_eq!(
            decide(&mut r, &moved, &mut g, 42, None, Decision::Approve, 1100),
            Err(Refusal::Changed)
        );
        assert_eq!(r.status, AuditStatus::AwaitingApproval);
        // A rotated header is fine: the call carries the current one.
        a.headers[0].1 = "Bearer CANARY-BEARER-2".to_string();
        let Ok(Some(Delivery::Remediate(call))) =
            decide(&mut r, &a, &mut g, 42, None, Decision::Approve, 1100)
        else {
            panic!("expected a call")
        };
        assert_eq!(call.audit_id, r.id);
        assert_eq!(call.url, a.url.to_string());
        assert!(
            call.headers
                .iter()
                .any(|(_, v)| v == "Bearer CANARY-BEARER-2")
        );
        assert_eq!(call.body, r.request.as_ref().unwrap().body);
    }
}
