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
            "an error line of {} characters",
            line.chars().count()
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
