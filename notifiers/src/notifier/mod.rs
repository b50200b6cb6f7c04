//! The notifier service: takes alert transitions from the engine, routes and
//! groups them, plans remediation, and delivers everything through the
//! durable outbox.
//!
//! Three loops run beside the engine:
//! - **flush**: asks the [`Dispatcher`] for the groups that are due and
//!   writes their notifications to the outbox in the same transaction as the
//!   dispatcher state that produced them, so a crash either loses both (and
//!   the flush is recomputed with the same idempotency keys) or keeps both;
//! - **deliver**: sends what the outbox holds, target by target, and records
//!   each acknowledgement before forgetting the entry; failures are retried
//!   with exponential backoff and full jitter (Telegram's `retry_after` is
//!   honoured) until the give-up age;
//! - **bot** (when a Telegram bot is configured): long-polls `getUpdates` for
//!   chat commands (silences) and Approve/Reject presses, and expires
//!   approvals nobody answered.
//!
//! This file holds the service's state, ingestion, flushing and API;
//! [`deliver`] the outbox delivery and the loops; [`bot`] the Telegram bot.

mod bot;
mod deliver;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::alert::{AlertInfo, Notification};
use crate::channel::Channel;
use crate::channel::alertmanager::AlertmanagerChannel;
use crate::channel::email::EmailChannel;
use crate::channel::telegram::{BotUpdate, BotUpdateKind, TelegramChannel};
use crate::channel::webhook::WebhookChannel;
use crate::command::{self, Command};
use crate::config::{NotifierConfig, Target};
use crate::delivery::SendError;
use crate::matcher::Matcher;
use crate::message::render;
use crate::payload::Status;
use crate::remediation::{self, AuditRecord, AuditStatus, Decision, Governor, Refusal};
use crate::retry::RetryAction;
use crate::route::{Dispatcher, GroupView};
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

/// What changes as alerts come and go; persisted in the store by name.
#[derive(Debug, Default)]
struct State {
    dispatcher: Dispatcher,
    silences: Silences,
    governor: Governor,
    approvals: Approvals,
    bot_offset: i32,
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

struct Inner {
    config: NotifierConfig,
    store: Arc<NotifyStore>,
    state: Mutex<State>,
    targets: BTreeMap<String, TargetRuntime>,
    bot: Option<TelegramChannel>,
    client: reqwest::Client,
    metrics: Arc<NotifierMetrics>,
    wake_flush: Notify,
    wake_deliver: Notify,
}

/// The notifier service. Cheap to clone: clones share everything.
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("targets", &self.inner.targets.keys().collect::<Vec<_>>())
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

impl Notifier {
    /// Sets up the channels and loads the saved state from `store`.
    pub fn open(
        config: NotifierConfig,
        store: Arc<NotifyStore>,
        metrics: Arc<NotifierMetrics>,
    ) -> Result<Self, NotifierError> {
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
        let mut governor: Governor = load(&store, "governor")?;
        if store.load_state("governor")?.is_none()
            && let Some(r) = &config.remediation
        {
            governor = Governor::new(r.max_calls, r.per_secs);
        }
        let state = State {
            dispatcher: load(&store, "dispatcher")?,
            silences: load(&store, "silences")?,
            governor,
            approvals: load(&store, "approvals")?,
            bot_offset: load(&store, "telegram_offset")?,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                store,
                state: Mutex::new(state),
                targets,
                bot,
                client,
                metrics,
                wake_flush: Notify::new(),
                wake_deliver: Notify::new(),
            }),
        })
    }

    /// Alerts firing in the engine's saved state, handed over at start: those
    /// no group holds yet (a crash between the engine's save and the
    /// notifier's) are grouped and notified; known ones are left as they are.
    /// Both ways: an alert the groups hold as firing that the engine no
    /// longer has firing (its Resolved was lost in a crash) is resolved now,
    /// rather than repeated every `repeat_interval` for ever.
    pub fn resync(&self, firing: &[AlertInfo], now: i64) {
        let groups = self.groups();
        let firing_now: std::collections::HashSet<String> =
            firing.iter().map(AlertInfo::fingerprint).collect();
        let mut stale: Vec<AlertInfo> = groups
            .iter()
            .flat_map(|g| &g.alerts)
            .filter(|a| a.status == Status::Firing && !firing_now.contains(&a.fingerprint()))
            .map(|a| AlertInfo {
                status: Status::Resolved,
                ends_at: Some(now),
                ..a.clone()
            })
            .collect();
        stale.dedup_by_key(|a| a.fingerprint());
        if !stale.is_empty() {
            tracing::info!(
                alerts = stale.len(),
                "Alerts grouped as firing no longer fire; resolving them."
            );
            self.ingest(&stale, now);
        }
        let known: std::collections::HashSet<String> = groups
            .iter()
            .flat_map(|g| g.alerts.iter().map(AlertInfo::fingerprint))
            .collect();
        let missing: Vec<AlertInfo> = firing
            .iter()
            .filter(|a| !known.contains(&a.fingerprint()))
            .cloned()
            .collect();
        if !missing.is_empty() {
            tracing::info!(
                alerts = missing.len(),
                "Firing alerts not yet grouped; notifying them."
            );
            self.ingest(&missing, now);
        }
    }
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

impl Notifier {
    fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn store_error(&self, what: &str, e: &StoreError) {
        tracing::error!(error = %e, "Notifier store failed while {what}.");
        self.inner
            .metrics
            .errors
            .get_or_create(&pairs(&[("kind", "store")]))
            .inc();
    }

    /// Takes alert transitions at `now`: groups them for notification and
    /// plans the remediation actions bound to them. Durable before it returns.
    pub fn ingest(&self, alerts: &[AlertInfo], now: i64) {
        if alerts.is_empty() {
            return;
        }
        let inner = &self.inner;
        let mut st = self.state();
        let before = st.dispatcher.clone();
        st.dispatcher.ingest(&inner.config.route, alerts, now);
        let mut entries = Vec::new();
        let mut records = Vec::new();
        if let Some(rem) = &inner.config.remediation {
            for a in alerts {
                let planned = match remediation::plan(&rem.actions, &mut st.governor, a, now) {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::error!(alert = %a.name(), error = %e, "Remediation not planned.");
                        continue;
                    }
                };
                for p in planned {
                    // A transition seen again (a restart re-announcing a firing
                    // alert) keeps its first record and is not acted on twice.
                    match inner.store.get_audit(&p.record.id) {
                        Ok(Some(_)) => continue,
                        Ok(None) => {}
                        Err(e) => {
                            self.store_error("reading the audit log", &e);
                            continue;
                        }
                    }
                    if let Some(d) = p.enqueue {
                        let target = match &d {
                            Delivery::Approval(req) => {
                                st.approvals.pending.insert(
                                    req.audit_id.clone(),
                                    PendingApproval {
                                        expires_at: req.expires_at,
                                        message_id: None,
                                    },
                                );
                                "approval".to_string()
                            }
                            _ => format!("remediation:{}", p.record.action),
                        };
                        entries.push(entry(&target, &p.record.id, d, now));
                    }
                    records.push(p.record);
                }
            }
        }
        let states = [
            ("dispatcher", json(&st.dispatcher)),
            ("governor", json(&st.governor)),
            ("approvals", json(&st.approvals)),
        ];
        let refs: Vec<(&str, &str)> = states.iter().map(|(k, v)| (*k, v.as_str())).collect();
        if let Err(e) = inner.store.enqueue_with_audit(&entries, &refs, &records) {
            self.store_error("saving alert groups", &e);
            st.dispatcher = before;
            return;
        }
        for r in &records {
            self.count_remediation(r, None);
        }
        drop(st);
        inner.wake_flush.notify_one();
        inner.wake_deliver.notify_one();
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
        self.inner
            .metrics
            .remediations
            .get_or_create(&vec![
                ("action".to_string(), r.action.clone()),
                ("status".to_string(), status),
            ])
            .inc();
    }

    /// Flushes the groups due at `now` into the outbox; returns how many
    /// notifications were queued and when the next group is due.
    pub fn flush(&self, now: i64) -> (usize, Option<i64>) {
        let inner = &self.inner;
        let mut st = self.state();
        st.silences.gc(now, SILENCE_RETENTION_SECS);
        let silences_active = st
            .silences
            .list()
            .iter()
            .filter(|s| s.is_active(now))
            .count();
        inner.metrics.silences_active.set(silences_active as i64);
        if st.dispatcher.next_due().is_none_or(|t| t > now) {
            let (groups, _) = st.dispatcher.sizes();
            inner.metrics.groups.set(groups as i64);
            return (0, st.dispatcher.next_due());
        }
        let before = st.dispatcher.clone();
        let receivers = &inner.config.receivers;
        let send_resolved = |name: &str| {
            receivers
                .iter()
                .find(|r| r.name == name)
                .is_some_and(|r| r.send_resolved)
        };
        let State {
            dispatcher,
            silences,
            ..
        } = &mut *st;
        let silenced = |l: &crate::alert::KeyValues| silences.is_silenced(l, now).is_some();
        let mut notifications = dispatcher.flush(
            &inner.config.route,
            &silenced,
            &send_resolved,
            &inner.config.external_url,
            now,
        );
        for n in &mut notifications {
            n.keep_only_the_lead_chart();
        }
        let mut entries = Vec::new();
        for n in &notifications {
            let Some(r) = receivers.iter().find(|r| r.name == n.receiver) else {
                tracing::warn!(receiver = %n.receiver, "A route names an unknown receiver; notification dropped.");
                continue;
            };
            for target in target_names(r) {
                entries.push(entry(&target, &n.key, Delivery::Notify(n.clone()), now));
            }
        }
        let state = json(&st.dispatcher);
        if let Err(e) = inner.store.enqueue(&entries, &[("dispatcher", &state)]) {
            self.store_error("queueing notifications", &e);
            st.dispatcher = before;
            return (0, Some(now + 1));
        }
        let (groups, _) = st.dispatcher.sizes();
        inner.metrics.groups.set(groups as i64);
        if !entries.is_empty() {
            inner.wake_deliver.notify_one();
        }
        (entries.len(), st.dispatcher.next_due())
    }

    /// The silences (active and recently ended).
    pub fn silences(&self) -> Vec<Silence> {
        self.state().silences.list().to_vec()
    }

    /// Adds a silence; returns its id.
    pub fn add_silence(
        &self,
        matchers: Vec<Matcher>,
        starts_at: i64,
        ends_at: i64,
        created_by: &str,
        comment: &str,
    ) -> Result<String, NotifierError> {
        let mut st = self.state();
        let id = st
            .silences
            .add(matchers, starts_at, ends_at, created_by, comment)
            .map_err(|e| NotifierError::Silence(e.to_string()))?;
        let s = json(&st.silences);
        self.inner.store.save_state("silences", &s)?;
        tracing::info!(%id, created_by, "Silence added.");
        Ok(id)
    }

    /// Ends a silence now.
    pub fn expire_silence(&self, id: &str, now: i64) -> Result<(), NotifierError> {
        let mut st = self.state();
        st.silences
            .expire(id, now)
            .map_err(|e| NotifierError::Silence(e.to_string()))?;
        let s = json(&st.silences);
        self.inner.store.save_state("silences", &s)?;
        Ok(())
    }

    /// The remediation audit log, newest first.
    pub fn audit(&self, limit: usize) -> Result<Vec<AuditRecord>, NotifierError> {
        Ok(self.inner.store.audit(limit)?)
    }

    /// Deliveries waiting in the outbox.
    pub fn outbox(&self) -> Result<Vec<OutboxEntry>, NotifierError> {
        Ok(self.inner.store.pending()?)
    }

    /// The alert groups the dispatcher holds.
    pub fn groups(&self) -> Vec<GroupView> {
        self.state().dispatcher.groups()
    }
}

fn entry(target: &str, key: &str, delivery: Delivery, now: i64) -> OutboxEntry {
    OutboxEntry {
        id: format!("{target}/{key}"),
        target: target.to_string(),
        key: key.to_string(),
        delivery,
        created_at: now,
        next_attempt_at: now,
        attempts: 0,
        progress: 0,
        last_error: None,
        in_flight: false,
    }
}
