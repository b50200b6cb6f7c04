//! Retrying a request with exponential backoff and full jitter, only for
//! failures that may pass (see [`PromError::retryable`]).

use std::future::Future;
use std::time::Duration;

pub(crate) use prognos_notifiers::retry::Backoff;

use super::error::PromError;

/// The first retry waits up to this long; each further one doubles it.
pub(crate) const BACKOFF_BASE: Duration = Duration::from_millis(250);
/// No single wait is longer than this.
pub(crate) const BACKOFF_CAP: Duration = Duration::from_secs(5);

/// The Prometheus client's backoff: exponential with full jitter (the wait
/// before retry `n` is uniform in `[0, min(cap, base · 2ⁿ)]`), the same
/// policy the notifiers use, with shorter delays.
pub(crate) fn prom_backoff() -> Backoff {
    Backoff {
        initial: BACKOFF_BASE,
        max: BACKOFF_CAP,
    }
}

/// Runs `attempt` until it succeeds, fails with an error that is not
/// retryable, or has been retried `max_retries` times. Each retried failure
/// is logged at WARN with `what` (the endpoint, without credentials).
pub(crate) async fn with_retries<T, F, Fut>(
    what: &str,
    max_retries: u32,
    backoff: Backoff,
    mut attempt: F,
) -> Result<T, PromError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, PromError>>,
{
    let mut retry = 0;
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(err) if err.retryable() && retry < max_retries => {
                let delay = backoff.delay(retry, rand::random::<f64>(), None);
                retry += 1;
                tracing::warn!(
                    endpoint = what,
                    kind = err.kind(),
                    retry,
                    max_retries,
                    delay_ms = delay.as_millis() as u64,
                    error = %err,
                    "Prometheus request failed, will retry."
                );
                tokio::time::sleep(delay).await;
            }
            Err(err) => return Err(err),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[test]
    fn ceiling_doubles_then_caps() {
        let backoff = prom_backoff();
        assert_eq!(backoff.ceiling(0), Duration::from_millis(250));
        assert_eq!(backoff.ceiling(1), Duration::from_millis(500));
        assert_eq!(backoff.ceiling(2), Duration::from_secs(1));
        assert_eq!(backoff.ceiling(4), Duration::from_secs(4));
        assert_eq!(backoff.ceiling(5), BACKOFF_CAP);
        assert_eq!(backoff.ceiling(40), BACKOFF_CAP, "no overflow");
        assert_eq!(backoff.ceiling(u32::MAX), BACKOFF_CAP);
    }

    #[test]
    fn delays_stay_within_bounds_and_are_jittered() {
        let backoff = prom_backoff();
        for retry in 0..8 {
            let delays: Vec<Duration> = (0..500)
                .map(|_| backoff.delay(retry, rand::random::<f64>(), None))
                .collect();
            let ceiling = backoff.ceiling(retry);
            assert!(delays.iter().all(|d| *d <= ceiling));
            // Full jitter: waits spread over the whole interval.
            assert!(delays.iter().any(|d| *d < ceiling / 4), "retry {retry}");
            assert!(delays.iter().any(|d| *d > ceiling * 3 / 4), "retry {retry}");
        }
    }

    fn fast() -> Backoff {
        Backoff {
            initial: Duration::from_millis(1),
            max: Duration::from_millis(2),
        }
    }

    fn error(status: u16) -> PromError {
        PromError::Http {
            method: "POST",
            url: "http://p/api/v1/query".into(),
            status,
            body_start: String::new(),
        }
    }

    #[tokio::test]
    async fn retryable_failures_are_retried_up_to_the_limit() {
        let attempts = AtomicU32::new(0);
        let result: Result<(), _> = with_retries("query", 3, fast(), || async {
            attempts.fetch_add(1, Ordering::SeqCst);
            Err(error(503))
        })
        .await;
        assert_eq!(result.unwrap_err().status(), Some(503));
        assert_eq!(
            attempts.load(Ordering::SeqCst),
            4,
            "first attempt and 3 retries"
        );
    }

    #[tokio::test]
    async fn other_4xx_are_not_retried() {
        let attempts = AtomicU32::new(0);
        let result: Result<(), _> = with_retries("query", 3, fast(), || async {
            attempts.fetch_add(1, Ordering::SeqCst);
            Err(error(400))
        })
        .await;
        assert!(result.is_err());
        assert_eq!(attempts.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn success_after_a_retry_is_returned() {
        let attempts = AtomicU32::new(0);
        let result = with_retries("query", 3, fast(), || async {
            match attempts.fetch_add(1, Ordering::SeqCst) {
                0 => Err(error(429)),
                n => Ok(n),
            }
        })
        .await;
        assert_eq!(result.unwrap(), 1);
    }
}
