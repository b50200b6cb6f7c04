//! The Prometheus rules of the stack (`deploy/prometheus/`): they load in
//! promtool, and their unit tests pass (recorded seed series and the
//! classic static alerts, on synthetic input series).

use std::path::PathBuf;
use std::process::Command;

fn deploy() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/prometheus")
}

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(deploy())
        .output()
        .expect("promtool (Debian's prometheus package, scripts/install-deps)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

#[test]
fn the_seed_rules_load_in_promtool() {
    let out = promtool(&["check", "rules", "rules/seed.yml"]);
    assert!(out.contains("SUCCESS: 17 rules found"), "{out}");
}

#[test]
fn the_seed_rules_pass_their_unit_tests() {
    let out = promtool(&["test", "rules", "tests/seed_test.yml"]);
    assert!(out.contains("SUCCESS"), "{out}");
}
