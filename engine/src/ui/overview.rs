//! The overview (`/`) and a rule's page (`/rules/{group}/{name}`): rule
//! groups with their health, the alerts that are pending or firing with
//! their ETA, and the series most anomalous now. Rendered from the rules'
//! published views only: no lock, no query.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use maud::{Markup, html};

use crate::alert::{Alert, AlertStatus};
use crate::http_state::shown_error;
use crate::rule_state::{Health, RuleView, SeriesView};
use crate::ui::format::{self, ago, labels, score, time, unit_of};
use crate::ui::page::{Nav, layout};

/// Series listed as the most anomalous now.
pub const TOP_ANOMALOUS: usize = 10;

/// Where a rule's page is.
pub fn rule_href(id: &str) -> String {
    format!("/rules/{id}")
}

/// Where a series' page is.
pub fn series_href(id: &str) -> String {
    format!("/series/{id}")
}

/// Finds the series an alert of a rule is about: its labels are the
/// series' labels with the rule's labels and `alertname` added.
#[derive(Debug)]
pub struct AlertIndex<'a> {
    by_key: HashMap<String, &'a SeriesView>,
    view: &'a RuleView,
}

impl<'a> AlertIndex<'a> {
    /// The index of `view`'s series.
    pub fn new(view: &'a RuleView) -> Self {
        let by_key = if view.alerts.is_empty() && view.past.is_empty() {
            HashMap::new()
        } else {
            view.series
                .iter()
                .map(|s| (Self::stripped_key(view, &s.labels), s))
                .collect()
        };
        Self { by_key, view }
    }

    fn stripped_key(view: &RuleView, l: &BTreeMap<String, String>) -> String {
        let mut k = String::new();
        for (name, v) in l {
            // An alert's labels are its series' without `__name__`, with
            // the rule's labels (which win) and `alertname`.
            if name == "alertname" || name == "__name__" || view.rule.labels.contains_key(name) {
                continue;
            }
            k.push_str(name);
            k.push('\u{0}');
            k.push_str(v);
            k.push('\u{0}');
        }
        k
    }

    /// The series `a` is about, if it is still modelled.
    pub fn series(&self, a: &Alert) -> Option<&'a SeriesView> {
        self.by_key
            .get(&Self::stripped_key(self.view, &a.labels))
            .copied()
    }
}

/// An alert's state as a badge.
pub fn status_badge(a: &Alert) -> Markup {
    match (a.status, a.fired_at) {
        (AlertStatus::Firing, _) => html! { span.badge.firing { "firing" } },
        (AlertStatus::Pending, _) if a.resolved_at.is_none() => {
            html! { span.badge.pending { "pending" } }
        }
        (AlertStatus::Pending, _) => html! { span.badge.ended { "ended (never fired)" } },
        (AlertStatus::Resolved, _) => html! { span.badge.resolved { "resolved" } },
    }
}

/// A health as a badge.
pub fn health_badge(h: Health) -> Markup {
    match h {
        Health::Ok => html! { span.badge.ok { "ok" } },
        Health::Err => html! { span.badge.err { "error" } },
        Health::Unknown => html! { span.badge.unknown { "not evaluated" } },
    }
}

/// The ETA of a series in words: "in ~3d (between 2d and 5d)".
pub fn eta_words(s: &SeriesView) -> Option<String> {
    s.eta_text.as_ref().map(|t| {
        if t == "now" {
            "crossed now".to_string()
        } else {
            format!("in {t}")
        }
    })
}

/// The table of active alerts of `views`, marking those an active silence
/// in `silences` mutes.
pub fn alert_table(
    views: &[Arc<RuleView>],
    silences: &[prognos_notifiers::silence::Silence],
    now: i64,
) -> Markup {
    let rows: Vec<(&RuleView, &Alert, Option<&SeriesView>)> = views
        .iter()
        .flat_map(|v| {
            let index = AlertIndex::new(v);
            v.alerts
                .iter()
                .map(move |a| (v.as_ref(), a, index.series(a)))
                .collect::<Vec<_>>()
        })
        .collect();
    html! {
        @if rows.is_empty() {
            p.muted { "No alert is pending or firing." }
        } @else {
            div.scroll { table.wide #alerts-active {
                thead { tr { th { "State" } th { "Alert" } th { "Series" } th { "ETA / score" } th.opt { "Since" } } }
                tbody {
                    @for (v, a, s) in &rows {
                        tr.alert data-state=(format!("{:?}", a.status).to_lowercase()) {
                            td {
                                (status_badge(a))
                                @if silences.iter().any(|m| m.mutes(&a.labels, now)) {
                                    " " span.badge.ended.silenced { "silenced" }
                                }
                            }
                            td {
                                a href=(rule_href(&v.id)) { (v.rule.name) }
                                @if let Some(summary) = a.annotations.get("summary") {
                                    br; span.muted.summary { (summary) }
                                }
                            }
                            td {
                                @if let Some(s) = s {
                                    a.series-link href=(series_href(&s.id)) { (labels(&s.labels)) }
                                } @else {
                                    (labels(&a.labels))
                                }
                            }
                            td.eta {
                                @if let Some(words) = s.and_then(eta_words) {
                                    (words)
                                } @else if let Some(s) = s {
                                    "score " (score(s.score))
                                }
                            }
                            td.opt { (ago(now, a.fired_at.unwrap_or(a.active_at))) }
                        }
                    }
                }
            } }
        }
    }
}

/// The overview of `views` at `now`; `silences` is None when notifications
/// are not configured.
pub fn overview(
    views: &[Arc<RuleView>],
    silences: Option<&[prognos_notifiers::silence::Silence]>,
    now: i64,
) -> Markup {
    let notifications = silences.is_some();
    let mut groups: BTreeMap<&str, Vec<&RuleView>> = BTreeMap::new();
    for v in views {
        groups.entry(v.group.as_str()).or_default().push(v);
    }
    let series: usize = views.iter().map(|v| v.series.len()).sum();
    let firing = views
        .iter()
        .flat_map(|v| &v.alerts)
        .filter(|a| a.status == AlertStatus::Firing)
        .count();
    let pending = views
        .iter()
        .flat_map(|v| &v.alerts)
        .filter(|a| a.status == AlertStatus::Pending)
        .count();
    let failing = views.iter().filter(|v| v.health == Health::Err).count();
    let mut top: Vec<(&RuleView, &SeriesView)> = views
        .iter()
        .flat_map(|v| v.series.iter().map(move |s| (v.as_ref(), s)))
        .filter(|(_, s)| s.score.is_finite() && s.score > 0.0)
        .collect();
    let k = TOP_ANOMALOUS.min(top.len());
    if k > 0 {
        top.select_nth_unstable_by(k - 1, |a, b| b.1.score.total_cmp(&a.1.score));
        top.truncate(k);
        top.sort_by(|a, b| b.1.score.total_cmp(&a.1.score));
    }
    layout(
        "Overview",
        Nav::Overview,
        html! {
            h1 { "Overview" }
            div.summary {
                div #count-firing { b { (firing) } "firing" }
                div #count-pending { b { (pending) } "pending" }
                div { b { (views.len()) } "rules" }
                div { b { (series) } "series modelled" }
                div { b { (failing) } "rules failing" }
            }
            @if failing > 0 {
                p.stale { (failing) " rule(s) failed their last evaluation (Prometheus unreachable?): their predictions are stale; see each rule's error below." }
            }
            @if !notifications {
                p.muted { "Notifications are not configured: alerts are shown here and exported, not sent." }
            }
            section #active {
                h2 { "Pending and firing" }
                (alert_table(views, silences.unwrap_or_default(), now))
            }
            section #anomalous {
                h2 { "Most anomalous now" }
                @if top.is_empty() {
                    p.muted { "No series has a score above 0." }
                } @else {
                    div.scroll { table.wide {
                        thead { tr { th { "Score" } th { "Series" } th { "Rule" } th.opt { "Value" } } }
                        tbody {
                            @for (v, s) in &top {
                                tr {
                                    td.num { (score(s.score)) }
                                    td { a.series-link href=(series_href(&s.id)) { (labels(&s.labels)) } }
                                    td { a href=(rule_href(&v.id)) { (v.id) } }
                                    td.num.opt { (format::value(s.last_value, unit_of(&v.rule.expr))) }
                                }
                            }
                        }
                    } }
                }
            }
            section #groups {
                h2 { "Rule groups" }
                @for (g, rules) in &groups {
                    h2.group { (g) }
                    div.scroll { table.wide {
                        thead { tr { th { "Rule" } th { "Health" } th { "Last evaluation" } th.num { "Series" } th.num { "Alerts" } th.opt { "Error" } } }
                        tbody {
                            @for v in rules {
                                tr.rule data-health=(format!("{:?}", v.health).to_lowercase()) {
                                    td { a href=(rule_href(&v.id)) { (v.rule.name) } }
                                    td { (health_badge(v.health)) }
                                    td { @match v.last_eval { Some(t) => { (ago(now, t)) }, None => { "never" } } }
                                    td.num { (v.series.len()) }
                                    td.num { (v.alerts.len()) }
                                    td.opt { @if let Some(e) = &v.last_error { code { (shown_error(e)) } } }
                                }
                            }
                        }
                    } }
                }
            }
        },
    )
}

/// A rule's page: what it watches and how, and its series.
pub fn rule_page(v: &RuleView, now: i64) -> Markup {
    let unit = unit_of(&v.rule.expr);
    let mut series: Vec<&SeriesView> = v.series.iter().collect();
    series.sort_by(|a, b| b.score.total_cmp(&a.score));
    layout(
        &v.id,
        Nav::Other,
        html! {
            h1 { "Rule " (v.id) }
            @if v.health == Health::Err {
                p.stale {
                    "The last evaluation failed"
                    @if let Some(t) = v.last_eval { " (" (time(t)) ")" }
                    "; the predictions below are stale. "
                    @if let Some(e) = &v.last_error { code { (shown_error(e)) } }
                }
            }
            section {
                dl.facts {
                    dt { "Expression" } dd { code { (v.rule.expr) } }
                    dt { "Condition" } dd { (condition_words(v)) }
                    dt { "Model" } dd { (v.rule.model.to_string()) }
                    dt { "Step, history" } dd { (format::span(v.rule.step.as_secs() as i64)) ", " (format::span(v.rule.history.as_secs() as i64)) }
                    dt { "Health" } dd { (health_badge(v.health)) " " @match v.last_eval { Some(t) => { "evaluated " (ago(now, t)) }, None => { "not evaluated yet" } } }
                }
            }
            section #series {
                h2 { (v.series.len()) " series" }
                @if series.is_empty() {
                    p.muted { "No series modelled yet." }
                } @else {
                    div.scroll { table.wide {
                        thead { tr { th { "Series" } th.num { "Value" } th.num { "Score" } th { "ETA" } th.opt { "Model" } } }
                        tbody {
                            @for s in &series {
                                tr {
                                    td { a.series-link href=(series_href(&s.id)) { (labels(&s.labels)) } }
                                    td.num { (format::value(s.last_value, unit)) }
                                    td.num { (score(s.score)) }
                                    td { @if let Some(w) = eta_words(s) { (w) } }
                                    td.opt { (s.model) }
                                }
                            }
                        }
                    } }
                }
            }
        },
    )
}

/// A rule's condition in words.
pub fn condition_words(v: &RuleView) -> String {
    use crate::config::Condition;
    use prognos_models::threshold::Direction;
    let unit = unit_of(&v.rule.expr);
    let dir = |d: &Direction| match d {
        Direction::Above => "rises to",
        Direction::Below => "falls to",
    };
    match &v.rule.condition {
        Condition::Forecast {
            threshold,
            direction,
            within,
        } => format!(
            "fires when the forecast {} {} within {}",
            dir(direction),
            format::value(*threshold, unit),
            format::span(within.as_secs() as i64)
        ),
        Condition::TimeToThreshold {
            threshold,
            direction,
            less_than,
        } => format!(
            "fires when the series is expected to reach {} ({}) in less than {}",
            format::value(*threshold, unit),
            dir(direction),
            format::span(less_than.as_secs() as i64)
        ),
        Condition::Anomaly { score_above } => {
            format!("fires when the anomaly score reaches {score_above}")
        }
        Condition::BurnRate { objective, .. } => {
            format!("fires when the error budget of a {objective} objective burns too fast")
        }
    }
}
