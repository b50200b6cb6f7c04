//! The receiving side of signed remediation calls, for anyone writing a
//! receiver in Rust: an axum [`Router`] that verifies the `v1` signature
//! (see [`crate::signature`]) and the timestamp, rejects replays, and hands
//! verified calls to a handler. `examples/remediation_receiver.rs` runs it
//! as a small server.
//!
//! The replay cache remembers, for the tolerance window, each accepted
//! call's signature in canonical form (the decoded HMAC tag, so re-spelling
//! the hex does not make a new call) and its idempotency key. It holds at
//! most [`MAX_REPLAY_ENTRIES`] entries; when full it answers 503 rather than
//! forget an entry whose window is still open.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use crate::signature::{
    IDEMPOTENCY_HEADER, MAX_IDEMPOTENCY_KEY_BYTES, SIGNATURE_HEADER, Signature, SignedRequest,
    TIMESTAMP_HEADER, parse_timestamp, valid_idempotency_key, verify,
};

/// Most entries in a receiver's replay cache (each accepted call takes two:
/// its signature and its key). 100,000 entries is 50,000 calls per tolerance
/// window — far more than a remediation receiver sees — in a few tens of MB
/// at most, so a flood of validly signed calls cannot exhaust memory.
pub const MAX_REPLAY_ENTRIES: usize = 100_000;

/// A call whose signature verified.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The HTTP method, e.g. `POST`.
    pub method: String,
    /// The request path with its query, as signed, e.g. `/restart?x=1`.
    pub path: String,
    /// The `Idempotency-Key` header (the audit id).
    pub idempotency_key: String,
    /// The signed timestamp (Unix seconds).
    pub timestamp: i64,
    /// The raw body.
    pub body: Vec<u8>,
}

type Handler = dyn Fn(Verified) -> serde_json::Value + Send + Sync;

/// What the replay cache remembers of an accepted call.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Seen {
    Signature(Signature),
    Key(String),
}

/// Why the replay cache did not admit a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refused {
    /// Its signature or key was seen within the window.
    Replayed,
    /// No room: the earliest entry expires after `until` (Unix seconds).
    Full { until: i64 },
}

/// Seen signatures and keys with the time after which each may be
/// forgotten, bounded to `capacity` entries.
#[derive(Debug)]
struct ReplayCache {
    capacity: usize,
    until: HashMap<Seen, i64>,
    /// The same entries ordered by expiry, so forgetting is cheap.
    by_expiry: BTreeSet<(i64, Seen)>,
}

impl ReplayCache {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            until: HashMap::new(),
            by_expiry: BTreeSet::new(),
        }
    }

    fn len(&self) -> usize {
        self.until.len()
    }

    /// Forgets entries whose window ended before `now`.
    fn forget_expired(&mut self, now: i64) {
        while let Some((until, _)) = self.by_expiry.first()
            && *until < now
        {
            if let Some((_, seen)) = self.by_expiry.pop_first() {
                self.until.remove(&seen);
            }
        }
    }

    /// Admits a call made of `entries` (each with its expiry) at `now`:
    /// refused if any was seen, or if there is no room for all of them.
    fn admit(&mut self, entries: Vec<(Seen, i64)>, now: i64) -> Result<(), Refused> {
        self.forget_expired(now);
        if entries.iter().any(|(s, _)| self.until.contains_key(s)) {
            return Err(Refused::Replayed);
        }
        if self.len() + entries.len() > self.capacity {
            let until = self.by_expiry.first().map_or(now, |(t, _)| *t);
            return Err(Refused::Full { until });
        }
        for (seen, until) in entries {
            self.by_expiry.insert((until, seen.clone()));
            self.until.insert(seen, until);
        }
        Ok(())
    }
}

struct Inner {
    secret: Vec<u8>,
    tolerance_secs: u64,
    handler: Box<Handler>,
    seen: Mutex<ReplayCache>,
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

/// An axum router for a remediation receiver. Any path and method is
/// accepted if signed; mount it at the root (not under `nest`, which strips
/// the prefix the signature covers).
///
/// - [`SIGNATURE_HEADER`], [`TIMESTAMP_HEADER`] (canonical decimal Unix
///   seconds) and [`IDEMPOTENCY_HEADER`] (1 to
///   [`MAX_IDEMPOTENCY_KEY_BYTES`] visible ASCII characters) are required:
///   missing or malformed → 400;
/// - no `v1` signature matches (another secret; an altered method, path,
///   timestamp, key or body; a malformed signature) or the timestamp is more
///   than `tolerance_secs` away → 401;
/// - a signature (in canonical form) or an idempotency key already accepted
///   within the window → 409 "replayed";
/// - the replay cache is full of entries whose window is open → 503 with
///   `Retry-After`;
/// - otherwise `handler` is called and its JSON answered with 200.
pub fn router<F>(secret: Vec<u8>, tolerance_secs: u64, handler: F) -> Router
where
    F: Fn(Verified) -> serde_json::Value + Send + Sync + 'static,
{
    let inner = Arc::new(Inner {
        secret,
        tolerance_secs,
        handler: Box::new(handler),
        seen: Mutex::new(ReplayCache::new(MAX_REPLAY_ENTRIES)),
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
    let Some(timestamp) = parse_timestamp(ts) else {
        return reject(
            StatusCode::BAD_REQUEST,
            format!("{TIMESTAMP_HEADER} is not Unix seconds in decimal digits"),
        );
    };
    let Some(key) = header(IDEMPOTENCY_HEADER) else {
        return reject(
            StatusCode::BAD_REQUEST,
            format!("missing {IDEMPOTENCY_HEADER} header"),
        );
    };
    if !valid_idempotency_key(key) {
        return reject(
            StatusCode::BAD_REQUEST,
            format!(
                "{IDEMPOTENCY_HEADER} must be 1 to {MAX_IDEMPOTENCY_KEY_BYTES} visible ASCII characters"
            ),
        );
    }
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let request = SignedRequest {
        method: method.as_str(),
        path,
        timestamp,
        idempotency_key: key,
        body: &body,
    };
    let tag = match verify(
        &inner.secret,
        signature,
        &request,
        now,
        inner.tolerance_secs,
    ) {
        Ok(tag) => tag,
        // Forged, altered, malformed or stale: not authenticated.
        Err(e) => return reject(StatusCode::UNAUTHORIZED, e.to_string()),
    };
    let tolerance = i64::try_from(inner.tolerance_secs).unwrap_or(i64::MAX);
    // A signature verifies until its timestamp leaves the window; a key is
    // remembered for a whole window after it was accepted.
    let entries = vec![
        (Seen::Signature(tag), timestamp.saturating_add(tolerance)),
        (Seen::Key(key.to_string()), now.saturating_add(tolerance)),
    ];
    {
        let Ok(mut seen) = inner.seen.lock() else {
            return reject(StatusCode::INTERNAL_SERVER_ERROR, "replay cache poisoned");
        };
        match seen.admit(entries, now) {
            Ok(()) => {}
            Err(Refused::Replayed) => return reject(StatusCode::CONFLICT, "replayed"),
            Err(Refused::Full { until }) => {
                let wait = until.saturating_sub(now).saturating_add(1).max(1);
                let mut r = reject(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "replay cache full; retry later",
                );
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(wait));
                return r;
            }
        }
    }
    let out = (inner.handler)(Verified {
        method: method.as_str().to_string(),
        path: path.to_string(),
        idempotency_key: key.to_string(),
        timestamp,
        body: body.to_vec(),
    });
    (StatusCode::OK, axum::Json(out)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signature::sign;

    const SECRET: &[u8] = b"receiver secret";
    const NOW: i64 = 1_700_000_000;

    fn inner(capacity: usize) -> Inner {
        Inner {
            secret: SECRET.to_vec(),
            tolerance_secs: 300,
            handler: Box::new(|v| serde_json::json!({"key": v.idempotency_key})),
            seen: Mutex::new(ReplayCache::new(capacity)),
        }
    }

    /// A call to `path` with key `key` signed at `ts`, received at `now`.
    fn send(inner: &Inner, path: &str, key: &str, ts: i64, now: i64) -> Response {
        let body = b"{\"action\":\"restart\"}";
        let sig = sign(
            SECRET,
            &SignedRequest {
                method: "POST",
                path,
                timestamp: ts,
                idempotency_key: key,
                body,
            },
        );
        let mut headers = HeaderMap::new();
        headers.insert(SIGNATURE_HEADER, sig.parse().unwrap());
        headers.insert(TIMESTAMP_HEADER, ts.to_string().parse().unwrap());
        headers.insert(IDEMPOTENCY_HEADER, key.parse().unwrap());
        let uri: Uri = path.parse().unwrap();
        handle(
            inner,
            &Method::POST,
            &uri,
            &headers,
            Bytes::from_static(body),
            now,
        )
    }

    #[test]
    fn a_full_replay_cache_refuses_rather_than_forgets() {
        let inner = inner(4);
        assert_eq!(send(&inner, "/a", "k1", NOW, NOW).status(), StatusCode::OK);
        assert_eq!(
            send(&inner, "/a", "k2", NOW + 1, NOW + 1).status(),
            StatusCode::OK
        );
        assert_eq!(inner.seen.lock().unwrap().len(), 4);
        // Full of live entries: a new call waits, with a Retry-After until
        // the first entry's window ends.
        let r = send(&inner, "/a", "k3", NOW + 2, NOW + 2);
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "299");
        // Nothing was forgotten to make room: the first call is still a replay.
        assert_eq!(
            send(&inner, "/a", "k1", NOW, NOW + 3).status(),
            StatusCode::CONFLICT
        );
        // Once the first call's window is over its entries go, and a new call fits.
        assert_eq!(
            send(&inner, "/a", "k3", NOW + 301, NOW + 301).status(),
            StatusCode::OK
        );
        assert_eq!(inner.seen.lock().unwrap().len(), 4);
    }

    #[test]
    fn entries_expire_after_the_tolerance_window() {
        let mut cache = ReplayCache::new(10);
        let key = |k: &str| Seen::Key(k.to_string());
        assert_eq!(cache.admit(vec![(key("a"), 100)], 0), Ok(()));
        assert_eq!(
            cache.admit(vec![(key("a"), 200)], 100),
            Err(Refused::Replayed)
        );
        assert_eq!(cache.admit(vec![(key("a"), 201)], 101), Ok(()));
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.by_expiry.len(), 1);
    }

    #[test]
    fn the_replay_cache_size_is_a_bound_not_a_target() {
        let mut cache = ReplayCache::new(3);
        let key = |k: &str| Seen::Key(k.to_string());
        assert_eq!(cache.admit(vec![(key("a"), 50), (key("b"), 60)], 0), Ok(()));
        assert_eq!(
            cache.admit(vec![(key("c"), 70), (key("d"), 70)], 0),
            Err(Refused::Full { until: 50 })
        );
        assert_eq!(cache.len(), 2, "a refused call adds nothing");
    }
}
