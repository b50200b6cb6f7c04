//! A notification rendered for every channel: Telegram (message and photo
//! caption), email (subject, text, HTML) and the PNG chart. The same facts go
//! everywhere; label values and annotations are untrusted, so each format
//! escapes them, single-line fields lose control characters (no header or
//! line injection) and every field is clamped so one huge value cannot push
//! the rest out of a size-limited message.
//!
//! Cost stays proportional to the alerts listed in full, not to the group:
//! a group of 1,000 alerts is counted, and only the first few are rendered.
//!
//! Here: the options, [`render`] and what every format shares (the title,
//! the chart of the lead alert, the "… and N more" line). Per format:
//! `telegram` and `email`; `view` holds one alert's facts as text, `text`
//! the clamping of untrusted fields.

mod email;
mod telegram;
mod text;
mod view;

use std::fmt::Write as _;

use crate::alert::{AlertInfo, Notification, Status};
use crate::delivery::Rendered;
pub use crate::number::short_number;
use text::{NAME_MAX, TITLE_MAX, TITLE_NAMES, TITLE_PART_MAX, one_line};
use view::{View, labels};

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

    let telegram_html = telegram::telegram_message(n, &title, &listed, firing);
    let telegram_caption_html = telegram::caption(n, &title, lead, &o.time_zone_label, firing);
    let email_text = email::email_text(n, &title, &listed, firing);
    let email_html = email::email_html(n, &title, &listed, firing, chart_png.is_some());
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

/// "… and 980 more (975 firing, 5 resolved)", for the alerts not listed.
pub(super) fn more_line(
    n: &Notification,
    listed: usize,
    listed_firing: usize,
    firing: usize,
) -> String {
    let rest = n.alerts.len() - listed;
    let rest_firing = firing - listed_firing;
    let rest_resolved = rest - rest_firing;
    match (rest_firing, rest_resolved) {
        (_, 0) | (0, _) => format!("… and {rest} more"),
        (f, r) => format!("… and {rest} more ({f} firing, {r} resolved)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{Eta, Explanation, ForecastPoint};
    use crate::payload::KeyValues;
    use crate::telegram;

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
        assert!(r.telegram_html.contains(">this series in prognos</a>"));
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
}
