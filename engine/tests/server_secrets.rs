//! `prognos run` as a process, for what its HTTP server must refuse or
//! keep to itself: a short admin token stops the start, a token of another
//! length is rejected, and a failed reload of a rule file that is really a
//! key answers (and logs) without the key.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A TCP port on 127.0.0.1 that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding 127.0.0.1:0")
}

/// A config listening on `port`, its Prometheus unreachable (port 9, the
/// discard port: the rules fail, the server runs), one rule file.
fn write_config(dir: &Path, port: u16) -> PathBuf {
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    std::fs::write(
        dir.join("rules/r.yml"),
        "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up\n        condition: {anomaly: {score_above: 0.9}}\n",
    )
    .unwrap();
    let config = dir.join("prognos.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  prometheus:\n    url: http://127.0.0.1:9\n    timeout: 1s\n  state_dir: state\n  listen: 127.0.0.1:{port}\nrule_files: [rules/*.yml]\n"
        ),
    )
    .unwrap();
    config
}

/// Kills the child on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_short_admin_token_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), free_port());
    let token = dir.path().join("admin.token");
    std::fs::write(&token, "TKCANARY\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_prognos"))
        .args(["run", "--config", config.to_str().unwrap()])
        .arg("--admin-token-file")
        .arg(&token)
        .output()
        .expect("runs prognos");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("admin.token") && stderr.contains("at least 16"),
        "{stderr}"
    );
    assert!(!stderr.contains("TKCANARY"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_refuses_other_tokens_and_never_shows_a_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(dir.path(), port);
    let token = "0123456789abcdef0123456789abcdef";
    std::fs::write(dir.path().join("admin.token"), format!("{token}\n")).unwrap();
    let log = dir.path().join("prognos.log");
    let child = Command::new(env!("CARGO_BIN_EXE_prognos"))
        .args(["run", "--config", config.to_str().unwrap()])
        .arg("--admin-token-file")
        .arg(dir.path().join("admin.token"))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("starts prognos run");
    let mut running = Running(child);
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let mut up = false;
    for _ in 0..120 {
        if let Ok(r) = http.get(format!("{base}/-/healthy")).send().await
            && r.status().is_success()
        {
            up = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(up, "prognos never answered");
    let reload = |t: String| {
        let http = http.clone();
        let url = format!("{base}/-/reload");
        async move { http.post(url).bearer_auth(t).send().await.unwrap() }
    };
    for wrong in [
        &token[..token.len() - 1],
        &format!("{token}f"),
        &token.replace('0', "1"),
        "x",
    ] {
        assert_eq!(reload(wrong.to_string()).await.status(), 401, "{wrong}");
    }
    assert_eq!(reload(token.to_string()).await.status(), 200);

    // The rule file becomes a symlink to a key: the reload fails without it.
    let key = format!("KEYCANARY{}", "7e".repeat(28));
    std::fs::write(dir.path().join("hmac.key"), &key).unwrap();
    std::fs::remove_file(dir.path().join("rules/r.yml")).unwrap();
    std::os::unix::fs::symlink(dir.path().join("hmac.key"), dir.path().join("rules/r.yml"))
        .unwrap();
    let r = reload(token.to_string()).await;
    assert_eq!(r.status(), 400);
    let body = r.text().await.unwrap();
    assert!(!body.contains("KEYCANARY"), "{body}");
    assert!(
        body.contains("r.yml:1:1: expected a mapping with `groups:`, got a string (65 characters)"),
        "{body}"
    );
    // The running rules stay, and their API shows no key either.
    let rules = http
        .get(format!("{base}/api/v1/rules"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        rules.contains("\"g/A\"") || rules.contains("\"A\""),
        "{rules}"
    );
    assert!(!rules.contains("KEYCANARY"), "{rules}");
    let _ = running.0.kill();
    let _ = running.0.wait();
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("Reload failed"), "{logged}");
    assert!(!logged.contains("KEYCANARY"), "{logged}");
}
