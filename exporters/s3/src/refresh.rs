//! The background refresh: every `--interval`, list every bucket (up to
//! [`PARALLEL_LISTINGS`] at once) and record the outcomes in the metrics.
//!
//! Refreshes start `--interval` apart. A refresh that runs longer than the
//! interval delays the next one instead of overlapping it, so a bucket is
//! never listed twice at once.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::{Duration, MissedTickBehavior};

use crate::list::{Lister, error_chain};
use crate::metrics::BucketMetrics;

/// Buckets listed at the same time.
pub const PARALLEL_LISTINGS: usize = 8;

/// Lists every bucket once and records the outcomes; returns when all are
/// done.
pub async fn refresh_once(lister: &Arc<Lister>, metrics: &BucketMetrics, buckets: &[String]) {
    let permits = Arc::new(Semaphore::new(PARALLEL_LISTINGS));
    let mut tasks = JoinSet::new();
    for bucket in buckets {
        let lister = Arc::clone(lister);
        let metrics = metrics.clone();
        let bucket = bucket.clone();
        let permits = Arc::clone(&permits);
        tasks.spawn(async move {
            // Never closed, so acquiring only waits.
            let _permit = permits.acquire_owned().await;
            let started = Instant::now();
            match lister.list(&bucket).await {
                Ok(totals) => {
                    let took = started.elapsed();
                    metrics.record_success(&bucket, totals, took, SystemTime::now());
                    tracing::debug!(
                        bucket,
                        bytes = totals.bytes,
                        objects = totals.objects,
                        pages = totals.pages,
                        took_ms = took.as_millis(),
                        "listed bucket"
                    );
                }
                Err(error) => {
                    let reason = error.reason();
                    metrics.record_failure(&bucket, &reason);
                    let error = error_chain(&error);
                    tracing::warn!(
                        bucket,
                        reason,
                        error,
                        "listing the bucket failed; keeping the last good values"
                    );
                }
            }
        });
    }
    while let Some(joined) = tasks.join_next().await {
        if let Err(error) = joined {
            tracing::error!(%error, "a bucket listing task ended abnormally");
        }
    }
}

/// Refreshes at once, then every `interval`, forever.
pub async fn run(
    lister: Arc<Lister>,
    metrics: BucketMetrics,
    buckets: Vec<String>,
    interval: Duration,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        refresh_once(&lister, &metrics, &buckets).await;
    }
}
