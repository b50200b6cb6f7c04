//! A small W3C WebDriver client for the web UI tests: it starts Debian's
//! `chromedriver` (`/usr/bin/chromedriver`, package `chromium-driver`) on a
//! free loopback port, opens a session with headless Chromium
//! (`/usr/bin/chromium`, package `chromium`) and drives it: navigation,
//! CSS lookups, typing and clicking, scripts, console messages, PNG
//! screenshots and window sizes.
//!
//! It speaks WebDriver's JSON over HTTP directly with `reqwest` (already a
//! dependency, rustls only) instead of using `fantoccini` or `thirtyfour`:
//! those pull a C crypto build (`aws-lc-sys`) and much more API than the
//! tests need. Every request has a 30 s timeout, so a hung browser fails the
//! test with a message instead of hanging it, and all traffic stays on
//! 127.0.0.1.
//!
//! Chromium runs with a temporary profile (and `HOME`), and [`Browser`]'s
//! `Drop` kills both Chromium and chromedriver, so a failing test leaves no
//! processes behind.

// Each test binary uses a different part of the harness.
#![allow(dead_code)]

use std::collections::HashSet;
use std::fmt;
use std::fs::{self, File};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tempfile::TempDir;

/// Debian's chromedriver (package `chromium-driver`).
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// Debian's Chromium launcher (package `chromium`).
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// The timeout of every WebDriver request (errors say "30 s").
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long chromedriver may take to report ready on `/status`.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// The key of a web element reference in WebDriver's JSON.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The HTTP side of a WebDriver session, shared by [`Browser`] and its
/// [`Element`]s.
#[derive(Debug)]
struct Session {
    client: reqwest::Client,
    /// `http://127.0.0.1:PORT`.
    base: String,
    id: String,
}

impl Session {
    /// Sends `method` to `/session/{id}{path}` and returns the response's
    /// `value`. `what` names the command in errors.
    async fn command(
        &self,
        what: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        self.request(what, method, path, body)
            .await
            .map_err(|e| e.to_string())
    }

    /// [`Session::command`] with the structured error.
    async fn request(
        &self,
        what: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, WebDriverError> {
        let url = format!("{}/session/{}{}", self.base, self.id, path);
        send(&self.client, what, method, &url, body).await
    }

    async fn get(&self, what: &str, path: &str) -> Result<Value, String> {
        self.command(what, Method::GET, path, None).await
    }

    async fn post(&self, what: &str, path: &str, body: Value) -> Result<Value, String> {
        self.command(what, Method::POST, path, Some(body)).await
    }

    /// Elements matching `css` under `path` (`""` for the document,
    /// `/element/{id}` for an element).
    async fn find_all(self: &Arc<Self>, path: &str, css: &str) -> Result<Vec<Element>, String> {
        let what = format!("find_all({css:?})");
        let value = self
            .post(
                &what,
                &format!("{path}/elements"),
                json!({"using": "css selector", "value": css}),
            )
            .await?;
        let refs = value
            .as_array()
            .ok_or_else(|| format!("WebDriver {what}: expected an array, got {value}"))?;
        refs.iter()
            .map(|r| {
                let id = r
                    .get(ELEMENT_KEY)
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("WebDriver {what}: not an element reference: {r}"))?;
                Ok(Element {
                    session: Arc::clone(self),
                    id: id.to_string(),
                })
            })
            .collect()
    }
}

/// A failed WebDriver request.
#[derive(Debug)]
struct WebDriverError {
    /// The command, such as `goto("http://…")`.
    what: String,
    /// `POST /session/…/url`.
    request: String,
    /// HTTP status, when there was a response.
    status: Option<StatusCode>,
    /// WebDriver's `error` (`no such element`), or `http` for transport
    /// failures.
    error: String,
    /// The first line of WebDriver's `message`.
    message: String,
}

impl fmt::Display for WebDriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebDriver {} ({}) failed: ", self.what, self.request)?;
        if let Some(status) = self.status {
            write!(f, "HTTP {}: ", status.as_u16())?;
        }
        write!(f, "{}: {}", self.error, self.message)
    }
}

/// Sends one WebDriver request and returns the response's `value`.
async fn send(
    client: &reqwest::Client,
    what: &str,
    method: Method,
    url: &str,
    body: Option<Value>,
) -> Result<Value, WebDriverError> {
    // `/session/<32 hex digits>/url` reads better as `/session/…/url`.
    let path = url.split_once("/session").map_or("", |(_, p)| p);
    let path = match path.strip_prefix('/').and_then(|p| p.split_once('/')) {
        Some((_, rest)) => format!("/session/…/{rest}"),
        None => format!("/session{path}"),
    };
    let fail = |status, error: &str, message: &str| WebDriverError {
        what: what.to_string(),
        request: format!("{method} {path}"),
        status,
        error: error.to_string(),
        // chromedriver repeats the error: "no such element: Unable to…".
        message: message
            .lines()
            .next()
            .map(|line| line.strip_prefix(error).unwrap_or(line))
            .map(|line| line.strip_prefix(": ").unwrap_or(line))
            .unwrap_or("")
            .to_string(),
    };
    let mut request = client.request(method.clone(), url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.map_err(|e| {
        if e.is_timeout() {
            fail(None, "timeout", "no answer within 30 s (hung browser?)")
        } else {
            fail(None, "http", &error_chain(&e))
        }
    })?;
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|e| fail(Some(status), "http", &error_chain(&e)))?;
    let mut json: Value = serde_json::from_str(&text).map_err(|e| {
        let start: String = text.chars().take(200).collect();
        fail(Some(status), "invalid JSON", &format!("{e}: {start}"))
    })?;
    let value = json
        .get_mut("value")
        .map(Value::take)
        .unwrap_or(Value::Null);
    if let Some(error) = value.get("error").and_then(Value::as_str) {
        let message = value.get("message").and_then(Value::as_str).unwrap_or("");
        return Err(fail(Some(status), error, message));
    }
    if !status.is_success() {
        return Err(fail(Some(status), "unexpected status", &text));
    }
    Ok(value)
}

/// An error and its sources on one line (`reqwest` hides the cause, such as
/// "connection refused" or "operation timed out", in the source chain).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A headless Chromium driven through chromedriver, with one WebDriver
/// session. Dropping it kills Chromium and chromedriver.
#[derive(Debug)]
pub struct Browser {
    session: Arc<Session>,
    /// The chromedriver process. Chromium is its child but outlives it when
    /// it is killed; chromedriver, Chromium's browser process and crash
    /// handlers run with `HOME` in `dir`, Chromium's other processes are
    /// their descendants.
    driver: Child,
    /// The port chromedriver listens on.
    port: u16,
    /// Chromium's profile, `HOME` and chromedriver's log; removed after both
    /// processes are gone (declared last so it is dropped last).
    dir: TempDir,
}

impl Browser {
    /// Starts chromedriver on a free 127.0.0.1 port, waits (at most 20 s)
    /// for it to report ready and opens a session with headless Chromium
    /// whose window is `width`×`height` pixels (the viewport is shorter by
    /// the browser's toolbar, see [`Browser::resize_viewport`]). Console
    /// messages of every level are kept for [`Browser::console`].
    ///
    /// Errors say what is missing when chromedriver or Chromium are not
    /// installed, and include chromedriver's log when it fails.
    pub async fn start(width: u32, height: u32) -> Result<Browser, String> {
        for (path, package) in [(CHROMEDRIVER, "chromium-driver"), (CHROMIUM, "chromium")] {
            if !Path::new(path).exists() {
                return Err(format!(
                    "{path} is missing: install Debian's {package} package \
                     (apt-get install chromium chromium-driver)"
                ));
            }
        }
        let dir = tempfile::Builder::new()
            .prefix("webdriver-")
            .tempdir()
            .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .no_proxy()
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {}", error_chain(&e)))?;

        // The free port may be taken between probing and chromedriver's
        // bind: try a few.
        let mut last_error = String::new();
        for _ in 0..3 {
            let port = free_port()?;
            let mut driver = spawn_chromedriver(dir.path(), port)?;
            let base = format!("http://127.0.0.1:{port}");
            match wait_ready(&client, &base, &mut driver, dir.path()).await {
                Ok(()) => {
                    return open_session(client, base, driver, port, dir, width, height).await;
                }
                Err(error) => {
                    let _ = driver.kill();
                    let _ = driver.wait();
                    last_error = error;
                }
            }
        }
        Err(last_error)
    }

    /// The port chromedriver listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Opens `url` and waits for it to load (WebDriver's page load strategy
    /// "normal").
    pub async fn goto(&self, url: &str) -> Result<(), String> {
        self.session
            .post(&format!("goto({url:?})"), "/url", json!({ "url": url }))
            .await
            .map(drop)
    }

    /// The document's title.
    pub async fn title(&self) -> Result<String, String> {
        let value = self.session.get("title()", "/title").await?;
        as_string("title()", value)
    }

    /// The URL of the current page.
    pub async fn current_url(&self) -> Result<String, String> {
        let value = self.session.get("current_url()", "/url").await?;
        as_string("current_url()", value)
    }

    /// The current DOM serialised as HTML (not the bytes the server sent).
    pub async fn page_source(&self) -> Result<String, String> {
        let value = self.session.get("page_source()", "/source").await?;
        as_string("page_source()", value)
    }

    /// Elements matching the CSS selector `css` (possibly none).
    pub async fn find_all(&self, css: &str) -> Result<Vec<Element>, String> {
        self.session.find_all("", css).await
    }

    /// The one element matching `css`; an error naming the selector when
    /// none or several match.
    pub async fn find(&self, css: &str) -> Result<Element, String> {
        exactly_one(css, self.find_all(css).await?)
    }

    /// Polls every 100 ms until an element matches `css` and returns the
    /// first; an error naming the selector after `timeout`.
    pub async fn wait_for(&self, css: &str, timeout: Duration) -> Result<Element, String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(element) = self.find_all(css).await?.into_iter().next() {
                return Ok(element);
            }
            if Instant::now() >= deadline {
                return Err(format!("no element matches {css:?} after {timeout:?}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls the current URL every 50 ms until `accept` takes it, and
    /// returns it; an error with the last URL after `timeout`.
    pub async fn wait_for_url(
        &self,
        accept: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let url = self.current_url().await?;
            if accept(&url) {
                return Ok(url);
            }
            if Instant::now() >= deadline {
                return Err(format!("the URL is still {url:?} after {timeout:?}"));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Runs `script` as the body of a synchronous function (WebDriver
    /// "execute/sync": `return` gives the result, `arguments[i]` the
    /// `args`; pass elements with [`Element::to_arg`]) and returns its JSON
    /// result.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Result<Value, String> {
        let start: String = script.chars().take(60).collect();
        self.session
            .post(
                &format!("execute({start:?})"),
                "/execute/sync",
                json!({ "script": script, "args": args }),
            )
            .await
    }

    /// Console messages (and other browser log entries, such as failed
    /// resource loads) since the previous call. Chromium's levels are
    /// `SEVERE` (`console.error`), `WARNING`, `INFO` (`console.log`) and
    /// `DEBUG`; messages read `URL LINE:COLUMN "text"`.
    ///
    /// Uses chromedriver's legacy log endpoint `/se/log`, or `/log` when
    /// that one is unknown.
    pub async fn console(&self) -> Result<Vec<ConsoleEntry>, String> {
        let body = json!({ "type": "browser" });
        let legacy = self
            .session
            .request("console()", Method::POST, "/se/log", Some(body.clone()))
            .await;
        let value = match legacy {
            Ok(value) => value,
            Err(e) if e.status == Some(StatusCode::NOT_FOUND) => {
                self.session.post("console()", "/log", body).await?
            }
            Err(e) => return Err(e.to_string()),
        };
        let entries = value
            .as_array()
            .ok_or_else(|| format!("WebDriver console(): expected an array, got {value}"))?;
        Ok(entries
            .iter()
            .map(|entry| ConsoleEntry {
                level: entry["level"].as_str().unwrap_or("").to_string(),
                message: entry["message"].as_str().unwrap_or("").to_string(),
            })
            .collect())
    }

    /// Writes a PNG screenshot of the viewport to `path`, creating its
    /// parent directories.
    pub async fn screenshot(&self, path: &Path) -> Result<(), String> {
        let value = self.session.get("screenshot()", "/screenshot").await?;
        write_png(path, &as_string("screenshot()", value)?)
    }

    /// Writes a PNG screenshot of the whole page, beyond the viewport, to
    /// `path` (Chromium's DevTools `Page.captureScreenshot` through
    /// chromedriver's `goog/cdp/execute`), creating its parent directories.
    pub async fn full_page_screenshot(&self, path: &Path) -> Result<(), String> {
        let what = "full_page_screenshot()";
        let metrics = self.cdp(what, "Page.getLayoutMetrics", json!({})).await?;
        let size = &metrics["cssContentSize"];
        let (Some(width), Some(height)) = (size["width"].as_f64(), size["height"].as_f64()) else {
            return Err(format!("WebDriver {what}: no cssContentSize in {metrics}"));
        };
        let params = json!({
            "format": "png",
            "captureBeyondViewport": true,
            "clip": {"x": 0, "y": 0, "width": width.ceil(), "height": height.ceil(), "scale": 1},
        });
        let mut shot = self.cdp(what, "Page.captureScreenshot", params).await?;
        write_png(path, &as_string(what, shot["data"].take())?)
    }

    /// Runs a Chrome DevTools Protocol command and returns its result.
    async fn cdp(&self, what: &str, cmd: &str, params: Value) -> Result<Value, String> {
        self.session
            .post(
                &format!("{what}: {cmd}"),
                "/goog/cdp/execute",
                json!({ "cmd": cmd, "params": params }),
            )
            .await
    }

    /// Sets the window's outer size (WebDriver "set window rect"). In
    /// headless Chromium the viewport is that size less the toolbar's
    /// height; use [`Browser::resize_viewport`] to size the viewport, as a
    /// phone's screen.
    pub async fn resize(&self, width: u32, height: u32) -> Result<(), String> {
        self.session
            .post(
                &format!("resize({width}, {height})"),
                "/window/rect",
                json!({ "width": width, "height": height }),
            )
            .await
            .map(drop)
    }

    /// Sizes the window so that the viewport (`innerWidth`×`innerHeight`)
    /// is `width`×`height` CSS pixels, e.g. 390×844 for a phone.
    pub async fn resize_viewport(&self, width: u32, height: u32) -> Result<(), String> {
        self.resize(width, height).await?;
        let (inner_width, inner_height) = self.viewport().await?;
        let outer_width = (2 * width).saturating_sub(inner_width);
        let outer_height = (2 * height).saturating_sub(inner_height);
        if (outer_width, outer_height) != (width, height) {
            self.resize(outer_width, outer_height).await?;
        }
        Ok(())
    }

    /// The viewport's size in CSS pixels (`innerWidth`, `innerHeight`).
    pub async fn viewport(&self) -> Result<(u32, u32), String> {
        let size = self
            .execute("return [window.innerWidth, window.innerHeight];", vec![])
            .await?;
        match (size[0].as_u64(), size[1].as_u64()) {
            (Some(w), Some(h)) => Ok((w as u32, h as u32)),
            _ => Err(format!("viewport(): unexpected result {size}")),
        }
    }

    /// Ends the session (Chromium exits) and stops chromedriver. Dropping
    /// the browser does the same without asking chromedriver.
    pub async fn quit(mut self) -> Result<(), String> {
        let url = format!("{}/session/{}", self.session.base, self.session.id);
        let ended = send(&self.session.client, "quit()", Method::DELETE, &url, None).await;
        self.stop();
        ended.map(drop).map_err(|e| e.to_string())
    }

    /// Kills chromedriver, then every Chromium process (browser, crash
    /// handlers, zygotes, GPU, network, renderers), and waits (at most 5 s)
    /// for them to go so that none writes to the profile while it is
    /// removed. Idempotent, synchronous.
    fn stop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let home = self.dir.path().join("home");
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let pids = chromium_processes(&home);
            if pids.is_empty() || Instant::now() >= deadline {
                break;
            }
            // Stopped processes cannot fork: look again for children forked
            // meanwhile, then kill them all.
            signal("STOP", &pids);
            signal("KILL", &chromium_processes(&home));
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An element of the page, found by CSS selector.
#[derive(Debug, Clone)]
pub struct Element {
    session: Arc<Session>,
    id: String,
}

impl Element {
    /// The element's rendered text (as `innerText`).
    pub async fn text(&self) -> Result<String, String> {
        let value = self.session.get("text()", &self.path("/text")).await?;
        as_string("text()", value)
    }

    /// The HTML attribute `name` as in the markup (or set by
    /// `setAttribute`), or `None` when absent. An input's current text is
    /// its `value` *property*: see [`Element::property`].
    pub async fn attr(&self, name: &str) -> Result<Option<String>, String> {
        let what = format!("attr({name:?})");
        let path = self.path(&format!("/attribute/{name}"));
        match self.session.get(&what, &path).await? {
            Value::Null => Ok(None),
            Value::String(s) => Ok(Some(s)),
            other => Ok(Some(other.to_string())),
        }
    }

    /// The DOM property `name` (`value`, `checked`, `className`…) as JSON;
    /// `null` when undefined.
    pub async fn property(&self, name: &str) -> Result<Value, String> {
        let what = format!("property({name:?})");
        let path = self.path(&format!("/property/{name}"));
        self.session.get(&what, &path).await
    }

    /// Clicks the element's centre (scrolling it into view first). A
    /// navigation it starts (a form submission) may still be under way when
    /// this returns: wait for it with [`Browser::wait_for_url`].
    pub async fn click(&self) -> Result<(), String> {
        self.session
            .post("click()", &self.path("/click"), json!({}))
            .await
            .map(drop)
    }

    /// Types `text` into the element (focusing it first).
    pub async fn send_keys(&self, text: &str) -> Result<(), String> {
        self.session
            .post(
                &format!("send_keys({text:?})"),
                &self.path("/value"),
                json!({ "text": text }),
            )
            .await
            .map(drop)
    }

    /// Empties an input, textarea or editable element.
    pub async fn clear(&self) -> Result<(), String> {
        self.session
            .post("clear()", &self.path("/clear"), json!({}))
            .await
            .map(drop)
    }

    /// Elements within this one matching the CSS selector `css`.
    pub async fn find_all(&self, css: &str) -> Result<Vec<Element>, String> {
        self.session.find_all(&self.path(""), css).await
    }

    /// The one element within this one matching `css`; an error naming the
    /// selector when none or several match.
    pub async fn find(&self, css: &str) -> Result<Element, String> {
        exactly_one(css, self.find_all(css).await?)
    }

    /// Whether the element is displayed (WebDriver's visibility rules).
    pub async fn displayed(&self) -> Result<bool, String> {
        let value = self
            .session
            .get("displayed()", &self.path("/displayed"))
            .await?;
        value
            .as_bool()
            .ok_or_else(|| format!("WebDriver displayed(): expected a boolean, got {value}"))
    }

    /// The element as an argument of [`Browser::execute`] (the script sees
    /// the DOM node).
    pub fn to_arg(&self) -> Value {
        json!({ ELEMENT_KEY: self.id })
    }

    fn path(&self, rest: &str) -> String {
        format!("/element/{}{rest}", self.id)
    }
}

/// One browser log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleEntry {
    /// `SEVERE`, `WARNING`, `INFO` or `DEBUG`.
    pub level: String,
    /// `URL LINE:COLUMN "text"` for console calls.
    pub message: String,
}

fn exactly_one(css: &str, mut elements: Vec<Element>) -> Result<Element, String> {
    match elements.len() {
        1 => Ok(elements.remove(0)),
        0 => Err(format!("no element matches {css:?}")),
        n => Err(format!("{n} elements match {css:?}, expected one")),
    }
}

fn as_string(what: &str, value: Value) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s),
        other => Err(format!("WebDriver {what}: expected a string, got {other}")),
    }
}

fn write_png(path: &Path, base64: &str) -> Result<(), String> {
    let png = decode_base64(base64)?;
    if !png.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Err("the screenshot is not a PNG".to_string());
    }
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(|e| format!("cannot create {parent:?}: {e}"))?;
    }
    fs::write(path, png).map_err(|e| format!("cannot write {path:?}: {e}"))
}

/// Decodes standard base64 (RFC 4648, `=` padding optional), as WebDriver
/// sends screenshots; small enough not to need the `base64` crate.
fn decode_base64(text: &str) -> Result<Vec<u8>, String> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut bits, mut nbits) = (0u32, 0u32);
    for (i, c) in text.bytes().enumerate() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return Err(format!("invalid base64 byte {c:#04x} at {i}")),
        };
        bits = (bits << 6) | u32::from(v);
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out.push((bits >> nbits) as u8);
            bits &= (1 << nbits) - 1;
        }
    }
    if nbits >= 6 {
        return Err("truncated base64".to_string());
    }
    Ok(out)
}

/// A port that was free on 127.0.0.1 a moment ago.
fn free_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| format!("cannot find a free port on 127.0.0.1: {e}"))
}

/// Starts chromedriver on `port` (it listens on loopback only; note that
/// `--allowed-ips` would make it listen on every interface), with `HOME` in `dir` so Chromium writes
/// nothing to the real home (its crash reporter's database goes there
/// despite `--user-data-dir`). Chromium's own stderr (why it failed to
/// start) goes with chromedriver's output to `dir/chromedriver.log`.
fn spawn_chromedriver(dir: &Path, port: u16) -> Result<Child, String> {
    let log = dir.join("chromedriver.log");
    let home = dir.join("home");
    fs::create_dir_all(&home).map_err(|e| format!("cannot create {home:?}: {e}"))?;
    let stdout = File::create(&log).map_err(|e| format!("cannot create {log:?}: {e}"))?;
    let stderr = stdout
        .try_clone()
        .map_err(|e| format!("cannot open {log:?}: {e}"))?;
    Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .arg("--enable-chrome-logs")
        .env("HOME", &home)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("XDG_CACHE_HOME")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("cannot start {CHROMEDRIVER}: {e}"))
}

/// Waits for chromedriver's `/status` to say ready, failing early when it
/// exits.
async fn wait_ready(
    client: &reqwest::Client,
    base: &str,
    driver: &mut Child,
    dir: &Path,
) -> Result<(), String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let url = format!("{base}/status");
    loop {
        if let Ok(Some(status)) = driver.try_wait() {
            return Err(format!(
                "{CHROMEDRIVER} exited ({status}) before it was ready; its log:\n{}",
                driver_log(dir)
            ));
        }
        let probe = client
            .get(&url)
            .timeout(Duration::from_secs(2))
            .send()
            .await;
        if let Ok(response) = probe
            && let Ok(status) = response.json::<Value>().await
            && status["value"]["ready"] == json!(true)
        {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "{CHROMEDRIVER} on {base} was not ready after {READY_TIMEOUT:?}; its log:\n{}",
                driver_log(dir)
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Opens the WebDriver session, or stops chromedriver and fails.
async fn open_session(
    client: reqwest::Client,
    base: String,
    mut driver: Child,
    port: u16,
    dir: TempDir,
    width: u32,
    height: u32,
) -> Result<Browser, String> {
    let profile = dir.path().join("profile");
    let capabilities = json!({
        "capabilities": {
            "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": CHROMIUM,
                    "args": [
                        "--headless=new",
                        "--no-sandbox",
                        "--disable-gpu",
                        "--disable-dev-shm-usage",
                        format!("--user-data-dir={}", profile.display()),
                        format!("--window-size={width},{height}"),
                    ],
                },
                "goog:loggingPrefs": { "browser": "ALL" },
                // chromedriver's own timeouts stay below REQUEST_TIMEOUT so
                // that a slow page fails with WebDriver's message.
                "timeouts": { "pageLoad": 20_000, "script": 20_000 },
            }
        }
    });
    let url = format!("{base}/session");
    let response = send(&client, "start()", Method::POST, &url, Some(capabilities)).await;
    let session_id = response
        .as_ref()
        .ok()
        .and_then(|value| value["sessionId"].as_str().map(str::to_string));
    let id = match (response, session_id) {
        (Ok(_), Some(id)) => id,
        (result, _) => {
            let _ = driver.kill();
            let _ = driver.wait();
            let error = match result {
                Err(e) => e.to_string(),
                Ok(value) => format!("WebDriver start(): no sessionId in {value}"),
            };
            return Err(format!(
                "{error}\nchromedriver's log:\n{}",
                driver_log(dir.path())
            ));
        }
    };
    Ok(Browser {
        session: Arc::new(Session { client, base, id }),
        driver,
        port,
        dir,
    })
}

/// The last lines of chromedriver's log, without Chromium's harmless
/// complaints that there is no D-Bus.
fn driver_log(dir: &Path) -> String {
    let log = fs::read_to_string(dir.join("chromedriver.log")).unwrap_or_default();
    let lines: Vec<&str> = log
        .lines()
        .filter(|line| !line.contains("dbus") && !line.contains("D-Bus"))
        .collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// The live processes whose environment has `HOME=home` (chromedriver,
/// Chromium's browser process and crash handlers), and their descendants
/// (Chromium's zygotes and their children rewrite their environment's memory
/// with their title, so only their ancestry tells them).
fn chromium_processes(home: &Path) -> Vec<u32> {
    let mut wanted = b"HOME=".to_vec();
    wanted.extend_from_slice(home.as_os_str().as_encoded_bytes());
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut live = Vec::new();
    let mut ours = HashSet::new();
    for pid in entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok()) {
        let Ok(stat) = fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // `PID (COMM) STATE PPID …`; COMM may hold spaces and parentheses.
        let mut fields = stat[stat.rfind(')').map_or(0, |i| i + 1)..].split_whitespace();
        let (Some(state), Some(Ok(ppid))) = (fields.next(), fields.next().map(str::parse::<u32>))
        else {
            continue;
        };
        if state == "Z" || state == "X" {
            continue;
        }
        live.push((pid, ppid));
        if fs::read(format!("/proc/{pid}/environ"))
            .is_ok_and(|env| env.split(|&b| b == 0).any(|var| var == wanted))
        {
            ours.insert(pid);
        }
    }
    loop {
        let before = ours.len();
        for &(pid, ppid) in &live {
            if ours.contains(&ppid) {
                ours.insert(pid);
            }
        }
        if ours.len() == before {
            return ours.into_iter().collect();
        }
    }
}

/// Sends `SIGNAL` to `pids` (std can only kill its own children).
fn signal(signal: &str, pids: &[u32]) {
    if pids.is_empty() {
        return;
    }
    let _ = Command::new("sh")
        .args(["-c", &format!("kill -{signal} \"$@\""), "sh"])
        .args(pids.iter().map(u32::to_string))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

#[cfg(test)]
mod tests {
    use super::decode_base64;

    #[test]
    fn decode_base64_matches_rfc_4648_vectors() {
        for (encoded, decoded) in [
            ("", ""),
            ("Zg==", "f"),
            ("Zm8=", "fo"),
            ("Zm9v", "foo"),
            ("Zm9vYg==", "foob"),
            ("Zm9vYmE=", "fooba"),
            ("Zm9vYmFy", "foobar"),
        ] {
            assert_eq!(decode_base64(encoded).unwrap(), decoded.as_bytes());
        }
        assert_eq!(decode_base64("+/+/").unwrap(), [0xfb, 0xff, 0xbf]);
        assert_eq!(decode_base64("iVBORw0KGgo=").unwrap(), b"\x89PNG\r\n\x1a\n");
        assert!(decode_base64("Zm9v!").is_err());
        assert!(decode_base64("Z").is_err());
    }
}
