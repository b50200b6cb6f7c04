//! Untrusted text made safe to place: every field clamped to a length, and
//! control characters replaced (single-line fields lose their line breaks,
//! so no header or line injection). Escaping is each format's job.

use std::borrow::Cow;

// Clamps on untrusted fields, in characters before escaping. Escaping can
// grow a character to six (`&quot;`), so the longest (description) still
// fits a Telegram message: 600 × 6 < 4,096.
pub(super) const NAME_MAX: usize = 120;
pub(super) const SUMMARY_MAX: usize = 300;
pub(super) const DESCRIPTION_MAX: usize = 600;
pub(super) const LABEL_VALUE_MAX: usize = 120;
pub(super) const LABELS_MAX: usize = 600;
pub(super) const EXPR_MAX: usize = 300;
pub(super) const URL_MAX: usize = 2000;
pub(super) const TITLE_NAMES: usize = 3;
pub(super) const TITLE_PART_MAX: usize = 60;
pub(super) const TITLE_MAX: usize = 200;
pub(super) const CAPTION_TITLE_MAX: usize = 140;
pub(super) const CAPTION_SUMMARY_MAX: usize = 140;

/// `s` on one line (control characters become spaces), at most `max` characters.
pub(super) fn one_line(s: &str, max: usize) -> Cow<'_, str> {
    sanitize(s, max, false)
}

/// `s` with its line breaks kept (other control characters become spaces),
/// at most `max` characters.
pub(super) fn clamp(s: &str, max: usize) -> Cow<'_, str> {
    sanitize(s, max, true)
}

fn sanitize(s: &str, max: usize, keep_newlines: bool) -> Cow<'_, str> {
    let bad = |c: char| c.is_control() && !(keep_newlines && c == '\n');
    let long = s.len() > max && s.chars().nth(max).is_some();
    if !long && !s.chars().any(bad) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len().min(max * 4));
    for (i, c) in s.chars().enumerate() {
        if long && i + 1 >= max {
            out.push('…');
            break;
        }
        out.push(if bad(c) { ' ' } else { c });
    }
    Cow::Owned(out)
}
