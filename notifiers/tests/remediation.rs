//! Signed remediation calls end to end: `remediation::call` against the
//! verifying `receiver::router` (and the Python example verifier) on a
//! loopback port, the attacks the receiver must turn away, and errors that
//! name no secret.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use prognos_notifiers::receiver::{Verified, router};
use prognos_notifiers::remediation::{IDEMPOTENCY_HEADER, RemediationCall, call};
use prognos_notifiers::retry::RetryAction;
use prognos_notifiers::signature::{
    SIGNATURE_HEADER, SignedRequest, TIMESTAMP_HEADER, sign, signature_header,
};

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

/// A receiver that records what its handler was given.
async fn verifying_receiver() -> (Server, Arc<Mutex<Vec<Verified>>>) {
    let seen: Arc<Mutex<Vec<Verified>>> = Arc::default();
    let log = Arc::clone(&seen);
    let server = serve(router(SECRET.to_vec(), 300, move |v: Verified| {
        log.lock().unwrap().push(v.clone());
        serde_json::json!({"ok": true, "path": v.path})
    }))
    .await;
    (server, seen)
}

/// The signature of a POST of `body` to `path` with `key` at `ts`.
fn signed(secret: &[u8], path: &str, ts: i64, key: &str, body: &str) -> String {
    sign(
        secret,
        &SignedRequest {
            method: "POST",
            path,
            timestamp: ts,
            idempotency_key: key,
            body: body.as_bytes(),
        },
    )
}

#[tokio::test]
async fn signed_calls_pass_and_attacks_are_rejected() {
    let (server, seen) = verifying_receiver().await;
    let url = format!("http://{}/restart?service=mes", server.addr);
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
        assert_eq!(got[0].method, "POST");
        assert_eq!(got[0].path, "/restart?service=mes");
        assert_eq!(got[0].idempotency_key, "a1b2c3");
        assert_eq!(got[0].timestamp, t);
        assert_eq!(got[0].body, body.as_bytes());
    }

    let path = "/restart?service=mes";
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
    let r = raw(
        signed(b"guess", path, t, "k-forged", body),
        t,
        "k-forged",
        body,
    )
    .await
    .unwrap();
    assert_eq!(status(r), 401);
    // Altered body under the original signature.
    let altered = r#"{"action":"drop_database","host":"node-1"}"#;
    let r = raw(
        signed(SECRET, path, t, "k-altered", body),
        t,
        "k-altered",
        altered,
    )
    .await
    .unwrap();
    assert_eq!(status(r), 401);
    // The exact same request again: replayed (same signature and key).
    let r = raw(signed(SECRET, path, t, "a1b2c3", body), t, "a1b2c3", body)
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 409);
    assert_eq!(r.text().await.unwrap(), "replayed");
    // Same idempotency key, freshly signed: still a replay.
    let r = raw(
        signed(SECRET, path, t + 1, "a1b2c3", body),
        t + 1,
        "a1b2c3",
        body,
    )
    .await
    .unwrap();
    assert_eq!(status(r), 409);
    // Stale: correctly signed ten minutes ago.
    let old = t - 600;
    let r = raw(
        signed(SECRET, path, old, "k-stale", body),
        old,
        "k-stale",
        body,
    )
    .await
    .unwrap();
    assert_eq!(status(r), 401);
    // Missing headers.
    let r = http.post(&url).body(body).send().await.unwrap();
    assert_eq!(status(r), 400);
    let r = http
        .post(&url)
        .header(SIGNATURE_HEADER, signed(SECRET, path, t, "k", body))
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

/// Issue 9, finding 3: a captured call re-spelled (upper-case hex), without
/// its idempotency key, or sent to another path must not run again.
#[tokio::test]
async fn a_captured_call_cannot_be_replayed_in_another_form() {
    let (server, seen) = verifying_receiver().await;
    let http = client();
    let body = r#"{"action":"restart"}"#;
    let t = now();
    let sig = signed(SECRET, "/restart", t, "key-1", body);
    let post = |path: &str, sig: &str, key: Option<&str>| {
        let mut r = http
            .post(format!("http://{}{path}", server.addr))
            .header(SIGNATURE_HEADER, sig)
            .header(TIMESTAMP_HEADER, t.to_string())
            .body(body);
        if let Some(k) = key {
            r = r.header(IDEMPOTENCY_HEADER, k);
        }
        r.send()
    };
    let status = |r: reqwest::Response| r.status().as_u16();
    assert_eq!(
        status(post("/restart", &sig, Some("key-1")).await.unwrap()),
        200
    );

    // The same signature spelled in upper case: the same signature, a replay.
    let upper = format!("v1={}", sig[3..].to_uppercase());
    assert_ne!(upper, sig);
    assert_eq!(
        status(post("/restart", &upper, Some("key-1")).await.unwrap()),
        409
    );
    // Without the idempotency key: refused outright.
    let r = post("/restart", &upper, None).await.unwrap();
    assert_eq!(r.status().as_u16(), 400);
    assert!(r.text().await.unwrap().contains(IDEMPOTENCY_HEADER));
    // With another key: the key is signed.
    assert_eq!(
        status(post("/restart", &sig, Some("key-2")).await.unwrap()),
        401
    );
    // On another path (or query): the path is signed.
    for path in ["/scale", "/restart?replica=9", "/restart/"] {
        assert_eq!(
            status(post(path, &sig, Some("key-1")).await.unwrap()),
            401,
            "{path}"
        );
    }
    // Another method.
    let r = http
        .put(format!("http://{}/restart", server.addr))
        .header(SIGNATURE_HEADER, &sig)
        .header(TIMESTAMP_HEADER, t.to_string())
        .header(IDEMPOTENCY_HEADER, "key-1")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(status(r), 401);
    // A timestamp spelled differently (leading zero, sign): not the signed one.
    for ts in [format!("0{t}"), format!("+{t}")] {
        let r = http
            .post(format!("http://{}/restart", server.addr))
            .header(SIGNATURE_HEADER, &sig)
            .header(TIMESTAMP_HEADER, ts)
            .header(IDEMPOTENCY_HEADER, "key-1")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(status(r), 400);
    }
    assert_eq!(seen.lock().unwrap().len(), 1, "only the original ran");
}

/// A sender rotating its secret signs with both; a receiver holding either accepts.
#[tokio::test]
async fn a_call_signed_with_two_secrets_passes_a_receiver_holding_one() {
    let (server, seen) = verifying_receiver().await;
    let body = "{}";
    let t = now();
    let header = signature_header(
        &[b"old secret", SECRET],
        &SignedRequest {
            method: "POST",
            path: "/hook",
            timestamp: t,
            idempotency_key: "rot-1",
            body: body.as_bytes(),
        },
    );
    let r = client()
        .post(format!("http://{}/hook", server.addr))
        .header(SIGNATURE_HEADER, header)
        .header(TIMESTAMP_HEADER, t.to_string())
        .header(IDEMPOTENCY_HEADER, "rot-1")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(seen.lock().unwrap().len(), 1);
}

const CANARIES: [&str; 5] = [
    "CANARY-USER",
    "CANARY-PASS",
    "CANARY-QUERYKEY",
    "CANARY-BEARER",
    "CANARY-APIKEY",
];

fn keyed_call(authority: &str) -> RemediationCall {
    RemediationCall {
        audit_id: "k1".to_string(),
        action: "keyed-action".to_string(),
        url: format!(
            "http://CANARY-USER:CANARY-PASS@{authority}/hook?api_key=CANARY-QUERYKEY&team=ops"
        ),
        method: "POST".to_string(),
        headers: vec![
            (
                "Authorization".to_string(),
                "Bearer CANARY-BEARER".to_string(),
            ),
            ("X-Api-Key".to_string(), "CANARY-APIKEY".to_string()),
        ],
        body: "{}".to_string(),
    }
}

/// Issue 9, finding 1: a failed call's error (logged, kept in the outbox's
/// `last_error` and the audit record's result) names the URL redacted.
#[tokio::test]
async fn failed_calls_name_no_secret() {
    let app = axum::Router::new()
        .fallback(|| async { (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "boom") });
    let server = serve(app).await;
    let e = call(
        &client(),
        &keyed_call(&server.addr.to_string()),
        SECRET,
        now(),
    )
    .await
    .unwrap_err();
    assert!(
        e.message.contains("HTTP 500") && e.message.contains("boom"),
        "{e}"
    );
    assert!(
        e.message
            .contains("keyed-action to http://REDACTED@127.0.0.1"),
        "{e}"
    );
    // A connection refused, and an unparsable URL, the same.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let refused = call(&client(), &keyed_call(&closed.to_string()), SECRET, now())
        .await
        .unwrap_err();
    let bad = call(&client(), &keyed_call("127.0.0.1:99999"), SECRET, now())
        .await
        .unwrap_err();
    for message in [&e.message, &refused.message, &bad.message] {
        for c in CANARIES {
            assert!(!message.contains(c), "{c} in {message}");
        }
    }
    assert_eq!(bad.action, RetryAction::DontRetry);
    // The outbox entry's Debug (logged by tests and tools) hides them too.
    let debug = format!("{:?}", keyed_call("h"));
    for c in CANARIES {
        assert!(!debug.contains(c), "{c} in {debug}");
    }
}

/// A huge error answer is read only up to a bound, and quoted shorter still.
#[tokio::test]
async fn a_huge_error_answer_is_cut() {
    let app = axum::Router::new()
        .fallback(|| async { (axum::http::StatusCode::BAD_GATEWAY, "x".repeat(10_000_000)) });
    let server = serve(app).await;
    let mut c = keyed_call(&server.addr.to_string());
    c.url = format!("http://{}/hook", server.addr);
    let e = call(&client(), &c, SECRET, now()).await.unwrap_err();
    assert!(e.message.len() < 400, "{} bytes", e.message.len());
    assert!(e.message.contains("HTTP 502"), "{e}");
}

/// A request as a receiver saw it: method, path and query, headers, body.
type Captured = (String, String, Vec<(String, String)>, String);

/// The Python verifier shipped in `examples/verify_remediation.py` (and shown
/// in the README) accepts what `call` really sends, and rejects it altered.
#[tokio::test]
async fn the_python_verifier_accepts_a_real_call_and_rejects_an_altered_one() {
    let captured: Arc<Mutex<Vec<Captured>>> = Arc::default();
    let log = Arc::clone(&captured);
    let app = axum::Router::new().fallback(
        move |method: axum::http::Method,
              uri: axum::http::Uri,
              headers: axum::http::HeaderMap,
              body: String| {
            let log = Arc::clone(&log);
            async move {
                let headers = headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                    .collect();
                let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
                log.lock()
                    .unwrap()
                    .push((method.to_string(), path, headers, body));
                "ok"
            }
        },
    );
    let server = serve(app).await;
    let c = RemediationCall {
        audit_id: "0123456789abcdef0123456789abcdef".to_string(),
        action: "restart".to_string(),
        url: format!("http://{}/restart?service=mes%20api&x=1", server.addr),
        method: "PUT".to_string(),
        headers: vec![],
        body: "{\"service\":\"mes-api\",\"note\":\"é\\n\"}".to_string(),
    };
    let t = now();
    assert_eq!(call(&client(), &c, SECRET, t).await, Ok(200));
    let (method, path, headers, body) = captured.lock().unwrap().remove(0);
    assert_eq!(path, "/restart?service=mes%20api&x=1");
    // Header names as a WSGI framework would present them.
    let canonical_name = |k: &str| {
        [SIGNATURE_HEADER, TIMESTAMP_HEADER, IDEMPOTENCY_HEADER]
            .into_iter()
            .find(|n| n.eq_ignore_ascii_case(k))
            .unwrap_or(k)
            .to_string()
    };
    let headers: serde_json::Map<String, serde_json::Value> = headers
        .into_iter()
        .map(|(k, v)| (canonical_name(&k), serde_json::Value::String(v)))
        .collect();
    let python = |secret: &str, method: &str, path: &str, body: &str| {
        let input = serde_json::json!({
            "secret": secret, "method": method, "path": path,
            "headers": headers, "body": body, "now": t,
        });
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/verify_remediation.py"
        );
        let mut child = std::process::Command::new("python3")
            .arg(script)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs the example verifier");
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.to_string().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
        )
    };
    let secret = std::str::from_utf8(SECRET).unwrap();
    assert_eq!(
        python(secret, &method, &path, &body),
        (true, "verified".to_string())
    );
    for (s, m, p, b) in [
        (
            "another secret",
            method.as_str(),
            path.as_str(),
            body.as_str(),
        ),
        (secret, "POST", &path, &body),
        (secret, &method, "/restart?service=mes%20api&x=2", &body),
        (secret, &method, &path, "{}"),
    ] {
        assert_eq!(
            python(s, m, p, b),
            (false, "rejected".to_string()),
            "{m} {p} {b}"
        );
    }
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
