//! The compose deployment (`deploy/compose/`) and the image it builds
//! (`deploy/Dockerfile`), checked without running them.
//!
//! - The compose file matches the Compose Specification (`check-jsonschema
//!   --builtin-schema vendor.compose-spec`), mounts only files that exist and
//!   depends only on services it has.
//! - The configuration files are laid out as the containers see them (from
//!   the compose mounts) and then pass `promtool check config`, `amtool
//!   check-config` and `prognos check`.
//! - The image is built with the workspace's toolchain, copies only files
//!   the build context has, and holds every binary compose and Kubernetes
//!   run from it.
//!
//! Tools: promtool and amtool (Debian's prometheus and
//! prometheus-alertmanager), kubectl (the image's programs are also read
//! from the Kubernetes manifests), and check-jsonschema from PyPI:
//! `scripts/install-deps` installs them.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use serde_norway::Value;
use support::deploy::{
    assert_scrape_contract, check_alertmanager_config, check_prognos_config,
    check_prometheus_config, compose, compose_binds, compose_dir, compose_filesystem, flag_value,
    k8s_documents, keys, repo, seq, str_of, tool, under, words, yaml_file,
};

// ---------------------------------------------------------------- compose

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
