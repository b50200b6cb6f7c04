//! The command line: `prognos detect`, `forecast`, `eval nab`, `eval forecast`.
//!
//! Numbers are checked as they are parsed: horizons at most
//! [`MAX_HORIZON_STEPS`], no NaN or infinity where a number is required,
//! steps and durations within documented bounds, so no flag can make the
//! program allocate without end, wrap an integer or print "NaN".

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use prognos_models::forecast::ModelKind;
use prognos_notifiers::secret::{EXCERPT_CHARS, excerpt};

/// Default of `--keep-firing-for`: rows an alert keeps firing after its score falls back.
/// 100 rows is about 8 hours of NAB's 5-minute series: one anomaly, one notification, as an
/// alert rule with that `keep_firing_for` would give.
pub const NAB_KEEP_FIRING_ROWS: usize = 100;

/// Most steps `forecast --horizon` and `eval forecast --horizons` accept: the
/// live engine's look-ahead limit (30 days of 5-minute steps), so the CLI
/// forecasts no further than the API and cannot be asked to allocate
/// without bound.
pub const MAX_HORIZON_STEPS: usize = crate::config::MAX_LOOKAHEAD_STEPS;

/// Longest `history --step`, in seconds: one day. A sample per day is
/// already too coarse for the demo's daily rhythms; the bound keeps the
/// generator's time arithmetic far from overflow.
pub const MAX_HISTORY_STEP_SECS: i64 = 86_400;

/// prognos — anomaly prediction and alerting for Prometheus stacks.
///
/// The offline commands run the same models as the live engine on CSV files
/// with columns `timestamp,value` (timestamps as `2014-04-01 00:05:00` UTC,
/// RFC 3339 or Unix seconds).
#[derive(Debug, Parser)]
#[command(name = "prognos", version, propagate_version = true)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Score every row of a series for anomalies, causally (a row's score uses only the rows up to it).
    Detect(DetectArgs),
    /// Forecast the steps after the last row, with a calibrated band.
    Forecast(ForecastArgs),
    /// Measure the models: NAB anomaly score, forecast accuracy.
    #[command(subcommand)]
    Eval(EvalCommand),
    /// Run the live engine: read Prometheus, export predictions on /metrics, evaluate alert rules.
    Run(RunArgs),
    /// Validate configuration and rule files; every problem is listed with file, line and field.
    Check(CheckArgs),
    /// Replay the rules over history held in Prometheus: when would each alert have fired and resolved?
    Backtest(BacktestArgs),
    /// Write weeks of realistic demo history of the seed metrics as OpenMetrics (for promtool backfill).
    History(HistoryArgs),
}

/// `prognos history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Days of history, more than 0 and at most 90.
    #[arg(long, default_value_t = 14.0, value_parser = parse_finite)]
    pub days: f64,
    /// Seconds between samples, from 1 to 86400.
    #[arg(long, default_value_t = 60, value_parser = parse_history_step)]
    pub step: i64,
    /// End of the history (default now). Give the same value to a `--follow` run so its
    /// counters continue the backfilled ones.
    #[arg(long)]
    pub end: Option<String>,
    /// File to write ("-" for stdout).
    #[arg(long, short, required_unless_present = "follow")]
    pub output: Option<PathBuf>,
    /// After the history, keep pushing live samples every 15 s to this Pushgateway
    /// (e.g. http://127.0.0.1:19091), one group per job, until interrupted.
    #[arg(long, conflicts_with = "anchor")]
    pub follow: Option<String>,
    /// Continue the live series of this Prometheus (e.g. http://127.0.0.1:19090): each
    /// generated series is written once per live series matching its labels, under the
    /// live labels, scaled to end at the live value (gauges) or rate (counters).
    #[arg(long)]
    pub anchor: Option<String>,
}

/// `prognos backtest`.
#[derive(Debug, Args)]
pub struct BacktestArgs {
    /// The main configuration file.
    #[arg(long, short, default_value = "prognos.yml")]
    pub config: PathBuf,
    /// Start of the replay (RFC 3339, 'YYYY-MM-DD HH:MM:SS' UTC or Unix seconds).
    #[arg(long)]
    pub from: String,
    /// End of the replay.
    #[arg(long)]
    pub to: String,
    /// Time between evaluations (default 5m).
    #[arg(long)]
    pub every: Option<String>,
}

/// `prognos run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The main configuration file.
    #[arg(long, short, default_value = "prognos.yml")]
    pub config: PathBuf,
    /// Model only the series of shard i of n (by a hash of their labels), e.g. 0/2.
    #[arg(long)]
    pub shard: Option<crate::config::Shard>,
    /// Address to serve /metrics and the API on (overrides the configuration).
    #[arg(long)]
    pub listen: Option<std::net::SocketAddr>,
    /// Evaluate every rule once, print a summary and exit.
    #[arg(long)]
    pub once: bool,
    /// Enable the changing endpoints (`POST /-/reload`, silences), requiring
    /// `Authorization: Bearer <the token in this file>`.
    #[arg(long, alias = "reload-token-file")]
    pub admin_token_file: Option<PathBuf>,
}

/// `prognos check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Configuration files (with their rule files) and rule files to check, in any mix:
    /// a file with `groups:` is a rule file.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Do not probe each configuration's state_dir (for a configuration meant for another
    /// machine or container, such as those under deploy/).
    #[arg(long)]
    pub skip_state_dir: bool,
}

/// `prognos detect`.
#[derive(Debug, Args)]
pub struct DetectArgs {
    /// CSV with columns timestamp,value.
    #[arg(long, short)]
    pub input: PathBuf,
    /// CSV to write: the input rows in the same order with an anomaly_score column ("-" for stdout).
    #[arg(long, short)]
    pub output: PathBuf,
    /// Also write the parts of each score after anomaly_score: expected, model, surprise,
    /// raw_score, likelihood, extreme, onset_score, sustained_score.
    #[arg(long)]
    pub explain: bool,
}

/// `prognos forecast`.
#[derive(Debug, Args)]
pub struct ForecastArgs {
    /// CSV with columns timestamp,value (any order; gaps and repeats are resampled).
    #[arg(long, short)]
    pub input: PathBuf,
    /// Steps to forecast after the last input row (0 writes only the header), at most 8640.
    #[arg(long, value_parser = parse_horizon)]
    pub horizon: usize,
    /// Level of the band, strictly between 0 and 1.
    #[arg(long, default_value_t = 0.95, value_parser = parse_finite)]
    pub level: f64,
    /// Model: auto picks by rolling-origin validation on the series' own history.
    #[arg(long, default_value_t = ModelKind::Auto, value_parser = parse_model)]
    pub model: ModelKind,
    /// CSV to write: timestamp,yhat,yhat_lower,yhat_upper ("-" for stdout).
    #[arg(long, short)]
    pub output: PathBuf,
    /// Also report when the forecast crosses this level, with its uncertainty (on stderr).
    #[arg(long, allow_negative_numbers = true, value_parser = parse_finite)]
    pub threshold: Option<f64>,
    /// Which way the series must go to cross --threshold.
    #[arg(long, value_enum, default_value_t = CrossDirection::Above, requires = "threshold")]
    pub direction: CrossDirection,
}

/// Which way a series crosses a threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CrossDirection {
    /// Rising to or above it (a disk filling up).
    Above,
    /// Falling to or below it (free space running out).
    Below,
}

/// `prognos eval …`.
#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// Run the detector over a NAB-layout folder and score it by NAB's rules.
    Nab(EvalNabArgs),
    /// MASE and interval coverage by rolling origin, beside seasonal naive and linear.
    Forecast(EvalForecastArgs),
    /// Replay the rules over the labelled incident suite: what fired, when, and what cried wolf.
    Alerts(EvalAlertsArgs),
}

/// `prognos eval alerts`.
#[derive(Debug, Args)]
pub struct EvalAlertsArgs {
    /// The main configuration file (its rules are replayed; Prometheus is not used).
    #[arg(long, short, default_value = "prognos.yml")]
    pub config: PathBuf,
    /// The suite: a folder of scenario files, or one file.
    #[arg(long, default_value = "engine/suite")]
    pub suite: PathBuf,
    /// Replay only these scenarios (by name; repeatable).
    #[arg(long)]
    pub scenario: Vec<String>,
    /// Print the result as JSON (every transition included) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Scenarios replayed at once (default: one per core, at most 16).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: Option<u16>,
    /// With --json: each incident's timeline too — every evaluation of its
    /// rule on its series: the value, the expectation and its band, the
    /// anomaly score, the ETA and its range, and the alert's state.
    #[arg(long, requires = "json")]
    pub timelines: bool,
}

/// `prognos eval nab`.
#[derive(Debug, Args)]
pub struct EvalNabArgs {
    /// Folder holding <category>/<file>.csv.
    #[arg(long)]
    pub data: PathBuf,
    /// NAB's combined_windows.json.
    #[arg(long)]
    pub labels: PathBuf,
    /// Also print per-file detections under the standard profile.
    #[arg(long)]
    pub verbose: bool,
    /// Write every row's score to this folder, mirroring the input layout.
    #[arg(long)]
    pub scores_dir: Option<PathBuf>,
    /// Which half of the corpus to score: `tune` (tuned on), `report` (held out), or `all`.
    #[arg(long, value_enum, default_value_t = crate::nab_corpus::NabSplit::All)]
    pub split: crate::nab_corpus::NabSplit,
    /// Rows an alert keeps firing after its score falls below the threshold: NAB's detections
    /// are the alert's firing transitions (its notifications).
    #[arg(long, default_value_t = NAB_KEEP_FIRING_ROWS)]
    pub keep_firing_for: usize,
}

/// `prognos eval forecast`.
#[derive(Debug, Args)]
pub struct EvalForecastArgs {
    /// Folder of timestamp,value CSV files (searched recursively).
    #[arg(long)]
    pub data: PathBuf,
    /// Horizons in steps, comma separated, each at most 8640.
    #[arg(long, value_delimiter = ',', default_values_t = [12usize, 288], value_parser = parse_horizon)]
    pub horizons: Vec<usize>,
    /// Level of the bands.
    #[arg(long, default_value_t = 0.95, value_parser = parse_finite)]
    pub level: f64,
    /// The model under test (compared with seasonal_naive and linear).
    #[arg(long, default_value_t = ModelKind::Auto, value_parser = parse_model)]
    pub model: ModelKind,
    /// Rolling origins per series.
    #[arg(long, default_value_t = 8)]
    pub origins: usize,
    /// Only series with this step in seconds (0 for all).
    #[arg(long, default_value_t = 300)]
    pub step: i64,
    /// Also print each series' figures for the model under test.
    #[arg(long)]
    pub verbose: bool,
    /// Which half of the files to measure, split per folder by a hash of the
    /// name as `eval nab --split` does: `report` is the held-out half.
    #[arg(long, value_enum, default_value_t = crate::nab_corpus::NabSplit::All)]
    pub split: crate::nab_corpus::NabSplit,
}

fn parse_model(s: &str) -> Result<ModelKind, String> {
    s.parse().map_err(|e: prognos_models::Error| e.to_string())
}

/// A number of steps from 0 to [`MAX_HORIZON_STEPS`].
fn parse_horizon(s: &str) -> Result<usize, String> {
    let t = s.trim();
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "expected a number of steps from 0 to {MAX_HORIZON_STEPS}, got '{}'",
            excerpt(s, EXCERPT_CHARS)
        ));
    }
    match t.parse::<usize>() {
        Ok(n) if n <= MAX_HORIZON_STEPS => Ok(n),
        // More digits than usize holds is too large as well.
        _ => Err(format!(
            "{} steps is too large, at most {MAX_HORIZON_STEPS}",
            excerpt(t, EXCERPT_CHARS)
        )),
    }
}

/// A finite number: NaN and infinities are refused where a number is
/// required.
fn parse_finite(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err(format!(
            "expected a finite number, got '{}'",
            excerpt(s, EXCERPT_CHARS)
        )),
        Err(_) => Err(format!(
            "expected a number, got '{}'",
            excerpt(s, EXCERPT_CHARS)
        )),
    }
}

/// Seconds from 1 to [`MAX_HISTORY_STEP_SECS`].
fn parse_history_step(s: &str) -> Result<i64, String> {
    let bad = || {
        format!(
            "expected whole seconds from 1 to {MAX_HISTORY_STEP_SECS}, got '{}'",
            excerpt(s, EXCERPT_CHARS)
        )
    };
    let t = s.trim();
    let digits = t.strip_prefix('-').unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match t.parse::<i64>() {
        Ok(n) if (1..=MAX_HISTORY_STEP_SECS).contains(&n) => Ok(n),
        Ok(n) if n < 1 => Err(bad()),
        _ => Err(format!(
            "{} seconds is too large, at most {MAX_HISTORY_STEP_SECS}",
            excerpt(t, EXCERPT_CHARS)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn horizons_are_capped_at_the_api_look_ahead() {
        assert_eq!(parse_horizon("0"), Ok(0));
        assert_eq!(parse_horizon("8640"), Ok(MAX_HORIZON_STEPS));
        for s in [
            "8641",
            "4294967296000",
            "18446744073709551615",
            "99999999999999999999999",
        ] {
            let e = parse_horizon(s).unwrap_err();
            assert!(e.contains("too large, at most 8640"), "{s}: {e}");
        }
        for s in ["-1", "1.5", "", "ten"] {
            let e = parse_horizon(s).unwrap_err();
            assert!(e.contains("expected a number of steps"), "{s}: {e}");
        }
    }

    #[test]
    fn non_finite_numbers_are_refused() {
        assert_eq!(parse_finite("-2.5"), Ok(-2.5));
        for s in ["NaN", "nan", "inf", "-inf", "Infinity", "1e999"] {
            let e = parse_finite(s).unwrap_err();
            assert!(e.contains("expected a finite number"), "{s}: {e}");
        }
        assert!(parse_finite("x").unwrap_err().contains("expected a number"));
    }

    #[test]
    fn history_steps_are_bounded() {
        assert_eq!(parse_history_step("60"), Ok(60));
        assert!(parse_history_step("0").is_err());
        assert!(parse_history_step("-5").is_err());
        let e = parse_history_step("9223372036854775807").unwrap_err();
        assert!(e.contains("too large, at most 86400"), "{e}");
        let e = parse_history_step("99999999999999999999").unwrap_err();
        assert!(e.contains("too large"), "{e}");
    }

    #[test]
    fn every_flag_parses() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
