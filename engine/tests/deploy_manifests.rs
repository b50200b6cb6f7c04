//! The deployments of the stack, checked without running them: the compose
//! file (`deploy/compose/`), the Kubernetes manifests (`deploy/k8s/`), the
//! Grafana provisioning and dashboards (`deploy/grafana/`) and the image
//! (`deploy/Dockerfile`).
//!
//! - The compose file matches the Compose Specification (`check-jsonschema
//!   --builtin-schema vendor.compose-spec`), mounts only files that exist and
//!   depends only on services it has.
//! - The demo overlay renders (`kubectl kustomize`) into resources that
//!   validate strictly against the Kubernetes 1.25 and 1.37 schemas
//!   (`kubernetes-validate`); prognos runs as a StatefulSet of shards.
//! - The configuration files are laid out as the containers see them (from
//!   the compose mounts, and from the rendered ConfigMaps and volume mounts)
//!   and then pass `promtool check config`, `amtool check-config` and
//!   `prognos check`.
//! - The copies under `deploy/k8s/base/files/` equal their sources.
//! - Every dashboard panel queries the `prometheus` datasource with PromQL
//!   that parses, names metrics the stack has, and rules prognos has.
//!
//! Tools: promtool and amtool (Debian's prometheus and
//! prometheus-alertmanager), kubectl, and check-jsonschema and
//! kubernetes-validate from PyPI: `scripts/install-deps` installs them.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use promql_parser::parser::{self, Expr};
use serde::Deserialize;
use serde_norway::Value;
use support::dashboards::{self, dashboard_queries};

// ---------------------------------------------------------------- helpers

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("repository root")
}

/// Runs a tool and returns whether it succeeded and what it printed (stdout
/// then stderr). A missing tool panics with where to get it.
fn run_tool(program: &str, args: &[&str]) -> (bool, String) {
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
fn tool(program: &str, args: &[&str]) -> String {
    let (ok, text) = run_tool(program, args);
    assert!(ok, "{program} {args:?} failed:\n{text}");
    text
}

fn yaml_file(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut value: Value = serde_norway::from_str(&text)
        .unwrap_or_else(|e| panic!("{}: not YAML: {e}", path.display()));
    value
        .apply_merge()
        .unwrap_or_else(|e| panic!("{}: merge keys: {e}", path.display()));
    value
}

fn yaml_documents(text: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).expect("a YAML document"))
        .filter(|v| !v.is_null())
        .collect()
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn seq(v: &Value) -> Vec<&Value> {
    v.as_sequence()
        .map(|s| s.iter().collect())
        .unwrap_or_default()
}

fn keys(v: &Value) -> Vec<String> {
    v.as_mapping()
        .map(|m| m.keys().map(|k| str_of(k).to_string()).collect())
        .unwrap_or_default()
}

/// A command as a list of words: a YAML list as it is, a string split on
/// whitespace (so a `sh -c "…"` script is split into its words too).
fn words(v: &Value) -> Vec<String> {
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
fn flag_value(words: &[String], flag: &str) -> Option<String> {
    words.iter().enumerate().find_map(|(i, w)| {
        if w == flag {
            words.get(i + 1).cloned()
        } else {
            w.strip_prefix(&format!("{flag}=")).map(str::to_string)
        }
    })
}

/// Copies a file, or a directory's files recursively, to `dest`.
fn copy_path(source: &Path, dest: &Path) {
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
fn under(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

/// The files below `dir` (relative paths) whose names end with `ext`, with
/// their contents.
fn tree(dir: &Path, ext: &str) -> BTreeMap<PathBuf, Vec<u8>> {
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
fn assert_same_tree(
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

fn check_prometheus_config(path: &Path) -> String {
    let out = tool("promtool", &["check", "config", &path.to_string_lossy()]);
    assert!(out.contains("SUCCESS") && !out.contains("FAILED"), "{out}");
    out
}

fn check_alertmanager_config(path: &Path) {
    let out = tool("amtool", &["check-config", &path.to_string_lossy()]);
    assert!(out.contains("SUCCESS"), "{out}");
}

fn check_prognos_config(path: &Path) {
    let out = tool(
        env!("CARGO_BIN_EXE_prognos"),
        &["check", &path.to_string_lossy()],
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
fn assert_scrape_contract(what: &str, config: &Value) {
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

fn compose_dir() -> PathBuf {
    repo().join("deploy/compose")
}

fn compose() -> Value {
    yaml_file(&compose_dir().join("docker-compose.yml"))
}

/// The bind mounts of a compose service: (source on the host, target in the
/// container). Named volumes are left out.
fn compose_binds(service: &Value) -> Vec<(PathBuf, String)> {
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
fn compose_filesystem(compose: &Value, service: &str) -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("temporary directory");
    for (source, target) in compose_binds(&compose["services"][service]) {
        copy_path(&source, &under(root.path(), &target));
    }
    root
}

#[test]
fn the_compose_file_matches_the_compose_spec() {
    let out = tool(
        "check-jsonschema",
        &[
            "--builtin-schema",
            "vendor.compose-spec",
            "deploy/compose/docker-compose.yml",
        ],
    );
    assert!(out.contains("ok -- validation done"), "{out}");
}

#[test]
fn the_compose_file_mounts_files_that_exist_and_depends_on_services_it_has() {
    let c = compose();
    let services = &c["services"];
    let names: BTreeSet<String> = keys(services).into_iter().collect();
    let volumes: BTreeSet<String> = keys(&c["volumes"]).into_iter().collect();
    assert!(names.len() >= 15, "services: {names:?}");
    for name in &names {
        let s = &services[name.as_str()];
        for (source, target) in compose_binds(s) {
            assert!(
                source.exists(),
                "service {name} mounts {} (at {target}), which does not exist",
                source.display()
            );
        }
        for v in seq(&s["volumes"]) {
            if let Some(text) = v.as_str() {
                let source = text.split(':').next().unwrap_or("");
                if !source.starts_with('.') && !source.starts_with('/') {
                    assert!(
                        volumes.contains(source),
                        "service {name}: volume {source} is not declared"
                    );
                }
            }
        }
        let depends: Vec<(String, String)> = match &s["depends_on"] {
            Value::Sequence(list) => list
                .iter()
                .map(|d| (str_of(d).to_string(), String::new()))
                .collect(),
            Value::Mapping(m) => m
                .iter()
                .map(|(k, v)| (str_of(k).to_string(), str_of(&v["condition"]).to_string()))
                .collect(),
            _ => Vec::new(),
        };
        for (dep, condition) in depends {
            assert!(
                names.contains(&dep),
                "service {name} depends on {dep}, which is not a service"
            );
            match condition.as_str() {
                "service_healthy" => assert!(
                    services[dep.as_str()]["healthcheck"].is_mapping(),
                    "service {name} waits for {dep} to be healthy, but {dep} has no healthcheck"
                ),
                "service_completed_successfully" => assert!(
                    matches!(str_of(&services[dep.as_str()]["restart"]), "" | "no"),
                    "service {name} waits for {dep} to complete, but {dep} restarts"
                ),
                _ => {}
            }
        }
        for p in seq(&s["ports"]) {
            let p = p
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("{p:?}"));
            assert!(
                p.starts_with("127.0.0.1:"),
                "service {name} publishes {p} beyond 127.0.0.1"
            );
        }
        // Official images are pinned; ours is built from deploy/Dockerfile.
        if s["build"].is_mapping() {
            assert_eq!(
                str_of(&s["build"]["dockerfile"]),
                "deploy/Dockerfile",
                "service {name}"
            );
            assert!(
                compose_dir()
                    .join(str_of(&s["build"]["context"]))
                    .join("deploy/Dockerfile")
                    .is_file()
            );
        } else {
            let image = str_of(&s["image"]);
            assert!(
                image.contains(':') && !image.ends_with(":latest"),
                "service {name}: image {image:?} is not pinned"
            );
        }
    }
    let published: BTreeMap<&str, &str> = [
        ("grafana", "127.0.0.1:3000:3000"),
        ("prometheus", "127.0.0.1:9090:9090"),
        ("alertmanager", "127.0.0.1:9093:9093"),
        ("prognos", "127.0.0.1:9464:9464"),
    ]
    .into();
    for (service, port) in published {
        assert!(
            seq(&services[service]["ports"])
                .iter()
                .any(|p| str_of(p) == port),
            "{service} does not publish {port}"
        );
    }
}

#[test]
fn the_compose_configs_pass_promtool_amtool_and_prognos_check() {
    let c = compose();
    let command = |service: &str| words(&c["services"][service]["command"]);

    let fs = compose_filesystem(&c, "prometheus");
    let config = flag_value(&command("prometheus"), "--config.file").expect("--config.file");
    let out = check_prometheus_config(&under(fs.path(), &config));
    assert!(
        out.contains("SUCCESS: 1 rule files found") && out.contains(" rules found"),
        "the seed rules must load:\n{out}"
    );
    assert_scrape_contract(
        "deploy/compose/prometheus.yml",
        &yaml_file(&under(fs.path(), &config)),
    );

    let fs = compose_filesystem(&c, "alertmanager");
    let config = flag_value(&command("alertmanager"), "--config.file").expect("--config.file");
    check_alertmanager_config(&under(fs.path(), &config));

    let fs = compose_filesystem(&c, "prognos");
    let config = flag_value(&command("prognos"), "--config").expect("--config");
    check_prognos_config(&under(fs.path(), &config));
}

// ---------------------------------------------------------------- kubernetes

/// `kubectl kustomize deploy/k8s/overlays/demo`, rendered once.
fn k8s_rendered() -> &'static str {
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

fn k8s_documents() -> Vec<Value> {
    yaml_documents(k8s_rendered())
}

fn k8s_find<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    docs.iter()
        .find(|d| str_of(&d["kind"]) == kind && str_of(&d["metadata"]["name"]) == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in the rendered manifests"))
}

/// Lays out the ConfigMaps a workload's first container mounts under a
/// temporary root, as the container sees them (subPath mounts and projected
/// volumes included). Returns the root and the container's command words.
fn k8s_filesystem(docs: &[Value], kind: &str, name: &str) -> (tempfile::TempDir, Vec<String>) {
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

#[test]
fn the_kubernetes_manifests_validate_strictly() {
    let rendered = k8s_rendered();
    let count = k8s_documents().len();
    assert!(count >= 40, "only {count} resources rendered");
    let versions = ["1.25.0", "1.37.0"];
    // A file, not stdin: kubernetes-validate reads its input once per version.
    let dir = tempfile::tempdir().expect("temporary directory");
    let file = dir.path().join("demo.yaml");
    std::fs::write(&file, rendered).expect("writing the rendered manifests");
    let file = file.to_string_lossy().into_owned();
    let mut args = vec!["--strict"];
    for v in &versions {
        args.extend(["--kubernetes-version", v]);
    }
    args.push(&file);
    let (ok, out) = run_tool("kubernetes-validate", &args);
    assert!(ok, "kubernetes-validate failed:\n{out}");
    // An unknown kind or apiVersion is only a warning to kubernetes-validate.
    let problems: Vec<&str> = out.lines().filter(|l| !l.starts_with("INFO")).collect();
    assert!(
        problems.is_empty(),
        "kubernetes-validate:\n{}",
        problems.join("\n")
    );
    let passed = out
        .lines()
        .filter(|l| l.contains(" passed for resource "))
        .count();
    assert_eq!(
        passed,
        count * versions.len(),
        "every resource against every version:\n{out}"
    );
}

#[test]
fn prognos_runs_in_kubernetes_as_a_statefulset_of_shards() {
    let docs = k8s_documents();
    let sts = k8s_find(&docs, "StatefulSet", "prognos");
    let replicas = sts["spec"]["replicas"].as_u64().expect("replicas");
    assert!(
        replicas >= 2,
        "prognos has {replicas} replica(s): not sharded"
    );

    // The shard each pod takes: run the container's own shell command with
    // `echo` in place of prognos, as pod prognos-<i> would.
    let container = &sts["spec"]["template"]["spec"]["containers"][0];
    let command: Vec<String> = seq(&container["command"])
        .into_iter()
        .map(|w| str_of(w).to_string())
        .collect();
    assert_eq!(
        command.first().map(String::as_str),
        Some("sh"),
        "{command:?}"
    );
    let script = command
        .last()
        .expect("script")
        .replacen("exec prognos ", "exec echo prognos ", 1);
    assert!(script.contains("--shard"), "{script}");
    for i in 0..replicas {
        let out = Command::new("sh")
            .args(["-c", &script])
            .env("HOSTNAME", format!("prognos-{i}"))
            .output()
            .expect("sh");
        let printed = String::from_utf8_lossy(&out.stdout);
        assert!(
            printed.contains(&format!("--shard {i}/{replicas}")),
            "pod prognos-{i} would run: {printed}"
        );
    }

    // A headless Service names every pod, and Prometheus finds the shards
    // through its SRV records.
    let service_name = str_of(&sts["spec"]["serviceName"]);
    let svc = k8s_find(&docs, "Service", service_name);
    assert_eq!(
        str_of(&svc["spec"]["clusterIP"]),
        "None",
        "the Service of the shards must be headless"
    );
    let pod_labels = &sts["spec"]["template"]["metadata"]["labels"];
    for (k, v) in svc["spec"]["selector"].as_mapping().expect("selector") {
        assert_eq!(
            &pod_labels[str_of(k)],
            v,
            "the Service must select the shards"
        );
    }
    let port = seq(&svc["spec"]["ports"])
        .into_iter()
        .find(|p| str_of(&p["name"]) == "metrics")
        .expect("a port named metrics");
    assert_eq!(port["port"].as_u64(), Some(9464));

    let (fs, _) = k8s_filesystem(&docs, "Deployment", "prometheus");
    let prometheus = yaml_file(&fs.path().join("etc/prometheus/prometheus.yml"));
    let job = seq(&prometheus["scrape_configs"])
        .into_iter()
        .find(|j| str_of(&j["job_name"]) == "prognos")
        .expect("job prognos");
    let srv = str_of(&job["dns_sd_configs"][0]["names"][0]);
    assert!(
        srv.starts_with(&format!("_metrics._tcp.{service_name}."))
            && str_of(&job["dns_sd_configs"][0]["type"]) == "SRV",
        "Prometheus must find every shard: {srv}"
    );

    // Each shard keeps its state on its own volume, where its config puts it.
    let (fs, _) = k8s_filesystem(&docs, "StatefulSet", "prognos");
    let config = yaml_file(&fs.path().join("etc/prognos/prognos.yml"));
    let state_dir = str_of(&config["global"]["state_dir"]);
    let claims: Vec<&str> = seq(&sts["spec"]["volumeClaimTemplates"])
        .into_iter()
        .map(|c| str_of(&c["metadata"]["name"]))
        .collect();
    assert!(
        seq(&container["volumeMounts"])
            .iter()
            .any(|m| str_of(&m["mountPath"]) == state_dir && claims.contains(&str_of(&m["name"]))),
        "state_dir {state_dir} is not on a volumeClaimTemplate ({claims:?})"
    );
}

#[test]
fn the_kubernetes_configs_pass_promtool_amtool_and_prognos_check() {
    let docs = k8s_documents();

    let (fs, command) = k8s_filesystem(&docs, "Deployment", "prometheus");
    let config = flag_value(&command, "--config.file").expect("--config.file");
    let out = check_prometheus_config(&under(fs.path(), &config));
    assert!(
        out.contains("SUCCESS: 1 rule files found") && out.contains(" rules found"),
        "the seed rules must load:\n{out}"
    );
    assert_scrape_contract(
        "deploy/k8s/base/config/prometheus.yml",
        &yaml_file(&under(fs.path(), &config)),
    );
    assert_same_tree(
        "the Prometheus pod's rules",
        &tree(&fs.path().join("etc/prometheus/rules"), ".yml"),
        &tree(&repo().join("deploy/prometheus/rules"), ".yml"),
        "list every file of deploy/prometheus/rules in deploy/k8s/base/kustomization.yaml and run deploy/k8s/sync-files",
    );

    let (fs, command) = k8s_filesystem(&docs, "Deployment", "alertmanager");
    let config = flag_value(&command, "--config.file").expect("--config.file");
    check_alertmanager_config(&under(fs.path(), &config));

    let (fs, command) = k8s_filesystem(&docs, "StatefulSet", "prognos");
    let config = flag_value(&command, "--config").expect("--config");
    check_prognos_config(&under(fs.path(), &config));
    assert_same_tree(
        "the prognos pods' rules",
        &tree(&fs.path().join("etc/prognos/rules"), ".yml"),
        &tree(&repo().join("rules"), ".yml"),
        "list every file of rules/ in deploy/k8s/base/kustomization.yaml and run deploy/k8s/sync-files",
    );

    let (fs, _) = k8s_filesystem(&docs, "Deployment", "grafana");
    assert_same_tree(
        "the Grafana pod's dashboards",
        &tree(&fs.path().join("var/lib/grafana/dashboards"), ".json"),
        &tree(&repo().join("deploy/grafana/dashboards"), ".json"),
        "add a ConfigMap per dashboard in deploy/k8s/base/kustomization.yaml, project it in grafana.yaml, and run deploy/k8s/sync-files",
    );
    assert_same_tree(
        "the Grafana pod's provisioning",
        &tree(&fs.path().join("etc/grafana/provisioning"), ".yml"),
        &tree(&repo().join("deploy/grafana/provisioning"), ".yml"),
        "run deploy/k8s/sync-files",
    );
}

#[test]
fn the_kubernetes_copies_equal_their_sources() {
    let root = repo();
    let files = root.join("deploy/k8s/base/files");
    for (source, copy, ext) in [
        ("rules", "rules", ".yml"),
        ("deploy/prometheus/rules", "prometheus-rules", ".yml"),
        (
            "deploy/grafana/provisioning",
            "grafana/provisioning",
            ".yml",
        ),
        ("deploy/grafana/dashboards", "grafana/dashboards", ".json"),
    ] {
        assert_same_tree(
            &format!("deploy/k8s/base/files/{copy}"),
            &tree(&files.join(copy), ext),
            &tree(&root.join(source), ext),
            "run deploy/k8s/sync-files",
        );
    }
}

#[test]
fn compose_and_kubernetes_run_the_same_images() {
    let c = compose();
    let compose_images: BTreeSet<String> = keys(&c["services"])
        .iter()
        .filter(|s| !c["services"][s.as_str()]["build"].is_mapping())
        .map(|s| str_of(&c["services"][s.as_str()]["image"]).to_string())
        .collect();
    let docs = k8s_documents();
    let mut k8s_images = BTreeSet::new();
    for d in &docs {
        for c in seq(&d["spec"]["template"]["spec"]["containers"]) {
            let image = str_of(&c["image"]);
            if !image.starts_with("prognos") {
                k8s_images.insert(image.to_string());
            }
        }
    }
    assert_eq!(
        compose_images, k8s_images,
        "third-party images of compose and Kubernetes"
    );
}

// ---------------------------------------------------------------- the image

/// `[package]` name and binary names of each workspace member.
fn workspace_binaries() -> BTreeMap<String, Vec<String>> {
    let root = repo();
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("Cargo.toml");
    let members: Vec<String> = manifest
        .lines()
        .find(|l| l.starts_with("members"))
        .expect("members")
        .split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    let mut out = BTreeMap::new();
    for member in members {
        let text = std::fs::read_to_string(root.join(&member).join("Cargo.toml"))
            .expect("member Cargo.toml");
        let (mut section, mut package, mut bins) = (String::new(), String::new(), Vec::new());
        for line in text.lines().map(str::trim) {
            if line.starts_with('[') {
                section = line.to_string();
            } else if let Some(v) = line.strip_prefix("name = ") {
                let v = v.trim_matches('"').to_string();
                match section.as_str() {
                    "[package]" => package = v,
                    "[[bin]]" => bins.push(v),
                    _ => {}
                }
            }
        }
        if bins.is_empty() && root.join(&member).join("src/main.rs").is_file() {
            bins.push(package.clone());
        }
        out.insert(package, bins);
    }
    out
}

#[test]
fn the_image_builds_every_binary_the_stacks_run() {
    let root = repo();
    let dockerfile =
        std::fs::read_to_string(root.join("deploy/Dockerfile")).expect("deploy/Dockerfile");
    // The toolchain is the workspace's.
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("Cargo.toml");
    let rust_version = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .expect("rust-version")
        .trim_matches('"');
    assert!(
        dockerfile.contains(&format!("FROM rust:{rust_version}-bookworm")),
        "the build stage must use Rust {rust_version}"
    );

    // `cargo build -p …` names workspace packages; their binaries are copied.
    let packages = workspace_binaries();
    let build_line = dockerfile
        .lines()
        .find(|l| l.contains("cargo build"))
        .expect("a cargo build line");
    let built: Vec<&str> = build_line
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[0] == "-p")
        .map(|w| w[1])
        .collect();
    assert!(built.len() >= 3, "{built:?}");
    let mut binaries = BTreeSet::new();
    for p in &built {
        let bins = packages
            .get(*p)
            .unwrap_or_else(|| panic!("-p {p} is no workspace package ({packages:?})"));
        binaries.extend(bins.iter().cloned());
    }
    for b in &binaries {
        assert!(
            dockerfile.contains(&format!("/out/{b} "))
                || dockerfile.contains(&format!("/out/{b}\n")),
            "binary {b} is not copied into the image"
        );
    }

    // Every file COPY'd from the context exists and is not ignored.
    let ignore = std::fs::read_to_string(root.join(".dockerignore")).expect(".dockerignore");
    let ignored: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert!(
        ignored.contains(&"target/"),
        "target/ must stay out of the build context"
    );
    for line in dockerfile
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let parts: Vec<&str> = line.split_whitespace().collect();
        for source in &parts[1..parts.len() - 1] {
            if *source == "." {
                continue;
            }
            assert!(root.join(source).exists(), "COPY {source}: no such file");
            assert!(
                !ignored
                    .iter()
                    .any(|i| source.starts_with(i.trim_end_matches('/'))),
                "COPY {source}: excluded by .dockerignore"
            );
        }
    }

    // What compose and Kubernetes run from the image is in it.
    let c = compose();
    let mut run = Vec::new();
    for s in keys(&c["services"]) {
        let service = &c["services"][s.as_str()];
        if service["build"].is_mapping() {
            run.push((
                format!("compose {s}"),
                program_of(&words(&service["command"])),
            ));
        }
    }
    for d in k8s_documents() {
        for container in seq(&d["spec"]["template"]["spec"]["containers"]) {
            if str_of(&container["image"]).starts_with("prognos") {
                let mut cmd = words(&container["command"]);
                cmd.extend(words(&container["args"]));
                run.push((
                    format!("kubernetes {}", str_of(&d["metadata"]["name"])),
                    program_of(&cmd),
                ));
            }
        }
    }
    assert!(run.len() >= 10, "{run:?}");
    for (who, program) in run {
        assert!(
            binaries.contains(&program),
            "{who} runs {program:?}, which the image does not have ({binaries:?})"
        );
    }
}

/// The program a command runs: its first word, or what a `sh -c 'exec …'`
/// script execs.
fn program_of(words: &[String]) -> String {
    match words.iter().position(|w| w == "exec") {
        Some(i) if words.first().map(String::as_str) == Some("sh") => words[i + 1].clone(),
        _ => words.first().cloned().unwrap_or_default(),
    }
}

// ---------------------------------------------------------------- Grafana

#[test]
fn the_datasource_is_prometheus_at_the_url_each_deployment_sets() {
    let root = repo();
    let ds = yaml_file(&root.join("deploy/grafana/provisioning/datasources/prometheus.yml"));
    let list = seq(&ds["datasources"]);
    assert_eq!(list.len(), 1, "{ds:?}");
    assert_eq!(str_of(&list[0]["uid"]), "prometheus");
    assert_eq!(str_of(&list[0]["type"]), "prometheus");
    assert_eq!(str_of(&list[0]["url"]), "${PROMETHEUS_URL}");

    let providers = yaml_file(&root.join("deploy/grafana/provisioning/dashboards/prognos.yml"));
    let dashboards_path = str_of(&providers["providers"][0]["options"]["path"]).to_string();
    assert_eq!(str_of(&providers["providers"][0]["type"]), "file");

    // compose: PROMETHEUS_URL names the prometheus service, the dashboards
    // are mounted where the provider reads them.
    let c = compose();
    let grafana = &c["services"]["grafana"];
    assert_eq!(
        str_of(&grafana["environment"]["PROMETHEUS_URL"]),
        "http://prometheus:9090"
    );
    let fs = compose_filesystem(&c, "grafana");
    let dashboards = tree(&under(fs.path(), &dashboards_path), ".json");
    assert_eq!(
        dashboards.len(),
        dashboards::dashboard_files(&root).len(),
        "compose Grafana's dashboards"
    );
    assert!(
        under(
            fs.path(),
            "/etc/grafana/provisioning/datasources/prometheus.yml"
        )
        .is_file()
    );
    let home = str_of(&grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]);
    assert!(
        under(fs.path(), home).is_file(),
        "compose Grafana's home dashboard {home:?}"
    );

    // Kubernetes: the same, from the rendered Deployment and ConfigMaps.
    let docs = k8s_documents();
    let deployment = k8s_find(&docs, "Deployment", "grafana");
    let env = seq(&deployment["spec"]["template"]["spec"]["containers"][0]["env"]);
    let url = env
        .iter()
        .find(|e| str_of(&e["name"]) == "PROMETHEUS_URL")
        .map(|e| str_of(&e["value"]))
        .expect("PROMETHEUS_URL in the Grafana Deployment");
    assert_eq!(url, "http://prometheus:9090");
    k8s_find(&docs, "Service", "prometheus");
    let (fs, _) = k8s_filesystem(&docs, "Deployment", "grafana");
    let home = env
        .iter()
        .find(|e| str_of(&e["name"]) == "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
        .map(|e| str_of(&e["value"]))
        .expect("the home dashboard in the Grafana Deployment");
    assert!(
        home.starts_with(&dashboards_path) && under(fs.path(), home).is_file(),
        "Kubernetes Grafana's home dashboard {home:?}"
    );
}

/// Raw metrics the stack's exporters serve (the services' instrumentation,
/// node_exporter, postgres_exporter, RabbitMQ's plugin, the S3 exporter) and
/// Prometheus's own `up`.
const STACK_METRICS: [&str; 23] = [
    "http_requests_total",
    "http_requests_in_flight",
    "http_request_duration_seconds_bucket",
    "http_request_duration_summary_seconds",
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "node_cpu_seconds_total",
    "node_load1",
    "node_memory_MemAvailable_bytes",
    "node_memory_MemTotal_bytes",
    "pg_up",
    "pg_database_size_bytes",
    "pg_stat_database_numbackends",
    "pg_stat_database_xact_rollback",
    "pg_stat_database_deadlocks",
    "rabbitmq_queue_messages_ready",
    "rabbitmq_queue_messages_unacked",
    "rabbitmq_queue_consumers",
    "rabbitmq_global_messages_dead_lettered_rejected_total",
    "s3_bucket_size_bytes",
    "s3_bucket_objects",
    "s3_bucket_list_errors_total",
    "up",
];

/// Every metric name the dashboards may use: the stack's, the seed
/// recording rules', and what prognos itself exports (read from its
/// registry, so a renamed metric fails here).
fn known_metrics() -> BTreeSet<String> {
    let mut known: BTreeSet<String> = STACK_METRICS.iter().map(|s| s.to_string()).collect();
    let seed = yaml_file(&repo().join("deploy/prometheus/rules/seed.yml"));
    for g in seq(&seed["groups"]) {
        for r in seq(&g["rules"]) {
            if let Some(name) = r["record"].as_str() {
                known.insert(name.to_string());
            }
        }
    }
    // prometheus-client leaves empty families out: give each one a series.
    let m = prognos::exposition::Metrics::with_extra(|r| {
        prognos_notifiers::notifier::NotifierMetrics::default().register(r)
    });
    let l = vec![("rule".to_string(), "g/a".to_string())];
    for family in [
        &m.expected,
        &m.expected_lower,
        &m.expected_upper,
        &m.anomaly_score,
        &m.forecast,
        &m.forecast_lower,
        &m.forecast_upper,
        &m.time_to_threshold,
        &m.evaluation_lag,
    ] {
        family.get_or_create(&l).set(1.0);
    }
    for family in [&m.query_duration, &m.fit_duration] {
        family.get_or_create(&l).observe(0.1);
    }
    for family in [&m.errors, &m.series_limit_dropped, &m.missed_evaluations] {
        family.get_or_create(&l).inc();
    }
    for family in [&m.series_modelled, &m.alerts] {
        family.get_or_create(&l).set(1);
    }
    let mut exposition = m.encode();
    // The notifiers' families are private to their crate: their names are
    // checked against its source instead.
    let notifier_source = include_str!("../../notifiers/src/notifier/mod.rs");
    for (name, kind) in [
        ("prognos_notifications", "counter"),
        ("prognos_remediations", "counter"),
        ("prognos_approval_refusals", "counter"),
        ("prognos_notifier_errors", "counter"),
    ] {
        assert!(
            notifier_source.contains(&format!("\"{name}\"")),
            "notifiers no longer register {name}"
        );
        exposition.push_str(&format!("# TYPE {name} {kind}\n"));
    }
    for line in exposition.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut it = rest.split_whitespace();
        let (Some(name), Some(kind)) = (it.next(), it.next()) else {
            continue;
        };
        match kind {
            "counter" => {
                known.insert(format!("{name}_total"));
            }
            "histogram" => {
                for suffix in ["_bucket", "_sum", "_count"] {
                    known.insert(format!("{name}{suffix}"));
                }
            }
            _ => {
                known.insert(name.to_string());
            }
        }
    }
    assert!(
        known.contains("prognos_expected_value") && known.contains("prognos_outbox_depth"),
        "{known:?}"
    );
    known
}

/// The ids (`group/alert`) of prognos's rules in rules/.
fn rule_ids() -> BTreeSet<String> {
    let mut ids = BTreeSet::new();
    for path in std::fs::read_dir(repo().join("rules")).expect("rules/") {
        let path = path.expect("entry").path();
        if path.extension().is_some_and(|e| e == "yml") {
            let file = yaml_file(&path);
            for g in seq(&file["groups"]) {
                for r in seq(&g["rules"]) {
                    ids.insert(format!("{}/{}", str_of(&g["name"]), str_of(&r["alert"])));
                }
            }
        }
    }
    ids
}

/// Every vector selector of an expression.
fn selectors(expr: &Expr) -> Vec<&promql_parser::parser::VectorSelector> {
    fn walk<'a>(e: &'a Expr, out: &mut Vec<&'a promql_parser::parser::VectorSelector>) {
        match e {
            Expr::Aggregate(a) => {
                walk(&a.expr, out);
                if let Some(p) = &a.param {
                    walk(p, out);
                }
            }
            Expr::Unary(u) => walk(&u.expr, out),
            Expr::Binary(b) => {
                walk(&b.lhs, out);
                walk(&b.rhs, out);
            }
            Expr::Paren(p) => walk(&p.expr, out),
            Expr::Subquery(s) => walk(&s.expr, out),
            Expr::VectorSelector(v) => out.push(v),
            Expr::MatrixSelector(m) => out.push(&m.vs),
            Expr::Call(c) => c.args.args.iter().for_each(|a| walk(a, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(expr, &mut out);
    out
}

#[test]
fn grafana_variables_are_substituted() {
    let vars = vec![
        ("service".to_string(), "shop-api".to_string()),
        ("services".to_string(), ".+".to_string()),
    ];
    assert_eq!(
        dashboards::substitute(
            r#"rate(x{a=~"$service",b=~"${services:regex}",c="[[service]]"}[$__rate_interval]) / $__range_s"#,
            &vars
        ),
        r#"rate(x{a=~"shop-api",b=~".+",c="shop-api"}[5m]) / 3600"#
    );
    assert_eq!(
        dashboards::substitute("y[${__interval}] offset $__range", &[]),
        "y[1m] offset 1h"
    );
}

#[test]
fn every_dashboard_panel_queries_prometheus_with_valid_promql() {
    let root = repo();
    let files = dashboards::dashboard_files(&root);
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        ["overview.json", "predictions.json", "prognos-health.json"]
    );
    let mut uids = BTreeSet::new();
    for path in &files {
        let file = path.display().to_string();
        let d = dashboards::read_dashboard(path);
        let uid = d["uid"]
            .as_str()
            .unwrap_or_else(|| panic!("{file}: no uid"));
        assert!(!uid.is_empty() && uid.len() <= 40, "{file}: uid {uid:?}");
        assert!(uids.insert(uid.to_string()), "{file}: uid {uid} used twice");
        assert!(
            d["schemaVersion"].as_u64().is_some_and(|v| v >= 36),
            "{file}: Grafana 10/11 schema"
        );
        let mut ids = BTreeSet::new();
        let mut queried = 0;
        for panel in dashboards::panels(&d) {
            let title = panel["title"].as_str().unwrap_or("");
            let id = panel["id"]
                .as_u64()
                .unwrap_or_else(|| panic!("{file}: panel {title:?} has no id"));
            assert!(ids.insert(id), "{file}: panel id {id} used twice");
            assert!(
                panel["gridPos"].is_object(),
                "{file}: panel {title:?} has no gridPos"
            );
            let kind = panel["type"].as_str().unwrap_or("");
            if kind == "row" {
                continue;
            }
            assert!(
                ["timeseries", "stat", "gauge"].contains(&kind),
                "{file}: panel {title:?} is a {kind:?}"
            );
            assert!(!title.is_empty(), "{file}: panel {id} has no title");
            let prometheus = serde_json::json!({"type": "prometheus", "uid": "prometheus"});
            assert_eq!(panel["datasource"], prometheus, "{file}: panel {title:?}");
            let targets = panel["targets"].as_array().cloned().unwrap_or_default();
            assert!(!targets.is_empty(), "{file}: panel {title:?} has no query");
            let mut refs = BTreeSet::new();
            for t in &targets {
                assert_eq!(t["datasource"], prometheus, "{file}: panel {title:?}");
                assert!(
                    t["expr"].is_string(),
                    "{file}: panel {title:?}: a target without expr"
                );
                let r = t["refId"].as_str().unwrap_or("");
                assert!(
                    refs.insert(r.to_string()),
                    "{file}: panel {title:?}: refId {r:?} twice"
                );
                queried += 1;
            }
        }
        assert!(queried >= 20, "{file}: only {queried} queries");
    }

    let known = known_metrics();
    let rules = rule_ids();
    let queries = dashboard_queries(&root);
    assert!(queries.len() >= 100, "{} queries", queries.len());
    let mut rules_shown = BTreeSet::new();
    for q in &queries {
        let at = format!("{} / {:?}", q.file, q.panel);
        assert!(
            !q.expr.contains('$'),
            "{at}: a variable is left in {}",
            q.expr
        );
        let ast = parser::parse(&q.expr).unwrap_or_else(|e| panic!("{at}: {e}\n{}", q.expr));
        for vs in selectors(&ast) {
            let name = vs.name.clone().or_else(|| {
                vs.matchers
                    .matchers
                    .iter()
                    .find(|m| m.name == "__name__")
                    .map(|m| m.value.clone())
            });
            let name = name.unwrap_or_else(|| panic!("{at}: a selector without a metric name"));
            assert!(
                known.contains(&name),
                "{at}: no metric {name} in the stack\n{}",
                q.expr
            );
            for m in vs.matchers.matchers.iter().filter(|m| m.name == "rule") {
                let hits: Vec<&String> = rules.iter().filter(|r| m.is_match(r)).collect();
                assert!(
                    !hits.is_empty(),
                    "{at}: rule matcher {m} matches no rule of rules/ ({rules:?})"
                );
                if !matches!(
                    m.op,
                    promql_parser::label::MatchOp::NotEqual
                        | promql_parser::label::MatchOp::NotRe(_)
                ) {
                    rules_shown.extend(hits.into_iter().cloned());
                }
            }
        }
    }
    // The predictions dashboard shows the predictive rules of every seed series.
    for rule in [
        "storage/ShopDbFullSoon",
        "storage/MesDbFullSoon",
        "storage/S3BucketFullSoon",
        "queues/MesQueueBacklogSoon",
        "queues/QueueUnackedGrowing",
        "compute/ApiCpuHighSoon",
        "compute/ApiMemoryHighSoon",
        "errors/Http500Anomalous",
    ] {
        assert!(rules_shown.contains(rule), "no panel shows {rule}");
    }
}
