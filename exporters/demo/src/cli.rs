//! Command line: `serve`, `load` and `incident` (clap derive).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::{ArgGroup, Args, Parser, Subcommand, ValueEnum};
use url::Url;

/// Demo services (Shop, CRM, MES APIs) on PostgreSQL and RabbitMQ, their load
/// generator and incident injection.
#[derive(Debug, Parser)]
#[command(name = "prognos-demo", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one demo service (Shop, CRM or MES API).
    Serve(ServeArgs),
    /// Send a daily/weekly-rhythm load to the three services.
    Load(LoadArgs),
    /// Start, list or stop incidents on a running service.
    Incident(IncidentArgs),
}

/// The demo services.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ServiceKind {
    /// Shop API: products and orders (database `shop`).
    Shop,
    /// CRM API: customers and notes (database `shop`, tables `customers`, `customer_notes`).
    Crm,
    /// MES API: work orders (database `mes`) through RabbitMQ.
    Mes,
}

impl ServiceKind {
    /// The service name used in logs and messages (`shop-api`, …), the same
    /// as the `service` label the Prometheus scrape config adds.
    pub fn name(self) -> &'static str {
        match self {
            Self::Shop => "shop-api",
            Self::Crm => "crm-api",
            Self::Mes => "mes-api",
        }
    }

    /// The database the service works in.
    pub fn database(self) -> &'static str {
        match self {
            Self::Shop | Self::Crm => "shop",
            Self::Mes => "mes",
        }
    }
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Which service to run.
    #[arg(long, value_enum)]
    pub service: ServiceKind,
    /// Address to listen on, e.g. 127.0.0.1:8081.
    #[arg(long)]
    pub listen: SocketAddr,
    /// PostgreSQL server URL (any database, e.g. …/postgres): the service
    /// creates its own database (`shop` or `mes`) if missing.
    #[arg(long, value_name = "URL")]
    pub postgres: String,
    /// RabbitMQ URL, e.g. amqp://guest:guest@127.0.0.1:5672/%2f (MES only; required there).
    #[arg(long, value_name = "URL", required_if_eq("service", "mes"))]
    pub amqp: Option<String>,
    /// S3 endpoint for product images and the s3_growth incident (Shop only).
    #[arg(long, value_name = "URL", requires = "s3_bucket")]
    pub s3_endpoint: Option<Url>,
    /// S3 bucket (created if missing). Credentials: AWS_ACCESS_KEY_ID /
    /// AWS_SECRET_ACCESS_KEY, default test/test.
    #[arg(long, value_name = "NAME", requires = "s3_endpoint")]
    pub s3_bucket: Option<String>,
    /// S3 region used for signing.
    #[arg(long, default_value = "us-east-1")]
    pub s3_region: String,
    /// File holding the admin token; when given, /admin/* requires
    /// `Authorization: Bearer <token>`.
    #[arg(long, value_name = "PATH")]
    pub admin_token_file: Option<PathBuf>,
    /// How long to keep retrying PostgreSQL/RabbitMQ at startup before giving up.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
    /// Most cores the cpu_saturation incident may burn.
    #[arg(long, default_value_t = 1.0)]
    pub max_cpu_cores: f64,
    /// Most memory (MiB) the memory_leak incident may retain.
    #[arg(long, default_value_t = 4096)]
    pub max_leak_mib: u64,
    /// MES: fraction of work messages that fail and go to the dead-letter queue.
    #[arg(long, default_value_t = 0.005)]
    pub failure_rate: f64,
    /// MES: consumer prefetch (unacked messages held at most).
    #[arg(long, default_value_t = 50)]
    pub prefetch: u16,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Base URL of the Shop API.
    #[arg(long, value_name = "URL")]
    pub shop: Url,
    /// Base URL of the CRM API.
    #[arg(long, value_name = "URL")]
    pub crm: Url,
    /// Base URL of the MES API.
    #[arg(long, value_name = "URL")]
    pub mes: Url,
    /// Peak request rate (weekday afternoon), requests per second over all services.
    #[arg(long, default_value_t = 20.0)]
    pub rps: f64,
    /// A simulated day passes this many times faster than a real one.
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,
    /// RNG seed (random when absent; logged so a run can be replayed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Stop after this long (e.g. 30s, 10m); 0 runs forever.
    #[arg(long, default_value = "0", value_parser = parse_duration)]
    pub duration: Duration,
    /// Requests in flight at most; above that, requests are skipped (counted).
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Where the simulated clock starts (RFC 3339, e.g. 2024-06-05T15:00:00Z);
    /// default now.
    #[arg(long, value_name = "TIME", value_parser = parse_time)]
    pub sim_start: Option<DateTime<Utc>>,
}

/// Parses an RFC 3339 time.
pub fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("{text:?}: {e}; expected RFC 3339 like 2024-06-05T15:00:00Z"))
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("action").required(true).args(["kind", "list", "stop"])))]
pub struct IncidentArgs {
    /// Incident to start: memory_leak, cpu_saturation, http_500_storm,
    /// stalled_consumer, db_growth, s3_growth.
    pub kind: Option<String>,
    /// List the active incidents.
    #[arg(long)]
    pub list: bool,
    /// Stop the active incident of this kind.
    #[arg(long, value_name = "KIND")]
    pub stop: Option<String>,
    /// Base URL of the service, e.g. http://127.0.0.1:8081.
    #[arg(long, value_name = "URL")]
    pub target: Url,
    /// How long the incident lasts (e.g. 90s, 10m, 1h).
    #[arg(long, default_value = "10m", value_parser = parse_duration)]
    pub duration: Duration,
    /// Strength (1 = nominal; see the crate docs for what it scales).
    #[arg(long, default_value_t = 1.0)]
    pub intensity: f64,
    /// File holding the admin token, sent as `Authorization: Bearer`.
    #[arg(long, value_name = "PATH")]
    pub admin_token_file: Option<PathBuf>,
}

/// What `prognos-demo incident` was asked to do.
#[derive(Clone, Debug, PartialEq)]
pub enum IncidentAction {
    Start(String),
    List,
    Stop(String),
}

impl IncidentArgs {
    /// The action (clap's group guarantees exactly one is given).
    pub fn action(&self) -> IncidentAction {
        if let Some(kind) = &self.kind {
            IncidentAction::Start(kind.clone())
        } else if let Some(kind) = &self.stop {
            IncidentAction::Stop(kind.clone())
        } else {
            IncidentAction::List
        }
    }
}

/// Parses `90`, `90s`, `500ms`, `10m`, `1h30m`, `2d`: numbers with a unit
/// (ms, s, m, h, d); a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let expected = "expected a duration like 90, 90s, 500ms, 10m, 1h30m";
    if text.is_empty() {
        return Err(format!("empty duration; {expected}"));
    }
    if let Ok(secs) = text.parse::<f64>() {
        return Duration::try_from_secs_f64(secs).map_err(|e| format!("{text:?}: {e}; {expected}"));
    }
    let mut total = 0.0_f64;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("{text:?}: number without unit at the end; {expected}"))?;
        if digits == 0 {
            return Err(format!("{text:?}: unit without number; {expected}"));
        }
        let value: f64 = rest[..digits]
            .parse()
            .map_err(|_| format!("{text:?}: bad number {:?}; {expected}", &rest[..digits]))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86_400.0,
            other => return Err(format!("{text:?}: unknown unit {other:?}; {expected}")),
        };
        total += value * factor;
        rest = &rest[unit_len..];
    }
    Duration::try_from_secs_f64(total).map_err(|e| format!("{text:?}: {e}; {expected}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("10x").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("-5").is_err());
    }

    #[test]
    fn times() {
        let t = parse_time("2024-06-05T15:00:00Z").unwrap();
        assert_eq!(t.to_rfc3339(), "2024-06-05T15:00:00+00:00");
        let t = parse_time("2024-06-05T17:00:00+02:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2024-06-05T15:00:00+00:00");
        assert!(parse_time("yesterday").is_err());
    }

    #[test]
    fn cli_parses_the_documented_forms() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "prognos-demo",
            "serve",
            "--service",
            "mes",
            "--listen",
            "127.0.0.1:8083",
            "--postgres",
            "postgresql://postgres@127.0.0.1:5432/postgres",
            "--amqp",
            "amqp://guest:guest@127.0.0.1:5672/%2f",
        ])
        .unwrap();
        assert!(matches!(cli.command, Command::Serve(ref a) if a.service == ServiceKind::Mes));
        // MES without --amqp is refused.
        assert!(
            Cli::try_parse_from([
                "prognos-demo",
                "serve",
                "--service",
                "mes",
                "--listen",
                "127.0.0.1:8083",
                "--postgres",
                "postgresql://x",
            ])
            .is_err()
        );
        let cli = Cli::try_parse_from([
            "prognos-demo",
            "incident",
            "memory_leak",
            "--target",
            "http://127.0.0.1:8081",
            "--duration",
            "5m",
        ])
        .unwrap();
        let Command::Incident(a) = cli.command else {
            panic!("not incident")
        };
        assert_eq!(a.action(), IncidentAction::Start("memory_leak".into()));
        assert_eq!(a.duration, Duration::from_secs(300));
        let cli = Cli::try_parse_from([
            "prognos-demo",
            "incident",
            "--stop",
            "db_growth",
            "--target",
            "http://x",
        ])
        .unwrap();
        let Command::Incident(a) = cli.command else {
            panic!("not incident")
        };
        assert_eq!(a.action(), IncidentAction::Stop("db_growth".into()));
        // Two actions at once, or none, are refused.
        assert!(
            Cli::try_parse_from([
                "prognos-demo",
                "incident",
                "memory_leak",
                "--list",
                "--target",
                "http://x"
            ])
            .is_err()
        );
        assert!(Cli::try_parse_from(["prognos-demo", "incident", "--target", "http://x"]).is_err());
    }
}
