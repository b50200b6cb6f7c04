//! The notifier service: takes alert transitions from the engine, routes and
//! groups them, plans remediation, and delivers everything through the
//! durable outbox.
//!
//! One task, the [`core`], owns the state that changes as alerts come and go
//! (groups, silences, the remediation governor, pending approvals) and
//! writes it; everything else asks it through a bounded command channel:
//! - the engine's sink hands it alert transitions ([`Notifier::ingest`]),
//!   durable before the call returns;
//! - **flush** (a ticker) asks it to flush the groups that are due: their
//!   notifications go to the outbox in the same transaction as the group
//!   state that produced them, so a crash either loses both (and the flush is
//!   recomputed with the same idempotency keys) or keeps both;
//! - **deliver** sends what the outbox holds, one task per target so a slow
//!   target holds only itself, and records each acknowledgement before
//!   forgetting the entry; failures are retried with exponential backoff and
//!   full jitter (Telegram's `retry_after` is honoured) until the give-up age;
//! - **bot** (when a Telegram bot is configured) long-polls `getUpdates` for
//!   chat commands (silences) and Approve/Reject presses, and expires
//!   approvals nobody answered; its offset lives in the store.
//!
//! A reload keeps the core (and so every group and silence) and swaps the
//! configuration it routes by; only the deliver and bot loops are restarted.
//!
//! This file holds the handle, its API and set-up; [`core`] the state and its
//! decisions; [`deliver`] the outbox delivery and the loops; [`bot`] the
//! Telegram bot.

mod bot;
mod core;
mod deliver;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use self::core::{Command, Core, Decided, NewSilence, Press};
use crate::alert::{AlertInfo, Notification};
use crate::channel::Channel;
use crate::channel::alertmanager::AlertmanagerChannel;
use crate::channel::email::EmailChannel;
use crate::channel::telegram::{BotUpdate, BotUpdateKind, TelegramChannel};
use crate::channel::webhook::WebhookChannel;
use crate::command::{self, Command as ChatCommand};
use crate::config::{NotifierConfig, Target};
use crate::delivery::SendError;
use crate::matcher::Matcher;
use crate::message::render;
use crate::payload::Status;
use crate::remediation::{self, AuditRecord, AuditStatus, Decision, Governor, Refusal};
use crate::retry::RetryAction;
use crate::route::{Change, Dispatcher, GroupView};
use crate::silence::{Silence, Silences};
use crate::store::{Delivery, NotifyStore, OutboxEntry, StoreError};
use crate::telegram::escape;

/// Most outbox entries taken per delivery round.
const BATCH: usize = 512;
/// Longest sleep of a loop before it looks again.
const IDLE: Duration = Duration::from_secs(5);
/// Delivered ids are remembered this long (idempotent re-enqueue after a crash).
const DEDUP_RETENTION_SECS: i64 = 7 * 86_400;
/// How often delivered and abandoned ids past their retention are forgotten.
const PRUNE_EVERY_SECS: i64 = 3600;
/// Silences are kept this long after they end (for the API).
const SILENCE_RETENTION_SECS: i64 = 86_400;

/// A failure of the notifier service.
#[derive(Debug, thiserror::Error)]
pub enum NotifierError {
    /// The embedded store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A channel could not be set up.
    #[error("receiver target {target}: {message}")]
    Target {
        /// The target's name.
        target: String,
        /// Why.
        message: String,
    },
    /// Saved state could not be read back.
    #[error("saved notifier state '{name}' is unreadable: {message}")]
    State {
        /// Which state.
        name: String,
        /// Why.
        message: String,
    },
    /// A silence request was refused.
    #[error("{0}")]
    Silence(String),
    /// The notifier was closed (a reload turned notifications off, or
    /// prognos is stopping).
    #[error("the notifier is closed")]
    Closed,
}

/// Approvals waiting for an answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Approvals {
    pending: BTreeMap<String, PendingApproval>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PendingApproval {
    expires_at: i64,
    message_id: Option<i32>,
}

/// The notifiers' metrics. Made once and registered once; notifiers
/// rebuilt by a reload keep counting into the same families.
#[derive(Debug, Default)]
pub struct NotifierMetrics {
    notifications: Family<Vec<(String, String)>, Counter>,
    outbox_depth: Gauge,
    outbox_oldest_age: Gauge,
    remediations: Family<Vec<(String, String)>, Counter>,
    approval_refusals: Family<Vec<(String, String)>, Counter>,
    silences_active: Gauge,
    groups: Gauge,
    errors: Family<Vec<(String, String)>, Counter>,
}

struct TargetRuntime {
    receiver: String,
    channel: Channel,
}

/// What a configuration sets up: the routes and receivers the core follows,
/// and the channels the delivery and bot loops send through.
struct Settings {
    config: NotifierConfig,
    targets: BTreeMap<String, TargetRuntime>,
    bot: Option<TelegramChannel>,
    client: reqwest::Client,
}

/// Wakes the flush and deliver loops when there is work.
#[derive(Debug, Default)]
struct Wakes {
    flush: Notify,
    deliver: Notify,
}

/// The notifier service: a handle on its core task and the channels of the
/// configuration in force. Cheap to clone: clones share everything.
#[derive(Clone)]
pub struct Notifier {
    settings: Arc<Settings>,
    store: Arc<NotifyStore>,
    metrics: Arc<NotifierMetrics>,
    wakes: Arc<Wakes>,
    core: mpsc::Sender<Command>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("targets", &self.settings.targets.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

pub use crate::clock::unix_now;

/// The names of a receiver's targets, in order: `ops/telegram`, `ops/email`;
/// a kind configured more than once is numbered (`am/alertmanager-0`, `-1`).
pub fn target_names(r: &crate::config::Receiver) -> Vec<String> {
    let mut seen: HashMap<&str, usize> = HashMap::new();
    r.targets
        .iter()
        .map(|t| {
            let kind = t.kind();
            let total = r.targets.iter().filter(|u| u.kind() == kind).count();
            let n = seen.entry(kind).or_insert(0);
            let name = if total > 1 {
                format!("{}/{kind}-{n}", r.name)
            } else {
                format!("{}/{kind}", r.name)
            };
            *n += 1;
            name
        })
        .collect()
}

fn load<T: for<'de> Deserialize<'de> + Default>(
    store: &NotifyStore,
    name: &str,
) -> Result<T, NotifierError> {
    match store.load_state(name)? {
        None => Ok(T::default()),
        Some(json) => serde_json::from_str(&json).map_err(|e| NotifierError::State {
            name: name.to_string(),
            message: e.to_string(),
        }),
    }
}

fn json<T: Serialize>(value: &T) -> String {
    // Our own plain-data types: serialising them cannot fail.
    serde_json::to_string(value).unwrap_or_default()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Settings {
    fn new(config: NotifierConfig) -> Result<Self, NotifierError> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| NotifierError::Target {
                target: "http client".into(),
                message: e.to_string(),
            })?;
        let mut targets = BTreeMap::new();
        for r in &config.receivers {
            for (t, name) in r.targets.iter().zip(target_names(r)) {
                let err = |e: SendError| NotifierError::Target {
                    target: name.clone(),
                    message: e.message,
                };
                let channel = match t {
                    Target::Telegram(c) => {
                        Channel::Telegram(TelegramChannel::new(c.clone()).map_err(err)?)
                    }
                    Target::Email(c) => Channel::Email(EmailChannel::new(c.clone()).map_err(err)?),
                    Target::Webhook(c) => {
                        Channel::Webhook(WebhookChannel::new(c.clone(), client.clone()))
                    }
                    Target::Alertmanager(c) => {
                        Channel::Alertmanager(AlertmanagerChannel::new(c.clone(), client.clone()))
                    }
                };
                targets.insert(
                    name,
                    TargetRuntime {
                        receiver: r.name.clone(),
                        channel,
                    },
                );
            }
        }
        let bot = match &config.bot {
            Some(b) => Some(TelegramChannel::new(b.telegram.clone()).map_err(|e| {
                NotifierError::Target {
                    target: "telegram bot".into(),
                    message: e.message,
                }
            })?),
            None => None,
        };
        Ok(Self {
            config,
            targets,
            bot,
            client,
        })
    }
}

impl Notifier {
    /// Sets up the channels, loads the saved state from `store` and starts
    /// the core task that owns it (call within a Tokio runtime). The core
    /// runs until [`Notifier::close`] or until every clone is dropped; the
    /// flush, deliver and bot loops start with [`Notifier::spawn`].
    pub fn open(
        config: NotifierConfig,
        store: Arc<NotifyStore>,
        metrics: Arc<NotifierMetrics>,
    ) -> Result<Self, NotifierError> {
        let settings = Arc::new(Settings::new(config)?);
        let wakes = Arc::new(Wakes::default());
        let core = Core::load(
            settings.clone(),
            store.clone(),
            metrics.clone(),
            wakes.clone(),
        )?;
        let (tx, rx) = mpsc::channel(core::QUEUE);
        tokio::spawn(core.run(rx));
        Ok(Self {
            settings,
            store,
            metrics,
            wakes,
            core: tx,
        })
    }

    /// The same core (its groups, silences and approvals) following
    /// `config` from now on: the handle to use after a reload. The loops of
    /// this handle keep the old channels; stop them and spawn the new
    /// handle's.
    pub async fn reconfigure(&self, config: NotifierConfig) -> Result<Self, NotifierError> {
        let settings = Arc::new(Settings::new(config)?);
        let s = settings.clone();
        self.ask(|done| Command::Reconfigure { settings: s, done })
            .await?;
        Ok(Self {
            settings,
            ..self.clone()
        })
    }

    /// Stops the core once every request made before is answered and
    /// durable. Later requests answer [`NotifierError::Closed`].
    pub async fn close(&self) {
        let _ = self.ask(|done| Command::Close { done }).await;
    }

    /// Sends a command to the core and waits for its answer.
    async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, NotifierError> {
        let (tx, rx) = oneshot::channel();
        self.core
            .send(command(tx))
            .await
            .map_err(|_| NotifierError::Closed)?;
        rx.await.map_err(|_| NotifierError::Closed)
    }

    fn closed(&self, what: &str) {
        tracing::error!("The notifier is closed: {what} was not done.");
    }

    /// Takes alert transitions at `now`: groups them for notification and
    /// plans the remediation actions bound to them. Durable before it returns.
    pub async fn ingest(&self, alerts: &[AlertInfo], now: i64) {
        if alerts.is_empty() {
            return;
        }
        let alerts = alerts.to_vec();
        if self
            .ask(|done| Command::Ingest { alerts, now, done })
            .await
            .is_err()
        {
            self.closed("taking alerts");
        }
    }

    /// [`Notifier::ingest`] from a thread that may block (not an async
    /// task's: there it panics), as the engine's alert sink does.
    pub fn ingest_blocking(&self, alerts: &[AlertInfo], now: i64) {
        if alerts.is_empty() {
            return;
        }
        let (done, answer) = oneshot::channel();
        let command = Command::Ingest {
            alerts: alerts.to_vec(),
            now,
            done,
        };
        if self.core.blocking_send(command).is_err() || answer.blocking_recv().is_err() {
            self.closed("taking alerts");
        }
    }

    /// Alerts firing in the engine's saved state, handed over at start: those
    /// no group holds yet (a crash between the engine's save and the
    /// notifier's) are grouped and notified; known ones are left as they are.
    /// Both ways: an alert the groups hold as firing that the engine no
    /// longer has firing (its Resolved was lost in a crash) is resolved now,
    /// rather than repeated every `repeat_interval` for ever.
    pub async fn resync(&self, firing: &[AlertInfo], now: i64) {
        let firing = firing.to_vec();
        if self
            .ask(|done| Command::Resync { firing, now, done })
            .await
            .is_err()
        {
            self.closed("reconciling alerts");
        }
    }

    /// Flushes the groups due at `now` into the outbox; returns how many
    /// notifications were queued and when the next group is due.
    pub async fn flush(&self, now: i64) -> (usize, Option<i64>) {
        self.ask(|done| Command::Flush { now, done })
            .await
            .unwrap_or((0, None))
    }

    /// The silences (active and recently ended).
    pub async fn silences(&self) -> Vec<Silence> {
        self.ask(|done| Command::Silences { done })
            .await
            .unwrap_or_default()
    }

    /// Adds a silence; returns its id.
    pub async fn add_silence(
        &self,
        matchers: Vec<Matcher>,
        starts_at: i64,
        ends_at: i64,
        created_by: &str,
        comment: &str,
    ) -> Result<String, NotifierError> {
        let silence = NewSilence {
            matchers,
            starts_at,
            ends_at,
            created_by: created_by.to_string(),
            comment: comment.to_string(),
        };
        self.ask(|done| Command::AddSilence { silence, done })
            .await?
    }

    /// Ends a silence now.
    pub async fn expire_silence(&self, id: &str, now: i64) -> Result<(), NotifierError> {
        let id = id.to_string();
        self.ask(|done| Command::ExpireSilence { id, now, done })
            .await?
    }

    /// The alert groups the dispatcher holds.
    pub async fn groups(&self) -> Vec<GroupView> {
        self.ask(|done| Command::Groups { done })
            .await
            .unwrap_or_default()
    }

    /// The remediation audit log, newest first.
    pub async fn audit(&self, limit: usize) -> Result<Vec<AuditRecord>, NotifierError> {
        Ok(on_store(&self.store, move |s| s.audit(limit)).await?)
    }

    /// Deliveries waiting in the outbox.
    pub async fn outbox(&self) -> Result<Vec<OutboxEntry>, NotifierError> {
        Ok(on_store(&self.store, |s| s.pending()).await?)
    }
}

/// Runs a store operation on a blocking thread: a write commits durably (an
/// fsync), which must not hold an async thread that others run on.
async fn on_store<T: Send + 'static>(
    store: &Arc<NotifyStore>,
    op: impl FnOnce(&NotifyStore) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || op(&store))
        .await
        .unwrap_or_else(|e| {
            Err(StoreError::Db {
                path: String::new(),
                message: format!("the store task failed: {e}"),
            })
        })
}

impl NotifierMetrics {
    /// Registers the families in `r`.
    pub fn register(&self, r: &mut Registry) {
        let m = self;
        r.register(
            "prognos_notifications",
            "Notifications by receiver, target and result (sent, failed attempt, given up, dropped)",
            m.notifications.clone(),
        );
        r.register(
            "prognos_outbox_depth",
            "Deliveries waiting in the outbox",
            m.outbox_depth.clone(),
        );
        r.register(
            "prognos_outbox_oldest_age_seconds",
            "Age of the oldest delivery waiting in the outbox",
            m.outbox_oldest_age.clone(),
        );
        r.register(
            "prognos_remediations",
            "Remediation decisions and calls by action and status",
            m.remediations.clone(),
        );
        r.register(
            "prognos_approval_refusals",
            "Approve/Reject presses refused, by action and reason",
            m.approval_refusals.clone(),
        );
        r.register(
            "prognos_silences_active",
            "Silences in force",
            m.silences_active.clone(),
        );
        r.register(
            "prognos_notification_groups",
            "Alert groups the dispatcher holds",
            m.groups.clone(),
        );
        r.register(
            "prognos_notifier_errors",
            "Notifier failures by kind (store, state)",
            m.errors.clone(),
        );
    }
}

impl NotifierMetrics {
    fn store_error(&self, what: &str, e: &StoreError) {
        tracing::error!(error = %e, "Notifier store failed while {what}.");
        self.errors
            .get_or_create(&pairs(&[("kind", "store")]))
            .inc();
    }

    /// Counts `r` under its status if it just reached it: `before` is its
    /// status before this decision (`None` for a new record), so a refused
    /// press, a second press or a repeated delivery counts nothing.
    fn count_remediation(&self, r: &AuditRecord, before: Option<AuditStatus>) {
        if before == Some(r.status) {
            return;
        }
        let status = serde_json::to_value(r.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        self.remediations
            .get_or_create(&vec![
                ("action".to_string(), r.action.clone()),
                ("status".to_string(), status),
            ])
            .inc();
    }
}
