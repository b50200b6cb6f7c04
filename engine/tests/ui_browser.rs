//! The web UI in a real browser: `prognos run` (the binary) on a real
//! Prometheus with three days of backfilled history — a disk filling
//! towards its limit, labelled with hostile text — and Debian's Chromium,
//! headless, driven through chromedriver. Every page is visited; what each
//! shows is checked (the firing alert, its ETA, the chart's parts, the
//! labels shown as text and never run), a silence is created and expired
//! from the page with the admin token, the console stays free of errors,
//! and Prometheus is stopped to see the series page go stale rather than
//! blank. Screenshots land in `target/ui-screenshots/`.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use support::webdriver::Browser;
use support::{
    CannedPeer, Prognos, Prometheus, eventually, free_port, now_secs, openmetrics_gauges,
};

const STEP: i64 = 300;
/// How long a page may take to load after a click.
const WAIT: Duration = Duration::from_secs(15);
const DAY: i64 = 86_400;
const ADMIN: &str = "ui-admin-token-0123456789";
/// A label value that would run if a page put it in HTML unescaped.
const HOSTILE: &str = "<script>window.pwned=1</script><img src=x onerror=window.pwned=2>";

const RULES: &str = r#"groups:
  - name: storage
    rules:
      - alert: ShopDiskFullSoon
        expr: disk_used_bytes
        history: 3d
        step: 5m
        model: linear
        horizons: [1h, 1d]
        condition:
          time_to_threshold: {threshold: 88e9, direction: above, less_than: 1d}
        for: 0s
        labels: {severity: warning}
        annotations:
          summary: 'Disk {{ $labels.mount }} full in {{ $eta }} <b onmouseover=window.pwned=3>'
"#;

/// Three days of two disks with a daily wiggle and noise: the shop's filling
/// 10 GB a day from 50 GB (at ~80 GB now, 88 GB within a day), and a quiet
/// one with a hostile label.
fn history(end: i64) -> String {
    let start = end - 3 * DAY;
    let disk = |base: f64, per_day: f64| -> Vec<(i64, f64)> {
        (0..=(3 * DAY / STEP))
            .map(|k| {
                let t = start + k * STEP;
                let days = (t - start) as f64 / DAY as f64;
                let daily = (std::f64::consts::TAU * days).sin() * per_day * 0.05;
                (
                    t,
                    base + per_day * days + daily + ((k * 7919) % 17) as f64 * 2e7,
                )
            })
            .collect()
    };
    openmetrics_gauges(&[
        (
            "disk_used_bytes",
            &[("mount", "/data"), ("service", "shop-db")][..],
            disk(50e9, 10e9),
        ),
        (
            "disk_used_bytes",
            &[("mount", HOSTILE), ("service", "crm-db")][..],
            disk(20e9, 0.1e9),
        ),
    ])
}

fn write_config(dir: &Path, prom_url: &str, port: u16, hook: &str, action: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("rules")).unwrap();
    std::fs::write(dir.join("rules/disk.yml"), RULES).unwrap();
    std::fs::write(dir.join("admin.token"), ADMIN).unwrap();
    std::fs::write(dir.join("hmac.key"), "ui-test-hmac-key-0123456789").unwrap();
    let config = format!(
        r#"global:
  prometheus:
    url: {prom_url}
    timeout: 5s
  evaluation_interval: 5s
  state_dir: state
  listen: 127.0.0.1:{port}
rule_files:
  - rules/*.yml
notifications:
  retry: {{initial: 1h, max: 1h}}
  receivers:
    - name: ops
      webhook:
        - url: {hook}/hook
  route:
    receiver: ops
    group_by: [service]
    group_wait: 0s
remediation:
  secret_file: hmac.key
  actions:
    - name: expand-disk
      url: {action}/expand
      body: '{{"service": "{{{{ $labels.service }}}}"}}'
      matchers: ['alertname="ShopDiskFullSoon"']
      cooldown: 0s
"#
    );
    let path = dir.join("prognos.yml");
    std::fs::write(&path, config).unwrap();
    path
}

fn screenshots() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/ui-screenshots")
}

/// Fails on any console message at error level since the last call.
async fn no_console_errors(b: &Browser, page: &str) {
    let errors: Vec<_> = b
        .console()
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.level == "SEVERE" || e.level == "ERROR")
        .map(|e| e.message)
        .collect();
    assert!(errors.is_empty(), "console errors on {page}: {errors:?}");
}

/// Fails if the page contains script, ran one, or turned a label into markup.
async fn nothing_ran(b: &Browser, page: &str) {
    let scripts = b
        .execute("return document.scripts.length", vec![])
        .await
        .unwrap();
    assert_eq!(scripts, serde_json::json!(0), "{page} has a script element");
    let ran = b
        .execute("return typeof window.pwned", vec![])
        .await
        .unwrap();
    assert_eq!(
        ran,
        serde_json::json!("undefined"),
        "{page}: a label ran as script"
    );
    let injected = b.find_all("img[src='x'], b[onmouseover]").await.unwrap();
    assert!(injected.is_empty(), "{page}: a label became markup");
}

/// Fills the page's new-silence form (shop DB, 1 h) with `token` and submits it.
async fn submit_silence(b: &Browser, token: &str) {
    let form = b.find("#new-silence").await.unwrap();
    for (name, text) in [
        ("matchers", "service=\"shop-db\""),
        ("duration", "1h"),
        ("created_by", "browser test"),
        ("comment", "<i>disk work</i>"),
        ("token", token),
    ] {
        let f = form.find(&format!("input[name='{name}']")).await.unwrap();
        f.clear().await.unwrap();
        f.send_keys(text).await.unwrap();
    }
    form.find("button").await.unwrap().click().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_in_a_real_browser() {
    let mut prom = Prometheus::start(&history(now_secs() - 60), &[]);
    let hook = CannedPeer::start(500, "text/plain", "webhook receiver broke").await;
    let action = CannedPeer::start(200, "application/json", "{}").await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(dir.path(), &prom.url, port, &hook.url, &action.url);
    let log = std::fs::File::create(dir.path().join("prognos.log")).unwrap();
    let _prognos = Prognos(
        std::process::Command::new(env!("CARGO_BIN_EXE_prognos"))
            .args(["run", "--config", config.to_str().unwrap()])
            .args([
                "--admin-token-file",
                dir.path().join("admin.token").to_str().unwrap(),
            ])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starts prognos run"),
    );
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let firing = async || {
        let Ok(r) = http.get(format!("{base}/api/v1/alerts")).send().await else {
            return false;
        };
        r.text().await.is_ok_and(|t| t.contains("\"firing\""))
    };
    assert!(
        eventually(120, firing).await,
        "the disk alert did not fire; log:\n{}",
        std::fs::read_to_string(dir.path().join("prognos.log")).unwrap_or_default()
    );
    assert!(
        eventually(60, async || action.requests() >= 1).await,
        "the remediation was not called"
    );
    let shots = screenshots();
    let b = Browser::start(1280, 900)
        .await
        .expect("chromium and chromedriver (scripts/install-deps)");

    // The overview: the firing alert with its ETA, the rule's health.
    b.goto(&format!("{base}/")).await.unwrap();
    assert!(b.title().await.unwrap().contains("Overview"));
    let firing = b
        .find("#count-firing b")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(firing, "1", "one alert fires");
    let rows = b.find_all("tr.alert[data-state='firing']").await.unwrap();
    assert_eq!(rows.len(), 1);
    let eta = b
        .find("tr.alert td.eta")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(eta.starts_with("in ~"), "ETA text: {eta:?}");
    let health = b.find_all("tr.rule[data-health='ok']").await.unwrap();
    assert_eq!(health.len(), 1, "the rule is healthy");
    // The hostile label shows as text, in the anomalous list or the rule page.
    b.screenshot(&shots.join("overview.png")).await.unwrap();
    nothing_ran(&b, "/").await;
    no_console_errors(&b, "/").await;

    // The rule's page lists both series, the hostile label as plain text.
    b.goto(&format!("{base}/rules/storage/ShopDiskFullSoon"))
        .await
        .unwrap();
    let links = b.find_all("a.series-link").await.unwrap();
    assert_eq!(links.len(), 2);
    let mut texts = Vec::new();
    for l in &links {
        texts.push(l.text().await.unwrap());
    }
    assert!(
        texts.iter().any(|t| t.contains(HOSTILE)),
        "the hostile label is shown as text: {texts:?}"
    );
    nothing_ran(&b, "the rule page").await;
    no_console_errors(&b, "the rule page").await;
    // The hostile series' page: its label in the heading and the charts' titles, as text.
    let hostile = {
        let mut href = None;
        for l in &links {
            if l.text().await.unwrap().contains(HOSTILE) {
                href = l.attr("href").await.unwrap();
            }
        }
        href.expect("a link to the hostile series")
    };
    b.goto(&format!("{base}{hostile}")).await.unwrap();
    let h1 = b.find("h1").await.unwrap().text().await.unwrap();
    assert!(h1.contains(HOSTILE), "{h1}");
    // Its history was asked for alone, hostile values and all, and came.
    let source = b
        .find("#history-source")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(source.ends_with("points from Prometheus"), "{source}");
    nothing_ran(&b, "the hostile series' page").await;
    no_console_errors(&b, "the hostile series' page").await;

    // The firing series' page, reached from the overview's alert.
    b.goto(&format!("{base}/")).await.unwrap();
    b.find("tr.alert a.series-link")
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let series_url = b
        .wait_for_url(|u| u.contains("/series/"), WAIT)
        .await
        .unwrap();
    let charts = b.find_all("svg.chart").await.unwrap();
    assert_eq!(charts.len(), 2, "a value chart and a score chart");
    for part in [
        ".line.history",
        ".line.forecast",
        ".band.fan-95",
        ".band.fan-50",
        ".hline.threshold",
        ".span.firing",
        ".marker.eta",
    ] {
        assert!(
            !charts[0].find_all(part).await.unwrap().is_empty(),
            "the value chart has no {part}"
        );
    }
    assert!(!charts[1].find_all(".line.score").await.unwrap().is_empty());
    let why = b.find("#why").await.unwrap().text().await.unwrap();
    assert!(why.contains("Firing since"), "{why}");
    assert!(why.contains("The forecast reaches 88 GB in ~"), "{why}");
    assert!(why.contains("the model expected"), "{why}");
    let eta = b.find("dd.eta").await.unwrap().text().await.unwrap();
    assert!(eta.contains("between"), "the ETA's range: {eta}");
    let model = b.find("dd.model").await.unwrap().text().await.unwrap();
    assert!(model.contains("fitted"), "{model}");
    assert!(
        b.find_all("#stale").await.unwrap().is_empty(),
        "not stale yet"
    );
    b.full_page_screenshot(&shots.join("series.png"))
        .await
        .unwrap();
    nothing_ran(&b, "the series page").await;
    no_console_errors(&b, "the series page").await;
    // On a phone: nothing wider than the screen.
    b.resize_viewport(390, 844).await.unwrap();
    b.goto(&series_url).await.unwrap();
    let fits = b
        .execute(
            "return document.documentElement.scrollWidth <= document.documentElement.clientWidth",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        fits,
        serde_json::json!(true),
        "the series page scrolls sideways on a phone"
    );
    b.full_page_screenshot(&shots.join("series-phone.png"))
        .await
        .unwrap();
    b.resize(1280, 900).await.unwrap();

    // Alerts and silences: a silence created and expired from the page.
    b.goto(&format!("{base}/alerts")).await.unwrap();
    assert_eq!(
        b.find_all("#alerts-active tr.alert").await.unwrap().len(),
        1
    );
    assert!(b.find_all("tr.silence").await.unwrap().is_empty());
    submit_silence(&b, "not-the-token").await;
    b.wait_for_url(|u| u.ends_with("/alerts/silences"), WAIT)
        .await
        .unwrap();
    let refused = b.find("h1").await.unwrap().text().await.unwrap();
    assert_eq!(refused, "Wrong admin token");
    // The refusal is a 401, which the console reports; nothing else.
    let logged = b.console().await.unwrap();
    assert!(
        logged.iter().all(|e| e.message.contains("401")),
        "{:?}",
        logged.iter().map(|e| &e.message).collect::<Vec<_>>()
    );
    b.goto(&format!("{base}/alerts")).await.unwrap();
    assert!(
        b.find_all("tr.silence").await.unwrap().is_empty(),
        "a wrong token changed nothing"
    );
    submit_silence(&b, ADMIN).await;
    // The page posts, then is sent back to /alerts (where it already was).
    let created = eventually(15, async || {
        b.find_all("tr.silence[data-active='true']")
            .await
            .is_ok_and(|v| v.len() == 1)
    })
    .await;
    assert!(created, "the silence is listed");
    assert!(b.current_url().await.unwrap().contains("/alerts?created="));
    let flash = b.find("#flash").await.unwrap().text().await.unwrap();
    assert!(
        flash.starts_with("Silence ") && flash.ends_with(" created."),
        "{flash}"
    );
    let silences = b.find_all("tr.silence[data-active='true']").await.unwrap();
    assert_eq!(silences.len(), 1, "the silence is listed");
    let muted = b
        .find("#alerts-active tr.alert")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        muted.contains("silenced"),
        "the alert shows as silenced: {muted}"
    );
    let row = silences[0].text().await.unwrap();
    assert!(
        row.contains("service=\"shop-db\"") && row.contains("<i>disk work</i>"),
        "{row}"
    );
    b.screenshot(&shots.join("alerts.png")).await.unwrap();
    nothing_ran(&b, "/alerts").await;
    no_console_errors(&b, "/alerts").await;
    let expire = b.find("form.expire").await.unwrap();
    expire.find_all("input[name='token']").await.unwrap()[0]
        .send_keys(ADMIN)
        .await
        .unwrap();
    expire.find_all("button").await.unwrap()[0]
        .click()
        .await
        .unwrap();
    assert!(
        eventually(15, async || b
            .find_all("tr.silence[data-active='true']")
            .await
            .is_ok_and(|v| v.is_empty()))
        .await,
        "the silence was expired"
    );
    let flash = b.find("#flash").await.unwrap().text().await.unwrap();
    assert!(flash.ends_with(" expired."), "{flash}");
    let api = http
        .get(format!("{base}/api/v1/silences"))
        .send()
        .await
        .unwrap();
    let api: serde_json::Value = api.json().await.unwrap();
    assert_eq!(api["data"].as_array().map(Vec::len), Some(1), "{api}");

    // Deliveries: the failing webhook waits in the outbox, the remediation's audit.
    b.goto(&format!("{base}/deliveries")).await.unwrap();
    let outbox = b.find("#outbox").await.unwrap().text().await.unwrap();
    assert!(outbox.contains("ops"), "{outbox}");
    let audit = b.find("#audit").await.unwrap().text().await.unwrap();
    assert!(
        audit.contains("expand-disk") && audit.contains("sent"),
        "{audit}"
    );
    b.screenshot(&shots.join("deliveries.png")).await.unwrap();
    nothing_ran(&b, "/deliveries").await;
    no_console_errors(&b, "/deliveries").await;

    // Unknown series, rule and page: 404 pages that list what exists.
    for path in [
        "/series/0123456789abcdef",
        "/rules/storage/Nope",
        "/nowhere",
    ] {
        let r = http.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), 404, "{path}");
        b.goto(&format!("{base}{path}")).await.unwrap();
        assert_eq!(
            b.find("h1").await.unwrap().text().await.unwrap(),
            "Not found"
        );
        let listed = b.find("#rules").await.unwrap().text().await.unwrap();
        assert!(
            listed.contains("storage/ShopDiskFullSoon"),
            "{path}: {listed}"
        );
        // The console reports the page's own 404, and nothing else.
        let logged = b.console().await.unwrap();
        assert!(
            logged
                .iter()
                .all(|e| e.message.contains("404") && e.message.contains(path)),
            "{path}: {:?}",
            logged.iter().map(|e| &e.message).collect::<Vec<_>>()
        );
    }

    // Prometheus goes away: the series page shows the last predictions, stale.
    prom.stop();
    let r = http.get(&series_url).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    b.goto(&series_url).await.unwrap();
    let stale = b.find("#stale").await.unwrap().text().await.unwrap();
    assert!(stale.starts_with("Stale since"), "{stale}");
    let charts = b.find_all("svg.chart").await.unwrap();
    assert_eq!(charts.len(), 2);
    assert!(
        !charts[0]
            .find_all(".line.forecast")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        !charts[0]
            .find_all(".line.history")
            .await
            .unwrap()
            .is_empty()
    );
    b.full_page_screenshot(&shots.join("series-stale.png"))
        .await
        .unwrap();
    no_console_errors(&b, "the stale series page").await;
    b.goto(&format!("{base}/")).await.unwrap();
    assert!(b.title().await.unwrap().contains("Overview"));
    b.quit().await.unwrap();
}
