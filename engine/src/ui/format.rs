//! Numbers, times and label sets as the pages print them.

use maud::{Markup, html};

use crate::modelled::Labels;
use crate::ui::chart::{Unit, format_value};

/// A Unix time in UTC, to the minute: `2026-12-06 23:40 UTC`.
pub fn time(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0).map_or_else(
        || t.to_string(),
        |d| d.format("%Y-%m-%d %H:%M UTC").to_string(),
    )
}

/// How long ago `t` was at `now`: `just now`, `5m ago`, `3h 10m ago`.
pub fn ago(now: i64, t: i64) -> String {
    let d = now - t;
    if d < 60 {
        "just now".to_string()
    } else {
        format!("{} ago", prognos_models::threshold::humanize_seconds(d))
    }
}

/// A length of time: `3d 4h`.
pub fn span(secs: i64) -> String {
    prognos_models::threshold::humanize_seconds(secs)
}

/// The unit a rule's values are in, from its expression's metric names
/// (Prometheus names carry their base unit: `_bytes`, `_seconds`).
pub fn unit_of(expr: &str) -> Unit {
    if expr.contains("_bytes") {
        Unit::Bytes
    } else if expr.contains("_seconds") && !expr.contains("_seconds_count") {
        Unit::Seconds
    } else {
        Unit::Plain
    }
}

/// A value in `unit`, "—" when not finite: the charts' own format, so a
/// page's text and its axes read alike.
pub fn value(v: f64, unit: Unit) -> String {
    format_value(v, unit)
}

/// An anomaly score, two decimals.
pub fn score(s: f64) -> String {
    if s.is_finite() {
        format!("{s:.2}")
    } else {
        "—".to_string()
    }
}

/// A label set as chips, `__name__` first as the metric's name.
pub fn labels(l: &Labels) -> Markup {
    html! {
        span.labels {
            @if let Some(n) = l.get("__name__") { code.metric { (n) } " " }
            @for (k, v) in l.iter().filter(|(k, _)| k.as_str() != "__name__") {
                code.label { (k) "=" (v) } " "
            }
        }
    }
}

/// A label set in one line of text (`a="b", c="d"`), for titles.
pub fn labels_text(l: &Labels) -> String {
    let mut s = String::new();
    for (k, v) in l {
        if !s.is_empty() {
            s.push_str(", ");
        }
        s.push_str(k);
        s.push_str("=\"");
        s.push_str(v);
        s.push('"');
    }
    if s.is_empty() { "{}".to_string() } else { s }
}
