//! The deliveries page (`/deliveries`): the notifications waiting in the
//! outbox (with their attempts and last error), the alert groups, and the
//! remediation audit log — who approved what, when, and the result.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use prognos_notifiers::remediation::AuditRecord;
use prognos_notifiers::route::GroupView;
use prognos_notifiers::store::OutboxEntry;

use crate::http_state::{AppState, shown_error};
use crate::timestamp::unix_now;
use crate::ui::format::{ago, time};
use crate::ui::page::{Nav, layout, respond};

/// Audit records shown, newest first.
pub const AUDIT_SHOWN: usize = 200;

/// What the page shows; None when notifications are not configured.
#[derive(Debug)]
pub struct Deliveries {
    /// The outbox, or why it could not be read.
    pub outbox: Result<Vec<OutboxEntry>, String>,
    /// The alert groups.
    pub groups: Vec<GroupView>,
    /// The audit log, or why it could not be read.
    pub audit: Result<Vec<AuditRecord>, String>,
}

/// The page.
pub fn render(d: Option<&Deliveries>, now: i64) -> Markup {
    layout(
        "Deliveries",
        Nav::Deliveries,
        html! {
            h1 { "Deliveries" }
            @match d {
                None => { p.muted #not-configured { "Notifications are not configured: nothing is delivered." } }
                Some(d) => {
                    section #outbox-section {
                        h2 { "Outbox" }
                        @match &d.outbox {
                            Err(e) => { p.error { "The outbox could not be read: " (e) } }
                            Ok(o) if o.is_empty() => { p.muted { "Empty: every notification was delivered." } }
                            Ok(o) => {
                                div.scroll { table.wide #outbox {
                                    thead { tr { th { "Target" } th { "Queued" } th.num { "Attempts" } th { "Next attempt" } th.opt { "Last error" } } }
                                    tbody {
                                        @for e in o {
                                            tr {
                                                td { (e.target) }
                                                td { (ago(now, e.created_at)) }
                                                td.num { (e.attempts) }
                                                td { (time(e.next_attempt_at)) }
                                                td.opt { @if let Some(err) = &e.last_error { code { (shown_error(err)) } } }
                                            }
                                        }
                                    }
                                } }
                            }
                        }
                    }
                    section #groups-section {
                        h2 { "Alert groups" }
                        @if d.groups.is_empty() {
                            p.muted { "No group: no alert was routed yet." }
                        } @else {
                            div.scroll { table.wide #groups {
                                thead { tr { th { "Receiver" } th { "Grouped by" } th.num { "Alerts" } th { "Next flush" } } }
                                tbody {
                                    @for g in &d.groups {
                                        tr {
                                            td { (g.receiver) }
                                            td { @for (k, v) in &g.group_labels { code.label { (k) "=" (v) } " " } }
                                            td.num { (g.alerts.len()) }
                                            td { (time(g.next_flush)) }
                                        }
                                    }
                                }
                            } }
                        }
                    }
                    section #audit-section {
                        h2 { "Remediation audit log" }
                        @match &d.audit {
                            Err(e) => { p.error { "The audit log could not be read: " (e) } }
                            Ok(a) if a.is_empty() => { p.muted { "No remediation was planned." } }
                            Ok(a) => {
                                div.scroll { table.wide #audit {
                                    thead { tr { th { "Requested" } th { "Action" } th { "Status" } th { "Decided by" } th.opt { "Call" } th { "Result" } } }
                                    tbody {
                                        @for r in a {
                                            tr {
                                                td { (time(r.requested_at)) }
                                                td { (r.action) br; span.muted { (r.reason) } }
                                                td { (status(r)) }
                                                td {
                                                    @if let Some(by) = &r.decided_by { (by) } @else { "—" }
                                                    @if let Some(t) = r.decided_at { br; span.muted { (time(t)) } }
                                                    @for refusal in &r.refusals { br; span.muted { "refused: " (refusal) } }
                                                }
                                                td.opt { @if let Some(c) = &r.request { code { (c.method) " " (c.url) } } }
                                                td {
                                                    @if let Some(res) = &r.result { (shown_error(res)) } @else { "—" }
                                                    @if let Some(t) = r.finished_at { br; span.muted { (time(t)) } }
                                                }
                                            }
                                        }
                                    }
                                } }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// An audit status as the API names it (`awaiting_approval`, `sent`, …).
fn status(r: &AuditRecord) -> String {
    serde_json::to_value(r.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{:?}", r.status))
}

/// `GET /deliveries`.
pub async fn page(State(s): State<AppState>) -> Response {
    let d = match s.notifier() {
        Some(n) => Some(Deliveries {
            outbox: n.outbox().await.map_err(|e| shown_error(&e.to_string())),
            groups: n.groups().await,
            audit: n
                .audit(AUDIT_SHOWN)
                .await
                .map_err(|e| shown_error(&e.to_string())),
        }),
        None => None,
    };
    respond(StatusCode::OK, render(d.as_ref(), unix_now()))
}
