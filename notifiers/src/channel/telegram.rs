//! Telegram via the Bot API (teloxide): the alert message, the chart as a
//! photo, approval requests with inline buttons, and the long poll the
//! command handler reads.

use std::time::Duration;

use teloxide::payloads::{
    AnswerCallbackQuerySetters, EditMessageTextSetters, GetUpdatesSetters, SendMessageSetters,
    SendPhotoSetters,
};
use teloxide::requests::Requester;
use teloxide::types::{
    AllowedUpdate, CallbackQueryId, ChatId, InlineKeyboardButton, InlineKeyboardMarkup, InputFile,
    LinkPreviewOptions, MessageId, ParseMode, UpdateKind,
};
use teloxide::{ApiError, Bot, RequestError};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::delivery::{Rendered, SendError};
use crate::secret::Secret;

/// The public Bot API endpoint.
pub const DEFAULT_API_URL: &str = "https://api.telegram.org";

/// One Telegram chat to write to.
#[derive(Clone)]
pub struct TelegramConfig {
    /// Bot API base URL (default [`DEFAULT_API_URL`]; a local Bot API server or a test peer otherwise).
    pub api_url: url::Url,
    /// The bot's token.
    pub token: Secret,
    /// The chat (user, group or channel id).
    pub chat_id: i64,
    /// Least time between two calls of this channel: Telegram allows about
    /// one message a second per chat and 20 a minute in groups. Default 1 s.
    pub min_interval: Duration,
    /// Whole-request timeout (the long poll adds its own wait to it).
    pub timeout: Duration,
    /// Never send a message twice, at the cost of losing one: each attempt
    /// is marked in the outbox before the request, and an attempt that may
    /// have reached Telegram (a crash or stop during it, a timeout, a broken
    /// connection) is given up instead of repeated. Default false: at least
    /// once.
    pub at_most_once: bool,
}

impl TelegramConfig {
    /// A configuration with the defaults: public API, 1 s pacing, 30 s timeout.
    pub fn new(token: impl Into<String>, chat_id: i64) -> Self {
        Self {
            api_url: default_api_url(),
            token: Secret::new(token),
            chat_id,
            min_interval: Duration::from_secs(1),
            timeout: Duration::from_secs(30),
            at_most_once: false,
        }
    }
}

/// [`DEFAULT_API_URL`] parsed.
pub fn default_api_url() -> url::Url {
    url::Url::parse(DEFAULT_API_URL).unwrap_or_else(|_| unreachable!("constant URL parses"))
}

impl std::fmt::Debug for TelegramConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelegramConfig")
            .field("api_url", &self.api_url.as_str())
            .field("token", &self.token)
            .field("chat_id", &self.chat_id)
            .field("min_interval", &self.min_interval)
            .field("timeout", &self.timeout)
            .field("at_most_once", &self.at_most_once)
            .finish()
    }
}

/// A Telegram chat as a channel.
pub struct TelegramChannel {
    config: TelegramConfig,
    /// Requests with the whole-request timeout.
    bot: Bot,
    /// Long polls: no client timeout (each poll is bounded by its own).
    poll_bot: Bot,
    /// When the last paced call finished.
    last: Mutex<Option<Instant>>,
    /// The bot's @username (from `getMe`), once asked.
    username: std::sync::OnceLock<String>,
}

impl std::fmt::Debug for TelegramChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the bots: their Debug prints the token.
        f.debug_struct("TelegramChannel")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// An update from the long poll, reduced to what prognos reads.
#[derive(Debug, Clone, PartialEq)]
pub struct BotUpdate {
    /// Telegram's update id; poll on with `offset = update_id + 1`.
    pub update_id: i32,
    /// What happened.
    pub kind: BotUpdateKind,
}

/// The kinds of update prognos handles.
#[derive(Debug, Clone, PartialEq)]
pub enum BotUpdateKind {
    /// An inline button was pressed.
    Callback {
        /// The query id, for `answer_callback`.
        id: String,
        /// Who pressed it.
        user_id: u64,
        /// Their @username, if any.
        username: Option<String>,
        /// The button's callback data (`approve:<id>` …).
        data: String,
        /// The chat of the message with the button.
        chat_id: Option<i64>,
        /// The message with the button.
        message_id: Option<i32>,
    },
    /// A text message (commands).
    Text {
        /// The sender.
        user_id: u64,
        /// Their @username, if any.
        username: Option<String>,
        /// Where it was written.
        chat_id: i64,
        /// The text.
        text: String,
    },
    /// Anything else (skipped, but its id still advances the offset).
    Other,
}

/// Telegram error descriptions that start with a server-error phrase: the
/// error code itself is not kept by teloxide, the description starts with
/// the status text (`Bad Request: …`, `Internal Server Error`, …).
const SERVER_ERRORS: [&str; 5] = [
    "Internal Server Error",
    "Bad Gateway",
    "Service Unavailable",
    "Gateway Timeout",
    "Too Many Requests",
];

/// Whether an API error is worth retrying.
fn api_error_retryable(e: &ApiError) -> bool {
    match e {
        // Another poller holds the updates: transient from our side.
        ApiError::TerminatedByOtherGetUpdates => true,
        ApiError::Unknown(desc) => SERVER_ERRORS.iter().any(|p| desc.starts_with(p)),
        // Every known variant is a 4xx (bad request, forbidden, not found …).
        _ => false,
    }
}

/// The `result` of a response teloxide could not parse but Telegram accepted
/// (`"ok": true`): the part was delivered, so it must not be resent.
fn accepted_result(e: &RequestError) -> Option<serde_json::Value> {
    let RequestError::InvalidJson { raw, .. } = e else {
        return None;
    };
    let mut v: serde_json::Value = serde_json::from_str(raw).ok()?;
    (v.get("ok")? == &serde_json::Value::Bool(true)).then(|| v["result"].take())
}

/// Maps a teloxide error to a send error, keeping the token out of the message.
fn map_error(e: &RequestError, token: &str) -> SendError {
    let text = e.to_string();
    let text = if token.is_empty() {
        text
    } else {
        text.replace(token, "<token>")
    };
    let message = format!("telegram: {text}");
    match e {
        RequestError::RetryAfter(s) => SendError {
            action: crate::retry::RetryAction::Retry {
                after: Some(s.duration()),
            },
            message,
            maybe_delivered: false,
        },
        // Refused before the request left: nothing was sent.
        RequestError::Network(n) if n.is_connect() => SendError::retry(message),
        // Cut during the request (a timeout, a reset): Telegram may have sent it.
        RequestError::Network(_) | RequestError::Io(_) => {
            SendError::retry(message).maybe_delivered()
        }
        // Not JSON: a proxy's error page, most likely a 5xx, maybe after forwarding.
        RequestError::InvalidJson { .. } => SendError::retry(message).maybe_delivered(),
        RequestError::MigrateToChatId(id) => {
            SendError::permanent(format!("{message}: configure chat_id {} instead", id.0))
        }
        RequestError::Api(api) if api_error_retryable(api) => SendError::retry(message),
        RequestError::Api(_) => SendError::permanent(message),
    }
}

fn no_link_previews() -> LinkPreviewOptions {
    LinkPreviewOptions {
        is_disabled: true,
        url: None,
        prefer_small_media: false,
        prefer_large_media: false,
        show_above_text: false,
    }
}

impl TelegramChannel {
    /// Whether it delivers at most once.
    pub fn at_most_once(&self) -> bool {
        self.config.at_most_once
    }

    /// A channel for `c` (no request is made).
    pub fn new(c: TelegramConfig) -> Result<Self, SendError> {
        if c.token.is_empty() {
            return Err(SendError::permanent("telegram: empty bot token"));
        }
        let client = reqwest::Client::builder()
            .timeout(c.timeout)
            .connect_timeout(c.timeout)
            .build()
            .map_err(|e| SendError::permanent(format!("telegram: HTTP client: {e}")))?;
        let poll_client = reqwest::Client::builder()
            .connect_timeout(c.timeout)
            .build()
            .map_err(|e| SendError::permanent(format!("telegram: HTTP client: {e}")))?;
        let bot = Bot::with_client(c.token.expose(), client).set_api_url(c.api_url.clone());
        let poll_bot =
            Bot::with_client(c.token.expose(), poll_client).set_api_url(c.api_url.clone());
        Ok(Self {
            config: c,
            bot,
            poll_bot,
            last: Mutex::new(None),
            username: std::sync::OnceLock::new(),
        })
    }

    /// The configured chat.
    pub fn chat_id(&self) -> i64 {
        self.config.chat_id
    }

    /// The bot's @username (without the `@`), asked once with `getMe` and
    /// then remembered: chat commands addressed `/cmd@name` to another bot
    /// are not obeyed. Not paced.
    pub async fn username(&self) -> Result<String, SendError> {
        if let Some(name) = self.username.get() {
            return Ok(name.clone());
        }
        let name = match self.bot.get_me().await {
            Ok(me) => me.user.username.clone(),
            // An answer teloxide cannot parse (a field it requires missing)
            // still names the bot.
            Err(e) => match accepted_result(&e) {
                Some(v) => v
                    .get("username")
                    .and_then(serde_json::Value::as_str)
                    .map(str::to_string),
                None => return Err(map_error(&e, self.config.token.expose())),
            },
        }
        .filter(|n| !n.is_empty())
        .ok_or_else(|| SendError::permanent("telegram: getMe returned no username"))?;
        Ok(self.username.get_or_init(|| name).clone())
    }

    /// The bot's @username if [`Self::username`] has learnt it.
    pub fn known_username(&self) -> Option<&str> {
        self.username.get().map(String::as_str)
    }

    /// Runs one call at least `min_interval` after the previous one ended.
    async fn paced<T>(
        &self,
        call: impl Future<Output = Result<T, RequestError>>,
    ) -> Result<T, RequestError> {
        let mut last = self.last.lock().await;
        if let Some(t) = *last {
            tokio::time::sleep_until(t + self.config.min_interval).await;
        }
        let res = call.await;
        *last = Some(Instant::now());
        res
    }

    /// A paced call whose answer is only acknowledged.
    async fn ack<T>(
        &self,
        call: impl Future<Output = Result<T, RequestError>>,
    ) -> Result<(), SendError> {
        match self.paced(call).await {
            Ok(_) => Ok(()),
            Err(e) if accepted_result(&e).is_some() => Ok(()),
            Err(e) => Err(map_error(&e, self.config.token.expose())),
        }
    }

    /// Part 0: the message (`telegram_html`, HTML, no link previews). Part 1,
    /// only when there is a chart: the chart as a photo with
    /// `telegram_caption_html` as its caption.
    pub async fn send(&self, r: &Rendered, progress: &mut u32) -> Result<(), SendError> {
        let chat = ChatId(self.config.chat_id);
        if *progress < 1 {
            let call = self
                .bot
                .send_message(chat, r.telegram_html.clone())
                .parse_mode(ParseMode::Html)
                .link_preview_options(no_link_previews());
            self.ack(call.into_future()).await?;
            *progress = 1;
        }
        if let Some(png) = &r.chart_png
            && *progress < 2
        {
            let photo = InputFile::memory(png.clone()).file_name("chart.png");
            let mut call = self.bot.send_photo(chat, photo);
            if !r.telegram_caption_html.is_empty() {
                call = call
                    .caption(r.telegram_caption_html.clone())
                    .parse_mode(ParseMode::Html);
            }
            self.ack(call.into_future()).await?;
            *progress = 2;
        }
        Ok(())
    }

    /// An approval request: `html` with two inline buttons, "✅ Approve"
    /// (callback data `approve:<id>`) and "❌ Reject" (`reject:<id>`).
    /// Returns the message id (to edit it once decided or expired).
    pub async fn send_approval(&self, html: &str, id: &str) -> Result<i32, SendError> {
        let approve = format!("approve:{id}");
        let reject = format!("reject:{id}");
        // Telegram limits callback data to 64 bytes.
        if reject.len() > 64 {
            return Err(SendError::permanent(format!(
                "telegram: approval id too long for callback data ({} bytes)",
                id.len()
            )));
        }
        let keyboard = InlineKeyboardMarkup::new([[
            InlineKeyboardButton::callback("✅ Approve", approve),
            InlineKeyboardButton::callback("❌ Reject", reject),
        ]]);
        let call = self
            .bot
            .send_message(ChatId(self.config.chat_id), html)
            .parse_mode(ParseMode::Html)
            .link_preview_options(no_link_previews())
            .reply_markup(keyboard);
        match self.paced(call.into_future()).await {
            Ok(m) => Ok(m.id.0),
            Err(e) => match accepted_result(&e)
                .and_then(|v| v.get("message_id")?.as_i64())
                .and_then(|id| i32::try_from(id).ok())
            {
                Some(id) => Ok(id),
                None => Err(map_error(&e, self.config.token.expose())),
            },
        }
    }

    /// Replaces a message's text (HTML) and removes its keyboard, after a
    /// decision or expiry.
    pub async fn edit(&self, message_id: i32, html: &str) -> Result<(), SendError> {
        let call = self
            .bot
            .edit_message_text(ChatId(self.config.chat_id), MessageId(message_id), html)
            .parse_mode(ParseMode::Html)
            .link_preview_options(no_link_previews())
            .reply_markup(InlineKeyboardMarkup::default());
        match self.ack(call.into_future()).await {
            // Editing twice to the same text is not a failure.
            Err(e) if e.message.contains("message is not modified") => Ok(()),
            other => other,
        }
    }

    /// One long poll (`getUpdates`) for messages and button presses, waiting
    /// up to `timeout_secs` for one. `offset` is Telegram's: the first update
    /// id wanted, i.e. the last one seen + 1 (earlier ones are confirmed and
    /// forgotten). Not paced.
    pub async fn updates(
        &self,
        offset: i32,
        timeout_secs: u32,
    ) -> Result<Vec<BotUpdate>, SendError> {
        let call = self
            .poll_bot
            .get_updates()
            .offset(offset)
            .timeout(timeout_secs)
            .allowed_updates([AllowedUpdate::Message, AllowedUpdate::CallbackQuery]);
        let limit = self.config.timeout + Duration::from_secs(u64::from(timeout_secs));
        let updates = match tokio::time::timeout(limit, call.into_future()).await {
            Ok(Ok(u)) => u,
            Ok(Err(e)) => return Err(map_error(&e, self.config.token.expose())),
            Err(_) => return Err(SendError::retry("telegram: getUpdates timed out")),
        };
        Ok(updates
            .into_iter()
            .map(|u| BotUpdate {
                update_id: i32::try_from(u.id.0).unwrap_or(i32::MAX),
                kind: convert(u.kind),
            })
            .collect())
    }

    /// Answers a button press (the small notice the presser sees).
    pub async fn answer_callback(&self, callback_id: &str, text: &str) -> Result<(), SendError> {
        let call = self
            .bot
            .answer_callback_query(CallbackQueryId(callback_id.to_string()))
            .text(text);
        self.ack(call.into_future()).await
    }

    /// Replies in `chat_id` with HTML text (command answers).
    pub async fn reply(&self, chat_id: i64, html: &str) -> Result<(), SendError> {
        let call = self
            .bot
            .send_message(ChatId(chat_id), html)
            .parse_mode(ParseMode::Html)
            .link_preview_options(no_link_previews());
        self.ack(call.into_future()).await
    }
}

fn convert(kind: UpdateKind) -> BotUpdateKind {
    match kind {
        UpdateKind::CallbackQuery(q) => BotUpdateKind::Callback {
            id: q.id.0,
            user_id: q.from.id.0,
            username: q.from.username,
            data: q.data.unwrap_or_default(),
            chat_id: q.message.as_ref().map(|m| m.chat().id.0),
            message_id: q.message.as_ref().map(|m| m.id().0),
        },
        UpdateKind::Message(m) => match (m.text(), m.from.as_ref()) {
            (Some(text), Some(from)) => BotUpdateKind::Text {
                user_id: from.id.0,
                username: from.username.clone(),
                chat_id: m.chat.id.0,
                text: text.to_string(),
            },
            _ => BotUpdateKind::Other,
        },
        _ => BotUpdateKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retry::RetryAction;

    #[test]
    fn errors_map_to_retry_actions() {
        let e = RequestError::RetryAfter(teloxide::types::Seconds::from_seconds(7));
        assert_eq!(
            map_error(&e, "t").action,
            RetryAction::Retry {
                after: Some(Duration::from_secs(7))
            }
        );
        let e = RequestError::Api(ApiError::Unknown("Internal Server Error".into()));
        assert_eq!(
            map_error(&e, "t").action,
            RetryAction::Retry { after: None }
        );
        let e = RequestError::Api(ApiError::Unknown("Bad Request: chat not found".into()));
        assert_eq!(map_error(&e, "t").action, RetryAction::DontRetry);
        let e = RequestError::Api(ApiError::BotBlocked);
        assert_eq!(map_error(&e, "t").action, RetryAction::DontRetry);
    }

    #[test]
    fn unparsed_ok_answers_count_as_delivered() {
        let raw = r#"{"ok":true,"result":{"message_id":5,"weird":1}}"#;
        let err = serde_json::from_str::<u8>("x").unwrap_err();
        let e = RequestError::InvalidJson {
            source: std::sync::Arc::new(err),
            raw: raw.into(),
        };
        assert_eq!(accepted_result(&e).unwrap()["message_id"], 5);
    }

    #[test]
    fn debug_hides_the_token() {
        let c = TelegramConfig::new("123:SECRET", 1);
        assert!(!format!("{c:?}").contains("SECRET"));
        let ch = TelegramChannel::new(c).unwrap();
        assert!(!format!("{ch:?}").contains("SECRET"));
    }
}
