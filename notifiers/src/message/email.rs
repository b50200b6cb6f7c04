//! The email rendering: the plain-text part and the HTML part, which shows
//! the chart inline (`cid:chart`) when there is one. The subject is the
//! notification's title.

use std::borrow::Cow;
use std::fmt::Write as _;

use super::more_line;
use super::text::{NAME_MAX, one_line};
use super::view::View;
use crate::alert::Notification;

pub(super) fn email_text(
    n: &Notification,
    title: &str,
    listed: &[View<'_>],
    firing: usize,
) -> String {
    let mut s = String::with_capacity(256 + listed.len() * 512);
    s.push_str(title);
    s.push('\n');
    let mut shown_firing = 0;
    for v in listed {
        shown_firing += usize::from(v.firing);
        let _ = write!(s, "\n{} {} {}", v.emoji(), v.status(), v.name);
        if let Some(summary) = &v.summary {
            let _ = write!(s, " — {summary}");
        }
        s.push('\n');
        if let Some(d) = &v.description {
            for l in d.lines() {
                let _ = writeln!(s, "   {l}");
            }
        }
        for (k, text) in &v.facts {
            let _ = writeln!(s, "   {k}: {text}");
        }
        if let Some(x) = &v.expr {
            let _ = writeln!(s, "   Query: {x}");
        }
        if !v.labels.is_empty() {
            let _ = writeln!(s, "   Labels: {}", v.labels);
        }
        for (t, u) in &v.links {
            let _ = writeln!(s, "   {}: {u}", capitalise(t));
        }
    }
    if listed.len() < n.alerts.len() {
        let _ = writeln!(s, "\n{}", more_line(n, listed.len(), shown_firing, firing));
    }
    s
}

fn capitalise(s: &str) -> Cow<'_, str> {
    let mut c = s.chars();
    match c.next() {
        Some(f) if f.is_lowercase() => Cow::Owned(f.to_uppercase().chain(c).collect()),
        _ => Cow::Borrowed(s),
    }
}

/// Escapes text for HTML content and attribute values.
fn html(s: &str) -> Cow<'_, str> {
    if !s.contains(['<', '>', '&', '"', '\'']) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

const TH: &str = "width:150px;text-align:left;vertical-align:top;padding:4px 12px;color:#555;font-weight:normal;white-space:nowrap";
const TD: &str = "padding:4px 12px;vertical-align:top";

pub(super) fn email_html(
    n: &Notification,
    title: &str,
    listed: &[View<'_>],
    firing: usize,
    chart: bool,
) -> String {
    let mut s = String::with_capacity(1024 + listed.len() * 1536);
    let t = html(title);
    let _ = write!(
        s,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{t}</title></head>\n\
         <body style=\"margin:0;padding:16px;background:#f4f5f7;font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;font-size:14px;color:#222\">\n\
         <h2 style=\"margin:0 0 12px;font-size:18px\">{t}</h2>\n"
    );
    if chart {
        s.push_str(
            "<img src=\"cid:chart\" alt=\"chart\" width=\"800\" style=\"display:block;max-width:100%;height:auto;border:1px solid #ddd;background:#fff;margin-bottom:12px\">\n",
        );
    }
    let mut shown_firing = 0;
    for v in listed {
        shown_firing += usize::from(v.firing);
        let colour = if v.firing { "#d9411e" } else { "#2e9b4f" };
        let _ = write!(
            s,
            "<table role=\"presentation\" style=\"border-collapse:collapse;width:100%;max-width:800px;margin:0 0 12px;background:#fff;border:1px solid #ddd;border-left:4px solid {colour}\">\n\
             <tr><td colspan=\"2\" style=\"padding:8px 12px;font-size:15px\">{} <b>{}</b>",
            v.emoji(),
            html(&v.name)
        );
        if let Some(summary) = &v.summary {
            let _ = write!(s, " — {}", html(summary));
        }
        s.push_str("</td></tr>\n");
        if let Some(d) = &v.description {
            let _ = writeln!(
                s,
                "<tr><td colspan=\"2\" style=\"{TD};white-space:pre-wrap;color:#333\">{}</td></tr>",
                html(d)
            );
        }
        let _ = writeln!(
            s,
            "<tr><th style=\"{TH}\">Status</th><td style=\"{TD};color:{colour};font-weight:bold\">{}</td></tr>",
            v.status()
        );
        for (k, text) in &v.facts {
            let _ = writeln!(
                s,
                "<tr><th style=\"{TH}\">{k}</th><td style=\"{TD}\">{}</td></tr>",
                html(text)
            );
        }
        if let Some(x) = &v.expr {
            let _ = writeln!(
                s,
                "<tr><th style=\"{TH}\">Query</th><td style=\"{TD}\"><code style=\"font-size:12px\">{}</code></td></tr>",
                html(x)
            );
        }
        if !v.labels.is_empty() {
            let _ = writeln!(
                s,
                "<tr><th style=\"{TH}\">Labels</th><td style=\"{TD};font-size:12px;color:#444\">{}</td></tr>",
                html(&v.labels)
            );
        }
        if !v.links.is_empty() {
            let _ = write!(s, "<tr><th style=\"{TH}\">Links</th><td style=\"{TD}\">");
            for (i, (text, url)) in v.links.iter().enumerate() {
                if i > 0 {
                    s.push_str(" · ");
                }
                let _ = write!(
                    s,
                    "<a href=\"{}\" style=\"color:#1a5fb4\">{text}</a>",
                    html(url)
                );
            }
            s.push_str("</td></tr>\n");
        }
        s.push_str("</table>\n");
    }
    if listed.len() < n.alerts.len() {
        let _ = writeln!(
            s,
            "<p style=\"margin:0 0 12px;color:#555\">{}</p>",
            html(&more_line(n, listed.len(), shown_firing, firing))
        );
    }
    let _ = write!(
        s,
        "<p style=\"margin:16px 0 0;color:#888;font-size:12px\">Sent by prognos to {}.</p>\n</body></html>\n",
        html(&one_line(&n.receiver, NAME_MAX))
    );
    s
}
