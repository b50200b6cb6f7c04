//! `prognos-s3-exporter`: the size of S3 buckets as Prometheus metrics.
//!
//! Neither AWS S3 nor the S3-compatible servers (MinIO, s3s-fs, moto, …)
//! export how large a bucket is. This exporter lists each configured bucket
//! with ListObjectsV2 (1000 keys a page, following continuation tokens), adds
//! up the object sizes, and serves the result on `/metrics`. The prognos
//! storage rules read it as `sum by (bucket) (s3_bucket_size_bytes)`.
//!
//! Listing a large bucket takes one request per 1000 objects, far too slow
//! for every scrape: the buckets are listed in the background every
//! `--interval` (and once at start), up to 8 buckets at a time, and a scrape
//! returns the last results.
//! Choose an interval well above `s3_bucket_list_duration_seconds`; a
//! refresh that overruns delays the next one instead of overlapping it.
//!
//! # Metrics
//!
//! | metric | type | labels | meaning |
//! | --- | --- | --- | --- |
//! | `s3_bucket_size_bytes` | gauge | `bucket` | sum of the object sizes (under `--prefix`), last successful listing |
//! | `s3_bucket_objects` | gauge | `bucket` | number of objects (under `--prefix`), last successful listing |
//! | `s3_bucket_last_success_timestamp_seconds` | gauge | `bucket` | Unix time the last successful listing finished |
//! | `s3_bucket_list_duration_seconds` | gauge | `bucket` | how long the last successful listing took, all pages |
//! | `s3_bucket_up` | gauge | `bucket` | 1 if the last listing succeeded, 0 if it failed |
//! | `s3_bucket_list_errors_total` | counter | `bucket`, `reason` | failed listings |
//! | `process_*` | | | CPU, memory and file descriptors of the exporter |
//!
//! `reason` is `http_<status>` for an error answer (`http_403` for denied
//! access or bad credentials, `http_404` for a missing bucket, `http_301` or
//! `http_400` for a wrong region), `timeout` (`--timeout` passed), `connect`
//! (the endpoint cannot be reached), `request` (another transport error, e.g.
//! TLS), `parse` (the answer is not a ListObjectsV2 result) or
//! `repeated_token` (the server sent the same continuation token twice).
//! The S3 error code (`NoSuchBucket`, `AccessDenied`, …) is in the warning
//! logged with each failure.
//!
//! **A failed listing keeps the last good values.** The size, object count,
//! timestamp and duration series stay at what the last successful listing
//! found, so a flaky endpoint does not make a bucket look empty; only
//! `s3_bucket_up` drops to 0 and the error counter grows. A bucket that has
//! never been listed successfully has no size series at all. To catch stale
//! values alert on `time() - s3_bucket_last_success_timestamp_seconds` or on
//! `s3_bucket_up == 0`. A partial listing is never exported: any failed page
//! fails the whole listing.
//!
//! `/healthz` answers 200 while the process serves; it does not depend on
//! S3 (use `s3_bucket_up` for that).
//!
//! # Flags
//!
//! ```text
//! prognos-s3-exporter [--endpoint URL] [--region us-east-1] [--path-style[=BOOL]]
//!                     --bucket NAME [--bucket NAME ...] [--prefix P]
//!                     [--listen 127.0.0.1:9340] [--interval 60s] [--timeout 30s]
//! ```
//!
//! * `--endpoint`: the S3 API URL. Without it, AWS S3 at
//!   `https://s3.<region>.amazonaws.com`.
//! * `--region`: the region requests are signed for (default `us-east-1`).
//! * `--path-style`: `<endpoint>/<bucket>` URLs; the default when
//!   `--endpoint` is given. Without `--endpoint` the default is
//!   virtual-hosted URLs (`<bucket>.s3.<region>.amazonaws.com`);
//!   `--path-style=false` forces those with an endpoint too.
//! * `--bucket`: a bucket to export; repeat it for several (at least one).
//! * `--prefix`: count only the keys starting with it, in every bucket.
//! * `--listen`: where `/metrics` and `/healthz` are served.
//! * `--interval`, `--timeout`: durations as a whole number and a unit `ms`,
//!   `s`, `m` or `h` (`500ms`, `30s`, `5m`). `--timeout` bounds each page
//!   request, connecting included.
//!
//! Credentials come from the environment: `AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, and `AWS_SESSION_TOKEN` for temporary
//! credentials (STS, assumed roles). It is read once at start: restart the
//! exporter when temporary credentials are renewed. With neither key set the
//! requests go unsigned, which only works for publicly listable buckets.
//! Instance profiles, `~/.aws/credentials` and SSO are not read.
//!
//! # AWS S3
//!
//! ```text
//! AWS_ACCESS_KEY_ID=AKIA... AWS_SECRET_ACCESS_KEY=... \
//!   prognos-s3-exporter --region eu-west-1 --bucket shop-uploads --bucket backups --interval 5m
//! ```
//!
//! Give the bucket's own region (a wrong one answers `http_301`/`http_400`).
//! Bucket names with dots need `--path-style` over HTTPS. The IAM permission
//! needed is `s3:ListBucket` on each bucket (listing needs no object
//! permission):
//!
//! ```json
//! {
//!   "Version": "2012-10-17",
//!   "Statement": [{
//!     "Effect": "Allow",
//!     "Action": "s3:ListBucket",
//!     "Resource": ["arn:aws:s3:::shop-uploads", "arn:aws:s3:::backups"]
//!   }]
//! }
//! ```
//!
//! Every page is a request billed as a LIST: a bucket of N objects costs
//! ⌈N/1000⌉ requests per interval. For buckets of many millions of objects
//! prefer a long interval, or the daily CloudWatch `BucketSizeBytes`.
//!
//! # S3-compatible servers (MinIO, s3s-fs, moto, Ceph RGW, …)
//!
//! ```text
//! AWS_ACCESS_KEY_ID=minioadmin AWS_SECRET_ACCESS_KEY=minioadmin \
//!   prognos-s3-exporter --endpoint http://127.0.0.1:9000 --bucket uploads
//! ```
//!
//! Path-style URLs are the default with `--endpoint`; the region is whatever
//! the server expects in signatures (usually `us-east-1`). The user needs
//! the server's equivalent of `s3:ListBucket`.
//!
//! # Prometheus
//!
//! ```yaml
//! scrape_configs:
//!   - job_name: s3
//!     scrape_interval: 60s
//!     static_configs: [{ targets: ["127.0.0.1:9340"] }]
//! ```
//!
//! The exit status is 2 for bad flags and 1 when the listen address cannot
//! be bound; SIGINT and SIGTERM stop it cleanly.

mod cli;
mod list;
mod metrics;
mod refresh;
mod serve;

use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use prometheus_client::registry::Registry;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Config, env_var};
use crate::list::Lister;
use crate::metrics::BucketMetrics;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = match Config::from_cli(cli, env_var) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return std::process::ExitCode::from(2);
        }
    };
    match run(config) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run_async(config))
}

async fn run_async(config: Config) -> anyhow::Result<()> {
    let mut registry = Registry::default();
    let metrics = BucketMetrics::register(&mut registry);
    prognos_exporters::process::register(&mut registry);
    let registry = Arc::new(registry);

    if config.credentials.is_none() {
        tracing::warn!(
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set: requests are unsigned, which only works for publicly listable buckets"
        );
    }
    let lister = Lister::new(
        config.endpoint.clone(),
        config.url_style,
        config.region.clone(),
        config.credentials.clone(),
        config.prefix.clone(),
        config.timeout,
    )
    .context("building the HTTP client")?;

    let listener = serve::bind(config.listen).await?;
    let local = listener.local_addr().context("reading the bound address")?;
    tracing::info!(
        listen = %local,
        endpoint = %config.endpoint,
        region = %config.region,
        buckets = ?config.buckets,
        interval = ?config.interval,
        "serving /metrics; listing buckets in the background"
    );

    let refresher = tokio::spawn(refresh::run(
        Arc::new(lister),
        metrics,
        config.buckets.clone(),
        config.interval,
    ));
    let result = serve::serve(listener, serve::router(registry), shutdown_signal()).await;
    refresher.abort();
    result?;
    tracing::info!("stopped");
    Ok(())
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::error!(%error, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
    tracing::info!("shutting down");
}
