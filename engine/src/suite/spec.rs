//! The scenario file format: what a file of `engine/suite/` holds, read
//! with serde and checked, every problem naming the file, line and field.
//!
//! Times inside a scenario are offsets from its `start`, written as
//! durations (`15d10h`); a scenario's series are the stack's normal series
//! (see [`super::generate`]), changed by `signals` overrides, the traps
//! (`restarts`, `gaps`, `changes`) and the `incidents`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::SuiteError;
use crate::config::locate::{Doc, parse_path};
use crate::config::parse_duration;

/// Longest scenario, in seconds: 60 days, enough for 14 days of history
/// before a fortnight evaluated, short enough to stay cheap to replay.
pub const MAX_LENGTH_SECS: i64 = 60 * 86_400;

/// Shortest sample step, in seconds: Prometheus scrapes at 1 s at most.
pub const MIN_STEP_SECS: i64 = 1;

/// Longest sample step, in seconds: beyond the 5-minute look-back every
/// instant query would see gaps.
pub const MAX_STEP_SECS: i64 = 300;

/// Most samples of one series (length / step): about 69 days at one a
/// minute; it bounds the memory a scenario takes (~70 series × 16 bytes).
pub const MAX_SAMPLES: i64 = 100_000;

/// Most entries of each list (`incidents`, `restarts`, `gaps`, `changes`,
/// `signals`, a signal's `nightly`, an incident's `truth`): scenarios are
/// written by hand, more is surely a mistake.
pub const MAX_ENTRIES: usize = 64;

/// Largest magnitude of any number in a scenario: 10^15 (a petabyte).
pub const MAX_ABS_VALUE: f64 = 1e15;

/// Longest `name`, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// A scenario file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioSpec {
    /// Short identifier: lower-case letters, digits and `-`.
    pub name: String,
    /// What happens in the scenario, for a reader of the report.
    #[serde(default)]
    pub description: String,
    /// Seed of every random draw of the scenario.
    pub seed: u64,
    /// The first sample: RFC 3339 or Unix seconds.
    pub start: StartTime,
    /// How long the scenario runs (a duration).
    pub length: String,
    /// Time between raw samples (a duration).
    pub step: String,
    /// Offset from `start` where the replay starts evaluating; what comes
    /// before is the history the models fit on.
    pub evaluate_from: String,
    /// Changes to the stack's normal behaviour, by signal (`cpu:mes-api`).
    #[serde(default)]
    pub signals: BTreeMap<String, SignalOverride>,
    /// Process restarts: every counter of the job starts again from 0.
    #[serde(default)]
    pub restarts: Vec<Restart>,
    /// Scrape gaps: no samples of the matching series.
    #[serde(default)]
    pub gaps: Vec<Gap>,
    /// Planned, permanent changes that are not incidents.
    #[serde(default)]
    pub changes: Vec<Change>,
    /// What goes wrong, with what should be alerted.
    #[serde(default)]
    pub incidents: Vec<IncidentSpec>,
    /// Checked values, filled by [`ScenarioSpec::check`].
    #[serde(skip)]
    pub(crate) times: Times,
}

/// The scenario's times in seconds, checked.
#[derive(Debug, Clone, Default)]
pub(crate) struct Times {
    pub start: i64,
    pub length: i64,
    pub step: i64,
    pub evaluate_from: i64,
}

/// `start`: RFC 3339 text or Unix seconds.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum StartTime {
    /// Unix seconds.
    Unix(i64),
    /// RFC 3339 (or another format [`crate::timestamp::parse`] reads).
    Text(String),
}

/// Overrides of one signal's normal behaviour; unset fields keep the
/// stack's defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalOverride {
    /// Mean level, in the signal's unit.
    pub level: Option<f64>,
    /// Added per day, in the signal's unit.
    pub trend: Option<f64>,
    /// Relative amplitude of the daily rhythm (0 = flat), in [0, 1).
    pub daily: Option<f64>,
    /// Hour (UTC) of the daily peak.
    pub peak_hour: Option<f64>,
    /// Factor on Saturdays and Sundays.
    pub weekend: Option<f64>,
    /// Relative extra on Monday mornings (08:00–12:00).
    pub monday: Option<f64>,
    /// Relative standard deviation of the noise, in [0, 1].
    pub noise: Option<f64>,
    /// Daily windows (batch jobs, backups); replace the defaults.
    pub nightly: Option<Vec<Nightly>>,
    /// Size of the filesystem (disk signals), bytes.
    pub capacity: Option<f64>,
}

/// A window repeated every day.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nightly {
    /// What it is (`batch`, `backup`), named in the scenario's traps.
    pub what: String,
    /// Offset from midnight UTC (a duration: `2h30m`).
    pub at: String,
    /// How long it lasts (a duration).
    #[serde(rename = "for")]
    pub lasts: String,
    /// Factor on the value during the window.
    #[serde(default = "one")]
    pub factor: f64,
    /// Added to the value during the window.
    #[serde(default)]
    pub add: f64,
}

fn one() -> f64 {
    1.0
}

/// A process restart.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Restart {
    /// The job (`crm-api`, `mes-api`, `shop-api`).
    pub job: String,
    /// Offset from `start`.
    pub at: String,
}

/// A scrape gap.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gap {
    /// Offset from `start`.
    pub at: String,
    /// How long no sample is taken.
    #[serde(rename = "for")]
    pub lasts: String,
    /// Labels a series must all carry to be left out (none: every series).
    #[serde(default, rename = "match")]
    pub matching: BTreeMap<String, String>,
}

/// A planned, permanent change of a signal.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    /// The signal (`db:shop`).
    pub target: String,
    /// Offset from `start`.
    pub at: String,
    /// Factor from then on.
    #[serde(default = "one")]
    pub factor: f64,
    /// Added from then on.
    #[serde(default)]
    pub add: f64,
    /// Why (`cleanup`, `launch`), named in the scenario's traps.
    pub what: String,
}

/// One incident and the alerts it should raise.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentSpec {
    /// What happens (see [`IncidentKind`]).
    pub kind: IncidentKind,
    /// The signal it happens to (`ready:mes.work`).
    pub target: String,
    /// Offset from `start`.
    pub onset: String,
    /// How long it lasts.
    pub duration: String,
    /// Its size, in the unit its kind says.
    pub magnitude: f64,
    /// The alerts it should raise, one or more.
    pub truth: Vec<TruthSpec>,
}

/// Kinds of incident and what `magnitude` means for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentKind {
    /// A size grows by `magnitude` units an hour more than usual, and stays
    /// grown (databases, buckets, disks).
    Growth,
    /// Consumers stop: `magnitude` messages a minute pile up; when it ends
    /// they drain at three times that rate.
    Stall,
    /// Memory grows by `magnitude` bytes an hour until the process is
    /// restarted at the end.
    Leak,
    /// CPU climbs in 5 minutes to `magnitude` % and stays there.
    Saturation,
    /// `magnitude` is the fraction of requests answered 500.
    Storm,
    /// The value is `magnitude` times its usual level for that time.
    Spike,
    /// From onset on the value is `magnitude` times what it would be, for
    /// good (a deploy); `duration` is the span counted as the incident.
    Shift,
}

impl IncidentKind {
    /// The name used in files and reports.
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentKind::Growth => "growth",
            IncidentKind::Stall => "stall",
            IncidentKind::Leak => "leak",
            IncidentKind::Saturation => "saturation",
            IncidentKind::Storm => "storm",
            IncidentKind::Spike => "spike",
            IncidentKind::Shift => "shift",
        }
    }

    /// The signal kinds (the part before `:`) it applies to; empty: any.
    fn targets(self) -> &'static [&'static str] {
        match self {
            IncidentKind::Growth => &["db", "bucket", "disk"],
            IncidentKind::Stall => &["ready", "unacked"],
            IncidentKind::Leak => &["memory"],
            IncidentKind::Saturation => &["cpu", "host_cpu"],
            IncidentKind::Storm => &["errors"],
            IncidentKind::Spike | IncidentKind::Shift => &[],
        }
    }

    /// Whether an alert should follow within minutes of onset.
    pub fn abrupt(self) -> bool {
        matches!(
            self,
            IncidentKind::Saturation | IncidentKind::Storm | IncidentKind::Spike
        )
    }
}

/// One alert an incident should raise.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TruthSpec {
    /// The shipped rule's alert name.
    pub alert: String,
    /// Labels identifying the alert's series.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// The classic static alert over the raw metrics, if there is one.
    #[serde(rename = "static")]
    pub static_alert: Option<StaticSpec>,
    /// When the rule's condition truly holds: the noise-free target signal
    /// is at or above `threshold` (the signal's unit) within `within`.
    pub holds: Option<HoldsSpec>,
    /// Overrides the kind's default (abrupt: saturation, storm, spike).
    pub abrupt: Option<bool>,
}

/// A classic static alert.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StaticSpec {
    /// PromQL over the raw metrics, a comparison.
    pub expr: String,
    /// How long it must hold before firing (a duration).
    #[serde(rename = "for")]
    pub lasts: String,
}

/// When a rule's condition truly holds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldsSpec {
    /// The level, in the target signal's unit, reached from below.
    pub threshold: f64,
    /// How far ahead the rule looks (a duration).
    pub within: String,
}

/// Collects problems found while checking one file.
pub(crate) struct Checker<'a> {
    file: &'a Path,
    doc: Doc<'a>,
    first: Option<SuiteError>,
}

impl<'a> Checker<'a> {
    pub(crate) fn new(file: &'a Path, text: &'a str) -> Self {
        Checker {
            file,
            doc: Doc::new(text),
            first: None,
        }
    }

    /// Records a problem at `field` (a path like `incidents[0].onset`);
    /// the first one is kept.
    pub(crate) fn fail(&mut self, field: &str, message: impl Into<String>) {
        if self.first.is_none() {
            let pos = self.doc.locate(&parse_path(field));
            self.first = Some(SuiteError::Invalid {
                file: self.file.to_path_buf(),
                line: pos.line,
                column: pos.column,
                field: field.to_string(),
                message: message.into(),
            });
        }
    }

    fn duration(&mut self, field: &str, text: &str) -> i64 {
        match parse_duration(text) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            Err(e) => {
                self.fail(field, e);
                0
            }
        }
    }

    /// An offset from start, which must lie within the scenario.
    fn offset(&mut self, field: &str, text: &str, length: i64) -> i64 {
        let d = self.duration(field, text);
        if d > length {
            self.fail(
                field,
                format!("{text:?} lies after the scenario's end ({length} s)"),
            );
        }
        d
    }

    fn number(&mut self, field: &str, v: f64, min: f64, max: f64) {
        if !v.is_finite() || v < min || v > max {
            self.fail(
                field,
                format!("must be a number in [{min}, {max}], got {v}"),
            );
        }
    }

    fn count(&mut self, field: &str, n: usize) {
        if n > MAX_ENTRIES {
            self.fail(field, format!("at most {MAX_ENTRIES} entries, got {n}"));
        }
    }

    pub(crate) fn finish(self) -> Result<(), SuiteError> {
        self.first.map_or(Ok(()), Err)
    }
}

impl ScenarioSpec {
    /// Checks every field, filling the parsed times.
    pub(crate) fn check(&mut self, c: &mut Checker<'_>) {
        if self.name.is_empty()
            || self.name.chars().count() > MAX_NAME_CHARS
            || !self
                .name
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-')
        {
            c.fail(
                "name",
                format!(
                    "must be 1 to {MAX_NAME_CHARS} lower-case letters, digits or '-', got {:?}",
                    self.name.chars().take(MAX_NAME_CHARS).collect::<String>()
                ),
            );
        }
        let start = match &self.start {
            StartTime::Unix(s) => *s,
            StartTime::Text(t) => match crate::timestamp::parse(t) {
                Ok((s, _)) => s,
                Err(e) => {
                    c.fail("start", e);
                    0
                }
            },
        };
        if !(0..=crate::timestamp::MAX_TIMESTAMP - MAX_LENGTH_SECS).contains(&start) {
            c.fail(
                "start",
                format!("must be after 1970 and before 9999, got {start}"),
            );
        }
        let length = c.duration("length", &self.length);
        if !(1..=MAX_LENGTH_SECS).contains(&length) {
            c.fail(
                "length",
                format!("must be from 1s to {} days", MAX_LENGTH_SECS / 86_400),
            );
        }
        let step = c.duration("step", &self.step);
        if !(MIN_STEP_SECS..=MAX_STEP_SECS).contains(&step) {
            c.fail(
                "step",
                format!("must be from {MIN_STEP_SECS}s to {MAX_STEP_SECS}s, got {step}s"),
            );
        } else if length / step > MAX_SAMPLES {
            c.fail(
                "step",
                format!(
                    "{} samples per series, at most {MAX_SAMPLES}: a longer step or a shorter length",
                    length / step
                ),
            );
        }
        let evaluate_from = c.offset("evaluate_from", &self.evaluate_from, length);
        if evaluate_from >= length {
            c.fail("evaluate_from", "must come before the scenario's end");
        }
        self.times = Times {
            start,
            length,
            step: step.max(MIN_STEP_SECS),
            evaluate_from,
        };

        let known = super::generate::signal_names();
        c.count("signals", self.signals.len());
        for (name, o) in &self.signals {
            let f = format!("signals.{name}");
            if !known.iter().any(|k| k == name) {
                c.fail(
                    &f,
                    format!("no signal {name:?}; known: {}", known.join(", ")),
                );
            }
            check_override(c, &f, o);
        }
        c.count("restarts", self.restarts.len());
        for (i, r) in self.restarts.iter().enumerate() {
            if !super::generate::JOBS.contains(&r.job.as_str()) {
                c.fail(
                    &format!("restarts[{i}].job"),
                    format!(
                        "no job {:?}; known: {}",
                        r.job,
                        super::generate::JOBS.join(", ")
                    ),
                );
            }
            c.offset(&format!("restarts[{i}].at"), &r.at, length);
        }
        c.count("gaps", self.gaps.len());
        for (i, g) in self.gaps.iter().enumerate() {
            c.offset(&format!("gaps[{i}].at"), &g.at, length);
            c.duration(&format!("gaps[{i}].for"), &g.lasts);
        }
        c.count("changes", self.changes.len());
        for (i, ch) in self.changes.iter().enumerate() {
            let f = format!("changes[{i}]");
            if !known.contains(&ch.target) {
                c.fail(&format!("{f}.target"), format!("no signal {:?}", ch.target));
            }
            c.offset(&format!("{f}.at"), &ch.at, length);
            c.number(&format!("{f}.factor"), ch.factor, 0.0, 100.0);
            c.number(&format!("{f}.add"), ch.add, -MAX_ABS_VALUE, MAX_ABS_VALUE);
        }
        c.count("incidents", self.incidents.len());
        for (i, inc) in self.incidents.iter().enumerate() {
            check_incident(c, &format!("incidents[{i}]"), inc, &known, length);
        }
    }
}

fn check_override(c: &mut Checker<'_>, f: &str, o: &SignalOverride) {
    let fields = [
        ("level", o.level, 0.0, MAX_ABS_VALUE),
        ("trend", o.trend, -MAX_ABS_VALUE, MAX_ABS_VALUE),
        ("daily", o.daily, 0.0, 0.99),
        ("peak_hour", o.peak_hour, 0.0, 24.0),
        ("weekend", o.weekend, 0.0, 10.0),
        ("monday", o.monday, 0.0, 10.0),
        ("noise", o.noise, 0.0, 1.0),
        ("capacity", o.capacity, 1.0, MAX_ABS_VALUE),
    ];
    for (name, v, min, max) in fields {
        if let Some(v) = v {
            c.number(&format!("{f}.{name}"), v, min, max);
        }
    }
    if let Some(n) = &o.nightly {
        c.count(&format!("{f}.nightly"), n.len());
        for (j, w) in n.iter().enumerate() {
            let g = format!("{f}.nightly[{j}]");
            let at = c.duration(&format!("{g}.at"), &w.at);
            if at >= 86_400 {
                c.fail(&format!("{g}.at"), "must be within the day (under 24h)");
            }
            let lasts = c.duration(&format!("{g}.for"), &w.lasts);
            if lasts > 86_400 {
                c.fail(&format!("{g}.for"), "must be at most 24h");
            }
            c.number(&format!("{g}.factor"), w.factor, 0.0, 100.0);
            c.number(&format!("{g}.add"), w.add, -MAX_ABS_VALUE, MAX_ABS_VALUE);
        }
    }
}

fn check_incident(c: &mut Checker<'_>, f: &str, inc: &IncidentSpec, known: &[String], length: i64) {
    let kind = inc.target.split(':').next().unwrap_or_default();
    if !known.contains(&inc.target) {
        c.fail(
            &format!("{f}.target"),
            format!("no signal {:?}", inc.target),
        );
    } else if !inc.kind.targets().is_empty() && !inc.kind.targets().contains(&kind) {
        c.fail(
            &format!("{f}.target"),
            format!(
                "a {} incident applies to signals {}, not {:?}",
                inc.kind.as_str(),
                inc.kind.targets().join(", "),
                inc.target
            ),
        );
    }
    let onset = c.offset(&format!("{f}.onset"), &inc.onset, length);
    let duration = c.duration(&format!("{f}.duration"), &inc.duration);
    if duration == 0 {
        c.fail(&format!("{f}.duration"), "must be longer than 0s");
    } else if onset.saturating_add(duration) > length {
        c.fail(
            &format!("{f}.duration"),
            "the incident must end within the scenario",
        );
    }
    let (min, max) = match inc.kind {
        IncidentKind::Storm => (0.0, 1.0),
        IncidentKind::Saturation => (0.0, 100.0),
        IncidentKind::Spike | IncidentKind::Shift => (0.0, 100.0),
        _ => (0.0, MAX_ABS_VALUE),
    };
    c.number(&format!("{f}.magnitude"), inc.magnitude, min, max);
    if inc.truth.is_empty() {
        c.fail(&format!("{f}.truth"), "name at least one alert");
    }
    c.count(&format!("{f}.truth"), inc.truth.len());
    for (j, t) in inc.truth.iter().enumerate() {
        let g = format!("{f}.truth[{j}]");
        if t.alert.is_empty() {
            c.fail(&format!("{g}.alert"), "must not be empty");
        }
        if let Some(s) = &t.static_alert {
            if let Err(e) = promql_parser::parser::parse(&s.expr) {
                c.fail(&format!("{g}.static.expr"), format!("not PromQL: {e}"));
            }
            c.duration(&format!("{g}.static.for"), &s.lasts);
        }
        if let Some(h) = &t.holds {
            c.number(
                &format!("{g}.holds.threshold"),
                h.threshold,
                -MAX_ABS_VALUE,
                MAX_ABS_VALUE,
            );
            c.duration(&format!("{g}.holds.within"), &h.within);
        }
    }
}

/// Turns a serde error into one naming file, line and field.
pub(crate) fn serde_error(file: &Path, err: &serde_norway::Error) -> SuiteError {
    let text = err.to_string();
    let text = match text.find(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    };
    let (field, message) = match text.split_once(": ") {
        Some((p, m))
            if !p.is_empty()
                && p.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "_.[]:-".contains(ch)) =>
        {
            (p.to_string(), m.to_string())
        }
        _ => (String::new(), text.clone()),
    };
    let (line, column) = err.location().map_or((0, 0), |l| (l.line(), l.column()));
    SuiteError::Invalid {
        file: file.to_path_buf(),
        line,
        column,
        field,
        message,
    }
}
