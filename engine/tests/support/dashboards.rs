//! The PromQL of the Grafana dashboards (`deploy/grafana/dashboards/*.json`),
//! ready to send to a Prometheus: Grafana's variables are replaced by values
//! Prometheus accepts.
//!
//! Substitutions, in this order:
//! - Grafana's built-in variables: `$__rate_interval` → `5m`, `$__interval`
//!   → `1m`, `$__range` → `1h`, `$__range_s` → `3600`, `$__range_ms` →
//!   `3600000`, `$__interval_ms` → `60000` (also written `${…}`);
//! - a dashboard's own template variables (`$name`, `${name}`,
//!   `${name:format}`, `[[name]]`): the variable's current value when the
//!   JSON has one, else `.+`. Use such variables only in `=~` matchers, so
//!   `.+` selects everything.
//!
//! Panels nested in collapsed rows are included. A file that cannot be read
//! or parsed panics with its name.

use std::path::{Path, PathBuf};

use serde_json::Value;

/// One query of one dashboard panel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DashboardQuery {
    /// The dashboard's file name, e.g. `overview.json`.
    pub file: String,
    /// The panel's title.
    pub panel: String,
    /// The target's `expr`, variables substituted.
    pub expr: String,
}

/// Grafana's built-in variables and the values they get here, longest name
/// first so `$__range_s` is not read as `$__range` followed by `_s`.
pub const BUILTIN_VARIABLES: [(&str, &str); 6] = [
    ("__rate_interval", "5m"),
    ("__interval_ms", "60000"),
    ("__interval", "1m"),
    ("__range_ms", "3600000"),
    ("__range_s", "3600"),
    ("__range", "1h"),
];

/// The dashboard files, sorted by name.
pub fn dashboard_files(repo_root: &Path) -> Vec<PathBuf> {
    let dir = repo_root.join("deploy/grafana/dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

/// A dashboard file, parsed.
pub fn read_dashboard(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()))
}

/// Every panel of a dashboard, those inside rows included (rows themselves
/// too), in file order.
pub fn panels(dashboard: &Value) -> Vec<&Value> {
    fn walk<'a>(list: &'a Value, out: &mut Vec<&'a Value>) {
        for p in list.as_array().into_iter().flatten() {
            out.push(p);
            if let Some(inner) = p.get("panels") {
                walk(inner, out);
            }
        }
    }
    let mut out = Vec::new();
    if let Some(list) = dashboard.get("panels") {
        walk(list, &mut out);
    }
    out
}

/// The dashboard's template variables with the value each gets: its
/// current value when set (the first one of a multi-value), else `.+`.
pub fn template_values(dashboard: &Value) -> Vec<(String, String)> {
    let list = dashboard
        .pointer("/templating/list")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    list.iter()
        .filter_map(|v| {
            let name = v.get("name")?.as_str()?.to_string();
            let current = v.pointer("/current/value");
            let value = match current {
                Some(Value::String(s)) if !s.is_empty() && s != "$__all" => s.clone(),
                Some(Value::Array(a)) => a
                    .iter()
                    .filter_map(Value::as_str)
                    .find(|s| *s != "$__all")
                    .unwrap_or(".+")
                    .to_string(),
                _ => ".+".to_string(),
            };
            Some((name, value))
        })
        .collect()
}

/// `expr` with Grafana's built-in variables and the given template
/// variables replaced.
pub fn substitute(expr: &str, template: &[(String, String)]) -> String {
    let mut out = expr.to_string();
    for (name, value) in BUILTIN_VARIABLES {
        out = out.replace(&format!("${{{name}}}"), value);
        out = out.replace(&format!("${name}"), value);
    }
    // Longest names first, so `$service` does not eat the start of `$services`.
    let mut vars: Vec<&(String, String)> = template.iter().collect();
    vars.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));
    for (name, value) in vars {
        out = replace_braced(&out, name, value);
        out = out.replace(&format!("[[{name}]]"), value);
        out = out.replace(&format!("${name}"), value);
    }
    out
}

/// Replaces `${name}` and `${name:format}`.
fn replace_braced(text: &str, name: &str, value: &str) -> String {
    let open = format!("${{{name}");
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(&open) {
        let after = &rest[at + open.len()..];
        let end = match after.chars().next() {
            Some('}') => Some(1),
            Some(':') => after.find('}').map(|i| i + 1),
            _ => None,
        };
        out.push_str(&rest[..at]);
        match end {
            Some(n) => {
                out.push_str(value);
                rest = &after[n..];
            }
            None => {
                out.push_str(&open);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Every target `expr` of every dashboard in `repo_root/deploy/grafana/dashboards`,
/// with its file and panel, variables substituted.
pub fn dashboard_queries(repo_root: &Path) -> Vec<DashboardQuery> {
    let mut out = Vec::new();
    for path in dashboard_files(repo_root) {
        let dashboard = read_dashboard(&path);
        let file = path
            .file_name()
            .expect("file name")
            .to_string_lossy()
            .into_owned();
        let template = template_values(&dashboard);
        for panel in panels(&dashboard) {
            let title = panel
                .get("title")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| format!("panel {}", panel.get("id").unwrap_or(&Value::Null)));
            for target in panel
                .get("targets")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(expr) = target.get("expr").and_then(Value::as_str) {
                    out.push(DashboardQuery {
                        file: file.clone(),
                        panel: title.clone(),
                        expr: substitute(expr, &template),
                    });
                }
            }
        }
    }
    out
}
