//! `prognos check` of one file: a configuration (with its rule files) or
//! a rule file on its own, told apart by their top-level keys. A checked
//! configuration must also be usable by a running engine: it has rules, and
//! its state directory can hold a database.

use std::path::Path;

use serde_norway::Value;

use super::error::{ConfigError, ConfigErrors, QUOTED_CHARS};
use super::rules::{self, Defaults, RULE_FILE_DOCUMENT};
use super::validate::{self, DEFAULT_EVALUATION_INTERVAL, DEFAULT_SERIES_LIMIT, Strict};
use super::{Config, RuleGroup};

/// The top-level keys of a configuration file.
const CONFIG_KEYS: [&str; 4] = ["global", "rule_files", "notifications", "remediation"];

/// How far to check a file.
#[derive(Debug, Clone, Copy)]
pub struct CheckOptions {
    /// Probe each configuration's `state_dir` (create and remove a file in
    /// it). Off for configurations meant for another machine or container.
    pub probe_state_dir: bool,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            probe_state_dir: true,
        }
    }
}

/// A file that passed [`check_file`].
#[derive(Debug)]
pub enum Checked {
    /// A configuration, with every rule of its rule files.
    Config(Box<Config>),
    /// A rule file checked on its own, with the global defaults
    /// (evaluation interval 1m, 1000 series per rule).
    Rules(Vec<RuleGroup>),
}

/// What a file holds, by its top-level keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Config,
    Rules,
}

/// Checks the configuration or rule file at `path`, reporting every problem
/// found. A configuration is loaded like [`super::load`] does, and is also
/// refused when its rule files hold no rule or (with
/// [`CheckOptions::probe_state_dir`]) when its `state_dir` cannot hold the
/// state database. A rule file is checked with the global defaults.
pub fn check_file(path: &Path, options: &CheckOptions) -> Result<Checked, ConfigErrors> {
    let fail = |e: ConfigError| Err(ConfigErrors(vec![e]));
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            return fail(ConfigError::new(
                path,
                0,
                0,
                "",
                "",
                &format!("cannot read: {e}"),
            ));
        }
    };
    // A syntax error: neither kind reads it, and serde says where.
    let value: Value = match serde_norway::from_str(&text) {
        Ok(v) => v,
        Err(e) => return fail(validate::serde_error(path, &e, "", RULE_FILE_DOCUMENT).0),
    };
    match kind(&value) {
        Ok(Kind::Config) => {
            let strict = Strict {
                rules_required: true,
                state_dir_writable: options.probe_state_dir,
            };
            validate::load_text(path, &text, strict).map(|c| Checked::Config(Box::new(c)))
        }
        Ok(Kind::Rules) => {
            let defaults = Defaults {
                interval: DEFAULT_EVALUATION_INTERVAL,
                series_limit: DEFAULT_SERIES_LIMIT,
            };
            let mut errors = Vec::new();
            let groups = rules::load_file(path, &text, &defaults, &mut errors);
            if errors.is_empty() {
                Ok(Checked::Rules(groups))
            } else {
                Err(ConfigErrors(errors))
            }
        }
        Err(got) => fail(ConfigError::new(
            path,
            1,
            1,
            "",
            "",
            &format!(
                "expected a configuration (a mapping with `global:`) or a rule file (a mapping with `groups:`), got {got}"
            ),
        )),
    }
}

/// Whether `value` is a configuration or a rule file; otherwise what it is
/// instead, in words that quote nothing but key names.
fn kind(value: &Value) -> Result<Kind, String> {
    let m = match value {
        Value::Mapping(m) => m,
        Value::Null => return Err("an empty document".to_string()),
        Value::String(s) => return Err(format!("a string ({} characters)", s.chars().count())),
        Value::Sequence(_) => return Err("a sequence".to_string()),
        Value::Bool(_) | Value::Number(_) => return Err("a single value".to_string()),
        Value::Tagged(_) => return Err("a tagged value".to_string()),
    };
    if CONFIG_KEYS.iter().any(|k| m.contains_key(*k)) {
        return Ok(Kind::Config);
    }
    if m.contains_key("groups") {
        return Ok(Kind::Rules);
    }
    // Keys that look like names are shown (a misspelt `grups:`), others
    // only counted: a key may be a line of a file that is no YAML at all.
    let names: Vec<String> = m
        .keys()
        .filter_map(Value::as_str)
        .filter(|k| {
            k.len() <= QUOTED_CHARS
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        })
        .take(4)
        .map(|k| format!("`{k}`"))
        .collect();
    let others = m.len() - names.len();
    let keys = |n: usize| if n == 1 { "key" } else { "keys" };
    Err(match (names.is_empty(), others) {
        (true, 0) => "an empty mapping".to_string(),
        (true, n) => format!("a mapping of {n} other {}", keys(n)),
        (false, 0) => format!("a mapping with keys {}", names.join(", ")),
        (false, n) => format!(
            "a mapping with keys {} and {n} other {}",
            names.join(", "),
            keys(n)
        ),
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    use super::*;

    /// A scratch directory holding `files` (path, text).
    fn setup(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            let p = dir.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, text).unwrap();
        }
        dir
    }

    /// The errors of checking `file` in `dir`, with `dir` cut from paths.
    fn errors(dir: &tempfile::TempDir, file: &str) -> Vec<String> {
        let e =
            check_file(&dir.path().join(file), &CheckOptions::default()).expect_err("should fail");
        let prefix = format!("{}/", dir.path().display());
        e.0.iter()
            .map(|e| e.to_string().replace(&prefix, ""))
            .collect()
    }

    const RULES: &str = "\
groups:
  - name: storage
    rules:
      - alert: DbFull
        expr: pg_database_size_bytes
        condition:
          time_to_threshold: {threshold: 100e9, less_than: 3d}
      - alert: DiskFull
        expr: node_filesystem_avail_bytes
        condition: {forecast: {threshold: 0, direction: below, within: 1d}}
  - name: queues
    interval: 30s
    rules:
      - alert: Backlog
        expr: queue_depth
        condition: {anomaly: {score_above: 0.9}}
";

    const MAIN: &str = "\
global:
  prometheus:
    url: http://127.0.0.1:9090
  state_dir: state
rule_files:
  - rules/*.yml
";

    #[test]
    fn a_rule_file_is_checked_on_its_own_with_the_defaults() {
        let dir = setup(&[("r.yml", RULES)]);
        let Ok(Checked::Rules(groups)) =
            check_file(&dir.path().join("r.yml"), &CheckOptions::default())
        else {
            panic!("not a good rule file");
        };
        let counts: Vec<(&str, usize)> = groups
            .iter()
            .map(|g| (g.name.as_str(), g.rules.len()))
            .collect();
        assert_eq!(counts, [("storage", 2), ("queues", 1)]);
        assert_eq!(groups[0].interval, DEFAULT_EVALUATION_INTERVAL);
        assert_eq!(groups[1].interval, std::time::Duration::from_secs(30));
        assert_eq!(groups[0].rules[0].series_limit, DEFAULT_SERIES_LIMIT);
    }

    #[test]
    fn three_bad_rules_give_three_located_errors() {
        let text = "\
groups:
  - name: g
    rules:
      - alert: A
        expr: up
        condition: {anomaly: {score_above: 0.9}}
        histroy: 7d
      - alert: B
        expr: up
        condition: {anomaly: {score_above: 0.9}}
        for: 5 minutes
      - alert: C
        expr: sum(rate(x[5m])
        condition: {anomaly: {score_above: 0.9}}
";
        let dir = setup(&[("r.yml", text)]);
        let e = errors(&dir, "r.yml");
        let want = [
            r#"r.yml:7:9: group "g", rule "A": field 'histroy': unknown field `histroy`"#,
            r#"r.yml:11:9: group "g", rule "B": field 'for': "#,
            r#"r.yml:13:18: group "g", rule "C": field 'expr': invalid PromQL at character 4"#,
        ];
        assert_eq!(e.len(), want.len(), "{e:#?}");
        for (got, want) in e.iter().zip(want) {
            assert!(got.starts_with(want), "got  {got}\nwant {want}");
        }
    }

    #[test]
    fn a_bad_group_does_not_hide_the_others() {
        let text = "\
groups:
  - name: a
    intervl: 1m
    rules:
      - alert: A
        expr: up
        condition: {anomaly: {score_above: 2}}
  - name: [b]
    rules: 5
  - name: c
    rules:
      - alert: C
        expr: up
        condition: {anomaly: {score_above: 0.5}}
        for: -1m
";
        let dir = setup(&[("r.yml", text)]);
        let e = errors(&dir, "r.yml");
        let want = [
            r#"r.yml:3:5: group "a": field 'intervl': unknown field `intervl`"#,
            r#"r.yml:7:31: group "a", rule "A": field 'condition.anomaly.score_above': must be in [0, 1]"#,
            r#"r.yml:8:5: group #2: field 'name': invalid type: sequence"#,
            r#"r.yml:9:5: group #2: field 'rules': invalid type: integer `5`"#,
            r#"r.yml:15:9: group "c", rule "C": field 'for': must be ≥ 0s"#,
        ];
        assert_eq!(e.len(), want.len(), "{e:#?}");
        for (got, want) in e.iter().zip(want) {
            assert!(got.starts_with(want), "got  {got}\nwant {want}");
        }
    }

    #[test]
    fn a_file_that_is_neither_says_so_without_quoting_it() {
        let dir = setup(&[
            ("grups.yml", "grups: []\n"),
            ("key.yml", "KEYCANARY0123456789abcdef\n"),
            ("empty.yml", "# nothing\n"),
            ("shadow.yml", "root:$6$SECRETCANARY$x:19000:0:99999:7:::\n"),
        ]);
        assert_eq!(
            errors(&dir, "grups.yml"),
            [
                "grups.yml:1:1: expected a configuration (a mapping with `global:`) or a rule file (a mapping with `groups:`), got a mapping with keys `grups`"
            ]
        );
        let key = errors(&dir, "key.yml").join("\n");
        assert!(key.ends_with("got a string (25 characters)"), "{key}");
        assert!(!key.contains("CANARY"), "{key}");
        let empty = errors(&dir, "empty.yml").join("\n");
        assert!(empty.ends_with("got an empty document"), "{empty}");
        let shadow = errors(&dir, "shadow.yml").join("\n");
        assert!(shadow.ends_with("got a mapping of 1 other key"), "{shadow}");
        assert!(!shadow.contains("CANARY"), "{shadow}");
    }

    #[test]
    fn an_empty_rule_set_is_refused_naming_the_globs() {
        let dir = setup(&[
            ("prognos.yml", MAIN),
            ("rules/empty.yml", "# none yet\n"),
            (
                "rules/no-rules.yml",
                "groups:\n  - name: g\n    rules: []\n",
            ),
        ]);
        assert_eq!(
            errors(&dir, "prognos.yml"),
            [
                "prognos.yml:5:1: field 'rule_files': the rule set is empty: \"rules/*.yml\" matches 2 files holding no rule, so there is nothing to evaluate"
            ]
        );
        // Without rule_files at all.
        let dir = setup(&[(
            "prognos.yml",
            &MAIN.replace("rule_files:\n  - rules/*.yml\n", ""),
        )]);
        let e = errors(&dir, "prognos.yml");
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(e[0].contains("no rule_files are given"), "{}", e[0]);
        // `config::load` still accepts it: a running engine may start empty.
        assert!(super::super::load(&dir.path().join("prognos.yml")).is_ok());
    }

    #[test]
    fn a_state_dir_that_cannot_hold_a_database_is_refused() {
        let dir = setup(&[
            ("prognos.yml", MAIN),
            ("rules/r.yml", RULES),
            ("state", "a file"),
        ]);
        assert_eq!(
            errors(&dir, "prognos.yml"),
            [format!(
                "prognos.yml:4:3: field 'global.state_dir': cannot hold the state database: {}/state is not a directory",
                dir.path().display()
            )
            .replace(&format!("{}/", dir.path().display()), "")]
        );
        // Not probed on request (a config meant for another machine).
        let options = CheckOptions {
            probe_state_dir: false,
        };
        assert!(check_file(&dir.path().join("prognos.yml"), &options).is_ok());

        // A read-only directory; root writes anyway, but not in /proc.
        let ro = dir.path().join("ro");
        std::fs::create_dir(&ro).unwrap();
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
        let ro = if std::fs::write(ro.join("w"), "").is_ok() {
            PathBuf::from("/proc")
        } else {
            ro
        };
        std::fs::write(
            dir.path().join("prognos.yml"),
            MAIN.replace("state_dir: state", &format!("state_dir: {}", ro.display())),
        )
        .unwrap();
        let e = errors(&dir, "prognos.yml");
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("prognos.yml:4:3: field 'global.state_dir': cannot hold the state database: cannot create a file in"),
            "{}",
            e[0]
        );
    }

    #[test]
    fn a_missing_state_dir_passes_and_is_not_left_created() {
        let dir = setup(&[("prognos.yml", MAIN), ("rules/r.yml", RULES)]);
        let Ok(Checked::Config(c)) =
            check_file(&dir.path().join("prognos.yml"), &CheckOptions::default())
        else {
            panic!("should pass");
        };
        assert_eq!(c.rule_count(), 3);
        assert!(!dir.path().join("state").exists());
    }
}
