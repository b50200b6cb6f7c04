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
use crate::remediation::{self, AuditRecord, Decision, Governor, Refusal};
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

/// Unix seconds now.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

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
    pub fn resync(&self, firing: &[AlertInfo], now: i64) {
        let known: std::collections::HashSet<String> = self
            .groups()
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
        for r in &records {
            self.count_remediation(r);
            if let Err(e) = inner.store.put_audit(r) {
                self.store_error("writing the audit log", &e);
            }
        }
        let states = [
            ("dispatcher", json(&st.dispatcher)),
            ("governor", json(&st.governor)),
            ("approvals", json(&st.approvals)),
        ];
        let refs: Vec<(&str, &str)> = states.iter().map(|(k, v)| (*k, v.as_str())).collect();
        if let Err(e) = inner.store.enqueue(&entries, &refs) {
            self.store_error("saving alert groups", &e);
            st.dispatcher = before;
            return;
        }
        drop(st);
        inner.wake_flush.notify_one();
        inner.wake_deliver.notify_one();
    }

    fn count_remediation(&self, r: &AuditRecord) {
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

    /// Delivers every outbox entry due at `now` once (sends, retries
    /// scheduled, give-ups); returns how many were acknowledged.
    pub async fn deliver_due(&self, now: i64) -> usize {
        let due = match self.inner.store.due(now, BATCH) {
            Ok(d) => d,
            Err(e) => {
                self.store_error("reading the outbox", &e);
                return 0;
            }
        };
        // Targets in parallel, each target's entries in order.
        let mut by_target: HashMap<String, Vec<OutboxEntry>> = HashMap::new();
        for e in due {
            by_target.entry(e.target.clone()).or_default().push(e);
        }
        let mut tasks = tokio::task::JoinSet::new();
        for (_, entries) in by_target {
            let me = self.clone();
            tasks.spawn(async move {
                let mut acked = 0;
                for e in entries {
                    if me.deliver_one(e, now).await {
                        acked += 1;
                    }
                }
                acked
            });
        }
        let mut acked = 0;
        while let Some(r) = tasks.join_next().await {
            acked += r.unwrap_or(0);
        }
        self.update_depth(now);
        acked
    }

    fn update_depth(&self, now: i64) {
        if let Ok((depth, oldest)) = self.inner.store.depth() {
            let m = &self.inner.metrics;
            m.outbox_depth.set(depth as i64);
            m.outbox_oldest_age
                .set(oldest.map_or(0, |t| (now - t).max(0)));
        }
    }

    fn count(&self, receiver: &str, target: &str, result: &str) {
        self.inner
            .metrics
            .notifications
            .get_or_create(&pairs(&[
                ("receiver", receiver),
                ("target", target),
                ("result", result),
            ]))
            .inc();
    }

    /// One attempt at one entry; true when acknowledged.
    async fn deliver_one(&self, mut e: OutboxEntry, now: i64) -> bool {
        let inner = &self.inner;
        let receiver = inner
            .targets
            .get(&e.target)
            .map(|t| t.receiver.clone())
            .unwrap_or_else(|| e.target.clone());
        if now - e.created_at > inner.config.give_up_after_secs {
            let reason = format!(
                "undelivered after {} s and {} attempts (last error: {})",
                now - e.created_at,
                e.attempts,
                e.last_error.as_deref().unwrap_or("none")
            );
            tracing::warn!(target = %e.target, id = %e.id, %reason, "Delivery given up.");
            self.finish_remediation(&e, Err(&reason), now);
            if let Err(err) = inner.store.abandon(&e.id, &reason, now) {
                self.store_error("giving a delivery up", &err);
            }
            self.count(&receiver, &e.target, "given_up");
            return false;
        }
        let mut progress = e.progress;
        let result = match &e.delivery {
            Delivery::Notify(n) => match inner.targets.get(&e.target) {
                Some(t) => self.send_notification(t, n, &mut progress).await,
                None => Err(SendError::permanent(format!(
                    "target {} is no longer configured",
                    e.target
                ))),
            },
            Delivery::Remediate(call) => match &inner.config.remediation {
                Some(rem) => remediation::call(&inner.client, call, &rem.secret, now)
                    .await
                    .map(|status| {
                        self.finish_remediation(&e, Ok(status), now);
                    }),
                None => Err(SendError::permanent("remediation is no longer configured")),
            },
            Delivery::Approval(req) => match &inner.bot {
                Some(bot) => bot.send_approval(&req.html, &req.audit_id).await.map(|id| {
                    let mut st = self.state();
                    if let Some(p) = st.approvals.pending.get_mut(&req.audit_id) {
                        p.message_id = Some(id);
                    }
                    let s = json(&st.approvals);
                    if let Err(err) = inner.store.save_state("approvals", &s) {
                        self.store_error("saving approvals", &err);
                    }
                }),
                None => Err(SendError::permanent(
                    "no Telegram bot is configured for approvals",
                )),
            },
        };
        match result {
            Ok(()) => {
                if let Err(err) = inner.store.acknowledge(&e.id, now) {
                    self.store_error("acknowledging a delivery", &err);
                }
                self.count(&receiver, &e.target, "sent");
                true
            }
            Err(err) => {
                e.attempts += 1;
                e.progress = progress;
                e.last_error = Some(err.message.clone());
                match err.action {
                    RetryAction::Retry { after } => {
                        let delay = inner.config.backoff.delay(
                            e.attempts.saturating_sub(1),
                            rand::random::<f64>(),
                            after,
                        );
                        e.next_attempt_at = now + (delay.as_secs_f64().ceil() as i64).max(1);
                        tracing::warn!(target = %e.target, attempt = e.attempts, retry_in_s = e.next_attempt_at - now, error = %err.message, "Delivery failed; will retry.");
                        if let Err(s) = inner.store.reschedule(&e) {
                            self.store_error("rescheduling a delivery", &s);
                        }
                        self.count(&receiver, &e.target, "failed");
                    }
                    RetryAction::DontRetry | RetryAction::Successful => {
                        tracing::error!(target = %e.target, error = %err.message, "Delivery failed for good.");
                        self.finish_remediation(&e, Err(&err.message), now);
                        if let Err(s) = inner.store.abandon(&e.id, &err.message, now) {
                            self.store_error("dropping a delivery", &s);
                        }
                        self.count(&receiver, &e.target, "dropped");
                    }
                }
                false
            }
        }
    }

    async fn send_notification(
        &self,
        t: &TargetRuntime,
        n: &Notification,
        progress: &mut u32,
    ) -> Result<(), SendError> {
        let rendered = match &t.channel {
            Channel::Telegram(_) | Channel::Email(_) => render(n, &self.inner.config.render),
            _ => Default::default(),
        };
        t.channel.send(n, &rendered, progress).await
    }

    /// Records the outcome of a remediation call in its audit record.
    fn finish_remediation(&self, e: &OutboxEntry, outcome: Result<u16, &str>, now: i64) {
        let Delivery::Remediate(call) = &e.delivery else {
            return;
        };
        let store = &self.inner.store;
        let mut r = match store.get_audit(&call.audit_id) {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(err) => {
                self.store_error("reading the audit log", &err);
                return;
            }
        };
        match outcome {
            Ok(status) => {
                r.status = remediation::AuditStatus::Sent;
                r.result = Some(format!("HTTP {status}"));
            }
            Err(msg) => {
                r.status = remediation::AuditStatus::Failed;
                r.result = Some(msg.to_string());
            }
        }
        r.finished_at = Some(now);
        self.count_remediation(&r);
        if let Err(err) = store.put_audit(&r) {
            self.store_error("writing the audit log", &err);
        }
    }

    /// Starts the flush, deliver and bot loops; they end when `stop` turns true.
    pub fn spawn(&self, stop: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
        let mut handles = Vec::new();
        let me = self.clone();
        let mut s = stop.clone();
        handles.push(tokio::spawn(async move {
            loop {
                let now = unix_now();
                let (_, next) = me.flush(now);
                let wait = next
                    .map(|t| Duration::from_secs((t - now).clamp(0, IDLE.as_secs() as i64) as u64))
                    .unwrap_or(IDLE);
                tokio::select! {
                    _ = tokio::time::sleep(wait.max(Duration::from_millis(200))) => {}
                    _ = me.inner.wake_flush.notified() => {}
                    _ = s.changed() => return,
                }
            }
        }));
        let me = self.clone();
        let mut s = stop.clone();
        handles.push(tokio::spawn(async move {
            loop {
                let now = unix_now();
                me.deliver_due(now).await;
                if let Err(e) = me.inner.store.prune(now - DEDUP_RETENTION_SECS) {
                    me.store_error("pruning delivered ids", &e);
                }
                let next = me.inner.store.next_due().ok().flatten();
                let wait = next
                    .map(|t| {
                        Duration::from_secs((t - unix_now()).clamp(0, IDLE.as_secs() as i64) as u64)
                    })
                    .unwrap_or(IDLE);
                if next.is_some_and(|t| t <= unix_now()) {
                    continue;
                }
                tokio::select! {
                    _ = tokio::time::sleep(wait.max(Duration::from_millis(200))) => {}
                    _ = me.inner.wake_deliver.notified() => {}
                    _ = s.changed() => return,
                }
            }
        }));
        if self.inner.bot.is_some() {
            let me = self.clone();
            let mut s = stop;
            handles.push(tokio::spawn(async move {
                let mut failures = 0u32;
                loop {
                    tokio::select! {
                        ok = me.poll_bot() => {
                            if ok {
                                failures = 0;
                            } else {
                                failures += 1;
                                let d = me.inner.config.backoff.delay(failures, rand::random::<f64>(), None);
                                tokio::select! {
                                    _ = tokio::time::sleep(d) => {}
                                    _ = s.changed() => return,
                                }
                            }
                        }
                        _ = s.changed() => return,
                    }
                }
            }));
        }
        handles
    }

    /// One long poll of the bot: handles commands and approval presses, then
    /// expires unanswered approvals. False when Telegram could not be reached.
    pub async fn poll_bot(&self) -> bool {
        let (Some(bot), Some(cfg)) = (&self.inner.bot, &self.inner.config.bot) else {
            return true;
        };
        let offset = self.state().bot_offset;
        let updates = match bot.updates(offset, cfg.poll_timeout_secs).await {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!(error = %e.message, "Telegram getUpdates failed.");
                return false;
            }
        };
        for u in updates {
            self.handle_update(bot, &u).await;
            let s = {
                let mut st = self.state();
                st.bot_offset = st.bot_offset.max(u.update_id + 1);
                json(&st.bot_offset)
            };
            if let Err(e) = self.inner.store.save_state("telegram_offset", &s) {
                self.store_error("saving the Telegram offset", &e);
            }
        }
        self.expire_approvals(unix_now()).await;
        true
    }

    async fn handle_update(&self, bot: &TelegramChannel, u: &BotUpdate) {
        match &u.kind {
            BotUpdateKind::Callback {
                id,
                user_id,
                username,
                data,
                ..
            } => {
                let answer = self
                    .decide(data, *user_id, username.as_deref(), unix_now())
                    .await;
                if let Err(e) = bot.answer_callback(id, &answer).await {
                    tracing::warn!(error = %e.message, "Could not answer a button press.");
                }
            }
            BotUpdateKind::Text {
                user_id,
                chat_id,
                text,
                ..
            } => {
                let reply = self.command(text, *user_id, unix_now());
                if let Some(reply) = reply
                    && let Err(e) = bot.reply(*chat_id, &reply).await
                {
                    tracing::warn!(error = %e.message, "Could not answer a command.");
                }
            }
            BotUpdateKind::Other => {}
        }
    }

    /// Handles an Approve/Reject press (`approve:<id>` / `reject:<id>`);
    /// returns the text shown to the user who pressed.
    pub async fn decide(
        &self,
        data: &str,
        user_id: u64,
        username: Option<&str>,
        now: i64,
    ) -> String {
        let (decision, id) = match data.split_once(':') {
            Some(("approve", id)) => (Decision::Approve, id),
            Some(("reject", id)) => (Decision::Reject, id),
            _ => return "Unknown button.".to_string(),
        };
        let inner = &self.inner;
        let Some(rem) = &inner.config.remediation else {
            return "Remediation is not configured.".to_string();
        };
        let mut record = match inner.store.get_audit(id) {
            Ok(Some(r)) => r,
            Ok(None) => return "Unknown request.".to_string(),
            Err(e) => {
                self.store_error("reading the audit log", &e);
                return "prognos could not read its audit log; try again.".to_string();
            }
        };
        let Some(action) = rem.actions.iter().find(|a| a.name == record.action) else {
            return format!("Action {} is no longer configured.", record.action);
        };
        let (answer, edit, entries, message_id, states) = {
            let mut st = self.state();
            let outcome = remediation::decide(
                &mut record,
                action,
                &mut st.governor,
                user_id,
                username,
                decision,
                now,
            );
            let who = username.map_or_else(|| format!("user {user_id}"), |n| format!("@{n}"));
            let (answer, edit, entries) = match outcome {
                Ok(Some(d)) => (
                    format!("Approved: calling {}.", action.name),
                    Some(format!(
                        "✅ <b>Approved</b> by {}: calling {}.",
                        escape(&who),
                        escape(&action.name)
                    )),
                    vec![entry(
                        &format!("remediation:{}", action.name),
                        &record.id,
                        d,
                        now,
                    )],
                ),
                Ok(None) => (
                    format!("Recorded: {}.", status_word(&record)),
                    Some(format!(
                        "<b>{}</b> by {}: {} not called.",
                        escape(&status_word(&record)),
                        escape(&who),
                        escape(&action.name)
                    )),
                    Vec::new(),
                ),
                Err(Refusal::NotAllowed) => {
                    inner
                        .metrics
                        .approval_refusals
                        .get_or_create(&pairs(&[
                            ("action", &action.name),
                            ("reason", "not_allowed"),
                        ]))
                        .inc();
                    tracing::warn!(action = %action.name, user_id, "Approval refused: user not on the allowlist.");
                    (
                        "You are not on this action's approvers list.".to_string(),
                        None,
                        Vec::new(),
                    )
                }
                Err(Refusal::Expired) => (
                    "This request has expired.".to_string(),
                    Some(format!(
                        "⌛ <b>Expired</b>: {} not called.",
                        escape(&action.name)
                    )),
                    Vec::new(),
                ),
                Err(Refusal::AlreadyDecided(s)) => {
                    (format!("Already decided ({s:?})."), None, Vec::new())
                }
                Err(Refusal::Unknown) => ("Unknown request.".to_string(), None, Vec::new()),
            };
            let message_id = if edit.is_some() {
                st.approvals.pending.remove(id).and_then(|p| p.message_id)
            } else {
                None
            };
            let states = [
                ("governor", json(&st.governor)),
                ("approvals", json(&st.approvals)),
            ];
            (answer, edit, entries, message_id, states)
        };
        self.count_remediation(&record);
        if let Err(e) = inner.store.put_audit(&record) {
            self.store_error("writing the audit log", &e);
        }
        let refs: Vec<(&str, &str)> = states.iter().map(|(k, v)| (*k, v.as_str())).collect();
        if let Err(e) = inner.store.enqueue(&entries, &refs) {
            self.store_error("queueing a remediation", &e);
        }
        inner.wake_deliver.notify_one();
        if let (Some(bot), Some(mid), Some(text)) = (&inner.bot, message_id, edit)
            && let Err(e) = bot.edit(mid, &text).await
        {
            tracing::warn!(error = %e.message, "Could not update the approval message.");
        }
        answer
    }

    /// Expires approvals nobody answered in time.
    pub async fn expire_approvals(&self, now: i64) {
        let due: Vec<(String, PendingApproval)> = {
            let st = self.state();
            st.approvals
                .pending
                .iter()
                .filter(|(_, p)| p.expires_at <= now)
                .map(|(k, p)| (k.clone(), p.clone()))
                .collect()
        };
        for (id, p) in due {
            if let Ok(Some(mut r)) = self.inner.store.get_audit(&id)
                && remediation::expire(&mut r, p.expires_at, now)
            {
                self.count_remediation(&r);
                if let Err(e) = self.inner.store.put_audit(&r) {
                    self.store_error("writing the audit log", &e);
                }
                if let (Some(bot), Some(mid)) = (&self.inner.bot, p.message_id) {
                    let text = format!("⌛ <b>Expired</b>: {} not called.", escape(&r.action));
                    let _ = bot.edit(mid, &text).await;
                }
            }
            let s = {
                let mut st = self.state();
                st.approvals.pending.remove(&id);
                json(&st.approvals)
            };
            if let Err(e) = self.inner.store.save_state("approvals", &s) {
                self.store_error("saving approvals", &e);
            }
        }
    }

    /// Handles a chat message; returns the reply (HTML), if any.
    pub fn command(&self, text: &str, user_id: u64, now: i64) -> Option<String> {
        let cmd = match command::parse(text) {
            Ok(None) => return None,
            Ok(Some(c)) => c,
            Err(e) => return Some(escape(&e.to_string())),
        };
        let allowed = self
            .inner
            .config
            .bot
            .as_ref()
            .is_some_and(|b| b.allowed_users.contains(&user_id));
        if !allowed && cmd != Command::Help {
            return Some(format!("User {user_id} is not allowed to manage silences."));
        }
        Some(match cmd {
            Command::Help => escape(command::help()),
            Command::Silence {
                duration_secs,
                matchers,
                comment,
            } => {
                let shown: Vec<String> = matchers.iter().map(|m| m.to_string()).collect();
                match self.add_silence(
                    matchers,
                    now,
                    now + duration_secs,
                    &format!("telegram:{user_id}"),
                    &comment,
                ) {
                    Ok(id) => format!(
                        "🔕 Silenced <code>{}</code> until {} (id <code>{}</code>).",
                        escape(&shown.join(", ")),
                        escape(&crate::alert::rfc3339(now + duration_secs)),
                        escape(&id)
                    ),
                    Err(e) => escape(&e.to_string()),
                }
            }
            Command::Silences => {
                let active: Vec<String> = self
                    .silences()
                    .iter()
                    .filter(|s| s.is_active(now))
                    .map(|s| {
                        let m: Vec<String> = s.matchers.iter().map(|m| m.to_string()).collect();
                        format!(
                            "<code>{}</code> {} until {} — {}",
                            escape(&s.id),
                            escape(&m.join(", ")),
                            escape(&crate::alert::rfc3339(s.ends_at)),
                            escape(&s.comment)
                        )
                    })
                    .collect();
                if active.is_empty() {
                    "No silence in force.".to_string()
                } else {
                    crate::telegram::message(&active)
                }
            }
            Command::Unsilence { id } => match self.expire_silence(&id, now) {
                Ok(()) => format!("🔔 Silence <code>{}</code> ended.", escape(&id)),
                Err(e) => escape(&e.to_string()),
            },
        })
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

fn status_word(r: &AuditRecord) -> String {
    serde_json::to_value(r.status)
        .ok()
        .and_then(|v| v.as_str().map(|s| s.replace('_', " ")))
        .unwrap_or_default()
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
    }
}
