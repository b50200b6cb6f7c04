//! The Kubernetes deployment (`deploy/k8s/`), checked without running it.
//!
//! - The demo overlay renders (`kubectl kustomize`) into resources that
//!   validate strictly against the Kubernetes 1.25 and 1.37 schemas
//!   (`kubernetes-validate`); prognos runs as a StatefulSet of shards.
//! - The configuration files are laid out as the containers see them (from
//!   the rendered ConfigMaps and volume mounts) and then pass `promtool check
//!   config`, `amtool check-config` and `prognos check`.
//! - The copies under `deploy/k8s/base/files/` equal their sources.
//! - Kubernetes runs the same third-party images as compose.
//!
//! Tools: promtool and amtool (Debian's prometheus and
//! prometheus-alertmanager), kubectl, and kubernetes-validate from PyPI:
//! `scripts/install-deps` installs them.

mod support;

use std::collections::BTreeSet;
use std::process::Command;

use support::deploy::{
    assert_same_tree, assert_scrape_contract, check_alertmanager_config, check_prognos_config,
    check_prometheus_config, compose, flag_value, k8s_documents, k8s_filesystem, k8s_find,
    k8s_rendered, keys, repo, run_tool, seq, str_of, tree, under, yaml_file,
};

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
