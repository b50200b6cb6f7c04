//! Durations written the Prometheus way: `500ms`, `90s`, `5m`, `1h30m`,
//! `7d`, `1w`, `1y` (units largest first, each at most once), or a bare `0`.

use std::time::Duration;

use prognos_notifiers::secret::{EXCERPT_CHARS, excerpt};

/// The longest duration accepted: 100 years. Longer is surely a typo, and
/// the bound keeps every use safe: a duration added to a timestamp (at most
/// [`MAX_TIMESTAMP`](crate::timestamp::MAX_TIMESTAMP)) or to an `Instant`
/// cannot overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Units in the order they must appear, with their length in milliseconds.
const UNITS: [(&str, u64); 7] = [
    ("y", 365 * 24 * 3_600_000),
    ("w", 7 * 24 * 3_600_000),
    ("d", 24 * 3_600_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// Parses a Prometheus-style duration: `90s`, `5m`, `1h30m`, `7d`, `1w`,
/// `500ms`, or `0`.
///
/// The error says what is allowed and shows (an excerpt of) the input; a
/// negative duration is reported as `must be ≥ 0s, got "-5m"`, one longer
/// than [`MAX_DURATION`] as `duration "200y" is too large, at most 100y`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let shown = excerpt(s, EXCERPT_CHARS);
    let bad = || format!("expected a duration like 90s, 5m, 1h30m, 7d or 500ms, got {shown:?}");
    let too_large = || format!("duration {shown:?} is too large, at most 100y");
    let t = s.trim();
    if let Some(rest) = t.strip_prefix('-') {
        return match parse_duration(rest) {
            Ok(d) if d.is_zero() => Ok(d),
            Ok(_) => Err(format!("must be ≥ 0s, got {shown:?}")),
            Err(e) if e.contains("too large") => Err(e),
            Err(_) => Err(bad()),
        };
    }
    if t == "0" {
        return Ok(Duration::ZERO);
    }
    if t.is_empty() {
        return Err(bad());
    }
    let mut rest = t;
    let mut next_unit = 0;
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        // Only digits: a parse failure is a number past u64.
        let n: u64 = rest[..digits].parse().map_err(|_| too_large())?;
        rest = &rest[digits..];
        let letters = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..letters];
        rest = &rest[letters..];
        let Some(pos) = UNITS[next_unit..].iter().position(|(u, _)| *u == unit) else {
            return Err(bad());
        };
        let ms = UNITS[next_unit + pos].1;
        next_unit += pos + 1;
        total = n
            .checked_mul(ms)
            .and_then(|v| total.checked_add(v))
            .filter(|&t| u128::from(t) <= MAX_DURATION.as_millis())
            .ok_or_else(too_large)?;
    }
    Ok(Duration::from_millis(total))
}

/// Formats a duration the way [`parse_duration`] reads it (`1h30m`, `0s`).
pub fn format_duration(d: Duration) -> String {
    let mut ms = d.as_millis() as u64;
    if ms == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for (unit, len) in UNITS {
        // Days are the largest unit written: `14d` reads better than `2w`.
        if unit == "y" || unit == "w" {
            continue;
        }
        if ms >= len {
            out.push_str(&format!("{}{unit}", ms / len));
            ms %= len;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_durations() {
        let cases = [
            ("0", 0),
            ("500ms", 500),
            ("90s", 90_000),
            ("5m", 300_000),
            ("1h30m", 5_400_000),
            ("7d", 7 * 86_400_000),
            ("1w", 7 * 86_400_000),
            ("1d12h", 36 * 3_600_000),
            ("1m30s500ms", 90_500),
        ];
        for (s, ms) in cases {
            assert_eq!(parse_duration(s), Ok(Duration::from_millis(ms)), "{s}");
        }
    }

    #[test]
    fn rejects_negative_with_the_value() {
        assert_eq!(
            parse_duration("-5m").unwrap_err(),
            "must be ≥ 0s, got \"-5m\""
        );
    }

    #[test]
    fn rejects_malformed() {
        for s in ["", "5", "5 min", "1.5h", "30m1h", "5m5m", "m", "1x", "-"] {
            let e = parse_duration(s).unwrap_err();
            assert!(e.contains("expected a duration"), "{s}: {e}");
        }
    }

    #[test]
    fn durations_past_100_years_are_too_large() {
        for s in [
            "101y",
            "18446744073709551615s",
            "99999999999999999999999ms",
            "100y1ms",
            "-101y",
        ] {
            let e = parse_duration(s).unwrap_err();
            assert!(e.contains("too large, at most 100y"), "{s}: {e}");
        }
        assert_eq!(parse_duration("100y"), Ok(MAX_DURATION));
        assert_eq!(format_duration(MAX_DURATION), "36500d");
    }

    #[test]
    fn a_huge_input_is_quoted_in_part() {
        let e = parse_duration(&"5m".repeat(100_000)).unwrap_err();
        assert!(e.len() < 400, "{} bytes", e.len());
    }

    #[test]
    fn formats_round_trip() {
        for s in ["0s", "500ms", "1m30s", "1h30m", "7d", "14d2h"] {
            assert_eq!(format_duration(parse_duration(s).unwrap()), s);
        }
    }
}
