//! Checks PromQL with promql-parser and finds where an error is.
//!
//! promql-parser's errors carry no position, so the position is inferred:
//! from the error kind (an unclosed bracket, an unknown function) or, for a
//! plain syntax error, as the first token after the longest prefix that
//! parses.

use promql_parser::parser::{self, value::ValueType};

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
