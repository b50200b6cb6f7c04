//! `prognos check` and `config::load` through the library: the example
//! configuration, and each kind of problem with its file, line and column.

use std::path::{Path, PathBuf};
use std::time::Duration;

use prognos::commands::check;
use prognos::config::{self, Condition, Shard};

/// A scratch directory holding `files` (path, text); returns it and the
/// path of its `prognos.yml`.
fn setup(files: &[(&str, &str)]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let main = dir.path().join("prognos.yml");
    (dir, main)
}

/// Every error line, with the scratch directory cut from the paths.
fn errors(dir: &Path, main: &Path) -> Vec<String> {
    let e = config::load(main).expect_err("should fail");
    let prefix = format!("{}/", dir.display());
    e.0.iter()
        .map(|e| e.to_string().replace(&prefix, ""))
        .collect()
}

const MAIN: &str = "\
global:
  prometheus:
    url: http://127.0.0.1:9090
rule_files:
  - rules/*.yml
";

const RULE: &str = "\
groups:
  - name: storage
    rules:
      - alert: ShopDbFullSoon
        expr: pg_database_size_bytes{datname=\"shop\"}
        condition:
          time_to_threshold: {threshold: 100e9, less_than: 3d}
";

#[test]
fn example_config_of_the_repository_passes() {
    let main = Path::new(env!("CARGO_MANIFEST_DIR")).join("../prognos.yml");
    let out = check(std::slice::from_ref(&main)).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(
        out.ends_with("prognos.yml: OK, 5 groups, 17 rules"),
        "{out}"
    );
}

#[test]
fn good_config_loads_with_defaults_and_secrets() {
    let (dir, main) = setup(&[
        (
            "prognos.yml",
            "\
global:
  prometheus:
    url: https://prom.example:9090/
    timeout: 10s
    bearer_token_file: secrets/token
    ca_file: ca.pem
  evaluation_interval: 15s
  state_dir: .state
  listen: 0.0.0.0:9464
  shard: 1/3
  series_limit_per_rule: 50
rule_files: [rules/*.yml, rules/extra/*.yaml]
",
        ),
        ("secrets/token", "s3cr3t-token\n"),
        (
            "ca.pem",
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        ),
        ("rules/storage.yml", RULE),
        (
            "rules/extra/x.yaml",
            "groups:\n  - name: x\n    interval: 30s\n    rules:\n      - alert: A\n        expr: up\n        series_limit: 7\n        condition: {anomaly: {score_above: 0.9}}\n",
        ),
    ]);
    let c = config::load(&main).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.prometheus.url.as_str(), "https://prom.example:9090/");
    assert_eq!(c.prometheus.timeout, Duration::from_secs(10));
    assert_eq!(
        c.prometheus.bearer_token.as_ref().unwrap().expose(),
        "s3cr3t-token"
    );
    assert!(c.prometheus.ca_cert_pem.is_some());
    assert_eq!(c.evaluation_interval, Duration::from_secs(15));
    assert_eq!(c.state_dir, dir.path().join(".state"));
    assert_eq!(c.shard, Shard { index: 1, count: 3 });
    assert_eq!(c.groups.len(), 2);
    let storage = &c.groups[0];
    assert_eq!(
        storage.interval,
        Duration::from_secs(15),
        "inherits the global interval"
    );
    assert_eq!(storage.file, dir.path().join("rules/storage.yml"));
    let rule = &storage.rules[0];
    assert_eq!((rule.line, rule.series_limit), (4, 50));
    assert!(
        matches!(rule.condition, Condition::TimeToThreshold { threshold, .. } if threshold == 100e9)
    );
    assert_eq!(c.groups[1].rules[0].series_limit, 7);

    let debug = format!("{c:?}");
    assert!(!debug.contains("s3cr3t"), "secret in Debug output: {debug}");
    assert!(debug.contains("<secret>"));
    let out = check(&[main]).unwrap();
    assert!(out.ends_with("prognos.yml: OK, 2 groups, 2 rules"), "{out}");
}

#[test]
fn broken_yaml_names_line_and_column() {
    let (dir, main) = setup(&[
        ("prognos.yml", MAIN),
        (
            "rules/bad.yml",
            "groups:\n  - name: g\n    rules:\n      - alert: A\n       expr: up\n",
        ),
    ]);
    let e = errors(dir.path(), &main);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("rules/bad.yml:5:8: did not find expected '-' indicator"),
        "{}",
        e[0]
    );
}

#[test]
fn unknown_field_is_rejected_where_it_is() {
    let (dir, main) = setup(&[(
        "prognos.yml",
        "global:\n  prometheus:\n    url: http://x:9090\n    tokn: abc\n",
    )]);
    let e = errors(dir.path(), &main);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("prognos.yml:4:5: field 'global.prometheus.tokn': unknown field `tokn`"),
        "{}",
        e[0]
    );
}

#[test]
fn bad_promql_shows_the_position() {
    let (dir, main) = setup(&[
        ("prognos.yml", MAIN),
        (
            "rules/r.yml",
            &RULE.replace(
                r#"pg_database_size_bytes{datname="shop"}"#,
                "sum(rate(x[5m]) by (a)",
            ),
        ),
    ]);
    let e = errors(dir.path(), &main);
    assert_eq!(e.len(), 1, "{e:?}");
    // The unclosed `(` of `sum(` is character 4, column 15 + 3.
    assert!(
        e[0].starts_with(r#"rules/r.yml:5:18: group "storage", rule "ShopDbFullSoon": field 'expr': invalid PromQL at character 4 of "sum(rate(x[5m]) by (a)": unclosed left parenthesis"#),
        "{}",
        e[0]
    );
}

#[test]
fn negative_for_is_reported_like_rulefmt() {
    let (dir, main) = setup(&[
        ("prognos.yml", MAIN),
        ("rules/r.yml", &format!("{RULE}        for: -5m\n")),
    ]);
    assert_eq!(
        errors(dir.path(), &main),
        [
            r#"rules/r.yml:8:9: group "storage", rule "ShopDbFullSoon": field 'for': must be ≥ 0s, got "-5m""#
        ]
    );
}

#[test]
fn missing_secret_file_is_named_not_read() {
    let (dir, main) = setup(&[(
        "prognos.yml",
        "global:\n  prometheus:\n    url: http://x:9090\n    basic_auth: {username: u, password_file: nope.txt}\n",
    )]);
    let e = errors(dir.path(), &main);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("prognos.yml:4:31: field 'global.prometheus.basic_auth.password_file': cannot read secret file"),
        "{}",
        e[0]
    );
}

#[test]
fn two_conditions_are_rejected() {
    let rule = RULE.replace(
        "          time_to_threshold: {threshold: 100e9, less_than: 3d}\n",
        "          time_to_threshold: {threshold: 100e9, less_than: 3d}\n          anomaly: {score_above: 0.9}\n",
    );
    let (dir, main) = setup(&[("prognos.yml", MAIN), ("rules/r.yml", &rule)]);
    assert_eq!(
        errors(dir.path(), &main),
        [
            r#"rules/r.yml:8:11: group "storage", rule "ShopDbFullSoon": field 'condition.anomaly': exactly one condition is allowed, got time_to_threshold and anomaly"#
        ]
    );
}

#[test]
fn every_error_is_collected_in_one_run() {
    let (dir, main) = setup(&[
        (
            "prognos.yml",
            "\
global:
  prometheus:
    url: ftp://x
    bearer_token_file: t
    bearer_token_env: PROGNOS_TEST_SURELY_UNSET_VARIABLE
  shard: 3/2
rule_files: [rules/*.yml, missing/*.yml]
",
        ),
        ("t", "token"),
        (
            "rules/a.yml",
            &format!("{RULE}        for: -5m\n        step: 0s\n"),
        ),
        ("rules/b.yml", "groups:\n  - name: g\n    rules: [\n"),
    ]);
    let e = errors(dir.path(), &main);
    let want = [
        "prognos.yml:3:5: field 'global.prometheus.url': expected an http:// or https:// URL",
        "prognos.yml:5:5: field 'global.prometheus.bearer_token_env': contradicts bearer_token_file",
        "prognos.yml:6:3: field 'global.shard': expected i/n with 0 ≤ i < n",
        "prognos.yml:7:27: field 'rule_files[1]': \"missing/*.yml\" matches no file",
        "rules/a.yml:9:9: group \"storage\", rule \"ShopDbFullSoon\": field 'step': must be > 0s",
        "rules/a.yml:8:9: group \"storage\", rule \"ShopDbFullSoon\": field 'for': must be ≥ 0s, got \"-5m\"",
        "rules/b.yml:4:1: ",
    ];
    assert_eq!(e.len(), want.len(), "{e:#?}");
    for (got, want) in e.iter().zip(want) {
        assert!(got.starts_with(want), "got  {got}\nwant {want}");
    }
    let text = format!("{:#}", check(&[main]).unwrap_err());
    assert_eq!(text.lines().count(), want.len(), "{text}");
}

#[test]
fn notification_mistakes_are_reported_with_their_fields() {
    let main = format!(
        "{MAIN}notifications:
  receivers:
    - name: ops
      telegram:
        - token_file: missing.token
      email:
        - smarthost: smtp.example.com
          tls: ssl
          to: []
  route:
    receiver: nobody
    group_wait: soon
    routes:
      - matchers: ['severity=~\"(\"']
remediation:
  secret_env: PROGNOS_TEST_UNSET_SECRET_VARIABLE
  actions:
    - name: restart
      url: ftp://ops.example.com/restart
      body: '{{\"service\": \"{{{{ $labels.service }}}}\", \"x\": \"{{{{ $nope }}}}\"}}'
      approval: {{approvers: []}}
"
    );
    let (dir, main) = setup(&[("prognos.yml", &main), ("rules/a.yml", RULE)]);
    let errs = errors(dir.path(), &main).join("\n");
    for want in [
        "notifications.receivers[0].telegram[0].token_file",
        "notifications.receivers[0].telegram[0].chat_id': is required",
        "notifications.receivers[0].email[0].smarthost': expected host:port",
        "notifications.receivers[0].email[0].tls': expected none, starttls or tls, got \"ssl\"",
        "notifications.receivers[0].email[0].from': is required",
        "notifications.receivers[0].email[0].to': needs at least one address",
        "notifications.route.receiver': names no receiver: \"nobody\"",
        "notifications.route.group_wait'",
        "notifications.route.routes[0].matchers[0]'",
        "remediation.secret_env'",
        "remediation.actions[0].url': expected an http:// or https:// URL",
        "remediation.actions[0].body'",
        "remediation.actions[0].matchers': needs at least one matcher",
        "remediation.actions[0].approval.approvers': needs at least one Telegram user id",
        "remediation.actions[0].approval': needs notifications.telegram_bot",
    ] {
        assert!(errs.contains(want), "missing {want:?} in\n{errs}");
    }
    // Located in the file: the route's bad receiver is on line 16.
    assert!(
        errs.lines()
            .any(|l| l.starts_with("prognos.yml:16:") && l.contains("names no receiver")),
        "{errs}"
    );
}

#[test]
fn a_good_notifications_section_loads() {
    let main = format!(
        "{MAIN}notifications:
  receivers:
    - name: ops
      webhook:
        - url: http://127.0.0.1:9/hook
      telegram:
        - token_file: tg.token
          chat_id: 42
          at_most_once: true
    - name: am
      alertmanager:
        - url: http://am-0:9093
        - url: http://am-1:9093
  route:
    receiver: ops
    group_by: [service]
    routes:
      - matchers: ['severity=\"critical\"']
        receiver: am
"
    );
    let (_dir, main) = setup(&[
        ("prognos.yml", &main),
        ("rules/a.yml", RULE),
        ("tg.token", "123456:test-token\n"),
    ]);
    let c = config::load(&main).unwrap_or_else(|e| panic!("{e}"));
    let n = c.notifications.expect("notifications configured");
    assert_eq!(n.receivers.len(), 2);
    assert_eq!(
        n.receivers[1].targets.len(),
        2,
        "one target per Alertmanager replica"
    );
    assert_eq!(n.route.group_wait, 30, "default group_wait");
    assert_eq!(n.route.routes[0].group_by, ["service"], "inherited");
    assert_eq!(n.route.routes[0].repeat_interval, 4 * 3600, "inherited");
    assert_eq!(n.external_url, "http://127.0.0.1:9464");
    assert_eq!(n.give_up_after_secs, 86_400);
    let at_most_once: Vec<bool> = n.receivers[0]
        .targets
        .iter()
        .filter_map(|t| match t {
            prognos_notifiers::config::Target::Telegram(c) => Some(c.at_most_once),
            _ => None,
        })
        .collect();
    assert_eq!(at_most_once, [true]);
}

/// The text `prognos check` prints for `main` (stdout and stderr) and
/// whether it succeeded: the real binary, as a user runs it.
fn check_output(main: &Path) -> (bool, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_prognos"))
        .args(["check", main.to_str().unwrap()])
        .output()
        .expect("runs prognos check");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn a_shadow_like_rule_file_is_not_echoed() {
    let shadow = "\
root:$6$SECRETCANARY$Zm9vYmFyYmF6:19000:0:99999:7:::
daemon:*:19000:0:99999:7:::
bob:SECRETCANARY2:19000:0:99999:7:::
";
    let (dir, _) = setup(&[("etc/shadow", shadow)]);
    let main = dir.path().join("conf/prognos.yml");
    std::fs::create_dir_all(main.parent().unwrap()).unwrap();
    std::fs::write(
        &main,
        "global:\n  prometheus:\n    url: http://127.0.0.1:9090\nrule_files: [\"../etc/shadow\"]\n",
    )
    .unwrap();
    let (ok, text) = check_output(&main);
    assert!(!ok, "{text}");
    assert!(!text.contains("SECRETCANARY"), "{text}");
    assert!(
        text.contains("shadow:1:1: ") && text.contains("unknown field"),
        "{text}"
    );
}

#[test]
fn a_rule_file_that_is_a_key_is_not_echoed() {
    let key = format!("KEYCANARY{}", "9f".repeat(28));
    let (dir, main) = setup(&[("prognos.yml", MAIN), ("hmac.key", &key)]);
    std::fs::create_dir_all(dir.path().join("rules")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("hmac.key"), dir.path().join("rules/k.yml"))
        .unwrap();
    let e = errors(dir.path(), &main);
    assert_eq!(
        e,
        ["rules/k.yml:1:1: expected a mapping with `groups:`, got a string (65 characters)"]
    );
    let (ok, text) = check_output(&main);
    assert!(!ok && !text.contains("KEYCANARY"), "{text}");
}

#[test]
fn a_malformed_url_does_not_echo_its_password() {
    let (dir, main) = setup(&[(
        "prognos.yml",
        "\
global:
  prometheus:
    url: http://admin:PWCANARY@127.0.0.1:99999
  external_url: ftp://admin:PWCANARY2@example.com/?token=TKCANARY
notifications:
  receivers:
    - name: ops
      webhook:
        - url: http://hook:PWCANARY3@[::1/x?api_key=TKCANARY2
  route: {receiver: ops}
",
    )]);
    let e = errors(dir.path(), &main).join("\n");
    for canary in ["PWCANARY", "TKCANARY", "admin", "hook:"] {
        assert!(!e.contains(canary), "{canary} in {e}");
    }
    assert!(
        e.contains("field 'global.prometheus.url': expected an http:// or https:// URL, got \"http://127.0.0.1:99999\""),
        "{e}"
    );
    assert_eq!(e.lines().count(), 3, "{e}");
}

#[test]
fn a_huge_token_is_not_echoed() {
    let huge = "A".repeat(1 << 20);
    // YAML caps implicit keys at 1,024 characters: keys are long, not huge.
    let long_key = "K".repeat(1000);
    let rule = format!(
        "groups:\n  - name: {huge}\n    rules:\n      - alert: {huge}\n        expr: up\n        condition: {{anomaly: {{score_above: 0.5}}}}\n        labels:\n          {long_key}: x\n        for: {huge}\n        model: {huge}\n"
    );
    let (dir, main) = setup(&[
        ("prognos.yml", MAIN),
        ("rules/a.yml", &rule),
        ("rules/b.yml", &format!("{long_key}: 1\n")),
        ("rules/c.yml", &format!("\"{huge}\"\n")),
        ("rules/d.yml", &format!("groups: [{huge}]\n")),
    ]);
    let e = errors(dir.path(), &main);
    assert!(e.len() >= 5, "{e:?}");
    for line in &e {
        assert!(line.len() < 600, "{} bytes: {}", line.len(), &line[..600]);
    }
    let (ok, text) = check_output(&main);
    assert!(!ok);
    assert!(text.len() < 600 * e.len(), "{} bytes", text.len());
}

/// A rule file holding one rule with `body` (its lines after `alert:`,
/// indented by 8).
fn one_rule(body: &str) -> String {
    format!("groups:\n  - name: g\n    interval: 1m\n    rules:\n      - alert: A\n{body}")
}

#[test]
fn a_look_ahead_beyond_what_can_be_forecast_is_refused_with_the_limit() {
    let rule = one_rule(
        "        expr: x_bytes\n        step: 1m\n        condition:\n          forecast: {threshold: 1, within: 7d}\n",
    );
    let (dir, main) = setup(&[("prognos.yml", MAIN), ("rules/r.yml", &rule)]);
    let e = errors(dir.path(), &main);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with(r#"rules/r.yml:9:36: group "g", rule "A": field 'condition.forecast.within': must be at most 6d: the engine forecasts at most 8640 steps of 1m (6d), got 7d"#),
        "{}",
        e[0]
    );

    // Time to threshold looks twice as far: 4d at 1m is 8d of forecast.
    let rule = one_rule(
        "        expr: x_bytes\n        step: 1m\n        horizons: [1h]\n        condition:\n          time_to_threshold: {threshold: 1, less_than: 4d}\n",
    );
    let (dir, main) = setup(&[("prognos.yml", MAIN), ("rules/r.yml", &rule)]);
    let e = errors(dir.path(), &main);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].contains("field 'condition.time_to_threshold.less_than': must be at most 3d (the engine looks twice as far ahead")
            && e[0].contains("8640 steps of 1m (6d), got 4d"),
        "{}",
        e[0]
    );

    // A horizon too far, and a within shorter than a step.
    let rule = one_rule(
        "        expr: x_bytes\n        step: 5m\n        horizons: [1h, 31d]\n        condition:\n          forecast: {threshold: 1, within: 1m}\n",
    );
    let (dir, main) = setup(&[("prognos.yml", MAIN), ("rules/r.yml", &rule)]);
    let e = errors(dir.path(), &main).join("\n");
    assert!(
        e.contains("field 'horizons[1]': must be at most 30d: the engine forecasts at most 8640 steps of 5m (30d), got 31d"),
        "{e}"
    );
    assert!(
        e.contains("field 'condition.forecast.within': must be ≥ step (5m)"),
        "{e}"
    );

    // At the limit, it loads.
    let rule = one_rule(
        "        expr: x_bytes\n        step: 1m\n        horizons: [6d]\n        condition:\n          time_to_threshold: {threshold: 1, less_than: 3d}\n",
    );
    let (_dir, main) = setup(&[("prognos.yml", MAIN), ("rules/r.yml", &rule)]);
    config::load(&main).unwrap_or_else(|e| panic!("{e}"));
}

fn loaded_rule(body: &str) -> config::Rule {
    let (_dir, main) = setup(&[("prognos.yml", MAIN), ("rules/r.yml", &one_rule(body))]);
    let c = config::load(&main).unwrap_or_else(|e| panic!("{e}"));
    c.groups[0].rules[0].clone()
}

#[test]
fn bounds_are_read_inferred_or_left_open() {
    use prognos_models::forecast::Bounds;
    let anomaly = "        condition: {anomaly: {score_above: 0.9}}\n";
    let with =
        |expr: &str, extra: &str| loaded_rule(&format!("        expr: '{expr}'\n{extra}{anomaly}"));
    assert_eq!(
        with(
            "100 * (1 - avg(rate(node_cpu_seconds_total{mode=\"idle\"}[5m])))",
            "        bounds: [0, 100]\n"
        )
        .bounds,
        Bounds {
            lower: Some(0.0),
            upper: Some(100.0)
        }
    );
    assert_eq!(
        with("queue_depth", "        bounds: [0, null]\n").bounds,
        Bounds::NON_NEGATIVE
    );
    assert_eq!(
        with("temperature_celsius", "        bounds: [null, 60.5]\n").bounds,
        Bounds {
            lower: None,
            upper: Some(60.5)
        }
    );
    assert_eq!(
        with(
            "sum by (job) (rate(process_cpu_seconds_total[5m])) * 100",
            ""
        )
        .bounds,
        Bounds::NON_NEGATIVE,
        "inferred from _total"
    );
    assert_eq!(
        with("a_bytes - b_bytes", "").bounds,
        Bounds::NONE,
        "a subtraction can be negative"
    );
    assert_eq!(
        with("x_bytes", "        bounds: [null, null]\n").bounds,
        Bounds::NONE,
        "declared open: no inference"
    );
}

#[test]
fn bad_bounds_are_located() {
    let rule = format!(
        "{}      - alert: B\n        expr: x\n        bounds: [100, 0]\n        condition: {{anomaly: {{score_above: 0.9}}}}\n      - alert: C\n        expr: x\n        bounds: [0, .inf]\n        condition: {{anomaly: {{score_above: 0.9}}}}\n",
        one_rule(
            "        expr: x\n        bounds: [0]\n        condition: {anomaly: {score_above: 0.9}}\n"
        )
    );
    let (dir, main) = setup(&[("prognos.yml", MAIN), ("rules/r.yml", &rule)]);
    let e = errors(dir.path(), &main);
    let want = [
        r#"rules/r.yml:7:9: group "g", rule "A": field 'bounds': must be [lower, upper] with null for an open side, such as [0, 100] or [0, null], got 1 values"#,
        r#"rules/r.yml:11:23: group "g", rule "B": field 'bounds[1]': must be greater than the lower bound 100, got 0"#,
        r#"rules/r.yml:15:21: group "g", rule "C": field 'bounds[1]': must be a finite number or null, got inf"#,
    ];
    assert_eq!(e, want);
}

#[test]
fn keep_firing_for_defaults_to_bridge_a_wavering_condition() {
    let anomaly = "        expr: x\n        condition: {anomaly: {score_above: 0.9}}\n";
    let mins = |m: u64| Duration::from_secs(60 * m);
    assert_eq!(
        loaded_rule(anomaly).keep_firing_for,
        mins(10),
        "at least 10m"
    );
    assert_eq!(
        loaded_rule(&format!("{anomaly}        for: 15m\n")).keep_firing_for,
        mins(15),
        "at least `for`"
    );
    assert_eq!(
        loaded_rule(&format!("{anomaly}        keep_firing_for: 0s\n")).keep_firing_for,
        Duration::ZERO,
        "as set"
    );
    // Twice a long group interval.
    let (_dir, main) = setup(&[
        ("prognos.yml", MAIN),
        (
            "rules/r.yml",
            &one_rule(anomaly).replace("interval: 1m", "interval: 15m"),
        ),
    ]);
    let c = config::load(&main).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.groups[0].rules[0].keep_firing_for, mins(30));
}

#[test]
fn the_shipped_rules_declare_or_infer_their_bounds() {
    use prognos_models::forecast::Bounds;
    let main = Path::new(env!("CARGO_MANIFEST_DIR")).join("../prognos.yml");
    let c = config::load(&main).unwrap_or_else(|e| panic!("{e}"));
    let rule = |name: &str| {
        c.groups
            .iter()
            .flat_map(|g| &g.rules)
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no rule {name}"))
            .clone()
    };
    let zero_to_100 = Bounds {
        lower: Some(0.0),
        upper: Some(100.0),
    };
    assert_eq!(rule("DbHostCpuHighSoon").bounds, zero_to_100);
    // Percent of one core, summed: may pass 100.
    assert_eq!(rule("ApiCpuHighSoon").bounds, Bounds::NON_NEGATIVE);
    for name in [
        "MesQueueBacklogSoon",
        "QueueUnackedGrowing",
        "ShopDbFullSoon",
        "S3BucketFullSoon",
        "ApiMemoryHighSoon",
        "Http500Anomalous",
    ] {
        assert_eq!(rule(name).bounds, Bounds::NON_NEGATIVE, "{name}");
    }
}

/// `prognos check ARGS…` as a user runs it: whether it succeeded, its
/// stdout and its stderr.
fn check_cli(args: &[&Path]) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_prognos"))
        .arg("check")
        .args(args)
        .output()
        .expect("runs prognos check");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_cli_checks_every_shipped_rule_file() {
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("../rules");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&rules)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .collect();
    files.sort();
    let args: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let (ok, out, err) = check_cli(&args);
    assert!(ok, "{out}{err}");
    assert_eq!(out.lines().count(), files.len(), "{out}");
    for (line, file) in out.lines().zip(&files) {
        assert!(
            line.starts_with(&format!("{}: OK, ", file.display())),
            "{line}"
        );
    }
    let storage = out
        .lines()
        .find(|l| l.contains("storage.yml"))
        .expect("storage.yml checked");
    let c = config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../prognos.yml")).unwrap();
    let groups: Vec<_> = c
        .groups
        .iter()
        .filter(|g| g.file.ends_with("storage.yml"))
        .collect();
    let rules: usize = groups.iter().map(|g| g.rules.len()).sum();
    assert!(
        storage.ends_with(&format!(
            ": OK, {} group{}, {rules} rule{}",
            groups.len(),
            if groups.len() == 1 { "" } else { "s" },
            if rules == 1 { "" } else { "s" }
        )),
        "{storage}"
    );
}

#[test]
fn the_cli_checks_a_mixed_list_to_the_end_and_fails_on_any_problem() {
    let bad = "\
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
        keep_firing_for: soon
      - alert: C
        expr: rate(x[5m]
        condition: {anomaly: {score_above: 0.9}}
";
    let (dir, main) = setup(&[
        ("prognos.yml", MAIN),
        ("rules/storage.yml", RULE),
        ("extra/bad.yml", bad),
        (
            "empty.yml",
            "global:\n  prometheus:\n    url: http://127.0.0.1:9090\n",
        ),
    ]);
    let bad = dir.path().join("extra/bad.yml");
    let storage = dir.path().join("rules/storage.yml");
    let empty = dir.path().join("empty.yml");
    let (ok, out, err) = check_cli(&[&bad, &main, &empty, &storage]);
    assert!(!ok, "{out}{err}");
    // The files after a failing one are checked too.
    let prefix = format!("{}/", dir.path().display());
    assert_eq!(
        out.replace(&prefix, ""),
        "prognos.yml: OK, 1 group, 1 rule\nrules/storage.yml: OK, 1 group, 1 rule\n"
    );
    let err = err.replace(&prefix, "");
    let want = [
        "error: extra/bad.yml:7:9: group \"g\", rule \"A\": field 'histroy': unknown field `histroy`",
        "extra/bad.yml:11:9: group \"g\", rule \"B\": field 'keep_firing_for': ",
        "extra/bad.yml:13:19: group \"g\", rule \"C\": field 'expr': invalid PromQL at character 5",
        "empty.yml:1:1: field 'rule_files': the rule set is empty: no rule_files are given",
    ];
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), want.len(), "{err}");
    for (got, want) in lines.iter().zip(want) {
        assert!(got.starts_with(want), "got  {got}\nwant {want}");
    }
}

#[test]
fn the_cli_refuses_a_state_dir_that_is_a_file_unless_told_not_to_probe() {
    let (dir, main) = setup(&[
        (
            "prognos.yml",
            &MAIN.replace("rule_files:", "  state_dir: db\nrule_files:"),
        ),
        ("rules/storage.yml", RULE),
        ("db", "not a directory"),
    ]);
    let (ok, out, err) = check_cli(&[&main]);
    assert!(!ok, "{out}{err}");
    assert!(
        err.contains("prognos.yml:4:3: field 'global.state_dir': cannot hold the state database: ")
            && err.trim_end().ends_with("db is not a directory"),
        "{err}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_prognos"))
        .args(["check", "--skip-state-dir"])
        .arg(&main)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let listing: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(listing.len(), 3, "nothing left behind: {listing:?}");
}
