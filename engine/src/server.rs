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
//!   `--reload-token-file`, and then only with `Authorization: Bearer <token>`.

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
use crate::scheduler::{BAND_LEVEL, Engine, Health, label_hash};

/// A request to reload the configuration, answered with the outcome.
pub type ReloadRequest = oneshot::Sender<Result<(), String>>;

/// What the handlers share: the engine in force (swapped on reload) and,
/// when enabled, the way to ask for a reload.
#[derive(Debug)]
pub struct ServerState {
    /// The engine in force.
    pub engine: RwLock<Arc<Engine>>,
    /// Bearer token and channel for `POST /-/reload`; None: the endpoint is off.
    pub reload: Option<(String, mpsc::Sender<ReloadRequest>)>,
}

/// The shared state of the handlers.
pub type AppState = Arc<ServerState>;

impl ServerState {
    /// State serving `engine`, without the reload endpoint.
    pub fn new(engine: Arc<Engine>) -> AppState {
        Arc::new(Self {
            engine: RwLock::new(engine),
            reload: None,
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
        .with_state(state)
}

async fn reload(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let Some((token, tx)) = &s.reload else {
        return (
            StatusCode::FORBIDDEN,
            "reload over HTTP is off: start prognos with --reload-token-file\n",
        )
            .into_response();
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if given != Some(token.as_str()) {
        return (
            StatusCode::UNAUTHORIZED,
            "a valid bearer token is required\n",
        )
            .into_response();
    }
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
