//! Signed remediation calls end to end: `remediation::call` against the
//! verifying `receiver::router` on a loopback port, and the attacks the
//! receiver must turn away.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use prognos_notifiers::receiver::{Verified, router};
use prognos_notifiers::remediation::{IDEMPOTENCY_HEADER, RemediationCall, call};
use prognos_notifiers::retry::RetryAction;
use prognos_notifiers::signature::{SIGNATURE_HEADER, TIMESTAMP_HEADER, sign};

const SECRET: &[u8] = b"integration secret";

/// A server task aborted on drop.
struct Server {
    addr: std::net::SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(app: axum::Router) -> Server {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Server { addr, task }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[tokio::test]
async fn signed_calls_pass_and_attacks_are_rejected() {
    let seen: Arc<Mutex<Vec<Verified>>> = Arc::default();
    let log = Arc::clone(&seen);
    let server = serve(router(SECRET.to_vec(), 300, move |v: Verified| {
        log.lock().unwrap().push(v.clone());
        serde_json::json!({"ok": true, "path": v.path})
    }))
    .await;
    let url = format!("http://{}/restart", server.addr);
    let body = r#"{"action":"restart","host":"node-1"}"#;
    let c = RemediationCall {
        audit_id: "a1b2c3".to_string(),
        action: "restart".to_string(),
        url: url.clone(),
        method: "POST".to_string(),
        headers: vec![("X-Team".to_string(), "ops".to_string())],
        body: body.to_string(),
    };
    let http = client();
    let t = now();

    // A real signed call.
    assert_eq!(call(&http, &c, SECRET, t).await, Ok(200));
    {
        let got = seen.lock().unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].path, "/restart");
        assert_eq!(got[0].idempotency_key.as_deref(), Some("a1b2c3"));
        assert_eq!(got[0].timestamp, t);
        assert_eq!(got[0].body, body.as_bytes());
    }

    let raw = |sig: String, ts: i64, key: &str, body: &'static str| {
        http.post(&url)
            .header(SIGNATURE_HEADER, sig)
            .header(TIMESTAMP_HEADER, ts.to_string())
            .header(IDEMPOTENCY_HEADER, key)
            .body(body)
            .send()
    };
    let status = |r: reqwest::Response| r.status().as_u16();

    // Forged: signed with another secret.
    let r = raw(sign(b"guess", t, body.as_bytes()), t, "k-forged", body)
        .await
        .unwrap();
    assert_eq!(status(r), 401);
    // Altered body under the original signature.
    let altered = r#"{"action":"drop_database","host":"node-1"}"#;
    let r = raw(sign(SECRET, t, body.as_bytes()), t, "k-altered", altered)
        .await
        .unwrap();
    assert_eq!(status(r), 401);
    // The exact same request again: replayed (same signature and key).
    let r = raw(sign(SECRET, t, body.as_bytes()), t, "a1b2c3", body)
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 409);
    assert_eq!(r.text().await.unwrap(), "replayed");
    // Same idempotency key, freshly signed: still a replay.
    let r = raw(sign(SECRET, t + 1, body.as_bytes()), t + 1, "a1b2c3", body)
        .await
        .unwrap();
    assert_eq!(status(r), 409);
    // Stale: correctly signed ten minutes ago.
    let old = t - 600;
    let r = raw(sign(SECRET, old, body.as_bytes()), old, "k-stale", body)
        .await
        .unwrap();
    assert_eq!(status(r), 401);
    // Missing headers.
    let r = http.post(&url).body(body).send().await.unwrap();
    assert_eq!(status(r), 400);
    let r = http
        .post(&url)
        .header(SIGNATURE_HEADER, sign(SECRET, t, body.as_bytes()))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(status(r), 400);

    // None of the rejected calls reached the handler.
    assert_eq!(seen.lock().unwrap().len(), 1);

    // A new call (new key, new timestamp) passes.
    let c2 = RemediationCall {
        audit_id: "d4e5f6".to_string(),
        ..c.clone()
    };
    assert_eq!(call(&http, &c2, SECRET, t + 2).await, Ok(200));
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_503_receiver_is_retried_with_its_retry_after() {
    let app = axum::Router::new().fallback(|| async {
        (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            [("Retry-After", "17")],
            "maintenance",
        )
    });
    let server = serve(app).await;
    let c = RemediationCall {
        audit_id: "x".to_string(),
        action: "restart".to_string(),
        url: format!("http://{}/hook", server.addr),
        method: "PUT".to_string(),
        headers: vec![],
        body: "{}".to_string(),
    };
    let e = call(&client(), &c, SECRET, now()).await.unwrap_err();
    assert_eq!(
        e.action,
        RetryAction::Retry {
            after: Some(Duration::from_secs(17))
        }
    );
    assert!(
        e.message.contains("HTTP 503") && e.message.contains("maintenance"),
        "{e}"
    );
}

#[tokio::test]
async fn a_refused_connection_is_retried_and_a_bad_method_is_not() {
    // A port nobody listens on: bind, note it, close it.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut c = RemediationCall {
        audit_id: "x".to_string(),
        action: "restart".to_string(),
        url: format!("http://{addr}/hook"),
        method: "POST".to_string(),
        headers: vec![],
        body: "{}".to_string(),
    };
    let e = call(&client(), &c, SECRET, now()).await.unwrap_err();
    assert_eq!(e.action, RetryAction::Retry { after: None });
    c.method = "NOT A METHOD".to_string();
    let e = call(&client(), &c, SECRET, now()).await.unwrap_err();
    assert_eq!(e.action, RetryAction::DontRetry);
}

#[tokio::test]
async fn a_400_is_not_retried() {
    let app =
        axum::Router::new().fallback(|| async { (axum::http::StatusCode::BAD_REQUEST, "no") });
    let server = serve(app).await;
    let c = RemediationCall {
        audit_id: "x".to_string(),
        action: "restart".to_string(),
        url: format!("http://{}/hook", server.addr),
        method: "POST".to_string(),
        headers: vec![],
        body: "{}".to_string(),
    };
    let e = call(&client(), &c, SECRET, now()).await.unwrap_err();
    assert_eq!(e.action, RetryAction::DontRetry);
}
