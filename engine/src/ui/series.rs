//! A series' page (`/series/{id}`): its history from Prometheus, the
//! forecast path with its fan (50/80/95 %) to the rule's longest horizon or
//! past the expected crossing, the threshold, the band each recent point
//! was expected in, the anomaly score beneath on the same time axis, the
//! alert's pending, firing and resolved spans, and in words why the alert
//! holds. When Prometheus does not answer, the page shows the last
//! predictions and the engine's own trail of recent points, marked stale.

use std::sync::Arc;
use std::time::Duration;

use maud::{Markup, html};
use prognos_models::forecast::{Forecast, Level};
use prognos_models::threshold::Direction;

use crate::alert::{Alert, AlertStatus};
use crate::config::Condition;
use crate::evaluate::{MAX_LOOKAHEAD_STEPS, horizon_label, steps};
use crate::http_state::shown_error;
use crate::modelled::TrailPoint;
use crate::rule_state::{Health, RuleHandle, RuleView, SeriesView};
use crate::scheduler::Engine;
use crate::ui::chart::{Band, HLine, Line, Marker, Span, TimeChart, Unit};
use crate::ui::format::{self, ago, labels, labels_text, score, span, time, unit_of};
use crate::ui::overview::{AlertIndex, condition_words, eta_words, rule_href, status_badge};
use crate::ui::page::{Nav, layout};

/// How long the page waits for Prometheus' history before showing the
/// engine's own trail instead (an outage must not hang the page).
pub const HISTORY_TIMEOUT: Duration = Duration::from_secs(5);

/// The fan's levels, widest first (drawn first).
pub const FAN: [(f64, &str); 3] = [(0.95, "fan-95"), (0.8, "fan-80"), (0.5, "fan-50")];

/// Least and most history shown, seconds: as much as the forecast reaches
/// ahead, within these.
pub const HISTORY_MIN_SECS: i64 = 6 * 3600;
/// See [`HISTORY_MIN_SECS`].
pub const HISTORY_MAX_SECS: i64 = 7 * 86_400;

/// Everything a series' page shows, gathered from the engine.
#[derive(Debug)]
pub struct SeriesPage {
    /// Its rule's view.
    pub view: Arc<RuleView>,
    /// The series' place in `view.series`.
    pub at: usize,
    /// The forecast at each level of [`FAN`].
    pub fan: Vec<Forecast>,
    /// The engine's recent points of it.
    pub trail: Vec<TrailPoint>,
    /// History from Prometheus, or why there is none.
    pub history: Result<Vec<(i64, f64)>, String>,
    /// When the page is rendered.
    pub now: i64,
}

/// Finds the series `id` in `engine`: its rule and its place in the view.
pub fn find(engine: &Engine, id: &str) -> Option<(Arc<RuleHandle>, Arc<RuleView>, usize)> {
    engine.rules.iter().find_map(|r| {
        let view = r.view();
        let at = view.series.iter().position(|s| s.id == id)?;
        Some((r.clone(), view, at))
    })
}

/// How many steps ahead the page forecasts: the rule's longest horizon,
/// and past the latest expected crossing when there is one.
pub fn forecast_steps(view: &RuleView, s: &SeriesView) -> usize {
    let step = s.step.max(1);
    let longest = view
        .rule
        .horizons
        .iter()
        .map(|&h| steps(h, step))
        .max()
        .unwrap_or(12);
    let crossing = s
        .eta_secs
        .map(|(e, _, l)| l.unwrap_or(e).max(e) * 5 / 4 / step + 1)
        .unwrap_or(0);
    let crossing = usize::try_from(crossing).unwrap_or(MAX_LOOKAHEAD_STEPS);
    longest.max(crossing).clamp(1, MAX_LOOKAHEAD_STEPS)
}

/// Gathers the page of series `id`; None when there is no such series.
pub async fn gather(engine: &Engine, id: &str, now: i64) -> Option<SeriesPage> {
    let (handle, view, at) = find(engine, id)?;
    let s = &view.series[at];
    let n = forecast_steps(&view, s);
    let (fan, trail) = {
        let rt = handle.lock().await;
        let m = rt.series.get(&s.key)?;
        let fan = FAN
            .iter()
            .filter_map(|&(l, _)| Level::try_from(l).ok())
            .map(|l| view.rule.bounds.apply(m.forecast(n, l)))
            .collect();
        (fan, m.trail().copied().collect::<Vec<_>>())
    };
    let forecast_secs = n as i64 * s.step;
    let window = forecast_secs.clamp(HISTORY_MIN_SECS, HISTORY_MAX_SECS);
    let history = match tokio::time::timeout(
        HISTORY_TIMEOUT,
        engine.recent_history(&view.rule, &s.labels, s.last_ts, window),
    )
    .await
    {
        Ok(Ok(h)) => Ok(h),
        Ok(Err(e)) => Err(shown_error(&e.to_string())),
        Err(_) => Err(format!(
            "Prometheus did not answer within {} s",
            HISTORY_TIMEOUT.as_secs()
        )),
    };
    Some(SeriesPage {
        view,
        at,
        fan,
        trail,
        history,
        now,
    })
}

/// The alerts of the page's series: active first, then those that ended.
fn alerts_of(p: &SeriesPage) -> (Option<&Alert>, Vec<&Alert>) {
    let index = AlertIndex::new(&p.view);
    let id = &p.view.series[p.at].id;
    let mine = |a: &&Alert| index.series(a).is_some_and(|s| &s.id == id);
    let active = p.view.alerts.iter().find(mine);
    let past = p.view.past.iter().filter(mine).collect();
    (active, past)
}

/// The shaded spans of an alert: pending, then firing (to `end` while active).
fn alert_spans(a: &Alert, end: i64) -> Vec<Span> {
    let stop = a.resolved_at.unwrap_or(end);
    let hm = |t: i64| {
        chrono::DateTime::from_timestamp(t, 0)
            .map_or_else(String::new, |d| d.format("%m-%d %H:%M").to_string())
    };
    let mut out = vec![Span {
        class: "pending",
        label: format!(
            "pending {}–{} UTC",
            hm(a.active_at),
            hm(a.fired_at.unwrap_or(stop))
        ),
        from: a.active_at,
        to: a.fired_at.unwrap_or(stop),
    }];
    if let Some(f) = a.fired_at {
        let (class, what) = if a.status == AlertStatus::Resolved {
            ("resolved", "fired, resolved")
        } else {
            ("firing", "firing")
        };
        out.push(Span {
            class,
            label: format!("{what} {}–{} UTC", hm(f), hm(stop)),
            from: f,
            to: stop,
        });
    }
    out
}

/// The threshold of a rule, if it has one.
fn threshold(view: &RuleView) -> Option<(f64, Direction)> {
    match &view.rule.condition {
        Condition::Forecast {
            threshold,
            direction,
            ..
        }
        | Condition::TimeToThreshold {
            threshold,
            direction,
            ..
        } => Some((*threshold, *direction)),
        _ => None,
    }
}

/// The value chart and the score chart, on one time axis.
pub fn charts(p: &SeriesPage) -> (TimeChart, TimeChart) {
    let v = &p.view;
    let s = &v.series[p.at];
    let unit = unit_of(&v.rule.expr);
    let horizon_end = s.last_ts + p.fan.first().map_or(0, |f| f.point.len() as i64) * s.step;
    let history: Vec<(i64, f64)> = match &p.history {
        Ok(h) if !h.is_empty() => h.clone(),
        _ => p.trail.iter().map(|t| (t.t, f64::from(t.value))).collect(),
    };
    let start = history
        .first()
        .map(|h| h.0)
        .into_iter()
        .chain(p.trail.first().map(|t| t.t))
        .min()
        .unwrap_or(s.last_ts - HISTORY_MIN_SECS);
    let x_range = (start, horizon_end.max(s.last_ts + s.step));
    let forecast_t = |k: usize| s.last_ts + (k as i64 + 1) * s.step;
    let mut bands: Vec<Band> = p
        .fan
        .iter()
        .zip(FAN)
        .map(|(f, (l, class))| Band {
            class,
            label: format!("forecast {:.0} %", l * 100.0),
            points: (0..f.point.len())
                .map(|k| (forecast_t(k), f.lower[k], f.upper[k]))
                .collect(),
        })
        .collect();
    bands.insert(
        0,
        Band {
            class: "expected",
            label: "expected band".to_string(),
            points: p
                .trail
                .iter()
                .map(|t| (t.t, f64::from(t.lower), f64::from(t.upper)))
                .collect(),
        },
    );
    let mut lines = vec![Line {
        class: "history",
        label: "value".to_string(),
        points: history,
    }];
    if let Some(f) = p.fan.first() {
        // The path starts at the latest point so it reads as one line.
        let mut path = vec![(s.last_ts, s.last_value)];
        path.extend((0..f.point.len()).map(|k| (forecast_t(k), f.point[k])));
        lines.push(Line {
            class: "forecast",
            label: "forecast".to_string(),
            points: path,
        });
    }
    let (active, past) = alerts_of(p);
    let spans: Vec<Span> = past
        .iter()
        .chain(active.iter())
        .flat_map(|a| alert_spans(a, s.last_ts.max(p.now.min(x_range.1))))
        .collect();
    let mut markers = vec![Marker {
        class: "now",
        label: format!("latest point {}", time(s.last_ts)),
        at: s.last_ts,
    }];
    if let Some((e, _, _)) = s.eta_secs.filter(|e| e.0 > 0) {
        markers.push(Marker {
            class: "eta",
            label: format!("expected crossing {}", time(s.last_ts + e)),
            at: s.last_ts + e,
        });
    }
    let hlines = threshold(v)
        .map(|(t, _)| HLine {
            class: "threshold",
            label: format!("threshold {}", format::value(t, unit)),
            value: t,
        })
        .into_iter()
        .collect();
    let value_chart = TimeChart {
        title: format!("{} — {}", v.rule.name, labels_text(&s.labels)),
        x_range,
        y_fixed: None,
        height: 300,
        lines,
        bands,
        hlines,
        spans: spans.clone(),
        markers: markers.clone(),
        unit,
    };
    let score_limit = match v.rule.condition {
        Condition::Anomaly { score_above } => Some(score_above),
        _ => None,
    };
    let score_chart = TimeChart {
        title: format!("anomaly score — {}", labels_text(&s.labels)),
        x_range,
        y_fixed: Some((0.0, 1.0)),
        height: 120,
        lines: vec![Line {
            class: "score",
            label: "anomaly score".to_string(),
            points: p.trail.iter().map(|t| (t.t, f64::from(t.score))).collect(),
        }],
        bands: Vec::new(),
        hlines: score_limit
            .map(|l| HLine {
                class: "score-limit",
                label: format!("fires at {l}"),
                value: l,
            })
            .into_iter()
            .collect(),
        spans,
        markers,
        unit: Unit::Ratio,
    };
    (value_chart, score_chart)
}

/// Why the alert holds, or does not, in words.
pub fn why(p: &SeriesPage) -> Markup {
    let v = &p.view;
    let s = &v.series[p.at];
    let unit = unit_of(&v.rule.expr);
    let (active, _) = alerts_of(p);
    let state = match active {
        Some(a) if a.status == AlertStatus::Firing => format!(
            "Firing since {} (pending from {}).",
            time(a.fired_at.unwrap_or(a.active_at)),
            time(a.active_at)
        ),
        Some(a) => format!(
            "Pending since {}: it fires once the condition has held for {}.",
            time(a.active_at),
            span(v.rule.for_.as_secs() as i64)
        ),
        None => "Not alerting.".to_string(),
    };
    let condition = match (&v.rule.condition, threshold(v)) {
        (_, Some((t, _))) => match (eta_words(s), s.holds) {
            (Some(w), true) => format!(
                "The forecast reaches {} {w}: the rule {}, so the condition holds.",
                format::value(t, unit),
                condition_words(v)
            ),
            (Some(w), false) => format!(
                "The forecast reaches {} {w}, later than the rule's limit ({}).",
                format::value(t, unit),
                condition_words(v)
            ),
            (None, _) => format!(
                "No crossing of {} is forecast within the horizon looked at; the rule {}.",
                format::value(t, unit),
                condition_words(v)
            ),
        },
        (Condition::Anomaly { score_above }, None) => format!(
            "The anomaly score of the latest point is {} (the rule fires at {score_above}): the condition {}.",
            score(s.score),
            if s.holds { "holds" } else { "does not hold" }
        ),
        _ => String::new(),
    };
    let expected = match s.expected {
        Some((e, lo, hi)) => {
            let place = if s.last_value > hi {
                "above the band"
            } else if s.last_value < lo {
                "below the band"
            } else {
                "inside the band"
            };
            format!(
                "The latest value is {} ({}); the model expected {} (95 % band {} – {}): {place}. Anomaly score {}.",
                format::value(s.last_value, unit),
                time(s.last_ts),
                format::value(e, unit),
                format::value(lo, unit),
                format::value(hi, unit),
                score(s.score),
            )
        }
        None => format!(
            "The latest value is {} ({}). Anomaly score {}.",
            format::value(s.last_value, unit),
            time(s.last_ts),
            score(s.score)
        ),
    };
    let summary = active.and_then(|a| a.annotations.get("summary"));
    html! {
        p.why #why { b { (state) } " " (condition) " " (expected) }
        @if let Some(summary) = summary { p.summary { "Summary: " (summary) } }
    }
}

/// The page.
pub fn render(p: &SeriesPage) -> Markup {
    let v = &p.view;
    let s = &v.series[p.at];
    let unit = unit_of(&v.rule.expr);
    let (value_chart, score_chart) = charts(p);
    let (active, past) = alerts_of(p);
    let stale = v.health == Health::Err || p.history.is_err();
    let fan95 = p.fan.first();
    layout(
        &format!("{} {}", v.rule.name, labels_text(&s.labels)),
        Nav::Other,
        html! {
            h1 {
                a href=(rule_href(&v.id)) { (v.rule.name) } " "
                (labels(&s.labels))
                @if let Some(a) = active { " " (status_badge(a)) }
            }
            @if stale {
                p.stale #stale {
                    "Stale since " (time(s.last_ts)) " (" (ago(p.now, s.last_ts)) "): "
                    @match &p.history {
                        Err(e) => { "the history could not be read (" (e) "). " }
                        Ok(_) => {}
                    }
                    @if let (Health::Err, Some(e)) = (v.health, &v.last_error) {
                        "the last evaluation failed (" (shown_error(e)) "). "
                    }
                    "Shown: the last predictions and the engine's own recent points."
                }
            }
            (why(p))
            section.charts {
                (value_chart.render())
                (score_chart.render())
            }
            section {
                h2 { "Facts" }
                dl.facts #facts {
                    dt { "Rule" } dd { a href=(rule_href(&v.id)) { (v.id) } " — " (condition_words(v)) }
                    dt { "Expression" } dd { code { (v.rule.expr) } }
                    dt { "Model" } dd.model { (s.model) ", fitted " (time(s.fitted_at)) " (" (ago(p.now, s.fitted_at)) ")" }
                    dt { "Step" } dd { (span(s.step)) }
                    dt { "Latest point" } dd { (format::value(s.last_value, unit)) " at " (time(s.last_ts)) }
                    dt { "Time to threshold" } dd.eta {
                        @match (eta_words(s), s.eta_secs) {
                            (Some(w), Some((e, lo, hi))) => {
                                (w) " — around " (time(s.last_ts + e))
                                @if let (Some(lo), Some(hi)) = (lo, hi) {
                                    ", between " (time(s.last_ts + lo)) " and " (time(s.last_ts + hi))
                                }
                            },
                            _ => { "no crossing forecast" }
                        }
                    }
                    dt { "Anomaly score" } dd { (score(s.score)) }
                    dt { "History shown" } dd #history-source {
                        @match &p.history {
                            Ok(h) if !h.is_empty() => { (h.len()) " points from Prometheus" }
                            Ok(_) => { "Prometheus has none in this window; the engine's own " (p.trail.len()) " recent points" }
                            Err(_) => { "the engine's own " (p.trail.len()) " recent points (Prometheus did not answer)" }
                        }
                    }
                }
                @if let Some(f) = fan95 {
                    h2 { "Forecast" }
                    div.scroll { table #horizons {
                        thead { tr { th { "Horizon" } th.num { "Expected" } th.num { "95 % band" } } }
                        tbody {
                            @for h in &v.rule.horizons {
                                @let k = steps(*h, s.step);
                                @if k >= 1 && k <= f.point.len() {
                                    tr {
                                        td { (horizon_label(*h)) }
                                        td.num { (format::value(f.point[k - 1], unit)) }
                                        td.num { (format::value(f.lower[k - 1], unit)) " – " (format::value(f.upper[k - 1], unit)) }
                                    }
                                }
                            }
                        }
                    } }
                }
            }
            section #history {
                h2 { "Alerts of this series" }
                @if active.is_none() && past.is_empty() {
                    p.muted { "None since prognos started." }
                } @else {
                    div.scroll { table {
                        thead { tr { th { "State" } th { "Pending from" } th { "Fired" } th { "Ended" } } }
                        tbody {
                            @for a in active.into_iter().chain(past.iter().copied()) {
                                tr {
                                    td { (status_badge(a)) }
                                    td { (time(a.active_at)) }
                                    td { @if let Some(f) = a.fired_at { (time(f)) } @else { "—" } }
                                    td { @if let Some(r) = a.resolved_at { (time(r)) } @else { "—" } }
                                }
                            }
                        }
                    } }
                }
                p.muted {
                    "The same as JSON: " a href=(format!("/api/v1/series/{}/forecast", s.id)) { "/api/v1/series/" (s.id) "/forecast" }
                }
            }
        },
    )
}
