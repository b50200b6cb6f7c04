//! `prognos run`: the live engine. Loads the configuration, serves HTTP,
//! and evaluates each rule group on aligned slots until stopped.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow};

use crate::alert::{AlertStore, LogSink};
use crate::cli::RunArgs;
use crate::config::{self, Config, Shard};
use crate::exposition::one;
use crate::prom::{ClientSettings, PromClient};
use crate::scheduler::Engine;
use crate::server;

/// Unix seconds now.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The Prometheus client for a configuration.
pub fn client_for(config: &Config) -> Result<PromClient> {
    let p = &config.prometheus;
    let settings = ClientSettings {
        url: p.url.as_str().trim_end_matches('/').to_string(),
        timeout: p.timeout,
        bearer_token: p.bearer_token.as_ref().map(|s| s.expose().to_string()),
        basic_auth: p
            .basic_auth
            .as_ref()
            .map(|(u, s)| (u.clone(), s.expose().to_string())),
        ca_cert_pem: p.ca_cert_pem.clone(),
        ..ClientSettings::default()
    };
    PromClient::new(settings).context("creating the Prometheus client")
}

/// Loads a configuration, turning its errors into one message.
pub fn load_config(path: &Path) -> Result<Config> {
    config::load(path).map_err(|e| anyhow!("{e}"))
}

/// Builds the engine for `config`, with its alert state from the state directory.
pub fn build_engine(config: Config, shard: Shard) -> Result<Engine> {
    std::fs::create_dir_all(&config.state_dir)
        .with_context(|| format!("creating state directory {}", config.state_dir.display()))?;
    let file = if shard.count > 1 {
        format!("state-{}-of-{}.redb", shard.index, shard.count)
    } else {
        "state.redb".to_string()
    };
    let store = AlertStore::open(&config.state_dir.join(file))?;
    let client = client_for(&config)?;
    Ok(Engine::new(
        config,
        shard,
        client,
        store,
        Arc::new(LogSink),
    )?)
}

/// Runs the engine until Ctrl-C or SIGTERM.
pub fn run(args: &RunArgs) -> Result<()> {
    let mut config = load_config(&args.config)?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    let shard = args.shard.unwrap_or(config.shard);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(config, shard, args.once))
}

async fn serve(config: Config, shard: Shard, once: bool) -> Result<()> {
    let listen = config.listen;
    let engine = Arc::new(build_engine(config, shard)?);
    if once {
        engine.evaluate_all(unix_now()).await;
        for r in &engine.rules {
            let rt = r.lock().await;
            println!(
                "{:<40} {:>6} series  {:>3} alerts  {}",
                rt.id,
                rt.series.len(),
                rt.alerts.active().count(),
                rt.last_error.as_deref().unwrap_or("ok")
            );
        }
        return Ok(());
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    tracing::info!(%listen, shard = %format!("{}/{}", shard.index, shard.count), rules = engine.rules.len(), "prognos started.");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for g in engine.config.groups.clone() {
        let engine = engine.clone();
        let mut stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            let every = g.interval.max(Duration::from_secs(1));
            let secs = every.as_secs().max(1) as i64;
            let mut next = crate::scheduler::align(unix_now(), secs) + secs;
            // Evaluate at once on start, then on aligned slots.
            let mut slot = unix_now();
            loop {
                for r in &engine.rules {
                    let mut rt = r.lock().await;
                    if rt.group == g.name {
                        engine.evaluate_rule(&mut rt, slot).await;
                    }
                }
                let lag = (unix_now() - slot).max(0) as f64;
                engine
                    .metrics
                    .evaluation_lag
                    .get_or_create(&one("group", &g.name))
                    .set(lag);
                let now = unix_now();
                if now >= next {
                    // Never catch up in a burst: count the slots missed and move on.
                    let missed = (now - next) / secs + 1;
                    engine
                        .metrics
                        .missed_evaluations
                        .get_or_create(&one("group", &g.name))
                        .inc_by(missed as u64);
                    next += missed * secs;
                }
                let wait = Duration::from_secs((next - now).max(0) as u64);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.changed() => break,
                }
                slot = next;
                next += secs;
            }
        }));
    }
    let app = server::app(engine.clone());
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    server.await.context("HTTP server")?;
    for t in tasks {
        let _ = t.await;
    }
    tracing::info!("prognos stopped.");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
