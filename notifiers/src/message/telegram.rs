//! The Telegram rendering: the HTML message (whole alert blocks while they
//! fit in 4,096 characters, then how many more) and the photo caption (the
//! lead alert's key facts within 1,024 characters).

use std::borrow::Cow;

use super::text::{CAPTION_SUMMARY_MAX, CAPTION_TITLE_MAX, one_line};
use super::view::View;
use super::{MAX_CAPTION_CHARS, more_line};
use crate::alert::{AlertInfo, Notification};
use crate::telegram;

/// A Telegram link, or nothing (the URL was checked by `view::web_url`).
fn tg_link(text: &str, url: &str) -> String {
    format!(
        "<a href=\"{}\">{}</a>",
        telegram::escape(url),
        telegram::escape(text)
    )
}

/// One alert's lines in Telegram HTML.
fn tg_block(v: &View<'_>) -> Vec<String> {
    let mut lines = Vec::with_capacity(10);
    let mut head = format!("{} <b>{}</b>", v.emoji(), telegram::escape(&v.name));
    if let Some(s) = &v.summary {
        head.push_str(" — ");
        head.push_str(&telegram::escape(s));
    }
    lines.push(head);
    if let Some(d) = &v.description {
        lines.push(format!("<i>{}</i>", telegram::escape(d)));
    }
    for (k, text) in &v.facts {
        lines.push(telegram::line(&format!("{k}:"), text));
    }
    if let Some(x) = &v.expr {
        lines.push(format!(
            "<b>Query:</b> <code>{}</code>",
            telegram::escape(x)
        ));
    }
    if !v.labels.is_empty() {
        lines.push(telegram::line("Labels:", &v.labels));
    }
    if !v.links.is_empty() {
        let links: Vec<String> = v.links.iter().map(|(t, u)| tg_link(t, u)).collect();
        lines.push(format!("🔗 {}", links.join(" · ")));
    }
    lines
}

fn chars(lines: &[String]) -> usize {
    // Joined with newlines, as telegram::message does.
    lines.iter().map(|l| l.chars().count() + 1).sum::<usize>()
}

/// The Telegram message: whole alert blocks while they fit, then how many more.
pub(super) fn telegram_message(
    n: &Notification,
    title: &str,
    listed: &[View<'_>],
    firing: usize,
) -> String {
    let title_line = format!("<b>{}</b>", telegram::escape(title));
    let mut lines = vec![title_line];
    // Room kept for the "… and N more" line.
    let reserve = 80;
    let budget = telegram::MAX_MESSAGE_CHARS - reserve;
    let mut used = chars(&lines);
    let (mut shown, mut shown_firing) = (0, 0);
    for v in listed {
        let mut block = tg_block(v);
        block.insert(0, String::new());
        let size = chars(&block);
        if used + size > budget {
            if shown == 0 {
                // Show as much of the first alert as fits: some facts beat none.
                for l in block {
                    let n = l.chars().count() + 1;
                    if used + n <= budget {
                        used += n;
                        lines.push(l);
                    }
                }
                shown = 1;
                shown_firing = usize::from(v.firing);
            }
            break;
        }
        used += size;
        lines.extend(block);
        shown += 1;
        shown_firing += usize::from(v.firing);
    }
    if shown < n.alerts.len() {
        lines.push(String::new());
        lines.push(telegram::escape(&more_line(n, shown, shown_firing, firing)));
    }
    telegram::message(&lines)
}

/// The photo caption: the title and the lead alert's key facts, whole lines
/// while they fit in [`MAX_CAPTION_CHARS`], so no tag or entity is ever cut.
pub(super) fn caption(
    n: &Notification,
    title: &str,
    lead: Option<&AlertInfo>,
    tz: &str,
    firing: usize,
) -> String {
    let mut lines = vec![format!(
        "<b>{}</b>",
        telegram::escape(&one_line(title, CAPTION_TITLE_MAX))
    )];
    if let Some(a) = lead {
        let mut v = View::of(a, tz);
        // The caption is short: a shorter summary, no description or query.
        v.summary = v
            .summary
            .map(|s| Cow::Owned(one_line(&s, CAPTION_SUMMARY_MAX).into_owned()));
        v.description = None;
        v.expr = None;
        let block = tg_block(&v);
        let more = (n.alerts.len() > 1).then(|| {
            let lead_firing = usize::from(v.firing);
            let m = more_line(n, 1, lead_firing, firing);
            telegram::escape(&m)
        });
        let reserve = more.as_ref().map_or(0, |m| m.chars().count() + 1);
        let mut used = chars(&lines) - 1;
        for l in block {
            let size = l.chars().count() + 1;
            if used + size + reserve <= MAX_CAPTION_CHARS {
                used += size;
                lines.push(l);
            }
        }
        lines.extend(more);
    }
    let out = lines.join("\n");
    debug_assert!(out.chars().count() <= MAX_CAPTION_CHARS);
    out
}
