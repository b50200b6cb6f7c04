//! Filling buckets over the S3 API (signed with rusty-s3, sent with reqwest),
//! the way any client would.

use std::sync::Arc;
use std::time::Duration;

use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use tokio::task::JoinSet;

/// Access key id the tests sign with (moto accepts any).
pub const ACCESS_KEY_ID: &str = "AKIDPROGNOSTEST";
/// Secret the tests sign with.
pub const SECRET_ACCESS_KEY: &str = "prognos-test-secret";
/// Region the tests sign for.
pub const REGION: &str = "us-east-1";
/// PUTs in flight at once when filling a bucket.
const PARALLEL_PUTS: usize = 8;
const SIGN_FOR: Duration = Duration::from_secs(600);

/// A client for one bucket of an S3 endpoint.
#[derive(Debug, Clone)]
pub struct TestBucket {
    bucket: Arc<Bucket>,
    credentials: Arc<Credentials>,
    http: reqwest::Client,
}

impl TestBucket {
    /// Creates `name` on `endpoint` (path-style) and returns a client for it.
    pub async fn create(endpoint: &str, name: &str) -> TestBucket {
        let bucket = Bucket::new(
            endpoint.parse().expect("endpoint URL"),
            UrlStyle::Path,
            name.to_owned(),
            REGION,
        )
        .expect("bucket URL");
        let this = TestBucket {
            bucket: Arc::new(bucket),
            credentials: Arc::new(Credentials::new(ACCESS_KEY_ID, SECRET_ACCESS_KEY)),
            http: reqwest::Client::new(),
        };
        let create = this.bucket.create_bucket(&this.credentials);
        let url = create.sign(SIGN_FOR);
        // moto answers 411 to a PUT with a query string and no
        // Content-Length, which an empty body does not get by itself.
        let body = create.body();
        let response = this
            .http
            .put(url)
            .header(reqwest::header::CONTENT_LENGTH, body.len())
            .body(body)
            .send()
            .await
            .expect("CreateBucket");
        let status = response.status();
        assert!(
            status.is_success(),
            "CreateBucket {name}: {status} {}",
            response.text().await.unwrap_or_default()
        );
        this
    }

    /// Puts `key` with `size` bytes of content.
    pub async fn put(&self, key: &str, size: usize) {
        put(&self.http, &self.bucket, &self.credentials, key, size).await;
    }

    /// Puts all `objects` (key, size), several at once.
    pub async fn put_all(&self, objects: Vec<(String, usize)>) {
        let mut tasks = JoinSet::new();
        let mut pending = objects.into_iter();
        loop {
            while tasks.len() < PARALLEL_PUTS {
                let Some((key, size)) = pending.next() else {
                    break;
                };
                let this = self.clone();
                tasks.spawn(async move { this.put(&key, size).await });
            }
            match tasks.join_next().await {
                Some(joined) => joined.expect("a PUT task panicked"),
                None => return,
            }
        }
    }
}

async fn put(
    http: &reqwest::Client,
    bucket: &Bucket,
    credentials: &Credentials,
    key: &str,
    size: usize,
) {
    let url = bucket.put_object(Some(credentials), key).sign(SIGN_FOR);
    let response = http
        .put(url)
        .header(reqwest::header::CONTENT_LENGTH, size)
        .body(vec![b'x'; size])
        .send()
        .await
        .unwrap_or_else(|e| panic!("PUT {key}: {e}"));
    let status = response.status();
    assert!(
        status.is_success(),
        "PUT {key}: {status} {}",
        response.text().await.unwrap_or_default()
    );
}
