//! Support for the channel tests: real peers on loopback and sample data.

#![allow(dead_code)]

pub mod alertmanager;
pub mod smtp;
pub mod telegram_peer;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use prognos_notifiers::alert::{AlertInfo, KeyValues, Notification, Status};
use prognos_notifiers::config::{NotifierConfig, Receiver, Target};
use prognos_notifiers::delivery::Rendered;
use prognos_notifiers::message::RenderOptions;
use prognos_notifiers::retry::Backoff;
use prognos_notifiers::route::Route;

/// One request an [`HttpRecorder`] received.
#[derive(Debug, Clone)]
pub struct Received {
    /// Its headers.
    pub headers: HeaderMap,
    /// Its body.
    pub body: Bytes,
}

impl Received {
    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
    /// A header as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
}

#[derive(Default)]
struct RecorderState {
    received: Vec<Received>,
    /// Scripted answers (status, Retry-After), then 200.
    answers: VecDeque<(u16, Option<u64>)>,
}

/// An HTTP receiver on loopback recording every POST (any path).
#[derive(Debug)]
pub struct HttpRecorder {
    /// Its URL.
    pub url: String,
    state: Arc<Mutex<RecorderStateDebug>>,
    task: tokio::task::JoinHandle<()>,
}

struct RecorderStateDebug(RecorderState);
impl std::fmt::Debug for RecorderStateDebug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecorderState")
    }
}

impl Drop for HttpRecorder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record(
    State(state): State<Arc<Mutex<RecorderStateDebug>>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut s = state.lock().unwrap();
    s.0.received.push(Received { headers, body });
    match s.0.answers.pop_front() {
        Some((code, after)) => {
            let status = StatusCode::from_u16(code).unwrap();
            match after {
                Some(a) => (status, [("Retry-After", a.to_string())], "scripted").into_response(),
                None => (status, "scripted").into_response(),
            }
        }
        None => (StatusCode::OK, "ok").into_response(),
    }
}

impl HttpRecorder {
    /// Starts a recorder answering 200 unless scripted.
    pub async fn start() -> HttpRecorder {
        let state = Arc::new(Mutex::new(RecorderStateDebug(RecorderState::default())));
        let app = Router::new()
            .fallback(post(record))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        HttpRecorder {
            url: format!("http://{addr}/hook"),
            state,
            task,
        }
    }

    /// Answers the next request with `status` (and `Retry-After` seconds).
    pub fn answer_next(&self, status: u16, retry_after: Option<u64>) {
        self.state
            .lock()
            .unwrap()
            .0
            .answers
            .push_back((status, retry_after));
    }

    /// What it received so far.
    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().0.received.clone()
    }

    /// Waits until a received request satisfies `pred` (or panics after `within`).
    pub async fn wait_for(&self, within: Duration, pred: impl Fn(&Received) -> bool) -> Received {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(r) = self.received().into_iter().find(|r| pred(r)) {
                return r;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no matching request within {within:?}; got {:?}",
                self.received()
                    .iter()
                    .map(|r| String::from_utf8_lossy(&r.body).into_owned())
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn kv(pairs: &[(&str, &str)]) -> KeyValues {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A firing alert with `alertname` = `name` and a given `service`.
pub fn alert(name: &str, service: &str) -> AlertInfo {
    AlertInfo {
        rule: format!("mes/{name}"),
        labels: kv(&[
            ("alertname", name),
            ("service", service),
            ("severity", "warning"),
        ]),
        annotations: kv(&[("summary", "Queue <backlog> & growth")]),
        status: Status::Firing,
        starts_at: chrono::Utc::now().timestamp() - 600,
        ends_at: None,
        value: 3.5,
        generator_url: "http://prognos.example/forecast?series=1".to_string(),
        explanation: None,
    }
}

/// A notification about `alerts` with key `key`.
pub fn notification(key: &str, alerts: Vec<AlertInfo>) -> Notification {
    Notification {
        key: key.to_string(),
        receiver: "ops".to_string(),
        group_key: "{}:{alertname=\"MesQueueBacklog\"}".to_string(),
        group_labels: kv(&[("alertname", "MesQueueBacklog")]),
        alerts,
        created_at: chrono::Utc::now().timestamp(),
        external_url: "http://prognos.example".to_string(),
    }
}

/// A tiny valid PNG (1×1, grey).
pub fn png() -> Vec<u8> {
    vec![
        0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44,
        0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x00, 0x00, 0x00, 0x00, 0x3a,
        0x7e, 0x9b, 0x55, 0x00, 0x00, 0x00, 0x0a, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x68,
        0x00, 0x00, 0x00, 0x82, 0x00, 0x81, 0x77, 0xcd, 0x72, 0xb6, 0x00, 0x00, 0x00, 0x00, 0x49,
        0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
    ]
}

/// A simple rendering (escaped HTML), with or without a chart.
pub fn rendered(chart: bool) -> Rendered {
    Rendered {
        title: "[FIRING:1] MES API: MesQueueBacklog".to_string(),
        telegram_html: "<b>🔥 MesQueueBacklog</b>\nQueue &lt;backlog&gt; &amp; growth\n<a href=\"http://prognos.example/\">forecast</a>".to_string(),
        telegram_caption_html: "<i>MesQueueBacklog</i>: forecast band 95 %".to_string(),
        email_subject: "[FIRING:1] MES API: MesQueueBacklog".to_string(),
        email_text: "MesQueueBacklog\nQueue <backlog> & growth\n".to_string(),
        email_html: "<html><body><h1>MesQueueBacklog</h1><p>Queue &lt;backlog&gt; &amp; growth</p><img src=\"cid:chart\"></body></html>".to_string(),
        chart_png: chart.then(png),
    }
}

/// A notifier configuration sending every alert, grouped by service, to
/// the receiver `ops` and its `targets`: group_wait 0, group_interval 60 s,
/// repeat_interval 1 h, given up after 10 min, no charts.
pub fn notifier_config(targets: Vec<Target>) -> NotifierConfig {
    NotifierConfig {
        external_url: "http://prognos.example".into(),
        receivers: vec![Receiver {
            name: "ops".into(),
            send_resolved: true,
            targets,
        }],
        route: Route {
            receiver: "ops".into(),
            matchers: Vec::new(),
            group_by: vec!["service".into()],
            group_wait: 0,
            group_interval: 60,
            repeat_interval: 3600,
            continue_matching: false,
            routes: Vec::new(),
        },
        give_up_after_secs: 600,
        backoff: Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(1),
        },
        render: RenderOptions {
            chart: false,
            ..RenderOptions::default()
        },
        bot: None,
        remediation: None,
    }
}
