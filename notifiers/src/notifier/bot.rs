//! The Telegram bot: chat commands (silences), Approve/Reject presses on
//! remediation requests (allowlist, expiry), and its long-poll loop step.

use super::*;

impl Notifier {
    /// One long poll of the bot: handles commands and approval presses, then
    /// expires unanswered approvals. False when Telegram could not be reached.
    pub async fn poll_bot(&self) -> bool {
        let (Some(bot), Some(cfg)) = (&self.inner.bot, &self.inner.config.bot) else {
            return true;
        };
        // Commands addressed to a bot by name are obeyed only if it is this
        // one: learn the name before reading commands (refused until known).
        if bot.known_username().is_none()
            && let Err(e) = bot.username().await
        {
            tracing::warn!(error = %e.message, "Telegram getMe failed; commands addressed to a bot by name are ignored until it succeeds.");
        }
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
        let before = record.status;
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
                Err(Refusal::Changed) => (
                    "The action changed since this request; not called.".to_string(),
                    None,
                    Vec::new(),
                ),
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
        self.count_remediation(&record, Some(before));
        let refs: Vec<(&str, &str)> = states.iter().map(|(k, v)| (*k, v.as_str())).collect();
        if let Err(e) =
            inner
                .store
                .enqueue_with_audit(&entries, &refs, std::slice::from_ref(&record))
        {
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
                && let before = r.status
                && remediation::expire(&mut r, p.expires_at, now)
            {
                self.count_remediation(&r, Some(before));
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

    /// Handles a chat message; returns the reply (HTML), if any. A command
    /// addressed to another bot (`/silence@other_bot`), or to any bot by
    /// name while this bot's name is unknown, gets no reply and does nothing.
    pub fn command(&self, text: &str, user_id: u64, now: i64) -> Option<String> {
        let me = self.inner.bot.as_ref().and_then(|b| b.known_username());
        let cmd = match command::parse(text, me) {
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
                let ends_at = now.saturating_add(duration_secs);
                match self.add_silence(
                    matchers,
                    now,
                    ends_at,
                    &format!("telegram:{user_id}"),
                    &comment,
                ) {
                    Ok(id) => format!(
                        "🔕 Silenced <code>{}</code> until {} (id <code>{}</code>).",
                        escape(&shown.join(", ")),
                        escape(&crate::alert::rfc3339(ends_at)),
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
}

fn status_word(r: &AuditRecord) -> String {
    serde_json::to_value(r.status)
        .ok()
        .and_then(|v| v.as_str().map(|s| s.replace('_', " ")))
        .unwrap_or_default()
}
