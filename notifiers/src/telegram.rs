//! Telegram messages in its HTML parse mode. Label values and annotations are
//! untrusted text: everything is escaped, and a message is cut to Telegram's
//! limit without splitting an escape or a tag.

/// Telegram's limit on a message's text, in characters (after entity parsing
/// it counts the visible text, but the API rejects longer raw texts too).
pub const MAX_MESSAGE_CHARS: usize = 4096;

/// What ends a cut message.
pub const TRUNCATION_MARK: &str = "\n…";

/// Escapes text for Telegram's HTML parse mode (`<`, `>`, `&`, and `"` for attributes).
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// One line of a message: a bold title and escaped text.
pub fn line(title: &str, text: &str) -> String {
    format!("<b>{}</b> {}", escape(title), escape(text))
}

/// Joins lines (already HTML) into a message of at most [`MAX_MESSAGE_CHARS`]
/// characters: whole lines are kept while they fit, then the mark is added.
pub fn message(lines: &[String]) -> String {
    let budget = MAX_MESSAGE_CHARS - TRUNCATION_MARK.chars().count();
    let mut out = String::new();
    let mut used = 0;
    for (i, l) in lines.iter().enumerate() {
        let sep = usize::from(i > 0);
        let n = l.chars().count();
        if used + sep + n > budget {
            if out.is_empty() {
                // A single overlong line: cut it at a safe point (not inside an entity or tag).
                out = cut_html(l, budget);
            }
            out.push_str(TRUNCATION_MARK);
            return out;
        }
        if sep == 1 {
            out.push('\n');
        }
        out.push_str(l);
        used += sep + n;
    }
    out
}

/// The longest prefix of `html` with at most `max` characters that does not
/// end inside an entity (`&…;`) or a tag (`<…>`), with open `<b>` closed.
fn cut_html(html: &str, max: usize) -> String {
    let closing = "</b>";
    let limit = max.saturating_sub(closing.len());
    let mut safe_end = 0;
    let (mut in_tag, mut in_entity) = (false, false);
    for (count, (i, c)) in html.char_indices().enumerate() {
        if count >= limit {
            break;
        }
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            '&' => in_entity = true,
            ';' => in_entity = false,
            _ => {}
        }
        if !in_tag && !in_entity {
            safe_end = i + c.len_utf8();
        }
    }
    let mut out = html[..safe_end].to_string();
    if out.matches("<b>").count() > out.matches("</b>").count() {
        out.push_str(closing);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn untrusted_label_values_are_escaped() {
        assert_eq!(
            line("service", "<script>&\"x\""),
            "<b>service</b> &lt;script&gt;&amp;&quot;x&quot;"
        );
    }

    #[test]
    fn long_messages_keep_whole_lines_and_say_they_were_cut() {
        let lines: Vec<String> = (0..1000)
            .map(|i| line("alert", &format!("number {i}")))
            .collect();
        let m = message(&lines);
        assert!(m.chars().count() <= MAX_MESSAGE_CHARS);
        let kept: Vec<&str> = m.trim_end_matches(TRUNCATION_MARK).lines().collect();
        assert!(kept.len() > 100 && kept.len() < 1000);
        for (i, l) in kept.iter().enumerate() {
            assert_eq!(*l, format!("<b>alert</b> number {i}"), "lines are whole");
        }
        assert!(m.ends_with(TRUNCATION_MARK));
    }

    #[test]
    fn one_overlong_line_is_cut_outside_entities() {
        let l = line("x", &"&".repeat(5000));
        let m = message(&[l]);
        assert!(m.chars().count() <= MAX_MESSAGE_CHARS);
        let body = m.trim_end_matches(TRUNCATION_MARK);
        assert!(body.ends_with("&amp;"), "{}", &body[body.len() - 10..]);
    }

    proptest! {
        #[test]
        fn messages_never_exceed_the_limit_and_escape_everything(texts in proptest::collection::vec(".{0,300}", 0..40)) {
            let lines: Vec<String> = texts.iter().map(|t| line("k", t)).collect();
            let m = message(&lines);
            prop_assert!(m.chars().count() <= MAX_MESSAGE_CHARS);
            // No raw '<' from the untrusted text survives: every '<' starts one of our tags.
            let stripped = m.replace("<b>", "").replace("</b>", "");
            prop_assert!(!stripped.contains('<'));
        }
    }
}
