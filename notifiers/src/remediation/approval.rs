//! Approvals: the [`ApprovalRequest`] sent to Telegram and its message, a
//! [`Decision`] on it, why one is refused ([`Refusal`]), and the expiry of
//! requests nobody decided ([`expire`]). The decision itself, which
//! enqueues the call, is [`super::decide`].

use serde::{Deserialize, Serialize};

use super::audit::{AuditRecord, AuditStatus};
use super::call::AuditedCall;
use crate::alert::rfc3339;

/// How much of a request body the approval message shows, in characters.
const APPROVAL_BODY_CHARS: usize = 1500;

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

pub(super) fn approval_html(record: &AuditRecord, call: &AuditedCall, expires_at: i64) -> String {
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

pub(super) fn who(user_id: u64, username: Option<&str>) -> String {
    match username {
        Some(n) if !n.is_empty() => format!("telegram:{user_id} (@{n})"),
        _ => format!("telegram:{user_id}"),
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

#[cfg(test)]
mod tests {
    use crate::remediation::testing::awaiting;
    use crate::remediation::{AuditStatus, Governor};

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
}
