//! The files as written: serde structs that reject unknown fields and keep
//! values as text where validation wants to show the bad value (durations,
//! label values). [`super::validate`] turns them into the typed config.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

/// A YAML scalar taken as its text: `5m`, `0`, `warning`, `true`. Lets
/// validation report `got "-5m"` instead of a serde type error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// The main configuration file (`prognos.yml`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Settings shared by every rule group. Required (at least
    /// `prometheus.url`).
    pub global: RawGlobal,
    /// Rule files to load: paths or globs (`*`, `?`, `[abc]` within one path
    /// component), relative to the directory of this file. A glob that
    /// matches no file is an error. Default: none.
    #[serde(default)]
    pub rule_files: Vec<String>,
    /// Where alerts go: receivers, routing, the Telegram bot. Default: none
    /// (alerts are logged).
    pub notifications: Option<super::notify::raw::RawNotifications>,
    /// Remediation webhooks bound to alerts. Default: none.
    pub remediation: Option<super::notify::raw::RawRemediation>,
}

/// The `global:` section.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGlobal {
    /// The Prometheus server the rules query. Required.
    pub prometheus: RawPrometheus,
    /// How often each group is evaluated unless it sets `interval`.
    /// Duration (`15s`, `1m`), > 0. Default `1m`.
    pub evaluation_interval: Option<Text>,
    /// Directory of the embedded state store (alert timers, fitted models),
    /// relative to the directory of this file. Default `state`.
    pub state_dir: Option<String>,
    /// Address of the HTTP server exporting `/metrics`, as `IP:port`.
    /// Default `127.0.0.1:9464`.
    pub listen: Option<String>,
    /// Which share of the series this instance evaluates, as `i/n` with
    /// 0 ≤ i < n: series are split across n instances by a hash of their
    /// labels. Default `0/1` (everything).
    pub shard: Option<String>,
    /// Most series one rule may evaluate; more are dropped and counted.
    /// A rule's `series_limit` overrides it. Integer > 0. Default 1000.
    pub series_limit_per_rule: Option<i64>,
    /// The URL users reach this prognos at, for links in notifications
    /// (`http://` or `https://`). Default `http://` + `listen`.
    pub external_url: Option<String>,
}

/// `global.prometheus:` — where and how to query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPrometheus {
    /// Base URL of the Prometheus HTTP API, `http://` or `https://`, without
    /// credentials. Required.
    pub url: Option<String>,
    /// Deadline of one query. Duration > 0. Default `30s`.
    pub timeout: Option<Text>,
    /// File holding a bearer token (surrounding whitespace trimmed), read at
    /// load; relative to this file's directory. Not with
    /// `bearer_token_env` or `basic_auth`. Default: none.
    pub bearer_token_file: Option<String>,
    /// Environment variable holding a bearer token, read at load. Not with
    /// `bearer_token_file` or `basic_auth`. Default: none.
    pub bearer_token_env: Option<String>,
    /// HTTP basic authentication. Not with a bearer token. Default: none.
    pub basic_auth: Option<RawBasicAuth>,
    /// PEM file of a CA to trust besides the system roots, relative to this
    /// file's directory. Default: none.
    pub ca_file: Option<String>,
    /// Largest answer read from Prometheus, in bytes; a longer one fails
    /// the query (kind `response_too_large`, not retried) without being read
    /// further. Integer ≥ 1. Default 268435456 (256 MiB).
    pub max_response_bytes: Option<u64>,
}

/// `global.prometheus.basic_auth:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBasicAuth {
    /// The user name. Required.
    pub username: Option<String>,
    /// File holding the password (surrounding whitespace trimmed), relative
    /// to this file's directory. Exactly one of `password_file` and
    /// `password_env`.
    pub password_file: Option<String>,
    /// Environment variable holding the password.
    pub password_env: Option<String>,
}

/// A rule file, shaped like a Prometheus rule file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRuleFile {
    /// The rule groups, kept as YAML so that one bad group does not hide
    /// the errors of the others; each is read as a [`RawGroup`]. Default:
    /// none.
    #[serde(default)]
    pub groups: Vec<serde_norway::Value>,
}

/// One group of rules, evaluated together at one interval.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroup {
    /// The group's name, unique within its file. Required.
    pub name: Option<String>,
    /// How often the group is evaluated. Duration > 0. Default
    /// `global.evaluation_interval`.
    pub interval: Option<Text>,
    /// The rules, kept as YAML so that one bad rule does not hide the
    /// errors of the others; each is read as a [`RawRule`]. Default: none.
    #[serde(default)]
    pub rules: Vec<serde_norway::Value>,
}

/// One alerting rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    /// The alert's name (`[a-zA-Z_:][a-zA-Z0-9_:]*`), unique within its
    /// group; also the `alertname` label. Required.
    pub alert: Option<String>,
    /// PromQL giving the series to forecast and score; must be an instant
    /// vector or a scalar. Required, except for `burn_rate` rules, where
    /// it defaults to the error ratio `(errors) / (total)` over 5m.
    pub expr: Option<String>,
    /// How much history each model is fitted on. Duration ≥ 2 × `step`.
    /// Default `7d`.
    pub history: Option<Text>,
    /// Resolution of the history queried and of the forecasts.
    /// Duration > 0. Default `5m`.
    pub step: Option<Text>,
    /// The forecasting model: `auto`, `naive`, `seasonal_naive`, `linear`,
    /// `ets` or `mstl`. Default `auto`.
    pub model: Option<String>,
    /// Horizons at which the forecast and its band are exported as
    /// metrics. Durations ≥ `step`. Default `[1h, 1d]`.
    pub horizons: Option<Vec<Text>>,
    /// Most series this rule evaluates. Integer > 0. Default
    /// `global.series_limit_per_rule`.
    pub series_limit: Option<i64>,
    /// When the alert is active: exactly one condition. Required.
    pub condition: Option<RawCondition>,
    /// How long the condition must hold before the alert fires.
    /// Duration ≥ 0. Default `0s`.
    #[serde(rename = "for")]
    pub for_: Option<Text>,
    /// How long a firing alert keeps firing after the condition stops
    /// holding. Duration ≥ 0. Default: the longest of `for`, twice the
    /// group's interval and 10m, so one incident whose condition wavers
    /// notifies once; `0s` resolves at the first evaluation that does not
    /// hold, as Prometheus does.
    pub keep_firing_for: Option<Text>,
    /// The values the series can take, `[lower, upper]`, either side `null`
    /// for unbounded: forecasts and bands never leave them. Finite numbers,
    /// lower < upper. Default: `[0, null]` when every metric the expression
    /// selects is named as a non-negative quantity (see the README's rule
    /// format) and the expression neither subtracts nor uses a function
    /// that can turn negative; otherwise unbounded.
    pub bounds: Option<Vec<Option<f64>>>,
    /// Labels added to the alert; values may use templates. Default: none.
    pub labels: Option<BTreeMap<String, Text>>,
    /// Annotations of the alert (`summary`, `description`, …); values may
    /// use `{{ $labels.NAME }}`, `{{ $value }}` and `{{ $eta }}`.
    /// Default: none.
    pub annotations: Option<BTreeMap<String, Text>>,
}

/// `condition:` — exactly one of its fields.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCondition {
    /// Active when the central forecast crosses `threshold` within `within`.
    pub forecast: Option<RawForecast>,
    /// Active when the estimated time until the series crosses `threshold`
    /// is less than `less_than`; `{{ $eta }}` says when.
    pub time_to_threshold: Option<RawTimeToThreshold>,
    /// Active when the anomaly score (0 to 1) is above `score_above`.
    pub anomaly: Option<RawAnomaly>,
    /// Multi-window, multi-burn-rate SLO alert (Google SRE workbook).
    pub burn_rate: Option<RawBurnRate>,
}

/// `condition.forecast:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawForecast {
    /// The level, in the series' unit; finite. Required.
    pub threshold: Option<f64>,
    /// `above` (rises to the threshold) or `below`. Default `above`.
    pub direction: Option<String>,
    /// How far ahead to look. Duration > 0. Required.
    pub within: Option<Text>,
}

/// `condition.time_to_threshold:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeToThreshold {
    /// The level, in the series' unit; finite. Required.
    pub threshold: Option<f64>,
    /// `above` (rises to the threshold) or `below`. Default `above`.
    pub direction: Option<String>,
    /// Alert when the threshold is expected sooner than this.
    /// Duration > 0. Required.
    pub less_than: Option<Text>,
}

/// `condition.anomaly:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAnomaly {
    /// Score above which a point is anomalous, in [0, 1]. Required.
    pub score_above: Option<f64>,
}

/// `condition.burn_rate:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBurnRate {
    /// The SLO's target ratio of good events, in (0, 1), e.g. `0.999`.
    /// Required.
    pub objective: Option<f64>,
    /// PromQL rate of bad events over `$window` (replaced by each window).
    /// Required.
    pub errors: Option<String>,
    /// PromQL rate of all events over `$window`. Required.
    pub total: Option<String>,
    /// Window pairs; the alert is active when, for some pair, the error
    /// ratio over both windows exceeds `factor × (1 − objective)`.
    /// Default: the SRE workbook table `{long: 1h, short: 5m, factor: 14.4}`,
    /// `{long: 6h, short: 30m, factor: 6}`, `{long: 3d, short: 6h, factor: 1}`.
    pub windows: Option<Vec<RawBurnWindow>>,
}

/// One window pair of a burn-rate condition.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBurnWindow {
    /// The long window. Duration > `short`. Required.
    pub long: Option<Text>,
    /// The short window, which makes the alert reset quickly. Duration > 0.
    /// Required.
    pub short: Option<Text>,
    /// Burn-rate factor: how many times faster than allowed the error
    /// budget burns. Finite, > 0. Required.
    pub factor: Option<f64>,
}
