//! Which delivery failures to retry, and when: exponential backoff with full
//! jitter under a deadline (alertmanager `notify/util.go`, vector
//! `RetryAction`). Pure: the random draw and the time are passed in.

use std::time::Duration;

/// What to do after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetryAction {
    /// Delivered.
    Successful,
    /// Try again later (after `after` if the receiver said so, e.g. Telegram's `retry_after`).
    Retry {
        /// The delay the receiver asked for, if any.
        after: Option<Duration>,
    },
    /// Retrying cannot help (a 4xx other than 408 and 429).
    DontRetry,
}

/// The action for an HTTP status, with the receiver's requested delay.
pub fn classify_status(status: u16, retry_after: Option<Duration>) -> RetryAction {
    match status {
        200..=299 => RetryAction::Successful,
        408 | 429 | 500..=599 => RetryAction::Retry { after: retry_after },
        _ => RetryAction::DontRetry,
    }
}

/// Exponential backoff with full jitter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// Ceiling of the first delay.
    pub initial: Duration,
    /// Largest ceiling.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(300),
        }
    }
}

impl Backoff {
    /// The ceiling before retry number `attempt` (0 for the first retry).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        self.initial
            .checked_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX))
            .unwrap_or(self.max)
            .min(self.max)
    }

    /// The delay before retry `attempt`, given a uniform draw in [0, 1); a
    /// receiver's requested delay wins when it is longer.
    pub fn delay(&self, attempt: u32, uniform: f64, requested: Option<Duration>) -> Duration {
        let jittered = self.ceiling(attempt).mul_f64(uniform.clamp(0.0, 1.0));
        requested.map_or(jittered, |r| r.max(jittered))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_classified_like_alertmanager() {
        assert_eq!(classify_status(200, None), RetryAction::Successful);
        assert_eq!(
            classify_status(429, Some(Duration::from_secs(7))),
            RetryAction::Retry {
                after: Some(Duration::from_secs(7))
            }
        );
        assert_eq!(
            classify_status(503, None),
            RetryAction::Retry { after: None }
        );
        assert_eq!(
            classify_status(408, None),
            RetryAction::Retry { after: None }
        );
        assert_eq!(classify_status(400, None), RetryAction::DontRetry);
        assert_eq!(classify_status(403, None), RetryAction::DontRetry);
    }

    #[test]
    fn backoff_grows_to_its_cap_and_jitters_below_it() {
        let b = Backoff::default();
        assert_eq!(b.ceiling(0), Duration::from_millis(500));
        assert_eq!(b.ceiling(3), Duration::from_secs(4));
        assert_eq!(b.ceiling(40), Duration::from_secs(300));
        assert!(b.delay(3, 0.5, None) == Duration::from_secs(2));
        assert_eq!(
            b.delay(0, 0.99, Some(Duration::from_secs(30))),
            Duration::from_secs(30)
        );
        assert_eq!(b.delay(2, 0.0, None), Duration::ZERO);
    }
}
