//! Fuzz targets on everything prognos parses from outside: the CSV reader,
//! the rule and configuration loaders, the Prometheus response parser and the
//! remediation signature verifier. Inputs are the shipped files and valid
//! answers mutated at random (bytes flipped, inserted, deleted, repeated,
//! tokens spliced in) plus plain random bytes; each target checks that the
//! parser answers with a value or an error, never a panic, and that an error
//! stays short and never carries a secret.
//!
//! In the normal test run each target runs briefly (`PROGNOS_FUZZ_CASES`,
//! default 200 cases). For a long run give each target a time budget:
//!
//! ```sh
//! PROGNOS_FUZZ_SECS=720 cargo test --release -p prognos --test fuzz -- --test-threads=1 --nocapture
//! ```

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

/// Cases per round when no time budget is given.
const DEFAULT_CASES: u32 = 200;
/// Longest error line a parser may print: a few quoted tokens, never a file.
const MAX_ERROR_LINE: usize = 1_000;
/// Written into every secret the loaders read; no error may show it.
const CANARY: &str = "CANARYSECRETq7Zp";

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

/// Runs `check` on inputs from `strategy`: one round of
/// `PROGNOS_FUZZ_CASES`, or rounds until `PROGNOS_FUZZ_SECS` have passed.
/// Each round draws a fresh random seed.
fn fuzz<S: Strategy>(
    name: &str,
    strategy: S,
    check: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let cases = env_u64("PROGNOS_FUZZ_CASES")
        .map(|c| u32::try_from(c).unwrap_or(u32::MAX))
        .unwrap_or(DEFAULT_CASES);
    let budget = Duration::from_secs(env_u64("PROGNOS_FUZZ_SECS").unwrap_or(0));
    let start = Instant::now();
    let mut total: u64 = 0;
    loop {
        let mut runner = TestRunner::new(Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        });
        if let Err(e) = runner.run(&strategy, &check) {
            panic!("fuzz target {name} failed after {total} cases: {e}");
        }
        total += u64::from(cases);
        if start.elapsed() >= budget {
            break;
        }
    }
    eprintln!(
        "fuzz {name}: {total} cases in {:.1} s without a failure",
        start.elapsed().as_secs_f64()
    );
}

/// One random edit of a byte string.
#[derive(Debug, Clone)]
enum Edit {
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Repeat(usize, usize, usize),
    Truncate(usize),
}

fn apply(mut data: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let n = data.len();
        match e {
            Edit::Flip(at, mask) if n > 0 => data[at % n] ^= mask,
            Edit::Insert(at, bytes) => {
                let at = if n == 0 { 0 } else { at % (n + 1) };
                data.splice(at..at, bytes.iter().copied());
            }
            Edit::Delete(at, len) if n > 0 => {
                let from = at % n;
                let to = (from + len % 64).min(n);
                data.drain(from..to);
            }
            Edit::Repeat(at, len, times) if n > 0 => {
                let from = at % n;
                let to = (from + 1 + len % 256).min(n);
                let piece = data[from..to].to_vec();
                for _ in 0..(times % 64) {
                    data.splice(to..to, piece.iter().copied());
                }
            }
            Edit::Truncate(at) if n > 0 => data.truncate(at % n),
            _ => {}
        }
    }
    data
}

/// Inputs for a parser: a seed mutated by up to 8 edits whose insertions
/// favour `tokens`, or random bytes.
fn inputs(seeds: Vec<Vec<u8>>, tokens: &'static [&'static str]) -> BoxedStrategy<Vec<u8>> {
    let insert = prop_oneof![
        3 => prop::sample::select(tokens).prop_map(|t| t.as_bytes().to_vec()),
        1 => prop::collection::vec(any::<u8>(), 1..16),
    ];
    let edit = prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(a, m)| Edit::Flip(a, m | 1)),
        (any::<usize>(), insert).prop_map(|(a, b)| Edit::Insert(a, b)),
        (any::<usize>(), any::<usize>()).prop_map(|(a, l)| Edit::Delete(a, l)),
        (any::<usize>(), any::<usize>(), any::<usize>())
            .prop_map(|(a, l, t)| Edit::Repeat(a, l, t)),
        any::<usize>().prop_map(Edit::Truncate),
    ];
    prop_oneof![
        8 => (prop::sample::select(seeds), prop::collection::vec(edit, 0..8))
            .prop_map(|(seed, edits)| apply(seed, &edits)),
        1 => prop::collection::vec(any::<u8>(), 0..512),
    ]
    .boxed()
}

/// Checks an error's text: short lines, no canary.
fn check_error(text: &str) -> Result<(), TestCaseError> {
    prop_assert!(!text.contains(CANARY), "the error shows a secret: {text}");
    for line in text.lines() {
        prop_assert!(
            line.chars().count() <= MAX_ERROR_LINE,
            "an error line of {} characters: {:?}",
            line.chars().count(),
            line
        );
    }
    Ok(())
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the engine crate sits in the workspace")
        .to_path_buf()
}

const CSV_TOKENS: &[&str] = &[
    ",",
    "\n",
    "\r\n",
    "\"",
    "NaN",
    "inf",
    "-inf",
    "1e309",
    "-0",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551616",
    "2026-11-29T00:00:00Z",
    "2026-13-45 25:61:61",
    "timestamp",
    "value",
    "\u{feff}",
    "\0",
    "é",
    ",,,,",
];

#[test]
fn fuzz_csv_reader() {
    let seed = b"timestamp,value\n2026-11-01 00:00:00,1.5\n2026-11-01 00:05:00,2\n1762000000,NaN\n"
        .to_vec();
    let nab = std::fs::read(
        workspace()
            .join("../shared/data/nab/realKnownCause/machine_temperature_system_failure.csv"),
    )
    .map(|b| b[..b.len().min(4096)].to_vec())
    .unwrap_or_else(|_| seed.clone());
    fuzz("csv", inputs(vec![seed, nab], CSV_TOKENS), |bytes| {
        match prognos::table::parse(bytes.as_slice(), Path::new("fuzz.csv")) {
            Ok(t) => {
                for r in &t.rows {
                    prop_assert!(r.value.is_finite() || r.value.is_nan());
                }
            }
            Err(e) => check_error(&e.to_string())?,
        }
        Ok(())
    });
}

const YAML_TOKENS: &[&str] = &[
    ":",
    ": ",
    "- ",
    "\n",
    "\n  ",
    "{",
    "}",
    "[",
    "]",
    "'",
    "\"",
    "#",
    "&a ",
    "*a",
    "<<: *a",
    "!!binary ",
    "!!str ",
    "~",
    "null",
    "1e309",
    ".nan",
    ".inf",
    "-.inf",
    "NaN",
    "-1",
    "9223372036854775807",
    "99999999999999999999",
    "0x7fffffff",
    "1y",
    "-5m",
    "5m",
    "0s",
    "999999999999d",
    "{{ $labels.x }}",
    "{{",
    "}}",
    "rate(",
    ")",
    "[5m]",
    "=~\".*\"",
    "groups:",
    "rules:",
    "alert: ",
    "expr: ",
    "for: ",
    "condition:",
    "forecast:",
    "threshold: ",
    "within: ",
    "anomaly:",
    "score_above: ",
    "\t",
    "\u{feff}",
    "é",
    "%YAML 1.2\n",
    "---\n",
    "...\n",
];

fn rule_seeds() -> Vec<Vec<u8>> {
    let dir = workspace().join("rules");
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .expect("rules/ is in the workspace")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().extension().is_some_and(|x| x == "yml"))
        .filter_map(|e| std::fs::read(e.path()).ok())
        .collect();
    seeds.sort();
    assert!(!seeds.is_empty(), "no rule files in {}", dir.display());
    seeds
}

/// A config naming one rule file, with a secret file holding the canary.
fn write_config(dir: &Path, config: &[u8], rules: &[u8]) {
    std::fs::write(dir.join("secret"), CANARY).expect("writes to a temp dir");
    std::fs::write(dir.join("prognos.yml"), config).expect("writes to a temp dir");
    std::fs::write(dir.join("fuzz.yml"), rules).expect("writes to a temp dir");
}

const CONFIG_SEED: &str = "\
global:
  prometheus:
    url: http://127.0.0.1:9/
    timeout: 30s
    bearer_token_file: secret
  evaluation_interval: 1m
  state_dir: state
  listen: 127.0.0.1:9464
  shard: 0/1
  series_limit_per_rule: 1000
rule_files:
  - fuzz.yml
notifications:
  receivers:
    - name: ops
      telegram:
        - token_file: secret
          chat_id: -1001234567890
          api_url: http://127.0.0.1:9/
      webhook:
        - url: http://127.0.0.1:9/hook
          bearer_token_file: secret
  route:
    receiver: ops
    group_by: [service]
remediation:
  secret_file: secret
  actions:
    - name: restart
      url: http://127.0.0.1:9/restart
      body: '{\"service\": \"{{ $labels.service }}\"}'
      matchers: ['alertname=\"MesQueueBacklogSoon\"']
";

#[test]
fn fuzz_rule_loader() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let seeds = rule_seeds();
    fuzz("rules", inputs(seeds, YAML_TOKENS), |rules| {
        write_config(dir.path(), CONFIG_SEED.as_bytes(), &rules);
        if let Err(e) = prognos::config::load(&dir.path().join("prognos.yml")) {
            check_error(&e.to_string())?;
        }
        Ok(())
    });
}

#[test]
fn fuzz_config_loader() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let rules = rule_seeds().swap_remove(0);
    let shipped = std::fs::read(workspace().join("prognos.yml")).expect("prognos.yml ships");
    let seeds = vec![CONFIG_SEED.as_bytes().to_vec(), shipped];
    fuzz("config", inputs(seeds, YAML_TOKENS), |config| {
        write_config(dir.path(), &config, &rules);
        if let Err(e) = prognos::config::load(&dir.path().join("prognos.yml")) {
            check_error(&e.to_string())?;
        }
        Ok(())
    });
}

const JSON_TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"",
    "\\",
    "\\u0000",
    "\\ud800",
    "null",
    "true",
    "1e309",
    "-1e309",
    "\"NaN\"",
    "\"+Inf\"",
    "\"-Inf\"",
    "9223372036854775807",
    "-9223372036854775808",
    "1.7976931348623157e308",
    "\"status\"",
    "\"success\"",
    "\"error\"",
    "\"data\"",
    "\"resultType\"",
    "\"matrix\"",
    "\"vector\"",
    "\"scalar\"",
    "\"string\"",
    "\"result\"",
    "\"metric\"",
    "\"values\"",
    "\"value\"",
    "\"warnings\"",
    "\"infos\"",
    "\"errorType\"",
    "\"__name__\"",
    "[1700000000,\"1\"]",
    "[1700000000.5,\"2.5\"]",
    "é",
];

const PROM_SEEDS: &[&str] = &[
    r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"disk_used_bytes","service":"shop-db"},"values":[[1700000000,"1.5"],[1700000300,"2"],[1700000600,"NaN"]]}]}}"#,
    r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"job":"mes-api"},"value":[1700000000,"42"]},{"metric":{},"value":[1700000000,"+Inf"]}]},"warnings":["PromQL info: metric might not be a counter"]}"#,
    r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"3"]}}"#,
    r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:1: parse error"}"#,
    "<html><body>502 Bad Gateway</body></html>",
];

#[test]
fn fuzz_prometheus_response_parser() {
    use prognos::prom::response::{Expect, Origin, parse};
    let seeds = PROM_SEEDS.iter().map(|s| s.as_bytes().to_vec()).collect();
    let statuses = vec![200u16, 204, 400, 422, 500, 503];
    let strategy = (
        inputs(seeds, JSON_TOKENS),
        prop::sample::select(statuses),
        any::<bool>(),
    );
    fuzz("prometheus", strategy, |(body, status, matrix)| {
        let origin = Origin {
            method: "POST",
            url: "http://127.0.0.1:9090/api/v1/query_range",
            status,
        };
        let expect = if matrix {
            Expect::Matrix
        } else {
            Expect::Instant
        };
        match parse(origin, &body, expect) {
            Ok(result) => {
                prop_assert!(result.warnings.len() <= 100);
                for w in &result.warnings {
                    prop_assert!(w.chars().count() <= MAX_ERROR_LINE);
                }
            }
            Err(e) => check_error(&e.to_string())?,
        }
        Ok(())
    });
}

const SECRET: &[u8] = b"the shared remediation secret";

#[test]
fn fuzz_signature_verifier() {
    use prognos_notifiers::signature::{SignedRequest, canonical, sign, verify};
    /// One field of a signed call changed, or none.
    #[derive(Debug, Clone)]
    enum Tamper {
        None,
        Header(Vec<u8>),
        Method(String),
        Path(String),
        Timestamp(i64),
        Key(String),
        Body(Vec<u8>),
        Upper,
        WrongSecret(Vec<u8>),
    }
    let tokens: &'static [&'static str] = &[
        "v1=", "v0=", "sha256=", ",", " ", "=", "0", "f", "F", "\n", "\0", "é",
    ];
    let tamper = prop_oneof![
        1 => Just(Tamper::None),
        1 => Just(Tamper::Upper),
        2 => prop::collection::vec(any::<u8>(), 0..200).prop_map(Tamper::Header),
        1 => "[A-Z]{0,8}".prop_map(Tamper::Method),
        1 => "/[ -~]{0,40}".prop_map(Tamper::Path),
        1 => any::<i64>().prop_map(Tamper::Timestamp),
        1 => "[ -~]{0,40}".prop_map(Tamper::Key),
        1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(Tamper::Body),
        1 => prop::collection::vec(any::<u8>(), 0..40).prop_map(Tamper::WrongSecret),
    ];
    let call = (
        prop::sample::select(&["POST", "PUT", "DELETE"][..]),
        "/[a-z/?=&]{0,30}",
        1_600_000_000i64..1_900_000_000,
        "[A-Za-z0-9-]{1,40}",
        prop::collection::vec(any::<u8>(), 0..256),
    );
    let header_edits = prop::collection::vec((any::<usize>(), prop::sample::select(tokens)), 0..4);
    let strategy = (call, tamper, header_edits, -400i64..400);
    fuzz(
        "signature",
        strategy,
        |((method, path, ts, key, body), tamper, edits, skew)| {
            let sent = SignedRequest {
                method,
                path: &path,
                timestamp: ts,
                idempotency_key: &key,
                body: &body,
            };
            let mut header = sign(SECRET, &sent);
            for (at, t) in &edits {
                let at = at % (header.len() + 1);
                if header.is_char_boundary(at) {
                    header.insert_str(at, t);
                }
            }
            let (mut got, mut secret) = (sent, SECRET.to_vec());
            let (m, p, k, b);
            match &tamper {
                Tamper::None => {}
                Tamper::Header(h) => header = String::from_utf8_lossy(h).into_owned(),
                Tamper::Method(x) => {
                    m = x.clone();
                    got.method = &m;
                }
                Tamper::Path(x) => {
                    p = x.clone();
                    got.path = &p;
                }
                Tamper::Timestamp(t) => got.timestamp = *t,
                Tamper::Key(x) => {
                    k = x.clone();
                    got.idempotency_key = &k;
                }
                Tamper::Body(x) => {
                    b = x.clone();
                    got.body = &b;
                }
                Tamper::Upper => header = header.to_uppercase().replace("V1=", "v1="),
                Tamper::WrongSecret(s) => secret = s.clone(),
            }
            let now = ts.saturating_add(skew);
            let result = verify(&secret, &header, &got, now, 300);
            if result.is_ok() {
                // Only the call as signed, under the secret it was signed
                // with, within the tolerance, may verify.
                prop_assert_eq!(&secret[..], SECRET);
                prop_assert_eq!(canonical(&got), canonical(&sent));
                prop_assert!(now.abs_diff(got.timestamp) <= 300);
            } else if matches!(tamper, Tamper::None | Tamper::Upper) && edits.is_empty() {
                // The call as signed, within the window, must verify.
                prop_assert!(result.is_err() == (skew.unsigned_abs() > 300), "{result:?}");
            }
            Ok(())
        },
    );
}
