//! Label matchers as Alertmanager writes them: `name="value"`, `name!="value"`,
//! `name=~"regex"`, `name!~"regex"` (regexes anchored at both ends). Used by
//! routes, silences and remediation bindings.

use std::fmt;

use regex::{Regex, RegexBuilder};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::payload::KeyValues;

/// The most memory one matcher's compiled regex may take, bytes (regex
/// `size_limit`; the crate's default is 10 MiB). Matchers also come from the
/// silence API and chat commands, and many are held at once: a hostile
/// `(?:a{1000}){1000}` must fail to compile rather than take megabytes.
/// Real label matchers compile far below it: `.*` to about 1 KiB, `\w+` to
/// 50 KiB, `.{1,63}` to 64 KiB, `(?s).{1,256}` to 251 KiB.
pub const MAX_REGEX_BYTES: usize = 256 * 1024;

/// The most memory one matcher's lazy DFA cache may grow to, bytes (regex
/// `dfa_size_limit`; default 2 MiB): bounds what matching many different
/// label values can accumulate per regex. Too small a cache only makes the
/// regex crate match with a slower engine, never wrongly.
pub const MAX_REGEX_CACHE_BYTES: usize = 64 * 1024;

/// How a matcher compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    /// `=`
    Eq,
    /// `!=`
    NotEq,
    /// `=~`
    Re,
    /// `!~`
    NotRe,
}

impl MatchOp {
    fn as_str(self) -> &'static str {
        match self {
            MatchOp::Eq => "=",
            MatchOp::NotEq => "!=",
            MatchOp::Re => "=~",
            MatchOp::NotRe => "!~",
        }
    }
}

/// One label matcher. A missing label matches as the empty string.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// The label name.
    pub name: String,
    /// The comparison.
    pub op: MatchOp,
    /// The value or regex as written.
    pub value: String,
    regex: Option<Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.op == other.op && self.value == other.value
    }
}

/// A matcher that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("matcher '{input}': {message}")]
pub struct MatcherError {
    /// The text given.
    pub input: String,
    /// What was expected.
    pub message: String,
}

impl Matcher {
    /// A matcher from its parts; a regex that does not compile is an error.
    pub fn new(name: &str, op: MatchOp, value: &str) -> Result<Self, MatcherError> {
        let err = |message: String| MatcherError {
            input: format!("{name}{}{value:?}", op.as_str()),
            message,
        };
        if !valid_name(name) {
            return Err(err(format!(
                "expected a label name ([a-zA-Z_][a-zA-Z0-9_]*), got '{name}'"
            )));
        }
        let regex = match op {
            MatchOp::Re | MatchOp::NotRe => Some(
                RegexBuilder::new(&format!("^(?:{value})$"))
                    .size_limit(MAX_REGEX_BYTES)
                    .dfa_size_limit(MAX_REGEX_CACHE_BYTES)
                    .build()
                    .map_err(|e| err(format!("expected a regular expression: {e}")))?,
            ),
            _ => None,
        };
        Ok(Self {
            name: name.to_string(),
            op,
            value: value.to_string(),
            regex,
        })
    }

    /// Parses `name=value`, `name!="value"`, `name=~"re"`, `name!~re`.
    pub fn parse(text: &str) -> Result<Self, MatcherError> {
        let t = text.trim();
        let err = |message: &str| MatcherError {
            input: t.to_string(),
            message: message.to_string(),
        };
        let pos = t
            .find(['=', '!'])
            .ok_or_else(|| err("expected name=value, name!=value, name=~regex or name!~regex"))?;
        let name = t[..pos].trim();
        let rest = &t[pos..];
        let (op, value) = if let Some(v) = rest.strip_prefix("=~") {
            (MatchOp::Re, v)
        } else if let Some(v) = rest.strip_prefix("!~") {
            (MatchOp::NotRe, v)
        } else if let Some(v) = rest.strip_prefix("!=") {
            (MatchOp::NotEq, v)
        } else if let Some(v) = rest.strip_prefix('=') {
            (MatchOp::Eq, v)
        } else {
            return Err(err("expected one of =, !=, =~, !~ after the label name"));
        };
        let value = unquote(value.trim()).map_err(|m| err(&m))?;
        Self::new(name, op, &value).map_err(|e| MatcherError {
            input: t.to_string(),
            message: e.message,
        })
    }

    /// Whether `labels` satisfy this matcher.
    pub fn matches(&self, labels: &KeyValues) -> bool {
        self.matches_value(labels.get(&self.name).map_or("", String::as_str))
    }

    /// Whether a label value `v` satisfies this matcher (`""` stands for a
    /// missing label).
    pub fn matches_value(&self, v: &str) -> bool {
        match (self.op, &self.regex) {
            (MatchOp::Eq, _) => v == self.value,
            (MatchOp::NotEq, _) => v != self.value,
            (MatchOp::Re, Some(r)) => r.is_match(v),
            (MatchOp::NotRe, Some(r)) => !r.is_match(v),
            _ => false,
        }
    }
}

/// Parses a list: `{a="b", c=~"d|e"}` or `a=b, c=~d|e` (commas outside quotes
/// separate; braces optional). Empty input gives no matchers.
pub fn parse_matchers(text: &str) -> Result<Vec<Matcher>, MatcherError> {
    let t = text.trim();
    let t = t
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .unwrap_or(t);
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for c in t.chars() {
        match c {
            _ if escaped => {
                escaped = false;
                cur.push(c);
            }
            '\\' if quoted => {
                escaped = true;
                cur.push(c);
            }
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ',' if !quoted => {
                if !cur.trim().is_empty() {
                    out.push(Matcher::parse(&cur)?);
                }
                cur.clear();
            }
            _ => cur.push(c),
        }
    }
    if !cur.trim().is_empty() {
        out.push(Matcher::parse(&cur)?);
    }
    Ok(out)
}

/// Whether every matcher matches.
pub fn all_match(matchers: &[Matcher], labels: &KeyValues) -> bool {
    matchers.iter().all(|m| m.matches(labels))
}

fn valid_name(name: &str) -> bool {
    let mut cs = name.chars();
    matches!(cs.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && cs.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn unquote(v: &str) -> Result<String, String> {
    let Some(inner) = v.strip_prefix('"') else {
        return Ok(v.to_string());
    };
    let inner = inner
        .strip_suffix('"')
        .ok_or_else(|| "expected a closing '\"'".to_string())?;
    let mut out = String::new();
    let mut cs = inner.chars();
    while let Some(c) = cs.next() {
        if c == '\\' {
            match cs.next() {
                Some('n') => out.push('\n'),
                Some(c) => out.push(c),
                None => return Err("expected a character after '\\'".to_string()),
            }
        } else {
            out.push(c);
        }
    }
    Ok(out)
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{:?}", self.name, self.op.as_str(), self.value)
    }
}

impl Serialize for Matcher {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Matcher {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Matcher::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> KeyValues {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_four_operators_match_like_alertmanager() {
        let l = labels(&[("severity", "critical"), ("service", "mes-api")]);
        assert!(Matcher::parse("severity=critical").unwrap().matches(&l));
        assert!(
            Matcher::parse(r#"severity!="warning""#)
                .unwrap()
                .matches(&l)
        );
        assert!(Matcher::parse(r#"service=~"mes-.*""#).unwrap().matches(&l));
        assert!(
            !Matcher::parse(r#"service=~"mes""#).unwrap().matches(&l),
            "anchored"
        );
        assert!(Matcher::parse("service!~shop.*").unwrap().matches(&l));
        assert!(
            Matcher::parse(r#"team="""#).unwrap().matches(&l),
            "missing is empty"
        );
    }

    #[test]
    fn lists_split_on_commas_outside_quotes() {
        let ms = parse_matchers(r#"{service=~"a,b|c", team="x\"y"}"#).unwrap();
        assert_eq!(ms.len(), 2);
        assert_eq!(ms[0].value, "a,b|c");
        assert_eq!(ms[1].value, "x\"y");
        assert!(parse_matchers("  ").unwrap().is_empty());
    }

    #[test]
    fn bad_matchers_say_what_was_expected() {
        let e = Matcher::parse("severity").unwrap_err();
        assert!(e.message.contains("expected name=value"), "{e}");
        let e = Matcher::parse("9x=a").unwrap_err();
        assert!(e.message.contains("label name"), "{e}");
        let e = Matcher::parse("a=~\"(\"").unwrap_err();
        assert!(e.message.contains("regular expression"), "{e}");
        let e = Matcher::parse("a=\"open").unwrap_err();
        assert!(e.message.contains("closing"), "{e}");
    }

    #[test]
    fn a_regex_too_big_to_compile_is_refused() {
        let e = Matcher::parse(r#"a=~"(?:a{1000}){1000}""#).unwrap_err();
        assert!(e.message.contains("regular expression"), "{e}");
        // Ordinary matchers stay under the limit.
        for t in [
            r#"a=~".*""#,
            r#"a=~".{1,63}""#,
            r#"a=~"\\w+""#,
            r#"a=~"\\w+-\\d+""#,
            r#"a=~"(mes|shop|billing|auth|search|cart|ledger)-(api|db|worker).*""#,
        ] {
            assert!(Matcher::parse(t).is_ok(), "{t}");
        }
    }

    #[test]
    fn matches_value_treats_empty_as_missing() {
        let m = Matcher::parse(r#"team!="""#).unwrap();
        assert!(!m.matches_value(""));
        assert!(!m.matches(&labels(&[])));
        assert!(m.matches_value("x"));
        assert!(m.matches(&labels(&[("team", "x")])));
    }

    #[test]
    fn display_round_trips() {
        for t in [r#"a="b""#, r#"a!~"x|y""#, r#"a=~"q\"z""#] {
            let m = Matcher::parse(t).unwrap();
            assert_eq!(Matcher::parse(&m.to_string()).unwrap(), m);
        }
    }
}
