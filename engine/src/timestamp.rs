//! Timestamps prognos reads — `2014-04-01 00:05:00` (UTC, optional fraction),
//! RFC 3339, or Unix seconds (integer or decimal) — and writes back in the
//! style of the input.

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use prognos_notifiers::secret::{EXCERPT_CHARS, excerpt};

/// Earliest timestamp accepted, in Unix seconds: 0001-01-01T00:00:00Z.
pub const MIN_TIMESTAMP: i64 = -62_135_596_800;

/// Latest timestamp accepted, in Unix seconds: 9999-12-31T23:59:59Z, the
/// last instant every style can write back. The bound keeps the arithmetic
/// on timestamps (adding steps, horizons, durations of up to
/// the configuration's `MAX_DURATION`) far from
/// `i64`'s limits, where it would wrap.
pub const MAX_TIMESTAMP: i64 = 253_402_300_799;

/// Unix seconds now.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// How a timestamp was written, so output can follow the input's style.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampStyle {
    /// `YYYY-MM-DD HH:MM:SS`, UTC.
    Naive,
    /// RFC 3339 such as `2014-04-01T00:05:00Z`.
    Rfc3339,
    /// Unix seconds.
    Unix,
}

/// Parses a timestamp to Unix seconds (fractions truncated) and its style.
/// Refuses instants outside [`MIN_TIMESTAMP`, `MAX_TIMESTAMP`] ("too large,
/// at most …") and quotes at most an excerpt of the text.
pub fn parse(s: &str) -> Result<(i64, TimestampStyle), String> {
    let s = s.trim();
    let (secs, style) = parse_unbounded(s).ok_or_else(|| {
        format!(
            "'{}' is not a timestamp: expected 'YYYY-MM-DD HH:MM:SS', RFC 3339 or Unix seconds",
            excerpt(s, EXCERPT_CHARS)
        )
    })?;
    if secs > MAX_TIMESTAMP {
        return Err(format!(
            "timestamp '{}' is too large, at most {MAX_TIMESTAMP} (9999-12-31T23:59:59Z)",
            excerpt(s, EXCERPT_CHARS)
        ));
    }
    if secs < MIN_TIMESTAMP {
        return Err(format!(
            "timestamp '{}' is too small, at least {MIN_TIMESTAMP} (0001-01-01T00:00:00Z)",
            excerpt(s, EXCERPT_CHARS)
        ));
    }
    Ok((secs, style))
}

/// The instant `s` names, out-of-range values saturated to `i64`'s (so the
/// bounds check in [`parse`] sees them), or `None` if it names none.
fn parse_unbounded(s: &str) -> Option<(i64, TimestampStyle)> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        // Digits beyond i64 are a number too large, not garbage.
        let saturated = if digits.len() < s.len() {
            i64::MIN
        } else {
            i64::MAX
        };
        return Some((s.parse().unwrap_or(saturated), TimestampStyle::Unix));
    }
    if let Ok(secs) = s.parse::<f64>()
        && secs.is_finite()
    {
        // `as` saturates at i64's limits.
        return Some((secs.floor() as i64, TimestampStyle::Unix));
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some((t.timestamp(), TimestampStyle::Rfc3339));
    }
    for fmt in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some((t.and_utc().timestamp(), TimestampStyle::Naive));
        }
    }
    None
}

/// Formats Unix seconds in `style`.
pub fn format(secs: i64, style: TimestampStyle) -> String {
    let t = DateTime::<Utc>::from_timestamp(secs, 0).unwrap_or_default();
    match style {
        TimestampStyle::Unix => secs.to_string(),
        TimestampStyle::Naive => t.format("%Y-%m-%d %H:%M:%S").to_string(),
        TimestampStyle::Rfc3339 => t.to_rfc3339_opts(SecondsFormat::Secs, true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_styles_parse_to_the_same_instant() {
        let want = 1_396_310_700;
        assert_eq!(
            parse("2014-04-01 00:05:00").unwrap(),
            (want, TimestampStyle::Naive)
        );
        assert_eq!(parse("2014-04-01 00:05:00.000000").unwrap().0, want);
        assert_eq!(
            parse("2014-04-01T02:05:00+02:00").unwrap(),
            (want, TimestampStyle::Rfc3339)
        );
        assert_eq!(parse("1396310700").unwrap(), (want, TimestampStyle::Unix));
        assert_eq!(parse("1396310700.5").unwrap().0, want);
    }

    #[test]
    fn garbage_is_explained() {
        let e = parse("yesterday").unwrap_err();
        assert!(e.contains("'yesterday'") && e.contains("RFC 3339"), "{e}");
        assert!(parse("NaN").is_err());
    }

    #[test]
    fn timestamps_past_the_bounds_are_too_large_not_wrapped() {
        for s in [
            "9223372036854775807",
            "99999999999999999999999",
            "253402300800",
            "1e300",
        ] {
            let e = parse(s).unwrap_err();
            assert!(e.contains("too large, at most 253402300799"), "{s}: {e}");
        }
        assert!(
            parse("-9223372036854775808")
                .unwrap_err()
                .contains("too small")
        );
        assert_eq!(parse("253402300799").unwrap().0, MAX_TIMESTAMP);
        assert_eq!(parse("9999-12-31T23:59:59Z").unwrap().0, MAX_TIMESTAMP);
    }

    #[test]
    fn a_huge_field_is_quoted_in_part() {
        let e = parse(&"x".repeat(1_000_000)).unwrap_err();
        assert!(e.len() < 400, "{} bytes", e.len());
        let e = parse(&"9".repeat(1_000_000)).unwrap_err();
        assert!(e.len() < 400 && e.contains("too large"), "{e}");
    }

    #[test]
    fn format_round_trips() {
        for style in [
            TimestampStyle::Naive,
            TimestampStyle::Rfc3339,
            TimestampStyle::Unix,
        ] {
            let s = format(1_396_310_700, style);
            assert_eq!(parse(&s).unwrap(), (1_396_310_700, style));
        }
    }
}
