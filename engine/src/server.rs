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
//!
//! [`serve`] runs the router on a listener with the limits of
//! [`ServerSettings`]: slow clients are timed out and connections capped.
//! No response shows a secret: error strings from elsewhere (Prometheus,
//! receivers, the configuration) are shown through [`shown_error`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{get, post};
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use prognos_models::forecast::Level;
use prognos_notifiers::secret::excerpt;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, oneshot};

use crate::alert::Alert;
use crate::evaluate::{horizon_label, steps};
use crate::exposition::CONTENT_TYPE;
pub use crate::http_state::{
    AppState, ReloadRequest, SHOWN_ERROR_CHARS, ServerState, SilenceRequest, authorize,
    bearer_matches, shown_error,
};
pub use crate::rule_state::series_id;
use crate::scheduler::{BAND_LEVEL, Health};

/// How long a client may take to send a request's line and headers, from
/// the moment the server waits for them. A client that trickles a header
/// (slowloris) would otherwise hold its connection forever; 10 s is ample
/// for any real client on a slow link. hyper also runs this timer while a
/// kept-alive connection waits for its next request, so it is the idle
/// keep-alive timeout as well ([`IDLE_TIMEOUT`]).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a kept-alive connection may sit between requests: the same
/// timer as [`HEADER_READ_TIMEOUT`] (hyper waits for the next request's
/// head under it), named for readers looking for an idle timeout.
pub const IDLE_TIMEOUT: Duration = HEADER_READ_TIMEOUT;

/// How long a client may take to send a request's whole body once its
/// headers are in. The API's bodies are a few hundred bytes; 30 s covers a
/// congested link and stops a client that announces a body and stalls.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Most connections served at once; further clients wait in the kernel's
/// accept queue. Each connection holds a task and up to [`MAX_BODY_BYTES`]
/// of buffer: 1,024 of them is far beyond what Prometheus, Grafana and an
/// operator's scripts open, and bounds memory to about 1 GiB worst case.
pub const MAX_CONNECTIONS: usize = 1024;

/// Largest request body accepted, in bytes. The API takes small JSON
/// documents (a silence); 1 MiB leaves room for long comments and no room
/// for a memory attack.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// How long shutdown waits for requests in flight before closing the
/// remaining connections: as long as a body may take, so a request being
/// read is answered.
pub const SHUTDOWN_GRACE: Duration = BODY_READ_TIMEOUT;

/// How long the accept loop pauses after a failed accept (out of file
/// descriptors, mostly), so it does not spin while the condition lasts.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Longest answer of a failed `POST /-/reload`, in characters: every
/// configuration error is one bounded line; this bounds their number.
pub const RELOAD_ERROR_CHARS: usize = 16_000;

/// The limits [`serve`] enforces. [`Default`] gives the constants above;
/// tests shorten the timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerSettings {
    /// See [`HEADER_READ_TIMEOUT`].
    pub header_read_timeout: Duration,
    /// See [`BODY_READ_TIMEOUT`].
    pub body_read_timeout: Duration,
    /// See [`MAX_CONNECTIONS`].
    pub max_connections: usize,
    /// See [`MAX_BODY_BYTES`].
    pub max_body_bytes: usize,
    /// See [`SHUTDOWN_GRACE`].
    pub shutdown_grace: Duration,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            header_read_timeout: HEADER_READ_TIMEOUT,
            body_read_timeout: BODY_READ_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
            max_body_bytes: MAX_BODY_BYTES,
            shutdown_grace: SHUTDOWN_GRACE,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` completes, then stops
/// accepting, lets requests in flight finish (at most
/// `settings.shutdown_grace`) and returns.
///
/// Each connection is HTTP/1.1 with hyper's header read timeout; each
/// request body is read whole under `settings.body_read_timeout` and
/// `settings.max_body_bytes` before the handler runs (408 and 413
/// otherwise); at most `settings.max_connections` are served at once.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    settings: ServerSettings,
    shutdown: impl Future<Output = ()> + Send,
) {
    let app = app.layer(middleware::from_fn_with_state(settings, read_body));
    let permits = Arc::new(Semaphore::new(settings.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(settings.header_read_timeout)
        .keep_alive(true);
    tokio::pin!(shutdown);
    loop {
        // Take a permit before accepting: past the cap, clients wait in
        // the accept queue instead of holding a task here.
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "Accepting a connection failed.");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let conn =
            http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            // Errors are the client's (reset, timed out): nothing to do.
            let _ = conn.await;
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(settings.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("Closed HTTP connections still busy at shutdown.");
    }
}

/// Reads the request body whole, within the time and size limits, before
/// the handler sees it.
async fn read_body(State(settings): State<ServerSettings>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let limited = http_body_util::Limited::new(body, settings.max_body_bytes);
    let collected = tokio::time::timeout(
        settings.body_read_timeout,
        http_body_util::BodyExt::collect(limited),
    )
    .await;
    match collected {
        Ok(Ok(c)) => {
            next.run(Request::from_parts(parts, Body::from(c.to_bytes())))
                .await
        }
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the request body exceeds {} bytes\n",
                settings.max_body_bytes
            ),
        )
            .into_response(),
        Ok(Err(_)) => (StatusCode::BAD_REQUEST, "the request body was cut off\n").into_response(),
        Err(_) => (
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request body took longer than {} s\n",
                settings.body_read_timeout.as_secs_f64()
            ),
        )
            .into_response(),
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
        .merge(crate::ui::routes())
        .fallback(crate::ui::not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
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
            format!(
                "reload failed, the running configuration is kept:\n{}\n",
                excerpt(&e, RELOAD_ERROR_CHARS)
            ),
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
    // A closed store is reopened here once its backoff has passed: file
    // I/O (redb may recover the file), so off the async threads.
    let stores_ok = tokio::task::spawn_blocking({
        let (e, notify) = (e.clone(), s.notify.clone());
        move || e.store_healthy() && notify.is_none_or(|n| n.store_healthy())
    })
    .await
    .unwrap_or(false);
    if !stores_ok {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "prognos is not ready: a store cannot be written (is the disk full? see prognos_store_errors_total and the log).\n",
        )
            .into_response();
    }
    if e.rules.iter().any(|r| r.view().last_eval.is_none()) {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "prognos is not ready: rules not yet evaluated.\n",
        )
            .into_response();
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
        let view = r.view();
        for a in &view.alerts {
            out.push(
                serde_json::to_value(AlertView {
                    rule: &view.id,
                    alert: a,
                })
                .unwrap_or_default(),
            );
        }
    }
    ok(serde_json::json!({ "alerts": out })).into_response()
}

#[derive(Serialize)]
struct RuleSummary {
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
    let out: Vec<RuleSummary> = e
        .rules
        .iter()
        .map(|r| {
            let v = r.view();
            RuleSummary {
                id: v.id.clone(),
                group: v.group.clone(),
                name: v.rule.name.clone(),
                expr: v.rule.expr.clone(),
                model: v.rule.model.to_string(),
                health: v.health,
                last_error: v.last_error.as_deref().map(shown_error),
                last_evaluation: v.last_eval,
                evaluation_seconds: v.last_duration.as_secs_f64(),
                series: v.series.len(),
                alerts_active: v.alerts.len(),
            }
        })
        .collect();
    ok(serde_json::json!({ "rules": out })).into_response()
}

/// Query of the series list.
#[derive(Debug, Deserialize)]
pub struct SeriesQuery {
    /// Only the series of this rule (`group/alert`).
    pub rule: Option<String>,
}

#[derive(Serialize)]
struct SeriesItem<'a> {
    id: &'a str,
    rule: &'a str,
    labels: &'a crate::modelled::Labels,
    model: &'a str,
    last_timestamp: i64,
    last_value: f64,
    anomaly_score: f64,
}

#[derive(Serialize)]
struct SeriesList<'a> {
    series: Vec<SeriesItem<'a>>,
}

async fn series(State(s): State<AppState>, Query(q): Query<SeriesQuery>) -> Response {
    let e = s.engine.read().await.clone();
    let views: Vec<_> = e
        .rules
        .iter()
        .filter(|r| q.rule.as_deref().is_none_or(|id| r.id == id))
        .map(|r| r.view())
        .collect();
    // Serialized straight from the views: 10,000 series are 2 MB of JSON.
    let series = views
        .iter()
        .flat_map(|v| {
            v.series.iter().map(|s| SeriesItem {
                id: &s.id,
                rule: &v.id,
                labels: &s.labels,
                model: s.model,
                last_timestamp: s.last_ts,
                last_value: s.last_value,
                anomaly_score: s.score,
            })
        })
        .collect();
    ok(SeriesList { series }).into_response()
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
    // Found in the views, which never wait for an evaluation.
    let found = e.rules.iter().find_map(|r| {
        let view = r.view();
        let at = view.series.iter().position(|s| s.id == id)?;
        Some((r.clone(), view, at))
    });
    let Some((handle, view, at)) = found else {
        return not_found(&id);
    };
    let s = &view.series[at];
    let rule = &view.rule;
    let step = s.step;
    let default_steps = rule
        .horizons
        .iter()
        .map(|&h| steps(h, step))
        .max()
        .unwrap_or(12);
    let n = q
        .steps
        .unwrap_or(default_steps)
        .clamp(1, crate::evaluate::MAX_LOOKAHEAD_STEPS);
    // The path needs the model: its rule's lock is only ever held for
    // in-memory work, never across a query or a fit.
    let path = {
        let rt = handle.lock().await;
        let Some(m) = rt.series.get(&s.key) else {
            return not_found(&id);
        };
        let f = m.forecast(n, level);
        let last_ts = m.last_ts;
        (0..f.len())
            .map(|i| {
                serde_json::json!({
                    "timestamp": last_ts + step * (i as i64 + 1),
                    "yhat": f.point[i], "yhat_lower": f.lower[i], "yhat_upper": f.upper[i],
                })
            })
            .collect::<Vec<_>>()
    };
    let window = q
        .history
        .unwrap_or(DEFAULT_HISTORY_SECS)
        .clamp(0, 30 * 86_400);
    let mut body = serde_json::json!({
        "id": id,
        "rule": view.id,
        "labels": s.labels,
        "model": s.model,
        "level": BAND_LEVEL,
        "last": {"timestamp": s.last_ts, "value": s.last_value, "anomaly_score": s.score},
        "expected": s.expected.map(|(p, lo, hi)| serde_json::json!({"yhat": p, "yhat_lower": lo, "yhat_upper": hi})),
        "horizons": rule.horizons.iter().map(|&h| horizon_label(h)).collect::<Vec<_>>(),
        "time_to_threshold": s.eta_text,
        "forecast": path,
    });
    // Prometheus holds the history.
    let history = if window > 0 {
        match e.recent_history(rule, &s.labels, s.last_ts, window).await {
            Ok(h) => serde_json::json!(
                h.iter()
                    .map(|(t, v)| serde_json::json!({"timestamp": t, "value": v}))
                    .collect::<Vec<_>>()
            ),
            Err(err) => serde_json::json!({"error": shown_error(&err.to_string())}),
        }
    } else {
        serde_json::json!([])
    };
    body["history"] = history;
    ok(body).into_response()
}

fn not_found(id: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Json(serde_json::json!({"status": "error", "error": format!("no series with id {}", excerpt(id, 64))})),
    )
        .into_response()
}

fn notifier(s: &ServerState) -> Result<prognos_notifiers::notifier::Notifier, Box<Response>> {
    s.notifier().ok_or_else(|| {
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
        Json(serde_json::json!({"status": "error", "error": shown_error(&message.to_string())})),
    )
        .into_response()
}

async fn silences(State(s): State<AppState>) -> Response {
    match notifier(&s) {
        Ok(n) => Json(serde_json::json!({"status": "success", "data": n.silences().await}))
            .into_response(),
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
    let req = SilenceRequest {
        matchers: match req.matchers {
            MatcherInput::One(t) => vec![t],
            MatcherInput::Many(v) => v,
        },
        duration: req.duration,
        ends_at: req.ends_at,
        created_by: req.created_by.unwrap_or_else(|| "api".to_string()),
        comment: req.comment.unwrap_or_default(),
    };
    match crate::http_state::add_silence(&n, req, crate::timestamp::unix_now()).await {
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
        Ok(n) => match n.expire_silence(&id, crate::timestamp::unix_now()).await {
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
    let outbox = match n.outbox().await {
        Ok(o) => o,
        Err(e) => return api_error(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let pending: Vec<serde_json::Value> = outbox
        .iter()
        .map(|e| {
            serde_json::json!({
                "id": e.id, "target": e.target, "key": e.key,
                "createdAt": e.created_at, "nextAttemptAt": e.next_attempt_at,
                "attempts": e.attempts,
                "lastError": e.last_error.as_deref().map(shown_error),
            })
        })
        .collect();
    Json(
        serde_json::json!({"status": "success", "data": {"outbox": pending, "groups": n.groups().await}}),
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
        Ok(n) => match n.audit(q.limit.unwrap_or(100).min(10_000)).await {
            Ok(a) => Json(serde_json::json!({"status": "success", "data": a})).into_response(),
            Err(e) => api_error(StatusCode::INTERNAL_SERVER_ERROR, e),
        },
        Err(r) => *r,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::Engine;
    use prognos_notifiers::secret::Secret;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::sync::{RwLock, mpsc};

    /// Safety net of every wait below: a test that hangs fails instead.
    /// Never what is asserted.
    const SAFETY: Duration = Duration::from_secs(30);

    /// Settings with a short header timeout (real sockets cannot run on
    /// paused time), everything else as configured.
    fn quick() -> ServerSettings {
        ServerSettings {
            header_read_timeout: Duration::from_millis(300),
            body_read_timeout: Duration::from_millis(300),
            ..ServerSettings::default()
        }
    }

    /// Serves a small router with `settings` on loopback; returns its
    /// address, the shutdown trigger and the server task.
    async fn start(
        settings: ServerSettings,
    ) -> (
        std::net::SocketAddr,
        oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    ) {
        let app = Router::new().route("/", get(|| async { "ok" })).route(
            "/echo",
            post(|body: axum::body::Bytes| async move { body.len().to_string() }),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(serve(listener, app, settings, async move {
            let _ = stopped.await;
        }));
        (addr, stop, task)
    }

    /// Reads until the server closes the connection; what it sent.
    async fn read_to_close(stream: &mut TcpStream) -> String {
        let mut out = Vec::new();
        let read = tokio::time::timeout(SAFETY, async {
            let mut buf = [0u8; 4096];
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => out.extend_from_slice(&buf[..n]),
                }
            }
        })
        .await;
        assert!(read.is_ok(), "the server never closed the connection");
        String::from_utf8_lossy(&out).into_owned()
    }

    async fn get_ok(addr: std::net::SocketAddr) -> String {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        read_to_close(&mut s).await
    }

    #[tokio::test]
    async fn a_client_stalling_in_its_headers_is_disconnected() {
        let (addr, _stop, _task) = start(quick()).await;
        assert!(get_ok(addr).await.starts_with("HTTP/1.1 200"));
        let mut slow = TcpStream::connect(addr).await.unwrap();
        slow.write_all(b"GET / HTTP/1.1\r\nHo").await.unwrap();
        let answer = read_to_close(&mut slow).await;
        assert!(!answer.contains("200 OK"), "{answer}");
    }

    #[tokio::test]
    async fn an_idle_kept_alive_connection_is_closed() {
        let (addr, _stop, _task) = start(quick()).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let answer = read_to_close(&mut s).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("ok"), "{answer}");
    }

    #[tokio::test]
    async fn a_client_stalling_in_its_body_gets_408() {
        let (addr, _stop, _task) = start(quick()).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
            .await
            .unwrap();
        let answer = read_to_close(&mut s).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    }

    #[tokio::test]
    async fn a_body_over_the_limit_gets_413_and_one_within_it_is_served() {
        let settings = ServerSettings {
            max_body_bytes: 64,
            ..ServerSettings::default()
        };
        let (addr, _stop, _task) = start(settings).await;
        for (len, status) in [(64usize, "200"), (65, "413")] {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let head = format!(
                "POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {len}\r\n\r\n"
            );
            s.write_all(head.as_bytes()).await.unwrap();
            s.write_all(&vec![b'a'; len]).await.unwrap();
            let answer = read_to_close(&mut s).await;
            assert!(
                answer.starts_with(&format!("HTTP/1.1 {status}")),
                "{len}: {answer}"
            );
        }
    }

    #[tokio::test]
    async fn connections_past_the_cap_wait_for_a_free_one() {
        let settings = ServerSettings {
            max_connections: 1,
            ..ServerSettings::default()
        };
        let (addr, _stop, _task) = start(settings).await;
        let mut first = TcpStream::connect(addr).await.unwrap();
        let mut second = TcpStream::connect(addr).await.unwrap();
        second
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        // The first connection is served (a full round trip on it) ...
        first
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(SAFETY, first.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        // ... while the second, past the cap, has had no answer.
        let mut probe = [0u8; 16];
        assert!(
            matches!(second.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "the second connection was served past the cap"
        );
        drop(first);
        assert!(read_to_close(&mut second).await.starts_with("HTTP/1.1 200"));
    }

    #[tokio::test]
    async fn shutdown_closes_idle_connections_and_returns() {
        let (addr, stop, task) = start(ServerSettings::default()).await;
        let mut idle = TcpStream::connect(addr).await.unwrap();
        idle.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(SAFETY, idle.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        stop.send(()).unwrap();
        assert!(tokio::time::timeout(SAFETY, task).await.is_ok());
        read_to_close(&mut idle).await;
        assert!(TcpStream::connect(addr).await.is_err(), "still listening");
    }

    #[test]
    fn only_the_exact_token_is_accepted() {
        let token = "0123456789abcdef0123";
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::AUTHORIZATION, v.parse().unwrap());
            h
        };
        assert!(bearer_matches(token, &with(&format!("Bearer {token}"))));
        for wrong in [
            "Bearer 0123456789abcdef012",
            "Bearer 0123456789abcdef01234",
            "Bearer 0123456789abcdef0124",
            "Bearer ",
            "Bearer 0",
            "0123456789abcdef0123",
            "Basic 0123456789abcdef0123",
        ] {
            assert!(!bearer_matches(token, &with(wrong)), "{wrong}");
        }
        assert!(!bearer_matches(token, &HeaderMap::new()));
    }

    #[test]
    fn shown_errors_redact_urls_and_are_bounded() {
        let e = shown_error(
            "error sending request for url (http://admin:PWCANARY@prom:9090/api/v1/query?token=TKCANARY&x=1): connection refused",
        );
        assert!(!e.contains("PWCANARY") && !e.contains("TKCANARY"), "{e}");
        assert!(
            e.contains("http://REDACTED@prom:9090/api/v1/query?token=REDACTED&x=1)"),
            "{e}"
        );
        assert!(e.ends_with("connection refused"), "{e}");
        let long = shown_error(&"y".repeat(1 << 20));
        assert!(long.len() < SHOWN_ERROR_CHARS + 40, "{}", long.len());
    }

    #[test]
    fn debug_of_the_state_hides_the_admin_token() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("prognos.yml");
        std::fs::write(&main, "global:\n  prometheus:\n    url: http://127.0.0.1:9090\n  state_dir: .state\nrule_files: []\n").unwrap();
        let config = crate::config::load(&main).unwrap_or_else(|e| panic!("{e:?}"));
        let store =
            Arc::new(crate::alert::AlertStore::open(&dir.path().join("state.redb")).unwrap());
        let client = crate::prom::PromClient::new(crate::prom::ClientSettings::default()).unwrap();
        let engine = Engine::new(
            config,
            crate::config::Shard::default(),
            client,
            store,
            Arc::new(crate::alert::LogSink),
            Arc::new(crate::exposition::Metrics::new()),
        )
        .unwrap();
        let (tx, _rx) = mpsc::channel(1);
        let state = ServerState {
            engine: RwLock::new(Arc::new(engine)),
            reload: Some((Secret::new("CANARY-admin-token"), tx)),
            notify: None,
        };
        let s = format!("{state:?}");
        assert!(!s.contains("CANARY"), "{s}");
        assert!(s.contains("<secret>"), "{s}");
    }
}
