//! `prognos run`: the live engine. Loads the configuration, serves HTTP,
//! evaluates each rule group on aligned slots, and reloads on SIGHUP or
//! `POST /-/reload` — keeping the running configuration when the new one is
//! invalid, and the models of rules that did not change.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::alert::{AlertSink, AlertStore, LogSink};
use crate::cli::RunArgs;
use crate::config::{self, Config, Shard};
use crate::exposition::{Metrics, one};
use crate::notify::NotifySink;
use crate::prom::{ClientSettings, PromClient};
use crate::scheduler::{Engine, align};
use crate::server::{self, ReloadRequest, ServerState};
use prognos_notifiers::notifier::NotifierMetrics;
use prognos_notifiers::secret::excerpt;

pub use crate::timestamp::unix_now;

/// The Prometheus client for a configuration.
pub fn client_for(config: &Config) -> Result<PromClient> {
    let p = &config.prometheus;
    let settings = ClientSettings {
        url: p.url.as_str().trim_end_matches('/').to_string(),
        timeout: p.timeout,
        bearer_token: p.bearer_token.clone(),
        basic_auth: p.basic_auth.clone(),
        ca_cert_pem: p.ca_cert_pem.clone(),
        max_response_bytes: p.max_response_bytes,
        ..ClientSettings::default()
    };
    PromClient::new(settings).context("creating the Prometheus client")
}

/// Loads a configuration, turning its errors into one message.
pub fn load_config(path: &Path) -> Result<Config> {
    config::load(path).map_err(|e| anyhow!("{e}"))
}

/// Opens the alert store of `shard` in the configuration's state directory.
pub fn open_store(config: &Config, shard: Shard) -> Result<AlertStore> {
    Ok(AlertStore::open(&state_file(config, shard, "state")?)?)
}

/// The path of the store `name` of `shard` in the state directory (created).
fn state_file(config: &Config, shard: Shard, name: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(&config.state_dir)
        .with_context(|| format!("creating state directory {}", config.state_dir.display()))?;
    let file = if shard.count > 1 {
        format!("{name}-{}-of-{}.redb", shard.index, shard.count)
    } else {
        format!("{name}.redb")
    };
    Ok(config.state_dir.join(file))
}

/// Builds an engine for `config` with its own store, metrics and a logging sink.
pub fn build_engine(config: Config, shard: Shard) -> Result<Engine> {
    let store = Arc::new(open_store(&config, shard)?);
    let client = client_for(&config)?;
    Ok(Engine::new(
        config,
        shard,
        client,
        store,
        Arc::new(LogSink),
        Arc::new(Metrics::new()),
    )?)
}

/// Runs the engine until Ctrl-C or SIGTERM.
pub fn run(args: &RunArgs) -> Result<()> {
    let mut config = load_config(&args.config)?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    let shard = args.shard.unwrap_or(config.shard);
    let reload_token = args
        .admin_token_file
        .as_deref()
        .map(read_admin_token)
        .transpose()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(
        args.config.clone(),
        config,
        shard,
        args.once,
        reload_token,
    ))
}

/// Shortest admin token accepted, in bytes: 16 random bytes (or 32 hex
/// digits, as `openssl rand -hex 16` prints) cannot be guessed over HTTP;
/// a short word can.
pub const MIN_ADMIN_TOKEN_BYTES: usize = 16;

/// Reads the admin token from `path`, trimmed. Refuses an empty token or
/// one shorter than [`MIN_ADMIN_TOKEN_BYTES`]; errors name the file and the
/// token's length, never its content.
pub fn read_admin_token(path: &Path) -> Result<config::Secret> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading --admin-token-file {}", path.display()))?;
    let token = text.trim();
    if token.is_empty() {
        anyhow::bail!("--admin-token-file {}: the file is empty", path.display());
    }
    if token.len() < MIN_ADMIN_TOKEN_BYTES {
        anyhow::bail!(
            "--admin-token-file {}: the token is {} bytes, at least {MIN_ADMIN_TOKEN_BYTES} are required (make one with `openssl rand -hex 32`)",
            path.display(),
            token.len()
        );
    }
    Ok(config::Secret::new(token))
}

/// What outlives a reload.
struct Lasting {
    path: PathBuf,
    shard: Shard,
    store: Arc<AlertStore>,
    metrics: Arc<Metrics>,
    sink: Arc<dyn AlertSink>,
    notify: Arc<NotifySink>,
}

impl Lasting {
    fn engine(&self, config: Config) -> Result<Engine> {
        let client = client_for(&config)?;
        Ok(Engine::new(
            config,
            self.shard,
            client,
            self.store.clone(),
            self.sink.clone(),
            self.metrics.clone(),
        )?)
    }
}

async fn serve(
    path: PathBuf,
    config: Config,
    shard: Shard,
    once: bool,
    reload_token: Option<config::Secret>,
) -> Result<()> {
    let listen = config.listen;
    let notifier_metrics = Arc::new(NotifierMetrics::default());
    let notify = Arc::new(NotifySink::open(
        &state_file(&config, shard, "notify")?,
        notifier_metrics.clone(),
    )?);
    let lasting = Lasting {
        path,
        shard,
        store: Arc::new(open_store(&config, shard)?),
        metrics: Arc::new(Metrics::with_extra(|r| notifier_metrics.register(r))),
        sink: notify.clone(),
        notify: notify.clone(),
    };
    lasting.store.count_errors_in(
        lasting
            .metrics
            .store_errors
            .get_or_create(&one("store", "state"))
            .clone(),
    );
    notify.count_store_errors_in(
        lasting
            .metrics
            .store_errors
            .get_or_create(&one("store", "notify"))
            .clone(),
    );
    let notifications = config.notifications.clone();
    let engine = Arc::new(lasting.engine(config)?);
    if !once {
        notify.apply(notifications).await?;
        notify.resync(&engine).await;
        engine.resolve_removed_rules(unix_now()).await;
    }
    if once {
        engine.evaluate_all(unix_now()).await;
        for r in &engine.rules {
            let v = r.view();
            println!(
                "{:<40} {:>6} series  {:>3} alerts  {}",
                v.id,
                v.series.len(),
                v.alerts.len(),
                v.last_error.as_deref().unwrap_or("ok")
            );
        }
        return Ok(());
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening on {listen}"))?;
    tracing::info!(%listen, shard = %shard, rules = engine.rules.len(), "prognos started.");
    let (reload_tx, mut reload_rx) = mpsc::channel::<ReloadRequest>(4);
    let state = Arc::new(ServerState {
        engine: tokio::sync::RwLock::new(engine.clone()),
        reload: reload_token.map(|t| (t, reload_tx.clone())),
        notify: Some(notify.clone()),
    });
    let (stop_all_tx, mut stop_all_rx) = watch::channel(false);
    let server = {
        let app = server::app(state.clone());
        tokio::spawn(server::serve(
            listener,
            app,
            server::ServerSettings::default(),
            async move {
                shutdown_signal().await;
                let _ = stop_all_tx.send(true);
            },
        ))
    };
    tokio::spawn(sighup_forwarder(reload_tx));
    let (mut stop_groups, mut groups) = spawn_groups(engine);
    loop {
        tokio::select! {
            Some(answer) = reload_rx.recv() => {
                let outcome = reload(&lasting, &state, &mut stop_groups, &mut groups).await;
                if let Err(e) = &outcome {
                    tracing::error!(
                        error = %excerpt(e, server::RELOAD_ERROR_CHARS),
                        "Reload failed; the running configuration is kept."
                    );
                }
                let _ = answer.send(outcome);
            }
            _ = stop_all_rx.changed() => break,
        }
    }
    let _ = stop_groups.send(true);
    for g in groups {
        let _ = g.await;
    }
    notify.stop().await;
    let _ = server.await;
    tracing::info!("prognos stopped.");
    Ok(())
}

/// Loads the configuration anew and swaps the engine; on any error the
/// running one stays.
async fn reload(
    lasting: &Lasting,
    state: &ServerState,
    stop_groups: &mut watch::Sender<bool>,
    groups: &mut Vec<JoinHandle<()>>,
) -> Result<(), String> {
    let config = load_config(&lasting.path).map_err(|e| format!("{e:#}"))?;
    let notifications = config.notifications.clone();
    let new = lasting.engine(config).map_err(|e| format!("{e:#}"))?;
    lasting
        .notify
        .apply(notifications)
        .await
        .map_err(|e| format!("{e:#}"))?;
    // Stop the old loops before taking their state over.
    let _ = stop_groups.send(true);
    for g in groups.drain(..) {
        let _ = g.await;
    }
    let old = state.engine.read().await.clone();
    new.carry_over(&old, unix_now()).await;
    let new = Arc::new(new);
    *state.engine.write().await = new.clone();
    (*stop_groups, *groups) = spawn_groups(new.clone());
    tracing::info!(rules = new.rules.len(), "Configuration reloaded.");
    Ok(())
}

async fn sighup_forwarder(tx: mpsc::Sender<ReloadRequest>) {
    #[cfg(unix)]
    {
        let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        else {
            return;
        };
        while hup.recv().await.is_some() {
            let (answer, _outcome) = tokio::sync::oneshot::channel();
            if tx.send(answer).await.is_err() {
                return;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tx;
}

/// One task per rule group, evaluating on aligned slots until told to stop.
fn spawn_groups(engine: Arc<Engine>) -> (watch::Sender<bool>, Vec<JoinHandle<()>>) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    for g in engine.config.groups.clone() {
        let engine = engine.clone();
        let mut stop = stop_rx.clone();
        tasks.push(tokio::spawn(async move {
            let secs = g.interval.as_secs().max(1) as i64;
            let mut next = align(unix_now(), secs) + secs;
            // Evaluate at once on start, then on aligned slots.
            let mut slot = unix_now();
            loop {
                // Only this group's rules: a slow rule of another group never holds it.
                for r in engine.rules.iter().filter(|r| r.group == g.name) {
                    if *stop.borrow() {
                        return;
                    }
                    engine.evaluate_rule(r, slot).await;
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
                    _ = stop.changed() => return,
                }
                slot = next;
                next += secs;
            }
        }));
    }
    (stop_tx, tasks)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_admin_token_is_refused_naming_the_file_not_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("admin.token");
        std::fs::write(&file, "TOKCANARY\n").unwrap();
        let e = format!("{:#}", read_admin_token(&file).unwrap_err());
        assert!(e.contains("admin.token"), "{e}");
        assert!(e.contains("9 bytes, at least 16"), "{e}");
        assert!(!e.contains("TOKCANARY"), "{e}");
        std::fs::write(&file, " \n").unwrap();
        let e = format!("{:#}", read_admin_token(&file).unwrap_err());
        assert!(e.contains("is empty"), "{e}");
    }

    #[test]
    fn a_long_enough_admin_token_is_read_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("admin.token");
        std::fs::write(&file, "0123456789abcdef\n").unwrap();
        let token = read_admin_token(&file).unwrap();
        assert_eq!(token.expose(), "0123456789abcdef");
        assert_eq!(format!("{token:?}"), "<secret>");
    }
}
