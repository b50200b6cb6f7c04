//! Configuration and rule files: the main config (`prognos.yml`) and the
//! rule files it names, read in two phases.
//!
//! 1. [`raw`]: serde structs that mirror the files and reject unknown
//!    fields.
//! 2. [`validate`] and [`rules`]: the typed, checked [`Config`] below.
//!    Every problem is collected, not just the first, each naming file,
//!    line, column, group, rule and field ([`ConfigError`]); `peel`
//!    reads past each serde error.
//!
//! [`load`] and [`check_file`] are the only functions that touch the file
//! system: they read the config, the rule files its globs match and the
//! secret and CA files; [`check_file`] also probes the state directory.
//! Secrets are held in [`Secret`], which never prints its value.

mod check;
mod duration;
mod error;
mod glob;
pub(crate) mod locate;
mod notify;
mod peel;
mod promql;
pub mod raw;
mod rules;
mod secret;
mod state_dir;
mod template;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use prognos_models::forecast::ModelKind;
use prognos_models::threshold::Direction;

pub use check::{CheckOptions, Checked, check_file};
pub use duration::{MAX_DURATION, format_duration, parse_duration};
pub use error::{ConfigError, ConfigErrors};
pub use secret::Secret;
pub use template::{render, uses_eta};

/// Longest forecast computed to look for a threshold crossing, in steps:
/// rules whose horizons or look-ahead need more are refused.
pub const MAX_LOOKAHEAD_STEPS: usize = 8640;

/// The validated configuration: the main file and every rule it loads.
#[derive(Debug, Clone)]
pub struct Config {
    /// The main config file, as given to [`load`].
    pub source: PathBuf,
    /// The Prometheus server the rules query.
    pub prometheus: PrometheusConfig,
    /// Evaluation interval of groups that set none.
    pub evaluation_interval: Duration,
    /// Directory of the state store, resolved against the config file's
    /// directory.
    pub state_dir: PathBuf,
    /// Address of the `/metrics` HTTP server.
    pub listen: SocketAddr,
    /// The URL users reach this prognos at (links in notifications), without a trailing `/`.
    pub external_url: String,
    /// The share of the series this instance evaluates.
    pub shard: Shard,
    /// Series limit of rules that set none.
    pub series_limit_per_rule: usize,
    /// Every rule group, in the order of `rule_files` and of each file.
    pub groups: Vec<RuleGroup>,
    /// Notifications and remediation, when configured.
    pub notifications: Option<prognos_notifiers::config::NotifierConfig>,
}

impl Config {
    /// How many rules all groups hold.
    pub fn rule_count(&self) -> usize {
        self.groups.iter().map(|g| g.rules.len()).sum()
    }
}

/// How to reach Prometheus. Secrets are already read.
#[derive(Clone)]
pub struct PrometheusConfig {
    /// Base URL of the HTTP API (`http` or `https`, no credentials).
    pub url: url::Url,
    /// Deadline of one query.
    pub timeout: Duration,
    /// Bearer token for the `Authorization` header.
    pub bearer_token: Option<Secret>,
    /// User name and password for basic authentication.
    pub basic_auth: Option<(String, Secret)>,
    /// PEM certificate(s) of a CA to trust besides the system roots.
    pub ca_cert_pem: Option<Vec<u8>>,
    /// Largest answer read, in bytes (≥ 1).
    pub max_response_bytes: u64,
}

impl fmt::Debug for PrometheusConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrometheusConfig")
            .field("url", &self.url.as_str())
            .field("timeout", &self.timeout)
            .field("bearer_token", &self.bearer_token)
            .field("basic_auth", &self.basic_auth)
            .field(
                "ca_cert_pem",
                &self
                    .ca_cert_pem
                    .as_ref()
                    .map(|p| format!("<{} bytes>", p.len())),
            )
            .field("max_response_bytes", &self.max_response_bytes)
            .finish()
    }
}

/// One instance's share of the series: `index` of `count`, written `i/n`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// This instance's number, 0-based, below `count`.
    pub index: u32,
    /// How many instances share the series, ≥ 1.
    pub count: u32,
}

impl Default for Shard {
    fn default() -> Self {
        Shard { index: 0, count: 1 }
    }
}

impl FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("expected i/n with 0 ≤ i < n, such as 0/1 or 2/3, got {s:?}");
        let (i, n) = s.trim().split_once('/').ok_or_else(bad)?;
        let index: u32 = i.trim().parse().map_err(|_| bad())?;
        let count: u32 = n.trim().parse().map_err(|_| bad())?;
        if index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// A group of rules evaluated together.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleGroup {
    /// The group's name, unique within its file.
    pub name: String,
    /// The rule file it comes from.
    pub file: PathBuf,
    /// How often the group is evaluated.
    pub interval: Duration,
    /// The rules, in file order.
    pub rules: Vec<Rule>,
}

/// One checked alerting rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// The alert's name, unique within its group.
    pub name: String,
    /// PromQL giving the series (an instant vector or a scalar).
    pub expr: String,
    /// History each model is fitted on (≥ 2 × `step`).
    pub history: Duration,
    /// Resolution of the history and of the forecasts (> 0).
    pub step: Duration,
    /// The forecasting model.
    pub model: ModelKind,
    /// Horizons exported as forecast metrics (each ≥ `step`).
    pub horizons: Vec<Duration>,
    /// Most series evaluated.
    pub series_limit: usize,
    /// When the alert is active.
    pub condition: Condition,
    /// How long the condition must hold before firing.
    pub for_: Duration,
    /// How long a firing alert outlives its condition.
    pub keep_firing_for: Duration,
    /// Values the series can take: forecasts and bands stay inside them.
    pub bounds: prognos_models::forecast::Bounds,
    /// Labels added to the alert (values may hold templates).
    pub labels: BTreeMap<String, String>,
    /// Annotations (templates, see [`render`]).
    pub annotations: BTreeMap<String, String>,
    /// 1-based line of the rule in its file.
    pub line: usize,
}

/// When a rule's alert is active.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// The central forecast crosses `threshold` within `within`.
    Forecast {
        threshold: f64,
        direction: Direction,
        within: Duration,
    },
    /// The series is expected to cross `threshold` in less than `less_than`.
    TimeToThreshold {
        threshold: f64,
        direction: Direction,
        less_than: Duration,
    },
    /// The anomaly score is above `score_above` (in [0, 1]).
    Anomaly { score_above: f64 },
    /// Multi-window burn rate of an SLO. `errors` and `total` are PromQL
    /// with `$window` standing for each window (see [`window_query`]).
    BurnRate {
        objective: f64,
        errors: String,
        total: String,
        windows: Vec<BurnWindow>,
    },
}

/// One window pair of a burn-rate condition: active when the error ratio
/// over both `long` and `short` exceeds `factor × (1 − objective)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BurnWindow {
    pub long: Duration,
    pub short: Duration,
    pub factor: f64,
}

impl BurnWindow {
    /// The Google SRE workbook's table, the default windows.
    pub fn defaults() -> Vec<BurnWindow> {
        let h = |n: u64| Duration::from_secs(n * 3600);
        let m = |n: u64| Duration::from_secs(n * 60);
        vec![
            BurnWindow {
                long: h(1),
                short: m(5),
                factor: 14.4,
            },
            BurnWindow {
                long: h(6),
                short: m(30),
                factor: 6.0,
            },
            BurnWindow {
                long: h(72),
                short: h(6),
                factor: 1.0,
            },
        ]
    }
}

/// `query` with every `$window` replaced by `window` in PromQL duration
/// form (`1h`, `5m`, `1h30m`).
pub fn window_query(query: &str, window: Duration) -> String {
    query.replace("$window", &format_duration(window))
}

/// Reads and checks the config at `path` and every rule file it names.
///
/// Reads files (config, rule files, secret files, CA file) and environment
/// variables; no network. On any problem returns all problems found.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    validate::load(path)
}
