//! Request instrumentation for axum: RED metrics per route.
//!
//! ```no_run
//! use std::sync::Arc;
//! use axum::{Router, routing::get};
//! use prometheus_client::registry::Registry;
//! use prognos_exporters::{http, process, serve};
//!
//! let mut registry = Registry::default();
//! let metrics = http::HttpMetrics::new(&mut registry);
//! process::register(&mut registry);
//! let app: Router = Router::new()
//!     .route("/orders/{id}", get(|| async { "ok" }))
//!     .layer(http::layer(metrics));
//! // Adds GET /metrics outside the instrumentation (scrapes are not traffic).
//! let app = serve::with_metrics(app, Arc::new(registry));
//! ```
//!
//! Apply the layer with `Router::layer` after all routes (and any
//! `fallback`), so unmatched requests are counted as `route="unmatched"`.
//!
//! Every response is recorded, whatever its status. A handler that panics is
//! recorded with `code="500"` (the panic then continues unwinding, so the
//! connection is dropped as without this layer). A request whose future is
//! dropped before it completes (client gone, timeout) is not counted; it only
//! leaves `http_requests_in_flight`. The duration runs until the response
//! head is ready, not until a streamed body has been sent.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::MatchedPath;
use axum::http::{HeaderMap, Method, Request, Response, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use tower_layer::Layer;
use tower_service::Service;

use crate::summary::{SummaryFamily, SummaryLabels};

/// Request header naming who sent the request: `user` (a person, through a
/// UI or client app) or `system` (another service, a job, a health check).
/// Missing or any other value counts as `user`.
pub const CALLER_HEADER: &str = "x-caller-kind";

/// `route` label value for requests that matched no route (the raw path is
/// never used, to keep cardinality bounded).
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Histogram buckets for API latencies, in seconds: 5 ms … 10 s.
pub const DURATION_BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Who sent a request, from the [`CALLER_HEADER`] header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Caller {
    /// A person (the default).
    User,
    /// Another system: service-to-service calls, jobs, probes.
    System,
}

impl Caller {
    /// Reads [`CALLER_HEADER`]: `system` (case-insensitive, surrounding
    /// spaces ignored) is [`Caller::System`], anything else [`Caller::User`].
    pub fn from_headers(headers: &HeaderMap) -> Self {
        match headers.get(CALLER_HEADER).and_then(|v| v.to_str().ok()) {
            Some(v) if v.trim().eq_ignore_ascii_case("system") => Self::System,
            _ => Self::User,
        }
    }

    /// The label value: `user` or `system`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::System => "system",
        }
    }
}

/// Labels of `http_requests_total`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RequestLabels {
    /// Matched route template (`/orders/{id}`) or `unmatched`.
    pub route: String,
    /// Upper-case HTTP method (`OTHER` for non-standard methods).
    pub method: String,
    /// Numeric status code.
    pub code: u16,
    /// `user` or `system`.
    pub caller: String,
}

/// Labels of the duration histogram and summary.
#[derive(Clone, Debug, PartialEq, Eq, Hash, EncodeLabelSet)]
pub struct RouteLabels {
    /// Matched route template or `unmatched`.
    pub route: String,
    /// Upper-case HTTP method.
    pub method: String,
}

impl SummaryLabels for RouteLabels {
    fn label_pairs(&self) -> Vec<(&str, &str)> {
        vec![("route", &self.route), ("method", &self.method)]
    }
}

fn duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// The HTTP metrics of one service (see the crate docs for the names).
#[derive(Debug)]
pub struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    in_flight: Gauge,
    duration: Family<RouteLabels, Histogram, fn() -> Histogram>,
    summary: Arc<SummaryFamily<RouteLabels>>,
}

impl HttpMetrics {
    /// Creates the metrics and registers them all in `registry`.
    pub fn new(registry: &mut Registry) -> Arc<Self> {
        let metrics = Self {
            requests: Family::default(),
            in_flight: Gauge::default(),
            duration: Family::new_with_constructor(duration_histogram as fn() -> Histogram),
            summary: Arc::new(SummaryFamily::default()),
        };
        registry.register(
            "http_requests",
            "HTTP requests answered, by matched route, method, status code and caller (user/system)",
            metrics.requests.clone(),
        );
        registry.register(
            "http_requests_in_flight",
            "HTTP requests being processed",
            metrics.in_flight.clone(),
        );
        registry.register_with_unit(
            "http_request_duration",
            "HTTP request latency until the response head, by matched route and method",
            Unit::Seconds,
            metrics.duration.clone(),
        );
        metrics.summary.register(
            registry,
            "http_request_duration_summary_seconds",
            "HTTP request latency quantiles over the last 10 minutes, by matched route and method",
        );
        Arc::new(metrics)
    }

    /// Records one answered request (for callers outside the axum layer).
    pub fn observe(&self, labels: &RequestLabels, seconds: f64) {
        self.requests.get_or_create(labels).inc();
        let route = RouteLabels {
            route: labels.route.clone(),
            method: labels.method.clone(),
        };
        self.duration.get_or_create(&route).observe(seconds);
        self.summary.get_or_create(&route).record(seconds);
    }

    /// The duration summaries, e.g. to read a snapshot.
    pub fn summary(&self) -> &SummaryFamily<RouteLabels> {
        &self.summary
    }

    /// Requests being processed right now.
    pub fn in_flight(&self) -> i64 {
        self.in_flight.get()
    }
}

/// Normalises a method label: standard methods upper-case, others `OTHER`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}

/// The layer instrumenting every route of a router: see [`layer`].
pub fn layer(metrics: Arc<HttpMetrics>) -> HttpMetricsLayer {
    HttpMetricsLayer { metrics }
}

/// A `tower::Layer` recording [`HttpMetrics`]; use it with
/// `Router::layer` (also counts unmatched requests) or `Router::route_layer`.
#[derive(Clone, Debug)]
pub struct HttpMetricsLayer {
    metrics: Arc<HttpMetrics>,
}

impl<S> Layer<S> for HttpMetricsLayer {
    type Service = HttpMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpMetricsService {
            inner,
            metrics: Arc::clone(&self.metrics),
        }
    }
}

/// The service produced by [`HttpMetricsLayer`].
#[derive(Clone, Debug)]
pub struct HttpMetricsService<S> {
    inner: S,
    metrics: Arc<HttpMetrics>,
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for HttpMetricsService<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqBody>) -> Self::Future {
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .map_or(UNMATCHED_ROUTE, MatchedPath::as_str)
            .to_owned();
        let guard = InFlight::start(
            Arc::clone(&self.metrics),
            route,
            method_label(req.method()),
            Caller::from_headers(req.headers()),
        );
        ResponseFuture {
            inner: Box::pin(self.inner.call(req)),
            guard: Some(guard),
        }
    }
}

/// Counts a request as in flight from creation until dropped.
#[derive(Debug)]
struct InFlight {
    metrics: Arc<HttpMetrics>,
    route: String,
    method: &'static str,
    caller: Caller,
    start: Instant,
}

impl InFlight {
    fn start(
        metrics: Arc<HttpMetrics>,
        route: String,
        method: &'static str,
        caller: Caller,
    ) -> Self {
        metrics.in_flight.inc();
        Self {
            metrics,
            route,
            method,
            caller,
            start: Instant::now(),
        }
    }

    /// Records the answered request; the in-flight decrement happens on drop.
    fn finish(self, code: StatusCode) {
        let labels = RequestLabels {
            route: self.route.clone(),
            method: self.method.to_owned(),
            code: code.as_u16(),
            caller: self.caller.as_str().to_owned(),
        };
        self.metrics
            .observe(&labels, self.start.elapsed().as_secs_f64());
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.metrics.in_flight.dec();
    }
}

/// Future of [`HttpMetricsService`]: the inner future plus the request's
/// in-flight guard.
pub struct ResponseFuture<F> {
    inner: Pin<Box<F>>,
    guard: Option<InFlight>,
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("guard", &self.guard)
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // `ResponseFuture` is `Unpin`: the inner future is boxed.
        let this = self.get_mut();
        let polled = catch_unwind(AssertUnwindSafe(|| this.inner.as_mut().poll(cx)));
        match polled {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(result)) => {
                if let Some(guard) = this.guard.take() {
                    let code = match &result {
                        Ok(response) => response.status(),
                        // axum's services never fail; a generic error is a 500.
                        Err(_) => StatusCode::INTERNAL_SERVER_ERROR,
                    };
                    guard.finish(code);
                }
                Poll::Ready(result)
            }
            Err(panic) => {
                if let Some(guard) = this.guard.take() {
                    guard.finish(StatusCode::INTERNAL_SERVER_ERROR);
                }
                resume_unwind(panic)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_header_parsing() {
        let mut h = HeaderMap::new();
        assert_eq!(Caller::from_headers(&h), Caller::User);
        h.insert(CALLER_HEADER, " System ".parse().unwrap());
        assert_eq!(Caller::from_headers(&h), Caller::System);
        h.insert("X-Caller-Kind", "robot".parse().unwrap());
        assert_eq!(Caller::from_headers(&h), Caller::User);
        assert_eq!(Caller::System.as_str(), "system");
    }

    #[test]
    fn methods_are_normalised() {
        assert_eq!(method_label(&Method::DELETE), "DELETE");
        assert_eq!(
            method_label(&Method::from_bytes(b"PURGE").unwrap()),
            "OTHER"
        );
    }

    #[test]
    fn guard_decrements_when_dropped_unfinished() {
        let mut registry = Registry::default();
        let m = HttpMetrics::new(&mut registry);
        let g = InFlight::start(Arc::clone(&m), "/x".into(), "GET", Caller::User);
        assert_eq!(m.in_flight(), 1);
        drop(g);
        assert_eq!(m.in_flight(), 0);
        let g = InFlight::start(Arc::clone(&m), "/x".into(), "GET", Caller::System);
        g.finish(StatusCode::OK);
        assert_eq!(m.in_flight(), 0);
        let labels = RouteLabels {
            route: "/x".into(),
            method: "GET".into(),
        };
        assert_eq!(m.summary().get_or_create(&labels).snapshot().count, 1);
    }
}
