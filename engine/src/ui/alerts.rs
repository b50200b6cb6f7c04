//! The alerts and silences page (`/alerts`): alerts pending and firing,
//! those that ended, the silences, and forms to create and expire a
//! silence. The forms carry the admin token in their body (a page has no
//! other way to send it without script); a form without the right token
//! changes nothing.

use std::sync::Arc;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use prognos_notifiers::silence::Silence;
use serde::Deserialize;

use crate::alert::Alert;
use crate::http_state::{AppState, SilenceRequest, add_silence};
use crate::rule_state::RuleView;
use crate::timestamp::unix_now;
use crate::ui::format::{ago, labels, time};
use crate::ui::overview::{AlertIndex, alert_table, series_href, status_badge};
use crate::ui::page::{Nav, layout, problem, respond, secure};

/// Ended alerts listed, newest first.
pub const PAST_SHOWN: usize = 100;

/// Longest form field accepted, in characters (the body as a whole is
/// bounded by the server's limit).
pub const FIELD_MAX: usize = 4096;

/// What the page says after a change, or about a refused one.
#[derive(Debug, Default)]
pub struct Flash {
    /// A change was made.
    pub done: Option<String>,
    /// A change was refused, and why.
    pub error: Option<String>,
}

/// The page.
pub fn render(
    views: &[Arc<RuleView>],
    silences: Option<&[Silence]>,
    admin: bool,
    flash: &Flash,
    now: i64,
) -> Markup {
    let mut past: Vec<(&RuleView, &Alert)> = views
        .iter()
        .flat_map(|v| v.past.iter().map(move |a| (v.as_ref(), a)))
        .collect();
    past.sort_by_key(|(_, a)| std::cmp::Reverse(a.resolved_at.unwrap_or(a.active_at)));
    past.truncate(PAST_SHOWN);
    layout(
        "Alerts & silences",
        Nav::Alerts,
        html! {
            h1 { "Alerts & silences" }
            @if let Some(d) = &flash.done { p.done #flash { (d) } }
            @if let Some(e) = &flash.error { p.error #flash { (e) } }
            section #active {
                h2 { "Pending and firing" }
                (alert_table(views, silences.unwrap_or_default(), now))
            }
            section #ended {
                h2 { "Recently ended" }
                @if past.is_empty() {
                    p.muted { "No alert has ended since prognos started." }
                } @else {
                    div.scroll { table.wide #alerts-ended {
                        thead { tr { th { "State" } th { "Alert" } th { "Series" } th { "Pending from" } th.opt { "Fired" } th { "Ended" } } }
                        tbody {
                            @for (v, a) in &past {
                                @let index = AlertIndex::new(v);
                                tr {
                                    td { (status_badge(a)) }
                                    td { (v.id) }
                                    td {
                                        @if let Some(s) = index.series(a) {
                                            a.series-link href=(series_href(&s.id)) { (labels(&s.labels)) }
                                        } @else { (labels(&a.labels)) }
                                    }
                                    td { (time(a.active_at)) }
                                    td.opt { @if let Some(f) = a.fired_at { (time(f)) } @else { "—" } }
                                    td { @if let Some(r) = a.resolved_at { (ago(now, r)) } }
                                }
                            }
                        }
                    } }
                }
            }
            section #silences {
                h2 { "Silences" }
                @match silences {
                    None => { p.muted { "Notifications are not configured, so there is nothing to silence." } }
                    Some(list) => {
                        @if list.is_empty() {
                            p.muted { "No silence." }
                        } @else {
                            div.scroll { table.wide #silence-list {
                                thead { tr { th { "Matchers" } th { "Until" } th.opt { "By" } th.opt { "Comment" } th { "" } } }
                                tbody {
                                    @for s in list {
                                        tr.silence data-id=(s.id) data-active=(s.is_active(now)) {
                                            td { @for m in &s.matchers { code.label { (m.to_string()) } " " } }
                                            td { (time(s.ends_at)) @if !s.is_active(now) { " " span.badge.ended { "expired" } } }
                                            td.opt { (s.created_by) }
                                            td.opt { (s.comment) }
                                            td {
                                                @if admin && s.is_active(now) {
                                                    form.inline.expire method="post" action=(format!("/alerts/silences/{}/expire", s.id)) {
                                                        input type="password" name="token" placeholder="admin token" required autocomplete="off" aria-label="admin token";
                                                        " "
                                                        button.danger type="submit" { "Expire" }
                                                    }
                                                }
                                            }
                                        }
                                    }
                                }
                            } }
                        }
                        @if admin {
                            h2 { "New silence" }
                            form.stack #new-silence method="post" action="/alerts/silences" {
                                label { "Matchers" input name="matchers" required placeholder="service=\"mes-api\", alertname=~\"MES.*\"" maxlength=(FIELD_MAX); }
                                label { "For" input name="duration" value="2h" required maxlength="32"; }
                                label { "By" input name="created_by" placeholder="your name" maxlength="256"; }
                                label { "Comment" input name="comment" placeholder="why" maxlength=(FIELD_MAX); }
                                label { "Admin token" input type="password" name="token" required autocomplete="off"; }
                                button type="submit" { "Create silence" }
                            }
                        } @else {
                            p.muted { "Creating and expiring silences needs prognos started with --admin-token-file." }
                        }
                    }
                }
            }
        },
    )
}

/// What `GET /alerts` is told after a change: `?created=<id>` or
/// `?expired=<id>` (a silence id: short hex).
#[derive(Debug, Default, Deserialize)]
pub struct Done {
    created: Option<String>,
    expired: Option<String>,
}

/// Whether `id` looks like a silence id (so the page never repeats
/// arbitrary text from its URL).
fn is_silence_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `GET /alerts`.
pub async fn page(State(s): State<AppState>, Query(d): Query<Done>) -> Response {
    let done = match (d.created, d.expired) {
        (Some(id), _) if is_silence_id(&id) => Some(format!("Silence {id} created.")),
        (_, Some(id)) if is_silence_id(&id) => Some(format!("Silence {id} expired.")),
        _ => None,
    };
    show(&s, Flash { done, error: None }, StatusCode::OK).await
}

async fn show(s: &AppState, flash: Flash, status: StatusCode) -> Response {
    let e = s.engine.read().await.clone();
    let views: Vec<_> = e.rules.iter().map(|r| r.view()).collect();
    let silences = match s.notifier() {
        Some(n) => Some(n.silences().await),
        None => None,
    };
    respond(
        status,
        render(
            &views,
            silences.as_deref(),
            s.reload.is_some(),
            &flash,
            unix_now(),
        ),
    )
}

/// The new-silence form.
#[derive(Debug, Deserialize)]
pub struct NewSilenceForm {
    token: String,
    matchers: String,
    duration: String,
    #[serde(default)]
    created_by: String,
    #[serde(default)]
    comment: String,
}

/// The expire form.
#[derive(Debug, Deserialize)]
pub struct TokenForm {
    token: String,
}

/// Refuses a change without the right token: 403 when changes are off,
/// 401 for a wrong token.
fn refuse(s: &AppState, token: &str) -> Option<Response> {
    if s.reload.is_none() {
        return Some(problem(
            StatusCode::FORBIDDEN,
            "Changes are off",
            html! { p { "Start prognos with --admin-token-file to create and expire silences." } },
        ));
    }
    (!s.token_matches(token)).then(|| {
        problem(
            StatusCode::UNAUTHORIZED,
            "Wrong admin token",
            html! { p { "Nothing was changed. " a href="/alerts" { "Back to alerts & silences" } } },
        )
    })
}

/// Back to the page after a change (so a reload does not post again).
fn see_other(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    secure(r.headers_mut());
    r
}

/// `POST /alerts/silences`.
pub async fn create(State(s): State<AppState>, Form(f): Form<NewSilenceForm>) -> Response {
    if let Some(r) = refuse(&s, &f.token) {
        return r;
    }
    let Some(n) = s.notifier() else {
        return show(
            &s,
            Flash {
                error: Some("Notifications are not configured.".into()),
                ..Flash::default()
            },
            StatusCode::NOT_FOUND,
        )
        .await;
    };
    let too_long = [&f.matchers, &f.duration, &f.created_by, &f.comment]
        .iter()
        .any(|v| v.chars().count() > FIELD_MAX);
    let req = SilenceRequest {
        matchers: vec![f.matchers.clone()],
        duration: Some(f.duration.trim().to_string()),
        ends_at: None,
        created_by: if f.created_by.trim().is_empty() {
            "web".to_string()
        } else {
            f.created_by.trim().to_string()
        },
        comment: f.comment.trim().to_string(),
    };
    let outcome = if too_long {
        Err(format!("a field is longer than {FIELD_MAX} characters"))
    } else {
        add_silence(&n, req, unix_now()).await
    };
    match outcome {
        Ok(id) => see_other(&format!("/alerts?created={id}")),
        Err(e) => {
            show(
                &s,
                Flash {
                    error: Some(format!("The silence was not created: {e}")),
                    ..Flash::default()
                },
                StatusCode::BAD_REQUEST,
            )
            .await
        }
    }
}

/// `POST /alerts/silences/{id}/expire`.
pub async fn expire(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Form(f): Form<TokenForm>,
) -> Response {
    if let Some(r) = refuse(&s, &f.token) {
        return r;
    }
    let outcome = match s.notifier() {
        Some(n) => n
            .expire_silence(&id, unix_now())
            .await
            .map_err(|e| e.to_string()),
        None => Err("notifications are not configured".to_string()),
    };
    match outcome {
        Ok(()) => see_other(&format!("/alerts?expired={id}")),
        Err(e) => {
            show(
                &s,
                Flash {
                    error: Some(format!("The silence was not expired: {e}")),
                    ..Flash::default()
                },
                StatusCode::NOT_FOUND,
            )
            .await
        }
    }
}
