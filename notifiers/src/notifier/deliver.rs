//! Delivery: the outbox entries due, sent target by target, acknowledged or
//! rescheduled with backoff, given up after their age; and the service's loops.

use super::*;

impl Notifier {
    /// Delivers every outbox entry due at `now` once (sends, retries
    /// scheduled, give-ups); returns how many were acknowledged.
    pub async fn deliver_due(&self, now: i64) -> usize {
        let mut busy = HashMap::new();
        let mut sending = tokio::task::JoinSet::new();
        self.start_due(now, &mut busy, &mut sending);
        let mut acked = 0;
        while let Some(r) = sending.join_next().await {
            acked += r.unwrap_or(0);
        }
        self.update_depth(now);
        acked
    }

    /// Starts delivering the entries due at `now` of every target not in
    /// `busy`, one task per target, each target's entries in order; the
    /// tasks are added to `sending` and, by task id, to `busy`. A slow or
    /// hung target holds only its own entries: the others' sends and
    /// retries go on at their own pace. Returns whether any task started.
    fn start_due(
        &self,
        now: i64,
        busy: &mut HashMap<tokio::task::Id, String>,
        sending: &mut tokio::task::JoinSet<usize>,
    ) -> bool {
        let due = match self.store.due(now, BATCH) {
            Ok(d) => d,
            Err(e) => {
                self.metrics.store_error("reading the outbox", &e);
                return false;
            }
        };
        let mut by_target: HashMap<String, Vec<OutboxEntry>> = HashMap::new();
        for e in due
            .into_iter()
            .filter(|e| !busy.values().any(|t| *t == e.target))
        {
            by_target.entry(e.target.clone()).or_default().push(e);
        }
        let started = !by_target.is_empty();
        for (target, entries) in by_target {
            let me = self.clone();
            let task = sending.spawn(async move {
                let mut acked = 0;
                for e in entries {
                    if me.deliver_one(e, now).await {
                        acked += 1;
                    }
                }
                me.update_depth(unix_now());
                acked
            });
            busy.insert(task.id(), target);
        }
        self.update_depth(now);
        started
    }

    fn update_depth(&self, now: i64) {
        if let Ok((depth, oldest)) = self.store.depth() {
            let m = &self.metrics;
            m.outbox_depth.set(depth as i64);
            m.outbox_oldest_age
                .set(oldest.map_or(0, |t| now.saturating_sub(t).max(0)));
        }
    }

    fn count(&self, receiver: &str, target: &str, result: &str) {
        self.metrics
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
        let settings = self.settings.clone();
        let receiver = settings
            .targets
            .get(&e.target)
            .map(|t| t.receiver.clone())
            .unwrap_or_else(|| e.target.clone());
        let age = now.saturating_sub(e.created_at);
        if age > settings.config.give_up_after_secs {
            let reason = format!(
                "undelivered after {} s and {} attempts (last error: {})",
                age,
                e.attempts,
                e.last_error.as_deref().unwrap_or("none")
            );
            tracing::warn!(target = %e.target, id = %e.id, %reason, "Delivery given up.");
            self.finish_remediation(&e, Err(&reason), now).await;
            let id = e.id.clone();
            if let Err(err) = on_store(&self.store, move |s| s.abandon(&id, &reason, now)).await {
                self.metrics.store_error("giving a delivery up", &err);
            }
            self.count(&receiver, &e.target, "given_up");
            return false;
        }
        let once = settings
            .targets
            .get(&e.target)
            .is_some_and(|t| t.channel.at_most_once());
        if once {
            if e.in_flight {
                // An attempt was under way when prognos stopped: it may
                // have been delivered, and this target never repeats one.
                self.give_up_once(&e, "an attempt was under way when prognos stopped", now)
                    .await;
                self.count(&receiver, &e.target, "given_up");
                return false;
            }
            // Durable before the request, so a crash during it is known.
            e.in_flight = true;
            let marked = e.clone();
            if let Err(err) = on_store(&self.store, move |s| s.reschedule(&marked)).await {
                self.metrics
                    .store_error("marking a delivery in flight", &err);
                return false;
            }
        }
        let mut progress = e.progress;
        let result = match &e.delivery {
            Delivery::Notify(n) => match settings.targets.get(&e.target) {
                Some(t) => self.send_notification(t, n, &mut progress).await,
                None => Err(SendError::permanent(format!(
                    "target {} is no longer configured",
                    e.target
                ))),
            },
            Delivery::Remediate(call) => match &settings.config.remediation {
                Some(rem) => {
                    match remediation::call(
                        &settings.client,
                        call,
                        rem.secret.expose().as_bytes(),
                        now,
                    )
                    .await
                    {
                        Ok(status) => {
                            self.finish_remediation(&e, Ok(status), now).await;
                            Ok(())
                        }
                        Err(err) => Err(err),
                    }
                }
                None => Err(SendError::permanent("remediation is no longer configured")),
            },
            Delivery::Approval(req) => match &settings.bot {
                Some(bot) => match bot.send_approval(&req.html, &req.audit_id).await {
                    Ok(message_id) => {
                        let audit_id = req.audit_id.clone();
                        let noted = self
                            .ask(|done| Command::ApprovalSent {
                                audit_id,
                                message_id,
                                done,
                            })
                            .await;
                        if noted.is_err() {
                            self.closed("noting an approval request's message");
                        }
                        Ok(())
                    }
                    Err(err) => Err(err),
                },
                None => Err(SendError::permanent(
                    "no Telegram bot is configured for approvals",
                )),
            },
        };
        match result {
            Ok(()) => {
                let id = e.id.clone();
                if let Err(err) = on_store(&self.store, move |s| s.acknowledge(&id, now)).await {
                    self.metrics.store_error("acknowledging a delivery", &err);
                }
                self.count(&receiver, &e.target, "sent");
                true
            }
            Err(err) if once && err.maybe_delivered => {
                self.give_up_once(&e, &err.message, now).await;
                self.count(&receiver, &e.target, "given_up");
                false
            }
            Err(err) => {
                e.attempts += 1;
                e.progress = progress;
                e.in_flight = false;
                e.last_error = Some(err.message.clone());
                match err.action {
                    RetryAction::Retry { after } => {
                        let delay = settings.config.backoff.delay(
                            e.attempts.saturating_sub(1),
                            rand::random::<f64>(),
                            after,
                        );
                        // The first second at which the age check above gives it up.
                        let give_up_at = e
                            .created_at
                            .saturating_add(settings.config.give_up_after_secs)
                            .saturating_add(1);
                        e.next_attempt_at = crate::retry::next_attempt_at(now, delay, give_up_at);
                        tracing::warn!(target = %e.target, attempt = e.attempts, retry_in_s = e.next_attempt_at.saturating_sub(now), error = %err.message, "Delivery failed; will retry.");
                        let retried = e.clone();
                        if let Err(s) =
                            on_store(&self.store, move |st| st.reschedule(&retried)).await
                        {
                            self.metrics.store_error("rescheduling a delivery", &s);
                        }
                        self.count(&receiver, &e.target, "failed");
                    }
                    RetryAction::DontRetry | RetryAction::Successful => {
                        tracing::error!(target = %e.target, error = %err.message, "Delivery failed for good.");
                        self.finish_remediation(&e, Err(&err.message), now).await;
                        let (id, why) = (e.id.clone(), err.message.clone());
                        if let Err(s) =
                            on_store(&self.store, move |st| st.abandon(&id, &why, now)).await
                        {
                            self.metrics.store_error("dropping a delivery", &s);
                        }
                        self.count(&receiver, &e.target, "dropped");
                    }
                }
                false
            }
        }
    }

    /// Gives up an attempt of an at-most-once target that may have been
    /// delivered, rather than risk sending it twice.
    async fn give_up_once(&self, e: &OutboxEntry, what: &str, now: i64) {
        let reason = format!(
            "at_most_once: not repeated, it may have been delivered ({})",
            crate::secret::excerpt(what, 300)
        );
        tracing::warn!(target = %e.target, id = %e.id, %reason, "Delivery given up.");
        let id = e.id.clone();
        if let Err(err) = on_store(&self.store, move |s| s.abandon(&id, &reason, now)).await {
            self.metrics.store_error("giving a delivery up", &err);
        }
    }

    async fn send_notification(
        &self,
        t: &TargetRuntime,
        n: &Notification,
        progress: &mut u32,
    ) -> Result<(), SendError> {
        let rendered = match &t.channel {
            // Drawing the chart is CPU work: off the async threads.
            Channel::Telegram(_) | Channel::Email(_) => {
                let (n, config) = (n.clone(), self.settings.config.render.clone());
                tokio::task::spawn_blocking(move || render(&n, &config))
                    .await
                    .unwrap_or_default()
            }
            _ => Default::default(),
        };
        t.channel.send(n, &rendered, progress).await
    }

    /// Has the core record the outcome of a remediation call in its audit record.
    async fn finish_remediation(&self, e: &OutboxEntry, outcome: Result<u16, &str>, now: i64) {
        let Delivery::Remediate(call) = &e.delivery else {
            return;
        };
        let (audit_id, outcome) = (call.audit_id.clone(), outcome.map_err(str::to_string));
        let recorded = self
            .ask(|done| Command::RemediationDone {
                audit_id,
                outcome,
                now,
                done,
            })
            .await;
        if recorded.is_err() {
            self.closed("recording a remediation's outcome");
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
                let (_, next) = me.flush(now).await;
                let wait = next
                    .map(|t| {
                        Duration::from_secs(
                            t.saturating_sub(now).clamp(0, IDLE.as_secs() as i64) as u64
                        )
                    })
                    .unwrap_or(IDLE);
                tokio::select! {
                    _ = tokio::time::sleep(wait.max(Duration::from_millis(200))) => {}
                    _ = me.wakes.flush.notified() => {}
                    _ = s.changed() => return,
                }
            }
        }));
        let me = self.clone();
        let mut s = stop.clone();
        handles.push(tokio::spawn(async move {
            let mut pruned_at = 0;
            // Targets with a delivery task under way, and those tasks (a
            // JoinSet: aborted with this loop if it is cut off).
            let mut busy = HashMap::new();
            let mut sending = tokio::task::JoinSet::new();
            let task_id =
                |done: Result<(tokio::task::Id, usize), tokio::task::JoinError>| match done {
                    Ok((id, _)) => id,
                    Err(e) => {
                        tracing::error!(error = %e, "A delivery task failed.");
                        e.id()
                    }
                };
            loop {
                let now = unix_now();
                while let Some(done) = sending.try_join_next_with_id() {
                    busy.remove(&task_id(done));
                }
                let started = me.start_due(now, &mut busy, &mut sending);
                // Pruning scans the dedup tables and commits: hourly is enough.
                if now.saturating_sub(pruned_at) >= PRUNE_EVERY_SECS {
                    pruned_at = now;
                    let pruned =
                        on_store(&me.store, move |s| s.prune(now - DEDUP_RETENTION_SECS)).await;
                    if let Err(e) = pruned {
                        me.metrics.store_error("pruning delivered ids", &e);
                    }
                    if let Some(r) = &me.settings.config.remediation {
                        let before = now - r.audit_retention_secs;
                        if let Err(e) = on_store(&me.store, move |s| s.prune_audit(before)).await {
                            me.metrics.store_error("pruning the audit log", &e);
                        }
                    }
                }
                let next = me.store.next_due().ok().flatten();
                let wait = next
                    .map(|t| {
                        Duration::from_secs(
                            t.saturating_sub(unix_now()).clamp(0, IDLE.as_secs() as i64) as u64,
                        )
                    })
                    .unwrap_or(IDLE);
                // Something due that no task holds: start it now. What is
                // due for a busy target waits for its task to end.
                if started && next.is_some_and(|t| t <= unix_now()) {
                    continue;
                }
                tokio::select! {
                    _ = tokio::time::sleep(wait.max(Duration::from_millis(200))) => {}
                    _ = me.wakes.deliver.notified() => {}
                    Some(done) = sending.join_next_with_id(), if !sending.is_empty() => {
                        busy.remove(&task_id(done));
                    }
                    _ = s.changed() => {
                        // Sends under way finish before the loop ends.
                        while sending.join_next().await.is_some() {}
                        return;
                    }
                }
            }
        }));
        if self.settings.bot.is_some() {
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
                                let d = me.settings.config.backoff.delay(failures, rand::random::<f64>(), None);
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
}
