//! OpenMetrics text for `promtool tsdb create-blocks-from openmetrics`.
//!
//! What promtool requires, found by trying Prometheus 2.42's: the text must
//! end with `# EOF` (else "data does not end with # EOF"); timestamps are
//! unix seconds; within a series samples must be in time order (an earlier
//! sample after a later one is silently dropped); `NaN`, `+Inf` and `-Inf`
//! are accepted as values. `# TYPE` lines are optional; we write one per
//! metric family and keep a family's series together.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// One gauge series: metric name, labels, `(unix seconds, value)` samples.
pub type GaugeSeries<'a> = (&'a str, &'a [(&'a str, &'a str)], Vec<(i64, f64)>);

/// Unix seconds now.
pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// Three days of `disk_used_bytes{mount="/data",service="shop-db"}` at a
/// 5-minute step ending at `end`: a disk filling 10 GB a day from 50 GB with
/// a little deterministic noise, so at ~80 GB it reaches 88 GB within a day.
pub fn disk_filling(end: i64) -> String {
    const STEP: i64 = 300;
    const DAY: i64 = 86_400;
    let start = end - 3 * DAY;
    let disk: Vec<(i64, f64)> = (0..=(3 * DAY / STEP))
        .map(|k| {
            let t = start + k * STEP;
            let days = (t - start) as f64 / DAY as f64;
            let noise = ((k * 7919) % 17) as f64 * 1e7;
            (t, 50e9 + 10e9 * days + noise)
        })
        .collect();
    openmetrics_gauges(&[(
        "disk_used_bytes",
        &[("mount", "/data"), ("service", "shop-db")][..],
        disk,
    )])
}

/// OpenMetrics text for gauges: `(name, labels, (unix secs, value) samples)`
/// per series. Samples are sorted by time and a repeated timestamp keeps its
/// first value, so promtool drops nothing. Series of one name are grouped
/// under one `# TYPE name gauge`, in first-seen order.
pub fn openmetrics_gauges(series: &[GaugeSeries<'_>]) -> String {
    let mut families: Vec<&str> = Vec::new();
    let mut by_family: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (index, (name, _, _)) in series.iter().enumerate() {
        assert!(valid_name(name), "invalid metric name {name:?}");
        if !by_family.contains_key(name) {
            families.push(name);
        }
        by_family.entry(name).or_default().push(index);
    }
    let mut out = String::new();
    for family in families {
        writeln!(out, "# TYPE {family} gauge").unwrap();
        for &index in &by_family[family] {
            let (name, labels, samples) = &series[index];
            let label_text = if labels.is_empty() {
                String::new()
            } else {
                let pairs: Vec<String> = labels
                    .iter()
                    .map(|(key, value)| {
                        assert!(valid_name(key), "invalid label name {key:?}");
                        format!("{key}=\"{}\"", escape(value))
                    })
                    .collect();
                format!("{{{}}}", pairs.join(","))
            };
            let mut sorted = samples.clone();
            sorted.sort_by_key(|&(t, _)| t);
            sorted.dedup_by_key(|&mut (t, _)| t);
            for (t, v) in sorted {
                writeln!(out, "{name}{label_text} {} {t}", format_value(v)).unwrap();
            }
        }
    }
    out.push_str("# EOF\n");
    out
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn escape(value: &str) -> String {
    value
        .replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        // Rust's shortest round-trip form, which Go's ParseFloat reads back.
        format!("{v:?}")
    }
}
