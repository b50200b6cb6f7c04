//! What the service handlers share: their state, JSON errors, body parsing,
//! paging.

use std::sync::{Arc, OnceLock};

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::cli::ServiceKind;
use crate::db::{Db, DbError};
use crate::errors::chain;
use crate::incident::Incidents;
use crate::mes::MesMetrics;
use crate::queue::Link;
use crate::s3::S3;

/// A value set once, when its backend has connected; shared by clones.
#[derive(Debug)]
pub struct Ready<T>(Arc<OnceLock<T>>);

impl<T> Clone for Ready<T> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<T> Default for Ready<T> {
    fn default() -> Self {
        Self(Arc::new(OnceLock::new()))
    }
}

impl<T> Ready<T> {
    /// Sets the value; `false` if it was already set.
    pub fn set(&self, value: T) -> bool {
        self.0.set(value).is_ok()
    }

    pub fn get(&self) -> Option<&T> {
        self.0.get()
    }
}

/// Limits on what incidents may consume.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_cpu_cores: f64,
    pub max_leak_bytes: u64,
}

/// MES settings.
#[derive(Clone, Copy, Debug)]
pub struct MesSettings {
    pub failure_rate: f64,
    pub prefetch: u16,
}

/// State of every service (fields a service does not use stay unset).
#[derive(Clone, Debug)]
pub struct AppState {
    pub service: ServiceKind,
    pub db: Ready<Db>,
    /// MES only.
    pub queue: Ready<Arc<Link>>,
    /// Shop with `--s3-*` only.
    pub s3: Option<Arc<S3>>,
    pub incidents: Arc<Incidents>,
    pub limits: Limits,
    pub mes: MesSettings,
    pub mes_metrics: Arc<MesMetrics>,
}

impl AppState {
    /// The database, or 503 while still connecting.
    pub fn db(&self) -> Result<&Db, ApiError> {
        self.db
            .get()
            .ok_or_else(|| ApiError::Unavailable("PostgreSQL not connected yet".into()))
    }

    /// The RabbitMQ link, or 503 while still connecting.
    pub fn queue(&self) -> Result<&Arc<Link>, ApiError> {
        self.queue
            .get()
            .ok_or_else(|| ApiError::Unavailable("RabbitMQ not connected yet".into()))
    }
}

/// An error answered as `{"error": "..."}` with its status.
#[derive(Debug)]
pub enum ApiError {
    BadRequest(String),
    NotFound(String),
    Unauthorized(String),
    NotImplemented(String),
    Unavailable(String),
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Self::BadRequest(m)
            | Self::NotFound(m)
            | Self::Unauthorized(m)
            | Self::NotImplemented(m)
            | Self::Unavailable(m)
            | Self::Internal(m) => m,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let mut response =
            (status, Json(serde_json::json!({ "error": self.message() }))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        let text = chain(&e);
        if e.is_connection() {
            Self::Unavailable(format!("database unavailable: {text}"))
        } else {
            tracing::warn!(error = %text, "query failed");
            Self::Internal(format!("database error: {text}"))
        }
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(e: tokio_postgres::Error) -> Self {
        DbError::from(e).into()
    }
}

/// Parses a JSON request body; a 400 says what was expected.
pub fn parse_json<T: DeserializeOwned>(body: &[u8], expected: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}; expected {expected}")))
}

/// `?limit=&offset=` of list endpoints.
#[derive(Debug, Default, Deserialize)]
pub struct Page {
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

impl Page {
    /// Default page size.
    pub const DEFAULT_LIMIT: i64 = 20;
    /// Largest page size.
    pub const MAX_LIMIT: i64 = 100;

    /// `(limit, offset)` clamped to sane values.
    pub fn bounds(&self) -> (i64, i64) {
        let limit = self
            .limit
            .unwrap_or(Self::DEFAULT_LIMIT)
            .clamp(1, Self::MAX_LIMIT);
        (limit, self.offset.unwrap_or(0).max(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_bounds() {
        assert_eq!(Page::default().bounds(), (20, 0));
        let p = Page {
            limit: Some(1000),
            offset: Some(-3),
        };
        assert_eq!(p.bounds(), (100, 0));
    }

    #[test]
    fn bad_json_says_what_was_expected() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct Note {
            body: String,
        }
        let e = parse_json::<Note>(b"{}", "{\"body\": \"text\"}").unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert!(
            e.message().contains("missing field `body`"),
            "{}",
            e.message()
        );
        assert!(e.message().ends_with("expected {\"body\": \"text\"}"));
    }
}
