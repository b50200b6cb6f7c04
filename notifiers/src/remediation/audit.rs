//! The audit trail of a remediation: where it stands ([`AuditStatus`]), its
//! [`AuditRecord`] and the record's deterministic id ([`audit_id`]).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::call::AuditedCall;
use crate::alert::{KeyValues, Status};

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
    /// Deterministic id (see [`plan`](super::plan)), also the idempotency key.
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
