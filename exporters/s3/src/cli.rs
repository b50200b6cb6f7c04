//! Command line flags, credentials from the environment, and their
//! validation into a [`Config`].
//!
//! Parsing (`clap`) only checks shapes; [`Config::from_cli`] checks meaning
//! (a usable endpoint, at least one valid bucket, positive durations) and
//! says what was expected.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use rusty_s3::{Credentials, UrlStyle};
use url::Url;

/// Default `--listen` address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9340";
/// Default `--region`.
pub const DEFAULT_REGION: &str = "us-east-1";
/// Environment variable holding the access key id.
pub const ENV_ACCESS_KEY_ID: &str = "AWS_ACCESS_KEY_ID";
/// Environment variable holding the secret access key.
pub const ENV_SECRET_ACCESS_KEY: &str = "AWS_SECRET_ACCESS_KEY";
/// Environment variable holding the (optional) session token.
pub const ENV_SESSION_TOKEN: &str = "AWS_SESSION_TOKEN";

/// Exports the size and object count of S3 buckets as Prometheus metrics.
///
/// Lists every bucket with ListObjectsV2 every --interval in the background
/// and serves the last results on /metrics. Credentials come from
/// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and the optional
/// AWS_SESSION_TOKEN; the IAM permission needed is s3:ListBucket on each
/// bucket.
// These doc comments are the --help text, where Markdown links would show.
#[allow(rustdoc::bare_urls)]
#[derive(Debug, Clone, Parser)]
#[command(name = "prognos-s3-exporter", version)]
pub struct Cli {
    /// S3 endpoint, e.g. http://127.0.0.1:9000 for MinIO. Without it, AWS S3
    /// at https://s3.REGION.amazonaws.com.
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,

    /// Region the requests are signed for.
    #[arg(long, value_name = "REGION", default_value = DEFAULT_REGION)]
    pub region: String,

    /// Path-style URLs (ENDPOINT/BUCKET) instead of virtual-hosted ones
    /// (BUCKET.ENDPOINT-HOST). Default: true with --endpoint, false for AWS;
    /// --path-style=false turns it off.
    #[arg(
        long,
        value_name = "BOOL",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    pub path_style: Option<bool>,

    /// Bucket to export; repeat for several.
    #[arg(long = "bucket", value_name = "NAME", required = true)]
    pub buckets: Vec<String>,

    /// Only count the keys starting with this prefix (in every bucket).
    #[arg(long, value_name = "PREFIX")]
    pub prefix: Option<String>,

    /// Address to serve /metrics and /healthz on.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN)]
    pub listen: String,

    /// How often every bucket is listed, e.g. 30s, 5m, 1h.
    #[arg(long, value_name = "DURATION", default_value = "60s")]
    pub interval: String,

    /// Timeout of each ListObjectsV2 request (one page of up to 1000 keys).
    #[arg(long, value_name = "DURATION", default_value = "30s")]
    pub timeout: String,
}

/// The validated configuration the exporter runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Endpoint the bucket URLs are built from.
    pub endpoint: Url,
    /// Signing region.
    pub region: String,
    /// Path-style or virtual-hosted URLs.
    pub url_style: UrlStyle,
    /// Buckets to list, in the order given, without duplicates.
    pub buckets: Vec<String>,
    /// Key prefix to restrict the listing to, if any.
    pub prefix: Option<String>,
    /// Address to serve on.
    pub listen: SocketAddr,
    /// Time between the starts of two refreshes.
    pub interval: Duration,
    /// Timeout of each page request.
    pub timeout: Duration,
    /// Signing credentials; `None` sends unsigned (anonymous) requests.
    pub credentials: Option<Credentials>,
}

/// Why the flags or the environment are not usable.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// `--endpoint` is not an http(s) URL with a host.
    #[error(
        "--endpoint {value:?} is not usable: {reason}; expected an http or https URL with a host, e.g. http://127.0.0.1:9000 or https://s3.eu-west-1.amazonaws.com"
    )]
    Endpoint {
        /// The value given.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `--region` is empty or not a plain region name.
    #[error(
        "--region {0:?} is not a region name; expected letters, digits and dashes, e.g. us-east-1"
    )]
    Region(String),
    /// A `--bucket` name is not usable.
    #[error(
        "--bucket {name:?} is not a bucket name: {reason}; expected 1 to 255 characters without '/', whitespace or control characters, e.g. --bucket backups"
    )]
    Bucket {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The same bucket was given twice.
    #[error("--bucket {0:?} is given more than once; give each bucket once")]
    DuplicateBucket(String),
    /// Virtual-hosted URLs cannot be built for this bucket and endpoint.
    #[error(
        "bucket {bucket:?} cannot be reached with virtual-hosted URLs on {endpoint}: {reason}; use --path-style"
    )]
    VirtualHost {
        /// The bucket.
        bucket: String,
        /// The endpoint.
        endpoint: String,
        /// What rusty-s3 reported.
        reason: String,
    },
    /// `--listen` is not a socket address.
    #[error(
        "--listen {0:?} is not an address; expected IP:PORT, e.g. 127.0.0.1:9340 or 0.0.0.0:9340"
    )]
    Listen(String),
    /// A duration flag does not parse.
    #[error("--{flag} {source}")]
    Duration {
        /// The flag, without dashes.
        flag: &'static str,
        /// Why it does not parse.
        source: DurationError,
    },
    /// Only one of the key id and the secret is set.
    #[error(
        "{set} is set but {missing} is not; set both for signed requests, or neither for anonymous ones"
    )]
    PartialCredentials {
        /// The variable that is set.
        set: &'static str,
        /// The variable that is missing.
        missing: &'static str,
    },
}

/// A duration that does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "{value:?} is not a duration: {reason}; expected a positive whole number with a unit ms, s, m or h, e.g. 30s or 5m"
)]
pub struct DurationError {
    /// The text given.
    pub value: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Parses `500ms`, `30s`, `5m`, `1h` (one positive whole number, one unit).
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let fail = |reason| DurationError {
        value: text.to_owned(),
        reason,
    };
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(fail("it is empty"));
    }
    let digits_end = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| fail("it has no unit"))?;
    let (number, unit) = trimmed.split_at(digits_end);
    if number.is_empty() {
        return Err(fail("it does not start with a number"));
    }
    let number: u64 = number
        .parse()
        .map_err(|_| fail("the number is too large"))?;
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return Err(fail("the unit is not one of ms, s, m, h")),
    };
    let millis = number
        .checked_mul(millis_per_unit)
        .ok_or_else(|| fail("it is too long"))?;
    if millis == 0 {
        return Err(fail("it is zero"));
    }
    Ok(Duration::from_millis(millis))
}

/// Reads an environment variable, treating unset, empty and non-UTF-8 alike
/// as absent.
pub fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

impl Config {
    /// Validates `cli`, taking credentials from `env` (a variable lookup, so
    /// tests need not touch the process environment).
    pub fn from_cli(cli: Cli, env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let region = cli.region.trim().to_owned();
        if region.is_empty()
            || !region
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(ConfigError::Region(cli.region));
        }

        let endpoint = match &cli.endpoint {
            Some(value) => parse_endpoint(value)?,
            None => {
                let value = format!("https://s3.{region}.amazonaws.com");
                parse_endpoint(&value)?
            }
        };
        let path_style = cli.path_style.unwrap_or(cli.endpoint.is_some());
        let url_style = if path_style {
            UrlStyle::Path
        } else {
            UrlStyle::VirtualHost
        };

        let mut buckets: Vec<String> = Vec::with_capacity(cli.buckets.len());
        for name in cli.buckets {
            check_bucket_name(&name)?;
            if buckets.contains(&name) {
                return Err(ConfigError::DuplicateBucket(name));
            }
            // Building the URL is what fails for names that cannot be a host
            // label or for an IP endpoint with virtual-hosted URLs: say so now
            // rather than on every refresh.
            if let Err(e) =
                rusty_s3::Bucket::new(endpoint.clone(), url_style, name.clone(), region.clone())
            {
                return Err(ConfigError::VirtualHost {
                    bucket: name,
                    endpoint: endpoint.to_string(),
                    reason: format!("{e:?}"),
                });
            }
            buckets.push(name);
        }

        let listen = cli
            .listen
            .trim()
            .parse::<SocketAddr>()
            .map_err(|_| ConfigError::Listen(cli.listen.clone()))?;
        let interval = parse_duration(&cli.interval).map_err(|source| ConfigError::Duration {
            flag: "interval",
            source,
        })?;
        let timeout = parse_duration(&cli.timeout).map_err(|source| ConfigError::Duration {
            flag: "timeout",
            source,
        })?;

        let credentials = credentials_from(&env)?;
        let prefix = cli.prefix.filter(|prefix| !prefix.is_empty());

        Ok(Config {
            endpoint,
            region,
            url_style,
            buckets,
            prefix,
            listen,
            interval,
            timeout,
            credentials,
        })
    }
}

fn parse_endpoint(value: &str) -> Result<Url, ConfigError> {
    let fail = |reason: String| ConfigError::Endpoint {
        value: value.to_owned(),
        reason,
    };
    let url = Url::parse(value.trim()).map_err(|e| fail(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(fail(format!("the scheme is {:?}", url.scheme())));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(fail("it has no host".to_owned()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(fail("it has a query or fragment".to_owned()));
    }
    Ok(url)
}

fn check_bucket_name(name: &str) -> Result<(), ConfigError> {
    let fail = |reason| ConfigError::Bucket {
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() {
        return Err(fail("it is empty"));
    }
    if name.len() > 255 {
        return Err(fail("it is longer than 255 characters"));
    }
    if name.contains('/') {
        return Err(fail("it contains '/'"));
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(fail("it contains whitespace or control characters"));
    }
    Ok(())
}

fn credentials_from(
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Option<Credentials>, ConfigError> {
    let key = env(ENV_ACCESS_KEY_ID);
    let secret = env(ENV_SECRET_ACCESS_KEY);
    let token = env(ENV_SESSION_TOKEN);
    match (key, secret) {
        (Some(key), Some(secret)) => Ok(Some(match token {
            Some(token) => Credentials::new_with_token(key, secret, token),
            None => Credentials::new(key, secret),
        })),
        (None, None) => Ok(None),
        (Some(_), None) => Err(ConfigError::PartialCredentials {
            set: ENV_ACCESS_KEY_ID,
            missing: ENV_SECRET_ACCESS_KEY,
        }),
        (None, Some(_)) => Err(ConfigError::PartialCredentials {
            set: ENV_SECRET_ACCESS_KEY,
            missing: ENV_ACCESS_KEY_ID,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn keys(name: &str) -> Option<String> {
        match name {
            ENV_ACCESS_KEY_ID => Some("AKIDEXAMPLE".to_owned()),
            ENV_SECRET_ACCESS_KEY => Some("secret".to_owned()),
            _ => None,
        }
    }

    fn cli(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("prognos-s3-exporter").chain(args.iter().copied()))
    }

    fn config(args: &[&str]) -> Result<Config, ConfigError> {
        Config::from_cli(cli(args).expect("flags parse"), keys)
    }

    #[test]
    fn durations_with_each_unit() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration(" 1s "), Ok(Duration::from_secs(1)));
    }

    #[test]
    fn bad_durations_say_why() {
        for (text, reason) in [
            ("", "it is empty"),
            ("30", "it has no unit"),
            ("s", "it does not start with a number"),
            ("-5s", "it does not start with a number"),
            ("1.5s", "the unit is not one of ms, s, m, h"),
            ("5d", "the unit is not one of ms, s, m, h"),
            ("5 s", "the unit is not one of ms, s, m, h"),
            ("0s", "it is zero"),
            ("99999999999999999999s", "the number is too large"),
            ("18446744073709551615h", "it is too long"),
        ] {
            let error = parse_duration(text).expect_err(text);
            assert_eq!(error.reason, reason, "{text:?}");
            let message = error.to_string();
            assert!(message.contains("e.g. 30s or 5m"), "{message}");
        }
    }

    #[test]
    fn endpoint_defaults_to_path_style_and_aws_to_virtual_host() {
        let c = config(&["--endpoint", "http://127.0.0.1:9000", "--bucket", "b1"]).unwrap();
        assert!(matches!(c.url_style, UrlStyle::Path));
        assert_eq!(c.endpoint.as_str(), "http://127.0.0.1:9000/");
        assert_eq!(c.region, "us-east-1");
        assert_eq!(c.listen, "127.0.0.1:9340".parse().unwrap());
        assert_eq!(c.interval, Duration::from_secs(60));
        assert_eq!(c.timeout, Duration::from_secs(30));
        assert!(c.credentials.is_some());

        let c = config(&["--region", "eu-west-1", "--bucket", "logs"]).unwrap();
        assert!(matches!(c.url_style, UrlStyle::VirtualHost));
        assert_eq!(c.endpoint.as_str(), "https://s3.eu-west-1.amazonaws.com/");
        assert_eq!(c.region, "eu-west-1");

        let c = config(&["--path-style", "--bucket", "Legacy_Name"]).unwrap();
        assert!(matches!(c.url_style, UrlStyle::Path));
        let c = config(&[
            "--endpoint",
            "https://minio.example:9000",
            "--path-style=false",
            "--bucket",
            "b1",
        ])
        .unwrap();
        assert!(matches!(c.url_style, UrlStyle::VirtualHost));
    }

    #[test]
    fn repeated_buckets_prefix_and_durations() {
        let c = config(&[
            "--endpoint",
            "http://localhost:9000",
            "--bucket",
            "a",
            "--bucket",
            "b",
            "--prefix",
            "logs/",
            "--interval",
            "5m",
            "--timeout",
            "500ms",
            "--listen",
            "0.0.0.0:1234",
        ])
        .unwrap();
        assert_eq!(c.buckets, ["a", "b"]);
        assert_eq!(c.prefix.as_deref(), Some("logs/"));
        assert_eq!(c.interval, Duration::from_secs(300));
        assert_eq!(c.timeout, Duration::from_millis(500));
        assert_eq!(c.listen, "0.0.0.0:1234".parse().unwrap());
    }

    #[test]
    fn missing_bucket_is_a_usage_error() {
        let error = cli(&["--endpoint", "http://127.0.0.1:9000"]).unwrap_err();
        assert_eq!(
            error.kind(),
            clap::error::ErrorKind::MissingRequiredArgument
        );
        assert!(error.to_string().contains("--bucket"), "{error}");
    }

    #[test]
    fn bad_endpoints_say_what_was_expected() {
        for endpoint in [
            "127.0.0.1:9000",
            "not a url",
            "ftp://example.com",
            "http://",
            "http://example.com/?x=1",
        ] {
            let error = config(&["--endpoint", endpoint, "--bucket", "b"]).unwrap_err();
            assert!(
                matches!(&error, ConfigError::Endpoint { value, .. } if value == endpoint),
                "{endpoint}: {error:?}"
            );
            assert!(
                error.to_string().contains("expected an http or https URL"),
                "{error}"
            );
        }
    }

    #[test]
    fn bad_buckets_are_rejected() {
        for name in ["", "a/b", "has space", "tab\t"] {
            let error = config(&["--endpoint", "http://h:1", "--bucket", name]).unwrap_err();
            assert!(
                matches!(&error, ConfigError::Bucket { name: n, .. } if n == name),
                "{name:?}: {error:?}"
            );
        }
        let error =
            config(&["--endpoint", "http://h:1", "--bucket", "a", "--bucket", "a"]).unwrap_err();
        assert_eq!(error, ConfigError::DuplicateBucket("a".to_owned()));
        // An IP address has no subdomains for virtual-hosted URLs.
        let error = config(&[
            "--endpoint",
            "http://127.0.0.1:9000",
            "--path-style=false",
            "--bucket",
            "a",
        ])
        .unwrap_err();
        assert!(
            matches!(error, ConfigError::VirtualHost { .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("use --path-style"), "{error}");
    }

    #[test]
    fn bad_listen_region_and_durations() {
        let error = config(&["--bucket", "b", "--listen", "localhost"]).unwrap_err();
        assert_eq!(error, ConfigError::Listen("localhost".to_owned()));
        let error = config(&["--bucket", "b", "--region", "us east"]).unwrap_err();
        assert_eq!(error, ConfigError::Region("us east".to_owned()));
        let error = config(&["--bucket", "b", "--interval", "60"]).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("--interval \"60\" is not a duration"),
            "{error}"
        );
        let error = config(&["--bucket", "b", "--timeout", "0s"]).unwrap_err();
        assert!(error.to_string().starts_with("--timeout"), "{error}");
    }

    #[test]
    fn credentials_from_the_environment() {
        let c = Config::from_cli(cli(&["--bucket", "b"]).unwrap(), no_env).unwrap();
        assert!(c.credentials.is_none(), "no variables: anonymous");

        let with_token = |name: &str| match name {
            ENV_SESSION_TOKEN => Some("token".to_owned()),
            other => keys(other),
        };
        let c = Config::from_cli(cli(&["--bucket", "b"]).unwrap(), with_token).unwrap();
        let credentials = c.credentials.unwrap();
        assert_eq!(credentials.key(), "AKIDEXAMPLE");
        assert_eq!(credentials.token(), Some("token"));

        let only_key = |name: &str| (name == ENV_ACCESS_KEY_ID).then(|| "AKID".to_owned());
        let error = Config::from_cli(cli(&["--bucket", "b"]).unwrap(), only_key).unwrap_err();
        assert_eq!(
            error,
            ConfigError::PartialCredentials {
                set: ENV_ACCESS_KEY_ID,
                missing: ENV_SECRET_ACCESS_KEY
            }
        );
    }
}
