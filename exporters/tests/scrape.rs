//! A real Prometheus (Debian's, started on loopback) scrapes an instrumented
//! axum service: the counter, histogram, summary and process metrics all
//! arrive and can be queried — the exposition is what Prometheus parses, not
//! just what we think it looks like.

#[allow(dead_code)]
#[path = "../../engine/tests/support/prometheus.rs"]
mod prometheus;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use prognos_exporters::http::{CALLER_HEADER, HttpMetrics, layer};
use prognos_exporters::process;
use prognos_exporters::serve::with_metrics;
use prometheus_client::registry::Registry;

async fn query(prom: &str, q: &str) -> Vec<serde_json::Value> {
    let v: serde_json::Value = reqwest::Client::new()
        .get(format!("{prom}/api/v1/query"))
        .query(&[("query", q)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_every_metric_kind() {
    let mut registry = Registry::default();
    let metrics = HttpMetrics::new(&mut registry);
    process::register(&mut registry);
    let app = Router::new()
        .route("/orders/{id}", get(|| async { "order" }))
        .route(
            "/fail",
            get(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "boom") }),
        )
        .layer(layer(metrics));
    let app = with_metrics(app, Arc::new(registry));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let http = reqwest::Client::new();
    for i in 0..20 {
        http.get(format!("http://{addr}/orders/{i}"))
            .send()
            .await
            .unwrap();
    }
    for _ in 0..3 {
        http.get(format!("http://{addr}/fail"))
            .header(CALLER_HEADER, "system")
            .send()
            .await
            .unwrap();
    }

    let prom = prometheus::Prometheus::start("", &[addr.to_string()]);
    let mut found = Vec::new();
    for _ in 0..100 {
        found = query(
            &prom.url,
            r#"http_request_duration_summary_seconds{route="/orders/{id}",quantile="0.5"}"#,
        )
        .await;
        if !found.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(found.len(), 1, "the summary's median was not scraped");
    let total = query(
        &prom.url,
        r#"http_requests_total{route="/orders/{id}",code="200"}"#,
    )
    .await;
    assert_eq!(total[0]["value"][1], "20");
    let fails = query(
        &prom.url,
        r#"http_requests_total{code="500",caller="system"}"#,
    )
    .await;
    assert_eq!(fails[0]["value"][1], "3");
    let count = query(&prom.url, "http_request_duration_summary_seconds_count").await;
    assert!(!count.is_empty());
    let buckets = query(&prom.url, "http_request_duration_seconds_bucket").await;
    assert!(buckets.len() >= 10, "{buckets:?}");
    let rss = query(&prom.url, "process_resident_memory_bytes").await;
    let rss: f64 = rss[0]["value"][1].as_str().unwrap().parse().unwrap();
    assert!(rss > 1e6);
    let up = query(&prom.url, "up").await;
    assert_eq!(up[0]["value"][1], "1");
}
