//! End to end: the exporter binary against a real S3-compatible server
//! (moto, on loopback), scraped over HTTP like Prometheus would.
//!
//! moto accepts any credentials, so a wrong-credentials case cannot be
//! provoked here; the server-down case covers "listing fails, last good
//! values stay" instead.

mod support;

use std::net::TcpListener;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::exporter::{Exporter, run_to_exit};
use support::moto::Moto;
use support::s3::{ACCESS_KEY_ID, TestBucket};

/// Upper bound for anything that should happen within a few refreshes.
const DEADLINE: Duration = Duration::from_secs(60);

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs_f64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sizes_and_counts_are_exact_across_pages() {
    let moto = Moto::start().await;
    let bucket = TestBucket::create(&moto.url, "paged-bucket").await;
    // 1,005 keys: two ListObjectsV2 pages of at most 1000. Sizes vary so a
    // dropped or doubled page changes the sum; a few keys need URL encoding.
    let mut objects: Vec<(String, usize)> = (0..1000)
        .map(|i| (format!("objects/{i:05}"), (i * 37) % 211 + 1))
        .collect();
    objects.push(("with space".to_owned(), 10));
    objects.push(("plus+and&amp".to_owned(), 20));
    objects.push(("unicodé/ключ".to_owned(), 30));
    objects.push(("deep/a/b/c/d.txt".to_owned(), 4096));
    objects.push(("empty".to_owned(), 0));
    let expected_bytes: usize = objects.iter().map(|(_, size)| size).sum();
    let expected_objects = objects.len();
    assert_eq!(expected_objects, 1005);
    bucket.put_all(objects).await;

    let started = unix_now();
    let exporter = Exporter::start(&[
        "--endpoint",
        &moto.url,
        "--bucket",
        "paged-bucket",
        "--interval",
        "1h",
    ])
    .await;
    let metrics = exporter
        .wait_for("the first listing", DEADLINE, |m| {
            m.bucket("s3_bucket_up", "paged-bucket").is_some()
        })
        .await;

    assert_eq!(
        metrics.bucket("s3_bucket_up", "paged-bucket"),
        Some(1.0),
        "{}\n{}",
        metrics.text,
        exporter.log()
    );
    assert_eq!(
        metrics.bucket("s3_bucket_objects", "paged-bucket"),
        Some(expected_objects as f64)
    );
    assert_eq!(
        metrics.bucket("s3_bucket_size_bytes", "paged-bucket"),
        Some(expected_bytes as f64)
    );
    // The value is written as an exact integer, not in float notation.
    assert!(
        metrics.text.lines().any(|line| line
            == format!("s3_bucket_size_bytes{{bucket=\"paged-bucket\"}} {expected_bytes}")),
        "{}",
        metrics.text
    );
    let last_success = metrics
        .bucket("s3_bucket_last_success_timestamp_seconds", "paged-bucket")
        .expect("last success timestamp");
    assert!(
        (started..=unix_now()).contains(&last_success),
        "{last_success} not between {started} and now"
    );
    let took = metrics
        .bucket("s3_bucket_list_duration_seconds", "paged-bucket")
        .expect("list duration");
    assert!(took > 0.0 && took < DEADLINE.as_secs_f64(), "{took}");
    assert!(!metrics.has_bucket_series("s3_bucket_list_errors_total", "paged-bucket"));

    for (family, kind) in [
        ("s3_bucket_size_bytes", "gauge"),
        ("s3_bucket_objects", "gauge"),
        ("s3_bucket_last_success_timestamp_seconds", "gauge"),
        ("s3_bucket_list_duration_seconds", "gauge"),
        ("s3_bucket_up", "gauge"),
    ] {
        assert_eq!(
            metrics.types.get(family).map(String::as_str),
            Some(kind),
            "{family}"
        );
    }

    // The second page was asked for with the token of the first.
    let log = moto.log();
    let list_requests: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("GET /paged-bucket/?") && l.contains("list-type=2"))
        .collect();
    assert_eq!(list_requests.len(), 2, "{list_requests:#?}");
    assert!(list_requests[1].contains("continuation-token="));
    assert!(list_requests.iter().all(|l| l.contains("max-keys=1000")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn added_objects_show_after_the_next_refresh() {
    let moto = Moto::start().await;
    let bucket = TestBucket::create(&moto.url, "growing-bucket").await;
    bucket.put("first", 100).await;
    bucket.put("second", 23).await;

    let exporter = Exporter::start(&[
        "--endpoint",
        &moto.url,
        "--bucket",
        "growing-bucket",
        "--interval",
        "500ms",
    ])
    .await;
    let before = exporter
        .wait_for("the first listing", DEADLINE, |m| {
            m.bucket("s3_bucket_objects", "growing-bucket") == Some(2.0)
        })
        .await;
    assert_eq!(
        before.bucket("s3_bucket_size_bytes", "growing-bucket"),
        Some(123.0)
    );
    let first_success = before
        .bucket("s3_bucket_last_success_timestamp_seconds", "growing-bucket")
        .expect("timestamp");

    bucket.put("third", 1000).await;
    bucket.put("nested/fourth", 4).await;
    let after = exporter
        .wait_for("the added objects", DEADLINE, |m| {
            m.bucket("s3_bucket_objects", "growing-bucket") == Some(4.0)
        })
        .await;
    assert_eq!(
        after.bucket("s3_bucket_size_bytes", "growing-bucket"),
        Some(1127.0)
    );
    let later_success = after
        .bucket("s3_bucket_last_success_timestamp_seconds", "growing-bucket")
        .expect("timestamp");
    assert!(later_success > first_success);
    assert_eq!(after.bucket("s3_bucket_up", "growing-bucket"), Some(1.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefix_counts_only_matching_keys() {
    let moto = Moto::start().await;
    let bucket = TestBucket::create(&moto.url, "mixed-bucket").await;
    bucket.put("logs/a", 5).await;
    bucket.put("logs/b/c", 7).await;
    bucket.put("logsX", 1000).await;
    bucket.put("data/logs/d", 2000).await;

    let exporter = Exporter::start(&[
        "--endpoint",
        &moto.url,
        "--bucket",
        "mixed-bucket",
        "--prefix",
        "logs/",
        "--interval",
        "1h",
    ])
    .await;
    let metrics = exporter
        .wait_for("the first listing", DEADLINE, |m| {
            m.bucket("s3_bucket_up", "mixed-bucket").is_some()
        })
        .await;
    assert_eq!(
        metrics.bucket("s3_bucket_objects", "mixed-bucket"),
        Some(2.0)
    );
    assert_eq!(
        metrics.bucket("s3_bucket_size_bytes", "mixed-bucket"),
        Some(12.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_counts_http_404_and_exports_no_size() {
    let moto = Moto::start().await;
    let bucket = TestBucket::create(&moto.url, "present-bucket").await;
    bucket.put("one", 11).await;

    let exporter = Exporter::start(&[
        "--endpoint",
        &moto.url,
        "--bucket",
        "present-bucket",
        "--bucket",
        "absent-bucket",
        "--interval",
        "500ms",
    ])
    .await;
    let metrics = exporter
        .wait_for("two failed listings", DEADLINE, |m| {
            m.errors("absent-bucket", "http_404") >= 2.0
        })
        .await;

    assert_eq!(metrics.bucket("s3_bucket_up", "absent-bucket"), Some(0.0));
    assert_eq!(
        metrics
            .types
            .get("s3_bucket_list_errors")
            .map(String::as_str),
        Some("counter")
    );
    for name in [
        "s3_bucket_size_bytes",
        "s3_bucket_objects",
        "s3_bucket_last_success_timestamp_seconds",
        "s3_bucket_list_duration_seconds",
    ] {
        assert!(
            !metrics.has_bucket_series(name, "absent-bucket"),
            "{name} for the missing bucket:\n{}",
            metrics.text
        );
    }
    // The other bucket is not affected.
    assert_eq!(metrics.bucket("s3_bucket_up", "present-bucket"), Some(1.0));
    assert_eq!(
        metrics.bucket("s3_bucket_size_bytes", "present-bucket"),
        Some(11.0)
    );
    assert!(!metrics.has_bucket_series("s3_bucket_list_errors_total", "present-bucket"));
    let log = exporter.log();
    assert!(
        log.contains("NoSuchBucket") && log.contains("absent-bucket"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_down_counts_errors_and_keeps_the_last_good_values() {
    let mut moto = Moto::start().await;
    let bucket = TestBucket::create(&moto.url, "steady-bucket").await;
    bucket
        .put_all((0..20).map(|i| (format!("k{i}"), 50 + i)).collect())
        .await;
    let expected_bytes: usize = (0..20).map(|i| 50 + i).sum();

    let exporter = Exporter::start(&[
        "--endpoint",
        &moto.url,
        "--bucket",
        "steady-bucket",
        "--interval",
        "500ms",
        "--timeout",
        "2s",
    ])
    .await;
    exporter
        .wait_for("the first listing", DEADLINE, |m| {
            m.bucket("s3_bucket_objects", "steady-bucket") == Some(20.0)
        })
        .await;

    moto.stop();
    let first_failure = exporter
        .wait_for("a failed listing", DEADLINE, |m| {
            m.bucket("s3_bucket_up", "steady-bucket") == Some(0.0)
        })
        .await;
    let last_success = first_failure
        .bucket("s3_bucket_last_success_timestamp_seconds", "steady-bucket")
        .expect("the timestamp of the last success stays");
    let connect_errors = first_failure.errors("steady-bucket", "connect");

    let later = exporter
        .wait_for("two more connect errors", DEADLINE, |m| {
            m.errors("steady-bucket", "connect") >= connect_errors + 2.0
        })
        .await;
    assert_eq!(
        later.bucket("s3_bucket_size_bytes", "steady-bucket"),
        Some(expected_bytes as f64),
        "the size keeps the last good value"
    );
    assert_eq!(
        later.bucket("s3_bucket_objects", "steady-bucket"),
        Some(20.0)
    );
    assert_eq!(
        later.bucket("s3_bucket_last_success_timestamp_seconds", "steady-bucket"),
        Some(last_success)
    );
    assert_eq!(later.bucket("s3_bucket_up", "steady-bucket"), Some(0.0));
    let log = exporter.log();
    assert!(log.contains("keeping the last good values"), "{log}");
    assert!(
        !log.contains(ACCESS_KEY_ID),
        "the presigned URL (key id) leaked into the log:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_token_is_signed_into_the_requests() {
    let moto = Moto::start().await;
    let bucket = TestBucket::create(&moto.url, "token-bucket").await;
    bucket.put("a", 3).await;
    let token = "prognos-session-token-42";
    let exporter = Exporter::start_with_env(
        &[
            "--endpoint",
            &moto.url,
            "--bucket",
            "token-bucket",
            "--interval",
            "1h",
        ],
        &[("AWS_SESSION_TOKEN", token)],
    )
    .await;
    let metrics = exporter
        .wait_for("the first listing", DEADLINE, |m| {
            m.bucket("s3_bucket_up", "token-bucket").is_some()
        })
        .await;
    assert_eq!(
        metrics.bucket("s3_bucket_size_bytes", "token-bucket"),
        Some(3.0)
    );
    let log = moto.log();
    let list = log
        .lines()
        .find(|l| l.contains("GET /token-bucket/?"))
        .unwrap_or_else(|| panic!("no listing in the moto log:\n{log}"));
    assert!(
        list.contains(&format!("X-Amz-Security-Token={token}")),
        "{list}"
    );
    assert!(
        list.contains(&format!("X-Amz-Credential={ACCESS_KEY_ID}/")),
        "{list}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_that_never_answers_counts_timeouts() {
    // A peer that accepts connections and never sends a byte.
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding a silent peer");
    let endpoint = format!("http://{}", listener.local_addr().expect("address"));
    listener.set_nonblocking(true).expect("non-blocking");
    let silent = std::thread::spawn(move || {
        let mut held = Vec::new();
        let until = Instant::now() + DEADLINE;
        while Instant::now() < until && held.len() < 100 {
            match listener.accept() {
                Ok((stream, _)) => held.push(stream),
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    });

    let exporter = Exporter::start(&[
        "--endpoint",
        &endpoint,
        "--bucket",
        "slow-bucket",
        "--interval",
        "200ms",
        "--timeout",
        "300ms",
    ])
    .await;
    let metrics = exporter
        .wait_for("two timeouts", DEADLINE, |m| {
            m.errors("slow-bucket", "timeout") >= 2.0
        })
        .await;
    assert_eq!(metrics.bucket("s3_bucket_up", "slow-bucket"), Some(0.0));
    assert!(!metrics.has_bucket_series("s3_bucket_size_bytes", "slow-bucket"));
    let log = exporter.log();
    assert!(log.contains("reason=\"timeout\""), "{log}");
    assert!(!log.contains(ACCESS_KEY_ID), "the key id leaked:\n{log}");
    drop(exporter);
    drop(silent);
}

#[test]
fn bad_flags_exit_2_saying_what_was_expected() {
    for (args, expected) in [
        (&["--endpoint", "http://127.0.0.1:9000"][..], "--bucket"),
        (
            &["--endpoint", "127.0.0.1:9000", "--bucket", "b"][..],
            "expected an http or https URL",
        ),
        (
            &["--bucket", "b", "--interval", "10"][..],
            "expected a positive whole number with a unit ms, s, m or h",
        ),
        (
            &["--bucket", "b", "--bucket", "b"][..],
            "is given more than once",
        ),
        (
            &["--bucket", "b", "--listen", "nowhere"][..],
            "expected IP:PORT",
        ),
    ] {
        let output = run_to_exit(args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn a_taken_listen_address_exits_1() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("binding");
    let addr = taken.local_addr().expect("address").to_string();
    let output = run_to_exit(&[
        "--endpoint",
        "http://127.0.0.1:9",
        "--bucket",
        "b",
        "--listen",
        &addr,
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("could not listen on {addr}")),
        "{stderr}"
    );
}
