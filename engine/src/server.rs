//! The HTTP server: `/metrics`, the JSON API and health endpoints.
//! `app(state)` builds the router so tests call it without a socket.
//!
//! - `GET /metrics` — predictions and health, OpenMetrics text.
//! - `GET /api/v1/alerts` — pending and firing alerts.
//! - `GET /api/v1/rules` — every rule with its last evaluation, health and last error.
//! - `GET /api/v1/series` — every modelled series with an id.
//! - `GET /api/v1/series/{id}/forecast[?steps=N&history=SECONDS]` — the series' recent history
//!   (from Prometheus, default the last 6 hours), latest point, expectation and forecast path with its band.
//! - `GET /-/healthy`, `GET /-/ready` (ready once every rule has been evaluated).
//! - `POST /-/reload` — reloads the configuration; off unless `prognos run` was given
//!   `--admin-token-file`, and then only with `Authorization: Bearer <token>`.
//! - `GET /api/v1/silences`, `POST /api/v1/silences` (token), `DELETE /api/v1/silences/{id}` (token).
//! - `GET /api/v1/notifications` — the outbox and the alert groups.
//! - `GET /api/v1/remediations[?limit=N]` — the remediation audit log, newest first.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use prognos_models::forecast::Level;
use serde::{Deserialize, Serialize};
use tokio::sync::{RwLock, mpsc, oneshot};

use crate::alert::Alert;
use crate::evaluate::{horizon_label, steps};
use crate::exposition::CONTENT_TYPE;
use crate::notify::NotifySink;
use crate::scheduler::{BAND_LEVEL, Engine, Health, label_hash};

/// A request to reload the configuration, answered with the outcome.
pub type ReloadRequest = oneshot::Sender<Result<(), String>>;

/// What the handlers share: the engine in force (swapped on reload) and,
/// when enabled, the way to ask for a reload.
#[derive(Debug)]
pub struct ServerState {
    /// The engine in force.
    pub engine: RwLock<Arc<Engine>>,
    /// Bearer token and channel for `POST /-/reload`; None: the endpoint is
    /// off. The token also guards the other mutating endpoints (silences).
    pub reload: Option<(String, mpsc::Sender<ReloadRequest>)>,
    /// The notifications, for the silence, notification and remediation endpoints.
    pub notify: Option<Arc<NotifySink>>,
}

/// The shared state of the handlers.
pub type AppState = Arc<ServerState>;

impl ServerState {
    /// State serving `engine`, without the reload endpoint.
    pub fn new(engine: Arc<Engine>) -> AppState {
        Arc::new(Self {
            engine: RwLock::new(engine),
            reload: None,
            notify: None,
        })
    }
}

/// The router.
pub fn app(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/-/healthy", get(|| async { "prognos is healthy.\n" }))
        .route("/-/ready", get(ready))
        .route("/api/v1/alerts", get(alerts))
        .route("/api/v1/rules", get(rules))
        .route("/api/v1/series", get(series))
        .route("/api/v1/series/{id}/forecast", get(forecast))
        .route("/-/reload", post(reload))
        .route("/api/v1/silences", get(silences).post(add_silence))
        .route(
            "/api/v1/silences/{id}",
            axum::routing::delete(expire_silence),
        )
        .route("/api/v1/notifications", get(notifications))
        .route("/api/v1/remediations", get(remediations))
        .with_state(state)
}

/// Checks the bearer token of a mutating request.
fn authorize(s: &ServerState, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let Some((token, _)) = &s.reload else {
        return Err(Box::new(
            (
                StatusCode::FORBIDDEN,
                "changes over HTTP are off: start prognos with --admin-token-file\n",
            )
                .into_response(),
        ));
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    // Constant-time comparison: the token guards changes.
    let ok = given.is_some_and(|g| {
        g.len() == token.len()
            && g.bytes()
                .zip(token.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    });
    if !ok {
        return Err(Box::new(
            (
                StatusCode::UNAUTHORIZED,
                "a valid bearer token is required\n",
            )
                .into_response(),
        ));
    }
    Ok(())
}

async fn reload(State(s): State<AppState>, headers: HeaderMap) -> Response {
    if let Err(r) = authorize(&s, &headers) {
        return *r;
    }
    let Some((_, tx)) = &s.reload else {
        return StatusCode::FORBIDDEN.into_response();
    };
    let (answer, outcome) = oneshot::channel();
    if tx.send(answer).await.is_err() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "prognos is shutting down\n",
        )
            .into_response();
    }
    match outcome.await {
        Ok(Ok(())) => "configuration reloaded\n".into_response(),
        Ok(Err(e)) => (
            StatusCode::BAD_REQUEST,
            format!("reload failed, the running configuration is kept:\n{e}\n"),
        )
            .into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "prognos is shutting down\n",
        )
            .into_response(),
    }
}

async fn metrics(State(s): State<AppState>) -> Response {
    let e = s.engine.read().await.clone();
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], e.metrics.encode()).into_response()
}

async fn ready(State(s): State<AppState>) -> Response {
    let e = s.engine.read().await.clone();
    for r in &e.rules {
        if r.lock().await.last_eval.is_none() {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                "prognos is not ready: rules not yet evaluated.\n",
            )
                .into_response();
        }
    }
    "prognos is ready.\n".into_response()
}

#[derive(Serialize)]
struct Envelope<T> {
    status: &'static str,
    data: T,
}

fn ok<T: Serialize>(data: T) -> Json<Envelope<T>> {
    Json(Envelope {
        status: "success",
        data,
    })
}

#[derive(Serialize)]
struct AlertView<'a> {
    rule: &'a str,
    #[serde(flatten)]
    alert: &'a Alert,
}

async fn alerts(State(s): State<AppState>) -> Response {
    let e = s.engine.read().await.clone();
    let mut out = Vec::new();
    for r in &e.rules {
        let rt = r.lock().await;
        for a in rt.alerts.active() {
            out.push(
                serde_json::to_value(AlertView {
                    rule: &rt.id,
                    alert: a,
                })
                .unwrap_or_default(),
            );
        }
    }
    ok(serde_json::json!({ "alerts": out })).into_response()
}

#[derive(Serialize)]
struct RuleView {
    id: String,
    group: String,
    name: String,
    expr: String,
    model: String,
    health: Health,
    last_error: Option<String>,
    last_evaluation: Option<i64>,
    evaluation_seconds: f64,
    series: usize,
    alerts_active: usize,
}

async fn rules(State(s): State<AppState>) -> Response {
    let e = s.engine.read().await.clone();
    let mut out = Vec::new();
    for r in &e.rules {
        let rt = r.lock().await;
        out.push(RuleView {
            id: rt.id.clone(),
            group: rt.group.clone(),
            name: rt.rule.name.clone(),
            expr: rt.rule.expr.clone(),
            model: rt.rule.model.to_string(),
            health: rt.health,
            last_error: rt.last_error.clone(),
            last_evaluation: rt.last_eval,
            evaluation_seconds: rt.last_duration.as_secs_f64(),
            series: rt.series.len(),
            alerts_active: rt.alerts.active().count(),
        });
    }
    ok(serde_json::json!({ "rules": out })).into_response()
}

/// A series' id in the API: the hash of its rule and labels, in hex.
pub fn series_id(rule: &str, key: &str) -> String {
    format!("{:016x}", label_hash(&format!("{rule}\u{0}{key}")))
}

async fn series(State(s): State<AppState>) -> Response {
    let e = s.engine.read().await.clone();
    let mut out = Vec::new();
    for r in &e.rules {
        let rt = r.lock().await;
        for (k, s) in &rt.series {
            out.push(serde_json::json!({
                "id": series_id(&rt.id, k),
                "rule": rt.id,
                "labels": s.labels,
                "model": s.model_name(),
                "last_timestamp": s.last_ts,
                "last_value": s.last_value,
                "anomaly_score": s.score,
            }));
        }
    }
    ok(serde_json::json!({ "series": out })).into_response()
}

/// Query of the forecast endpoint.
#[derive(Debug, Deserialize)]
pub struct ForecastQuery {
    /// Steps to forecast; default the rule's longest horizon.
    pub steps: Option<usize>,
    /// Seconds of recent history to include (from Prometheus); default 6 hours, 0 for none.
    pub history: Option<i64>,
}

/// Default recent history in the forecast endpoint, seconds.
pub const DEFAULT_HISTORY_SECS: i64 = 6 * 3600;

async fn forecast(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<ForecastQuery>,
) -> Response {
    let e = state.engine.read().await.clone();
    let level = Level::try_from(BAND_LEVEL).expect("a constant level in (0, 1)");
    for r in &e.rules {
        let rt = r.lock().await;
        for (k, s) in &rt.series {
            if series_id(&rt.id, k) != id {
                continue;
            }
            let step = s.step();
            let default_steps = rt
                .rule
                .horizons
                .iter()
                .map(|&h| steps(h, step))
                .max()
                .unwrap_or(12);
            let n = q
                .steps
                .unwrap_or(default_steps)
                .clamp(1, crate::evaluate::MAX_LOOKAHEAD_STEPS);
            let f = s.forecast(n, level);
            let path: Vec<_> = (0..f.len())
                .map(|i| {
                    serde_json::json!({
                        "timestamp": s.last_ts + step * (i as i64 + 1),
                        "yhat": f.point[i], "yhat_lower": f.lower[i], "yhat_upper": f.upper[i],
                    })
                })
                .collect();
            let verdict = rt.verdicts.get(k);
            let window = q
                .history
                .unwrap_or(DEFAULT_HISTORY_SECS)
                .clamp(0, 30 * 86_400);
            let (rule, labels, last_ts) = (rt.rule.clone(), s.labels.clone(), s.last_ts);
            let mut body = serde_json::json!({
                "id": id,
                "rule": rt.id,
                "labels": s.labels,
                "model": s.model_name(),
                "level": BAND_LEVEL,
                "last": {"timestamp": s.last_ts, "value": s.last_value, "anomaly_score": s.score},
                "expected": s.expected.map(|(p, lo, hi)| serde_json::json!({"yhat": p, "yhat_lower": lo, "yhat_upper": hi})),
                "horizons": rt.rule.horizons.iter().map(|&h| horizon_label(h)).collect::<Vec<_>>(),
                "time_to_threshold": verdict.and_then(|v| v.eta_text.clone()),
                "forecast": path,
            });
            drop(rt);
            // Prometheus holds the history; ask it without holding the rule's lock.
            let history = if window > 0 {
                match e.recent_history(&rule, &labels, last_ts, window).await {
                    Ok(h) => serde_json::json!(
                        h.iter()
                            .map(|(t, v)| serde_json::json!({"timestamp": t, "value": v}))
                            .collect::<Vec<_>>()
                    ),
                    Err(err) => serde_json::json!({"error": err.to_string()}),
                }
            } else {
                serde_json::json!([])
            };
            body["history"] = history;
            return ok(body).into_response();
        }
    }
    (
        StatusCode::NOT_FOUND,
        Json(serde_json::json!({"status": "error", "error": format!("no series with id {id}")})),
    )
        .into_response()
}

fn notifier(s: &ServerState) -> Result<prognos_notifiers::notifier::Notifier, Box<Response>> {
    s.notify.as_ref().and_then(|n| n.current()).ok_or_else(|| {
        Box::new((
            StatusCode::NOT_FOUND,
            Json(
                serde_json::json!({"status": "error", "error": "notifications are not configured"}),
            ),
        )
            .into_response())
    })
}

fn api_error(code: StatusCode, message: impl std::fmt::Display) -> Response {
    (
        code,
        Json(serde_json::json!({"status": "error", "error": message.to_string()})),
    )
        .into_response()
}

async fn silences(State(s): State<AppState>) -> Response {
    match notifier(&s) {
        Ok(n) => {
            Json(serde_json::json!({"status": "success", "data": n.silences()})).into_response()
        }
        Err(r) => *r,
    }
}

/// The body of `POST /api/v1/silences`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct NewSilence {
    /// Matchers, as one string (`a="b", c=~"d"`) or a list.
    matchers: MatcherInput,
    /// How long from now (`2h`), unless `ends_at` is given.
    duration: Option<String>,
    /// RFC 3339 end.
    ends_at: Option<String>,
    /// Who asks.
    created_by: Option<String>,
    /// Why.
    comment: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum MatcherInput {
    One(String),
    Many(Vec<String>),
}

async fn add_silence(
    State(s): State<AppState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = authorize(&s, &headers) {
        return *r;
    }
    let n = match notifier(&s) {
        Ok(n) => n,
        Err(r) => return *r,
    };
    let req: NewSilence = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return api_error(
                StatusCode::BAD_REQUEST,
                format!(
                    "body: {e} (expected {{\"matchers\": \"service=\\\"mes-api\\\"\", \"duration\": \"2h\", \"createdBy\": \"…\", \"comment\": \"…\"}})"
                ),
            );
        }
    };
    let texts = match req.matchers {
        MatcherInput::One(t) => vec![t],
        MatcherInput::Many(v) => v,
    };
    let mut matchers = Vec::new();
    for t in &texts {
        match prognos_notifiers::matcher::parse_matchers(t) {
            Ok(m) => matchers.extend(m),
            Err(e) => return api_error(StatusCode::BAD_REQUEST, format!("matchers: {e}")),
        }
    }
    let now = crate::commands::run::unix_now();
    let ends_at = match (&req.duration, &req.ends_at) {
        (Some(d), None) => match crate::config::parse_duration(d) {
            Ok(d) => now + d.as_secs() as i64,
            Err(e) => return api_error(StatusCode::BAD_REQUEST, format!("duration: {e}")),
        },
        (None, Some(t)) => match crate::timestamp::parse(t) {
            Ok((t, _)) => t,
            Err(e) => return api_error(StatusCode::BAD_REQUEST, format!("endsAt: {e}")),
        },
        _ => {
            return api_error(
                StatusCode::BAD_REQUEST,
                "give exactly one of duration (\"2h\") and endsAt (RFC 3339)",
            );
        }
    };
    let by = req.created_by.unwrap_or_else(|| "api".to_string());
    match n.add_silence(
        matchers,
        now,
        ends_at,
        &by,
        req.comment.as_deref().unwrap_or(""),
    ) {
        Ok(id) => Json(serde_json::json!({"status": "success", "data": {"silenceId": id}}))
            .into_response(),
        Err(e) => api_error(StatusCode::BAD_REQUEST, e),
    }
}

async fn expire_silence(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = authorize(&s, &headers) {
        return *r;
    }
    match notifier(&s) {
        Ok(n) => match n.expire_silence(&id, crate::commands::run::unix_now()) {
            Ok(()) => Json(serde_json::json!({"status": "success"})).into_response(),
            Err(e) => api_error(StatusCode::NOT_FOUND, e),
        },
        Err(r) => *r,
    }
}

async fn notifications(State(s): State<AppState>) -> Response {
    let n = match notifier(&s) {
        Ok(n) => n,
        Err(r) => return *r,
    };
    let outbox = match n.outbox() {
        Ok(o) => o,
        Err(e) => return api_error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let pending: Vec<serde_json::Value> = outbox
        .iter()
        .map(|e| {
            serde_json::json!({
                "id": e.id, "target": e.target, "key": e.key,
                "createdAt": e.created_at, "nextAttemptAt": e.next_attempt_at,
                "attempts": e.attempts, "lastError": e.last_error,
            })
        })
        .collect();
    Json(
        serde_json::json!({"status": "success", "data": {"outbox": pending, "groups": n.groups()}}),
    )
    .into_response()
}

/// `?limit=N` (default 100).
#[derive(Debug, Deserialize)]
struct AuditQuery {
    limit: Option<usize>,
}

async fn remediations(State(s): State<AppState>, Query(q): Query<AuditQuery>) -> Response {
    match notifier(&s) {
        Ok(n) => match n.audit(q.limit.unwrap_or(100).min(10_000)) {
            Ok(a) => Json(serde_json::json!({"status": "success", "data": a})).into_response(),
            Err(e) => api_error(StatusCode::INTERNAL_SERVER_ERROR, e),
        },
        Err(r) => *r,
    }
}
