//! What incidents do while active. Each effect runs until its
//! [`Lease`] ends (stopped, replaced or expired).
//!
//! | kind | effect |
//! | --- | --- |
//! | `memory_leak` | retains ~intensity × 2 MiB/s more memory, every byte written so RSS really grows (in 64 MiB mmap-backed chunks, so it is returned to the OS at the end); capped by `--max-leak-mib` |
//! | `cpu_saturation` | ~intensity cores (at most `--max-cpu-cores`) busy in OS threads, duty-cycled for fractions |
//! | `http_500_storm` | nothing here: the API middleware fails a share [`storm_fraction`](crate::incident::storm_fraction) of requests |
//! | `stalled_consumer` | the MES consumer watches the incident (see [`mes`](crate::mes)); here a `system` producer creates work orders at ~intensity × 20/s so the backlog grows even without load |
//! | `db_growth` | inserts incompressible 8 KiB rows into `bulk_audit` at ~intensity × 1 MiB/s |
//! | `s3_growth` | PUTs incompressible objects under `images/growth/` at ~intensity × 1 MiB/s |

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rand::Rng;
use rand::distr::{Alphanumeric, SampleString};
use tokio::sync::Semaphore;
use tokio::time::MissedTickBehavior;

use crate::api::AppState;
use crate::incident::{IncidentKind, Lease};
use crate::mes::{self, NewWorkOrder};
use crate::throttle::LogThrottle;

const MIB: f64 = 1024.0 * 1024.0;

/// Padding table written by `db_growth` (Shop and MES). `STORAGE EXTERNAL`
/// stores the text uncompressed, so the bytes written are the bytes used.
pub const BULK_AUDIT_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS bulk_audit (
    id         BIGSERIAL PRIMARY KEY,
    source     TEXT NOT NULL,
    payload    TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
ALTER TABLE bulk_audit ALTER COLUMN payload SET STORAGE EXTERNAL;
"#;

/// Starts the effect of `kind` for as long as `lease` lives.
pub fn launch(state: &AppState, kind: IncidentKind, intensity: f64, lease: Lease) {
    tracing::info!(%kind, intensity, "incident started");
    match kind {
        IncidentKind::MemoryLeak => {
            tokio::spawn(memory_leak(intensity, state.limits.max_leak_bytes, lease));
        }
        IncidentKind::CpuSaturation => {
            cpu_saturation(intensity.min(state.limits.max_cpu_cores), lease);
        }
        IncidentKind::Http500Storm => {}
        IncidentKind::StalledConsumer => {
            tokio::spawn(system_producer(state.clone(), intensity, lease));
        }
        IncidentKind::DbGrowth => {
            tokio::spawn(db_growth(state.clone(), intensity, lease));
        }
        IncidentKind::S3Growth => {
            tokio::spawn(s3_growth(state.clone(), intensity, lease));
        }
    }
}

/// Waits for the next tick of `period` while `lease` lives (checking it at
/// least every second); `false` once it has ended.
async fn next_tick(tick: &mut tokio::time::Interval, lease: &Lease) -> bool {
    loop {
        if !lease.live() {
            return false;
        }
        tokio::select! {
            _ = tick.tick() => return lease.live(),
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

fn interval(period: Duration) -> tokio::time::Interval {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    tick
}

/// Size of one retained chunk: above glibc's largest mmap threshold, so
/// each chunk is its own mapping and freeing it returns the memory.
pub const LEAK_CHUNK: usize = 64 << 20;

/// Memory retained by a `memory_leak`.
#[derive(Debug, Default)]
pub struct Leak {
    chunks: Vec<Vec<u8>>,
    retained: usize,
}

impl Leak {
    /// Retains `bytes` more, writing each of them.
    pub fn grow(&mut self, mut bytes: usize) {
        while bytes > 0 {
            let chunk = match self.chunks.last_mut() {
                Some(c) if c.len() < c.capacity() => c,
                _ => {
                    self.chunks.push(Vec::with_capacity(LEAK_CHUNK));
                    self.chunks.last_mut().expect("just pushed")
                }
            };
            let n = bytes.min(chunk.capacity() - chunk.len());
            chunk.resize(chunk.len() + n, 0xA5);
            self.retained += n;
            bytes -= n;
        }
    }

    pub fn retained(&self) -> usize {
        self.retained
    }
}

async fn memory_leak(intensity: f64, max_bytes: u64, lease: Lease) {
    const TICK: Duration = Duration::from_millis(100);
    let per_tick = (intensity * 2.0 * MIB * TICK.as_secs_f64()) as usize;
    let mut leak = Leak::default();
    let mut capped = false;
    let mut tick = interval(TICK);
    while next_tick(&mut tick, &lease).await {
        if (leak.retained() + per_tick) as u64 <= max_bytes {
            leak.grow(per_tick);
        } else if !capped {
            capped = true;
            tracing::warn!(max_bytes, "memory_leak reached --max-leak-mib; holding");
        }
    }
    tracing::info!(
        released_mib = leak.retained() as f64 / MIB,
        "memory_leak ended; releasing"
    );
}

/// Burns `cores` cores in OS threads until the lease ends.
fn cpu_saturation(cores: f64, lease: Lease) {
    let threads = cores.ceil().max(1.0) as usize;
    let duty = (cores / threads as f64).clamp(0.0, 1.0);
    for i in 0..threads {
        let lease = lease.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("cpu-burn-{i}"))
            .spawn(move || burn(duty, &lease));
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start a cpu_saturation thread");
        }
    }
}

/// Busy for `duty` of every 20 ms slice while the lease lives.
fn burn(duty: f64, lease: &Lease) {
    const SLICE: Duration = Duration::from_millis(20);
    let mut x = 0x9E37_79B9_7F4A_7C15_u64;
    while lease.live() {
        let busy_until = Instant::now() + SLICE.mul_f64(duty);
        while Instant::now() < busy_until {
            for _ in 0..1000 {
                x = black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
            }
        }
        let idle = SLICE.mul_f64(1.0 - duty);
        if !idle.is_zero() {
            std::thread::sleep(idle);
        }
    }
    black_box(x);
}

/// Rows of [`ROW_BYTES`] needed per tick for `intensity` MiB/s.
pub fn rows_per_tick(intensity: f64, tick: Duration) -> usize {
    (intensity * MIB * tick.as_secs_f64() / ROW_BYTES as f64)
        .ceil()
        .max(1.0) as usize
}

/// Bytes of one `bulk_audit` payload.
pub const ROW_BYTES: usize = 8192;

async fn db_growth(state: AppState, intensity: f64, lease: Lease) {
    const TICK: Duration = Duration::from_millis(200);
    let rows = rows_per_tick(intensity, TICK);
    let mut errors = LogThrottle::new(Duration::from_secs(10));
    let mut tick = interval(TICK);
    let mut written = 0usize;
    while next_tick(&mut tick, &lease).await {
        let Some(db) = state.db.get() else { continue };
        let payloads: Vec<String> = {
            let mut rng = rand::rng();
            (0..rows)
                .map(|_| Alphanumeric.sample_string(&mut rng, ROW_BYTES))
                .collect()
        };
        let result = async {
            db.client()
                .await?
                .execute(
                    "INSERT INTO bulk_audit (source, payload) SELECT 'db_growth', unnest($1::text[])",
                    &[&payloads],
                )
                .await
                .map_err(crate::db::DbError::from)
        }
        .await;
        match result {
            Ok(n) => written += n as usize,
            Err(e) => {
                if let Some(suppressed) = errors.allow(Instant::now()) {
                    tracing::warn!(error = %e, suppressed, "db_growth insert failed");
                }
            }
        }
    }
    tracing::info!(
        rows = written,
        mib = (written * ROW_BYTES) as f64 / MIB,
        "db_growth ended"
    );
}

async fn s3_growth(state: AppState, intensity: f64, lease: Lease) {
    const TICK: Duration = Duration::from_millis(250);
    const MAX_OBJECT: usize = 4 << 20;
    let Some(s3) = state.s3.clone() else {
        tracing::warn!("s3_growth without S3 configured");
        return;
    };
    let per_tick = (intensity * MIB * TICK.as_secs_f64()) as usize;
    let mut errors = LogThrottle::new(Duration::from_secs(10));
    let mut tick = interval(TICK);
    let (mut objects, mut bytes) = (0u64, 0usize);
    while next_tick(&mut tick, &lease).await {
        let mut left = per_tick;
        while left > 0 {
            let size = left.min(MAX_OBJECT);
            left -= size;
            let body: Vec<u8> = {
                let mut rng = rand::rng();
                let mut body = vec![0u8; size];
                rng.fill(&mut body[..]);
                body
            };
            let millis = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis());
            let key = format!("images/growth/{millis}-{objects:06}.jpg");
            match s3.put(&key, body, "image/jpeg").await {
                Ok(()) => {
                    objects += 1;
                    bytes += size;
                }
                Err(e) => {
                    if let Some(suppressed) = errors.allow(Instant::now()) {
                        tracing::warn!(error = %e, suppressed, "s3_growth upload failed");
                    }
                }
            }
        }
    }
    tracing::info!(objects, mib = bytes as f64 / MIB, "s3_growth ended");
}

/// Work orders per second the `stalled_consumer` producer creates at intensity 1.
pub const STALL_PRODUCER_RATE: f64 = 20.0;

async fn system_producer(state: AppState, intensity: f64, lease: Lease) {
    let rate = STALL_PRODUCER_RATE * intensity;
    let mut tick = interval(Duration::from_secs_f64(1.0 / rate));
    let in_flight = Arc::new(Semaphore::new(32));
    let errors = Arc::new(std::sync::Mutex::new(LogThrottle::new(
        Duration::from_secs(10),
    )));
    while next_tick(&mut tick, &lease).await {
        let Ok(permit) = Arc::clone(&in_flight).try_acquire_owned() else {
            continue;
        };
        let new = {
            let mut rng = rand::rng();
            NewWorkOrder {
                product_code: format!("BATCH-{}", rng.random_range(100..200)),
                quantity: rng.random_range(1..=500),
                line: Some(format!("L{}", rng.random_range(1..=4))),
            }
        };
        let state = state.clone();
        let errors = Arc::clone(&errors);
        tokio::spawn(async move {
            if let Err(e) = mes::create_work_order(&state, &new, "system").await {
                let mut errors = errors.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(suppressed) = errors.allow(Instant::now()) {
                    tracing::warn!(error = e.message(), suppressed, "system producer failed");
                }
            }
            drop(permit);
        });
    }
    tracing::info!("stalled_consumer producer ended");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leak_retains_and_touches_what_it_is_asked() {
        let mut leak = Leak::default();
        leak.grow(3 << 20);
        leak.grow(1);
        assert_eq!(leak.retained(), (3 << 20) + 1);
        assert_eq!(leak.chunks.len(), 1);
        assert!(leak.chunks[0].iter().step_by(4096).all(|b| *b == 0xA5));
        // Crossing a chunk boundary starts a new chunk.
        leak.grow(LEAK_CHUNK);
        assert_eq!(leak.chunks.len(), 2);
        assert_eq!(leak.chunks[0].len(), LEAK_CHUNK);
        assert_eq!(leak.retained(), LEAK_CHUNK + (3 << 20) + 1);
    }

    #[test]
    fn db_growth_rate() {
        // 1 MiB/s in 200 ms ticks: 26 rows of 8 KiB (≥ 0.2 MiB).
        assert_eq!(rows_per_tick(1.0, Duration::from_millis(200)), 26);
        assert_eq!(rows_per_tick(2.0, Duration::from_millis(200)), 52);
        assert_eq!(rows_per_tick(0.001, Duration::from_millis(200)), 1);
    }

    #[test]
    fn cpu_burn_stops_with_its_lease() {
        let incidents = crate::incident::Incidents::default();
        let request = crate::incident::IncidentRequest {
            kind: IncidentKind::CpuSaturation,
            duration: Duration::from_millis(150),
            intensity: 0.5,
        };
        let (_, lease) = incidents.start(request, Instant::now());
        let started = Instant::now();
        burn(0.5, &lease);
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(140), "{took:?}");
        assert!(took < Duration::from_secs(5), "{took:?}");
    }
}
