//! A rule's expression narrowed to one of its series, so that reading one
//! series' history asks Prometheus for that series only, not the rule's
//! thousand: `(expr) and on(l1, …) label_replace(label_replace(vector(1),
//! "l1", "v1", "l1", ""), …)`. `vector(1)` has no labels, so each
//! `label_replace` (its source label empty, matching the empty regex) gives
//! it one of the series' labels; `and on(…)` keeps the series of `expr` with
//! those values. Works on any expression, aggregations included.

use std::collections::BTreeMap;

/// Most labels matched on; a series with more is narrowed on the first
/// ones (the caller still picks the exact series from the answer).
pub const MAX_LABELS: usize = 32;

/// `expr` narrowed to the series with `labels` (its `__name__` aside, which
/// `and on` cannot match on after a function dropped it). Without labels to
/// match on, `expr` itself.
pub fn one_series(expr: &str, labels: &BTreeMap<String, String>) -> String {
    let names: Vec<(&String, &String)> = labels
        .iter()
        .filter(|(k, _)| k.as_str() != "__name__" && is_label_name(k))
        .take(MAX_LABELS)
        .collect();
    if names.is_empty() {
        return expr.to_string();
    }
    let mut one = "vector(1)".to_string();
    for (k, v) in &names {
        // The replacement expands `$1`-style references: `$$` is a dollar.
        let value = quoted(&v.replace('$', "$$"));
        one = format!("label_replace({one}, \"{k}\", {value}, \"{k}\", \"\")");
    }
    let on: Vec<&str> = names.iter().map(|(k, _)| k.as_str()).collect();
    format!("({expr}) and on({}) {one}", on.join(", "))
}

/// A PromQL double-quoted string literal of `s`.
fn quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Whether `k` is a valid Prometheus label name.
fn is_label_name(k: &str) -> bool {
    let mut chars = k.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_narrowed_query_parses_whatever_the_values() {
        let hostile = "<script>\"'\\ $1 ${x}\n}";
        let q = one_series(
            "sum by (mount, service) (rate(x_total[5m]))",
            &labels(&[
                ("__name__", "x"),
                ("mount", hostile),
                ("service", "shop-db"),
            ]),
        );
        assert!(
            promql_parser::parser::parse(&q).is_ok(),
            "{q}: {:?}",
            promql_parser::parser::parse(&q).err()
        );
        assert!(q.contains("on(mount, service)"), "{q}");
        assert!(!q.contains("\"__name__\""), "{q}");
        assert!(q.contains("$$1 $${x}"), "dollars are literal: {q}");
    }

    #[test]
    fn a_series_without_labels_is_the_expression_itself() {
        assert_eq!(one_series("sum(x)", &labels(&[])), "sum(x)");
        assert_eq!(one_series("x", &labels(&[("__name__", "x")])), "x");
    }
}
