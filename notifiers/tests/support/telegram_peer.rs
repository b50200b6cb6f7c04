//! A Telegram Bot API peer on loopback, speaking the real wire protocol at
//! `/bot<token>/<method>` (JSON, form and multipart requests; `{"ok":…}`
//! answers with complete `Message` objects), strict where Telegram is strict:
//! text over 4,096 or captions over 1,024 characters after entity parsing and
//! malformed HTML are refused with Telegram's 400s. Self-contained so other
//! test crates can include it with `#[path]`.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};

/// The bot's id (the numeric part of [`TOKEN`]).
pub const BOT_ID: u64 = 123_456_789;
/// The token the peer accepts.
pub const TOKEN: &str = "123456789:AAHtestTokenForThePrognosPeer";
/// Telegram's limits, in UTF-16 code units after entity parsing.
pub const MAX_TEXT: usize = 4096;
/// See [`MAX_TEXT`].
pub const MAX_CAPTION: usize = 1024;

/// One accepted call, as Telegram would have delivered it.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// `sendMessage`, `sendPhoto`, `editMessageText`, `answerCallbackQuery`.
    pub method: String,
    /// The target chat.
    pub chat_id: Option<i64>,
    /// The message id (sent or edited).
    pub message_id: Option<i32>,
    /// Text, caption, or the callback answer's text, as sent (HTML).
    pub text: Option<String>,
    /// `HTML`, `MarkdownV2` …
    pub parse_mode: Option<String>,
    /// Size of an uploaded photo.
    pub photo_len: Option<usize>,
    /// The uploaded file's name.
    pub photo_name: Option<String>,
    /// `reply_markup` as JSON.
    pub reply_markup: Option<Value>,
    /// Whether link previews were disabled.
    pub link_preview_disabled: bool,
    /// `callback_query_id` of an `answerCallbackQuery`.
    pub callback_query_id: Option<String>,
}

/// A failure to inject.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fail {
    /// An HTTP status with Telegram's description for it.
    Status(u16),
    /// 429 with `parameters.retry_after` (seconds).
    RetryAfter(u32),
    /// No answer at all: the request is recorded and left hanging.
    Hang,
}

#[derive(Default)]
struct Inner {
    recorded: Vec<Recorded>,
    /// Every call received (accepted or not), by method.
    calls: Vec<String>,
    /// (only this method, or any but getUpdates; the failure).
    failures: VecDeque<(Option<String>, Fail)>,
    updates: Vec<(i64, Value)>,
    next_update_id: i64,
    next_message_id: i32,
    /// Messages sent, for callbacks to refer to (id → JSON).
    sent: Vec<Value>,
}

struct Shared {
    inner: Mutex<Inner>,
    queued: tokio::sync::Notify,
    token: String,
}

/// A running peer; stops on drop.
#[derive(Debug)]
pub struct TelegramPeer {
    url: url::Url,
    /// The token it accepts.
    pub token: String,
    shared: Arc<SharedDebug>,
    task: tokio::task::JoinHandle<()>,
}

/// `Shared` with a Debug impl that does not dump the state.
struct SharedDebug(Arc<Shared>);
impl std::fmt::Debug for SharedDebug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TelegramPeerState")
    }
}

impl Drop for TelegramPeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TelegramPeer {
    /// Starts a peer on a free loopback port.
    pub async fn start() -> TelegramPeer {
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                next_update_id: 1,
                next_message_id: 1,
                ..Inner::default()
            }),
            queued: tokio::sync::Notify::new(),
            token: TOKEN.to_string(),
        });
        let app = Router::new()
            .route("/{bot}/{method}", post(handle).get(handle))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        TelegramPeer {
            url: format!("http://{addr}/").parse().unwrap(),
            token: TOKEN.to_string(),
            shared: Arc::new(SharedDebug(shared)),
            task,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.shared.0.inner.lock().unwrap()
    }

    /// The Bot API base URL to configure.
    pub fn url(&self) -> url::Url {
        self.url.clone()
    }

    /// The accepted calls, in order.
    pub fn messages(&self) -> Vec<Recorded> {
        self.state().recorded.clone()
    }

    /// Every call received (including refused ones), by method name.
    pub fn calls(&self) -> Vec<String> {
        self.state().calls.clone()
    }

    /// Makes the next `n` calls (other than `getUpdates`) fail with `fail`.
    pub fn fail_next(&self, n: usize, fail: Fail) {
        let mut s = self.state();
        for _ in 0..n {
            s.failures.push_back((None, fail));
        }
    }

    /// Makes the next `n` calls of `method` (e.g. `sendPhoto`) fail with `fail`.
    pub fn fail_next_method(&self, method: &str, n: usize, fail: Fail) {
        let mut s = self.state();
        for _ in 0..n {
            s.failures.push_back((Some(method.to_string()), fail));
        }
    }

    fn push_update(&self, make: impl FnOnce(i64, &Inner) -> Value) -> i64 {
        let id = {
            let mut s = self.state();
            let id = s.next_update_id;
            s.next_update_id += 1;
            let mut u = make(id, &s);
            u["update_id"] = json!(id);
            s.updates.push((id, u));
            id
        };
        self.shared.0.queued.notify_waiters();
        id
    }

    /// Queues a button press by `user_id` with callback `data`, on the sent
    /// message carrying a button with that data (else the last message).
    /// Returns the update id.
    pub fn push_callback(&self, user_id: u64, username: Option<&str>, data: &str) -> i64 {
        let data = data.to_string();
        let username = username.map(str::to_string);
        self.push_update(move |id, s| {
            let message = s
                .sent
                .iter()
                .rev()
                .find(|m| {
                    m["reply_markup"]
                        .to_string()
                        .contains(&json!(data).to_string())
                })
                .or(s.sent.last())
                .cloned();
            let mut q = json!({
                "id": format!("cbq-{id}"),
                "from": user(user_id, username.as_deref()),
                "chat_instance": "-4242",
                "data": data,
            });
            if let Some(m) = message {
                q["message"] = m;
            }
            json!({ "callback_query": q })
        })
    }

    /// Queues a text message from `user_id` in `chat_id`. Returns the update id.
    pub fn push_text(&self, user_id: u64, chat_id: i64, text: &str) -> i64 {
        let text = text.to_string();
        self.push_update(move |id, _| {
            let mut m = json!({
                "message_id": 100_000 + id,
                "date": now(),
                "chat": chat(chat_id),
                "from": user(user_id, Some("operator")),
                "text": text,
            });
            if text.starts_with('/') {
                let len = text
                    .split_whitespace()
                    .next()
                    .unwrap_or("")
                    .encode_utf16()
                    .count();
                m["entities"] = json!([{ "type": "bot_command", "offset": 0, "length": len }]);
            }
            json!({ "message": m })
        })
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn user(id: u64, username: Option<&str>) -> Value {
    let mut u = json!({ "id": id, "is_bot": false, "first_name": "Test", "language_code": "en" });
    if let Some(n) = username {
        u["username"] = json!(n);
    }
    u
}

fn chat(id: i64) -> Value {
    if id < 0 {
        json!({ "id": id, "type": "group", "title": "prognos test group" })
    } else {
        json!({ "id": id, "type": "private", "first_name": "Test" })
    }
}

fn bot_user() -> Value {
    json!({ "id": BOT_ID, "is_bot": true, "first_name": "prognos", "username": "prognos_test_bot" })
}

/// Telegram's error answer.
fn error(code: u16, description: &str) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
    (
        status,
        axum::Json(json!({ "ok": false, "error_code": code, "description": description })),
    )
        .into_response()
}

fn ok(result: Value) -> Response {
    axum::Json(json!({ "ok": true, "result": result })).into_response()
}

fn fail_response(f: Fail) -> Response {
    match f {
        Fail::RetryAfter(n) => (
            StatusCode::TOO_MANY_REQUESTS,
            axum::Json(json!({
                "ok": false,
                "error_code": 429,
                "description": format!("Too Many Requests: retry after {n}"),
                "parameters": { "retry_after": n },
            })),
        )
            .into_response(),
        Fail::Hang => error(504, "Gateway Timeout"),
        Fail::Status(code) => {
            let desc = match code {
                400 => "Bad Request: chat not found",
                401 => "Unauthorized",
                403 => "Forbidden: bot was blocked by the user",
                404 => "Not Found",
                429 => "Too Many Requests: retry later",
                500 => "Internal Server Error",
                502 => "Bad Gateway",
                503 => "Service Unavailable",
                504 => "Gateway Timeout",
                _ => "Unknown error",
            };
            error(code, desc)
        }
    }
}

/// Parameters of a call, as JSON whatever the encoding, plus an uploaded file.
struct Params {
    values: serde_json::Map<String, Value>,
    /// Uploaded files: (field name, file name, bytes).
    files: Vec<(String, Option<String>, Bytes)>,
}

impl Params {
    fn str(&self, k: &str) -> Option<String> {
        match self.values.get(k)? {
            Value::String(s) => Some(s.clone()),
            Value::Null => None,
            v => Some(v.to_string()),
        }
    }
    fn i64(&self, k: &str) -> Option<i64> {
        self.str(k)?.trim().parse().ok()
    }
    /// A JSON-valued parameter (sent as a string in forms).
    fn json(&self, k: &str) -> Option<Value> {
        match self.values.get(k)? {
            Value::String(s) => serde_json::from_str(s).ok(),
            Value::Null => None,
            v => Some(v.clone()),
        }
    }
}

async fn params(req: Request<Body>) -> Result<Params, String> {
    let ctype = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let query = req.uri().query().unwrap_or("").to_string();
    let mut values: serde_json::Map<String, Value> = url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
        .collect();
    let mut files = Vec::new();
    if ctype.starts_with("multipart/form-data") {
        let mut mp = Multipart::from_request(req, &())
            .await
            .map_err(|e| e.to_string())?;
        while let Some(field) = mp.next_field().await.map_err(|e| e.to_string())? {
            let name = field.name().unwrap_or("").to_string();
            let file_name = field.file_name().map(str::to_string);
            let data = field.bytes().await.map_err(|e| e.to_string())?;
            if file_name.is_some() {
                files.push((name, file_name, data));
            } else {
                values.insert(
                    name,
                    Value::String(String::from_utf8_lossy(&data).into_owned()),
                );
            }
        }
    } else {
        let body = axum::body::to_bytes(req.into_body(), 64 << 20)
            .await
            .map_err(|e| e.to_string())?;
        if ctype.starts_with("application/json") {
            if !body.is_empty() {
                match serde_json::from_slice::<Value>(&body).map_err(|e| e.to_string())? {
                    Value::Object(m) => values.extend(m),
                    _ => return Err("body is not an object".into()),
                }
            }
        } else {
            values.extend(
                url::form_urlencoded::parse(&body)
                    .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned()))),
            );
        }
    }
    Ok(Params { values, files })
}

/// Tags Telegram's HTML parse mode supports.
const TAGS: [&str; 16] = [
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "span",
    "tg-spoiler",
    "a",
    "tg-emoji",
    "code",
    "pre",
    "blockquote",
];

/// Parses Telegram HTML into its plain text, or Telegram's error detail.
pub fn parse_html(s: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut stack: Vec<String> = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let c = s[i..].chars().next().unwrap_or('\0');
        match c {
            '<' => {
                let Some(end) = s[i..].find('>') else {
                    return Err(format!("Can't find end of the tag at byte offset {i}"));
                };
                let tag = &s[i + 1..i + end];
                if let Some(name) = tag.strip_prefix('/') {
                    let name = name.trim().to_ascii_lowercase();
                    match stack.pop() {
                        Some(open) if open == name => {}
                        Some(open) => {
                            return Err(format!(
                                "Unmatched end tag at byte offset {i}, expected \"</{open}>\", found \"</{name}>\""
                            ));
                        }
                        None => {
                            return Err(format!("Unexpected end tag at byte offset {i}"));
                        }
                    }
                } else {
                    let name = tag
                        .split(|c: char| c.is_ascii_whitespace())
                        .next()
                        .unwrap_or("")
                        .to_ascii_lowercase();
                    if !TAGS.contains(&name.as_str()) {
                        return Err(format!(
                            "Unsupported start tag \"{name}\" at byte offset {i}"
                        ));
                    }
                    stack.push(name);
                }
                i += end + 1;
            }
            '&' => {
                let semi = s[i..].find(';').filter(|&j| j <= 10);
                let ent = semi.map(|j| &s[i + 1..i + j]);
                let decoded = match ent {
                    Some("lt") => Some('<'),
                    Some("gt") => Some('>'),
                    Some("amp") => Some('&'),
                    Some("quot") => Some('"'),
                    Some(e) if e.starts_with("#x") || e.starts_with("#X") => {
                        u32::from_str_radix(&e[2..], 16)
                            .ok()
                            .and_then(char::from_u32)
                    }
                    Some(e) if e.starts_with('#') => {
                        e[1..].parse::<u32>().ok().and_then(char::from_u32)
                    }
                    _ => None,
                };
                let Some(d) = decoded else {
                    return Err(format!(
                        "Character '&' is reserved and must be escaped at byte offset {i}"
                    ));
                };
                out.push(d);
                i += semi.unwrap_or(0) + 1;
            }
            '>' => {
                return Err(format!(
                    "Character '>' is reserved and must be escaped at byte offset {i}"
                ));
            }
            c => {
                out.push(c);
                i += c.len_utf8();
            }
        }
    }
    if let Some(open) = stack.last() {
        return Err(format!(
            "Can't find end tag corresponding to start tag \"{open}\""
        ));
    }
    Ok(out)
}

/// Checks a text or caption as Telegram does; returns a 400 description.
fn check_text(
    text: &str,
    parse_mode: Option<&str>,
    max: usize,
    caption: bool,
) -> Result<(), String> {
    let plain = match parse_mode.map(str::to_ascii_lowercase).as_deref() {
        Some("html") => {
            parse_html(text).map_err(|e| format!("Bad Request: can't parse entities: {e}"))?
        }
        _ => text.to_string(),
    };
    let plain = plain.trim();
    if !caption && plain.is_empty() {
        return Err("Bad Request: message text is empty".into());
    }
    if plain.encode_utf16().count() > max {
        return Err(if caption {
            "Bad Request: message caption is too long".into()
        } else {
            "Bad Request: message is too long".into()
        });
    }
    Ok(())
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    Path((bot, method)): Path<(String, String)>,
    req: Request<Body>,
) -> Response {
    if bot != format!("bot{}", shared.token) {
        return error(401, "Unauthorized");
    }
    let p = match params(req).await {
        Ok(p) => p,
        Err(e) => return error(400, &format!("Bad Request: {e}")),
    };
    let method_lc = method.to_ascii_lowercase();
    let failure = {
        let mut s = shared.inner.lock().unwrap();
        // Telegram's method names are case-insensitive (teloxide sends `SendMessage`).
        let mut canonical = method.clone();
        if let Some(first) = canonical.get_mut(0..1) {
            first.make_ascii_lowercase();
        }
        s.calls.push(canonical);
        let matching = s.failures.iter().position(|(m, _)| match m {
            Some(m) => m.eq_ignore_ascii_case(&method),
            None => method_lc != "getupdates",
        });
        matching.and_then(|i| s.failures.remove(i))
    };
    match failure {
        Some((_, Fail::Hang)) => {
            std::future::pending::<()>().await;
        }
        Some((_, f)) => return fail_response(f),
        None => {}
    }
    match method_lc.as_str() {
        "getme" => ok(json!({
            "id": BOT_ID, "is_bot": true, "first_name": "prognos", "username": "prognos_test_bot",
            "can_join_groups": true, "can_read_all_group_messages": false, "supports_inline_queries": false
        })),
        "sendmessage" => send_message(&shared, &p),
        "sendphoto" => send_photo(&shared, &p),
        "editmessagetext" => edit_message_text(&shared, &p),
        "answercallbackquery" => {
            let Some(id) = p.str("callback_query_id") else {
                return error(
                    400,
                    "Bad Request: query is too old and response timeout expired or query ID is invalid",
                );
            };
            shared.inner.lock().unwrap().recorded.push(Recorded {
                method: "answerCallbackQuery".into(),
                chat_id: None,
                message_id: None,
                text: p.str("text"),
                parse_mode: None,
                photo_len: None,
                photo_name: None,
                reply_markup: None,
                link_preview_disabled: false,
                callback_query_id: Some(id),
            });
            ok(json!(true))
        }
        "getupdates" => get_updates(&shared, &p).await,
        _ => error(404, "Not Found"),
    }
}

fn link_preview_disabled(p: &Params) -> bool {
    p.json("link_preview_options")
        .and_then(|v| v.get("is_disabled").and_then(Value::as_bool))
        .unwrap_or(false)
        || p.str("disable_web_page_preview").as_deref() == Some("true")
}

fn send_message(shared: &Shared, p: &Params) -> Response {
    let Some(chat_id) = p.i64("chat_id") else {
        return error(400, "Bad Request: chat not found");
    };
    let Some(text) = p.str("text") else {
        return error(400, "Bad Request: message text is empty");
    };
    let parse_mode = p.str("parse_mode");
    if let Err(e) = check_text(&text, parse_mode.as_deref(), MAX_TEXT, false) {
        return error(400, &e);
    }
    let markup = p.json("reply_markup");
    let mut s = shared.inner.lock().unwrap();
    let id = s.next_message_id;
    s.next_message_id += 1;
    let mut m = json!({
        "message_id": id, "date": now(), "chat": chat(chat_id), "from": bot_user(), "text": text,
    });
    if let Some(k) = &markup {
        m["reply_markup"] = k.clone();
    }
    s.sent.push(m.clone());
    s.recorded.push(Recorded {
        method: "sendMessage".into(),
        chat_id: Some(chat_id),
        message_id: Some(id),
        text: Some(text),
        parse_mode,
        photo_len: None,
        photo_name: None,
        reply_markup: markup,
        link_preview_disabled: link_preview_disabled(p),
        callback_query_id: None,
    });
    ok(m)
}

fn send_photo(shared: &Shared, p: &Params) -> Response {
    let Some(chat_id) = p.i64("chat_id") else {
        return error(400, "Bad Request: chat not found");
    };
    // The file is the `photo` field itself, or a part named by `attach://<name>`.
    let field = match p.str("photo") {
        Some(s) => s.strip_prefix("attach://").map(str::to_string),
        None => Some("photo".to_string()),
    };
    let upload = field
        .as_ref()
        .map(|f| p.files.iter().find(|(n, _, _)| n == f));
    let (len, name) = match (upload, p.str("photo")) {
        (Some(Some((_, name, data))), _) => (data.len(), name.clone()),
        (Some(None), Some(_)) => {
            return error(400, "Bad Request: wrong file identifier/HTTP URL specified");
        }
        // A file_id or URL: nothing uploaded.
        (None, Some(_)) => (0, None),
        _ => return error(400, "Bad Request: there is no photo in the request"),
    };
    if matches!(upload, Some(Some(_))) && len == 0 {
        return error(400, "Bad Request: file must be non-empty");
    }
    let caption = p.str("caption");
    let parse_mode = p.str("parse_mode");
    if let Some(c) = &caption
        && let Err(e) = check_text(c, parse_mode.as_deref(), MAX_CAPTION, true)
    {
        return error(400, &e);
    }
    let mut s = shared.inner.lock().unwrap();
    let id = s.next_message_id;
    s.next_message_id += 1;
    let mut m = json!({
        "message_id": id, "date": now(), "chat": chat(chat_id), "from": bot_user(),
        "photo": [
            { "file_id": format!("AgACAgQAAx-small-{id}"), "file_unique_id": format!("AQADs{id}"), "width": 90, "height": 45, "file_size": len / 10 },
            { "file_id": format!("AgACAgQAAx-large-{id}"), "file_unique_id": format!("AQADl{id}"), "width": 800, "height": 400, "file_size": len },
        ],
    });
    if let Some(c) = &caption {
        m["caption"] = json!(c);
    }
    s.sent.push(m.clone());
    s.recorded.push(Recorded {
        method: "sendPhoto".into(),
        chat_id: Some(chat_id),
        message_id: Some(id),
        text: caption,
        parse_mode,
        photo_len: Some(len),
        photo_name: name,
        reply_markup: p.json("reply_markup"),
        link_preview_disabled: false,
        callback_query_id: None,
    });
    ok(m)
}

fn edit_message_text(shared: &Shared, p: &Params) -> Response {
    let (Some(chat_id), Some(message_id)) = (p.i64("chat_id"), p.i64("message_id")) else {
        return error(400, "Bad Request: message to edit not found");
    };
    let Some(text) = p.str("text") else {
        return error(400, "Bad Request: message text is empty");
    };
    let parse_mode = p.str("parse_mode");
    if let Err(e) = check_text(&text, parse_mode.as_deref(), MAX_TEXT, false) {
        return error(400, &e);
    }
    let markup = p.json("reply_markup");
    let mut s = shared.inner.lock().unwrap();
    let Some(pos) = s.sent.iter().position(|m| {
        m["message_id"].as_i64() == Some(message_id) && m["chat"]["id"].as_i64() == Some(chat_id)
    }) else {
        return error(400, "Bad Request: message to edit not found");
    };
    let old = &s.sent[pos];
    let empty_markup = json!({ "inline_keyboard": [] });
    let markup_norm = |v: Option<&Value>| v.cloned().filter(|k| k != &empty_markup);
    if old["text"].as_str() == Some(text.as_str())
        && markup_norm(old.get("reply_markup")) == markup_norm(markup.as_ref())
    {
        return error(
            400,
            "Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message",
        );
    }
    let mut m = old.clone();
    m["text"] = json!(text);
    m["edit_date"] = json!(now());
    match markup_norm(markup.as_ref()) {
        Some(k) => m["reply_markup"] = k,
        None => {
            if let Some(o) = m.as_object_mut() {
                o.remove("reply_markup");
            }
        }
    }
    s.sent[pos] = m.clone();
    s.recorded.push(Recorded {
        method: "editMessageText".into(),
        chat_id: Some(chat_id),
        message_id: i32::try_from(message_id).ok(),
        text: Some(text),
        parse_mode,
        photo_len: None,
        photo_name: None,
        reply_markup: markup,
        link_preview_disabled: link_preview_disabled(p),
        callback_query_id: None,
    });
    ok(m)
}

async fn get_updates(shared: &Shared, p: &Params) -> Response {
    let offset = p.i64("offset").unwrap_or(0);
    let timeout = Duration::from_secs(p.i64("timeout").unwrap_or(0).clamp(0, 50) as u64);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let notified = shared.queued.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let mut s = shared.inner.lock().unwrap();
            // As Telegram: an offset confirms (forgets) every earlier update.
            s.updates.retain(|(id, _)| *id >= offset);
            if !s.updates.is_empty() {
                let list: Vec<Value> = s.updates.iter().map(|(_, u)| u.clone()).collect();
                return ok(Value::Array(list));
            }
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return ok(json!([]));
        }
    }
}

#[cfg(test)]
mod parse_tests {
    #[test]
    fn html_is_checked_like_telegram() {
        assert_eq!(
            super::parse_html("<b>a &lt; b</b> &amp; c").unwrap(),
            "a < b & c"
        );
        assert!(super::parse_html("<b>open").is_err());
        assert!(super::parse_html("<b><i>x</b></i>").is_err());
        assert!(super::parse_html("a < b").is_err());
        assert!(super::parse_html("<div>x</div>").is_err());
        assert!(super::parse_html("AT&T").is_err());
    }
}
