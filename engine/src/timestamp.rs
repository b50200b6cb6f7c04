//! Timestamps prognos reads — `2014-04-01 00:05:00` (UTC, optional fraction),
//! RFC 3339, or Unix seconds (integer or decimal) — and writes back in the
//! style of the input.

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};

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
pub fn parse(s: &str) -> Result<(i64, TimestampStyle), String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<i64>() {
        return Ok((secs, TimestampStyle::Unix));
    }
    if let Ok(secs) = s.parse::<f64>()
        && secs.is_finite()
        && secs.abs() < 1e15
    {
        return Ok((secs.floor() as i64, TimestampStyle::Unix));
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok((t.timestamp(), TimestampStyle::Rfc3339));
    }
    for fmt in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Ok((t.and_utc().timestamp(), TimestampStyle::Naive));
        }
    }
    Err(format!(
        "'{s}' is not a timestamp: expected 'YYYY-MM-DD HH:MM:SS', RFC 3339 or Unix seconds"
    ))
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
