//! A notification rendered for every channel: Telegram (message and photo
//! caption), email (subject, text, HTML) and the PNG chart. The same facts go
//! everywhere; label values and annotations are untrusted, so each format
//! escapes them, single-line fields lose control characters (no header or
//! line injection) and every field is clamped so one huge value cannot push
//! the rest out of a size-limited message.
//!
//! Cost stays proportional to the alerts listed in full, not to the group:
//! a group of 1,000 alerts is counted, and only the first few are rendered.

use std::borrow::Cow;
use std::fmt::Write as _;

use crate::alert::{AlertInfo, Explanation, Notification, Status};
use crate::delivery::Rendered;
use crate::telegram;

/// How notifications are rendered.
#[derive(Debug, Clone, PartialEq)]
pub struct RenderOptions {
    /// Draw the PNG chart of the lead alert.
    pub chart: bool,
    /// List at most this many alerts in full, then "… and N more".
    pub max_alerts_listed: usize,
    /// Printed after times, which are always UTC ("2026-11-24 07:30 UTC").
    pub time_zone_label: String,
}

impl Default for RenderOptions {
    fn default() -> Self {
        Self {
            chart: true,
            max_alerts_listed: 20,
            time_zone_label: "UTC".to_string(),
        }
    }
}

/// The chart's size in pixels.
pub const CHART_SIZE: (u32, u32) = (800, 400);
/// Telegram's limit on a photo caption, in characters.
pub const MAX_CAPTION_CHARS: usize = 1024;

// Clamps on untrusted fields, in characters before escaping. Escaping can
// grow a character to six (`&quot;`), so the longest (description) still
// fits a Telegram message: 600 × 6 < 4,096.
const NAME_MAX: usize = 120;
const SUMMARY_MAX: usize = 300;
const DESCRIPTION_MAX: usize = 600;
const LABEL_VALUE_MAX: usize = 120;
const LABELS_MAX: usize = 600;
const EXPR_MAX: usize = 300;
const URL_MAX: usize = 2000;
const TITLE_NAMES: usize = 3;
const TITLE_PART_MAX: usize = 60;
const TITLE_MAX: usize = 200;
const CAPTION_TITLE_MAX: usize = 140;
const CAPTION_SUMMARY_MAX: usize = 140;

/// Renders a notification for every channel.
pub fn render(n: &Notification, o: &RenderOptions) -> Rendered {
    let firing = n
        .alerts
        .iter()
        .filter(|a| a.status == Status::Firing)
        .count();
    let title = title(n, firing);
    let listed: Vec<View<'_>> = n
        .alerts
        .iter()
        .take(o.max_alerts_listed)
        .map(|a| View::of(a, &o.time_zone_label))
        .collect();
    let lead = n.lead();

    let chart_png = if o.chart { lead.and_then(chart) } else { None };

    let telegram_html = telegram_message(n, &title, &listed, firing);
    let telegram_caption_html = caption(n, &title, lead, &o.time_zone_label, firing);
    let email_text = email_text(n, &title, &listed, firing);
    let email_html = email_html(n, &title, &listed, firing, chart_png.is_some());
    Rendered {
        email_subject: title.clone(),
        title,
        telegram_html,
        telegram_caption_html,
        email_text,
        email_html,
        chart_png,
    }
}

/// The lead alert's chart, if it has something to draw. Its title names the
/// one series drawn (the notification's title may cover many).
fn chart(a: &AlertInfo) -> Option<Vec<u8>> {
    let e = a.explanation.as_ref()?;
    if e.history.is_empty() && e.forecast.is_empty() {
        return None;
    }
    let labels = labels(a);
    let title = if labels.is_empty() {
        one_line(a.name(), NAME_MAX).into_owned()
    } else {
        format!("{} — {labels}", one_line(a.name(), NAME_MAX))
    };
    match crate::chart::render_png(e, &title, CHART_SIZE.0, CHART_SIZE.1) {
        Ok(png) => Some(png),
        Err(err) => {
            tracing::warn!(alert = a.name(), error = %err, "no chart for the notification");
            None
        }
    }
}

/// `[FIRING:3] MesQueueBacklog, MesCpuHigh — service=mes-api`, one line.
fn title(n: &Notification, firing: usize) -> String {
    let mut t = if firing > 0 {
        format!("[FIRING:{firing}]")
    } else {
        "[RESOLVED]".to_string()
    };
    // The names of the alerts the status is about, each once, in order.
    let mut names: Vec<&str> = Vec::new();
    let mut more = 0usize;
    let mut seen = std::collections::HashSet::new();
    for a in &n.alerts {
        if firing > 0 && a.status != Status::Firing {
            continue;
        }
        let name = a.name();
        if seen.insert(name) {
            if names.len() < TITLE_NAMES {
                names.push(name);
            } else {
                more += 1;
            }
        }
    }
    for (i, name) in names.iter().enumerate() {
        t.push_str(if i == 0 { " " } else { ", " });
        t.push_str(&one_line(name, TITLE_PART_MAX));
    }
    if more > 0 {
        let _ = write!(t, " +{more}");
    }
    if !n.group_labels.is_empty() {
        t.push_str(" —");
        for (i, (k, v)) in n.group_labels.iter().enumerate() {
            t.push_str(if i == 0 { " " } else { ", " });
            t.push_str(&one_line(k, TITLE_PART_MAX));
            t.push('=');
            t.push_str(&one_line(v, TITLE_PART_MAX));
        }
    }
    one_line(&t, TITLE_MAX).into_owned()
}

/// One alert's facts, as plain (unescaped, clamped) text.
struct View<'a> {
    firing: bool,
    name: Cow<'a, str>,
    summary: Option<Cow<'a, str>>,
    description: Option<Cow<'a, str>>,
    /// (what, text), e.g. ("Value", "950k, expected 120 (95% band 80–160)").
    facts: Vec<(&'static str, String)>,
    /// The PromQL expression, shown as code.
    expr: Option<Cow<'a, str>>,
    /// All labels but `alertname`, `k=v, k=v`.
    labels: String,
    /// (text, http(s) URL).
    links: Vec<(&'static str, String)>,
}

impl<'a> View<'a> {
    fn of(a: &'a AlertInfo, tz: &str) -> Self {
        let firing = a.status == Status::Firing;
        let annotation = |k: &str, max: usize, multiline: bool| {
            a.annotations
                .get(k)
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
                .map(|s| {
                    if multiline {
                        clamp(s, max)
                    } else {
                        one_line(s, max)
                    }
                })
        };
        let mut facts = Vec::with_capacity(6);
        let e = a.explanation.as_ref();
        facts.push(("Value", value_fact(a, e)));
        if let Some(e) = e {
            if let Some(t) = threshold_fact(e) {
                facts.push(("Time to threshold", t));
            }
            if let Some(s) = e.anomaly_score {
                facts.push(("Anomaly score", score(s)));
            }
        }
        facts.push(("Started", time(a.starts_at, tz)));
        if let (Status::Resolved, Some(end)) = (a.status, a.ends_at) {
            facts.push(("Resolved", time(end, tz)));
        }
        let mut links = Vec::with_capacity(2);
        if let Some(u) = e.and_then(|e| e.dashboard_url.as_deref()).and_then(web_url) {
            links.push(("Grafana panel", u));
        }
        if let Some(u) = web_url(&a.generator_url) {
            links.push(("forecast in prognos", u));
        }
        Self {
            firing,
            name: one_line(a.name(), NAME_MAX),
            summary: annotation("summary", SUMMARY_MAX, false),
            description: annotation("description", DESCRIPTION_MAX, true),
            facts,
            expr: e
                .map(|e| e.expr.trim())
                .filter(|x| !x.is_empty())
                .map(|x| one_line(x, EXPR_MAX)),
            labels: labels(a),
            links,
        }
    }

    fn emoji(&self) -> &'static str {
        if self.firing { "🔥" } else { "✅" }
    }

    fn status(&self) -> &'static str {
        if self.firing { "FIRING" } else { "RESOLVED" }
    }
}

/// "950k, expected 120 (95% band 80–160)"; without an explanation, the
/// rule's value.
fn value_fact(a: &AlertInfo, e: Option<&Explanation>) -> String {
    let Some(e) = e else {
        return short_number(a.value);
    };
    let mut s = match e.current {
        Some(c) => short_number(c),
        None => short_number(a.value),
    };
    if let Some(x) = e.expected {
        let _ = write!(s, ", expected {}", short_number(x));
        if let Some(band) = e.band {
            let _ = write!(s, " ({})", band_text(band, e.level));
        }
    } else if let Some(band) = e.band {
        let _ = write!(s, " ({})", band_text(band, e.level));
    }
    s
}

/// "95% band 80–160".
fn band_text((lo, hi): (f64, f64), level: Option<f64>) -> String {
    let range = format!("{}–{}", short_number(lo), short_number(hi));
    match level.filter(|l| l.is_finite() && *l > 0.0 && *l <= 1.0) {
        Some(l) => format!("{}% band {range}", short_number(l * 100.0)),
        None => format!("band {range}"),
    }
}

/// "in ~3d 4h (between 2d and 5d), threshold 1k".
fn threshold_fact(e: &Explanation) -> Option<String> {
    let threshold = e.threshold.map(short_number);
    match (&e.eta, threshold) {
        (Some(eta), th) => {
            let mut s = if eta.text.trim().is_empty() {
                eta_text(eta.seconds, eta.earliest, eta.latest)
            } else {
                one_line(&eta.text, EXPR_MAX).into_owned()
            };
            if let Some(th) = th {
                let _ = write!(s, ", threshold {th}");
            }
            Some(s)
        }
        (None, Some(th)) => Some(format!("not within the forecast, threshold {th}")),
        (None, None) => None,
    }
}

/// Fallback wording when the ETA comes without text.
fn eta_text(seconds: f64, earliest: Option<f64>, latest: Option<f64>) -> String {
    let mut s = format!("in ~{}", duration(seconds));
    match (earliest, latest) {
        (Some(a), Some(b)) => {
            let _ = write!(s, " (between {} and {})", duration(a), duration(b));
        }
        (Some(a), None) => {
            let _ = write!(s, " (from {})", duration(a));
        }
        _ => {}
    }
    s
}

/// Seconds as "3d 4h", "2h 5m", "7m"; "n/a" when not finite or negative.
fn duration(secs: f64) -> String {
    if !secs.is_finite() || secs < 0.0 {
        return "n/a".to_string();
    }
    let s = secs.round() as u64;
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    match (d, h, m) {
        (0, 0, 0) => "<1m".to_string(),
        (0, 0, m) => format!("{m}m"),
        (0, h, 0) => format!("{h}h"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, 0, _) => format!("{d}d"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

/// An anomaly score, two decimals.
fn score(s: f64) -> String {
    if s.is_finite() {
        format!("{s:.2}")
    } else {
        "n/a".to_string()
    }
}

/// Unix seconds as "2026-11-24 07:30 UTC".
fn time(secs: i64, tz: &str) -> String {
    match chrono::DateTime::from_timestamp(secs, 0) {
        Some(t) => format!("{} {}", t.format("%Y-%m-%d %H:%M"), one_line(tz, 20)),
        None => "n/a".to_string(),
    }
}

/// All labels but `alertname`: `k=v, k=v`, clamped.
fn labels(a: &AlertInfo) -> String {
    let mut s = String::new();
    for (k, v) in a.labels.iter().filter(|(k, _)| k.as_str() != "alertname") {
        if !s.is_empty() {
            s.push_str(", ");
        }
        s.push_str(&one_line(k, LABEL_VALUE_MAX));
        s.push('=');
        s.push_str(&one_line(v, LABEL_VALUE_MAX));
        if s.chars().count() > LABELS_MAX {
            return one_line(&s, LABELS_MAX).into_owned();
        }
    }
    s
}

/// The URL, normalised, if it is an absolute http(s) URL of sane length.
fn web_url(raw: &str) -> Option<String> {
    let raw = raw.trim();
    if raw.is_empty() || raw.len() > URL_MAX {
        return None;
    }
    let u = url::Url::parse(raw).ok()?;
    matches!(u.scheme(), "http" | "https").then(|| u.to_string())
}

/// `s` on one line (control characters become spaces), at most `max` characters.
fn one_line(s: &str, max: usize) -> Cow<'_, str> {
    sanitize(s, max, false)
}

/// `s` with its line breaks kept (other control characters become spaces),
/// at most `max` characters.
fn clamp(s: &str, max: usize) -> Cow<'_, str> {
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

/// "… and 980 more (975 firing, 5 resolved)", for the alerts not listed.
fn more_line(n: &Notification, listed: usize, listed_firing: usize, firing: usize) -> String {
    let rest = n.alerts.len() - listed;
    let rest_firing = firing - listed_firing;
    let rest_resolved = rest - rest_firing;
    match (rest_firing, rest_resolved) {
        (_, 0) | (0, _) => format!("… and {rest} more"),
        (f, r) => format!("… and {rest} more ({f} firing, {r} resolved)"),
    }
}

// ---------------------------------------------------------------- Telegram

/// A Telegram link, or nothing (the URL was checked by [`web_url`]).
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
fn telegram_message(n: &Notification, title: &str, listed: &[View<'_>], firing: usize) -> String {
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
fn caption(
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

// ---------------------------------------------------------------- email

fn email_text(n: &Notification, title: &str, listed: &[View<'_>], firing: usize) -> String {
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

fn email_html(
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

// ---------------------------------------------------------------- numbers

/// A number for people: "n/a" when not finite, SI suffixes from a thousand
/// on (`1.23M`, `950k`), at most four significant digits otherwise.
pub fn short_number(v: f64) -> String {
    if !v.is_finite() {
        return "n/a".to_string();
    }
    if v == 0.0 {
        return "0".to_string();
    }
    let sign = if v < 0.0 { "-" } else { "" };
    let a = v.abs();
    if a < 1e-3 {
        return format!("{sign}{}", scientific(a));
    }
    if a < 1000.0 {
        let s = significant(a, 4);
        // Rounding can carry into the thousands (999.96 → "1000"): that is still readable.
        return format!("{sign}{s}");
    }
    const SUFFIXES: [(f64, &str); 5] =
        [(1e3, "k"), (1e6, "M"), (1e9, "G"), (1e12, "T"), (1e15, "P")];
    for (i, (scale, suffix)) in SUFFIXES.iter().enumerate() {
        let scaled = a / scale;
        if scaled >= 1000.0 && i + 1 < SUFFIXES.len() {
            continue;
        }
        let s = significant(scaled, 3);
        // 999,950 rounds to "1000k": say "1M" instead.
        if s == "1000"
            && let Some((_, next)) = SUFFIXES.get(i + 1)
        {
            return format!("{sign}1{next}");
        }
        if scaled >= 1000.0 {
            return format!("{sign}{}", scientific(a));
        }
        return format!("{sign}{s}{suffix}");
    }
    format!("{sign}{}", scientific(a))
}

/// `a` (positive, finite) with `digits` significant digits, trailing zeros trimmed.
fn significant(a: f64, digits: i32) -> String {
    let magnitude = a.log10().floor() as i32;
    let decimals = (digits - 1 - magnitude).max(0) as usize;
    let s = format!("{a:.decimals$}");
    trim_zeros(s)
}

/// `a` in scientific notation with three significant digits, e.g. `1.5e-6`.
fn scientific(a: f64) -> String {
    let s = format!("{a:.2e}");
    match s.split_once('e') {
        Some((mantissa, exp)) => format!("{}e{exp}", trim_zeros(mantissa.to_string())),
        None => s,
    }
}

fn trim_zeros(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{Eta, ForecastPoint};
    use crate::payload::KeyValues;

    const T0: i64 = 1_795_000_000; // 2026-11-18 11:06:40 UTC

    fn kv(pairs: &[(&str, &str)]) -> KeyValues {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn explanation() -> Explanation {
        Explanation {
            condition: "time_to_threshold".into(),
            expr: "mes_queue_depth{service=\"mes-api\"}".into(),
            current: Some(950_000.0),
            expected: Some(120.0),
            band: Some((80.0, 160.0)),
            level: Some(0.95),
            threshold: Some(1_200_000.0),
            eta: Some(Eta {
                seconds: 273_600.0,
                earliest: Some(172_800.0),
                latest: Some(432_000.0),
                text: "in ~3d 4h (between 2d and 5d)".into(),
            }),
            anomaly_score: Some(0.971),
            dashboard_url: Some("https://grafana.example/d/mes?viewPanel=4".into()),
            history: (0..50)
                .map(|i| (T0 - 3000 + i * 60, 900_000.0 + i as f64 * 1000.0))
                .collect(),
            forecast: (1..20)
                .map(|i| ForecastPoint {
                    t: T0 + i * 60,
                    mean: 950_000.0 + i as f64 * 500.0,
                    lower: 900_000.0,
                    upper: 1_000_000.0 + i as f64 * 3000.0,
                })
                .collect(),
        }
    }

    fn alert(name: &str, status: Status, labels: &[(&str, &str)]) -> AlertInfo {
        let mut l = kv(labels);
        l.insert("alertname".into(), name.into());
        AlertInfo {
            rule: format!("mes/{name}"),
            labels: l,
            annotations: kv(&[
                ("summary", "MES queue will be full"),
                ("description", "The queue grows faster than it drains."),
            ]),
            status,
            starts_at: T0,
            ends_at: (status == Status::Resolved).then_some(T0 + 3600),
            value: 273_600.0,
            generator_url: "https://prognos.example/api/v1/forecast?series=1".into(),
            explanation: None,
        }
    }

    fn notification(alerts: Vec<AlertInfo>) -> Notification {
        Notification {
            key: "k".into(),
            receiver: "oncall".into(),
            group_key: "g".into(),
            group_labels: kv(&[("service", "mes-api")]),
            alerts,
            created_at: T0,
            external_url: "https://prognos.example".into(),
        }
    }

    fn rich() -> Notification {
        let mut a = alert(
            "MesQueueBacklog",
            Status::Firing,
            &[("service", "mes-api"), ("instance", "mes-1")],
        );
        a.explanation = Some(explanation());
        let b = alert("MesCpuHigh", Status::Firing, &[("service", "mes-api")]);
        let c = alert(
            "MesQueueBacklog",
            Status::Firing,
            &[("service", "mes-api"), ("instance", "mes-2")],
        );
        let d = alert("MesDiskFull", Status::Resolved, &[("service", "mes-api")]);
        notification(vec![a, b, c, d])
    }

    fn no_chart() -> RenderOptions {
        RenderOptions {
            chart: false,
            ..Default::default()
        }
    }

    #[test]
    fn title_counts_firing_alerts_and_names_them_once() {
        let r = render(&rich(), &no_chart());
        assert_eq!(
            r.title,
            "[FIRING:3] MesQueueBacklog, MesCpuHigh — service=mes-api"
        );
        assert_eq!(r.email_subject, r.title);
    }

    #[test]
    fn resolved_only_title() {
        let n = notification(vec![
            alert("MesDiskFull", Status::Resolved, &[]),
            alert("MesCpuHigh", Status::Resolved, &[]),
        ]);
        let r = render(&n, &no_chart());
        assert_eq!(
            r.title,
            "[RESOLVED] MesDiskFull, MesCpuHigh — service=mes-api"
        );
        assert!(r.telegram_html.contains("✅"));
        assert!(r.email_text.contains("RESOLVED MesDiskFull"));
        assert!(
            r.email_text.contains("Resolved: 2026-11-18 12:06 UTC"),
            "{}",
            r.email_text
        );
    }

    #[test]
    fn the_explanation_reaches_every_format() {
        let r = render(&rich(), &RenderOptions::default());
        let facts = [
            "950k, expected 120 (95% band 80–160)",
            "in ~3d 4h (between 2d and 5d), threshold 1.2M",
            "Anomaly score",
            "0.97",
            "2026-11-18 11:06 UTC",
            "MES queue will be full",
            "instance=mes-1, service=mes-api",
            "https://grafana.example/d/mes?viewPanel=4",
            "https://prognos.example/api/v1/forecast?series=1",
        ];
        for f in facts {
            for (name, text) in [
                ("telegram", &r.telegram_html),
                ("caption", &r.telegram_caption_html),
                ("text", &r.email_text),
                ("html", &r.email_html),
            ] {
                assert!(text.contains(f), "{name} lacks {f:?}:\n{text}");
            }
        }
        assert!(
            r.telegram_html.contains(
                "<a href=\"https://grafana.example/d/mes?viewPanel=4\">Grafana panel</a>"
            )
        );
        assert!(r.telegram_html.contains(">forecast in prognos</a>"));
        assert!(r.telegram_html.contains("🔥 <b>MesQueueBacklog</b>"));
        assert!(
            r.telegram_html
                .contains("<code>mes_queue_depth{service=&quot;mes-api&quot;}</code>")
        );
        // The caption is about the lead alert and says how many others there are.
        assert!(
            r.telegram_caption_html
                .contains("… and 3 more (2 firing, 1 resolved)"),
            "{}",
            r.telegram_caption_html
        );
        // A chart, referred to by the HTML part.
        let png = r.chart_png.as_ref().expect("chart");
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
        assert!(
            r.email_html
                .contains("<img src=\"cid:chart\" alt=\"chart\"")
        );
        assert!(r.email_html.starts_with("<!DOCTYPE html>"));
        assert!(r.email_html.trim_end().ends_with("</html>"));
    }

    #[test]
    fn no_chart_when_disabled_or_nothing_to_draw() {
        let r = render(&rich(), &no_chart());
        assert!(r.chart_png.is_none());
        assert!(!r.email_html.contains("cid:chart"));
        // The lead alert (first firing) has no explanation: no chart either.
        let n = notification(vec![alert("A", Status::Firing, &[])]);
        assert!(render(&n, &RenderOptions::default()).chart_png.is_none());
        // An empty notification renders without panicking.
        let r = render(&notification(vec![]), &RenderOptions::default());
        assert_eq!(r.title, "[RESOLVED] — service=mes-api");
    }

    #[test]
    fn lead_is_the_first_firing_alert() {
        let mut resolved = alert("Old", Status::Resolved, &[]);
        resolved.explanation = Some(Explanation {
            history: vec![(T0, 1.0)],
            ..Default::default()
        });
        let mut firing = alert("New", Status::Firing, &[]);
        firing.explanation = Some(explanation());
        let r = render(
            &notification(vec![resolved, firing]),
            &RenderOptions::default(),
        );
        assert!(
            r.telegram_caption_html.contains("🔥 <b>New</b>"),
            "{}",
            r.telegram_caption_html
        );
        assert!(r.telegram_caption_html.contains("threshold 1.2M"));
        assert!(r.chart_png.is_some());
    }

    #[test]
    fn hostile_values_are_escaped_everywhere() {
        let evil = "<script>alert(\"x\")</script> & 'y'";
        let mut a = alert(evil, Status::Firing, &[("service", evil)]);
        a.annotations = kv(&[("summary", evil), ("description", evil)]);
        let mut e = explanation();
        e.dashboard_url = Some("javascript:alert(1)".into());
        e.expr = evil.into();
        a.explanation = Some(e);
        a.generator_url = "https://prognos.example/?a=\"><script>".into();
        let mut n = notification(vec![a]);
        n.group_labels = kv(&[("service", evil)]);
        let r = render(&n, &no_chart());
        for (name, text) in [
            ("telegram", &r.telegram_html),
            ("caption", &r.telegram_caption_html),
            ("html", &r.email_html),
        ] {
            assert!(!text.contains("<script"), "{name}: {text}");
            assert!(!text.contains("\"x\""), "{name}: {text}");
            assert!(!text.contains("javascript:"), "{name}: {text}");
            assert!(text.contains("&lt;script&gt;"), "{name}: {text}");
            assert!(text.contains("&amp;"), "{name}: {text}");
            assert!(text.contains("&quot;"), "{name}: {text}");
            // Every '&' starts an entity.
            for (i, _) in text.match_indices('&') {
                let rest = &text[i..];
                let end = rest.find(';').expect("entity ends");
                assert!(
                    end <= 6
                        && rest[1..end]
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '#'),
                    "{name}: {rest}"
                );
            }
        }
        assert!(!r.email_html.contains("'y'"));
        // The hostile generator URL is kept only percent-encoded.
        assert!(
            r.telegram_html
                .contains("href=\"https://prognos.example/?a=%22%3E%3Cscript%3E\""),
            "{}",
            r.telegram_html
        );
    }

    #[test]
    fn subject_has_no_line_breaks() {
        let mut n = notification(vec![alert(
            "A\r\nBcc: victim@example.com",
            Status::Firing,
            &[],
        )]);
        n.group_labels = kv(&[("service", "x\ny\rz")]);
        let r = render(&n, &no_chart());
        assert!(
            !r.email_subject.contains(['\r', '\n']),
            "{:?}",
            r.email_subject
        );
        assert!(!r.title.contains(['\r', '\n']));
        assert!(r.email_subject.contains("A  Bcc: victim@example.com"));
    }

    #[test]
    fn a_thousand_alerts_stay_within_the_limits() {
        let mut alerts: Vec<AlertInfo> = (0..1000)
            .map(|i| {
                let mut a = alert(
                    &format!("Alert{}", i % 7),
                    Status::Firing,
                    &[("instance", &format!("host-{i}")), ("v", "<&\">")],
                );
                a.explanation = Some(explanation());
                a
            })
            .collect();
        for a in alerts.iter_mut().skip(990) {
            a.status = Status::Resolved;
        }
        let n = notification(alerts);
        let r = render(&n, &no_chart());
        assert!(
            r.title
                .starts_with("[FIRING:990] Alert0, Alert1, Alert2 +4 — "),
            "{}",
            r.title
        );
        assert!(r.telegram_html.chars().count() <= telegram::MAX_MESSAGE_CHARS);
        assert!(r.telegram_caption_html.chars().count() <= MAX_CAPTION_CHARS);
        let more = r.telegram_html.lines().last().unwrap();
        let listed = r.telegram_html.matches("🔥").count();
        assert!((1..=20).contains(&listed), "{listed}");
        assert_eq!(
            more,
            format!(
                "… and {} more ({} firing, 10 resolved)",
                1000 - listed,
                990 - listed
            )
        );
        assert!(
            r.telegram_caption_html
                .contains("… and 999 more (989 firing, 10 resolved)")
        );
        // Email lists 20 in full.
        assert_eq!(r.email_html.matches("<table").count(), 20);
        assert!(
            r.email_text
                .contains("… and 980 more (970 firing, 10 resolved)"),
            "{}",
            &r.email_text[r.email_text.len() - 200..]
        );
    }

    #[test]
    fn huge_fields_are_clamped_and_messages_stay_valid() {
        let mut a = alert(
            &"N".repeat(5000),
            Status::Firing,
            &[("k", &"&".repeat(5000))],
        );
        a.annotations = kv(&[
            ("summary", &"\"".repeat(5000)),
            ("description", &"<".repeat(50_000)),
        ]);
        a.explanation = Some(explanation());
        let n = notification(vec![a.clone(), a]);
        let r = render(&n, &no_chart());
        assert!(r.telegram_html.chars().count() <= telegram::MAX_MESSAGE_CHARS);
        assert!(r.telegram_caption_html.chars().count() <= MAX_CAPTION_CHARS);
        assert!(r.title.chars().count() <= TITLE_MAX);
        // Tags stay balanced in both Telegram texts.
        for text in [&r.telegram_html, &r.telegram_caption_html] {
            for tag in ["b", "i", "a", "code"] {
                let open = text.matches(&format!("<{tag}>")).count()
                    + text.matches(&format!("<{tag} ")).count();
                assert_eq!(
                    open,
                    text.matches(&format!("</{tag}>")).count(),
                    "{tag} in {text}"
                );
            }
        }
        // The caption still carries the key facts of the lead alert.
        assert!(
            r.telegram_caption_html.contains("threshold 1.2M"),
            "{}",
            r.telegram_caption_html
        );
        assert!(r.email_text.len() < 20_000);
    }

    #[test]
    fn odd_numbers_and_missing_parts() {
        let mut a = alert("A", Status::Firing, &[]);
        a.annotations.clear();
        a.generator_url = "ftp://nope".into();
        a.explanation = Some(Explanation {
            current: Some(f64::NAN),
            expected: Some(f64::INFINITY),
            anomaly_score: Some(f64::NAN),
            eta: Some(Eta {
                seconds: 5400.0,
                earliest: None,
                latest: None,
                text: String::new(),
            }),
            ..Default::default()
        });
        let r = render(&notification(vec![a]), &no_chart());
        assert!(
            r.email_text.contains("Value: n/a, expected n/a"),
            "{}",
            r.email_text
        );
        assert!(
            r.email_text.contains("Time to threshold: in ~1h 30m"),
            "{}",
            r.email_text
        );
        assert!(r.email_text.contains("Anomaly score: n/a"));
        assert!(!r.telegram_html.contains("<a "), "ftp link dropped");
        assert!(!r.email_text.contains("ftp://"));
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(duration(30.0), "<1m");
        assert_eq!(duration(420.0), "7m");
        assert_eq!(duration(7500.0), "2h 5m");
        assert_eq!(duration(273_600.0), "3d 4h");
        assert_eq!(duration(172_800.0), "2d");
        assert_eq!(duration(f64::NAN), "n/a");
        assert_eq!(
            eta_text(273_600.0, Some(172_800.0), Some(432_000.0)),
            "in ~3d 4h (between 2d and 5d)"
        );
    }

    #[test]
    fn numbers_are_short_and_readable() {
        let cases = [
            (0.0, "0"),
            (120.0, "120"),
            (0.97, "0.97"),
            (123.456, "123.5"),
            (1500.0, "1.5k"),
            (950_000.0, "950k"),
            (1_234_567.0, "1.23M"),
            (1.2e9, "1.2G"),
            (999_950.0, "1M"),
            (-12_345.0, "-12.3k"),
            (0.001234, "0.001234"),
            (1.5e-6, "1.5e-6"),
            (3.2e20, "3.2e20"),
            (f64::NAN, "n/a"),
            (f64::INFINITY, "n/a"),
            (f64::NEG_INFINITY, "n/a"),
        ];
        for (v, want) in cases {
            assert_eq!(short_number(v), want, "{v}");
        }
    }
}
