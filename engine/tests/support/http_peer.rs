//! A tiny HTTP server on loopback that answers every request with one
//! canned response: a proxy's HTML login page with 200, a bare 503. It is a
//! peer of the client under test, not a mock of our code.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;

/// A running canned server; stops when dropped.
#[derive(Debug)]
pub struct CannedPeer {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    requests: Arc<AtomicUsize>,
    authorization: Arc<Mutex<Option<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl CannedPeer {
    /// Serves `status` with `content_type` and `body` to every request, on a
    /// free loopback port. Call inside a tokio runtime.
    pub async fn start(status: u16, content_type: &str, body: &str) -> CannedPeer {
        let requests = Arc::new(AtomicUsize::new(0));
        let status = StatusCode::from_u16(status).expect("a valid HTTP status");
        let content_type = content_type.to_string();
        let body = body.to_string();
        let authorization = Arc::new(Mutex::new(None));
        let counter = Arc::clone(&requests);
        let seen_authorization = Arc::clone(&authorization);
        let app = Router::new().fallback(move |headers: HeaderMap| {
            counter.fetch_add(1, Ordering::SeqCst);
            *seen_authorization.lock().unwrap() = headers
                .get(header::AUTHORIZATION)
                .and_then(|value| value.to_str().ok())
                .map(str::to_string);
            let response = (
                status,
                [(header::CONTENT_TYPE, content_type.clone())],
                body.clone(),
            );
            async move { response.into_response() }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding 127.0.0.1:0");
        let url = format!("http://{}", listener.local_addr().expect("local address"));
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("serving canned responses");
        });
        CannedPeer {
            url,
            requests,
            authorization,
            task,
        }
    }

    /// How many requests it has answered.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// The `Authorization` header of the last request, if it had one.
    pub fn last_authorization(&self) -> Option<String> {
        self.authorization.lock().unwrap().clone()
    }
}

impl Drop for CannedPeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
