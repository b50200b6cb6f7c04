//! One alert's facts as plain, clamped text ([`View`]), shared by every
//! format: the value with its expectation and band, the time to threshold,
//! the anomaly score, times, labels and the links that are safe to show.

use std::borrow::Cow;
use std::fmt::Write as _;

use super::text::{
    DESCRIPTION_MAX, EXPR_MAX, LABEL_VALUE_MAX, LABELS_MAX, NAME_MAX, SUMMARY_MAX, URL_MAX, clamp,
    one_line,
};
use crate::alert::{AlertInfo, Explanation, Status};
use crate::number::short_number;

/// One alert's facts, as plain (unescaped, clamped) text.
pub(super) struct View<'a> {
    pub(super) firing: bool,
    pub(super) name: Cow<'a, str>,
    pub(super) summary: Option<Cow<'a, str>>,
    pub(super) description: Option<Cow<'a, str>>,
    /// (what, text), e.g. ("Value", "950k, expected 120 (95% band 80–160)").
    pub(super) facts: Vec<(&'static str, String)>,
    /// The PromQL expression, shown as code.
    pub(super) expr: Option<Cow<'a, str>>,
    /// All labels but `alertname`, `k=v, k=v`.
    pub(super) labels: String,
    /// (text, http(s) URL).
    pub(super) links: Vec<(&'static str, String)>,
}

impl<'a> View<'a> {
    pub(super) fn of(a: &'a AlertInfo, tz: &str) -> Self {
        let firing = a.status == Status::Firing;
        let annotation = |k: &str, max: usize, multiline: bool| {
            a.annotations
                .get(k)
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
                .map(|s| {
                    if multiline {
                        clamp(s, max)
                    } else {
                        one_line(s, max)
                    }
                })
        };
        let mut facts = Vec::with_capacity(6);
        let e = a.explanation.as_ref();
        facts.push(("Value", value_fact(a, e)));
        if let Some(e) = e {
            if let Some(t) = threshold_fact(e) {
                facts.push(("Time to threshold", t));
            }
            if let Some(s) = e.anomaly_score {
                facts.push(("Anomaly score", score(s)));
            }
        }
        facts.push(("Started", time(a.starts_at, tz)));
        if let (Status::Resolved, Some(end)) = (a.status, a.ends_at) {
            facts.push(("Resolved", time(end, tz)));
        }
        let mut links = Vec::with_capacity(2);
        if let Some(u) = e.and_then(|e| e.dashboard_url.as_deref()).and_then(web_url) {
            links.push(("Grafana panel", u));
        }
        if let Some(u) = web_url(&a.generator_url) {
            links.push(("this series in prognos", u));
        }
        Self {
            firing,
            name: one_line(a.name(), NAME_MAX),
            summary: annotation("summary", SUMMARY_MAX, false),
            description: annotation("description", DESCRIPTION_MAX, true),
            facts,
            expr: e
                .map(|e| e.expr.trim())
                .filter(|x| !x.is_empty())
                .map(|x| one_line(x, EXPR_MAX)),
            labels: labels(a),
            links,
        }
    }

    pub(super) fn emoji(&self) -> &'static str {
        if self.firing { "🔥" } else { "✅" }
    }

    pub(super) fn status(&self) -> &'static str {
        if self.firing { "FIRING" } else { "RESOLVED" }
    }
}

/// "950k, expected 120 (95% band 80–160)"; without an explanation, the
/// rule's value.
fn value_fact(a: &AlertInfo, e: Option<&Explanation>) -> String {
    let Some(e) = e else {
        return short_number(a.value);
    };
    let mut s = match e.current {
        Some(c) => short_number(c),
        None => short_number(a.value),
    };
    if let Some(x) = e.expected {
        let _ = write!(s, ", expected {}", short_number(x));
        if let Some(band) = e.band {
            let _ = write!(s, " ({})", band_text(band, e.level));
        }
    } else if let Some(band) = e.band {
        let _ = write!(s, " ({})", band_text(band, e.level));
    }
    s
}

/// "95% band 80–160".
fn band_text((lo, hi): (f64, f64), level: Option<f64>) -> String {
    let range = format!("{}–{}", short_number(lo), short_number(hi));
    match level.filter(|l| l.is_finite() && *l > 0.0 && *l <= 1.0) {
        Some(l) => format!("{}% band {range}", short_number(l * 100.0)),
        None => format!("band {range}"),
    }
}

/// "in ~3d 4h (between 2d and 5d), threshold 1k".
fn threshold_fact(e: &Explanation) -> Option<String> {
    let threshold = e.threshold.map(short_number);
    match (&e.eta, threshold) {
        (Some(eta), th) => {
            let mut s = if eta.text.trim().is_empty() {
                eta_text(eta.seconds, eta.earliest, eta.latest)
            } else {
                one_line(&eta.text, EXPR_MAX).into_owned()
            };
            if let Some(th) = th {
                let _ = write!(s, ", threshold {th}");
            }
            Some(s)
        }
        (None, Some(th)) => Some(format!("not within the forecast, threshold {th}")),
        (None, None) => None,
    }
}

/// Fallback wording when the ETA comes without text.
fn eta_text(seconds: f64, earliest: Option<f64>, latest: Option<f64>) -> String {
    let mut s = format!("in ~{}", duration(seconds));
    match (earliest, latest) {
        (Some(a), Some(b)) => {
            let _ = write!(s, " (between {} and {})", duration(a), duration(b));
        }
        (Some(a), None) => {
            let _ = write!(s, " (from {})", duration(a));
        }
        _ => {}
    }
    s
}

/// Seconds as "3d 4h", "2h 5m", "7m"; "n/a" when not finite or negative.
fn duration(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "n/a".to_string();
    }
    let s = secs.round() as u64;
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => "<1m".to_string(),
        (0, 0, m) => format!("{m}m"),
        (0, h, 0) => format!("{h}h"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, 0, _) => format!("{d}d"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

/// An anomaly score, two decimals.
fn score(s: f64) -> String {
    if s.is_finite() {
        format!("{s:.2}")
    } else {
        "n/a".to_string()
    }
}

/// Unix seconds as "2026-11-24 07:30 UTC".
fn time(secs: i64, tz: &str) -> String {
    match chrono::DateTime::from_timestamp(secs, 0) {
        Some(t) => format!("{} {}", t.format("%Y-%m-%d %H:%M"), one_line(tz, 20)),
        None => "n/a".to_string(),
    }
}

/// All labels but `alertname`: `k=v, k=v`, clamped.
pub(super) fn labels(a: &AlertInfo) -> String {
    let mut s = String::new();
    for (k, v) in a.labels.iter().filter(|(k, _)| k.as_str() != "alertname") {
        if !s.is_empty() {
            s.push_str(", ");
        }
        s.push_str(&one_line(k, LABEL_VALUE_MAX));
        s.push('=');
        s.push_str(&one_line(v, LABEL_VALUE_MAX));
        if s.chars().count() > LABELS_MAX {
            return one_line(&s, LABELS_MAX).into_owned();
        }
    }
    s
}

/// The URL, normalised, if it is an absolute http(s) URL of sane length.
fn web_url(raw: &str) -> Option<String> {
    let raw = raw.trim();
    if raw.is_empty() || raw.len() > URL_MAX {
        return None;
    }
    let u = url::Url::parse(raw).ok()?;
    matches!(u.scheme(), "http" | "https").then(|| u.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(duration(30.0), "<1m");
        assert_eq!(duration(420.0), "7m");
        assert_eq!(duration(7500.0), "2h 5m");
        assert_eq!(duration(273_600.0), "3d 4h");
        assert_eq!(duration(172_800.0), "2d");
        assert_eq!(duration(f64::NAN), "n/a");
        assert_eq!(
            eta_text(273_600.0, Some(172_800.0), Some(432_000.0)),
            "in ~3d 4h (between 2d and 5d)"
        );
    }
}
