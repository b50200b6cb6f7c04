//! The Prometheus client against a real Prometheus 2.42 with backfilled
//! history (see `support/`), and against canned HTTP peers for the answers a
//! proxy in between can give.

mod support;

use std::time::Duration;

use prognos::prom::{ClientSettings, Labels, PromClient, PromError};
use support::{CannedPeer, Prometheus, now_secs, openmetrics_gauges};

const GAUGE: &str = "prognos_test_gauge";
const WITH_NAN: &str = "prognos_test_with_nan";
const SCRAPE: i64 = 300;
/// 3 days of 5-minute samples: 865 including both ends.
const SAMPLES: i64 = 3 * 86_400 / SCRAPE + 1;

fn gauge_a(i: i64) -> f64 {
    i as f64 * 1.5
}

fn gauge_b(i: i64) -> f64 {
    1_000.0 - i as f64
}

/// Every tenth sample of the NaN series is NaN.
fn with_nan(i: i64) -> f64 {
    if i % 10 == 0 { f64::NAN } else { i as f64 }
}

/// First sample time: 3 days and an hour ago, on a 5-minute boundary, so the
/// whole history is in the past.
fn history_start() -> i64 {
    let start = now_secs() - 3 * 86_400 - 3_600;
    start - start.rem_euclid(SCRAPE)
}

fn history(start: i64) -> String {
    let series = |f: fn(i64) -> f64| -> Vec<(i64, f64)> {
        (0..SAMPLES).map(|i| (start + i * SCRAPE, f(i))).collect()
    };
    openmetrics_gauges(&[
        (
            GAUGE,
            &[("instance", "a"), ("job", "shop")],
            series(gauge_a),
        ),
        (
            GAUGE,
            &[("instance", "b"), ("job", "shop")],
            series(gauge_b),
        ),
        (WITH_NAN, &[("instance", "c")], series(with_nan)),
    ])
}

fn client(url: &str, max_retries: u32) -> PromClient {
    PromClient::new(ClientSettings {
        url: url.to_string(),
        timeout: Duration::from_secs(10),
        max_retries,
        ..ClientSettings::default()
    })
    .unwrap()
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn queries_against_backfilled_history() {
    let start = history_start();
    let end = start + (SAMPLES - 1) * SCRAPE;
    let prometheus = Prometheus::start(&history(start), &[]);
    let client = client(&prometheus.url, 3);
    client.ready().await.unwrap();

    // 3 days at 20 s: 12,961 steps per series, more than Prometheus's
    // 11,000, so the client must split the range and merge the answers.
    let step = 20;
    let steps = (end - start) / step + 1;
    assert!(steps > 11_000);
    let result = client.query_range(GAUGE, start, end, step).await.unwrap();
    assert!(!result.partial, "{:?}", result.warnings);
    assert_eq!(result.data.len(), 2);
    for (series, (instance, f)) in result
        .data
        .iter()
        .zip([("a", gauge_a as fn(i64) -> f64), ("b", gauge_b)])
    {
        assert_eq!(
            series.labels,
            labels(&[("__name__", GAUGE), ("instance", instance), ("job", "shop")])
        );
        assert_eq!(series.samples.len() as i64, steps, "instance {instance}");
        for (k, &(t, v)) in series.samples.iter().enumerate() {
            let t_expected = start + k as i64 * step;
            assert_eq!(
                t, t_expected,
                "instance {instance}: gap or repeat at step {k}"
            );
            // The latest sample at or before t.
            assert_eq!(v, f((t - start) / SCRAPE), "instance {instance} at {t}");
        }
    }

    // The same range at 60 s in 5 requests of at most 1,000 steps equals the
    // answer of one request.
    let small_chunks = PromClient::new(ClientSettings {
        url: prometheus.url.clone(),
        max_points_per_query: 1_000,
        ..ClientSettings::default()
    })
    .unwrap();
    let chunked = small_chunks
        .query_range(GAUGE, start, end, 60)
        .await
        .unwrap();
    let whole = client.query_range(GAUGE, start, end, 60).await.unwrap();
    assert_eq!(whole.data[0].samples.len(), 4_321);
    assert_eq!(chunked.data, whole.data);

    // NaN written in OpenMetrics comes back as NaN; nothing is dropped.
    let result = client
        .query_range(WITH_NAN, start, end, SCRAPE)
        .await
        .unwrap();
    let samples = &result.data[0].samples;
    assert_eq!(samples.len() as i64, SAMPLES);
    for (i, &(t, v)) in samples.iter().enumerate() {
        let i = i as i64;
        assert_eq!(t, start + i * SCRAPE);
        let expected = with_nan(i);
        assert!(
            v == expected || (v.is_nan() && expected.is_nan()),
            "{v} at sample {i}"
        );
    }
    assert_eq!(samples.iter().filter(|s| s.1.is_nan()).count(), 87);

    // An instant query returns both label sets with their labels intact.
    let result = client.query(GAUGE, Some(end)).await.unwrap();
    let mut samples = result.data;
    samples.sort_by(|a, b| a.labels.cmp(&b.labels));
    assert_eq!(samples.len(), 2);
    assert_eq!(
        samples[0].labels,
        labels(&[("__name__", GAUGE), ("instance", "a"), ("job", "shop")])
    );
    assert_eq!(samples[1].labels["instance"], "b");
    assert_eq!(samples[0].timestamp, end);
    assert_eq!(samples[0].value, gauge_a(SAMPLES - 1));
    assert_eq!(samples[1].value, gauge_b(SAMPLES - 1));

    // A scalar is one sample without labels.
    let result = client
        .query("scalar(vector(2.5))", Some(end))
        .await
        .unwrap();
    assert_eq!(result.data.len(), 1);
    assert!(result.data[0].labels.is_empty());
    assert_eq!((result.data[0].timestamp, result.data[0].value), (end, 2.5));

    // A PromQL syntax error is a query error that retrying cannot fix.
    let err = client
        .query("rate(prognos_test_gauge[5m]", None)
        .await
        .unwrap_err();
    match &err {
        PromError::Query {
            status,
            error_type,
            message,
            ..
        } => {
            assert_eq!((*status, error_type.as_str()), (400, "bad_data"));
            assert!(message.contains("parse error"), "{message}");
        }
        other => panic!("expected a query error, got {other:?}"),
    }
    assert_eq!(err.kind(), "query_error");
    assert!(!err.retryable());
    let err = client
        .query_range("sum(", start, end, 60)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "query_error");
    assert!(!err.retryable());
}

#[tokio::test]
async fn stopped_prometheus_is_a_retryable_connect_error_until_restarted() {
    let start = history_start();
    let mut prometheus = Prometheus::start(&history(start), &[]);
    let client = client(&prometheus.url, 1);
    let before = client.query(GAUGE, Some(start)).await.unwrap();
    assert_eq!(before.data.len(), 2);

    prometheus.stop();
    let err = client.query(GAUGE, Some(start)).await.unwrap_err();
    assert_eq!(err.kind(), "connect", "{err}");
    assert!(err.retryable());
    let message = err.to_string();
    assert!(message.contains(&prometheus.url), "{message}");
    assert!(
        message.to_lowercase().contains("connection refused"),
        "{message}"
    );
    assert!(client.ready().await.is_err());

    prometheus.restart();
    client.ready().await.unwrap();
    let after = client.query(GAUGE, Some(start)).await.unwrap();
    assert_eq!(after.data, before.data, "same data after restart");
}

#[tokio::test]
async fn html_page_with_200_is_a_clear_error_and_not_retried() {
    let page = "<!DOCTYPE html>\n<html>\n<head><title>Sign in - Corporate SSO</title></head>\n\
                <body><form action=\"/login\">...</form></body>\n</html>\n";
    let peer = CannedPeer::start(200, "text/html; charset=utf-8", page).await;
    let client = client(&peer.url, 3);
    let err = client.query_range(GAUGE, 0, 3_600, 60).await.unwrap_err();
    assert_eq!(err.kind(), "bad_response");
    assert!(!err.retryable());
    let message = err.to_string();
    assert!(
        message.contains(&format!("{}/api/v1/query_range", peer.url)),
        "{message}"
    );
    assert!(message.contains("HTTP 200"), "{message}");
    assert!(
        message.contains("<title>Sign in - Corporate SSO</title>"),
        "{message}"
    );
    assert_eq!(peer.requests(), 1);
}

#[tokio::test]
async fn service_unavailable_is_retried_then_reported_with_its_body() {
    let peer = CannedPeer::start(
        503,
        "text/plain",
        "upstream connect error or disconnect/reset before headers",
    )
    .await;
    let client = client(&peer.url, 2);
    let err = client.query("up", None).await.unwrap_err();
    assert_eq!(err.kind(), "http_5xx");
    assert!(err.retryable());
    assert_eq!(err.status(), Some(503));
    let message = err.to_string();
    assert!(message.contains("HTTP 503"), "{message}");
    assert!(message.contains("upstream connect error"), "{message}");
    assert_eq!(peer.requests(), 3, "first attempt and 2 retries");
}

#[tokio::test]
async fn credentials_are_sent_and_never_printed() {
    let peer = CannedPeer::start(401, "text/plain", "unauthorized").await;
    let bearer = PromClient::new(ClientSettings {
        url: peer.url.clone(),
        bearer_token: Some("t0ken-s3cret".into()),
        ..ClientSettings::default()
    })
    .unwrap();
    let err = bearer.query("up", None).await.unwrap_err();
    assert_eq!(err.kind(), "http_4xx");
    assert!(!err.retryable());
    assert_eq!(peer.requests(), 1);
    assert_eq!(
        peer.last_authorization().as_deref(),
        Some("Bearer t0ken-s3cret")
    );
    assert!(!format!("{err} {err:?} {bearer:?}").contains("s3cret"));

    let basic = PromClient::new(ClientSettings {
        url: peer.url.clone(),
        basic_auth: Some(("alice".into(), "pa55".into())),
        ..ClientSettings::default()
    })
    .unwrap();
    let _ = basic.query("up", None).await;
    // base64("alice:pa55")
    assert_eq!(
        peer.last_authorization().as_deref(),
        Some("Basic YWxpY2U6cGE1NQ==")
    );
    assert!(!format!("{basic:?}").contains("pa55"));
}

#[tokio::test]
async fn a_silent_server_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    // Accept connections and never answer.
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let client = PromClient::new(ClientSettings {
        url,
        timeout: Duration::from_millis(300),
        max_retries: 0,
        ..ClientSettings::default()
    })
    .unwrap();
    let err = client.query("up", None).await.unwrap_err();
    assert_eq!(err.kind(), "timeout", "{err}");
    assert!(err.retryable());
    assert!(err.to_string().contains("timed out after 300 ms"), "{err}");
    silent.abort();
}

#[test]
fn openmetrics_text_is_sorted_grouped_and_escaped() {
    let text = openmetrics_gauges(&[
        (
            "m",
            &[("path", r#"C:\a "b""#)],
            vec![(20, 2.0), (10, f64::NAN), (20, 9.0)],
        ),
        ("n", &[], vec![(10, f64::INFINITY)]),
        ("m", &[("path", "x")], vec![(10, -0.5)]),
    ]);
    assert_eq!(
        text,
        "# TYPE m gauge\n\
         m{path=\"C:\\\\a \\\"b\\\"\"} NaN 10\n\
         m{path=\"C:\\\\a \\\"b\\\"\"} 2.0 20\n\
         m{path=\"x\"} -0.5 10\n\
         # TYPE n gauge\n\
         n +Inf 10\n\
         # EOF\n"
    );
}
