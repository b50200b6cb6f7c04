//! The rule loop on paused time and an in-memory source.

use super::*;

/// Keeps every alert sent.
#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<prognos_notifiers::alert::AlertInfo>>);

impl AlertSink for Recorder {
    fn send(&self, alerts: &[prognos_notifiers::alert::AlertInfo]) {
        self.0.lock().unwrap().extend_from_slice(alerts);
    }
}

impl Recorder {
    /// (alertname, status) of every alert sent, in order.
    fn sent(&self) -> Vec<(String, String)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .map(|a| (a.name().to_string(), format!("{:?}", a.status)))
            .collect()
    }
}

/// A configuration in `dir` with one rule per name, each firing at once
/// on `queue_ready` (10, over a threshold of 5).
fn config_with(dir: &std::path::Path, names: &[&str]) -> Config {
    let mut rules = String::from("groups:\n  - name: g\n    interval: 1m\n    rules:\n");
    for n in names {
        rules.push_str(&format!(
            "      - alert: {n}\n        expr: queue_ready\n        history: 1h\n        step: 1m\n        model: naive\n        condition:\n          forecast: {{threshold: 5, direction: above, within: 5m}}\n        for: 0s\n"
        ));
    }
    std::fs::write(dir.join("rules.yml"), rules).unwrap();
    let main = dir.join("prognos.yml");
    std::fs::write(
        &main,
        "global:\n  prometheus:\n    url: http://127.0.0.1:9\n  state_dir: .state\nrule_files: [rules.yml]\n",
    )
    .unwrap();
    crate::config::load(&main).unwrap_or_else(|e| panic!("{e}"))
}

fn engine(config: Config, store: &Arc<AlertStore>, sink: &Arc<Recorder>, end: i64) -> Engine {
    let labels: Labels = [("__name__", "queue_ready"), ("queue", "q")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let samples = (0..120).map(|k| (end - 7200 + 60 * k, 10.0)).collect();
    let source = crate::source::memory::MemorySource::new(vec![(labels, samples)], end);
    Engine::new(
        config,
        Shard::default(),
        source,
        store.clone(),
        sink.clone(),
        Arc::new(Metrics::new()),
    )
    .unwrap()
}

#[tokio::test]
async fn an_evaluation_that_changes_no_alert_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let end = 1_800_000_000 / 60 * 60;
    let store = Arc::new(AlertStore::open(&dir.path().join("s.redb")).unwrap());
    let sink = Arc::new(Recorder::default());
    let mut config = config_with(dir.path(), &["Quiet"]);
    // A threshold the queue never nears: no alert, ever.
    for g in &mut config.groups {
        for r in &mut g.rules {
            if let Condition::Forecast { threshold, .. } = &mut r.condition {
                *threshold = 1e9;
            }
        }
    }
    let e = engine(config, &store, &sink, end);
    e.evaluate_all(end).await;
    e.evaluate_all(end + 60).await;
    assert!(sink.sent().is_empty());
    assert!(
        store.load_all().unwrap().is_empty(),
        "a rule without alerts was written to the store"
    );
}

/// A source whose range queries wait for a permit while `hold` is set.
struct Gated {
    inner: crate::source::memory::MemorySource,
    hold: std::sync::atomic::AtomicBool,
    entered: tokio::sync::Notify,
    release: tokio::sync::Semaphore,
}

impl Source for Gated {
    fn query_range<'a>(
        &'a self,
        expr: &'a str,
        start: i64,
        end: i64,
        step: i64,
    ) -> crate::source::SourceFuture<'a, crate::prom::QueryResult<Vec<RangeSeries>>> {
        Box::pin(async move {
            if self.hold.load(Ordering::SeqCst) {
                self.entered.notify_one();
                let _permit = self.release.acquire().await;
            }
            self.inner.query_range(expr, start, end, step).await
        })
    }

    fn query<'a>(
        &'a self,
        expr: &'a str,
        time: Option<i64>,
    ) -> crate::source::SourceFuture<'a, crate::prom::QueryResult<Vec<crate::prom::InstantSample>>>
    {
        self.inner.query(expr, time)
    }
}

/// A rule's life as a step table on paused time — pending, firing, a
/// reload that removes it, a restart — run once without a fault and
/// once with a store failure at each step in turn: every run announces
/// the alert firing once and resolved once, in that order.
#[tokio::test(start_paused = true)]
async fn a_rules_life_announces_each_transition_once_whatever_write_fails() {
    const STEPS: usize = 6;
    let end = 1_800_000_000 / 60 * 60;
    for fail_at in (0..STEPS).map(Some).chain([None]) {
        let dir = tempfile::tempdir().unwrap();
        let mut names = vec!["Life"];
        let with_for = |names: &[&str]| {
            let c = config_with(dir.path(), names);
            let rules = std::fs::read_to_string(dir.path().join("rules.yml")).unwrap();
            std::fs::write(
                dir.path().join("rules.yml"),
                rules.replace("for: 0s", "for: 2m"),
            )
            .unwrap();
            let _ = c;
            crate::config::load(&dir.path().join("prognos.yml")).unwrap()
        };
        let store = Arc::new(AlertStore::open(&dir.path().join("s.redb")).unwrap());
        let sink = Arc::new(Recorder::default());
        let mut e = engine(with_for(&names), &store, &sink, end);
        // The fault hits the step's first write (a failed read at
        // start-up stops prognos instead).
        let fault = |step: usize| {
            if fail_at == Some(step) {
                store.inject_faults(1);
            }
        };
        for step in 0..STEPS {
            let t = end + 60 * step as i64;
            match step {
                // Pending at 0, firing from 2 minutes on.
                0..=3 => {
                    fault(step);
                    e.evaluate_all(t).await;
                }
                // A reload removes the rule.
                4 => {
                    names.clear();
                    names.push("Other");
                    let new = engine(with_for(&names), &store, &sink, end);
                    fault(step);
                    new.carry_over(&e, t).await;
                    new.resolve_removed_rules(t).await;
                    e = new;
                }
                // A restart with the rule still gone.
                _ => {
                    drop(e);
                    e = engine(with_for(&names), &store, &sink, end);
                    fault(step);
                    e.resolve_removed_rules(t).await;
                }
            }
            tokio::time::advance(Duration::from_secs(60)).await;
        }
        let life: Vec<_> = sink
            .sent()
            .into_iter()
            .filter(|(n, _)| n == "Life")
            .collect();
        assert_eq!(
            life,
            [
                ("Life".to_string(), "Firing".to_string()),
                ("Life".to_string(), "Resolved".to_string())
            ],
            "a store failure at step {fail_at:?}"
        );
    }
}

/// Finding 7 of issue 11: a failed write of the alert state dropped the
/// evaluation's transitions for good (the state had moved on), and the
/// store was never reopened. Now the transition is held back, found
/// again once the store is back, and announced once.
#[tokio::test(start_paused = true)]
async fn a_failed_state_write_holds_transitions_back_and_loses_none() {
    let dir = tempfile::tempdir().unwrap();
    let end = 1_700_000_000 / 60 * 60;
    let store = Arc::new(AlertStore::open(&dir.path().join("state.redb")).unwrap());
    let sink = Arc::new(Recorder::default());
    let e = engine(config_with(dir.path(), &["Full"]), &store, &sink, end);
    store.inject_faults(1);
    e.evaluate_all(end).await;
    assert!(sink.sent().is_empty(), "announced without being saved");
    assert!(!e.store_healthy());
    assert!(
        e.metrics
            .encode()
            .contains(r#"prognos_errors_total{rule="g/Full",kind="store"} 1"#)
    );
    // Still closed on the next slot: held back again, not lost.
    e.evaluate_all(end + 60).await;
    assert!(sink.sent().is_empty());
    tokio::time::advance(prognos_notifiers::database::REOPEN_FIRST).await;
    assert!(e.store_healthy());
    e.evaluate_all(end + 120).await;
    e.evaluate_all(end + 180).await;
    assert_eq!(sink.sent(), [("Full".to_string(), "Firing".to_string())]);
    // What was announced is what a restart finds.
    drop(e);
    let again = engine(config_with(dir.path(), &["Full"]), &store, &sink, end);
    again.evaluate_all(end + 240).await;
    assert_eq!(sink.sent().len(), 1, "announced twice after a restart");
}

/// Finding 1 of issue 11: a rule waiting on Prometheus held its lock, and
/// every reader (the API, `/-/ready`) and every other group waited with it.
#[tokio::test(start_paused = true)]
async fn nothing_waits_for_a_rule_whose_query_hangs() {
    let dir = tempfile::tempdir().unwrap();
    let end = 1_700_000_000 / 60 * 60;
    let config = config_with(dir.path(), &["Slow", "Other"]);
    let store = Arc::new(AlertStore::open(&dir.path().join("state.redb")).unwrap());
    let sink = Arc::new(Recorder::default());
    let labels: Labels = [("__name__", "queue_ready"), ("queue", "q")]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let samples = (0..120).map(|k| (end - 7200 + 60 * k, 10.0)).collect();
    let gated = Arc::new(Gated {
        inner: crate::source::memory::MemorySource::new(vec![(labels, samples)], end),
        hold: std::sync::atomic::AtomicBool::new(true),
        entered: tokio::sync::Notify::new(),
        release: tokio::sync::Semaphore::new(0),
    });
    let engine = Arc::new(
        Engine::new(
            config,
            Shard::default(),
            gated.clone(),
            store,
            sink.clone(),
            Arc::new(Metrics::new()),
        )
        .unwrap(),
    );
    let (slow, other) = (engine.rules[0].clone(), engine.rules[1].clone());
    let running = tokio::spawn({
        let (engine, slow) = (engine.clone(), slow.clone());
        async move { engine.evaluate_rule(&slow, end).await }
    });
    gated.entered.notified().await;
    gated.hold.store(false, Ordering::SeqCst);
    // While its query hangs: its lock is free, its view readable, and the
    // other rule is evaluated to the end.
    let free = tokio::time::timeout(Duration::from_secs(5), slow.lock()).await;
    assert!(free.is_ok(), "the rule's lock is held across its query");
    drop(free);
    assert_eq!(slow.view().last_eval, None);
    engine.evaluate_rule(&other, end).await;
    let o = other.view();
    assert_eq!(
        (o.last_eval, o.series.len(), o.alerts.len()),
        (Some(end), 1, 1)
    );
    assert!(!running.is_finished());
    // Released, it finishes and publishes what it found.
    gated.release.add_permits(1);
    running.await.unwrap();
    let v = slow.view();
    assert_eq!(
        (v.last_eval, v.series.len(), v.alerts.len()),
        (Some(end), 1, 1)
    );
    assert_eq!(v.health, Health::Ok);
    assert_eq!(sink.sent().len(), 2);
}

#[tokio::test]
async fn a_rule_removed_by_a_reload_or_while_stopped_resolves_its_alerts_once() {
    let dir = tempfile::tempdir().unwrap();
    let end = 1_800_000_000 / 60 * 60;
    let firing = |n: &str| (n.to_string(), "Firing".to_string());
    let resolved = |n: &str| (n.to_string(), "Resolved".to_string());

    // A reload removes `Gone` while it fires.
    let store = Arc::new(AlertStore::open(&dir.path().join("a.redb")).unwrap());
    let sink = Arc::new(Recorder::default());
    let old = engine(
        config_with(dir.path(), &["Kept", "Gone"]),
        &store,
        &sink,
        end,
    );
    old.evaluate_all(end).await;
    assert_eq!(sink.sent(), [firing("Kept"), firing("Gone")]);
    let new = engine(config_with(dir.path(), &["Kept"]), &store, &sink, end);
    new.carry_over(&old, end + 60).await;
    new.resolve_removed_rules(end + 60).await;
    assert_eq!(
        sink.sent()[2..],
        [resolved("Gone")],
        "resolved once, by the reload"
    );
    assert!(
        store
            .load_all()
            .unwrap()
            .iter()
            .all(|(id, _)| id != "g/Gone")
    );

    // Removed while prognos was stopped: resolved once at the next start.
    let store = Arc::new(AlertStore::open(&dir.path().join("b.redb")).unwrap());
    let sink = Arc::new(Recorder::default());
    engine(
        config_with(dir.path(), &["Kept", "Gone"]),
        &store,
        &sink,
        end,
    )
    .evaluate_all(end)
    .await;
    let restarted = engine(config_with(dir.path(), &["Kept"]), &store, &sink, end);
    restarted.resolve_removed_rules(end + 60).await;
    restarted.resolve_removed_rules(end + 120).await;
    engine(config_with(dir.path(), &["Kept"]), &store, &sink, end)
        .resolve_removed_rules(end + 180)
        .await;
    assert_eq!(sink.sent()[2..], [resolved("Gone")]);
}

#[test]
fn a_caught_panic_keeps_its_message() {
    let formatted = std::panic::catch_unwind(|| panic!("fit failed at {}", 7)).unwrap_err();
    assert_eq!(panic_message(formatted.as_ref()), "fit failed at 7");
    let plain = std::panic::catch_unwind(|| panic!("plain")).unwrap_err();
    assert_eq!(panic_message(plain.as_ref()), "plain");
}

#[test]
fn shards_partition_the_series() {
    let keys: Vec<String> = (0..1000)
        .map(|i| format!("instance=\"host{i}\","))
        .collect();
    let a = Shard { index: 0, count: 2 };
    let b = Shard { index: 1, count: 2 };
    let (na, nb) = (
        keys.iter().filter(|k| owns(a, k)).count(),
        keys.iter().filter(|k| owns(b, k)).count(),
    );
    assert_eq!(na + nb, 1000);
    assert!(na > 400 && nb > 400, "{na} / {nb}");
    assert!(keys.iter().all(|k| owns(a, k) != owns(b, k)));
    assert!(keys.iter().all(|k| owns(Shard { index: 0, count: 1 }, k)));
}

#[test]
fn a_dropped_series_stays_dropped_until_it_has_a_newer_sample() {
    let mut dropped = HashMap::new();
    dropped.insert("queue=\"mes.work\",".to_string(), 1_000);
    let key = "queue=\"mes.work\",";
    // A full-history query returns its old samples: not back.
    let old = [(700, 5.0), (850, 6.0), (1_000, 7.0)];
    assert!(!is_back(&dropped, key, &old));
    assert!(!is_back(&dropped, key, &[]));
    // A gap marker after the drop is no return either.
    assert!(!is_back(&dropped, key, &[(1_000, 7.0), (1_060, f64::NAN)]));
    // A new sample is.
    assert!(is_back(&dropped, key, &[(1_000, 7.0), (1_060, 1.0)]));
    // Other series are unaffected.
    assert!(is_back(&dropped, "queue=\"mes.dead\",", &old));
}

#[test]
fn drops_are_forgotten_once_out_of_history_reach() {
    let mut dropped: HashMap<String, i64> =
        [("a".to_string(), 1_000), ("b".to_string(), 5_000)].into();
    forget_old_drops(&mut dropped, 8_000, 3_000);
    assert_eq!(dropped.keys().collect::<Vec<_>>(), ["b"]);
}

#[test]
fn align_floors_to_the_step() {
    assert_eq!(align(1000, 300), 900);
    assert_eq!(align(-1, 300), -300);
}
