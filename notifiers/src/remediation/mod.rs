//! Remediation: webhooks bound to alerts, called when an alert fires (and, if
//! configured, when it resolves). Every call is governed (a cooldown per
//! action and alert, and a global rate limit), may require a human approval
//! over Telegram, may be a dry run, and leaves an [`AuditRecord`].
//!
//! Everything here is pure except [`call()`]: the delivery worker persists the
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
//!
//! This module plans ([`plan`]) and decides ([`decide`]): the two steps that
//! produce outbox [`Delivery`] values, and so the only part that uses the
//! store. The rest is in submodules that do not, so the store can use them
//! (the call, the approval request and the audit record) without a cycle;
//! their items are re-exported here:
//!
//! - [`action`]: the configured [`Action`] and its [`ApprovalPolicy`];
//! - [`template`]: body templates, rendering and checking;
//! - [`call`](mod@call): the outgoing [`RemediationCall`], what is shown of it
//!   ([`AuditedCall`]) and the signed HTTP call;
//! - [`audit`]: [`AuditStatus`], [`AuditRecord`] and [`audit_id`];
//! - [`governor`]: the cooldown and rate limit ([`Governor`], [`Verdict`]);
//! - [`approval`]: [`ApprovalRequest`], [`Decision`], [`Refusal`], [`expire`].

pub mod action;
pub mod approval;
pub mod audit;
pub mod call;
pub mod governor;
pub mod template;
#[cfg(test)]
mod testing;

pub use action::{Action, ApprovalPolicy};
pub use approval::{ApprovalRequest, Decision, Refusal, expire};
pub use audit::{AuditRecord, AuditStatus, audit_id};
pub use call::{AuditedCall, IDEMPOTENCY_HEADER, RemediationCall, call};
pub use governor::{Governor, Verdict};
pub use template::{BodyType, TemplateError, check_template, render_body};

use approval::{approval_html, who};
use call::outgoing;

use crate::alert::{AlertInfo, Status, rfc3339};
use crate::matcher::all_match;
use crate::secret::redact_url;
use crate::store::Delivery;

/// One action's plan for an alert transition.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    /// The audit record to store.
    pub record: AuditRecord,
    /// What to put in the outbox (a call, or an approval request), if anything.
    pub enqueue: Option<Delivery>,
}

fn reason(alert: &AlertInfo) -> String {
    alert
        .annotations
        .get("summary")
        .filter(|s| !s.is_empty())
        .cloned()
        .unwrap_or_else(|| alert.name().to_string())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remediation::testing::{
        action, alert, approval_action, assert_no_canary, awaiting, firing,
    };

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
