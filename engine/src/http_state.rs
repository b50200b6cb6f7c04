//! What the HTTP handlers share — the engine in force, the reload channel
//! and admin token, the notifications — and the rules every response
//! follows: mutating requests need the bearer token, and errors of other
//! components are shown redacted ([`shown_error`]). The API
//! ([`crate::server`]) and the web UI ([`crate::ui`]) both build on it.

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use prognos_notifiers::secret::{Secret, constant_time_eq, excerpt, redact_url_str};
use tokio::sync::{RwLock, mpsc, oneshot};

use crate::notify::NotifySink;
use crate::scheduler::Engine;

/// A request to reload the configuration, answered with the outcome.
pub type ReloadRequest = oneshot::Sender<Result<(), String>>;

/// What the handlers share: the engine in force (swapped on reload) and,
/// when enabled, the way to ask for a reload. `Debug` never prints the
/// admin token (a [`Secret`]).
#[derive(Debug)]
pub struct ServerState {
    /// The engine in force.
    pub engine: RwLock<Arc<Engine>>,
    /// Bearer token and channel for `POST /-/reload`; None: the endpoint is
    /// off. The token also guards the other mutating endpoints (silences).
    pub reload: Option<(Secret, mpsc::Sender<ReloadRequest>)>,
    /// The notifications, for the silence, notification and remediation endpoints.
    pub notify: Option<Arc<NotifySink>>,
}

/// The shared state of the handlers.
pub type AppState = Arc<ServerState>;

/// Longest error string of another component shown in a response, in
/// characters: a Prometheus or receiver error is a line or two; a longer
/// one is cut rather than relayed whole.
pub const SHOWN_ERROR_CHARS: usize = 1000;

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

/// An error string of another component as a response may show it: URLs
/// in it redacted (user info, keys in the query) and cut to
/// [`SHOWN_ERROR_CHARS`].
pub fn shown_error(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(SHOWN_ERROR_CHARS));
    let mut rest = text;
    while let Some(start) = find_url(rest) {
        out.push_str(&rest[..start]);
        let len = rest[start..]
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`'))
            .unwrap_or(rest.len() - start);
        // A trailing `)`, `,` or `.` belongs to the sentence, not the URL.
        let url = rest[start..start + len].trim_end_matches([')', ',', '.', ';', ':']);
        out.push_str(&redact_url_str(url));
        rest = &rest[start + url.len()..];
    }
    out.push_str(rest);
    excerpt(&out, SHOWN_ERROR_CHARS)
}

/// Where the first `http://` or `https://` URL of `text` starts.
fn find_url(text: &str) -> Option<usize> {
    let lower = text.to_ascii_lowercase();
    match (lower.find("http://"), lower.find("https://")) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Checks the bearer token of a mutating request.
pub fn authorize(s: &ServerState, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let Some((token, _)) = &s.reload else {
        return Err(Box::new(
            (
                StatusCode::FORBIDDEN,
                "changes over HTTP are off: start prognos with --admin-token-file\n",
            )
                .into_response(),
        ));
    };
    if !bearer_matches(token.expose(), headers) {
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

/// Whether `headers` carry `Authorization: Bearer <token>`, compared in
/// constant time whatever the lengths (the token guards changes).
pub fn bearer_matches(token: &str, headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| constant_time_eq(given.as_bytes(), token.as_bytes()))
}

impl ServerState {
    /// The notifier in force, if notifications are configured.
    pub fn notifier(&self) -> Option<prognos_notifiers::notifier::Notifier> {
        self.notify.as_ref().and_then(|n| n.current())
    }

    /// Whether `given` is the admin token, compared in constant time; false
    /// when changes over HTTP are off.
    pub fn token_matches(&self, given: &str) -> bool {
        self.reload
            .as_ref()
            .is_some_and(|(t, _)| constant_time_eq(given.as_bytes(), t.expose().as_bytes()))
    }
}

/// A silence asked for over HTTP (the API's JSON or the UI's form).
#[derive(Debug, Default)]
pub struct SilenceRequest {
    /// Matcher texts (`a="b", c=~"d"`), each possibly several.
    pub matchers: Vec<String>,
    /// How long from now (`2h`), unless `ends_at` is given.
    pub duration: Option<String>,
    /// RFC 3339 end.
    pub ends_at: Option<String>,
    /// Who asks.
    pub created_by: String,
    /// Why.
    pub comment: String,
}

/// Adds the silence `req` asks for at `now`; its id, or what is wrong with
/// the request (which field, what was expected) or the notifier's refusal.
pub async fn add_silence(
    n: &prognos_notifiers::notifier::Notifier,
    req: SilenceRequest,
    now: i64,
) -> Result<String, String> {
    let mut matchers = Vec::new();
    for t in &req.matchers {
        matchers.extend(
            prognos_notifiers::matcher::parse_matchers(t).map_err(|e| format!("matchers: {e}"))?,
        );
    }
    if matchers.is_empty() {
        return Err("matchers: give at least one, e.g. service=\"mes-api\"".to_string());
    }
    let ends_at = match (req.duration.as_deref(), req.ends_at.as_deref()) {
        (Some(d), None) => {
            let d = crate::config::parse_duration(d).map_err(|e| format!("duration: {e}"))?;
            now.saturating_add(i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        }
        (None, Some(t)) => {
            crate::timestamp::parse(t)
                .map_err(|e| format!("endsAt: {e}"))?
                .0
        }
        _ => {
            return Err("give exactly one of duration (\"2h\") and endsAt (RFC 3339)".to_string());
        }
    };
    n.add_silence(matchers, now, ends_at, &req.created_by, &req.comment)
        .await
        .map_err(|e| e.to_string())
}
