//! The [`Governor`]: a cooldown per action and alert, and a global rate
//! limit over all actions, and its [`Verdict`] on a call.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::action::Action;

/// Cooldown per (action, alert fingerprint) and a global rate limit (at most
/// `max_calls` per `per_secs` over all actions; `max_calls` 0: no limit).
/// Serialisable so it survives restarts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Governor {
    /// Most calls in any `per_secs` window (0: unlimited).
    pub max_calls: u32,
    /// The rate limit's window, seconds.
    pub per_secs: i64,
    /// `action \0 fingerprint` → end of its cooldown (Unix seconds).
    #[serde(default)]
    cooldown_until: BTreeMap<String, i64>,
    /// Times of the calls within the window, oldest first.
    #[serde(default)]
    calls: Vec<i64>,
}

/// What the governor says about a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead.
    Allow,
    /// The action was called for this alert too recently.
    Cooldown {
        /// When the cooldown ends.
        until: i64,
    },
    /// Too many calls in the window.
    RateLimited {
        /// When a slot frees.
        until: i64,
    },
}

fn cooldown_key(action: &str, fingerprint: &str) -> String {
    format!("{action}\0{fingerprint}")
}

impl Governor {
    /// A governor allowing `max_calls` per `per_secs` (0: unlimited).
    pub fn new(max_calls: u32, per_secs: i64) -> Self {
        Self {
            max_calls,
            per_secs,
            ..Self::default()
        }
    }

    /// Whether `action` may be called for the alert `fingerprint` at `now`.
    pub fn check(&self, action: &Action, fingerprint: &str, now: i64) -> Verdict {
        if let Some(&until) = self
            .cooldown_until
            .get(&cooldown_key(&action.name, fingerprint))
            && until > now
        {
            return Verdict::Cooldown { until };
        }
        if self.max_calls > 0 {
            let window: Vec<i64> = self
                .calls
                .iter()
                .copied()
                .filter(|&t| t > now - self.per_secs)
                .collect();
            let max = self.max_calls as usize;
            if window.len() >= max {
                // The slot frees when enough of the oldest calls leave the window.
                return Verdict::RateLimited {
                    until: window[window.len() - max] + self.per_secs,
                };
            }
        }
        Verdict::Allow
    }

    /// Records a call of `action` for `fingerprint` at `now`, and forgets
    /// what no longer matters (ended cooldowns, calls out of the window).
    pub fn record(&mut self, action: &Action, fingerprint: &str, now: i64) {
        self.cooldown_until.retain(|_, until| *until > now);
        if action.cooldown_secs > 0 {
            self.cooldown_until.insert(
                cooldown_key(&action.name, fingerprint),
                now.saturating_add(action.cooldown_secs),
            );
        }
        let per = self.per_secs;
        self.calls.retain(|&t| t > now - per);
        if self.max_calls > 0 {
            let at = self.calls.partition_point(|&t| t <= now);
            self.calls.insert(at, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remediation::testing::action;

    #[test]
    fn cooldown_is_per_action_and_alert() {
        let a = action("restart");
        let mut g = Governor::new(0, 60);
        assert_eq!(g.check(&a, "fp1", 1000), Verdict::Allow);
        g.record(&a, "fp1", 1000);
        assert_eq!(g.check(&a, "fp1", 1599), Verdict::Cooldown { until: 1600 });
        assert_eq!(g.check(&a, "fp2", 1599), Verdict::Allow);
        assert_eq!(g.check(&action("other"), "fp1", 1599), Verdict::Allow);
        assert_eq!(g.check(&a, "fp1", 1600), Verdict::Allow);
    }

    #[test]
    fn rate_limit_counts_all_actions_in_a_sliding_window() {
        let mut a = action("restart");
        a.cooldown_secs = 0;
        let mut g = Governor::new(2, 60);
        g.record(&a, "fp1", 100);
        g.record(&action("other"), "fp2", 130);
        assert_eq!(g.check(&a, "fp3", 140), Verdict::RateLimited { until: 160 });
        assert_eq!(g.check(&a, "fp3", 159), Verdict::RateLimited { until: 160 });
        assert_eq!(g.check(&a, "fp3", 160), Verdict::Allow);
        g.record(&a, "fp3", 160);
        assert_eq!(g.check(&a, "fp4", 170), Verdict::RateLimited { until: 190 });
        // It persists.
        let json = serde_json::to_string(&g).unwrap();
        assert_eq!(serde_json::from_str::<Governor>(&json).unwrap(), g);
    }
}
