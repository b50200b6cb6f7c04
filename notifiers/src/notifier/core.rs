//! The notifier's core: the one task that owns what changes as alerts come
//! and go — alert groups, silences, the remediation governor and the
//! approvals waiting for an answer — and every write of them to the store.
//!
//! Everything else (the engine's sink, the flush ticker, the delivery tasks,
//! the bot, the API) asks it through a bounded command channel and awaits
//! its answer, so decisions are taken one at a time in arrival order, each
//! durable before it is answered. Its store writes run on blocking threads,
//! never on the async threads the deliveries use.

use std::collections::HashSet;

use tokio::sync::{mpsc, oneshot};

use super::*;

/// How many commands may wait for the core before senders wait too.
pub(super) const QUEUE: usize = 256;

/// A request to the core, with where to send its answer.
pub(super) enum Command {
    /// Alert transitions (grouped, remediation planned).
    Ingest {
        alerts: Vec<AlertInfo>,
        now: i64,
        done: oneshot::Sender<()>,
    },
    /// The engine's firing alerts at start, to reconcile the groups with.
    Resync {
        firing: Vec<AlertInfo>,
        now: i64,
        done: oneshot::Sender<()>,
    },
    /// Flush the groups due.
    Flush {
        now: i64,
        done: oneshot::Sender<(usize, Option<i64>)>,
    },
    /// The silences.
    Silences { done: oneshot::Sender<Vec<Silence>> },
    /// A new silence.
    AddSilence {
        silence: NewSilence,
        done: oneshot::Sender<Result<String, NotifierError>>,
    },
    /// End a silence.
    ExpireSilence {
        id: String,
        now: i64,
        done: oneshot::Sender<Result<(), NotifierError>>,
    },
    /// The alert groups.
    Groups {
        done: oneshot::Sender<Vec<GroupView>>,
    },
    /// An Approve/Reject press.
    Decide {
        press: Press,
        done: oneshot::Sender<Decided>,
    },
    /// An approval request was posted as Telegram message `message_id`.
    ApprovalSent {
        audit_id: String,
        message_id: i32,
        done: oneshot::Sender<()>,
    },
    /// A remediation call ended (`Ok(HTTP status)` or why it failed).
    RemediationDone {
        audit_id: String,
        outcome: Result<u16, String>,
        now: i64,
        done: oneshot::Sender<()>,
    },
    /// Expire the approvals nobody answered by `now`.
    ExpireApprovals {
        now: i64,
        done: oneshot::Sender<Vec<(i32, String)>>,
    },
    /// A reload: route, receivers and remediation from a new configuration.
    Reconfigure {
        settings: Arc<Settings>,
        done: oneshot::Sender<()>,
    },
    /// Stop once every command sent before this one is done.
    Close { done: oneshot::Sender<()> },
}

/// A silence to add.
pub(super) struct NewSilence {
    pub matchers: Vec<Matcher>,
    pub starts_at: i64,
    pub ends_at: i64,
    pub created_by: String,
    pub comment: String,
}

/// A button press.
pub(super) struct Press {
    pub data: String,
    pub user_id: u64,
    pub username: Option<String>,
    pub now: i64,
}

/// The answer to a press: the text shown to who pressed, and the approval
/// message to edit (its id and new text), if any.
pub(super) struct Decided {
    pub answer: String,
    pub edit: Option<(i32, String)>,
}

/// What changes as alerts come and go; each part saved in the store by name.
#[derive(Debug, Default)]
struct State {
    dispatcher: Dispatcher,
    silences: Silences,
    governor: Governor,
    approvals: Approvals,
}

/// What an ingest changed, to go back to when its write fails.
struct Undo {
    change: Change,
    governor_and_approvals: Option<(Governor, Approvals)>,
}

impl Undo {
    fn apply(self, st: &mut State) {
        st.dispatcher.revert(self.change);
        if let Some((governor, approvals)) = self.governor_and_approvals {
            st.governor = governor;
            st.approvals = approvals;
        }
    }
}

/// The owner of the notifier's state.
pub(super) struct Core {
    settings: Arc<Settings>,
    store: Arc<NotifyStore>,
    metrics: Arc<NotifierMetrics>,
    wakes: Arc<Wakes>,
    state: State,
}

impl Core {
    /// Loads the saved state from `store`.
    pub(super) fn load(
        settings: Arc<Settings>,
        store: Arc<NotifyStore>,
        metrics: Arc<NotifierMetrics>,
        wakes: Arc<Wakes>,
    ) -> Result<Self, NotifierError> {
        let mut governor: Governor = load(&store, "governor")?;
        if let Some(r) = &settings.config.remediation {
            governor.max_calls = r.max_calls;
            governor.per_secs = r.per_secs;
        }
        let state = State {
            dispatcher: crate::dispatcher_store::load_dispatcher(&store)?,
            silences: load(&store, "silences")?,
            governor,
            approvals: load(&store, "approvals")?,
        };
        Ok(Self {
            settings,
            store,
            metrics,
            wakes,
            state,
        })
    }

    /// Answers commands until [`Command::Close`] or until every sender is gone.
    pub(super) async fn run(mut self, mut commands: mpsc::Receiver<Command>) {
        while let Some(c) = commands.recv().await {
            match c {
                Command::Ingest { alerts, now, done } => {
                    self.ingest(&alerts, now).await;
                    let _ = done.send(());
                }
                Command::Resync { firing, now, done } => {
                    self.resync(&firing, now).await;
                    let _ = done.send(());
                }
                Command::Flush { now, done } => {
                    let _ = done.send(self.flush(now).await);
                }
                Command::Silences { done } => {
                    let _ = done.send(self.state.silences.list().to_vec());
                }
                Command::AddSilence { silence, done } => {
                    let _ = done.send(self.add_silence(silence).await);
                }
                Command::ExpireSilence { id, now, done } => {
                    let _ = done.send(self.expire_silence(&id, now).await);
                }
                Command::Groups { done } => {
                    let _ = done.send(self.state.dispatcher.groups());
                }
                Command::Decide { press, done } => {
                    let _ = done.send(self.decide(press).await);
                }
                Command::ApprovalSent {
                    audit_id,
                    message_id,
                    done,
                } => {
                    self.approval_sent(&audit_id, message_id).await;
                    let _ = done.send(());
                }
                Command::RemediationDone {
                    audit_id,
                    outcome,
                    now,
                    done,
                } => {
                    self.remediation_done(&audit_id, outcome, now).await;
                    let _ = done.send(());
                }
                Command::ExpireApprovals { now, done } => {
                    let _ = done.send(self.expire_approvals(now).await);
                }
                Command::Reconfigure { settings, done } => {
                    if let Some(r) = &settings.config.remediation {
                        self.state.governor.max_calls = r.max_calls;
                        self.state.governor.per_secs = r.per_secs;
                    }
                    self.settings = settings;
                    let _ = done.send(());
                }
                Command::Close { done } => {
                    let _ = done.send(());
                    return;
                }
            }
        }
    }

    async fn on_store<T: Send + 'static>(
        &self,
        op: impl FnOnce(&NotifyStore) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        on_store(&self.store, op).await
    }

    /// Groups `alerts` and plans the remediation bound to them; the groups,
    /// the governor, the approvals, the audit records and the outbox entries
    /// commit in one transaction, or nothing changes.
    async fn ingest(&mut self, alerts: &[AlertInfo], now: i64) {
        if alerts.is_empty() {
            return;
        }
        let settings = self.settings.clone();
        let config = &settings.config;
        // Only what this decision touches is kept to go back to: the groups
        // it changes, and the governor and approvals when remediation may
        // change them.
        let change = self.state.dispatcher.ingest(&config.route, alerts, now);
        let undo = Undo {
            change,
            governor_and_approvals: config
                .remediation
                .as_ref()
                .map(|_| (self.state.governor.clone(), self.state.approvals.clone())),
        };
        let mut entries = Vec::new();
        let mut records = Vec::new();
        if let Some(rem) = &config.remediation {
            for a in alerts {
                let planned = match remediation::plan(
                    &rem.actions,
                    &mut self.state.governor,
                    a,
                    now,
                ) {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::error!(alert = %a.name(), error = %e, "Remediation not planned.");
                        continue;
                    }
                };
                for p in planned {
                    // A transition seen again (a restart re-announcing a firing
                    // alert) keeps its first record and is not acted on twice.
                    let id = p.record.id.clone();
                    match self.on_store(move |s| s.get_audit(&id)).await {
                        Ok(Some(_)) => continue,
                        Ok(None) => {}
                        Err(e) => {
                            // Whether it was acted on is unknown: the whole
                            // decision is forgotten (the governor's too), to be
                            // taken again when the store answers.
                            self.metrics.store_error("reading the audit log", &e);
                            undo.apply(&mut self.state);
                            return;
                        }
                    }
                    if let Some(d) = p.enqueue {
                        let target = match &d {
                            Delivery::Approval(req) => {
                                self.state.approvals.pending.insert(
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
        let rows = self.state.dispatcher.rows(&undo.change);
        let states: Vec<(&'static str, String)> = if config.remediation.is_some() {
            vec![
                ("governor", json(&self.state.governor)),
                ("approvals", json(&self.state.approvals)),
            ]
        } else {
            Vec::new()
        };
        let written = records.clone();
        let saved = self
            .on_store(move |s| {
                let refs: Vec<(&str, &str)> =
                    states.iter().map(|(k, v)| (*k, v.as_str())).collect();
                s.enqueue_with_audit(&entries, &refs, Some(&rows), &written)
            })
            .await;
        if let Err(e) = saved {
            self.metrics.store_error("saving alert groups", &e);
            undo.apply(&mut self.state);
            return;
        }
        for r in &records {
            self.metrics.count_remediation(r, None);
        }
        self.wakes.flush.notify_one();
        self.wakes.deliver.notify_one();
    }

    /// Both ways: an alert the groups hold as firing that the engine no
    /// longer has firing (its Resolved was lost in a crash) is resolved; a
    /// firing alert no group holds yet is grouped and notified.
    async fn resync(&mut self, firing: &[AlertInfo], now: i64) {
        let groups = self.state.dispatcher.groups();
        let firing_now: HashSet<String> = firing.iter().map(AlertInfo::fingerprint).collect();
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
            self.ingest(&stale, now).await;
        }
        let known: HashSet<String> = groups
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
            self.ingest(&missing, now).await;
        }
    }

    /// Flushes the groups due at `now` into the outbox, in the same
    /// transaction as the group state that produced them; returns how many
    /// notifications were queued and when the next group is due.
    async fn flush(&mut self, now: i64) -> (usize, Option<i64>) {
        let settings = self.settings.clone();
        let config = &settings.config;
        let st = &mut self.state;
        st.silences.gc(now, SILENCE_RETENTION_SECS);
        let silences_active = st
            .silences
            .list()
            .iter()
            .filter(|s| s.is_active(now))
            .count();
        self.metrics.silences_active.set(silences_active as i64);
        if st.dispatcher.next_due().is_none_or(|t| t > now) {
            let (groups, _) = st.dispatcher.sizes();
            self.metrics.groups.set(groups as i64);
            return (0, st.dispatcher.next_due());
        }
        let receivers = &config.receivers;
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
        } = st;
        let silenced = |l: &crate::alert::KeyValues| silences.is_silenced(l, now).is_some();
        let (mut notifications, change) = dispatcher.flush(
            &config.route,
            &silenced,
            &send_resolved,
            &config.external_url,
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
        let queued = entries.len();
        let rows = self.state.dispatcher.rows(&change);
        let saved = self
            .on_store(move |s| s.enqueue_with_audit(&entries, &[], Some(&rows), &[]))
            .await;
        if let Err(e) = saved {
            self.metrics.store_error("queueing notifications", &e);
            self.state.dispatcher.revert(change);
            return (0, Some(now + 1));
        }
        let (groups, _) = self.state.dispatcher.sizes();
        self.metrics.groups.set(groups as i64);
        if queued > 0 {
            self.wakes.deliver.notify_one();
        }
        (queued, self.state.dispatcher.next_due())
    }

    async fn save_silences(&self) -> Result<(), NotifierError> {
        let s = json(&self.state.silences);
        Ok(self
            .on_store(move |st| st.save_state("silences", &s))
            .await?)
    }

    async fn add_silence(&mut self, s: NewSilence) -> Result<String, NotifierError> {
        let before = self.state.silences.clone();
        let id = self
            .state
            .silences
            .add(
                s.matchers,
                s.starts_at,
                s.ends_at,
                &s.created_by,
                &s.comment,
            )
            .map_err(|e| NotifierError::Silence(e.to_string()))?;
        if let Err(e) = self.save_silences().await {
            self.state.silences = before;
            return Err(e);
        }
        tracing::info!(%id, created_by = %s.created_by, "Silence added.");
        Ok(id)
    }

    async fn expire_silence(&mut self, id: &str, now: i64) -> Result<(), NotifierError> {
        let before = self.state.silences.clone();
        self.state
            .silences
            .expire(id, now)
            .map_err(|e| NotifierError::Silence(e.to_string()))?;
        if let Err(e) = self.save_silences().await {
            self.state.silences = before;
            return Err(e);
        }
        Ok(())
    }

    async fn save_approvals(&self) {
        let s = json(&self.state.approvals);
        if let Err(e) = self
            .on_store(move |st| st.save_state("approvals", &s))
            .await
        {
            self.metrics.store_error("saving approvals", &e);
        }
    }

    async fn approval_sent(&mut self, audit_id: &str, message_id: i32) {
        if let Some(p) = self.state.approvals.pending.get_mut(audit_id) {
            p.message_id = Some(message_id);
            self.save_approvals().await;
        }
    }

    /// Decides an Approve/Reject press (`approve:<id>` / `reject:<id>`): the
    /// audit record, the governor, the approvals and the call's outbox entry
    /// commit together.
    async fn decide(&mut self, press: Press) -> Decided {
        let said = |answer: &str| Decided {
            answer: answer.to_string(),
            edit: None,
        };
        let (decision, id) = match press.data.split_once(':') {
            Some(("approve", id)) => (Decision::Approve, id.to_string()),
            Some(("reject", id)) => (Decision::Reject, id.to_string()),
            _ => return said("Unknown button."),
        };
        let settings = self.settings.clone();
        let Some(rem) = &settings.config.remediation else {
            return said("Remediation is not configured.");
        };
        let key = id.clone();
        let mut record = match self.on_store(move |s| s.get_audit(&key)).await {
            Ok(Some(r)) => r,
            Ok(None) => return said("Unknown request."),
            Err(e) => {
                self.metrics.store_error("reading the audit log", &e);
                return said("prognos could not read its audit log; try again.");
            }
        };
        let Some(action) = rem.actions.iter().find(|a| a.name == record.action) else {
            return said(&format!(
                "Action {} is no longer configured.",
                record.action
            ));
        };
        let before = record.status;
        let governor_before = self.state.governor.clone();
        let outcome = remediation::decide(
            &mut record,
            action,
            &mut self.state.governor,
            press.user_id,
            press.username.as_deref(),
            decision,
            press.now,
        );
        let who = press
            .username
            .as_deref()
            .map_or_else(|| format!("user {}", press.user_id), |n| format!("@{n}"));
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
                    press.now,
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
                self.metrics
                    .approval_refusals
                    .get_or_create(&pairs(&[
                        ("action", &action.name),
                        ("reason", "not_allowed"),
                    ]))
                    .inc();
                tracing::warn!(action = %action.name, user_id = press.user_id, "Approval refused: user not on the allowlist.");
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
            Err(Refusal::Changed) => (
                "The action changed since this request; not called.".to_string(),
                None,
                Vec::new(),
            ),
        };
        let approvals_before = self.state.approvals.clone();
        let message_id = if edit.is_some() {
            self.state
                .approvals
                .pending
                .remove(&id)
                .and_then(|p| p.message_id)
        } else {
            None
        };
        let states = [
            ("governor", json(&self.state.governor)),
            ("approvals", json(&self.state.approvals)),
        ];
        let written = record.clone();
        let saved = self
            .on_store(move |s| {
                let refs: Vec<(&str, &str)> =
                    states.iter().map(|(k, v)| (*k, v.as_str())).collect();
                s.enqueue_with_audit(&entries, &refs, None, std::slice::from_ref(&written))
            })
            .await;
        if let Err(e) = saved {
            self.metrics.store_error("queueing a remediation", &e);
            self.state.governor = governor_before;
            self.state.approvals = approvals_before;
            return said("prognos could not record the decision; try again.");
        }
        self.metrics.count_remediation(&record, Some(before));
        self.wakes.deliver.notify_one();
        Decided {
            answer,
            edit: message_id.zip(edit),
        }
    }

    /// Records the outcome of a remediation call in its audit record.
    async fn remediation_done(&mut self, audit_id: &str, outcome: Result<u16, String>, now: i64) {
        let key = audit_id.to_string();
        let mut r = match self.on_store(move |s| s.get_audit(&key)).await {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(err) => {
                self.metrics.store_error("reading the audit log", &err);
                return;
            }
        };
        let before = r.status;
        match outcome {
            Ok(status) => {
                r.status = AuditStatus::Sent;
                r.result = Some(format!("HTTP {status}"));
            }
            Err(msg) => {
                r.status = AuditStatus::Failed;
                r.result = Some(msg);
            }
        }
        r.finished_at = Some(now);
        let written = r.clone();
        match self.on_store(move |s| s.put_audit(&written)).await {
            Ok(()) => self.metrics.count_remediation(&r, Some(before)),
            Err(err) => self.metrics.store_error("writing the audit log", &err),
        }
    }

    /// Expires the approvals nobody answered by `now`; returns the approval
    /// messages to edit (id, new text).
    async fn expire_approvals(&mut self, now: i64) -> Vec<(i32, String)> {
        let due: Vec<(String, PendingApproval)> = self
            .state
            .approvals
            .pending
            .iter()
            .filter(|(_, p)| p.expires_at <= now)
            .map(|(k, p)| (k.clone(), p.clone()))
            .collect();
        let mut edits = Vec::new();
        for (id, p) in due {
            let key = id.clone();
            match self.on_store(move |s| s.get_audit(&key)).await {
                Ok(Some(mut r)) => {
                    let before = r.status;
                    if remediation::expire(&mut r, p.expires_at, now) {
                        let written = r.clone();
                        if let Err(e) = self.on_store(move |s| s.put_audit(&written)).await {
                            // Kept pending: tried again at the next poll.
                            self.metrics.store_error("writing the audit log", &e);
                            continue;
                        }
                        self.metrics.count_remediation(&r, Some(before));
                        if let Some(mid) = p.message_id {
                            edits.push((
                                mid,
                                format!("⌛ <b>Expired</b>: {} not called.", escape(&r.action)),
                            ));
                        }
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    self.metrics.store_error("reading the audit log", &e);
                    continue;
                }
            }
            self.state.approvals.pending.remove(&id);
            self.save_approvals().await;
        }
        edits
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
        in_flight: false,
    }
}
