//! Checks PromQL with promql-parser and finds where an error is.
//!
//! promql-parser's errors carry no position, so the position is inferred:
//! from the error kind (an unclosed bracket, an unknown function) or, for a
//! plain syntax error, as the first token after the longest prefix that
//! parses.

use prognos_models::forecast::Bounds;
use promql_parser::parser::{self, Expr, VectorSelector, value::ValueType};

/// A PromQL error: a 0-based character offset into the query and the
/// parser's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PromqlError {
    pub offset: usize,
    pub message: String,
}

/// Parses `query`; it must give an instant vector or a scalar, as a range
/// query needs.
pub(crate) fn check(query: &str) -> Result<(), PromqlError> {
    match parser::parse(query) {
        Ok(expr) => match expr.value_type() {
            ValueType::Vector | ValueType::Scalar => Ok(()),
            other => Err(PromqlError {
                offset: 0,
                message: format!("must give an instant vector or a scalar, got a {other}"),
            }),
        },
        Err(message) => Err(PromqlError {
            offset: position(query, &message),
            message,
        }),
    }
}

/// Endings of Prometheus metric names whose values cannot be negative:
/// counters (`_total`, `_count`, `_bucket`), sizes (`_bytes`, `_size`),
/// fractions (`_ratio`, `_percent`) and message counts (`_messages`).
/// Left out on purpose: `_seconds` (clock offsets such as
/// `node_timex_offset_seconds` are signed; `_seconds_total` ends in
/// `_total`), `_sum` (a histogram of signed observations), temperatures,
/// volts and amperes.
pub(crate) const NON_NEGATIVE_SUFFIXES: [&str; 8] = [
    "_total",
    "_count",
    "_bucket",
    "_bytes",
    "_size",
    "_ratio",
    "_percent",
    "_messages",
];

/// Functions whose result is never negative when none of their arguments
/// is. Left out: those that can turn a non-negative series negative
/// (`deriv`, `delta`, `idelta`, `predict_linear`,
/// `double_exponential_smoothing`, `holt_winters`, `ln`, `log2`, `log10`,
/// the trigonometric ones) and `histogram_quantile`, whose result is in the
/// unit of the bucket bounds, not of the counts.
const NON_NEGATIVE_FUNCTIONS: [&str; 40] = [
    "abs",
    "absent",
    "absent_over_time",
    "avg_over_time",
    "ceil",
    "changes",
    "clamp",
    "clamp_max",
    "clamp_min",
    "count_over_time",
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "days_in_month",
    "exp",
    "floor",
    "hour",
    "increase",
    "irate",
    "label_join",
    "label_replace",
    "last_over_time",
    "mad_over_time",
    "max_over_time",
    "min_over_time",
    "minute",
    "month",
    "present_over_time",
    "quantile_over_time",
    "rate",
    "resets",
    "round",
    "scalar",
    "sort",
    "sort_desc",
    "sqrt",
    "stddev_over_time",
    "stdvar_over_time",
    "sum_over_time",
    "vector",
];

/// The bounds a query's values are known to keep from Prometheus naming:
/// `[0, null]` when it selects at least one metric, every metric it selects
/// ends in one of [`NON_NEGATIVE_SUFFIXES`], and nothing in it can turn a
/// value negative (a subtraction, a negation, a negative number, a function
/// outside [`NON_NEGATIVE_FUNCTIONS`]); unbounded otherwise, and for a query
/// that does not parse.
pub(crate) fn inferred_bounds(query: &str) -> Bounds {
    let Ok(expr) = parser::parse(query) else {
        return Bounds::NONE;
    };
    let mut selectors = 0;
    if non_negative(&expr, &mut selectors) && selectors > 0 {
        Bounds::NON_NEGATIVE
    } else {
        Bounds::NONE
    }
}

/// Whether `expr` can only give values ≥ 0; counts the selectors seen.
fn non_negative(expr: &Expr, selectors: &mut usize) -> bool {
    let named = |vs: &VectorSelector, selectors: &mut usize| {
        *selectors += 1;
        vs.name
            .as_deref()
            .is_some_and(|n| NON_NEGATIVE_SUFFIXES.iter().any(|s| n.ends_with(s)))
    };
    match expr {
        Expr::VectorSelector(vs) => named(vs, selectors),
        Expr::MatrixSelector(m) => named(&m.vs, selectors),
        Expr::NumberLiteral(n) => n.val >= 0.0,
        Expr::StringLiteral(_) => true,
        Expr::Paren(p) => non_negative(&p.expr, selectors),
        Expr::Subquery(q) => non_negative(&q.expr, selectors),
        // Parameters (topk's k, quantile's φ, count_values' label) are no values.
        Expr::Aggregate(a) => non_negative(&a.expr, selectors),
        Expr::Binary(b) => {
            let op = b.op.to_string();
            let allowed = matches!(
                op.as_str(),
                "+" | "*"
                    | "/"
                    | "%"
                    | "^"
                    | "=="
                    | "!="
                    | ">"
                    | "<"
                    | ">="
                    | "<="
                    | "and"
                    | "or"
                    | "unless"
            );
            // Both sides are walked so every selector is counted and checked.
            let lhs = non_negative(&b.lhs, selectors);
            let rhs = non_negative(&b.rhs, selectors);
            allowed && lhs && rhs
        }
        Expr::Call(c) => {
            let known = NON_NEGATIVE_FUNCTIONS.contains(&c.func.name);
            c.args
                .args
                .iter()
                .fold(known, |ok, a| non_negative(a, selectors) && ok)
        }
        Expr::Unary(_) | Expr::Extension(_) => false,
    }
}

/// Where in `query` the error `message` most likely is (byte offset).
fn position(query: &str, message: &str) -> usize {
    let byte = if message.contains("unclosed left parenthesis") {
        unmatched_open(query, '(', ')')
    } else if message.contains("inside braces") {
        unmatched_open(query, '{', '}')
    } else if message.contains("inside brackets") || message.contains("unclosed left bracket") {
        unmatched_open(query, '[', ']')
    } else if message.contains("unexpected right parenthesis") {
        unmatched_close(query, '(', ')')
    } else if message.contains("unterminated quoted string") {
        last_open_quote(query)
    } else if let Some(name) = quoted_after(message, "function with name '")
        .or_else(|| quoted_after(message, "in call to function '"))
    {
        query.find(&format!("{name}(")).or_else(|| query.find(name))
    } else if let Some(c) = quoted_after(message, "unexpected character: '") {
        outside_strings(query)
            .find(|&(_, ch)| c.starts_with(ch))
            .map(|(i, _)| i)
    } else {
        None
    };
    let byte = byte.unwrap_or_else(|| after_longest_valid_prefix(query));
    query[..byte.min(query.len())].chars().count()
}

/// The text between `prefix` and the next `'` in `message`.
fn quoted_after<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    let start = message.find(prefix)? + prefix.len();
    let len = message[start..].find('\'')?;
    Some(&message[start..start + len])
}

/// Characters outside string literals, with their byte offsets.
fn outside_strings(query: &str) -> impl Iterator<Item = (usize, char)> + '_ {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    query.char_indices().filter(move |&(_, c)| {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' && q != '`' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            false
        } else if matches!(c, '"' | '\'' | '`') {
            quote = Some(c);
            false
        } else {
            true
        }
    })
}

fn unmatched_open(query: &str, open: char, close: char) -> Option<usize> {
    let mut stack = Vec::new();
    for (i, c) in outside_strings(query) {
        if c == open {
            stack.push(i);
        } else if c == close {
            stack.pop();
        }
    }
    stack.pop()
}

fn unmatched_close(query: &str, open: char, close: char) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in outside_strings(query) {
        if c == open {
            depth += 1;
        } else if c == close {
            if depth == 0 {
                return Some(i);
            }
            depth -= 1;
        }
    }
    None
}

fn last_open_quote(query: &str) -> Option<usize> {
    let mut open = None;
    let mut escaped = false;
    for (i, c) in query.char_indices() {
        if let Some((_, q)) = open {
            if escaped {
                escaped = false;
            } else if c == '\\' && q != '`' {
                escaped = true;
            } else if c == q {
                open = None;
            }
        } else if matches!(c, '"' | '\'' | '`') {
            open = Some((i, c));
        }
    }
    open.map(|(i, _)| i)
}

/// The offset of the first non-blank character after the longest prefix of
/// `query` that parses on its own.
fn after_longest_valid_prefix(query: &str) -> usize {
    let ends: Vec<usize> = query
        .char_indices()
        .map(|(i, c)| i + c.len_utf8())
        .collect();
    let end = ends
        .iter()
        .rev()
        .copied()
        .find(|&e| parser::parse(&query[..e]).is_ok())
        .unwrap_or(0);
    let skipped = query[end..].len() - query[end..].trim_start().len();
    end + skipped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offset(q: &str) -> usize {
        check(q).unwrap_err().offset
    }

    #[test]
    fn accepts_instant_queries() {
        for q in [
            r#"pg_database_size_bytes{datname="shop"}"#,
            "sum by (queue) (rabbitmq_queue_messages_ready)",
            "rate(process_cpu_seconds_total[5m]) * 100",
            "1",
        ] {
            assert_eq!(check(q), Ok(()), "{q}");
        }
    }

    #[test]
    fn rejects_range_vectors() {
        let e = check("up[5m]").unwrap_err();
        assert!(e.message.contains("instant vector"), "{}", e.message);
    }

    #[test]
    fn non_negative_names_give_a_lower_bound_of_zero() {
        for q in [
            r#"pg_database_size_bytes{datname="shop"}"#,
            r#"100 * sum by (job) (rate(process_cpu_seconds_total{job=~"crm-api|mes-api"}[5m]))"#,
            "sum by (job) (process_resident_memory_bytes)",
            "max by (instance) (rate(rabbitmq_global_messages_dead_lettered_rejected_total[5m]))",
            "(sum(rate(a_total[5m]))) / (sum(rate(b_total[5m])))",
            "topk(3, avg_over_time(x_ratio[1h]))",
            "rabbitmq_queue_messages > 100",
            r#"label_replace(x_bytes, "a", "$1", "b", "(.*)")"#,
        ] {
            assert_eq!(inferred_bounds(q), Bounds::NON_NEGATIVE, "{q}");
        }
    }

    #[test]
    fn no_bound_is_inferred_where_a_value_can_be_negative() {
        for q in [
            r#"100 * (1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m])))"#,
            "a_bytes - b_bytes",
            "-x_bytes",
            "deriv(x_bytes[1h])",
            "delta(x_bytes[1h])",
            "predict_linear(x_bytes[1h], 3600)",
            "clamp_min(x_bytes, -5)",
            "x_bytes + on() node_timex_offset_seconds",
            "rabbitmq_queue_messages_ready",
            "histogram_quantile(0.9, rate(x_bucket[5m]))",
            r#"{__name__="x_bytes"}"#,
            "vector(1)",
            "sum(",
        ] {
            assert_eq!(inferred_bounds(q), Bounds::NONE, "{q}");
        }
    }

    #[test]
    fn positions_point_at_the_culprit() {
        assert_eq!(offset("sum(rate(x[5m])"), 3);
        assert_eq!(offset(r#"foo{a="b""#), 3);
        assert_eq!(offset("foo bar"), 4);
        assert_eq!(offset("rate(x[5m]) +"), 12);
        assert_eq!(offset("sum(x))"), 6);
        assert_eq!(offset("1 + nosuchfn(x)"), 4);
        assert_eq!(offset(r#"x{a="b} + 1"#), 4);
        assert_eq!(offset("rate(x) > 1"), 0);
    }
}
