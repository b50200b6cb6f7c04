//! Rate-limited logging: at most one message per period, counting what was
//! left out.

use std::time::{Duration, Instant};

/// Lets a message through at most once per `period`.
#[derive(Debug)]
pub struct LogThrottle {
    period: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl LogThrottle {
    pub fn new(period: Duration) -> Self {
        Self {
            period,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(n)` when a message may be logged at `now` (`n` = messages
    /// suppressed since the last one), `None` when it should be dropped.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(last) if now.saturating_duration_since(last) < self.period => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_per_period() {
        let t0 = Instant::now();
        let mut t = LogThrottle::new(Duration::from_secs(10));
        assert_eq!(t.allow(t0), Some(0));
        assert_eq!(t.allow(t0 + Duration::from_secs(1)), None);
        assert_eq!(t.allow(t0 + Duration::from_secs(9)), None);
        assert_eq!(t.allow(t0 + Duration::from_secs(10)), Some(2));
        assert_eq!(t.allow(t0 + Duration::from_secs(11)), None);
    }
}
