//! A webhook receiver on loopback as an operator would run one: it records
//! every request (headers and JSON body) and treats the `Idempotency-Key`
//! header the way idempotent receivers do — a key seen before is
//! acknowledged but not acted on again. It can hold its answers (to catch
//! prognos mid-send) and be started on a port chosen earlier (a receiver
//! that comes back after an outage).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    /// The `Idempotency-Key` header.
    pub key: Option<String>,
    /// The parsed JSON body.
    pub body: serde_json::Value,
}

#[derive(Debug, Default)]
struct Shared {
    received: Vec<Received>,
    acted_on: BTreeSet<String>,
    hold: Option<Duration>,
}

/// A running receiver; stops when dropped.
#[derive(Debug)]
pub struct WebhookReceiver {
    /// `http://127.0.0.1:PORT/hook`.
    pub url: String,
    shared: Arc<Mutex<Shared>>,
    task: tokio::task::JoinHandle<()>,
}

impl WebhookReceiver {
    /// Starts on a free port.
    pub async fn start() -> Self {
        Self::start_on(0).await
    }

    /// Starts on `port` (0: any free one).
    pub async fn start_on(port: u16) -> Self {
        let shared = Arc::new(Mutex::new(Shared::default()));
        let s = shared.clone();
        let app = Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
            let s = s.clone();
            async move {
                let key = headers
                    .get("idempotency-key")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let body = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                let hold = {
                    let mut g = s.lock().unwrap();
                    g.received.push(Received {
                        key: key.clone(),
                        body,
                    });
                    g.hold
                };
                if let Some(h) = hold {
                    tokio::time::sleep(h).await;
                }
                if let Some(k) = key {
                    s.lock().unwrap().acted_on.insert(k);
                }
                StatusCode::OK
            }
        });
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("binding the webhook receiver");
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { url, shared, task }
    }

    /// Holds every answer for `d` (None: answer at once).
    pub fn hold(&self, d: Option<Duration>) {
        self.shared.lock().unwrap().hold = d;
    }

    /// Every request so far.
    pub fn received(&self) -> Vec<Received> {
        self.shared.lock().unwrap().received.clone()
    }

    /// Distinct idempotency keys acted on (answered).
    pub fn acted_on(&self) -> BTreeSet<String> {
        self.shared.lock().unwrap().acted_on.clone()
    }

    /// Waits until at least `n` requests arrived, up to `secs` seconds.
    pub async fn wait_for(&self, n: usize, secs: u64) -> Vec<Received> {
        for _ in 0..secs * 10 {
            let r = self.received();
            if r.len() >= n {
                return r;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.received()
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}
