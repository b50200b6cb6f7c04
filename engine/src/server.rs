//! The HTTP server: `/metrics`, the JSON API and health endpoints.
//! `app(state)` builds the router so tests call it without a socket.
//!
//! - `GET /metrics` — predictions and health, OpenMetrics text.
//! - `GET /api/v1/alerts` — pending and firing alerts.
//! - `GET /api/v1/rules` — every rule with its last evaluation, health and last error.
//! - `GET /api/v1/series` — every modelled series with an id.
//! - `GET /api/v1/series/{id}/forecast` — the series' latest point, expectation and forecast path with its band.
//! - `GET /-/healthy`, `GET /-/ready` (ready once every rule has been evaluated).

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::get;
use prognos_models::forecast::Level;
use serde::{Deserialize, Serialize};

use crate::alert::Alert;
use crate::evaluate::{horizon_label, steps};
use crate::exposition::CONTENT_TYPE;
use crate::scheduler::{BAND_LEVEL, Engine, Health, label_hash};

/// What the handlers share.
pub type AppState = Arc<Engine>;

/// The router.
pub fn app(engine: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/-/healthy", get(|| async { "prognos is healthy.\n" }))
        .route("/-/ready", get(ready))
        .route("/api/v1/alerts", get(alerts))
        .route("/api/v1/rules", get(rules))
        .route("/api/v1/series", get(series))
        .route("/api/v1/series/{id}/forecast", get(forecast))
        .with_state(engine)
}

async fn metrics(State(e): State<AppState>) -> Response {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], e.metrics.encode()).into_response()
}

async fn ready(State(e): State<AppState>) -> Response {
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

async fn alerts(State(e): State<AppState>) -> Response {
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

async fn rules(State(e): State<AppState>) -> Response {
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

async fn series(State(e): State<AppState>) -> Response {
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
}

async fn forecast(
    State(e): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<ForecastQuery>,
) -> Response {
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
            return ok(serde_json::json!({
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
            }))
            .into_response();
        }
    }
    (
        StatusCode::NOT_FOUND,
        Json(serde_json::json!({"status": "error", "error": format!("no series with id {id}")})),
    )
        .into_response()
}
