//! Which delivery failures to retry, and when: exponential backoff with full
//! jitter under a deadline (alertmanager `notify/util.go`, vector
//! `RetryAction`). Pure: the random draw and the time are passed in.
//!
//! A receiver's requested delay (`Retry-After`, Telegram's `retry_after`) is
//! untrusted input: it is clamped to [`MAX_RETRY_AFTER`], and the next attempt
//! is never scheduled past the entry's give-up deadline
//! ([`next_attempt_at`]), with saturating arithmetic throughout, so neither
//! `Retry-After: 18446744073709551615` (which used to wrap to "due at once")
//! nor `Retry-After: 99999999999` (which parked a delivery for millennia)
//! changes when a delivery is retried or given up beyond those bounds.

use std::time::Duration;

/// The longest delay a receiver may ask for (`Retry-After`, Telegram's
/// `retry_after`): one day. Rate limits and maintenance windows are shorter;
/// a longer request is clamped (the delivery's own give-up age then decides,
/// see [`next_attempt_at`]) rather than believed.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(86_400);

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
    /// receiver's requested delay wins when it is longer, clamped to
    /// [`MAX_RETRY_AFTER`].
    pub fn delay(&self, attempt: u32, uniform: f64, requested: Option<Duration>) -> Duration {
        let uniform = if uniform.is_nan() {
            0.0
        } else {
            uniform.clamp(0.0, 1.0)
        };
        let jittered = self.ceiling(attempt).mul_f64(uniform);
        requested.map_or(jittered, |r| r.min(MAX_RETRY_AFTER).max(jittered))
    }
}

/// A `Retry-After` value as a delay from `now` (Unix seconds): either
/// delay-seconds (`120`) or an HTTP-date (`Wed, 21 Oct 2015 07:28:00 GMT`,
/// read as RFC 2822). Clamped to [0, [`MAX_RETRY_AFTER`]]: a number too big
/// for `u64` is as long as allowed, a date in the past is no delay. `None`
/// when it is neither form (the backoff alone decides then).
pub fn parse_retry_after(value: &str, now: i64) -> Option<Duration> {
    let v = value.trim();
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        // All digits: only overflow can fail, and overflow means "very long".
        let secs = v.parse::<u64>().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    }
    let at = chrono::DateTime::parse_from_rfc2822(v).ok()?.timestamp();
    let secs = u64::try_from(at.saturating_sub(now)).unwrap_or(0);
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

/// When to try a failed delivery again: `delay` after `now` (rounded up to
/// whole seconds, at least 1 s), but no later than `give_up_at`, the first
/// second at which the delivery is given up — a longer wait would only hide
/// it past its deadline. Saturating: no delay or time wraps around.
pub fn next_attempt_at(now: i64, delay: Duration, give_up_at: i64) -> i64 {
    let whole = delay
        .as_secs()
        .saturating_add(u64::from(delay.subsec_nanos() > 0));
    let secs = i64::try_from(whole).unwrap_or(i64::MAX).max(1);
    let earliest = now.saturating_add(1);
    now.saturating_add(secs).min(give_up_at).max(earliest)
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

    #[test]
    fn a_requested_delay_is_clamped_to_the_maximum() {
        let b = Backoff::default();
        assert_eq!(
            b.delay(0, 0.5, Some(Duration::from_secs(u64::MAX))),
            MAX_RETRY_AFTER
        );
        assert_eq!(
            b.delay(0, 0.5, Some(Duration::from_secs(99_999_999_999))),
            MAX_RETRY_AFTER
        );
        assert_eq!(b.delay(2, f64::NAN, None), Duration::ZERO, "NaN draw");
    }

    #[test]
    fn retry_after_reads_seconds_and_dates_within_bounds() {
        let now = 1_700_000_000;
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        for huge in [
            "18446744073709551615",
            "18446744073709551616",
            "99999999999",
        ] {
            assert_eq!(
                parse_retry_after(huge, now),
                Some(MAX_RETRY_AFTER),
                "{huge}"
            );
        }
        // 2023-11-14T22:13:30Z is 10 s after `now`.
        assert_eq!(
            parse_retry_after("Tue, 14 Nov 2023 22:13:30 GMT", now),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::ZERO),
            "a past date is no delay"
        );
        assert_eq!(
            parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", i64::MIN),
            Some(MAX_RETRY_AFTER),
            "a far date from a far past does not overflow"
        );
        for bad in ["", "soon", "-5", "+5", "1.5", "7 s"] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad}");
        }
    }

    #[test]
    fn the_next_attempt_saturates_and_stops_at_the_give_up_time() {
        let now = 1_000;
        let give_up = now + 600;
        assert_eq!(
            next_attempt_at(now, Duration::from_secs(30), give_up),
            1_030
        );
        assert_eq!(
            next_attempt_at(now, Duration::from_millis(1_200), give_up),
            1_002
        );
        assert_eq!(
            next_attempt_at(now, Duration::ZERO, give_up),
            1_001,
            "at least 1 s"
        );
        // A huge delay neither wraps to "due at once" nor parks past the deadline.
        for huge in [
            Duration::from_secs(u64::MAX),
            Duration::MAX,
            MAX_RETRY_AFTER,
        ] {
            assert_eq!(next_attempt_at(now, huge, give_up), give_up, "{huge:?}");
        }
        assert_eq!(
            next_attempt_at(i64::MAX - 1, Duration::from_secs(u64::MAX), i64::MAX),
            i64::MAX
        );
        // A deadline already passed still moves the entry forward.
        assert_eq!(
            next_attempt_at(now, Duration::from_secs(5), now - 10),
            now + 1
        );
        assert_eq!(
            next_attempt_at(i64::MAX, Duration::from_secs(5), 0),
            i64::MAX,
            "no overflow at the end of time"
        );
    }
}
