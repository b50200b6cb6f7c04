//! `prognos-demo serve`: builds one service's router (API, `/healthz`,
//! `/admin/*`, `/metrics`), listens at once, and connects its backends in
//! the background (healthz answers 503 until they are connected).

use std::future::IntoFuture;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use prognos_exporters::{http, process, serve};
use prometheus_client::registry::Registry;
use serde::Serialize;

use crate::admin;
use crate::api::{ApiError, AppState, Limits, MesSettings, Ready};
use crate::cli::{ServeArgs, ServiceKind};
use crate::incident::{IncidentKind, Incidents, storm_fraction};
use crate::mes::MesMetrics;
use crate::s3::S3;
use crate::{crm, mes, shop};

/// Fails a share of API requests while an `http_500_storm` is active.
async fn storm(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if let Some(intensity) = state
        .incidents
        .intensity(IncidentKind::Http500Storm, Instant::now())
        && rand::random::<f64>() < storm_fraction(intensity)
    {
        return ApiError::Internal("injected failure (http_500_storm incident)".into())
            .into_response();
    }
    next.run(request).await
}

#[derive(Debug, Serialize)]
struct Health {
    status: &'static str,
    service: &'static str,
    postgres: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    amqp: Option<String>,
}

fn describe(check: &Result<(), String>) -> String {
    match check {
        Ok(()) => "up".into(),
        Err(e) => e.clone(),
    }
}

/// `GET /healthz`: 200 when the database (and RabbitMQ for MES) answer.
async fn healthz(State(state): State<AppState>) -> Response {
    let postgres = match state.db.get() {
        None => Err("connecting".to_owned()),
        Some(db) => db.ping(Duration::from_secs(2)).await,
    };
    let amqp = (state.service == ServiceKind::Mes).then(|| match state.queue.get() {
        None => Err("connecting".to_owned()),
        Some(link) => link.status(),
    });
    let ok = postgres.is_ok() && amqp.as_ref().is_none_or(Result::is_ok);
    let health = Health {
        status: if ok { "ok" } else { "unavailable" },
        service: state.service.name(),
        postgres: describe(&postgres),
        amqp: amqp.as_ref().map(describe),
    };
    let code = if ok {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(health)).into_response()
}

fn check_args(args: &ServeArgs) -> anyhow::Result<()> {
    if args.amqp.is_some() && args.service != ServiceKind::Mes {
        bail!("--amqp is only used by --service mes");
    }
    if args.s3_endpoint.is_some() && args.service != ServiceKind::Shop {
        bail!("--s3-endpoint/--s3-bucket are only used by --service shop");
    }
    ensure!(
        args.max_cpu_cores.is_finite() && args.max_cpu_cores > 0.0,
        "--max-cpu-cores must be > 0"
    );
    ensure!(
        (0.0..=1.0).contains(&args.failure_rate),
        "--failure-rate must be between 0 and 1"
    );
    ensure!(args.prefetch >= 1, "--prefetch must be at least 1");
    Ok(())
}

/// Builds the router of `state.service`.
pub fn app(state: AppState, token: Option<Arc<str>>, registry: &mut Registry) -> Router {
    let metrics = http::HttpMetrics::new(registry);
    let api = match state.service {
        ServiceKind::Shop => shop::routes(),
        ServiceKind::Crm => crm::routes(),
        ServiceKind::Mes => mes::routes(),
    }
    .route_layer(middleware::from_fn_with_state(state.clone(), storm));
    api.route("/healthz", get(healthz))
        .merge(admin::routes(token))
        .with_state(state)
        .layer(http::layer(metrics))
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    tracing::info!("shutting down");
}

/// Ends incidents whose time is up, every second.
async fn expire_incidents(incidents: Arc<Incidents>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        for kind in incidents.expire(Instant::now()) {
            tracing::info!(%kind, "incident ended (duration over)");
        }
    }
}

/// Runs `prognos-demo serve`.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    check_args(&args)?;
    let token: Option<Arc<str>> = match &args.admin_token_file {
        Some(path) => Some(admin::read_token_file(path)?.into()),
        None => None,
    };
    let s3 = match (&args.s3_endpoint, &args.s3_bucket) {
        (Some(endpoint), Some(bucket)) => Some(Arc::new(S3::new(
            endpoint.clone(),
            bucket,
            &args.s3_region,
            S3::credentials_from_env(),
        )?)),
        _ => None,
    };
    let mut registry = Registry::default();
    process::register(&mut registry);
    let incidents = Arc::new(Incidents::new(&mut registry));
    let mes_metrics = Arc::new(MesMetrics::default());
    if args.service == ServiceKind::Mes {
        mes_metrics.register(&mut registry);
    }
    let state = AppState {
        service: args.service,
        db: Ready::default(),
        queue: Ready::default(),
        s3,
        incidents: Arc::clone(&incidents),
        limits: Limits {
            max_cpu_cores: args.max_cpu_cores,
            max_leak_bytes: args.max_leak_mib.saturating_mul(1 << 20),
        },
        mes: MesSettings {
            failure_rate: args.failure_rate,
            prefetch: args.prefetch,
        },
        mes_metrics,
    };
    let app = app(state.clone(), token.clone(), &mut registry);
    let app = serve::with_metrics(app, Arc::new(registry));

    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tracing::info!(
        service = args.service.name(),
        listen = %args.listen,
        admin_token = token.is_some(),
        "listening"
    );
    tokio::spawn(expire_incidents(incidents));

    let deadline = Instant::now() + args.connect_timeout;
    let init = async {
        match args.service {
            ServiceKind::Shop => shop::init(&state, &args.postgres, deadline)
                .await
                .map_err(anyhow::Error::from),
            ServiceKind::Crm => crm::init(&state, &args.postgres, deadline)
                .await
                .map_err(anyhow::Error::from),
            ServiceKind::Mes => {
                let amqp = args.amqp.as_deref().context("--amqp is required for mes")?;
                mes::init(&state, &args.postgres, amqp, deadline)
                    .await
                    .map_err(anyhow::Error::from)
            }
        }
    };
    let server = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .into_future();
    tokio::pin!(server);
    tokio::select! {
        served = &mut server => return served.context("HTTP server failed"),
        ready = init => {
            ready.context("cannot connect the backends")?;
            tracing::info!(service = args.service.name(), "backends connected; ready");
        }
    }
    server.await.context("HTTP server failed")
}
