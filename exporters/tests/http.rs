//! End-to-end: a real axum server instrumented with the layer, real HTTP
//! requests, and a real scrape of `/metrics`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use prognos_exporters::http::{CALLER_HEADER, HttpMetrics, layer};
use prognos_exporters::process;
use prognos_exporters::serve::{OPENMETRICS_CONTENT_TYPE, with_metrics};
use prometheus_client::registry::Registry;
use tokio::sync::Notify;

struct Server {
    base: String,
    client: reqwest::Client,
    /// Signalled by `/slow` once it is running.
    entered: Arc<Notify>,
    /// Lets `/slow` answer.
    release: Arc<Notify>,
}

async fn start() -> Server {
    let mut registry = Registry::default();
    let metrics = HttpMetrics::new(&mut registry);
    process::register(&mut registry);
    let entered = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let (e, r) = (Arc::clone(&entered), Arc::clone(&release));
    let app = Router::new()
        .route("/orders/{id}", get(|| async { "order" }))
        .route(
            "/fail",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        )
        .route(
            "/slow",
            get(move || {
                let (e, r) = (Arc::clone(&e), Arc::clone(&r));
                async move {
                    e.notify_one();
                    r.notified().await;
                    "slow"
                }
            }),
        )
        .route(
            "/panic",
            get(|| async {
                if true {
                    panic!("handler panic (expected in this test)");
                }
                "unreachable"
            }),
        )
        .layer(layer(metrics));
    let app = with_metrics(app, Arc::new(registry));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Server {
        base: format!("http://{addr}"),
        client: reqwest::Client::new(),
        entered,
        release,
    }
}

impl Server {
    async fn get(&self, path: &str, system: bool) -> u16 {
        let mut req = self.client.get(format!("{}{path}", self.base));
        if system {
            req = req.header(CALLER_HEADER, "system");
        }
        req.send().await.unwrap().status().as_u16()
    }

    async fn scrape(&self) -> String {
        let resp = self
            .client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
        assert_eq!(ct, OPENMETRICS_CONTENT_TYPE);
        resp.text().await.unwrap()
    }
}

/// The value of the sample line `series` (name plus labels exactly).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let (s, v) = l.rsplit_once(' ')?;
        (s == series).then(|| v.parse().unwrap())
    })
}

fn requests(route: &str, code: u16, caller: &str) -> String {
    format!(
        "http_requests_total{{route=\"{route}\",method=\"GET\",code=\"{code}\",caller=\"{caller}\"}}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_routes_codes_callers_and_latency() {
    let s = start().await;
    for id in [1, 2, 42] {
        assert_eq!(s.get(&format!("/orders/{id}"), false).await, 200);
    }
    assert_eq!(s.get("/orders/7", true).await, 200);
    assert_eq!(s.get("/orders/8", true).await, 200);
    assert_eq!(s.get("/fail", false).await, 500);
    assert_eq!(s.get("/fail", false).await, 500);
    assert_eq!(s.get("/no/such/path", false).await, 404);

    let text = s.scrape().await;
    let count = |route, code, caller| sample(&text, &requests(route, code, caller));
    assert_eq!(count("/orders/{id}", 200, "user"), Some(3.0), "{text}");
    assert_eq!(count("/orders/{id}", 200, "system"), Some(2.0));
    assert_eq!(count("/fail", 500, "user"), Some(2.0));
    assert_eq!(count("unmatched", 404, "user"), Some(1.0));
    assert!(!text.contains("/orders/42"), "raw path leaked");
    assert!(
        !text.contains("route=\"/metrics\""),
        "scrapes are not traffic"
    );
    assert!(text.contains("# TYPE http_requests counter\n"));

    // Histogram.
    assert!(text.contains("# TYPE http_request_duration_seconds histogram\n"));
    let h = "http_request_duration_seconds";
    let l = "route=\"/orders/{id}\",method=\"GET\"";
    assert_eq!(sample(&text, &format!("{h}_count{{{l}}}")), Some(5.0));
    let sum = sample(&text, &format!("{h}_sum{{{l}}}")).unwrap();
    assert!(sum > 0.0 && sum.is_finite());
    for le in ["0.005", "0.1", "10.0"] {
        assert!(
            sample(&text, &format!("{h}_bucket{{le=\"{le}\",{l}}}")).is_some(),
            "bucket le={le} missing:\n{text}"
        );
    }
    assert_eq!(
        sample(&text, &format!("{h}_bucket{{le=\"+Inf\",{l}}}")),
        Some(5.0)
    );
    let bucket = |le: &str| sample(&text, &format!("{h}_bucket{{le=\"{le}\",{l}}}")).unwrap();
    assert!(bucket("0.005") <= bucket("10.0"));

    // Summary.
    let m = "http_request_duration_summary_seconds";
    assert!(text.contains(&format!("# TYPE {m} summary\n")));
    for q in ["0.5", "0.9", "0.99"] {
        let v = sample(&text, &format!("{m}{{{l},quantile=\"{q}\"}}")).unwrap();
        assert!(v >= 0.0 && v <= sum, "q{q}={v}");
    }
    assert_eq!(sample(&text, &format!("{m}_count{{{l}}}")), Some(5.0));
    let ssum = sample(&text, &format!("{m}_sum{{{l}}}")).unwrap();
    assert!((ssum - sum).abs() < 1e-9);
    let fail = "route=\"/fail\",method=\"GET\"";
    assert_eq!(sample(&text, &format!("{m}_count{{{fail}}}")), Some(2.0));

    // Process metrics ride along; the exposition ends with EOF.
    assert!(sample(&text, "process_resident_memory_bytes").unwrap() > 1e6);
    assert!(sample(&text, "process_cpu_seconds_total").unwrap() >= 0.0);
    assert!(text.ends_with("# EOF\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_while_serving() {
    let s = start().await;
    let text = s.scrape().await;
    assert_eq!(sample(&text, "http_requests_in_flight"), Some(0.0));

    let url = format!("{}/slow", s.base);
    let client = s.client.clone();
    let pending = tokio::spawn(async move { client.get(url).send().await.unwrap().status() });
    s.entered.notified().await;
    let text = s.scrape().await;
    assert_eq!(
        sample(&text, "http_requests_in_flight"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(sample(&text, &requests("/slow", 200, "user")), None);

    s.release.notify_one();
    assert_eq!(pending.await.unwrap(), 200);
    let text = s.scrape().await;
    assert_eq!(sample(&text, "http_requests_in_flight"), Some(0.0));
    assert_eq!(sample(&text, &requests("/slow", 200, "user")), Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panics_count_as_500_and_leave_flight() {
    let s = start().await;
    let result = s.client.get(format!("{}/panic", s.base)).send().await;
    // The connection is dropped: the panic is not turned into a response.
    assert!(result.is_err());
    let text = s.scrape().await;
    assert_eq!(
        sample(&text, &requests("/panic", 500, "user")),
        Some(1.0),
        "{text}"
    );
    assert_eq!(sample(&text, "http_requests_in_flight"), Some(0.0));
}
