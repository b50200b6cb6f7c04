//! The shared helpers of the deployment tests (`deploy_compose`,
//! `deploy_k8s`, `deploy_grafana`), which check the stack's deployments
//! without running them.
//!
//! - Finding the repository, running the deploy tools ([`run_tool`],
//!   [`tool`]) and reading YAML ([`yaml_file`], [`yaml_documents`]).
//! - The compose file ([`compose`]) and the Kubernetes manifests rendered
//!   once by `kubectl kustomize` ([`k8s_documents`]), and the files a compose
//!   service or a Kubernetes workload mounts, laid out under a temporary root
//!   as its container sees them ([`compose_filesystem`], [`k8s_filesystem`]).
//! - Checking configurations with `promtool check config`, `amtool
//!   check-config` and `prognos check`, and the scrape contract every
//!   Prometheus of the stack keeps ([`assert_scrape_contract`]).
//! - Comparing a tree of files with its source ([`tree`],
//!   [`assert_same_tree`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde::Deserialize;
use serde_norway::Value;

// ---------------------------------------------------------------- general

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("repository root")
}

/// Runs a tool and returns whether it succeeded and what it printed (stdout
/// then stderr). A missing tool panics with where to get it.
pub fn run_tool(program: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(program)
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {program}: {e} (scripts/install-deps installs the deploy test tools)"
            )
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// Runs a tool that must succeed; returns its stdout and stderr.
pub fn tool(program: &str, args: &[&str]) -> String {
    let (ok, text) = run_tool(program, args);
    assert!(ok, "{program} {args:?} failed:\n{text}");
    text
}

pub fn yaml_file(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut value: Value = serde_norway::from_str(&text)
        .unwrap_or_else(|e| panic!("{}: not YAML: {e}", path.display()));
    value
        .apply_merge()
        .unwrap_or_else(|e| panic!("{}: merge keys: {e}", path.display()));
    value
}

pub fn yaml_documents(text: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).expect("a YAML document"))
        .filter(|v| !v.is_null())
        .collect()
}

pub fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

pub fn seq(v: &Value) -> Vec<&Value> {
    v.as_sequence()
        .map(|s| s.iter().collect())
        .unwrap_or_default()
}

pub fn keys(v: &Value) -> Vec<String> {
    v.as_mapping()
        .map(|m| m.keys().map(|k| str_of(k).to_string()).collect())
        .unwrap_or_default()
}

/// A command as a list of words: a YAML list as it is, a string split on
/// whitespace (so a `sh -c "…"` script is split into its words too).
pub fn words(v: &Value) -> Vec<String> {
    match v {
        Value::Sequence(s) => s
            .iter()
            .flat_map(|w| {
                str_of(w)
                    .split_whitespace()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect(),
        Value::String(s) => s.split_whitespace().map(str::to_string).collect(),
        _ => Vec::new(),
    }
}

/// The value of `--flag value` or `--flag=value` in a command.
pub fn flag_value(words: &[String], flag: &str) -> Option<String> {
    words.iter().enumerate().find_map(|(i, w)| {
        if w == flag {
            words.get(i + 1).cloned()
        } else {
            w.strip_prefix(&format!("{flag}=")).map(str::to_string)
        }
    })
}

/// Copies a file, or a directory's files recursively, to `dest`.
pub fn copy_path(source: &Path, dest: &Path) {
    if source.is_dir() {
        for entry in std::fs::read_dir(source).expect("reading a mounted directory") {
            let entry = entry.expect("directory entry");
            copy_path(&entry.path(), &dest.join(entry.file_name()));
        }
    } else {
        std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
        std::fs::copy(source, dest).unwrap_or_else(|e| panic!("copying {}: {e}", source.display()));
    }
}

/// Where `path` (absolute, as a container sees it) lands under `root`.
pub fn under(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

/// The files below `dir` (relative paths) whose names end with `ext`, with
/// their contents.
pub fn tree(dir: &Path, ext: &str) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(base: &Path, dir: &Path, ext: &str, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                walk(base, &path, ext, out);
            } else if path.to_string_lossy().ends_with(ext) {
                let rel = path.strip_prefix(base).expect("below base").to_path_buf();
                out.insert(rel, std::fs::read(&path).expect("reading a file"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, ext, &mut out);
    out
}

/// Asserts two trees hold the same files with the same bytes.
pub fn assert_same_tree(
    what: &str,
    got: &BTreeMap<PathBuf, Vec<u8>>,
    want: &BTreeMap<PathBuf, Vec<u8>>,
    fix: &str,
) {
    assert!(!want.is_empty(), "{what}: the source has no files");
    let got_names: BTreeSet<_> = got.keys().collect();
    let want_names: BTreeSet<_> = want.keys().collect();
    assert_eq!(got_names, want_names, "{what}: different files; {fix}");
    for (name, bytes) in want {
        assert!(
            got[name] == *bytes,
            "{what}: {} differs from its source; {fix}",
            name.display()
        );
    }
}

pub fn check_prometheus_config(path: &Path) -> String {
    let out = tool("promtool", &["check", "config", &path.to_string_lossy()]);
    assert!(out.contains("SUCCESS") && !out.contains("FAILED"), "{out}");
    out
}

pub fn check_alertmanager_config(path: &Path) {
    let out = tool("amtool", &["check-config", &path.to_string_lossy()]);
    assert!(out.contains("SUCCESS"), "{out}");
}

pub fn check_prognos_config(path: &Path) {
    // Its state_dir is the container's, not this machine's: not probed.
    let out = tool(
        env!("CARGO_BIN_EXE_prognos"),
        &["check", "--skip-state-dir", &path.to_string_lossy()],
    );
    assert!(
        out.contains(": OK, ") && out.contains(" 1 receiver"),
        "prognos check: {out}"
    );
}

/// The scrape jobs every Prometheus of the stack has, with the names the
/// rules and dashboards select on.
const SCRAPE_JOBS: [&str; 10] = [
    "shop-api",
    "crm-api",
    "mes-api",
    "node-db",
    "postgres",
    "rabbitmq",
    "s3",
    "prognos",
    "alertmanager",
    "prometheus",
];

/// Asserts a Prometheus configuration keeps the stack's contract: its jobs,
/// the `service` label of the APIs, the DB hosts' instance names, RabbitMQ's
/// per-object endpoint, and prognos's labels kept as they are.
pub fn assert_scrape_contract(what: &str, config: &Value) {
    let jobs: BTreeMap<String, &Value> = seq(&config["scrape_configs"])
        .into_iter()
        .map(|j| (str_of(&j["job_name"]).to_string(), j))
        .collect();
    let names: BTreeSet<&str> = jobs.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        SCRAPE_JOBS.into_iter().collect(),
        "{what}: scrape jobs"
    );
    for api in ["shop-api", "crm-api", "mes-api"] {
        for sc in seq(&jobs[api]["static_configs"]) {
            assert_eq!(
                str_of(&sc["labels"]["service"]),
                api,
                "{what}: job {api}'s service label"
            );
        }
    }
    let db_hosts: BTreeSet<&str> = seq(&jobs["node-db"]["static_configs"])
        .into_iter()
        .map(|sc| str_of(&sc["labels"]["instance"]))
        .collect();
    assert_eq!(
        db_hosts,
        BTreeSet::from(["shop-db", "mes-db"]),
        "{what}: node-db instances"
    );
    assert_eq!(
        str_of(&jobs["rabbitmq"]["metrics_path"]),
        "/metrics/per-object",
        "{what}: RabbitMQ's queue series only come from /metrics/per-object"
    );
    assert_eq!(
        jobs["prognos"]["honor_labels"].as_bool(),
        Some(true),
        "{what}: prognos's predictions must keep the labels of the series they model"
    );
    assert!(
        seq(&config["rule_files"])
            .iter()
            .any(|r| str_of(r).starts_with("rules/")),
        "{what}: the seed rules are not loaded"
    );
}

// ---------------------------------------------------------------- compose
pub fn compose_dir() -> PathBuf {
    repo().join("deploy/compose")
}

pub fn compose() -> Value {
    yaml_file(&compose_dir().join("docker-compose.yml"))
}

/// The bind mounts of a compose service: (source on the host, target in the
/// container). Named volumes are left out.
pub fn compose_binds(service: &Value) -> Vec<(PathBuf, String)> {
    seq(&service["volumes"])
        .into_iter()
        .filter_map(|v| {
            let (source, target) = match v {
                Value::String(s) => {
                    let mut parts = s.split(':');
                    (parts.next()?.to_string(), parts.next()?.to_string())
                }
                Value::Mapping(_) if str_of(&v["type"]) == "bind" => (
                    str_of(&v["source"]).to_string(),
                    str_of(&v["target"]).to_string(),
                ),
                _ => return None,
            };
            if source.starts_with('.') || source.starts_with('/') {
                Some((compose_dir().join(source), target))
            } else {
                None
            }
        })
        .collect()
}

/// Lays out the files a compose service mounts under a temporary root, as
/// the container sees them.
pub fn compose_filesystem(compose: &Value, service: &str) -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("temporary directory");
    for (source, target) in compose_binds(&compose["services"][service]) {
        copy_path(&source, &under(root.path(), &target));
    }
    root
}

// ---------------------------------------------------------------- kubernetes
/// `kubectl kustomize deploy/k8s/overlays/demo`, rendered once.
pub fn k8s_rendered() -> &'static str {
    static RENDERED: OnceLock<String> = OnceLock::new();
    RENDERED.get_or_init(|| {
        let out = Command::new("kubectl")
            .args(["kustomize", "deploy/k8s/overlays/demo"])
            .current_dir(repo())
            .output()
            .expect("kubectl (Debian's kubernetes-client, scripts/install-deps)");
        assert!(
            out.status.success(),
            "kubectl kustomize deploy/k8s/overlays/demo failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("UTF-8 manifests")
    })
}

pub fn k8s_documents() -> Vec<Value> {
    yaml_documents(k8s_rendered())
}

pub fn k8s_find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| str_of(&d["kind"]) == kind && str_of(&d["metadata"]["name"]) == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in the rendered manifests"))
}

/// Lays out the ConfigMaps a workload's first container mounts under a
/// temporary root, as the container sees them (subPath mounts and projected
/// volumes included). Returns the root and the container's command words.
pub fn k8s_filesystem(docs: &[Value], kind: &str, name: &str) -> (tempfile::TempDir, Vec<String>) {
    let workload = k8s_find(docs, kind, name);
    let pod = &workload["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let root = tempfile::tempdir().expect("temporary directory");
    let write_config_map = |cm_name: &str, mount: &str, sub_path: &str| {
        let cm = k8s_find(docs, "ConfigMap", cm_name);
        for key in keys(&cm["data"]) {
            let text = str_of(&cm["data"][key.as_str()]);
            let dest = if sub_path.is_empty() {
                under(root.path(), mount).join(&key)
            } else if key == sub_path {
                under(root.path(), mount)
            } else {
                continue;
            };
            std::fs::create_dir_all(dest.parent().expect("parent")).expect("mkdir");
            std::fs::write(&dest, text).expect("writing a ConfigMap key");
        }
    };
    for mount in seq(&container["volumeMounts"]) {
        let volume = seq(&pod["volumes"])
            .into_iter()
            .find(|v| v["name"] == mount["name"]);
        let Some(volume) = volume else {
            continue; // a volumeClaimTemplate
        };
        let path = str_of(&mount["mountPath"]);
        let sub_path = str_of(&mount["subPath"]);
        if volume["configMap"].is_mapping() {
            write_config_map(str_of(&volume["configMap"]["name"]), path, sub_path);
        }
        for source in seq(&volume["projected"]["sources"]) {
            if source["configMap"].is_mapping() {
                write_config_map(str_of(&source["configMap"]["name"]), path, sub_path);
            }
        }
    }
    let mut command = words(&container["command"]);
    command.extend(words(&container["args"]));
    (root, command)
}
