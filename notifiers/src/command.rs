//! Telegram chat commands, parsed from the message text. Pure parsing: what
//! a command does is up to the notifier.

use crate::matcher::{Matcher, parse_matchers};
use crate::silence::MAX_DURATION_SECS;

/// A chat command.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// `/silence <duration> <matchers> [-- comment]`, e.g.
    /// `/silence 2h service="mes-api",severity=~"warn.*" -- deploying`
    Silence {
        /// How long, seconds.
        duration_secs: i64,
        /// The alerts to mute.
        matchers: Vec<Matcher>,
        /// Why (may be empty).
        comment: String,
    },
    /// `/silences`: the silences in force.
    Silences,
    /// `/unsilence <id>`
    Unsilence {
        /// The silence's id.
        id: String,
    },
    /// `/help` or `/start`
    Help,
}

/// A malformed or unknown command; the message says what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct CommandError {
    /// What was wrong and what was expected.
    pub message: String,
}

impl CommandError {
    fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

const SILENCE_USAGE: &str = "usage: /silence <duration> <matchers> [-- comment], e.g. /silence 2h service=\"mes-api\" -- deploying";

/// Parses a message text. `Ok(None)` if the text is not a command (doesn't
/// start with '/') or is a command addressed to another bot.
///
/// In a group every bot sees every command; `/silence@other_bot` is
/// Telegram's way to address one. A command with a `@name` suffix is obeyed
/// only when `name` is `bot_username` (this bot's, from `getMe`; compared
/// case-insensitively, as Telegram does); when this bot's name is not known
/// (`None`), no suffixed command is obeyed. A command without a suffix is
/// for every bot, this one included.
pub fn parse(text: &str, bot_username: Option<&str>) -> Result<Option<Command>, CommandError> {
    let text = text.trim();
    if !text.starts_with('/') {
        return Ok(None);
    }
    let (head, rest) = match text.find(char::is_whitespace) {
        Some(i) => (&text[..i], text[i..].trim()),
        None => (text, ""),
    };
    let (name, addressee) = match head[1..].split_once('@') {
        Some((name, to)) => (name, Some(to)),
        None => (&head[1..], None),
    };
    if let Some(to) = addressee
        && !bot_username.is_some_and(|me| !me.is_empty() && me.eq_ignore_ascii_case(to))
    {
        return Ok(None);
    }
    let name = name.to_ascii_lowercase();
    match name.as_str() {
        "help" | "start" => Ok(Some(Command::Help)),
        "silences" => Ok(Some(Command::Silences)),
        "unsilence" => {
            let mut words = rest.split_whitespace();
            match (words.next(), words.next()) {
                (Some(id), None) => Ok(Some(Command::Unsilence { id: id.to_string() })),
                (None, _) => Err(CommandError::new(
                    "expected a silence id: /unsilence <id> (/silences lists them)",
                )),
                (Some(_), Some(_)) => Err(CommandError::new(format!(
                    "expected one silence id, got '{rest}': /unsilence <id>"
                ))),
            }
        }
        "silence" => parse_silence(rest).map(Some),
        _ => Err(CommandError::new(format!(
            "unknown command '{head}'; the commands are /silence, /silences, /unsilence and /help"
        ))),
    }
}

fn parse_silence(rest: &str) -> Result<Command, CommandError> {
    let (duration, rest) = match rest.find(char::is_whitespace) {
        Some(i) => (&rest[..i], rest[i..].trim()),
        None => (rest, ""),
    };
    if duration.is_empty() {
        return Err(CommandError::new(format!(
            "expected a duration and matchers; {SILENCE_USAGE}"
        )));
    }
    let duration_secs = parse_duration(duration)?;
    if duration_secs > MAX_DURATION_SECS {
        return Err(CommandError::new(format!(
            "a silence may last at most 30 days (30d), got '{duration}'"
        )));
    }
    // Phones turn quotes curly; matchers need straight ones.
    let rest: String = rest
        .chars()
        .map(|c| match c {
            '\u{201c}' | '\u{201d}' | '\u{201e}' | '\u{201f}' => '"',
            _ => c,
        })
        .collect();
    let (matchers_text, comment) = split_comment(&rest);
    let matchers = matchers(matchers_text)?;
    if matchers.is_empty() {
        return Err(CommandError::new(format!(
            "expected at least one matcher like service=\"mes-api\"; {SILENCE_USAGE}"
        )));
    }
    Ok(Command::Silence {
        duration_secs,
        matchers,
        comment: comment.to_string(),
    })
}

/// Parses `30m`, `2h`, `1d`, `1w`, `1h30m` (integer + unit s, m, h, d, w,
/// repeated) into seconds, with overflow checks: a total past `i64::MAX`
/// seconds is an error, not a wrapped value. Callers bound the result
/// (a silence by [`MAX_DURATION_SECS`]).
pub fn parse_duration(text: &str) -> Result<i64, CommandError> {
    let bad = || {
        CommandError::new(format!(
            "expected a duration like 30m, 2h or 1d, got '{text}'"
        ))
    };
    let mut total: i64 = 0;
    let mut num: Option<i64> = None;
    for c in text.chars() {
        if let Some(d) = c.to_digit(10) {
            let n = num.unwrap_or(0);
            num = Some(
                n.checked_mul(10)
                    .and_then(|n| n.checked_add(i64::from(d)))
                    .ok_or_else(bad)?,
            );
            continue;
        }
        let unit: i64 = match c.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return Err(bad()),
        };
        let n = num.take().ok_or_else(bad)?;
        total = n
            .checked_mul(unit)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(bad)?;
    }
    // A trailing number without its unit ("2h30") is ambiguous.
    if num.is_some() || total <= 0 {
        return Err(bad());
    }
    Ok(total)
}

/// Splits off the comment after a standalone `--` (or the `—` phones make
/// of it) outside quotes.
fn split_comment(text: &str) -> (&str, &str) {
    let mut quoted = false;
    let mut escaped = false;
    let mut prev_space = true;
    for (i, c) in text.char_indices() {
        if escaped {
            escaped = false;
        } else if quoted && c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if !quoted && prev_space {
            let tail = &text[i..];
            for sep in ["--", "\u{2014}"] {
                if let Some(after) = tail.strip_prefix(sep)
                    && after.chars().next().is_none_or(char::is_whitespace)
                {
                    return (text[..i].trim(), after.trim());
                }
            }
        }
        prev_space = c.is_whitespace();
    }
    (text.trim(), "")
}

/// Matchers separated by commas or spaces (`a="b", c=~"d"` or `a=b c=d`),
/// braces optional; spaces around an operator are tolerated.
fn matchers(text: &str) -> Result<Vec<Matcher>, CommandError> {
    let t = text.trim();
    let t = t
        .strip_prefix('{')
        .and_then(|s| s.strip_suffix('}'))
        .unwrap_or(t);
    // Tokens split at whitespace or commas outside quotes.
    let mut tokens: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for c in t.chars() {
        if escaped {
            escaped = false;
            cur.push(c);
        } else if quoted && c == '\\' {
            escaped = true;
            cur.push(c);
        } else if c == '"' {
            quoted = !quoted;
            cur.push(c);
        } else if !quoted && (c == ',' || c.is_whitespace()) {
            if !cur.is_empty() {
                tokens.push(std::mem::take(&mut cur));
            }
        } else {
            cur.push(c);
        }
    }
    if !cur.is_empty() {
        tokens.push(cur);
    }
    // Rejoin `name = "value"` written with spaces.
    let mut items: Vec<String> = Vec::new();
    for tok in tokens {
        match items.last_mut() {
            Some(last) if ends_with_operator(last) || starts_with_operator(&tok) => {
                last.push_str(&tok);
            }
            _ => items.push(tok),
        }
    }
    let joined = items.join(",");
    parse_matchers(&joined).map_err(|e| {
        CommandError::new(format!(
            "{e}; expected matchers like service=\"mes-api\",severity=~\"warn.*\""
        ))
    })
}

fn starts_with_operator(t: &str) -> bool {
    t.starts_with('=') || t.starts_with("!=") || t.starts_with("!~")
}

fn ends_with_operator(t: &str) -> bool {
    !t.contains('"')
        && (t.ends_with('=') || t.ends_with("=~") || t.ends_with("!~"))
        && t.find(['=', '!']).is_some_and(|i| {
            let op = &t[i..];
            matches!(op, "=" | "!=" | "=~" | "!~")
        })
}

/// The help text (plain text, lists the commands with examples).
pub fn help() -> &'static str {
    "prognos bot commands:\n\
     \n\
     /silence <duration> <matchers> [-- comment]\n\
     Mutes notifications of matching alerts. Durations: 30m, 2h, 1d, 1w, 1h30m (at most 30 days).\n\
     Matchers: name=\"value\", name!=\"value\", name=~\"regex\", name!~\"regex\", separated by commas.\n\
     e.g. /silence 2h service=\"mes-api\",severity=~\"warn.*\" -- deploying\n\
     \n\
     /silences\n\
     Lists the silences in force with their ids.\n\
     \n\
     /unsilence <id>\n\
     Ends a silence, e.g. /unsilence 3f2a9c81d0b4\n\
     \n\
     /help\n\
     Shows this text."
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::matcher::MatchOp;

    /// This bot's username in the tests.
    const ME: Option<&str> = Some("prognos_bot");

    fn silence(text: &str) -> (i64, Vec<String>, String) {
        match parse(text, ME).unwrap() {
            Some(Command::Silence {
                duration_secs,
                matchers,
                comment,
            }) => (
                duration_secs,
                matchers.iter().map(ToString::to_string).collect(),
                comment,
            ),
            other => panic!("expected a silence, got {other:?}"),
        }
    }

    #[test]
    fn silence_with_matchers_and_comment() {
        let (d, m, c) =
            silence(r#"/silence 2h service="mes-api",severity=~"warn.*" -- deploying v2"#);
        assert_eq!(d, 7200);
        assert_eq!(m, vec![r#"service="mes-api""#, r#"severity=~"warn.*""#]);
        assert_eq!(c, "deploying v2");
        match parse(r#"/silence 1h team!~"a|b""#, ME).unwrap() {
            Some(Command::Silence {
                matchers, comment, ..
            }) => {
                assert_eq!(matchers[0].op, MatchOp::NotRe);
                assert_eq!(comment, "");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn matchers_may_be_spaced_braced_or_curly_quoted() {
        let want = vec![
            r#"service="mes-api""#.to_string(),
            r#"severity="critical""#.to_string(),
        ];
        assert_eq!(
            silence(r#"/silence 1h service="mes-api" severity="critical""#).1,
            want
        );
        assert_eq!(
            silence(r#"/silence 1h {service="mes-api", severity="critical"}"#).1,
            want
        );
        assert_eq!(
            silence(r#"/silence 1h service = "mes-api", severity= critical"#).1,
            want
        );
        assert_eq!(
            silence("/silence 1h service=\u{201c}mes-api\u{201d} severity=critical").1,
            want
        );
        // A quoted value keeps its spaces, commas and dashes.
        let (_, m, c) = silence(r#"/silence 1h job="a, b -- c" -- why"#);
        assert_eq!(m, vec![r#"job="a, b -- c""#]);
        assert_eq!(c, "why");
        // The phone's em dash separates the comment too.
        assert_eq!(silence("/silence 1h a=b \u{2014} deploying").2, "deploying");
        // `--` inside an unquoted value is not a separator.
        assert_eq!(silence("/silence 1h a=x--y").1, vec![r#"a="x--y""#]);
    }

    #[test]
    fn durations() {
        for (t, s) in [
            ("30s", 30),
            ("30m", 1800),
            ("2h", 7200),
            ("1d", 86_400),
            ("1w", 604_800),
            ("1h30m", 5400),
            ("1d2h3m4s", 93_784),
            ("2H", 7200),
        ] {
            assert_eq!(parse_duration(t).unwrap(), s, "{t}");
        }
        for t in [
            "abc",
            "2",
            "h",
            "2x",
            "1h30",
            "0m",
            "-1h",
            "99999999999999999999h",
            "",
        ] {
            let e = parse_duration(t).unwrap_err();
            assert!(
                e.message.contains("expected a duration like 30m, 2h or 1d"),
                "{t}: {e}"
            );
            assert!(e.message.contains(&format!("'{t}'")), "{e}");
        }
    }

    #[test]
    fn malformed_silences_say_what_was_expected() {
        let e = parse("/silence abc service=x", ME).unwrap_err();
        assert_eq!(
            e.message,
            "expected a duration like 30m, 2h or 1d, got 'abc'"
        );
        let e = parse("/silence", ME).unwrap_err();
        assert!(e.message.contains("usage: /silence"), "{e}");
        let e = parse("/silence 2h", ME).unwrap_err();
        assert!(e.message.contains("at least one matcher"), "{e}");
        let e = parse("/silence 2h -- just a comment", ME).unwrap_err();
        assert!(e.message.contains("at least one matcher"), "{e}");
        let e = parse("/silence 2h service", ME).unwrap_err();
        assert!(e.message.contains("expected name=value"), "{e}");
        let e = parse("/silence 2h team=a b", ME).unwrap_err();
        assert!(e.message.contains("expected"), "{e}");
        let e = parse(r#"/silence 2h a=~"(""#, ME).unwrap_err();
        assert!(e.message.contains("regular expression"), "{e}");
    }

    #[test]
    fn simple_commands() {
        assert_eq!(parse("/silences", ME).unwrap(), Some(Command::Silences));
        assert_eq!(parse("/help", ME).unwrap(), Some(Command::Help));
        assert_eq!(parse("  /start  ", ME).unwrap(), Some(Command::Help));
        assert_eq!(
            parse("/unsilence 3f2a9c81d0b4", ME).unwrap(),
            Some(Command::Unsilence {
                id: "3f2a9c81d0b4".into()
            })
        );
        let e = parse("/unsilence", ME).unwrap_err();
        assert!(e.message.contains("expected a silence id"), "{e}");
        let e = parse("/unsilence a b", ME).unwrap_err();
        assert!(e.message.contains("one silence id"), "{e}");
    }

    #[test]
    fn bot_name_suffix_is_accepted() {
        assert_eq!(
            parse("/silences@prognos_bot", ME).unwrap(),
            Some(Command::Silences)
        );
        assert_eq!(parse("/help@prognos_bot", ME).unwrap(), Some(Command::Help));
        let (d, m, _) = silence("/silence@prognos_bot 1h service=mes-api");
        assert_eq!((d, m), (3600, vec![r#"service="mes-api""#.to_string()]));
        assert_eq!(
            parse("/unsilence@prognos_bot abc", ME).unwrap(),
            Some(Command::Unsilence { id: "abc".into() })
        );
    }

    #[test]
    fn commands_for_another_bot_are_ignored() {
        for text in [
            "/silence@other_bot 1h service=mes-api",
            "/silences@other_bot",
            "/unsilence@other_bot abc",
            "/help@other_bot",
            "/frobnicate@other_bot",
            "/silence@ 1h service=mes-api",
        ] {
            assert_eq!(parse(text, ME), Ok(None), "{text}");
        }
        // Telegram usernames are case-insensitive.
        assert_eq!(
            parse("/silences@Prognos_Bot", ME).unwrap(),
            Some(Command::Silences)
        );
        // Without a suffix a command is for every bot.
        assert_eq!(parse("/silences", None).unwrap(), Some(Command::Silences));
    }

    #[test]
    fn suffixed_commands_are_refused_while_the_bot_name_is_unknown() {
        assert_eq!(parse("/silence@prognos_bot 1h a=b", None), Ok(None));
        assert_eq!(parse("/silences@prognos_bot", Some("")), Ok(None));
    }

    #[test]
    fn silences_longer_than_the_maximum_are_refused() {
        for (text, d) in [
            ("/silence 9223372036854775807s a=b", "9223372036854775807s"),
            ("/silence 31d a=b", "31d"),
            ("/silence 30d1s a=b", "30d1s"),
        ] {
            let e = parse(text, ME).unwrap_err();
            assert_eq!(
                e.message,
                format!("a silence may last at most 30 days (30d), got '{d}'")
            );
        }
        // Overflowing the seconds counter is a parse error, not a wrap.
        let e = parse("/silence 9223372036854775807w a=b", ME).unwrap_err();
        assert!(e.message.contains("expected a duration"), "{e}");
        assert_eq!(silence("/silence 30d a=b").0, MAX_DURATION_SECS);
    }

    #[test]
    fn plain_text_is_no_command_and_unknown_commands_are_errors() {
        assert_eq!(parse("hello", ME).unwrap(), None);
        assert_eq!(parse("", ME).unwrap(), None);
        assert_eq!(parse("  silence 2h a=b", ME).unwrap(), None);
        let e = parse("/frobnicate now", ME).unwrap_err();
        assert!(e.message.contains("unknown command '/frobnicate'"), "{e}");
        assert!(e.message.contains("/help"), "{e}");
        let e = parse("/", ME).unwrap_err();
        assert!(e.message.contains("unknown command"), "{e}");
    }

    #[test]
    fn help_lists_every_command_with_an_example() {
        let h = help();
        for c in [
            "/silence ",
            "/silences",
            "/unsilence ",
            "/help",
            "/silence 2h service=",
        ] {
            assert!(h.contains(c), "{c}");
        }
    }
}
