//! The remediation action as configured: a webhook bound to alerts by
//! label matchers ([`Action`]), and who may approve its calls
//! ([`ApprovalPolicy`]).

use super::template::{BodyType, TemplateError};
use crate::matcher::Matcher;

/// A remediation action: a webhook bound to alerts by label matchers.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    /// Unique name (configuration).
    pub name: String,
    /// Where to call.
    pub url: url::Url,
    /// HTTP method: POST, PUT, …
    pub method: String,
    /// Body template (see [`render_body`](super::template::render_body)).
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
