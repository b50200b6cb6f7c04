//! Silences: label matchers that mute notifications for a while, as in
//! Alertmanager. Pure data; the time is passed in as Unix seconds.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::alert::KeyValues;
use crate::matcher::{Matcher, all_match};

/// The longest a silence may last: 30 days, seconds.
pub const MAX_DURATION_SECS: i64 = 30 * 86_400;

/// One silence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    /// Short hex id.
    pub id: String,
    /// The alerts it mutes: those all of these match.
    pub matchers: Vec<Matcher>,
    /// From (Unix seconds, inclusive).
    pub starts_at: i64,
    /// Until (Unix seconds, exclusive).
    pub ends_at: i64,
    /// Who made it (e.g. `telegram:1234`, `api`).
    pub created_by: String,
    /// Why.
    pub comment: String,
}

impl Silence {
    /// Whether it is in force at `now`.
    pub fn is_active(&self, now: i64) -> bool {
        self.starts_at <= now && now < self.ends_at
    }

    /// Whether it mutes an alert with `labels` at `now`.
    pub fn mutes(&self, labels: &KeyValues, now: i64) -> bool {
        // No matchers would mute everything; `add` refuses them, and a
        // hand-edited state must not either.
        !self.matchers.is_empty() && self.is_active(now) && all_match(&self.matchers, labels)
    }
}

/// A silence refused, or not found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SilenceError {
    /// No matchers: it would mute every alert.
    #[error("a silence needs at least one matcher, e.g. service=\"mes-api\"")]
    NoMatchers,
    /// Every matcher matches an alert without that label: it would mute
    /// nearly everything.
    #[error(
        "every matcher also matches alerts without the label ({matchers}); add one that needs a value, e.g. service=\"mes-api\""
    )]
    MatchesEverything {
        /// The matchers given.
        matchers: String,
    },
    /// Ends before (or when) it starts.
    #[error("a silence must end after it starts (starts {starts_at}, ends {ends_at})")]
    BadRange {
        /// Start, Unix seconds.
        starts_at: i64,
        /// End, Unix seconds.
        ends_at: i64,
    },
    /// Longer than [`MAX_DURATION_SECS`].
    #[error("a silence may last at most 30 days, got {secs} s")]
    TooLong {
        /// The duration asked, seconds.
        secs: i64,
    },
    /// No silence has this id.
    #[error("no silence with id '{0}'")]
    NotFound(String),
}

/// All silences, active, pending and recently ended.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Silences {
    list: Vec<Silence>,
    /// Silences ever added, so ids stay unique.
    #[serde(default)]
    counter: u64,
}

impl Silences {
    /// Adds a silence and returns its id (hex of a hash of the matchers,
    /// start, author and a counter: deterministic, no randomness). Refused
    /// when there are no matchers, when every matcher matches the empty
    /// value, when it ends before it starts, or when it lasts over 30 days.
    pub fn add(
        &mut self,
        matchers: Vec<Matcher>,
        starts_at: i64,
        ends_at: i64,
        created_by: &str,
        comment: &str,
    ) -> Result<String, SilenceError> {
        if matchers.is_empty() {
            return Err(SilenceError::NoMatchers);
        }
        let empty = KeyValues::new();
        if matchers.iter().all(|m| m.matches(&empty)) {
            let shown: Vec<String> = matchers.iter().map(ToString::to_string).collect();
            return Err(SilenceError::MatchesEverything {
                matchers: shown.join(", "),
            });
        }
        if ends_at <= starts_at {
            return Err(SilenceError::BadRange { starts_at, ends_at });
        }
        let secs = ends_at.saturating_sub(starts_at);
        if secs > MAX_DURATION_SECS {
            return Err(SilenceError::TooLong { secs });
        }
        let id = loop {
            let id = silence_id(&matchers, starts_at, created_by, self.counter);
            self.counter += 1;
            // A 48-bit clash is unlikely, but an id must name one silence.
            if !self.list.iter().any(|s| s.id == id) {
                break id;
            }
        };
        self.list.push(Silence {
            id: id.clone(),
            matchers,
            starts_at,
            ends_at,
            created_by: created_by.to_string(),
            comment: comment.to_string(),
        });
        Ok(id)
    }

    /// Ends a silence now (a pending one is ended before it starts); one
    /// already ended is left as it is. `Err(NotFound)` if unknown.
    pub fn expire(&mut self, id: &str, now: i64) -> Result<(), SilenceError> {
        let s = self
            .list
            .iter_mut()
            .find(|s| s.id == id)
            .ok_or_else(|| SilenceError::NotFound(id.to_string()))?;
        if s.ends_at > now {
            s.starts_at = s.starts_at.min(now);
            s.ends_at = now;
        }
        Ok(())
    }

    /// The id of a silence muting an alert with `labels` at `now`, if any.
    pub fn is_silenced(&self, labels: &KeyValues, now: i64) -> Option<&str> {
        self.list
            .iter()
            .find(|s| s.mutes(labels, now))
            .map(|s| s.id.as_str())
    }

    /// All silences, in the order they were added.
    pub fn list(&self) -> &[Silence] {
        &self.list
    }

    /// Drops silences that ended more than `retention` seconds before `now`.
    pub fn gc(&mut self, now: i64, retention: i64) {
        self.list
            .retain(|s| now.saturating_sub(s.ends_at) <= retention);
    }
}

fn silence_id(matchers: &[Matcher], starts_at: i64, created_by: &str, counter: u64) -> String {
    let mut h = Sha256::new();
    for m in matchers {
        let t = m.to_string();
        h.update((t.len() as u64).to_be_bytes());
        h.update(t.as_bytes());
    }
    h.update(starts_at.to_be_bytes());
    h.update((created_by.len() as u64).to_be_bytes());
    h.update(created_by.as_bytes());
    h.update(counter.to_be_bytes());
    // 12 hex digits: short enough to type in `/unsilence <id>`.
    hex::encode(&h.finalize()[..6])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matcher::parse_matchers;

    fn labels(pairs: &[(&str, &str)]) -> KeyValues {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn ms(t: &str) -> Vec<Matcher> {
        parse_matchers(t).unwrap()
    }

    #[test]
    fn a_silence_mutes_matching_alerts_only_while_active() {
        let mut s = Silences::default();
        let id = s
            .add(
                ms(r#"service="mes-api",severity=~"warn.*""#),
                100,
                200,
                "api",
                "deploy",
            )
            .unwrap();
        let warn = labels(&[("service", "mes-api"), ("severity", "warning")]);
        let crit = labels(&[("service", "mes-api"), ("severity", "critical")]);
        assert_eq!(s.is_silenced(&warn, 99), None, "not yet");
        assert_eq!(s.is_silenced(&warn, 100), Some(id.as_str()));
        assert_eq!(s.is_silenced(&warn, 199), Some(id.as_str()));
        assert_eq!(s.is_silenced(&warn, 200), None, "ended");
        assert_eq!(s.is_silenced(&crit, 150), None, "other severity");
        let sil = &s.list()[0];
        assert!(sil.is_active(150) && !sil.is_active(200) && !sil.is_active(50));
        assert!(sil.mutes(&warn, 150) && !sil.mutes(&crit, 150));
        assert_eq!(sil.created_by, "api");
        assert_eq!(sil.comment, "deploy");
    }

    #[test]
    fn bad_silences_are_refused() {
        let mut s = Silences::default();
        assert_eq!(s.add(vec![], 0, 10, "a", ""), Err(SilenceError::NoMatchers));
        assert!(matches!(
            s.add(ms("a=b"), 10, 10, "a", ""),
            Err(SilenceError::BadRange { .. })
        ));
        assert!(matches!(
            s.add(ms("a=b"), 10, 5, "a", ""),
            Err(SilenceError::BadRange { .. })
        ));
        assert!(matches!(
            s.add(ms("a=b"), 0, MAX_DURATION_SECS + 1, "a", ""),
            Err(SilenceError::TooLong { .. })
        ));
        assert!(
            s.add(ms("a=b"), 0, MAX_DURATION_SECS, "a", "").is_ok(),
            "30 days is fine"
        );
        let e = s
            .add(ms(r#"service=~".*",team!="x""#), 0, 10, "a", "")
            .unwrap_err();
        assert!(matches!(e, SilenceError::MatchesEverything { .. }), "{e}");
        assert!(e.to_string().contains("service=~\".*\""), "{e}");
        assert_eq!(s.list().len(), 1);
    }

    #[test]
    fn ids_are_short_deterministic_and_unique() {
        let mut a = Silences::default();
        let mut b = Silences::default();
        let i1 = a.add(ms("a=b"), 0, 10, "u", "").unwrap();
        let i2 = a.add(ms("a=b"), 0, 10, "u", "").unwrap();
        assert_ne!(i1, i2, "same silence twice still gets two ids");
        assert_eq!(i1.len(), 12);
        assert!(i1.chars().all(|c| c.is_ascii_hexdigit()));
        assert_eq!(
            b.add(ms("a=b"), 0, 10, "u", "").unwrap(),
            i1,
            "deterministic"
        );
    }

    #[test]
    fn expire_ends_a_silence_now() {
        let mut s = Silences::default();
        let id = s.add(ms("a=b"), 100, 1000, "u", "").unwrap();
        let l = labels(&[("a", "b")]);
        assert!(s.is_silenced(&l, 150).is_some());
        s.expire(&id, 150).unwrap();
        assert!(s.is_silenced(&l, 150).is_none());
        assert_eq!(s.list()[0].ends_at, 150);
        // Expiring again leaves it ended where it was.
        s.expire(&id, 500).unwrap();
        assert_eq!(s.list()[0].ends_at, 150);
        assert_eq!(
            s.expire("nope", 150),
            Err(SilenceError::NotFound("nope".into()))
        );
        // A pending silence ends before it ever starts.
        let p = s.add(ms("a=b"), 2000, 3000, "u", "").unwrap();
        s.expire(&p, 1500).unwrap();
        assert!(s.is_silenced(&l, 2500).is_none());
        let ended = s.list().iter().find(|x| x.id == p).unwrap();
        assert!(ended.starts_at <= ended.ends_at);
    }

    #[test]
    fn gc_drops_silences_ended_beyond_retention() {
        let mut s = Silences::default();
        let old = s.add(ms("a=b"), 0, 100, "u", "").unwrap();
        let recent = s.add(ms("a=c"), 0, 900, "u", "").unwrap();
        let active = s.add(ms("a=d"), 0, 5000, "u", "").unwrap();
        s.gc(1000, 500);
        let ids: Vec<&str> = s.list().iter().map(|x| x.id.as_str()).collect();
        assert_eq!(ids, vec![recent.as_str(), active.as_str()]);
        assert!(!ids.contains(&old.as_str()));
        s.gc(1000, 100);
        assert_eq!(s.list().len(), 2, "ended exactly `retention` ago is kept");
        s.gc(1001, 100);
        assert_eq!(s.list().len(), 1);
    }

    #[test]
    fn silences_round_trip_through_json() {
        let mut s = Silences::default();
        s.add(ms(r#"service=~"mes-.*""#), 0, 100, "u", "why")
            .unwrap();
        let back: Silences = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        let mut s2 = back.clone();
        let mut s1 = s.clone();
        assert_eq!(
            s1.add(ms("a=b"), 0, 1, "u", "").unwrap(),
            s2.add(ms("a=b"), 0, 1, "u", "").unwrap(),
            "the counter survives the round trip"
        );
    }
}
