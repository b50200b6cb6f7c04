//! The notifiers as the engine runs them: an [`AlertSink`] that outlives
//! reloads. The first configuration opens a [`Notifier`] (its core task loads
//! the store); a reload keeps that core and what it holds, swaps the
//! configuration it follows, stops the old deliver and bot loops and starts
//! new ones on the new channels.

use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use anyhow::{Context, Result};
use prognos_notifiers::alert::AlertInfo;
use prognos_notifiers::config::NotifierConfig;
use prognos_notifiers::notifier::{Notifier, NotifierMetrics, unix_now};
use prognos_notifiers::store::NotifyStore;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::alert::{AlertEvent, AlertSink, AlertStatus, LogSink, alert_info};
use crate::scheduler::Engine;

type Loops = (watch::Sender<bool>, Vec<JoinHandle<()>>);

/// How long stopping the notifier waits for a delivery under way.
pub const STOP_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// The sink of `prognos run`: logs every transition and, when notifications
/// are configured, hands it to the notifier in force.
pub struct NotifySink {
    store: Arc<NotifyStore>,
    metrics: Arc<NotifierMetrics>,
    current: RwLock<Option<Notifier>>,
    loops: Mutex<Option<Loops>>,
}

impl std::fmt::Debug for NotifySink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotifySink").finish_non_exhaustive()
    }
}

impl NotifySink {
    /// Opens the notification store at `path`; nothing is delivered until
    /// [`NotifySink::apply`] is given a configuration.
    pub fn open(path: &Path, metrics: Arc<NotifierMetrics>) -> Result<Self> {
        let store = NotifyStore::open(path)
            .with_context(|| format!("opening the notification store {}", path.display()))?;
        Ok(Self {
            store: Arc::new(store),
            metrics,
            current: RwLock::new(None),
            loops: Mutex::new(None),
        })
    }

    /// Whether the notification store can be written (see
    /// [`prognos_notifiers::database::Reopening`]).
    pub fn store_healthy(&self) -> bool {
        self.store.healthy()
    }

    /// Counts the notification store's failures in `counter`.
    pub fn count_store_errors_in(&self, counter: prometheus_client::metrics::counter::Counter) {
        self.store.count_errors_in(counter);
    }

    /// Puts `config` in force (None: notifications off); on error the
    /// running notifier stays. A notifier already running keeps its core —
    /// the groups, silences and approvals it holds — and only follows the new
    /// routes and receivers; its deliver and bot loops are restarted on the
    /// new channels once the old ones have stopped (see [`NotifySink::stop`]).
    /// Turned off, the core is closed once every transition handed to it is
    /// durable; turned on again, a new one reads the store.
    pub async fn apply(&self, config: Option<NotifierConfig>) -> Result<()> {
        let running = self.current();
        let new = match (config, &running) {
            (Some(c), Some(n)) => Some(n.reconfigure(c).await.context("setting up notifications")?),
            (Some(c), None) => Some(
                Notifier::open(c, self.store.clone(), self.metrics.clone())
                    .context("setting up notifications")?,
            ),
            (None, _) => None,
        };
        self.stop().await;
        if let Some(n) = &new {
            let (tx, rx) = watch::channel(false);
            *self.loops.lock().unwrap_or_else(|e| e.into_inner()) = Some((tx, n.spawn(rx)));
        }
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = new.clone();
        if let (None, Some(old)) = (&new, running) {
            old.close().await;
        }
        Ok(())
    }

    /// Stops the loops of the notifier in force (outbox entries stay
    /// stored). A delivery under way finishes first, so a reload neither cuts
    /// a send off nor sends it again from the new notifier's loops. Only a
    /// send still hanging after [`STOP_GRACE`] is cut off; its entry stays in
    /// the outbox and is sent again, with the same idempotency key.
    pub async fn stop(&self) {
        let loops = self.loops.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some((tx, handles)) = loops else {
            return;
        };
        let _ = tx.send(true);
        for mut h in handles {
            if tokio::time::timeout(STOP_GRACE, &mut h).await.is_err() {
                tracing::warn!(
                    grace_secs = STOP_GRACE.as_secs(),
                    "A delivery was still under way when the notifier stopped; it is cut off and will be sent again."
                );
                h.abort();
            }
        }
    }

    /// The notifier in force.
    pub fn current(&self) -> Option<Notifier> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Hands the alerts firing in `engine`'s saved state to the notifier,
    /// which notifies those it has not grouped yet.
    pub async fn resync(&self, engine: &Engine) {
        let Some(n) = self.current() else {
            return;
        };
        let mut firing = Vec::new();
        for r in &engine.rules {
            let view = r.view();
            for a in view
                .alerts
                .iter()
                .filter(|a| a.status == AlertStatus::Firing)
            {
                let url = format!("{}/api/v1/alerts", engine.config.external_url);
                firing.push(alert_info(&view.id, &AlertEvent::Firing(a.clone()), url));
            }
        }
        n.resync(&firing, unix_now()).await;
    }
}

/// Call from a thread that may block (the engine hands alerts over on a
/// blocking thread): the notifier's core answers once they are durable.
impl AlertSink for NotifySink {
    fn send(&self, alerts: &[AlertInfo]) {
        LogSink.send(alerts);
        if let Some(n) = self.current() {
            n.ingest_blocking(alerts, unix_now());
        }
    }
}
