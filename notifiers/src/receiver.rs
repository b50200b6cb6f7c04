//! The receiving side of signed remediation calls, for anyone writing a
//! receiver in Rust: an axum [`Router`] that verifies the signature and the
//! timestamp, rejects replays, and hands verified calls to a handler.
//! `examples/remediation_receiver.rs` runs it as a small server.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use crate::remediation::IDEMPOTENCY_HEADER;
use crate::signature::{SIGNATURE_HEADER, TIMESTAMP_HEADER, verify};

/// A call whose signature verified.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The request path, e.g. `/restart`.
    pub path: String,
    /// The `Idempotency-Key` header (the audit id), if sent.
    pub idempotency_key: Option<String>,
    /// The signed timestamp (Unix seconds).
    pub timestamp: i64,
    /// The raw body.
    pub body: Vec<u8>,
}

type Handler = dyn Fn(Verified) -> serde_json::Value + Send + Sync;

struct Inner {
    secret: Vec<u8>,
    tolerance_secs: i64,
    handler: Box<Handler>,
    /// `key:<idempotency key>` / `sig:<signature>` → when it may be forgotten.
    seen: Mutex<HashMap<String, i64>>,
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn reject(status: StatusCode, message: impl Into<String>) -> Response {
    (status, message.into()).into_response()
}

/// An axum router for a remediation receiver. Any path accepts POST; the
/// call must carry [`SIGNATURE_HEADER`] and [`TIMESTAMP_HEADER`] (missing or
/// unparsable → 400). A signature that does not match (another secret, an
/// altered body) or a timestamp outside `tolerance_secs` → 401. An
/// `Idempotency-Key` or a signature already seen within the tolerance window
/// → 409 "replayed". Otherwise `handler` is called and its JSON answered
/// with 200. Seen keys are forgotten once their window has passed.
pub fn router<F>(secret: Vec<u8>, tolerance_secs: i64, handler: F) -> Router
where
    F: Fn(Verified) -> serde_json::Value + Send + Sync + 'static,
{
    let inner = Arc::new(Inner {
        secret,
        tolerance_secs,
        handler: Box::new(handler),
        seen: Mutex::new(HashMap::new()),
    });
    Router::new().fallback(
        move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
            let inner = Arc::clone(&inner);
            async move { handle(&inner, &method, &uri, &headers, body, now_secs()) }
        },
    )
}

fn handle(
    inner: &Inner,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
    now: i64,
) -> Response {
    if method != Method::POST {
        return reject(StatusCode::METHOD_NOT_ALLOWED, "only POST is accepted");
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let Some(signature) = header(SIGNATURE_HEADER) else {
        return reject(
            StatusCode::BAD_REQUEST,
            format!("missing {SIGNATURE_HEADER} header"),
        );
    };
    let Some(ts) = header(TIMESTAMP_HEADER) else {
        return reject(
            StatusCode::BAD_REQUEST,
            format!("missing {TIMESTAMP_HEADER} header"),
        );
    };
    let Ok(timestamp) = ts.trim().parse::<i64>() else {
        return reject(
            StatusCode::BAD_REQUEST,
            format!("{TIMESTAMP_HEADER} is not Unix seconds"),
        );
    };
    if let Err(e) = verify(
        &inner.secret,
        signature,
        timestamp,
        &body,
        now,
        inner.tolerance_secs,
    ) {
        // Forged, altered, malformed or stale: not authenticated.
        return reject(StatusCode::UNAUTHORIZED, e.to_string());
    }
    let idempotency_key = header(IDEMPOTENCY_HEADER).map(str::to_string);
    {
        // Only verified calls reach here, so strangers cannot fill the map.
        let Ok(mut seen) = inner.seen.lock() else {
            return reject(StatusCode::INTERNAL_SERVER_ERROR, "replay cache poisoned");
        };
        seen.retain(|_, until| *until >= now);
        let mut keys = vec![format!("sig:{signature}")];
        if let Some(k) = &idempotency_key {
            keys.push(format!("key:{k}"));
        }
        if keys.iter().any(|k| seen.contains_key(k)) {
            return reject(StatusCode::CONFLICT, "replayed");
        }
        // A signature is replayable until its timestamp leaves the window; a
        // key for a whole window after it was seen.
        let sig_until = timestamp.saturating_add(inner.tolerance_secs);
        let key_until = now.saturating_add(inner.tolerance_secs);
        for k in keys {
            let until = if k.starts_with("sig:") {
                sig_until
            } else {
                key_until
            };
            seen.insert(k, until);
        }
    }
    let out = (inner.handler)(Verified {
        path: uri.path().to_string(),
        idempotency_key,
        timestamp,
        body: body.to_vec(),
    });
    (StatusCode::OK, axum::Json(out)).into_response()
}
