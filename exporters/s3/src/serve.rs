//! The HTTP side: `GET /metrics` (OpenMetrics text, from the last refresh)
//! and `GET /healthz` (200 while the process serves).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use prognos_exporters::serve::metrics_router;
use prometheus_client::registry::Registry;

/// Why serving failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The listen address could not be bound.
    #[error("could not listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The server stopped with an error.
    #[error("serving HTTP failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// The routes: `/metrics` and `/healthz`.
pub fn router(registry: Arc<Registry>) -> Router {
    metrics_router(registry).route("/healthz", get(|| async { "ok\n" }))
}

/// Binds `addr` (before returning, so a taken port fails fast).
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, ServeError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

/// Serves `router` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(ServeError::Serve)
}
