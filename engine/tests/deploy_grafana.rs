//! The Grafana deployment (`deploy/grafana/`), checked without running it.
//!
//! - The provisioned datasource is Prometheus at the URL compose and
//!   Kubernetes each set, and both mount the dashboards and the home
//!   dashboard where Grafana reads them.
//! - Every dashboard panel queries the `prometheus` datasource with PromQL
//!   that parses, names metrics the stack has, and rules prognos has.
//!
//! Tools: kubectl (Debian's kubernetes-client): `scripts/install-deps`
//! installs it.

mod support;

use std::collections::BTreeSet;

use promql_parser::parser::{self, Expr};
use support::dashboards::{self, dashboard_queries};
use support::deploy::{
    compose, compose_filesystem, k8s_documents, k8s_filesystem, k8s_find, repo, seq, str_of, tree,
    under, yaml_file,
};

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

#[test]
fn every_prediction_panel_links_to_its_rules_in_the_prognos_ui() {
    let root = repo();
    let d = dashboards::read_dashboard(&root.join("deploy/grafana/dashboards/predictions.json"));
    let vars = dashboards::template_values(&d);
    assert!(
        vars.iter()
            .any(|(n, v)| n == "prognos_ui" && v.starts_with("http")),
        "the prognos_ui variable: {vars:?}"
    );
    let rules = rule_ids();
    let mut linked = BTreeSet::new();
    for p in dashboards::panels(&d) {
        if p["type"] == "row" {
            continue;
        }
        let links = p["links"].as_array().cloned().unwrap_or_default();
        assert!(!links.is_empty(), "panel {:?} has no link", p["title"]);
        for l in links {
            let url = l["url"].as_str().unwrap_or_default();
            let rest = url
                .strip_prefix("${prognos_ui}/")
                .unwrap_or_else(|| panic!("panel {:?} links elsewhere: {url}", p["title"]));
            if let Some(rule) = rest.strip_prefix("rules/") {
                assert!(
                    rules.contains(rule),
                    "{:?} links to no rule: {url}",
                    p["title"]
                );
                // A panel that queries a rule's predictions links to that rule.
                let exprs: Vec<_> = p["targets"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|t| t["expr"].as_str())
                    .collect();
                let (group, name) = rule.split_once('/').unwrap();
                assert!(
                    exprs
                        .iter()
                        .any(|e| e.contains(rule) || (e.contains(group) && e.contains(name))),
                    "{:?} links to {rule} but does not query it",
                    p["title"]
                );
                linked.insert(rule.to_string());
            }
        }
    }
    // Every rule with a prediction on this dashboard is one click away.
    assert!(linked.len() >= 8, "{linked:?}");
}
