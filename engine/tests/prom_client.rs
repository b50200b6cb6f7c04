//! The Prometheus client against a real Prometheus 2.42 with backfilled
//! history (see `support/`), and against canned HTTP peers for the answers a
//! proxy in between can give.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use prognos::config::Secret;
use prognos::prom::response::{MAX_MESSAGE_CHARS, MAX_WARNING_CHARS, MAX_WARNINGS};
use prognos::prom::{ClientSettings, Labels, PromClient, PromError};
use support::{CannedPeer, Prometheus, now_secs, openmetrics_gauges};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

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
        bearer_token: Some(Secret::new("t0ken-s3cret")),
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
        basic_auth: Some(("alice".into(), Secret::new("pa55"))),
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

/// A peer that answers each request with 200 and a chunked JSON matrix that
/// never ends: chunk after chunk until the client hangs up (or 1 GiB, so a
/// client that never stops fails the test instead of hanging it).
struct EndlessPeer {
    url: String,
    requests: Arc<AtomicUsize>,
    /// Bytes of body sent on each connection, once it is over.
    finished: tokio::sync::mpsc::UnboundedReceiver<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl EndlessPeer {
    const SAFETY_STOP: u64 = 1 << 30;

    async fn start() -> EndlessPeer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let requests_c = Arc::clone(&requests);
        let (done, finished) = tokio::sync::mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            // One connection at a time: the test makes one request per attempt.
            while let Ok((mut stream, _)) = listener.accept().await {
                if read_request(&mut stream).await.is_none() {
                    continue;
                }
                requests_c.fetch_add(1, Ordering::SeqCst);
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                            transfer-encoding: chunked\r\n\r\n";
                if stream.write_all(head.as_bytes()).await.is_err() {
                    continue;
                }
                let mut block =
                    String::from(r#"{"status":"success","data":{"resultType":"matrix","result":["#);
                let series = r#"{"metric":{"job":"x"},"values":[[1,"1"]]},"#;
                while block.len() < 64 * 1024 {
                    block.push_str(series);
                }
                let mut sent = 0u64;
                loop {
                    let chunk = format!("{:x}\r\n{block}\r\n", block.len());
                    if stream.write_all(chunk.as_bytes()).await.is_err() {
                        break;
                    }
                    sent += block.len() as u64;
                    if sent > Self::SAFETY_STOP {
                        break;
                    }
                    block.clear();
                    while block.len() < 64 * 1024 {
                        block.push_str(series);
                    }
                }
                let _ = done.send(sent);
            }
        });
        EndlessPeer {
            url,
            requests,
            finished,
            task,
        }
    }
}

/// Reads one request (headers and a `Content-Length` body); `None` if the
/// client went away.
async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<()> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + length {
                let n = stream.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return Some(());
        }
    }
}

fn capped_client(url: &str, max_response_bytes: u64) -> PromClient {
    PromClient::new(ClientSettings {
        url: url.to_string(),
        timeout: Duration::from_secs(30),
        max_retries: 3,
        max_response_bytes,
        ..ClientSettings::default()
    })
    .unwrap()
}

#[tokio::test]
async fn an_endless_answer_stops_at_the_cap_and_is_not_retried() {
    let peer = EndlessPeer::start().await;
    let client = capped_client(&peer.url, 1 << 20);
    let err = client.query_range(GAUGE, 0, 3_600, 60).await.unwrap_err();
    assert_eq!(err.kind(), "response_too_large", "{err}");
    assert!(!err.retryable());
    assert!(matches!(
        err,
        PromError::ResponseTooLarge {
            limit: 1_048_576,
            ..
        }
    ));
    let message = err.to_string();
    assert!(message.contains("limit of 1048576 bytes"), "{message}");
    assert!(message.contains("/api/v1/query_range"), "{message}");
    assert_eq!(peer.requests.load(Ordering::SeqCst), 1, "not retried");
    // The client hung up: the peer's writes failed soon after the cap, far
    // before its 1 GiB safety stop (loopback buffers hold a few MiB).
    let mut peer = peer;
    let sent = peer.finished.recv().await.unwrap();
    assert!(
        sent < 64 << 20,
        "{sent} bytes sent for a 1 MiB cap: the client kept reading"
    );
    peer.task.abort();
}

#[tokio::test]
async fn a_content_length_past_the_cap_is_refused() {
    let body = format!(
        r#"{{"status":"success","data":{{"resultType":"vector","result":[]}},"padding":"{}"}}"#,
        " ".repeat(2 << 20)
    );
    let peer = CannedPeer::start(200, "application/json", &body).await;
    let err = capped_client(&peer.url, 1 << 20)
        .query("up", None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "response_too_large", "{err}");
    assert_eq!(peer.requests(), 1, "not retried");
    // The same answer under a larger cap is read (and is not Prometheus's
    // shape only because of the unknown field, which is ignored).
    let ok = capped_client(&peer.url, 4 << 20).query("up", None).await;
    assert!(ok.is_ok(), "{ok:?}");
}

#[tokio::test]
async fn sixty_thousand_warnings_are_deduplicated_capped_and_cut() {
    let mut warnings: Vec<String> = (0..30_000)
        .map(|i| format!("remote read failed for shard {i}"))
        .collect();
    warnings.extend(warnings.clone());
    warnings[5] = "w".repeat(100_000);
    let body = serde_json::json!({
        "status": "success",
        "data": {"resultType": "matrix", "result": []},
        "warnings": warnings,
    })
    .to_string();
    let peer = CannedPeer::start(200, "application/json", &body).await;
    let result = client(&peer.url, 0)
        .query_range(GAUGE, 0, 3_600, 60)
        .await
        .unwrap();
    assert!(result.partial);
    assert_eq!(result.warnings.len(), MAX_WARNINGS);
    assert_eq!(result.warnings[0], "remote read failed for shard 0");
    assert!(
        result
            .warnings
            .iter()
            .all(|w| w.chars().count() <= MAX_WARNING_CHARS + 30),
        "every warning cut"
    );
    assert!(
        result.warnings[5].contains("more bytes"),
        "{}",
        result.warnings[5]
    );
    // 30,000 distinct (one replaced by the long one, whose repeat at 30,005
    // is distinct too): 30,001 − 100 left out.
    assert_eq!(result.warnings_left_out, 30_001 - MAX_WARNINGS);
}

#[tokio::test]
async fn a_megabyte_error_from_prometheus_is_cut() {
    let body = serde_json::json!({
        "status": "error",
        "errorType": "execution",
        "error": format!("query processing failed: {}", "e".repeat(1 << 20)),
    })
    .to_string();
    let peer = CannedPeer::start(422, "application/json", &body).await;
    let err = client(&peer.url, 3).query("up", None).await.unwrap_err();
    let PromError::Query {
        message,
        error_type,
        status,
        ..
    } = &err
    else {
        panic!("expected a query error, got {err:.300}")
    };
    assert_eq!((*status, error_type.as_str()), (422, "execution"));
    assert!(
        message.starts_with("query processing failed: eee"),
        "{message:.300}"
    );
    assert!(
        message.chars().count() <= MAX_MESSAGE_CHARS + 30,
        "{message}"
    );
    assert!(err.to_string().len() < 1_000, "{err}");
    assert_eq!(peer.requests(), 1, "422 is not retried");
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
