//! Serving the registry: `GET /metrics` in the OpenMetrics text format.
//!
//! Use [`encode_text`] (not `prometheus_client::encoding::text::encode`) to
//! encode a registry holding summaries: it adds their lines (see
//! [`summary`](crate::summary)).

use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::text::{encode_eof, encode_registry};
use prometheus_client::registry::Registry;

use crate::summary::with_summary_sink;

/// Content type of the OpenMetrics text exposition.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Encodes `registry` as an OpenMetrics text exposition ending in `# EOF`,
/// including the summaries registered with
/// [`SummaryFamily::register`](crate::summary::SummaryFamily::register).
pub fn encode_text(registry: &Registry) -> Result<String, std::fmt::Error> {
    let (encoded, summaries) = with_summary_sink(|| {
        let mut out = String::new();
        encode_registry(&mut out, registry).map(|()| out)
    });
    let mut out = encoded?;
    out.push_str(&summaries);
    encode_eof(&mut out)?;
    Ok(out)
}

/// A router serving `GET /metrics` from `registry` (not instrumented).
///
/// Prefer [`with_metrics`]. If you merge by hand, merge the instrumented app
/// *into* this router (`metrics_router(r).merge(app)`): axum's
/// `app.merge(metrics_router(r))` replaces the app's instrumented default
/// 404 fallback with an uninstrumented one, and unmatched requests go
/// uncounted.
pub fn metrics_router(registry: Arc<Registry>) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let registry = Arc::clone(&registry);
            async move { scrape(&registry) }
        }),
    )
}

/// Adds `GET /metrics` to an already instrumented `app`, keeping the app's
/// (instrumented) fallback so unmatched requests are still counted, and
/// leaving scrapes out of the HTTP metrics.
pub fn with_metrics(app: Router, registry: Arc<Registry>) -> Router {
    metrics_router(registry).merge(app)
}

fn scrape(registry: &Registry) -> Response {
    match encode_text(registry) {
        Ok(body) => ([(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], body).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "encoding metrics failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "encoding metrics failed\n",
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::counter::Counter;

    #[test]
    fn encode_text_appends_summaries_before_eof() {
        let mut registry = Registry::default();
        let c: Counter = Counter::default();
        c.inc();
        registry.register("jobs", "Jobs", c);
        crate::http::HttpMetrics::new(&mut registry);
        let text = encode_text(&registry).unwrap();
        assert!(text.contains("jobs_total 1\n"));
        assert!(text.contains("# TYPE http_request_duration_summary_seconds summary\n"));
        assert!(text.ends_with("# EOF\n"));
        assert_eq!(text.matches("# EOF").count(), 1);
    }
}
