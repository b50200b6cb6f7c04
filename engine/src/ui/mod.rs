//! The web UI that `prognos run` serves on its listen address: server-side
//! HTML and SVG, no script, one stylesheet.
//!
//! - `GET /` — rule groups with their health, pending and firing alerts
//!   with their ETA, the series most anomalous now.
//! - `GET /rules/{group}/{name}` — a rule and its series.
//! - `GET /series/{id}` — a series: history, forecast fan, threshold, ETA,
//!   anomaly score, alert spans and why the alert holds. The link
//!   notifications carry.
//! - `GET /series?rule=group/name&label=value…` — the series of a rule with
//!   those labels (Grafana's panel links), redirected to its page.
//! - `GET /alerts` — alerts, those that ended, silences;
//!   `POST /alerts/silences` and `POST /alerts/silences/{id}/expire` with
//!   the admin token in the form.
//! - `GET /deliveries` — the outbox, the alert groups, the remediation audit log.
//! - Anything else: a 404 page that lists what exists.
//!
//! Every label value and annotation is untrusted text: maud escapes all of
//! it in HTML and SVG, and the pages' Content-Security-Policy allows no
//! script at all ([`page::CSP`]).

pub mod alerts;
pub mod chart;
pub mod deliveries;
pub mod format;
pub mod overview;
pub mod page;
pub mod series;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use maud::html;
use prognos_notifiers::secret::excerpt;

use crate::http_state::AppState;
use crate::rule_state::RuleView;
use crate::timestamp::unix_now;
use page::{problem, respond};

/// The UI's routes, merged into the server's router.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(overview_page))
        .route("/rules/{group}/{name}", get(rule_page))
        .route("/series", get(find_series))
        .route("/series/{id}", get(series_page))
        .route("/alerts", get(alerts::page))
        .route("/alerts/silences", post(alerts::create))
        .route("/alerts/silences/{id}/expire", post(alerts::expire))
        .route("/deliveries", get(deliveries::page))
        .route(page::STYLE_PATH, get(page::style))
}

async fn views(s: &AppState) -> Vec<std::sync::Arc<RuleView>> {
    let e = s.engine.read().await.clone();
    e.rules.iter().map(|r| r.view()).collect()
}

async fn overview_page(State(s): State<AppState>) -> Response {
    let views = views(&s).await;
    let silences = match s.notifier() {
        Some(n) => Some(n.silences().await),
        None => None,
    };
    respond(
        StatusCode::OK,
        overview::overview(&views, silences.as_deref(), unix_now()),
    )
}

async fn rule_page(
    State(s): State<AppState>,
    Path((group, name)): Path<(String, String)>,
) -> Response {
    let views = views(&s).await;
    let id = format!("{group}/{name}");
    match views.iter().find(|v| v.id == id) {
        Some(v) => respond(StatusCode::OK, overview::rule_page(v, unix_now())),
        None => missing(&views, &format!("There is no rule {}.", excerpt(&id, 120))),
    }
}

async fn series_page(State(s): State<AppState>, Path(id): Path<String>) -> Response {
    let e = s.engine.read().await.clone();
    match series::gather(&e, &id, unix_now()).await {
        Some(p) => respond(StatusCode::OK, series::render(&p)),
        None => {
            let views: Vec<_> = e.rules.iter().map(|r| r.view()).collect();
            missing(
                &views,
                &format!(
                    "There is no series with id {} (ids change when a rule or a label set changes).",
                    excerpt(&id, 64)
                ),
            )
        }
    }
}

/// `GET /series?rule=…&label=value…`: the one series of the rule with those
/// labels, or the rule's page when several match.
async fn find_series(
    State(s): State<AppState>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Response {
    let views = views(&s).await;
    let Some(rule) = q.get("rule") else {
        return missing(
            &views,
            "Give the rule: /series?rule=group/name&label=value.",
        );
    };
    let Some(v) = views.iter().find(|v| &v.id == rule) else {
        return missing(&views, &format!("There is no rule {}.", excerpt(rule, 120)));
    };
    let matching: Vec<_> = v
        .series
        .iter()
        .filter(|s| {
            q.iter()
                .filter(|(k, _)| k.as_str() != "rule")
                .all(|(k, want)| s.labels.get(k) == Some(want))
        })
        .collect();
    let to = match matching.as_slice() {
        [one] => overview::series_href(&one.id),
        [] => {
            return missing(
                &views,
                &format!("Rule {} has no series with those labels.", v.id),
            );
        }
        _ => overview::rule_href(&v.id),
    };
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(h) = HeaderValue::from_str(&to) {
        r.headers_mut().insert(header::LOCATION, h);
    }
    page::secure(r.headers_mut());
    r
}

/// The 404 page: what was asked for is not there; here is what is.
fn missing(views: &[std::sync::Arc<RuleView>], what: &str) -> Response {
    problem(
        StatusCode::NOT_FOUND,
        "Not found",
        html! {
            p #missing { (what) }
            p { "These rules exist (each page lists its series); or go to the " a href="/" { "overview" } ", " a href="/alerts" { "alerts & silences" } " or " a href="/deliveries" { "deliveries" } "." }
            @if views.is_empty() {
                p.muted { "No rule is loaded." }
            } @else {
                ul #rules {
                    @for v in views {
                        li { a href=(overview::rule_href(&v.id)) { (v.id) } " — " (v.series.len()) " series" }
                    }
                }
            }
        },
    )
}

/// Any path that is not served: JSON for the API's paths, the 404 page
/// otherwise.
pub async fn not_found(State(s): State<AppState>, uri: Uri) -> Response {
    if uri.path().starts_with("/api/") {
        return (
            StatusCode::NOT_FOUND,
            axum::Json(serde_json::json!({"status": "error", "error": "no such endpoint"})),
        )
            .into_response();
    }
    let views = views(&s).await;
    missing(
        &views,
        &format!("There is no page at {}.", excerpt(uri.path(), 120)),
    )
}
