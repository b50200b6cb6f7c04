//! Rule files: groups and alerting rules, checked field by field. Each rule
//! is read on its own, so one malformed rule does not hide the problems of
//! the others.

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use prognos_models::forecast::{Bounds, ModelKind};
use prognos_models::threshold::Direction;

use super::error::{ConfigError, QUOTED_CHARS};
use super::locate::{Doc, parse_path};
use super::peel;
use super::raw::{RawCondition, RawGroup, RawRule, RawRuleFile, Text};
use super::validate::{Report, serde_error};
use super::{BurnWindow, Condition, Rule, RuleGroup, format_duration, promql, template};
use prognos_notifiers::secret::excerpt;

use super::MAX_LOOKAHEAD_STEPS;

/// What a rule file is, for errors that find something else.
pub(crate) const RULE_FILE_DOCUMENT: &str = "a mapping with `groups:`";
/// Default `history`.
const DEFAULT_HISTORY: Duration = Duration::from_secs(7 * 86_400);
/// Default `step`.
const DEFAULT_STEP: Duration = Duration::from_secs(300);
/// Default `horizons`.
const DEFAULT_HORIZONS: [Duration; 2] = [Duration::from_secs(3600), Duration::from_secs(86_400)];
/// The window `$window` stands for when a burn-rate query is checked and
/// when it makes the default `expr`.
const CHECK_WINDOW: Duration = Duration::from_secs(300);

/// The shortest default `keep_firing_for`: long enough to bridge a score or
/// an ETA that wavers around its limit for a few evaluations, so that one
/// incident notifies once; short enough that a resolution is not news
/// hours late.
const MIN_DEFAULT_KEEP_FIRING_FOR: Duration = Duration::from_secs(600);

/// Settings rules inherit from the main config (and their group).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Defaults {
    /// The group's evaluation interval (the global one until the group's
    /// own is known).
    pub interval: Duration,
    pub series_limit: usize,
}

/// Checks one rule file's `text`, recording problems in `errors`.
pub(crate) fn load_file(
    file: &Path,
    text: &str,
    defaults: &Defaults,
    errors: &mut Vec<ConfigError>,
) -> Vec<RuleGroup> {
    let doc = Doc::new(text);
    if doc.is_empty() {
        return Vec::new();
    }
    let value: serde_norway::Value = match serde_norway::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            errors.push(serde_error(file, &e, "", RULE_FILE_DOCUMENT).0);
            return Vec::new();
        }
    };
    let mut report = Report::new(file, doc, errors);
    let Some(raw) = peel::read::<RawRuleFile>(&mut report, value, "", "", RULE_FILE_DOCUMENT)
    else {
        return Vec::new();
    };
    let mut groups = Vec::new();
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    for (j, value) in raw.groups.into_iter().enumerate() {
        let gpath = format!("groups[{j}]");
        let written = value
            .get("name")
            .and_then(|n| n.as_str())
            .map(str::to_string);
        let read_context = match &written {
            Some(n) => format!("group {n:?}"),
            None => format!("group #{}", j + 1),
        };
        let Some(g) = peel::read::<RawGroup>(
            &mut report,
            value,
            &gpath,
            &read_context,
            "a mapping with `name:` and `rules:`",
        ) else {
            continue;
        };
        let name = g.name.clone().unwrap_or_default();
        let context = format!("group {name:?}");
        if report.is_peeled(&format!("{gpath}.name")) {
            // Its bad value is reported.
        } else if name.trim().is_empty() {
            report.at(&gpath, &format!("group #{}", j + 1), "name", "is required");
        } else if let Some(first) = names.get(&name) {
            let line = report
                .doc
                .locate(&parse_path(&format!("groups[{first}]")))
                .line;
            report.at(
                &format!("{gpath}.name"),
                &context,
                "name",
                format!("duplicate group name {name:?} (first at line {line})"),
            );
        } else {
            names.insert(name.clone(), j);
        }
        if let Some(group) = load_group(&mut report, j, &g, &name, &context, defaults) {
            groups.push(group);
        }
    }
    groups
}

fn load_group(
    report: &mut Report<'_>,
    j: usize,
    g: &RawGroup,
    name: &str,
    context: &str,
    defaults: &Defaults,
) -> Option<RuleGroup> {
    let gpath = format!("groups[{j}]");
    let interval = report
        .duration(
            g.interval.as_ref(),
            defaults.interval,
            &format!("{gpath}.interval"),
            context,
            "interval",
        )
        .filter(|d| {
            let ok = !d.is_zero();
            if !ok {
                report.at(
                    &format!("{gpath}.interval"),
                    context,
                    "interval",
                    "must be > 0s, got \"0s\"",
                );
            }
            ok
        });
    let mut rules = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut ok = interval.is_some();
    for (i, value) in g.rules.iter().enumerate() {
        let rpath = format!("{gpath}.rules[{i}]");
        let alert = value
            .get("alert")
            .and_then(|v| v.as_str())
            .map(str::to_string);
        let rcontext = match &alert {
            Some(a) => format!("{context}, rule {a:?}"),
            None => format!("{context}, rule #{}", i + 1),
        };
        if let Some(a) = &alert {
            if let Some(first) = seen.get(a) {
                report.at(
                    &format!("{rpath}.alert"),
                    &rcontext,
                    "alert",
                    format!("duplicate alert name {a:?} in group {name:?} (first at line {first})"),
                );
                ok = false;
            } else {
                let line = report.doc.locate(&parse_path(&rpath)).line;
                seen.insert(a.clone(), line);
            }
        }
        let before = report.errors.len();
        let Some(raw) = peel::read::<RawRule>(
            report,
            value.clone(),
            &rpath,
            &rcontext,
            "a mapping with `alert:`",
        ) else {
            ok = false;
            continue;
        };
        if report.errors.len() > before {
            ok = false;
        }
        let mut rule_report = RuleReport {
            report,
            path: &rpath,
            context: &rcontext,
            failed: false,
        };
        let group_defaults = Defaults {
            interval: interval.unwrap_or(defaults.interval),
            ..*defaults
        };
        let rule = rule_report.rule(&raw, &group_defaults);
        match rule {
            Some(r) if !rule_report.failed => rules.push(r),
            _ => ok = false,
        }
    }
    ok.then(|| RuleGroup {
        name: name.to_string(),
        file: report.file.to_path_buf(),
        interval: interval.unwrap_or(defaults.interval),
        rules,
    })
}

/// Checks one rule, recording errors with the rule's context.
struct RuleReport<'r, 'a> {
    report: &'r mut Report<'a>,
    path: &'r str,
    context: &'r str,
    failed: bool,
}

impl RuleReport<'_, '_> {
    fn error(&mut self, field: &str, message: impl Into<String>) {
        self.failed = true;
        let path = format!("{}.{field}", self.path);
        self.report.at(&path, self.context, field, message);
    }

    fn duration(&mut self, raw: Option<&Text>, default: Duration, field: &str) -> Option<Duration> {
        let path = format!("{}.{field}", self.path);
        let d = self
            .report
            .duration(raw, default, &path, self.context, field);
        if d.is_none() {
            self.failed = true;
        }
        d
    }

    /// A required duration > 0.
    fn positive(&mut self, raw: Option<&Text>, field: &str) -> Option<Duration> {
        let Some(raw) = raw else {
            self.error(field, "is required");
            return None;
        };
        let d = self.duration(Some(raw), Duration::ZERO, field)?;
        if d.is_zero() {
            self.error(field, format!("must be > 0s, got {:?}", raw.0));
            return None;
        }
        Some(d)
    }

    fn finite(&mut self, v: Option<f64>, field: &str) -> Option<f64> {
        match v {
            None => {
                self.error(field, "is required");
                None
            }
            Some(x) if !x.is_finite() => {
                self.error(field, format!("must be a finite number, got {x}"));
                None
            }
            Some(x) => Some(x),
        }
    }

    fn direction(&mut self, v: Option<&str>, field: &str) -> Option<Direction> {
        match v {
            None | Some("above") => Some(Direction::Above),
            Some("below") => Some(Direction::Below),
            Some(other) => {
                self.error(field, format!("must be 'above' or 'below', got {other:?}"));
                None
            }
        }
    }

    /// Checks PromQL `query` at `field`; `$window` is replaced by
    /// [`CHECK_WINDOW`] first when `windowed`, positions mapped back.
    fn promql(&mut self, query: &str, field: &str, windowed: bool) {
        let (checked, map) = if windowed {
            substitute_window(query)
        } else {
            (query.to_string(), Vec::new())
        };
        if let Err(e) = promql::check(&checked) {
            self.failed = true;
            let offset = map.get(e.offset).copied().unwrap_or(e.offset);
            let key = self
                .report
                .doc
                .locate(&parse_path(&format!("{}.{field}", self.path)));
            let pos = self.report.doc.value_pos(key, query, offset);
            self.report.push_at(
                pos.line,
                pos.column,
                self.context,
                field,
                format!(
                    "invalid PromQL at character {} of {query:?}: {}",
                    offset + 1,
                    e.message
                ),
            );
        }
    }

    fn rule(&mut self, raw: &RawRule, defaults: &Defaults) -> Option<Rule> {
        let name = match raw.alert.as_deref() {
            None => {
                self.error("alert", "is required");
                None
            }
            Some(a) if !is_alert_name(a) => {
                self.error(
                    "alert",
                    format!("must match [a-zA-Z_:][a-zA-Z0-9_:]*, got {a:?}"),
                );
                None
            }
            Some(a) => Some(a.to_string()),
        };
        let step = self
            .duration(raw.step.as_ref(), DEFAULT_STEP, "step")
            .filter(|s| {
                if s.is_zero() {
                    self.error("step", "must be > 0s, got \"0s\"");
                }
                !s.is_zero()
            });
        let history = self.duration(raw.history.as_ref(), DEFAULT_HISTORY, "history");
        if let (Some(h), Some(s)) = (history, step)
            && h < 2 * s
        {
            self.error(
                "history",
                format!(
                    "must be at least 2 × step ({}), got {:?}",
                    format_duration(2 * s),
                    format_duration(h)
                ),
            );
        }
        let model = match raw.model.as_deref() {
            None => Some(ModelKind::default()),
            Some(m) => ModelKind::from_str(m)
                .map_err(|_| {
                    self.error(
                        "model",
                        format!("must be one of 'auto', 'naive', 'seasonal_naive', 'linear', 'ets', 'mstl', got {m:?}"),
                    )
                })
                .ok(),
        };
        let mut horizons = Vec::new();
        match &raw.horizons {
            None => horizons.extend(DEFAULT_HORIZONS),
            Some(list) => {
                for (k, h) in list.iter().enumerate() {
                    let field = format!("horizons[{k}]");
                    if let Some(d) = self.duration(Some(h), Duration::ZERO, &field) {
                        match step {
                            Some(s) if d < s => self.error(
                                &field,
                                format!("must be ≥ step ({}), got {:?}", format_duration(s), h.0),
                            ),
                            _ => horizons.push(d),
                        }
                    }
                }
            }
        }
        let series_limit = match raw.series_limit {
            None => defaults.series_limit,
            Some(n) if n > 0 => n as usize,
            Some(n) => {
                self.error("series_limit", format!("must be > 0, got {n}"));
                0
            }
        };
        let condition = self.condition(raw.condition.as_ref());
        let expr = match (&raw.expr, &condition) {
            (Some(e), _) => {
                self.promql(e, "expr", false);
                Some(e.clone())
            }
            (None, Some(Condition::BurnRate { errors, total, .. })) => Some(format!(
                "({}) / ({})",
                super::window_query(errors, CHECK_WINDOW),
                super::window_query(total, CHECK_WINDOW)
            )),
            (None, Some(_)) => {
                self.error("expr", "is required");
                None
            }
            (None, None) => None,
        };
        let for_ = self.duration(raw.for_.as_ref(), Duration::ZERO, "for");
        let keep_firing_for = self.duration(
            raw.keep_firing_for.as_ref(),
            default_keep_firing_for(for_.unwrap_or_default(), defaults.interval),
            "keep_firing_for",
        );
        if let (Some(s), Some(c)) = (step, &condition) {
            self.lookahead(s, c, &horizons);
        }
        let bounds = match (&raw.bounds, &expr) {
            (Some(b), _) => self.bounds(b),
            (None, Some(e)) => Some(promql::inferred_bounds(e)),
            (None, None) => None,
        };
        let has_eta = matches!(
            condition,
            Some(Condition::TimeToThreshold { .. } | Condition::Forecast { .. })
        );
        let labels = self.templates(raw.labels.as_ref(), "labels", has_eta);
        let annotations = self.templates(raw.annotations.as_ref(), "annotations", has_eta);
        let line = self.report.doc.locate(&parse_path(self.path)).line;
        Some(Rule {
            name: name?,
            expr: expr?,
            history: history?,
            step: step?,
            model: model?,
            horizons,
            series_limit,
            condition: condition?,
            for_: for_?,
            keep_firing_for: keep_firing_for?,
            bounds: bounds?,
            labels,
            annotations,
            line,
        })
    }

    /// Refuses a look-ahead the engine cannot forecast: `within`, twice
    /// `less_than` and the horizons reach at most [`MAX_LOOKAHEAD_STEPS`]
    /// steps, and `within` and `less_than` at least one step.
    fn lookahead(&mut self, step: Duration, condition: &Condition, horizons: &[Duration]) {
        let steps = u32::try_from(MAX_LOOKAHEAD_STEPS).unwrap_or(u32::MAX);
        let max = step.saturating_mul(steps);
        let limit = format!(
            "the engine forecasts at most {MAX_LOOKAHEAD_STEPS} steps of {} ({})",
            format_duration(step),
            format_duration(max)
        );
        for (k, h) in horizons.iter().enumerate() {
            if *h > max {
                self.error(
                    &format!("horizons[{k}]"),
                    format!(
                        "must be at most {}: {limit}, got {}",
                        format_duration(max),
                        format_duration(*h)
                    ),
                );
            }
        }
        let (field, wanted, reach, what) = match condition {
            Condition::Forecast { within, .. } => {
                ("condition.forecast.within", *within, *within, "")
            }
            Condition::TimeToThreshold { less_than, .. } => (
                "condition.time_to_threshold.less_than",
                *less_than,
                less_than.saturating_mul(2),
                " (the engine looks twice as far ahead, to know the time before it alerts)",
            ),
            Condition::Anomaly { .. } | Condition::BurnRate { .. } => return,
        };
        if reach > max {
            let allowed = if reach == wanted { max } else { max / 2 };
            self.error(
                field,
                format!(
                    "must be at most {}{what}: {limit}, got {}; raise step or shorten it",
                    format_duration(allowed),
                    format_duration(wanted)
                ),
            );
        } else if wanted < step {
            self.error(
                field,
                format!(
                    "must be ≥ step ({}): a forecast has no point sooner, got {}",
                    format_duration(step),
                    format_duration(wanted)
                ),
            );
        }
    }

    /// Checks `bounds: [lower, upper]`.
    fn bounds(&mut self, raw: &[Option<f64>]) -> Option<Bounds> {
        let [lower, upper] = raw else {
            self.error(
                "bounds",
                format!(
                    "must be [lower, upper] with null for an open side, such as [0, 100] or [0, null], got {} values",
                    raw.len()
                ),
            );
            return None;
        };
        let mut ok = true;
        for (k, v) in [lower, upper].into_iter().enumerate() {
            if let Some(x) = v
                && !x.is_finite()
            {
                self.error(
                    &format!("bounds[{k}]"),
                    format!("must be a finite number or null, got {x}"),
                );
                ok = false;
            }
        }
        if let (true, Some(lo), Some(hi)) = (ok, lower, upper)
            && lo >= hi
        {
            self.error(
                "bounds[1]",
                format!("must be greater than the lower bound {lo}, got {hi}"),
            );
            ok = false;
        }
        ok.then_some(Bounds {
            lower: *lower,
            upper: *upper,
        })
    }

    fn templates(
        &mut self,
        raw: Option<&BTreeMap<String, Text>>,
        what: &str,
        has_eta: bool,
    ) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (k, v) in raw.into_iter().flatten() {
            // The key is from the file: a long one is no label name anyway.
            let field = format!("{what}.{}", excerpt(k, QUOTED_CHARS));
            if !template::is_label_name(k) || k.starts_with("__") {
                self.error(
                    &field,
                    format!(
                        "name must match [a-zA-Z_][a-zA-Z0-9_]* and not start with __, got {k:?}"
                    ),
                );
                continue;
            }
            match template::check(&v.0) {
                Err(e) => self.error(&field, e),
                Ok(uses) if uses.eta && !has_eta => self.error(
                    &field,
                    "{{ $eta }} is only set by time_to_threshold and forecast conditions",
                ),
                Ok(_) => {
                    out.insert(k.clone(), v.0.clone());
                }
            }
        }
        out
    }

    fn condition(&mut self, raw: Option<&RawCondition>) -> Option<Condition> {
        let Some(c) = raw else {
            self.error(
                "condition",
                "is required: one of forecast, time_to_threshold, anomaly, burn_rate",
            );
            return None;
        };
        let mut set: Vec<(usize, usize, &str)> = [
            ("forecast", c.forecast.is_some()),
            ("time_to_threshold", c.time_to_threshold.is_some()),
            ("anomaly", c.anomaly.is_some()),
            ("burn_rate", c.burn_rate.is_some()),
        ]
        .into_iter()
        .filter(|&(_, present)| present)
        .map(|(n, _)| {
            let pos = self
                .report
                .doc
                .locate(&parse_path(&format!("{}.condition.{n}", self.path)));
            (pos.line, pos.column, n)
        })
        .collect();
        // In file order, so the error points at the second one written.
        set.sort();
        match set.as_slice() {
            [] => {
                self.error(
                    "condition",
                    "needs one of forecast, time_to_threshold, anomaly, burn_rate",
                );
                return None;
            }
            [_] => {}
            [_, (_, _, second), ..] => {
                let names: Vec<&str> = set.iter().map(|s| s.2).collect();
                self.error(
                    &format!("condition.{second}"),
                    format!(
                        "exactly one condition is allowed, got {}",
                        names.join(" and ")
                    ),
                );
                return None;
            }
        }
        if let Some(f) = &c.forecast {
            let threshold = self.finite(f.threshold, "condition.forecast.threshold");
            let direction = self.direction(f.direction.as_deref(), "condition.forecast.direction");
            let within = self.positive(f.within.as_ref(), "condition.forecast.within");
            return Some(Condition::Forecast {
                threshold: threshold?,
                direction: direction?,
                within: within?,
            });
        }
        if let Some(t) = &c.time_to_threshold {
            let p = "condition.time_to_threshold";
            let threshold = self.finite(t.threshold, &format!("{p}.threshold"));
            let direction = self.direction(t.direction.as_deref(), &format!("{p}.direction"));
            let less_than = self.positive(t.less_than.as_ref(), &format!("{p}.less_than"));
            return Some(Condition::TimeToThreshold {
                threshold: threshold?,
                direction: direction?,
                less_than: less_than?,
            });
        }
        if let Some(a) = &c.anomaly {
            let field = "condition.anomaly.score_above";
            let score = self.finite(a.score_above, field)?;
            if !(0.0..=1.0).contains(&score) {
                self.error(field, format!("must be in [0, 1], got {score}"));
                return None;
            }
            return Some(Condition::Anomaly { score_above: score });
        }
        let b = c.burn_rate.as_ref()?;
        let p = "condition.burn_rate";
        let objective = match b.objective {
            None => {
                self.error(&format!("{p}.objective"), "is required");
                None
            }
            Some(o) if !(o > 0.0 && o < 1.0) => {
                self.error(
                    &format!("{p}.objective"),
                    format!("must be in (0, 1), such as 0.999, got {o}"),
                );
                None
            }
            Some(o) => Some(o),
        };
        let mut queries = Vec::new();
        for (name, q) in [("errors", &b.errors), ("total", &b.total)] {
            let field = format!("{p}.{name}");
            match q {
                None => self.error(&field, "is required"),
                Some(q) if !q.contains("$window") => self.error(
                    &field,
                    format!("must use $window as the range of its rates, got {q:?}"),
                ),
                Some(q) => {
                    self.promql(q, &field, true);
                    queries.push(q.clone());
                }
            }
        }
        let windows = match &b.windows {
            None => BurnWindow::defaults(),
            Some(list) => {
                let mut out = Vec::new();
                if list.is_empty() {
                    self.error(
                        &format!("{p}.windows"),
                        "must hold at least one window (or be left out for the default table)",
                    );
                }
                for (k, w) in list.iter().enumerate() {
                    let f = format!("{p}.windows[{k}]");
                    let long = self.positive(w.long.as_ref(), &format!("{f}.long"));
                    let short = self.positive(w.short.as_ref(), &format!("{f}.short"));
                    let factor = self.finite(w.factor, &format!("{f}.factor"));
                    if let (Some(l), Some(s)) = (long, short)
                        && s >= l
                    {
                        self.error(
                            &format!("{f}.short"),
                            format!(
                                "must be shorter than long ({}), got {}",
                                format_duration(l),
                                format_duration(s)
                            ),
                        );
                    }
                    if let Some(x) = factor
                        && x <= 0.0
                    {
                        self.error(&format!("{f}.factor"), format!("must be > 0, got {x}"));
                    }
                    if let (Some(l), Some(s), Some(x)) = (long, short, factor) {
                        out.push(BurnWindow {
                            long: l,
                            short: s,
                            factor: x,
                        });
                    }
                }
                out
            }
        };
        if let Some(o) = objective {
            for (k, w) in windows.iter().enumerate() {
                if w.factor * (1.0 - o) >= 1.0 {
                    self.error(
                        &format!("{p}.windows[{k}].factor"),
                        format!(
                            "{} × (1 − {o}) ≥ 1: an error ratio can never exceed it, so the alert could never fire",
                            w.factor
                        ),
                    );
                }
            }
        }
        let [errors, total] = <[String; 2]>::try_from(queries).ok()?;
        Some(Condition::BurnRate {
            objective: objective?,
            errors,
            total,
            windows,
        })
    }
}

/// The `keep_firing_for` of a rule that sets none: the longest of `for`,
/// two evaluation intervals and [`MIN_DEFAULT_KEEP_FIRING_FOR`].
pub(crate) fn default_keep_firing_for(for_: Duration, interval: Duration) -> Duration {
    for_.max(interval.saturating_mul(2))
        .max(MIN_DEFAULT_KEEP_FIRING_FOR)
}

/// Whether `s` is a valid alert name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
fn is_alert_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `query` with `$window` replaced by [`CHECK_WINDOW`], and for each
/// character of the result the character offset it came from.
fn substitute_window(query: &str) -> (String, Vec<usize>) {
    let window = format_duration(CHECK_WINDOW);
    let mut out = String::new();
    let mut map = Vec::new();
    let chars: Vec<(usize, char)> = query.char_indices().collect();
    let mut k = 0;
    while k < chars.len() {
        let (byte, c) = chars[k];
        if query[byte..].starts_with("$window") {
            for w in window.chars() {
                out.push(w);
                map.push(k);
            }
            k += "$window".len();
        } else {
            out.push(c);
            map.push(k);
            k += 1;
        }
    }
    (out, map)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEFAULTS: Defaults = Defaults {
        interval: Duration::from_secs(60),
        series_limit: 1000,
    };

    fn load(text: &str) -> (Vec<RuleGroup>, Vec<String>) {
        let mut errors = Vec::new();
        let groups = load_file(Path::new("rules/t.yml"), text, &DEFAULTS, &mut errors);
        (groups, errors.iter().map(ToString::to_string).collect())
    }

    const GOOD: &str = r#"
groups:
  - name: storage
    interval: 2m
    rules:
      - alert: ShopDbFullSoon
        expr: pg_database_size_bytes{datname="shop"}
        condition:
          time_to_threshold: {threshold: 100e9, direction: above, less_than: 3d}
        for: 10m
        labels: {severity: warning}
        annotations:
          summary: 'Shop DB {{ $labels.datname }} full in {{ $eta }}'
      - alert: ErrorBudget
        condition:
          burn_rate:
            objective: 0.999
            errors: 'sum(rate(http_requests_total{code=~"5.."}[$window]))'
            total: 'sum(rate(http_requests_total[$window]))'
"#;

    #[test]
    fn good_file_gives_typed_rules() {
        let (groups, errors) = load(GOOD);
        assert!(errors.is_empty(), "{errors:?}");
        let g = &groups[0];
        assert_eq!(
            (g.name.as_str(), g.interval),
            ("storage", Duration::from_secs(120))
        );
        let r = &g.rules[0];
        assert_eq!(r.line, 6);
        assert_eq!(r.history, DEFAULT_HISTORY);
        assert_eq!(r.horizons, DEFAULT_HORIZONS);
        assert_eq!(r.for_, Duration::from_secs(600));
        assert_eq!(
            r.condition,
            Condition::TimeToThreshold {
                threshold: 100e9,
                direction: Direction::Above,
                less_than: Duration::from_secs(3 * 86_400)
            }
        );
        let b = &g.rules[1];
        assert_eq!(
            b.expr,
            r#"(sum(rate(http_requests_total{code=~"5.."}[5m]))) / (sum(rate(http_requests_total[5m])))"#
        );
        assert!(matches!(&b.condition, Condition::BurnRate { windows, .. } if windows.len() == 3));
    }

    #[test]
    fn negative_for_is_located() {
        let text = "groups:\n  - name: g\n    rules:\n      - alert: a\n        expr: up\n        condition: {anomaly: {score_above: 0.9}}\n        for: -5m\n";
        let (_, errors) = load(text);
        assert_eq!(
            errors,
            [r#"rules/t.yml:7:9: group "g", rule "a": field 'for': must be ≥ 0s, got "-5m""#]
        );
    }

    #[test]
    fn bad_promql_shows_its_position() {
        let text = "groups:\n  - name: g\n    rules:\n      - alert: a\n        expr: sum(rate(x[5m])\n        condition: {anomaly: {score_above: 0.9}}\n";
        let (_, errors) = load(text);
        assert_eq!(errors.len(), 1);
        assert!(
            errors[0].starts_with(r#"rules/t.yml:5:18: group "g", rule "a": field 'expr': invalid PromQL at character 4"#),
            "{}",
            errors[0]
        );
    }

    #[test]
    fn burn_rate_positions_map_back_through_window() {
        let text = "groups:\n  - name: g\n    rules:\n      - alert: a\n        condition:\n          burn_rate:\n            objective: 0.99\n            errors: rate(x[$window]) +\n            total: rate(y[$window])\n";
        let (_, errors) = load(text);
        assert_eq!(errors.len(), 1, "{errors:?}");
        // `+` is character 18 of the original query, column 21 + 17.
        assert!(errors[0].starts_with("rules/t.yml:8:38: "), "{}", errors[0]);
        assert!(errors[0].contains("at character 18"), "{}", errors[0]);
    }

    #[test]
    fn every_problem_of_every_rule_is_reported() {
        let text = r#"
groups:
  - name: g
    rules:
      - alert: a
        expr: up
        step: 0s
        model: prophet
        condition: {anomaly: {score_above: 1.5}}
        annotations: {summary: '{{ $eta }} {{ .Value }}'}
      - alert: a
        expr: up
        histroy: 7d
        condition: {anomaly: {score_above: 0.5}}
      - alert: c
        expr: up
        condition:
          anomaly: {score_above: 0.5}
          forecast: {threshold: 1, within: 1h}
      - alert: d
        expr: up
        condition:
          burn_rate: {objective: 1.5, errors: 'x', total: 'rate(y[$window])'}
      - alert: a
        expr: up
        condition: {anomaly: {score_above: 0.5}}
"#;
        let (groups, errors) = load(text);
        assert!(groups.is_empty());
        let expect = [
            r#"rules/t.yml:7:9: group "g", rule "a": field 'step': must be > 0s, got "0s""#,
            r#"rules/t.yml:8:9: group "g", rule "a": field 'model': must be one of"#,
            r#"rules/t.yml:9:31: group "g", rule "a": field 'condition.anomaly.score_above': must be in [0, 1], got 1.5"#,
            r#"rules/t.yml:10:23: group "g", rule "a": field 'annotations.summary': unknown placeholder"#,
            r#"rules/t.yml:11:9: group "g", rule "a": field 'alert': duplicate alert name "a" in group "g" (first at line 5)"#,
            r#"rules/t.yml:13:9: group "g", rule "a": field 'histroy': unknown field `histroy`"#,
            r#"rules/t.yml:19:11: group "g", rule "c": field 'condition.forecast': exactly one condition is allowed, got anomaly and forecast"#,
            r#"rules/t.yml:23:23: group "g", rule "d": field 'condition.burn_rate.objective': must be in (0, 1)"#,
            r#"rules/t.yml:23:39: group "g", rule "d": field 'condition.burn_rate.errors': must use $window"#,
            r#"rules/t.yml:24:9: group "g", rule "a": field 'alert': duplicate alert name "a" in group "g" (first at line 5)"#,
        ];
        assert_eq!(errors.len(), expect.len(), "{errors:#?}");
        for (got, want) in errors.iter().zip(expect) {
            assert!(got.starts_with(want), "got  {got}\nwant {want}");
        }
    }

    #[test]
    fn broken_yaml_names_line_and_column() {
        let (_, errors) = load("groups:\n  - name: g\n    rules: [\n");
        assert_eq!(errors.len(), 1);
        assert!(errors[0].starts_with("rules/t.yml:4:1: "), "{}", errors[0]);
    }

    #[test]
    fn empty_file_has_no_groups() {
        assert_eq!(load("# nothing yet\n"), (Vec::new(), Vec::new()));
    }

    #[test]
    fn window_substitution_maps_offsets() {
        let (q, map) = substitute_window("r(x[$window])");
        assert_eq!(q, "r(x[5m])");
        assert_eq!(map[q.find(']').unwrap()], 11);
        assert_eq!(map[4], 4);
    }
}
