//! The durable outbox on this machine's disk (redb, default `Immediate`
//! durability: every commit is fsynced).
//!
//! 1. Latency of one durable `enqueue` of a single realistic notification
//!    (one alert whose explanation carries 100 history points): 2,000 writes.
//! 2. Throughput of the delivery cycle: 1,000 entries enqueued in one batch,
//!    read back with `due`, then acknowledged one by one (a commit each, as
//!    the worker does), with the CPU time it cost per entry.
//!
//! `cargo bench --bench outbox`

use std::time::{Duration, Instant};

use prognos_notifiers::alert::{AlertInfo, Eta, Explanation, ForecastPoint, Notification, Status};
use prognos_notifiers::route::GroupRows;
use prognos_notifiers::store::{Delivery, NotifyStore, OutboxEntry};

const WRITES: usize = 2000;
const BATCH: usize = 1000;

/// CPU time of this (single-threaded) process: user + system.
fn cpu_time() -> Duration {
    // schedstat: nanoseconds on the CPU; stat: clock ticks (10 ms) as a fallback.
    if let Ok(s) = std::fs::read_to_string("/proc/self/schedstat")
        && let Some(ns) = s.split_whitespace().next().and_then(|v| v.parse().ok())
        && ns > 0
    {
        return Duration::from_nanos(ns);
    }
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    Duration::from_millis(f.iter().sum::<u64>() * 10)
}

fn notification(i: usize, now: i64) -> Notification {
    let history = (0..100)
        .map(|k| {
            (
                now - 6000 + k * 60,
                1200.0 + (k as f64 * 0.3).sin() * 40.0 + k as f64,
            )
        })
        .collect();
    let forecast = (1..=24)
        .map(|k| ForecastPoint {
            t: now + k * 300,
            mean: 1300.0 + k as f64 * 4.0,
            lower: 1250.0 + k as f64 * 3.0,
            upper: 1350.0 + k as f64 * 5.0,
        })
        .collect();
    let labels = [
        ("alertname", "MesQueueBacklogSoon"),
        ("service", "mes-api"),
        ("instance", "mes-api-7f9c:9100"),
        ("severity", "warning"),
        ("team", "manufacturing"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let annotations = [
        ("summary", "MES queue backlog reaches 5,000 in ~3h 10m"),
        (
            "description",
            "The order queue of mes-api grows by ~180/h; at this rate it reaches the 5,000 threshold in ~3h 10m (between 2h 20m and 4h 45m).",
        ),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    Notification {
        key: format!("{i:016x}"),
        receiver: "ops-telegram".to_string(),
        group_key: "{}/{service=\"mes-api\"}:{alertname=\"MesQueueBacklogSoon\"}".to_string(),
        group_labels: [("alertname".to_string(), "MesQueueBacklogSoon".to_string())].into(),
        alerts: vec![AlertInfo {
            rule: "mes/MesQueueBacklogSoon".to_string(),
            labels,
            annotations,
            status: Status::Firing,
            starts_at: now - 120,
            ends_at: None,
            value: 11_400.0,
            generator_url: "https://prognos.example/api/v1/forecast?series=mes_queue_depth"
                .to_string(),
            explanation: Some(Explanation {
                condition: "time_to_threshold".to_string(),
                expr: "sum by (service, instance) (mes_queue_depth{service=\"mes-api\"})"
                    .to_string(),
                current: Some(1320.0),
                expected: Some(1290.0),
                band: Some((1240.0, 1340.0)),
                level: Some(0.95),
                threshold: Some(5000.0),
                eta: Some(Eta {
                    seconds: 11_400.0,
                    earliest: Some(8400.0),
                    latest: Some(17_100.0),
                    text: "in ~3h 10m (between 2h 20m and 4h 45m)".to_string(),
                }),
                anomaly_score: None,
                dashboard_url: Some("https://grafana.example/d/mes?viewPanel=4".to_string()),
                history,
                forecast,
            }),
        }],
        created_at: now,
        external_url: "https://prognos.example".to_string(),
    }
}

fn entry(i: usize, now: i64) -> OutboxEntry {
    let n = notification(i, now);
    OutboxEntry {
        id: format!("ops-telegram/{}", n.key),
        target: "ops-telegram".to_string(),
        key: n.key.clone(),
        delivery: Delivery::Notify(n),
        created_at: now,
        next_attempt_at: now,
        attempts: 0,
        progress: 0,
        last_error: None,
        in_flight: false,
    }
}

/// Latencies of `WRITES` raw writes of `size` bytes, each followed by fdatasync.
fn fsync_baseline(path: &std::path::Path, size: usize) -> Vec<Duration> {
    use std::os::unix::fs::FileExt as _;
    let file = std::fs::File::create(path).expect("probe file");
    let buf = vec![0x5au8; size.max(1)];
    (0..WRITES)
        .map(|i| {
            let t = Instant::now();
            file.write_all_at(&buf, ((i % 64) * buf.len()) as u64)
                .expect("probe write");
            file.sync_data().expect("probe sync");
            t.elapsed()
        })
        .collect()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    // On the project's disk (not a tmpfs /tmp), so fsync is real.
    let base = std::env::var_os("CARGO_TARGET_TMPDIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&base).ok();
    let dir = tempfile::tempdir_in(&base).expect("temporary directory");
    let now = 1_700_000_000;
    let size = serde_json::to_string(&entry(0, now)).map_or(0, |s| s.len());

    // 0. The disk's own fsync latency, the floor under every durable commit.
    let mut base_lat = fsync_baseline(&dir.path().join("fsync.probe"), size);

    // 1. Latency of single durable writes.
    let store = NotifyStore::open(&dir.path().join("latency.redb")).expect("open store");
    let entries: Vec<OutboxEntry> = (0..WRITES).map(|i| entry(i, now)).collect();
    // The flushed group's row commits with its notification, as in the notifier.
    let group = GroupRows {
        groups: vec![(
            "0:ops:service=\"api\"".to_string(),
            Some("{\"alerts\":{}}".to_string()),
        )],
        next_serial: 1,
    };
    let mut lat = Vec::with_capacity(WRITES);
    let write_cpu0 = cpu_time();
    for e in &entries {
        let t = Instant::now();
        let added = store
            .enqueue_with_audit(std::slice::from_ref(e), &[], Some(&group), &[])
            .expect("enqueue");
        lat.push(t.elapsed());
        assert_eq!(added, 1);
    }
    let write_cpu = cpu_time().saturating_sub(write_cpu0);
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1];
    println!(
        "outbox write durable: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({WRITES} writes, {size} B entry, a group row in the same commit; {:.3} CPU ms per write)",
        ms(pct(0.50)),
        ms(pct(0.99)),
        ms(lat[lat.len() - 1]),
        ms(write_cpu) / WRITES as f64,
    );
    drop(store);
    base_lat.sort();
    let bpct = |p: f64| {
        base_lat[((base_lat.len() as f64 * p).ceil() as usize).clamp(1, base_lat.len()) - 1]
    };
    println!(
        "disk baseline (write {size} B + fdatasync, same directory): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({WRITES} syncs)",
        ms(bpct(0.50)),
        ms(bpct(0.99)),
        ms(base_lat[base_lat.len() - 1]),
    );

    // 2. The delivery cycle: one batch enqueue, due, acknowledge each.
    let store = NotifyStore::open(&dir.path().join("cycle.redb")).expect("open store");
    let entries: Vec<OutboxEntry> = (0..BATCH).map(|i| entry(i, now)).collect();
    let cpu0 = cpu_time();
    let t0 = Instant::now();
    let added = store.enqueue(&entries, &[]).expect("enqueue batch");
    let t_enqueue = t0.elapsed();
    let t1 = Instant::now();
    let due = store.due(now, BATCH).expect("due");
    let t_due = t1.elapsed();
    let t2 = Instant::now();
    for e in &due {
        store.acknowledge(&e.id, now + 1).expect("acknowledge");
    }
    let t_ack = t2.elapsed();
    let wall = t0.elapsed();
    let cpu = cpu_time().saturating_sub(cpu0);
    assert_eq!((added, due.len()), (BATCH, BATCH));
    assert_eq!(store.depth().expect("depth"), (0, None));
    println!(
        "outbox cycle (1 batch enqueue + due + {BATCH} acknowledges): {:.0} entries/s, {:.3} CPU ms per entry; enqueue {:.1} ms, due {:.1} ms, acknowledge {:.2} ms each",
        BATCH as f64 / wall.as_secs_f64(),
        ms(cpu) / BATCH as f64,
        ms(t_enqueue),
        ms(t_due),
        ms(t_ack) / BATCH as f64,
    );
}
