//! Errors found while loading configuration and rule files: each names the
//! file, line, column, group, rule and field, Prometheus `rulefmt` style.
//!
//! A file named as a rule file may be anything (`/etc/shadow`, a key file
//! behind a symlink), so an error never carries more of it than the
//! offending token, cut to [`QUOTED_CHARS`], and never the value of a
//! secret field: [`ConfigError::new`] enforces it on every message.

use std::fmt;
use std::path::PathBuf;

use prognos_notifiers::secret::{excerpt, is_sensitive_param};

/// Longest quoted token (a value, key or name taken from a file) an error
/// shows, in characters: enough to recognise a misspelt key, a bad duration
/// or a rule name, too short to carry a key or a file's contents.
pub const QUOTED_CHARS: usize = 48;

/// Longest message of one error, in characters, after its quoted tokens
/// are cut: a safety net for messages of other libraries (PromQL, YAML)
/// that quote input in their own way, keeping each error on one short line.
pub const MESSAGE_CHARS: usize = 320;

/// Longest context (`group "…", rule "…"`) and field path, in characters.
const PLACE_CHARS: usize = 160;

/// One problem in a configuration or rule file.
///
/// Displays as
/// `rules/shop.yml:12:5: group "storage", rule "shop_db_full": field 'for': must be ≥ 0s, got "-5m"`.
/// Parts that do not apply (no line for an unreadable file, no rule for a
/// global setting) are left out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file the problem is in, as the user named it (or as the glob
    /// found it, joined to the config file's directory).
    pub file: PathBuf,
    /// 1-based line; 0 when the problem has no place in the file.
    pub line: usize,
    /// 1-based column; 0 when unknown.
    pub column: usize,
    /// Where in the file, for a reader: `group "storage", rule "ShopDbFullSoon"`.
    pub context: String,
    /// The field, as a path below the context: `condition.forecast.within`.
    pub field: String,
    /// What is wrong, showing the bad value and what is allowed.
    pub message: String,
}

impl ConfigError {
    /// An error whose context, field and message show no more of the file
    /// than they must: every quoted token (`"…"` or `` `…` ``) is cut to
    /// [`QUOTED_CHARS`], the whole to [`MESSAGE_CHARS`], and when `field`
    /// names a secret (a header, a password, a token) its quoted value is
    /// replaced by its length.
    pub fn new(
        file: impl Into<PathBuf>,
        line: usize,
        column: usize,
        context: &str,
        field: &str,
        message: &str,
    ) -> Self {
        let message = if is_secret_field(field) {
            hide_quoted(message)
        } else {
            cap_quoted(message, QUOTED_CHARS)
        };
        ConfigError {
            file: file.into(),
            line,
            column,
            context: excerpt(&cap_quoted(context, QUOTED_CHARS), PLACE_CHARS),
            field: excerpt(field, PLACE_CHARS),
            message: excerpt(&message, MESSAGE_CHARS),
        }
    }
}

/// Whether the field at `path` (`a.b[2].headers.Authorization`) holds a
/// secret value: any header, or a key named like a credential. The
/// `*_file` and `*_env` fields name where a secret is, not the secret.
pub(crate) fn is_secret_field(path: &str) -> bool {
    let keys: Vec<&str> = path
        .split(['.', '['])
        .filter(|k| !k.is_empty() && !k.ends_with(']'))
        .collect();
    let Some(last) = keys.last() else {
        return false;
    };
    keys.contains(&"headers")
        || (is_sensitive_param(last) && !last.ends_with("_file") && !last.ends_with("_env"))
}

/// `text` with the inside of every `"…"` (Rust debug quoting, `\"`
/// escaped) and `` `…` `` token cut to `max` characters.
pub(crate) fn cap_quoted(text: &str, max: usize) -> String {
    map_quoted(text, |token| excerpt(token, max))
}

/// `text` with every `"…"` token replaced by its length: for the values of
/// secret fields, of which nothing may be shown.
pub(crate) fn hide_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MESSAGE_CHARS));
    let mut rest = text;
    while let Some(start) = rest.find('"') {
        out.push_str(&rest[..start]);
        let (token, after) = split_token(&rest[start + 1..], '"');
        out.push_str(&format!(
            "({} characters, not shown)",
            token.chars().count()
        ));
        rest = after.unwrap_or("");
    }
    out.push_str(rest);
    out
}

/// Applies `f` to the inside of each quoted token of `text`.
fn map_quoted(text: &str, f: impl Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(text.len().min(MESSAGE_CHARS));
    let mut rest = text;
    while let Some(start) = rest.find(['"', '`']) {
        let quote = if rest[start..].starts_with('"') {
            '"'
        } else {
            '`'
        };
        out.push_str(&rest[..=start]);
        let (token, after) = split_token(&rest[start + 1..], quote);
        out.push_str(&f(token));
        if after.is_some() {
            out.push(quote);
        }
        rest = after.unwrap_or("");
    }
    out.push_str(rest);
    out
}

/// Splits `text` (just after an opening `quote`) into the token and what
/// follows its closing quote, `None` when the token is unterminated (it
/// runs to the end); a `"` token may hold `\"` escapes.
fn split_token(text: &str, quote: char) -> (&str, Option<&str>) {
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' && quote == '"' {
            escaped = true;
        } else if c == quote {
            return (&text[..i], Some(&text[i + 1..]));
        }
    }
    (text, None)
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
            if self.column > 0 {
                write!(f, ":{}", self.column)?;
            }
        }
        f.write_str(": ")?;
        if !self.context.is_empty() {
            write!(f, "{}: ", self.context)?;
        }
        if !self.field.is_empty() {
            write!(f, "field '{}': ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in one load, in file order. Never empty when
/// returned as an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_like_rulefmt() {
        let e = ConfigError {
            file: "rules/shop.yml".into(),
            line: 12,
            column: 5,
            context: r#"group "storage", rule "shop_db_full""#.into(),
            field: "for".into(),
            message: r#"must be ≥ 0s, got "-5m""#.into(),
        };
        assert_eq!(
            e.to_string(),
            r#"rules/shop.yml:12:5: group "storage", rule "shop_db_full": field 'for': must be ≥ 0s, got "-5m""#
        );
    }

    #[test]
    fn leaves_out_missing_parts() {
        let e = ConfigError {
            file: "prognos.yml".into(),
            line: 0,
            column: 0,
            context: String::new(),
            field: String::new(),
            message: "cannot read: gone".into(),
        };
        assert_eq!(e.to_string(), "prognos.yml: cannot read: gone");
        let all = ConfigErrors(vec![e.clone(), e]);
        assert_eq!(all.to_string().lines().count(), 2);
    }

    #[test]
    fn quoted_tokens_are_cut() {
        let long = "S".repeat(1000);
        let e = ConfigError::new(
            "r.yml",
            1,
            1,
            &format!("group {long:?}"),
            "expr",
            &format!("bad {long:?} and `{long}` and \"short\""),
        );
        let shown = e.to_string();
        assert!(shown.len() < 500, "{} bytes: {shown}", shown.len());
        assert!(shown.contains(&format!("\"{}… (952 more bytes)\"", "S".repeat(48))));
        assert!(shown.ends_with("and \"short\""), "{shown}");
    }

    #[test]
    fn escaped_quotes_do_not_end_a_token() {
        let inner = format!("{:?}", format!("a\"{}", "b".repeat(100)));
        let capped = cap_quoted(&format!("got {inner}!"), 10);
        assert!(capped.starts_with("got \"a\\\"bbbbbbb…"), "{capped}");
        assert!(capped.ends_with("\"!"), "{capped}");
        assert_eq!(
            cap_quoted("open \"unterminated", 3),
            "open \"unt… (9 more bytes)"
        );
    }

    #[test]
    fn secret_fields_show_no_value() {
        let e = ConfigError::new(
            "p.yml",
            3,
            7,
            "",
            "remediation.actions[0].headers.X-Api-Key",
            "expected a string, got \"PWCANARY\"",
        );
        assert!(!e.to_string().contains("PWCANARY"), "{e}");
        assert!(e.message.contains("(8 characters, not shown)"), "{e}");
        assert!(is_secret_field("global.prometheus.basic_auth.password"));
        assert!(is_secret_field("a.webhook[0].headers.Accept"));
        assert!(!is_secret_field("a.telegram[0].token_file"));
        assert!(!is_secret_field("groups[0].rules[1].expr"));
    }
}
