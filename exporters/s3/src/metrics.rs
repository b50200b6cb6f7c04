//! The exported metrics and how a listing's outcome updates them.
//!
//! A failed listing only counts the error and sets `s3_bucket_up` to 0: the
//! size, object count, timestamp and duration keep the values of the last
//! successful listing (a bucket that never listed has no such series).

use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};

use crate::list::BucketTotals;

/// Labels of the per-bucket series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BucketLabels {
    /// Bucket name.
    pub bucket: String,
}

/// Labels of the error counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// Bucket name.
    pub bucket: String,
    /// Why the listing failed (see [`ListError::reason`](crate::list::ListError::reason)).
    pub reason: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// Handles on the registered metric families.
#[derive(Debug, Clone, Default)]
pub struct BucketMetrics {
    size_bytes: Family<BucketLabels, Gauge>,
    objects: Family<BucketLabels, Gauge>,
    last_success: Family<BucketLabels, FloatGauge>,
    list_duration: Family<BucketLabels, FloatGauge>,
    up: Family<BucketLabels, Gauge>,
    errors: Family<ErrorLabels, Counter>,
}

impl BucketMetrics {
    /// Creates the families and registers them in `registry`.
    pub fn register(registry: &mut Registry) -> BucketMetrics {
        let metrics = BucketMetrics::default();
        registry.register_with_unit(
            "s3_bucket_size",
            "Sum of the sizes of the bucket's objects (under --prefix), at the last successful listing",
            Unit::Bytes,
            metrics.size_bytes.clone(),
        );
        registry.register(
            "s3_bucket_objects",
            "Number of objects in the bucket (under --prefix), at the last successful listing",
            metrics.objects.clone(),
        );
        registry.register_with_unit(
            "s3_bucket_last_success_timestamp",
            "When the last successful listing of the bucket finished, Unix time",
            Unit::Seconds,
            metrics.last_success.clone(),
        );
        registry.register_with_unit(
            "s3_bucket_list_duration",
            "How long the last successful listing of the bucket took (all pages)",
            Unit::Seconds,
            metrics.list_duration.clone(),
        );
        registry.register(
            "s3_bucket_up",
            "1 if the last listing of the bucket succeeded, 0 if it failed",
            metrics.up.clone(),
        );
        registry.register(
            "s3_bucket_list_errors",
            "Failed listings of the bucket, by reason (http_<status>, timeout, connect, request, parse, repeated_token, url)",
            metrics.errors.clone(),
        );
        metrics
    }

    /// Records a complete listing of `bucket` that took `took`, finished at
    /// `finished`.
    pub fn record_success(
        &self,
        bucket: &str,
        totals: BucketTotals,
        took: Duration,
        finished: SystemTime,
    ) {
        let labels = BucketLabels {
            bucket: bucket.to_owned(),
        };
        self.size_bytes
            .get_or_create(&labels)
            .set(i64::try_from(totals.bytes).unwrap_or(i64::MAX));
        self.objects
            .get_or_create(&labels)
            .set(i64::try_from(totals.objects).unwrap_or(i64::MAX));
        let unix = finished
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.last_success.get_or_create(&labels).set(unix);
        self.list_duration
            .get_or_create(&labels)
            .set(took.as_secs_f64());
        self.up.get_or_create(&labels).set(1);
    }

    /// Records a failed listing of `bucket`; the last good values stay.
    pub fn record_failure(&self, bucket: &str, reason: &str) {
        self.errors
            .get_or_create(&ErrorLabels {
                bucket: bucket.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
        self.up
            .get_or_create(&BucketLabels {
                bucket: bucket.to_owned(),
            })
            .set(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prognos_exporters::serve::encode_text;

    #[test]
    fn failure_keeps_the_last_good_values() {
        let mut registry = Registry::default();
        let metrics = BucketMetrics::register(&mut registry);
        let totals = BucketTotals {
            bytes: 12_345_678_901,
            objects: 1005,
            pages: 2,
        };
        let finished = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        metrics.record_success("b", totals, Duration::from_millis(250), finished);
        metrics.record_failure("b", "connect");
        metrics.record_failure("b", "connect");
        metrics.record_failure("gone", "http_404");

        let text = encode_text(&registry).unwrap();
        for line in [
            "s3_bucket_size_bytes{bucket=\"b\"} 12345678901",
            "s3_bucket_objects{bucket=\"b\"} 1005",
            "s3_bucket_last_success_timestamp_seconds{bucket=\"b\"} 1800000000.0",
            "s3_bucket_list_duration_seconds{bucket=\"b\"} 0.25",
            "s3_bucket_up{bucket=\"b\"} 0",
            "s3_bucket_up{bucket=\"gone\"} 0",
            "s3_bucket_list_errors_total{bucket=\"b\",reason=\"connect\"} 2",
            "s3_bucket_list_errors_total{bucket=\"gone\",reason=\"http_404\"} 1",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        assert!(
            !text.contains("s3_bucket_size_bytes{bucket=\"gone\"}"),
            "{text}"
        );
    }
}
