//! `prognos check`: load configuration files and their rule files and
//! report every problem, like `promtool check config`.

use std::path::PathBuf;

use anyhow::{Result, anyhow};

use crate::config;

/// Loads each config in `paths` with its rule files.
///
/// On success returns one line per file, `prognos.yml: OK, 3 groups, 17
/// rules`. Otherwise the error's text lists every problem of every file, one
/// per line, as `file:line:column: group …, rule …: field '…': message`.
pub fn check(paths: &[PathBuf]) -> Result<String> {
    let mut summary = Vec::new();
    let mut problems = Vec::new();
    for path in paths {
        match config::load(path) {
            Ok(c) => {
                let mut line = format!(
                    "{}: OK, {} {}, {} {}",
                    path.display(),
                    c.groups.len(),
                    plural(c.groups.len(), "group", "groups"),
                    c.rule_count(),
                    plural(c.rule_count(), "rule", "rules"),
                );
                if let Some(n) = &c.notifications {
                    let actions = n.remediation.as_ref().map_or(0, |r| r.actions.len());
                    line.push_str(&format!(
                        ", {} {}, {} remediation {}",
                        n.receivers.len(),
                        plural(n.receivers.len(), "receiver", "receivers"),
                        actions,
                        plural(actions, "action", "actions"),
                    ));
                }
                summary.push(line);
            }
            Err(errors) => problems.extend(errors.0.iter().map(ToString::to_string)),
        }
    }
    if paths.is_empty() {
        return Err(anyhow!("no configuration file given"));
    }
    if problems.is_empty() {
        Ok(summary.join("\n"))
    } else {
        Err(anyhow!(problems.join("\n")))
    }
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}
