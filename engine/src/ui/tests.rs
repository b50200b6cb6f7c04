//! The pages through the router, without a socket: escaping of hostile
//! labels and annotations, 404 pages that list what exists, the headers,
//! and forms that change nothing without the token. The browser test
//! (`tests/ui_browser.rs`) covers the same pages in Chromium.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use prognos_notifiers::secret::Secret;
use tokio::sync::{RwLock, mpsc};
use tower::ServiceExt;

use crate::alert::{AlertStore, LogSink};
use crate::config::Shard;
use crate::exposition::Metrics;
use crate::http_state::{AppState, ServerState};
use crate::modelled::Labels;
use crate::scheduler::Engine;
use crate::source::memory::MemorySource;

const HOSTILE: &str = "<script>alert(1)</script>\"'&";
const STEP: i64 = 300;

/// An engine with two disks, one filling towards its limit (firing) and
/// one with a hostile label, evaluated once at `end`.
async fn engine(dir: &std::path::Path, end: i64) -> Engine {
    std::fs::write(
        dir.join("rules.yml"),
        "groups:\n  - name: storage\n    rules:\n      - alert: DiskFullSoon\n        expr: disk_used_bytes\n        history: 2d\n        step: 5m\n        model: linear\n        horizons: [1h]\n        condition:\n          time_to_threshold: {threshold: 100, direction: above, less_than: 1d}\n        for: 0s\n        annotations:\n          summary: \"<b onclick=x>{{ $labels.mount }}</b>\"\n",
    )
    .unwrap();
    let main = dir.join("prognos.yml");
    std::fs::write(
        &main,
        "global:\n  prometheus:\n    url: http://127.0.0.1:9\n  state_dir: .state\nrule_files: [rules.yml]\n",
    )
    .unwrap();
    let config = crate::config::load(&main).unwrap_or_else(|e| panic!("{e}"));
    let series = |mount: &str, per_step: f64| {
        let labels: Labels = [("__name__", "disk_used_bytes"), ("mount", mount)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let samples = (0..576)
            .map(|k| (end - 575 * STEP + k * STEP, 10.0 + per_step * k as f64))
            .collect();
        (labels, samples)
    };
    let store = Arc::new(AlertStore::open(&dir.join("state.redb")).unwrap());
    let e = Engine::new(
        config,
        Shard::default(),
        MemorySource::new(vec![series("/data", 0.15), series(HOSTILE, 0.0)], end),
        store,
        Arc::new(LogSink),
        Arc::new(Metrics::new()),
    )
    .unwrap();
    e.evaluate_all(end).await;
    e
}

fn state(e: Engine, token: Option<&str>) -> AppState {
    Arc::new(ServerState {
        engine: RwLock::new(Arc::new(e)),
        reload: token.map(|t| (Secret::new(t), mpsc::channel(1).0)),
        notify: None,
    })
}

async fn get(s: &AppState, path: &str) -> (StatusCode, axum::http::HeaderMap, String) {
    let r = crate::server::app(s.clone())
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let (parts, body) = r.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 24).await.unwrap();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

async fn post_form(s: &AppState, path: &str, form: &str) -> StatusCode {
    crate::server::app(s.clone())
        .oneshot(
            Request::post(path)
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(Body::from(form.to_string()))
                .unwrap(),
        )
        .await
        .unwrap()
        .status()
}

fn series_ids(e: &Engine) -> Vec<(String, Labels)> {
    e.rules[0]
        .view()
        .series
        .iter()
        .map(|s| (s.id.clone(), s.labels.clone()))
        .collect()
}

#[tokio::test]
async fn every_page_escapes_labels_and_annotations() {
    let dir = tempfile::tempdir().unwrap();
    let e = engine(dir.path(), 1_800_000_000 / STEP * STEP).await;
    let ids = series_ids(&e);
    assert_eq!(ids.len(), 2);
    assert_eq!(e.rules[0].view().alerts.len(), 1, "the filling disk fires");
    let s = state(e, Some("a-token-of-enough-length"));
    let mut pages = vec![
        "/".to_string(),
        "/rules/storage/DiskFullSoon".to_string(),
        "/alerts".to_string(),
        "/deliveries".to_string(),
    ];
    pages.extend(ids.iter().map(|(id, _)| format!("/series/{id}")));
    for page in &pages {
        let (status, headers, body) = get(&s, page).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert!(
            !body.contains("<script") && !body.contains("<b onclick"),
            "{page} lets markup through"
        );
        let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("default-src 'none'"), "{page}: {csp}");
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    }
    // The hostile series' page names it, escaped, in HTML and in the SVG.
    let hostile = &ids.iter().find(|(_, l)| l["mount"] == HOSTILE).unwrap().0;
    let (_, _, body) = get(&s, &format!("/series/{hostile}")).await;
    assert!(body.contains("&lt;script&gt;alert(1)&lt;/script&gt;&quot;'&amp;"));
    assert!(body.contains("<svg"), "the charts are there");
    // The overview shows the firing alert's summary as text.
    let (_, _, body) = get(&s, "/").await;
    assert!(
        body.contains("&lt;b onclick=x&gt;/data&lt;/b&gt;"),
        "{body}"
    );
    assert!(body.contains("data-state=\"firing\""));
}

#[tokio::test]
async fn unknown_series_rules_and_pages_get_a_404_that_lists_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    let s = state(engine(dir.path(), 1_800_000_000 / STEP * STEP).await, None);
    for path in [
        "/series/0000000000000000",
        "/rules/storage/Nope",
        "/nowhere",
        "/series?rule=storage/Nope",
        "/series?rule=storage/DiskFullSoon&mount=/nope",
    ] {
        let (status, headers, body) = get(&s, path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert!(
            headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        assert!(
            body.contains("href=\"/rules/storage/DiskFullSoon\""),
            "{path}: {body}"
        );
    }
    // An API path keeps a JSON answer.
    let (status, headers, _) = get(&s, "/api/v1/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    // Grafana's links find a series by its rule and labels.
    let (status, headers, _) = get(&s, "/series?rule=storage/DiskFullSoon&mount=/data").await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(
        headers[header::LOCATION]
            .to_str()
            .unwrap()
            .starts_with("/series/")
    );
}

#[tokio::test]
async fn silence_forms_change_nothing_without_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let end = 1_800_000_000 / STEP * STEP;
    let form = "token=wrong-token-xxxxxxxx&matchers=mount%3D%22%2Fdata%22&duration=1h";
    // Changes off: refused whatever the token.
    let off = state(engine(dir.path(), end).await, None);
    assert_eq!(
        post_form(&off, "/alerts/silences", form).await,
        StatusCode::FORBIDDEN
    );
    let dir = tempfile::tempdir().unwrap();
    let on = state(engine(dir.path(), end).await, Some("the-right-token-123"));
    assert_eq!(
        post_form(&on, "/alerts/silences", form).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        post_form(&on, "/alerts/silences/abc/expire", "token=").await,
        StatusCode::UNAUTHORIZED
    );
    // A form without its token field is a client error, not a change.
    assert!(
        post_form(&on, "/alerts/silences", "matchers=x")
            .await
            .is_client_error()
    );
    // The right token, but nothing to silence: notifications are off.
    let right = "token=the-right-token-123&matchers=mount%3D%22%2Fdata%22&duration=1h";
    assert_eq!(
        post_form(&on, "/alerts/silences", right).await,
        StatusCode::NOT_FOUND
    );
}
