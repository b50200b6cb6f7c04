//! The Telegram bot: chat commands (silences), Approve/Reject presses on
//! remediation requests (allowlist, expiry), and its long-poll loop step.

use super::*;

impl Notifier {
    /// One long poll of the bot: handles commands and approval presses, then
    /// expires unanswered approvals. False when Telegram could not be reached.
    /// The poll's offset lives in the store, saved after each update.
    pub async fn poll_bot(&self) -> bool {
        let settings = self.settings.clone();
        let (Some(bot), Some(cfg)) = (&settings.bot, &settings.config.bot) else {
            return true;
        };
        // Commands addressed to a bot by name are obeyed only if it is this
        // one: learn the name before reading commands (refused until known).
        if bot.known_username().is_none()
            && let Err(e) = bot.username().await
        {
            tracing::warn!(error = %e.message, "Telegram getMe failed; commands addressed to a bot by name are ignored until it succeeds.");
        }
        let offset = match on_store(&self.store, |s| s.load_state("telegram_offset")).await {
            Ok(saved) => saved
                .and_then(|j| serde_json::from_str::<i32>(&j).ok())
                .unwrap_or(0),
            Err(e) => {
                self.metrics.store_error("reading the Telegram offset", &e);
                return false;
            }
        };
        let updates = match bot.updates(offset, cfg.poll_timeout_secs).await {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!(error = %e.message, "Telegram getUpdates failed.");
                return false;
            }
        };
        let mut next = offset;
        for u in updates {
            self.handle_update(bot, &u).await;
            next = next.max(u.update_id.saturating_add(1));
            let s = json(&next);
            if let Err(e) =
                on_store(&self.store, move |st| st.save_state("telegram_offset", &s)).await
            {
                self.metrics.store_error("saving the Telegram offset", &e);
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
                let reply = self.command(text, *user_id, unix_now()).await;
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
        let press = Press {
            data: data.to_string(),
            user_id,
            username: username.map(str::to_string),
            now,
        };
        let Decided { answer, edit } = match self.ask(|done| Command::Decide { press, done }).await
        {
            Ok(d) => d,
            Err(_) => return "prognos is stopping; try again.".to_string(),
        };
        if let (Some(bot), Some((mid, text))) = (&self.settings.bot, edit)
            && let Err(e) = bot.edit(mid, &text).await
        {
            tracing::warn!(error = %e.message, "Could not update the approval message.");
        }
        answer
    }

    /// Expires approvals nobody answered in time, and edits their messages.
    pub async fn expire_approvals(&self, now: i64) {
        let Ok(edits) = self
            .ask(|done| Command::ExpireApprovals { now, done })
            .await
        else {
            return;
        };
        if let Some(bot) = &self.settings.bot {
            for (mid, text) in edits {
                if let Err(e) = bot.edit(mid, &text).await {
                    tracing::warn!(error = %e.message, "Could not update an expired approval message.");
                }
            }
        }
    }

    /// Handles a chat message; returns the reply (HTML), if any. A command
    /// addressed to another bot (`/silence@other_bot`), or to any bot by
    /// name while this bot's name is unknown, gets no reply and does nothing.
    pub async fn command(&self, text: &str, user_id: u64, now: i64) -> Option<String> {
        let me = self.settings.bot.as_ref().and_then(|b| b.known_username());
        let cmd = match command::parse(text, me) {
            Ok(None) => return None,
            Ok(Some(c)) => c,
            Err(e) => return Some(escape(&e.to_string())),
        };
        let allowed = self
            .settings
            .config
            .bot
            .as_ref()
            .is_some_and(|b| b.allowed_users.contains(&user_id));
        if !allowed && cmd != ChatCommand::Help {
            return Some(format!("User {user_id} is not allowed to manage silences."));
        }
        Some(match cmd {
            ChatCommand::Help => escape(command::help()),
            ChatCommand::Silence {
                duration_secs,
                matchers,
                comment,
            } => {
                let shown: Vec<String> = matchers.iter().map(|m| m.to_string()).collect();
                let ends_at = now.saturating_add(duration_secs);
                match self
                    .add_silence(
                        matchers,
                        now,
                        ends_at,
                        &format!("telegram:{user_id}"),
                        &comment,
                    )
                    .await
                {
                    Ok(id) => format!(
                        "🔕 Silenced <code>{}</code> until {} (id <code>{}</code>).",
                        escape(&shown.join(", ")),
                        escape(&crate::alert::rfc3339(ends_at)),
                        escape(&id)
                    ),
                    Err(e) => escape(&e.to_string()),
                }
            }
            ChatCommand::Silences => {
                let active: Vec<String> = self
                    .silences()
                    .await
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
            ChatCommand::Unsilence { id } => match self.expire_silence(&id, now).await {
                Ok(()) => format!("🔔 Silence <code>{}</code> ended.", escape(&id)),
                Err(e) => escape(&e.to_string()),
            },
        })
    }
}
