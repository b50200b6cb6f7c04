//! The labelled incident suite: scenarios as data (`engine/suite/*.yml`),
//! turned by a seeded generator into the raw series the stack's exporters
//! expose, with the truth of every incident: which shipped rule should
//! alert, for which series, from when to when, and when a classic static
//! alert would fire. `prognos eval alerts` replays the shipped rules over
//! them through [`crate::source::memory::MemorySource`].
//!
//! - [`spec`]: the file format, parsing and checks.
//! - [`generate`]: the generator (the stack's normal series, traps and
//!   incidents).

pub mod generate;
pub mod spec;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use spec::ScenarioSpec;

/// Most scenario files one directory may hold: each is generated in memory
/// in full, so a directory of many is surely the wrong one.
pub const MAX_FILES: usize = 256;

/// Largest scenario file, in bytes: scenarios are short, hand-written YAML.
pub const MAX_FILE_BYTES: u64 = 256 * 1024;

/// A problem reading a scenario.
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    /// A file or directory could not be read.
    #[error("{}: cannot read: {source}", .path.display())]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file is not a valid scenario.
    #[error("{}:{line}:{column}: {}{message}", .file.display(), field_prefix(.field))]
    Invalid {
        /// The file.
        file: PathBuf,
        /// 1-based line (0 when unknown).
        line: usize,
        /// 1-based column (0 when unknown).
        column: usize,
        /// The field, as a path: `incidents[0].onset`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// Too many files in a directory.
    #[error("{}: more than {MAX_FILES} scenario files", .dir.display())]
    TooMany {
        /// The directory.
        dir: PathBuf,
    },
    /// A file too large to be a scenario.
    #[error("{}: {size} bytes, at most {MAX_FILE_BYTES}", .file.display())]
    TooLarge {
        /// The file.
        file: PathBuf,
        /// Its size in bytes.
        size: u64,
    },
}

/// `field 'x': ` before a message, or nothing without a field.
fn field_prefix(field: &str) -> String {
    if field.is_empty() {
        String::new()
    } else {
        format!("field '{field}': ")
    }
}

/// One raw series: labels (with `__name__`) and `(unix seconds, value)`
/// samples sorted by time, as [`crate::source::memory::MemorySource::new`] takes.
pub type RawSeries = (BTreeMap<String, String>, Vec<(i64, f64)>);

/// A generated scenario: raw samples and the truth of its incidents.
#[derive(Debug, Clone)]
pub struct Scenario {
    /// The file's `name`.
    pub name: String,
    /// The file's `description`.
    pub description: String,
    /// The first sample, Unix seconds.
    pub start: i64,
    /// Where evaluation starts; before is history.
    pub evaluate_from: i64,
    /// The last sample.
    pub end: i64,
    /// Raw series: labels (with `__name__`) and samples sorted by time.
    pub series: Vec<RawSeries>,
    /// One entry per alert an incident should raise.
    pub incidents: Vec<Truth>,
    /// The normal-but-tricky patterns the scenario holds, for the report.
    pub traps: Vec<String>,
}

/// What one incident should raise.
#[derive(Debug, Clone, PartialEq)]
pub struct Truth {
    /// The incident's kind (`growth`, `stall`, `leak`, …).
    pub kind: String,
    /// The shipped rule's alert name that should fire.
    pub alert: String,
    /// A label subset identifying the alert's series.
    pub labels: BTreeMap<String, String>,
    /// When the incident starts, Unix seconds.
    pub onset: i64,
    /// When it ends.
    pub end: i64,
    /// The classic static alert over the raw metrics (a comparison).
    pub static_expr: Option<String>,
    /// Its `for`, seconds.
    pub static_for: i64,
    /// When the rule's condition truly holds, from the noise-free series.
    pub holds_from: Option<i64>,
    /// Whether an alert should follow within minutes of onset (storm,
    /// unusual-hour anomaly, saturation).
    pub abrupt: bool,
}

/// Reads and checks one scenario file.
pub fn load_file(path: &Path) -> Result<ScenarioSpec, SuiteError> {
    let read = |source| SuiteError::Read {
        path: path.to_path_buf(),
        source,
    };
    let size = std::fs::metadata(path).map_err(read)?.len();
    if size > MAX_FILE_BYTES {
        return Err(SuiteError::TooLarge {
            file: path.to_path_buf(),
            size,
        });
    }
    let text = std::fs::read_to_string(path).map_err(read)?;
    parse(path, &text)
}

/// Parses and checks the text of a scenario file named `path`.
pub fn parse(path: &Path, text: &str) -> Result<ScenarioSpec, SuiteError> {
    let mut spec: ScenarioSpec =
        serde_norway::from_str(text).map_err(|e| spec::serde_error(path, &e))?;
    let mut checker = spec::Checker::new(path, text);
    spec.check(&mut checker);
    checker.finish()?;
    Ok(spec)
}

/// Reads every `*.yml` file of `dir`, sorted by file name.
pub fn load_dir(dir: &Path) -> Result<Vec<ScenarioSpec>, SuiteError> {
    let read = |source| SuiteError::Read {
        path: dir.to_path_buf(),
        source,
    };
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(read)? {
        let path = entry.map_err(read)?.path();
        if path.extension().is_some_and(|e| e == "yml") && path.is_file() {
            files.push(path);
            if files.len() > MAX_FILES {
                return Err(SuiteError::TooMany {
                    dir: dir.to_path_buf(),
                });
            }
        }
    }
    files.sort();
    files.iter().map(|f| load_file(f)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::memory::MemorySource;

    fn suite_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("suite")
    }

    fn generated() -> Vec<Scenario> {
        load_dir(&suite_dir())
            .unwrap_or_else(|e| panic!("{e}"))
            .iter()
            .map(ScenarioSpec::generate)
            .collect()
    }

    fn source(s: &Scenario) -> MemorySource {
        MemorySource::new(s.series.clone(), s.end)
    }

    /// The first time from `from` to `to` (every minute) at which `expr`
    /// has returned a series for `for_secs`: when a static alert fires.
    fn fires_at(src: &MemorySource, expr: &str, from: i64, to: i64, for_secs: i64) -> Option<i64> {
        let step = 60;
        let mut since: Option<i64> = None;
        let mut t = from;
        while t <= to {
            let chunk_end = (t + 10_000 * step).min(to);
            let out = src
                .range(expr, t, chunk_end, step)
                .unwrap_or_else(|e| panic!("{expr}: {e}"));
            let mut hits: Vec<i64> = out
                .iter()
                .flat_map(|s| s.samples.iter().map(|p| p.0))
                .collect();
            hits.sort_unstable();
            hits.dedup();
            let mut u = t;
            while u <= chunk_end {
                if hits.binary_search(&u).is_ok() {
                    let s = *since.get_or_insert(u);
                    if u - s >= for_secs {
                        return Some(u);
                    }
                } else {
                    since = None;
                }
                u += step;
            }
            t = chunk_end + step;
        }
        None
    }

    /// Every expression of the shipped rules (`rules/*.yml`), burn-rate
    /// queries with `$window` = 5m, as `(alert, expr, rule labels)`.
    fn shipped_rules() -> Vec<(String, String, BTreeMap<String, String>)> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .expect("rules/")
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "yml"))
            .collect();
        files.sort();
        let mut out = Vec::new();
        for f in files {
            let text = std::fs::read_to_string(&f).expect("rule file");
            let doc: serde_json::Value = serde_norway::from_str(&text).expect("rule file parses");
            for g in doc["groups"].as_array().into_iter().flatten() {
                for r in g["rules"].as_array().into_iter().flatten() {
                    let alert = r["alert"].as_str().unwrap_or_default().to_string();
                    let labels: BTreeMap<String, String> =
                        serde_json::from_value(r["labels"].clone()).unwrap_or_default();
                    if let Some(e) = r["expr"].as_str() {
                        out.push((alert.clone(), e.to_string(), labels.clone()));
                    }
                    for key in ["errors", "total"] {
                        if let Some(e) = r["condition"]["burn_rate"][key].as_str() {
                            out.push((alert.clone(), e.replace("$window", "5m"), labels.clone()));
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn every_scenario_file_loads_and_generates_consistent_truth() {
        let all = generated();
        assert!(all.len() >= 10, "{} scenarios", all.len());
        let names: std::collections::BTreeSet<&str> = all.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names.len(), all.len(), "scenario names repeat");
        let series_count = all[0].series.len();
        for s in &all {
            assert!(
                s.start < s.evaluate_from && s.evaluate_from < s.end,
                "{}",
                s.name
            );
            assert_eq!(
                s.series.len(),
                series_count,
                "{}: every scenario holds the whole stack",
                s.name
            );
            for (labels, samples) in &s.series {
                assert!(labels.contains_key("__name__"), "{}: {labels:?}", s.name);
                assert!(!samples.is_empty(), "{}: {labels:?} has no sample", s.name);
                assert!(
                    samples.windows(2).all(|w| w[0].0 < w[1].0),
                    "{}: {labels:?} is not sorted",
                    s.name
                );
                assert!(
                    samples.iter().all(|p| p.1.is_finite() && p.1 >= 0.0),
                    "{}: {labels:?} has a negative or non-finite value",
                    s.name
                );
            }
            for t in &s.incidents {
                assert!(
                    s.evaluate_from < t.onset && t.onset < t.end && t.end <= s.end,
                    "{}: {} from {} to {}",
                    s.name,
                    t.alert,
                    t.onset,
                    t.end
                );
            }
        }
        let normal = all
            .iter()
            .find(|s| s.name == "normal-fortnight")
            .expect("the normal scenario");
        assert!(normal.incidents.is_empty());
        assert!(normal.end - normal.evaluate_from >= 14 * 86_400);
        for trap in [
            "daily rhythm",
            "weekend",
            "Monday peak",
            "nightly batch",
            "nightly backup",
            "restart",
            "scrape gap",
            "planned cleanup",
            "planned launch",
        ] {
            assert!(
                normal.traps.iter().any(|t| t.contains(trap)),
                "the normal scenario lacks {trap}: {:?}",
                normal.traps
            );
        }
        let kinds: std::collections::BTreeSet<&str> = all
            .iter()
            .flat_map(|s| s.incidents.iter().map(|t| t.kind.as_str()))
            .collect();
        for kind in [
            "growth",
            "stall",
            "leak",
            "saturation",
            "storm",
            "spike",
            "shift",
        ] {
            assert!(kinds.contains(kind), "no {kind} incident in the suite");
        }
    }

    #[test]
    fn static_alerts_fire_after_onset_and_never_before() {
        for s in generated() {
            let src = source(&s);
            for t in &s.incidents {
                let Some(expr) = &t.static_expr else { continue };
                let before = fires_at(&src, expr, s.evaluate_from, t.onset, t.static_for);
                assert_eq!(
                    before, None,
                    "{}: {} static alert fires before onset",
                    s.name, t.alert
                );
                let breach = fires_at(&src, expr, t.onset, s.end, t.static_for)
                    .unwrap_or_else(|| panic!("{}: {} static alert never fires", s.name, t.alert));
                assert!(
                    breach <= t.end + 3600,
                    "{}: {} static breach after the incident",
                    s.name,
                    t.alert
                );
                println!(
                    "{}: {} onset +{}s, holds from {:?}, static breach +{}s",
                    s.name,
                    t.alert,
                    t.onset - s.evaluate_from,
                    t.holds_from.map(|h| h - t.onset),
                    breach - t.onset
                );
                if let Some(h) = t.holds_from {
                    assert!(
                        t.onset <= h && h <= breach,
                        "{}: {} holds from {h}, onset {}, static breach {breach}",
                        s.name,
                        t.alert,
                        t.onset
                    );
                }
                if matches!(t.kind.as_str(), "growth" | "leak") {
                    let h = t
                        .holds_from
                        .unwrap_or_else(|| panic!("{}: no holds_from", s.name));
                    assert!(
                        h > t.onset,
                        "{}: {} holds at onset: grow slower",
                        s.name,
                        t.alert
                    );
                    assert!(
                        breach - t.onset >= 6 * 3600,
                        "{}: {} is no slow growth",
                        s.name,
                        t.alert
                    );
                }
                if t.abrupt {
                    assert!(
                        breach - t.onset <= 30 * 60,
                        "{}: {} breach {}s after onset",
                        s.name,
                        t.alert,
                        breach - t.onset
                    );
                }
            }
        }
    }

    #[test]
    fn every_shipped_rule_sees_its_series_in_every_scenario() {
        let rules = shipped_rules();
        assert!(
            rules.iter().any(|r| r.0 == "DiskFullSoon"),
            "no disk rule shipped"
        );
        for s in generated() {
            let src = source(&s);
            for (alert, expr, _) in &rules {
                let got = src
                    .instant(expr, s.evaluate_from)
                    .unwrap_or_else(|e| panic!("{alert}: {expr}: {e}"));
                assert!(
                    !got.is_empty(),
                    "{}: {alert}: {expr} returns nothing",
                    s.name
                );
                assert!(
                    got.iter().all(|p| p.value.is_finite()),
                    "{}: {alert}: {got:?}",
                    s.name
                );
            }
            for t in &s.incidents {
                let mine: Vec<_> = rules.iter().filter(|r| r.0 == t.alert).collect();
                assert!(!mine.is_empty(), "{}: no shipped rule {}", s.name, t.alert);
                let found = mine.iter().any(|(_, expr, rule_labels)| {
                    src.instant(expr, t.onset).is_ok_and(|v| {
                        v.iter().any(|p| {
                            t.labels
                                .iter()
                                .all(|(k, val)| p.labels.get(k).or(rule_labels.get(k)) == Some(val))
                        })
                    })
                });
                assert!(
                    found,
                    "{}: {} has no series with {:?}",
                    s.name, t.alert, t.labels
                );
            }
        }
    }

    #[test]
    fn the_repository_config_loads_the_disk_rule() {
        let main = Path::new(env!("CARGO_MANIFEST_DIR")).join("../prognos.yml");
        let config = crate::config::load(&main).unwrap_or_else(|e| panic!("{e}"));
        let disk = config
            .groups
            .iter()
            .flat_map(|g| g.rules.iter())
            .find(|r| r.name == "DiskFullSoon")
            .expect("DiskFullSoon in rules/storage.yml");
        assert!(
            disk.expr.contains("node_filesystem_avail_bytes"),
            "{}",
            disk.expr
        );
    }

    #[test]
    fn the_normal_fortnight_never_reaches_a_static_threshold() {
        let s = generated()
            .into_iter()
            .find(|s| s.name == "normal-fortnight")
            .expect("the normal scenario");
        let src = source(&s);
        for (expr, for_secs) in [
            (
                r#"pg_database_size_bytes{datname="shop"} > 95e9 or pg_database_size_bytes{datname="mes"} > 190e9"#,
                300,
            ),
            (
                r#"sum by (queue) (rabbitmq_queue_messages_ready{queue=~"mes.*"}) > 10000"#,
                300,
            ),
            (
                "sum(rate(rabbitmq_global_messages_dead_lettered_rejected_total[5m])) > 1",
                600,
            ),
            (
                r#"100 * sum by (job) (rate(process_cpu_seconds_total{job=~"crm-api|mes-api"}[5m])) > 90"#,
                600,
            ),
            (
                r#"100 * (1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle", job="node-db"}[5m]))) > 90"#,
                600,
            ),
            (
                r#"sum by (job) (process_resident_memory_bytes{job=~"crm-api|mes-api"}) > 2e9"#,
                600,
            ),
            (
                r#"sum by (service) (increase(http_requests_total{code="500", service=~"shop-api|crm-api|mes-api"}[5m])) > 50"#,
                300,
            ),
            ("sum by (bucket) (s3_bucket_size_bytes) > 950e9", 300),
            (
                r#"100 * node_filesystem_avail_bytes{job="node-db", mountpoint="/"} / node_filesystem_size_bytes{job="node-db", mountpoint="/"} < 5"#,
                300,
            ),
        ] {
            assert_eq!(
                fires_at(&src, expr, s.evaluate_from, s.end, for_secs),
                None,
                "{expr}"
            );
        }
    }

    #[test]
    fn a_bad_file_names_its_file_line_and_field() {
        let good =
            std::fs::read_to_string(suite_dir().join("03-mes-queue-stall.yml")).expect("file");
        let path = Path::new("suite/bad.yml");
        // A check after parsing: the onset lies past the end.
        let late = good.replace("onset: 15d10h", "onset: 99d");
        let e = parse(path, &late).expect_err("onset after the end");
        let line = late
            .lines()
            .position(|l| l.contains("onset: 99d"))
            .expect("line")
            + 1;
        let shown = e.to_string();
        assert!(
            shown.starts_with(&format!("suite/bad.yml:{line}:")),
            "{shown}"
        );
        assert!(shown.contains("field 'incidents[0].onset'"), "{shown}");
        // A serde error: a misspelt field.
        let typo = good.replace("magnitude: 1000", "magnitud: 1000");
        let line = typo
            .lines()
            .position(|l| l.contains("magnitud:"))
            .expect("line")
            + 1;
        let shown = parse(path, &typo).expect_err("unknown field").to_string();
        assert!(
            shown.starts_with(&format!("suite/bad.yml:{line}:")),
            "{shown}"
        );
        assert!(shown.contains("magnitud"), "{shown}");
        // Bounds: a step of 0, a non-finite magnitude, an unknown signal.
        for (from, to, field) in [
            ("step: 1m", "step: 0s", "step"),
            (
                "magnitude: 1000",
                "magnitude: .inf",
                "incidents[0].magnitude",
            ),
            (
                "target: ready:mes.work",
                "target: ready:nope",
                "incidents[0].target",
            ),
            ("length: 15d14h", "length: 400d", "length"),
        ] {
            let text = good.replace(from, to);
            let shown = parse(path, &text).expect_err(to).to_string();
            assert!(shown.contains(&format!("field '{field}'")), "{to}: {shown}");
        }
    }
}
