//! Silences: label matchers that mute notifications for a while, as in
//! Alertmanager. Pure data; the time is passed in as Unix seconds.
//!
//! # What a silence may mute
//!
//! A silence must single out some alerts, not mute everything. Whether it
//! does is decided by what its matchers accept, not by how they are written
//! (`alertname=~".+"`, `alertname!=""` and `job!~""` all look specific and
//! all mute every alert): the matchers are tried against probe label sets in
//! which each label they name is missing or takes one of a few arbitrary
//! values of the usual shapes (lower case, CamelCase like alert names, upper
//! case, snake case, `host:port`, digits, spaces and non-ASCII). A silence
//! that matches any such probe is refused ([`too_broad`]). That includes
//! every matcher set that matches everything, and every set matching an
//! alert with no labels at all (the empty label set is a probe). A silence
//! with one matcher that needs a specific value (`service="mes-api"`,
//! `service=~"mes-.*"`) matches no probe and is accepted. The probes are
//! fixed, so the answer is reproducible; a regex written to exclude exactly
//! these probe values passes, but only deliberately — the guard is against
//! silences that mute everything by mistake or by a naive trick, and the
//! limits below bound what a token holder can add on purpose.
//!
//! # Limits
//!
//! Silences are kept in memory and saved as one JSON blob (each add or
//! expiry rewrites all of them), and `GET /api/v1/silences` returns them
//! all: their number and size are bounded by [`MAX_SILENCES`],
//! [`MAX_MATCHERS`], [`MAX_LABEL_NAME_CHARS`], [`MAX_MATCHER_VALUE_CHARS`],
//! [`MAX_COMMENT_CHARS`], [`MAX_CREATED_BY_CHARS`], [`MAX_SILENCE_REGEX_BYTES`]
//! and, for all of them together, [`MAX_TOTAL_BYTES`]. Ended silences are dropped by
//! [`Silences::gc`] after their retention, and at once when an add needs
//! their room.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::alert::KeyValues;
use crate::matcher::{MAX_REGEX_BYTES, MatchOp, Matcher, all_match};
use crate::secret::{EXCERPT_CHARS, excerpt};

/// The longest a silence may last: 30 days, seconds. Long enough for any
/// maintenance window or a known-noisy week; a mute meant to last longer is
/// a rule or route to change, and a forgotten 30-day silence ends by itself.
pub const MAX_DURATION_SECS: i64 = 30 * 86_400;

/// The most silences held at once, active, pending and recently ended
/// together: teams use tens; a thousand keeps each save (all silences are
/// rewritten) and `GET /api/v1/silences` small.
pub const MAX_SILENCES: usize = 1_000;

/// The most matchers one silence may have: real silences use one to four.
pub const MAX_MATCHERS: usize = 16;

/// The longest label name a matcher may name, in characters.
pub const MAX_LABEL_NAME_CHARS: usize = 128;

/// The longest matcher value or regex, in characters: room for an
/// alternation of dozens of service names.
pub const MAX_MATCHER_VALUE_CHARS: usize = 1_024;

/// The longest comment, in characters: a sentence or a ticket link, not a
/// document (a 1 MB comment used to be stored and served as it was).
pub const MAX_COMMENT_CHARS: usize = 1_024;

/// The longest author (`createdBy`), in characters: a name, an email address
/// or `telegram:<id>`.
pub const MAX_CREATED_BY_CHARS: usize = 128;

/// The most memory one silence's regexes may take compiled, together, bytes
/// (each one is also bounded by [`MAX_REGEX_BYTES`]): so the regexes of all
/// [`MAX_SILENCES`] silences stay under 256 MiB, where each could otherwise
/// take the regex crate's default 10 MiB. `service=~"mes-.*"` takes about
/// 2 KiB, `\w+` 50 KiB, `.{1,63}` 64 KiB.
pub const MAX_SILENCE_REGEX_BYTES: usize = 256 * 1024;

/// The most bytes all silences together may take as JSON (what is saved on
/// each change and what `GET /api/v1/silences` returns): 4 MiB, some ten
/// times what [`MAX_SILENCES`] ordinary silences take.
pub const MAX_TOTAL_BYTES: usize = 4 * 1024 * 1024;

/// The label values a silence is tried against (see the module doc): the
/// label missing, and arbitrary values of the usual shapes that no real
/// matcher written for specific alerts accepts.
const PROBE_VALUES: [&str; 8] = [
    "",
    "qzxprobe",
    "QzxProbe",
    "QZX_PROBE",
    "qzx_probe_7",
    "qzx-probe-7.invalid:1",
    "97531",
    "qzx prøbe ü",
];

/// Whether `matchers` would mute alerts that have nothing specific in
/// common: whether they match some probe label set, in which every label
/// they name is missing or has one of a few arbitrary values (see the
/// module doc). True for no matchers, for every set that matches all label
/// sets and for every set matching the empty label set.
pub fn too_broad(matchers: &[Matcher]) -> bool {
    let mut names: Vec<&str> = matchers.iter().map(|m| m.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    // Labels are independent, so a probe label set matches iff, for each
    // label named, one probe value satisfies all of that label's matchers.
    names.iter().all(|name| {
        PROBE_VALUES.iter().any(|v| {
            matchers
                .iter()
                .filter(|m| m.name == *name)
                .all(|m| m.matches_value(v))
        })
    })
}

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

    /// Its size as JSON, bytes (what it adds to the saved blob and the API).
    fn json_len(&self) -> usize {
        serde_json::to_string(self).map_or(0, |s| s.len())
    }
}

/// A silence refused, or not found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SilenceError {
    /// No matchers: it would mute every alert.
    #[error("a silence needs at least one matcher, e.g. service=\"mes-api\"")]
    NoMatchers,
    /// The matchers also match alerts with arbitrary (or no) label values:
    /// it would mute nearly everything (see [`too_broad`]).
    #[error(
        "these matchers also match alerts with arbitrary or missing label values ({matchers}), so the silence would mute nearly everything; add one that needs a specific value, e.g. service=\"mes-api\""
    )]
    MatchesEverything {
        /// The matchers given (cut to [`EXCERPT_CHARS`]).
        matchers: String,
    },
    /// More matchers than [`MAX_MATCHERS`].
    #[error("a silence may have at most {max} matchers, got {count}")]
    TooManyMatchers {
        /// Matchers given.
        count: usize,
        /// [`MAX_MATCHERS`].
        max: usize,
    },
    /// A text field over its limit.
    #[error("{field} is {chars} characters, at most {max} allowed")]
    FieldTooLong {
        /// Which field (`comment`, `createdBy`, a matcher's name or value).
        field: String,
        /// Its length, characters.
        chars: usize,
        /// The limit, characters.
        max: usize,
    },
    /// Its regexes together compile to more than [`MAX_SILENCE_REGEX_BYTES`].
    #[error(
        "the silence's regular expressions together compile to more than {max} bytes; use fewer or simpler ones"
    )]
    RegexesTooLarge {
        /// [`MAX_SILENCE_REGEX_BYTES`].
        max: usize,
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
    /// [`MAX_SILENCES`] silences are held and none has ended.
    #[error(
        "at most {max} silences may be held at once and none of them has ended; end some first"
    )]
    TooMany {
        /// [`MAX_SILENCES`].
        max: usize,
    },
    /// All silences together would be over [`MAX_TOTAL_BYTES`].
    #[error(
        "the silences would take {bytes} bytes, at most {max} allowed; end some or shorten comments"
    )]
    TooLarge {
        /// Their size with the new one, bytes of JSON.
        bytes: usize,
        /// [`MAX_TOTAL_BYTES`].
        max: usize,
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

/// `Err(FieldTooLong)` if `text` has more than `max` characters.
fn check_len(field: impl FnOnce() -> String, text: &str, max: usize) -> Result<(), SilenceError> {
    let chars = text.chars().count();
    if chars > max {
        return Err(SilenceError::FieldTooLong {
            field: field(),
            chars,
            max,
        });
    }
    Ok(())
}

/// Checks the sizes of a silence's parts against the limits.
fn check_sizes(matchers: &[Matcher], created_by: &str, comment: &str) -> Result<(), SilenceError> {
    if matchers.len() > MAX_MATCHERS {
        return Err(SilenceError::TooManyMatchers {
            count: matchers.len(),
            max: MAX_MATCHERS,
        });
    }
    for m in matchers {
        check_len(
            || format!("label name '{}'", excerpt(&m.name, EXCERPT_CHARS)),
            &m.name,
            MAX_LABEL_NAME_CHARS,
        )?;
        check_len(
            || format!("the value of the matcher on '{}'", m.name),
            &m.value,
            MAX_MATCHER_VALUE_CHARS,
        )?;
    }
    check_len(|| "createdBy".to_string(), created_by, MAX_CREATED_BY_CHARS)?;
    check_len(|| "comment".to_string(), comment, MAX_COMMENT_CHARS)?;
    check_regex_size(matchers)
}

/// `Err(RegexesTooLarge)` unless the silence's regexes, each compiled as
/// the matcher compiles it, fit in [`MAX_SILENCE_REGEX_BYTES`] together.
/// The regex crate does not report a compiled size, so each one's is bounded
/// from above by the smallest power-of-two `size_limit` it compiles under
/// (from 4 KiB; an over-estimate by less than half).
fn check_regex_size(matchers: &[Matcher]) -> Result<(), SilenceError> {
    let mut total: usize = 0;
    for m in matchers {
        if !matches!(m.op, MatchOp::Re | MatchOp::NotRe) {
            continue;
        }
        let pattern = format!("^(?:{})$", m.value);
        let size = (12..=30)
            .map(|k| 1usize << k)
            .take_while(|&limit| limit <= MAX_REGEX_BYTES.max(4096))
            .find(|&limit| {
                regex::RegexBuilder::new(&pattern)
                    .size_limit(limit)
                    .build()
                    .is_ok()
            })
            .unwrap_or(MAX_REGEX_BYTES);
        total = total.saturating_add(size);
    }
    if total > MAX_SILENCE_REGEX_BYTES {
        return Err(SilenceError::RegexesTooLarge {
            max: MAX_SILENCE_REGEX_BYTES,
        });
    }
    Ok(())
}

impl Silences {
    /// Adds a silence and returns its id (hex of a hash of the matchers,
    /// start, author and a counter: deterministic, no randomness). Refused
    /// when there are no matchers or too many, when a text is over its limit,
    /// when it ends before it starts or lasts over 30 days, when it is
    /// [`too_broad`], or when [`MAX_SILENCES`] or [`MAX_TOTAL_BYTES`] would
    /// be exceeded even after dropping the silences ended by `starts_at`.
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
        check_sizes(&matchers, created_by, comment)?;
        if ends_at <= starts_at {
            return Err(SilenceError::BadRange { starts_at, ends_at });
        }
        let secs = ends_at.saturating_sub(starts_at);
        if secs > MAX_DURATION_SECS {
            return Err(SilenceError::TooLong { secs });
        }
        if too_broad(&matchers) {
            let shown: Vec<String> = matchers.iter().map(ToString::to_string).collect();
            return Err(SilenceError::MatchesEverything {
                matchers: excerpt(&shown.join(", "), EXCERPT_CHARS),
            });
        }
        let id = loop {
            let id = silence_id(&matchers, starts_at, created_by, self.counter);
            self.counter = self.counter.wrapping_add(1);
            // A 48-bit clash is unlikely, but an id must name one silence.
            if !self.list.iter().any(|s| s.id == id) {
                break id;
            }
        };
        let silence = Silence {
            id: id.clone(),
            matchers,
            starts_at,
            ends_at,
            created_by: created_by.to_string(),
            comment: comment.to_string(),
        };
        self.make_room(starts_at, silence.json_len())?;
        self.list.push(silence);
        Ok(id)
    }

    /// Makes room for one more silence of `bytes`: if the limits would be
    /// exceeded, drops the silences that ended by `now` (kept only to be
    /// listed); refuses if that is not enough.
    fn make_room(&mut self, now: i64, bytes: usize) -> Result<(), SilenceError> {
        let total = |list: &[Silence]| -> usize {
            list.iter()
                .map(Silence::json_len)
                .fold(bytes, usize::saturating_add)
        };
        if self.list.len() < MAX_SILENCES && total(&self.list) <= MAX_TOTAL_BYTES {
            return Ok(());
        }
        self.list.retain(|s| s.ends_at > now);
        if self.list.len() >= MAX_SILENCES {
            return Err(SilenceError::TooMany { max: MAX_SILENCES });
        }
        let bytes = total(&self.list);
        if bytes > MAX_TOTAL_BYTES {
            return Err(SilenceError::TooLarge {
                bytes,
                max: MAX_TOTAL_BYTES,
            });
        }
        Ok(())
    }

    /// Ends a silence now (a pending one is ended before it starts); one
    /// already ended is left as it is. `Err(NotFound)` if unknown.
    pub fn expire(&mut self, id: &str, now: i64) -> Result<(), SilenceError> {
        let s = self
            .list
            .iter_mut()
            .find(|s| s.id == id)
            .ok_or_else(|| SilenceError::NotFound(excerpt(id, EXCERPT_CHARS)))?;
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
    fn matchers_that_accept_arbitrary_values_are_refused() {
        let mut s = Silences::default();
        for t in [
            // The bypasses of a guard that only looked at the empty value.
            r#"alertname=~".+""#,
            r#"alertname!="""#,
            r#"job!~"""#,
            // Universal or nearly so.
            r#"service=~".*""#,
            r#"team!="x""#,
            r#"team="""#,
            r#"instance!~"mes-.*""#,
            r#"alertname=~"[^Q]*""#,
            r#"alertname=~".{1,63}""#,
            r#"alertname=~"[A-Z][a-zA-Z]*""#,
            r#"alertname=~"\\S+""#,
            r#"port=~"[0-9]+""#,
            r#"alertname=~".+",alertname!="Watchdog""#,
            r#"alertname!="",job!~"",severity=~".*""#,
        ] {
            let Err(e) = s.add(ms(t), 0, 10, "a", "") else {
                panic!("{t} was accepted");
            };
            assert!(
                matches!(e, SilenceError::MatchesEverything { .. }),
                "{t}: {e}"
            );
            assert!(too_broad(&ms(t)), "{t}");
        }
        assert!(s.list().is_empty());
        assert!(too_broad(&[]), "no matchers match everything");
    }

    #[test]
    fn a_matcher_that_needs_a_specific_value_is_enough() {
        let mut s = Silences::default();
        for t in [
            r#"service="mes-api""#,
            r#"service=~"mes-.*""#,
            r#"severity=~"warn.*""#,
            r#"code=~"5..""#,
            r#"instance=~".*:9100""#,
            r#"alertname=~".+",service="mes-api""#,
            r#"team="",service="x""#,
            r#"service=~"mes-.*",service!="mes-db""#,
        ] {
            assert!(!too_broad(&ms(t)), "{t}");
            assert!(s.add(ms(t), 0, 10, "a", "").is_ok(), "{t}");
        }
    }

    #[test]
    fn a_refused_set_matches_an_alert_with_no_labels_or_arbitrary_ones() {
        // What `too_broad` claims, checked with `mutes` on whole label sets.
        let sil = |t: &str| Silence {
            id: "x".into(),
            matchers: ms(t),
            starts_at: 0,
            ends_at: 10,
            created_by: String::new(),
            comment: String::new(),
        };
        assert!(sil(r#"team!="x""#).mutes(&labels(&[]), 5));
        assert!(sil(r#"alertname!="""#).mutes(&labels(&[("alertname", "DiskFull")]), 5));
        assert!(sil(r#"job!~"""#).mutes(&labels(&[("job", "node"), ("x", "y")]), 5));
        assert!(!sil(r#"service="mes-api""#).mutes(&labels(&[("service", "QzxProbe")]), 5));
    }

    #[test]
    fn oversized_parts_are_refused_with_their_size() {
        let mut s = Silences::default();
        let big = "x".repeat(1_048_576);
        let e = s.add(ms("a=b"), 0, 10, "api", &big).unwrap_err();
        assert_eq!(
            e.to_string(),
            "comment is 1048576 characters, at most 1024 allowed"
        );
        let e = s.add(ms("a=b"), 0, 10, &"u".repeat(129), "").unwrap_err();
        assert_eq!(
            e.to_string(),
            "createdBy is 129 characters, at most 128 allowed"
        );
        let long_value = vec![Matcher::new("a", MatchOp::Eq, &"v".repeat(1_025)).unwrap()];
        let e = s.add(long_value, 0, 10, "u", "").unwrap_err();
        assert_eq!(
            e.to_string(),
            "the value of the matcher on 'a' is 1025 characters, at most 1024 allowed"
        );
        let long_name = vec![Matcher::new(&"n".repeat(129), MatchOp::Eq, "v").unwrap()];
        let e = s.add(long_name, 0, 10, "u", "").unwrap_err();
        assert!(
            matches!(
                e,
                SilenceError::FieldTooLong {
                    chars: 129,
                    max: 128,
                    ..
                }
            ),
            "{e}"
        );
        let many: Vec<Matcher> = (0..17)
            .map(|i| Matcher::new(&format!("l{i}"), MatchOp::Eq, "v").unwrap())
            .collect();
        let e = s.add(many, 0, 10, "u", "").unwrap_err();
        assert_eq!(
            e.to_string(),
            "a silence may have at most 16 matchers, got 17"
        );
        assert!(s.list().is_empty());
        // Exactly at the limits is fine; characters, not bytes, are counted.
        let e = s
            .add(
                ms(r#"a=~"x\\w+",b=~"y\\w+",c=~"z\\w+",d=~"v\\w+",e=~"u\\w+""#),
                0,
                10,
                "u",
                "",
            )
            .unwrap_err();
        assert_eq!(
            e,
            SilenceError::RegexesTooLarge {
                max: MAX_SILENCE_REGEX_BYTES
            }
        );
        assert!(
            s.add(
                ms(r#"a=~"x\\w+",b=~"y\\w+",c=~"z\\w+",d=~"v\\w+""#),
                0,
                10,
                "u",
                ""
            )
            .is_ok(),
            "four fit"
        );
        let at_limit = vec![Matcher::new("a", MatchOp::Eq, &"é".repeat(1_024)).unwrap()];
        assert!(
            s.add(at_limit, 0, 10, &"u".repeat(128), &"ü".repeat(1_024))
                .is_ok()
        );
    }

    #[test]
    fn the_number_of_silences_is_bounded_and_ended_ones_make_room() {
        let mut s = Silences::default();
        let first = s.add(ms("a=first"), 100, 200, "u", "").unwrap();
        // Filled directly: a thousand adds, each sizing all, are slow unoptimised.
        let model = s.list()[0].clone();
        s.list.extend((1..MAX_SILENCES).map(|i| Silence {
            id: format!("{i:012x}"),
            matchers: ms(&format!("a=v{i}")),
            ..model.clone()
        }));
        assert!(s.add(ms("a=more"), 100, 200, "u", "").is_err());
        let e = s.add(ms("a=more"), 100, 200, "u", "").unwrap_err();
        assert_eq!(e, SilenceError::TooMany { max: MAX_SILENCES });
        assert_eq!(s.list().len(), MAX_SILENCES);
        // An ended silence is dropped to make room; active ones never are.
        s.expire(&first, 150).unwrap();
        let id = s.add(ms("a=more"), 150, 200, "u", "").unwrap();
        assert_eq!(s.list().len(), MAX_SILENCES);
        assert!(s.list().iter().all(|x| x.id != first));
        assert!(s.list().iter().any(|x| x.id == id));
    }

    #[test]
    fn the_total_size_is_bounded() {
        // The largest silence the per-part limits allow.
        let matchers: Vec<Matcher> = (0..MAX_MATCHERS)
            .map(|i| Matcher::new(&format!("l{i}"), MatchOp::Eq, &"v".repeat(1_024)).unwrap())
            .collect();
        let largest = Silence {
            id: "0".repeat(12),
            matchers: matchers.clone(),
            starts_at: 0,
            ends_at: 100,
            created_by: "u".repeat(MAX_CREATED_BY_CHARS),
            comment: "c".repeat(MAX_COMMENT_CHARS),
        };
        let per = largest.json_len();
        let room = MAX_TOTAL_BYTES / per;
        assert!(
            room < MAX_SILENCES,
            "the byte budget is the tighter bound here"
        );
        let mut s = Silences {
            list: vec![largest; room],
            counter: 0,
        };
        let matchers_again = matchers.clone();
        let e = s
            .add(matchers, 0, 100, &"u".repeat(128), &"c".repeat(1_024))
            .unwrap_err();
        assert!(
            matches!(e, SilenceError::TooLarge { bytes, max: MAX_TOTAL_BYTES } if bytes > MAX_TOTAL_BYTES),
            "{e}"
        );
        assert!(serde_json::to_string(&s).unwrap().len() <= MAX_TOTAL_BYTES + 64);
        // Once they have ended, they make room.
        let id = s
            .add(
                matchers_again,
                100,
                200,
                &"u".repeat(128),
                &"c".repeat(1_024),
            )
            .unwrap();
        assert_eq!(s.list().len(), 1);
        assert_eq!(s.list()[0].id, id);
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
