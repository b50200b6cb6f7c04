//! Admin API: incident injection, optionally behind a bearer token.
//!
//! | endpoint | answer |
//! | --- | --- |
//! | `POST /admin/incidents` `{"kind": "memory_leak", "duration_seconds": 600, "intensity": 1.0}` | 200, the active incident; 400 with what was expected on a bad body, unknown kind or kind not available here |
//! | `GET /admin/incidents` | `{"service", "available": [kinds], "active": [incidents with remaining_seconds]}` |
//! | `DELETE /admin/incidents/{kind}` | 200, the stopped incident; 404 if not active |
//!
//! With `--admin-token-file`, every `/admin/*` request needs
//! `Authorization: Bearer <token>` (401 otherwise).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Serialize;

use crate::api::{ApiError, AppState};
use crate::faults;
use crate::incident::{Capabilities, IncidentError, IncidentKind, IncidentView, parse_request};

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("cannot read admin token file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("admin token file {0} is empty")]
    Empty(String),
}

/// Reads the admin token (surrounding whitespace ignored).
pub fn read_token_file(path: &Path) -> Result<String, TokenError> {
    let text = std::fs::read_to_string(path).map_err(|source| TokenError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(TokenError::Empty(path.display().to_string()));
    }
    Ok(token.to_owned())
}

/// Compares in time independent of where the first difference is.
fn same_token(given: &[u8], expected: &[u8]) -> bool {
    given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

async fn require_token(State(token): State<Arc<str>>, request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(given) if same_token(given.as_bytes(), token.as_bytes()) => next.run(request).await,
        Some(_) => ApiError::Unauthorized("wrong admin token".into()).into_response(),
        None => ApiError::Unauthorized(
            "admin token required: send Authorization: Bearer <token from --admin-token-file>"
                .into(),
        )
        .into_response(),
    }
}

/// The admin routes, behind `token` if given.
pub fn routes(token: Option<Arc<str>>) -> Router<AppState> {
    let router = Router::new()
        .route("/admin/incidents", get(list).post(start))
        .route("/admin/incidents/{kind}", delete(stop));
    match token {
        Some(token) => router.route_layer(middleware::from_fn_with_state(token, require_token)),
        None => router,
    }
}

fn capabilities(state: &AppState) -> Capabilities {
    Capabilities {
        service: state.service,
        s3: state.s3.is_some(),
    }
}

fn bad_request(e: IncidentError) -> ApiError {
    match e {
        IncidentError::NotActive(_) => ApiError::NotFound(e.to_string()),
        _ => ApiError::BadRequest(e.to_string()),
    }
}

async fn start(State(state): State<AppState>, body: Bytes) -> Result<Json<IncidentView>, ApiError> {
    let request = parse_request(&body, &capabilities(&state)).map_err(bad_request)?;
    let (view, lease) = state.incidents.start(request, Instant::now());
    faults::launch(&state, request.kind, request.intensity, lease);
    Ok(Json(view))
}

#[derive(Debug, Serialize)]
struct Listing {
    service: &'static str,
    available: Vec<IncidentKind>,
    active: Vec<IncidentView>,
}

async fn list(State(state): State<AppState>) -> Json<Listing> {
    Json(Listing {
        service: state.service.name(),
        available: capabilities(&state).kinds(),
        active: state.incidents.list(Instant::now()),
    })
}

async fn stop(
    State(state): State<AppState>,
    UrlPath(kind): UrlPath<String>,
) -> Result<Json<IncidentView>, ApiError> {
    let kind = IncidentKind::from_name(&kind).map_err(bad_request)?;
    let view = state
        .incidents
        .stop(kind, Instant::now())
        .map_err(bad_request)?;
    tracing::info!(%kind, "incident stopped by request");
    Ok(Json(view))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        assert!(same_token(b"s3cret", b"s3cret"));
        assert!(!same_token(b"s3cret", b"s3creT"));
        assert!(!same_token(b"s3cre", b"s3cret"));
        assert!(!same_token(b"", b"s3cret"));
    }

    #[test]
    fn token_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "  abc123\n").unwrap();
        assert_eq!(read_token_file(&path).unwrap(), "abc123");
        std::fs::write(&path, "\n").unwrap();
        assert!(matches!(read_token_file(&path), Err(TokenError::Empty(_))));
        assert!(matches!(
            read_token_file(&dir.path().join("missing")),
            Err(TokenError::Read { .. })
        ));
    }
}
