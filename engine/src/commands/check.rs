//! `prognos check`: check configuration files (with their rule files) and
//! rule files on their own, and report every problem, like `promtool check
//! config` and `promtool check rules`.

use std::path::PathBuf;

use anyhow::{Result, anyhow};

use crate::config::{self, CheckOptions, Checked};

/// What checking a list of files found.
#[derive(Debug, Default)]
pub struct CheckReport {
    /// One line per file that passed: `prognos.yml: OK, 3 groups, 17
    /// rules`, `rules/storage.yml: OK, 2 groups, 5 rules`.
    pub passed: Vec<String>,
    /// Every problem of every other file, one per line:
    /// `file:line:column: group …, rule …: field '…': message`.
    pub problems: Vec<String>,
}

impl CheckReport {
    /// The lines of the files that passed when no file has a problem;
    /// otherwise every problem, as the error's text.
    pub fn into_result(self) -> Result<String> {
        if self.problems.is_empty() {
            Ok(self.passed.join("\n"))
        } else {
            Err(anyhow!(self.problems.join("\n")))
        }
    }
}

/// Checks each file in `paths`, whichever fails: a configuration (any of
/// `global:`, `rule_files:`, `notifications:`, `remediation:`) with its
/// rule files, or a rule file (`groups:`) on its own.
pub fn check_files(paths: &[PathBuf], options: &CheckOptions) -> CheckReport {
    let mut report = CheckReport::default();
    if paths.is_empty() {
        report.problems.push("no file given".to_string());
    }
    for path in paths {
        match config::check_file(path, options) {
            Ok(checked) => {
                report
                    .passed
                    .push(format!("{}: OK, {}", path.display(), summary(&checked)))
            }
            Err(errors) => report
                .problems
                .extend(errors.0.iter().map(ToString::to_string)),
        }
    }
    report
}

/// [`check_files`] with every check on, as one result: the summary lines,
/// or every problem as the error's text.
pub fn check(paths: &[PathBuf]) -> Result<String> {
    check_files(paths, &CheckOptions::default()).into_result()
}

/// `3 groups, 17 rules`, then the receivers and remediation actions of a
/// configuration that sets notifications.
fn summary(checked: &Checked) -> String {
    let groups = match checked {
        Checked::Config(c) => &c.groups,
        Checked::Rules(groups) => groups,
    };
    let rules: usize = groups.iter().map(|g| g.rules.len()).sum();
    let mut line = format!(
        "{} {}, {} {}",
        groups.len(),
        plural(groups.len(), "group", "groups"),
        rules,
        plural(rules, "rule", "rules"),
    );
    if let Checked::Config(c) = checked
        && let Some(n) = &c.notifications
    {
        let actions = n.remediation.as_ref().map_or(0, |r| r.actions.len());
        line.push_str(&format!(
            ", {} {}, {} remediation {}",
            n.receivers.len(),
            plural(n.receivers.len(), "receiver", "receivers"),
            actions,
            plural(actions, "action", "actions"),
        ));
    }
    line
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn repo() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
    }

    #[test]
    fn every_shipped_rule_file_passes_on_its_own() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("rules"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "yml"))
            .collect();
        files.sort();
        assert!(files.len() >= 4, "{files:?}");
        let out = check(&files).unwrap_or_else(|e| panic!("{e:#}"));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), files.len(), "{out}");
        for (line, file) in lines.iter().zip(&files) {
            assert!(
                line.starts_with(&format!("{}: OK, ", file.display()))
                    && !line.contains(" 0 rules"),
                "{line}"
            );
        }
    }

    #[test]
    fn a_mixed_list_is_checked_file_by_file() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, text).unwrap();
            p
        };
        let rule = "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up\n        condition: {anomaly: {score_above: 0.9}}\n";
        let good_rules = write("rules/good.yml", rule);
        let main = write(
            "prognos.yml",
            "global:\n  prometheus:\n    url: http://127.0.0.1:9090\nrule_files: [rules/good.yml]\n",
        );
        let bad_rules = write(
            "other/bad.yml",
            &rule.replace("score_above: 0.9", "score_above: 9"),
        );
        let missing = dir.path().join("missing.yml");
        let report = check_files(
            &[main.clone(), bad_rules, good_rules.clone(), missing],
            &CheckOptions::default(),
        );
        assert_eq!(
            report.passed,
            [
                format!("{}: OK, 1 group, 1 rule", main.display()),
                format!("{}: OK, 1 group, 1 rule", good_rules.display()),
            ]
        );
        let prefix = format!("{}/", dir.path().display());
        let problems: Vec<String> = report
            .problems
            .iter()
            .map(|p| p.replace(&prefix, ""))
            .collect();
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert!(
            problems[0].starts_with("other/bad.yml:6:31: group \"g\", rule \"A\": field 'condition.anomaly.score_above': must be in [0, 1]"),
            "{}",
            problems[0]
        );
        assert!(
            problems[1].starts_with("missing.yml: cannot read: "),
            "{}",
            problems[1]
        );
        assert!(report.into_result().is_err());
    }
}
