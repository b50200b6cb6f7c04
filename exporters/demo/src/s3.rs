//! S3 uploads (Shop): presigned path-style requests from `rusty-s3`, sent
//! with `reqwest`. Used for product images and the `s3_growth` incident.

use std::time::Duration;

use rusty_s3::actions::S3Action;
use rusty_s3::{Bucket, Credentials, UrlStyle};
use url::Url;

/// How long a presigned URL stays valid.
const SIGN_FOR: Duration = Duration::from_secs(300);

#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    #[error("bad S3 endpoint or bucket: {0}")]
    Bucket(#[from] rusty_s3::BucketError),
    #[error("S3 request failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("S3 answered {status}: {body}")]
    Status {
        status: reqwest::StatusCode,
        body: String,
    },
}

/// One bucket on an S3-compatible server.
#[derive(Debug)]
pub struct S3 {
    bucket: Bucket,
    credentials: Credentials,
    http: reqwest::Client,
}

impl S3 {
    /// Credentials from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`
    /// (default `test` / `test`, what local S3 servers accept).
    pub fn credentials_from_env() -> Credentials {
        let key = std::env::var("AWS_ACCESS_KEY_ID").unwrap_or_else(|_| "test".into());
        let secret = std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or_else(|_| "test".into());
        Credentials::new(key, secret)
    }

    pub fn new(
        endpoint: Url,
        bucket: &str,
        region: &str,
        credentials: Credentials,
    ) -> Result<Self, S3Error> {
        let bucket = Bucket::new(
            endpoint,
            UrlStyle::Path,
            bucket.to_owned(),
            region.to_owned(),
        )?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self {
            bucket,
            credentials,
            http,
        })
    }

    pub fn bucket_name(&self) -> &str {
        self.bucket.name()
    }

    async fn check(response: reqwest::Response) -> Result<(), S3Error> {
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let mut body = response.text().await.unwrap_or_default();
        body.truncate(500);
        Err(S3Error::Status { status, body })
    }

    /// Creates the bucket; an existing bucket is fine.
    pub async fn ensure_bucket(&self) -> Result<(), S3Error> {
        let url = self.bucket.create_bucket(&self.credentials).sign(SIGN_FOR);
        // An empty body still needs `Content-Length: 0` (411 otherwise).
        let response = self
            .http
            .put(url)
            .header(reqwest::header::CONTENT_LENGTH, "0")
            .send()
            .await?;
        match Self::check(response).await {
            Err(S3Error::Status { status, body })
                if status == reqwest::StatusCode::CONFLICT
                    || body.contains("BucketAlreadyOwnedByYou")
                    || body.contains("BucketAlreadyExists") =>
            {
                Ok(())
            }
            other => other,
        }
    }

    /// Uploads `body` as object `key`.
    pub async fn put(&self, key: &str, body: Vec<u8>, content_type: &str) -> Result<(), S3Error> {
        let url = self
            .bucket
            .put_object(Some(&self.credentials), key)
            .sign(SIGN_FOR);
        let response = self
            .http
            .put(url)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body)
            .send()
            .await?;
        Self::check(response).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::body::Bytes;
    use axum::extract::{Path, RawQuery, State};
    use axum::routing::put;

    type Seen = Arc<Mutex<Vec<(String, String, usize)>>>;

    /// Uploads reach the server path-style, presigned, with their bytes.
    #[tokio::test]
    async fn put_is_presigned_path_style() {
        let seen: Seen = Arc::default();
        let app = Router::new()
            .route(
                "/{bucket}/{*key}",
                put(
                    |State(seen): State<Seen>,
                     Path((bucket, key)): Path<(String, String)>,
                     RawQuery(query): RawQuery,
                     body: Bytes| async move {
                        seen.lock().unwrap().push((
                            format!("{bucket}/{key}"),
                            query.unwrap_or_default(),
                            body.len(),
                        ));
                        ""
                    },
                ),
            )
            .with_state(Arc::clone(&seen));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });

        let endpoint: Url = format!("http://{addr}").parse().unwrap();
        let s3 = S3::new(
            endpoint,
            "images-bucket",
            "us-east-1",
            Credentials::new("k", "s"),
        )
        .unwrap();
        s3.put("images/a.jpg", vec![7; 1234], "image/jpeg")
            .await
            .unwrap();
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 1);
        let (path, query, len) = &seen[0];
        assert_eq!(path, "images-bucket/images/a.jpg");
        assert_eq!(*len, 1234);
        assert!(query.contains("X-Amz-Signature="), "{query}");
        assert!(query.contains("X-Amz-Credential=k%2F"), "{query}");
    }

    #[tokio::test]
    async fn error_status_is_reported() {
        let app = Router::new().route(
            "/{bucket}/{*key}",
            put(|| async { (axum::http::StatusCode::FORBIDDEN, "AccessDenied") }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let endpoint: Url = format!("http://{addr}").parse().unwrap();
        let s3 = S3::new(endpoint, "b", "us-east-1", Credentials::new("k", "s")).unwrap();
        let e = s3.put("images/x", vec![1], "image/jpeg").await.unwrap_err();
        assert!(
            matches!(&e, S3Error::Status { status, body } if status.as_u16() == 403 && body == "AccessDenied"),
            "{e}"
        );
    }
}
