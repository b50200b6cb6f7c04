//! Opening a redb database file the way both of prognos's stores need: an
//! empty file is reported loudly instead of being taken silently as a new
//! store, and a corrupt one gives an error naming the file and what to do,
//! never a panic.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use redb::Database;
use tokio::time::Instant;

/// Why a store file could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// redb refused the file (permissions, a lock, a full disk, …).
    #[error("{0}")]
    Redb(String),
    /// The file is not a database redb can read.
    #[error(
        "the file is corrupt ({0}): stop prognos, move the file aside and start again; \
         prognos starts with an empty store and rebuilds what it can from Prometheus"
    )]
    Corrupt(String),
}

/// Whether opening `path` found an existing store, a new one, or an empty
/// file (which holds nothing: any state it had is lost).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// A store written before.
    Existing,
    /// No file: a new store.
    New,
    /// A file of 0 bytes, taken as a new store.
    Empty,
}

/// Opens (or creates) the redb database at `path`. A 0-byte file is logged
/// as a warning naming it; a file redb cannot read, or that makes redb
/// panic, is an [`OpenError::Corrupt`].
pub fn open_database(path: &Path) -> Result<(Database, Found), OpenError> {
    let found = match std::fs::metadata(path) {
        Ok(m) if m.len() == 0 => Found::Empty,
        Ok(_) => Found::Existing,
        Err(_) => Found::New,
    };
    if found == Found::Empty {
        tracing::warn!(
            path = %path.display(),
            "The store file is empty (0 bytes): starting with an empty store. Whatever it held \
             (alert state, outbox, audit) is gone; restore the file from a backup if there is one."
        );
    }
    let opened = std::panic::catch_unwind(|| Database::create(path));
    match opened {
        Ok(Ok(db)) => Ok((db, found)),
        Ok(Err(redb::DatabaseError::Storage(redb::StorageError::Corrupted(m)))) => {
            Err(OpenError::Corrupt(m))
        }
        Ok(Err(redb::DatabaseError::Storage(redb::StorageError::Io(e))))
            if e.kind() == std::io::ErrorKind::InvalidData =>
        {
            Err(OpenError::Corrupt(e.to_string()))
        }
        Ok(Err(e)) => Err(OpenError::Redb(e.to_string())),
        Err(panic) => Err(OpenError::Corrupt(
            panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "redb could not read it".to_string()),
        )),
    }
}

/// An error of an operation on a [`Reopening`] database.
pub trait Failure: std::fmt::Display {
    /// Whether the database failed (I/O, a transaction, a commit), so it must
    /// be closed and reopened; false for an error of the data alone.
    fn closes_store(&self) -> bool;
}

impl Failure for String {
    fn closes_store(&self) -> bool {
        true
    }
}

/// First wait before reopening a store closed by a failure; it doubles with
/// each failure in a row, up to [`REOPEN_MAX`].
pub const REOPEN_FIRST: Duration = Duration::from_secs(1);
/// Longest wait between attempts to reopen a failed store.
pub const REOPEN_MAX: Duration = Duration::from_secs(60);

/// A redb database that survives its own failures. redb refuses every write
/// after an I/O error (a full disk: "close and re-open the database"), so an
/// operation that fails closes the database, counts the error and logs it
/// once; the next operation after a backoff (1 s, doubling to 60 s) reopens
/// the file — redb recovers it to its last commit — and goes on. Until then
/// operations fail fast and [`Reopening::healthy`] is false, which
/// `/-/ready` reports.
#[derive(Debug)]
pub struct Reopening {
    path: PathBuf,
    slot: Mutex<Slot>,
    errors: std::sync::RwLock<Counter>,
    faults: AtomicU32,
    /// Operations to let through before the injected faults fire.
    fault_after: AtomicU32,
}

#[derive(Debug)]
struct Slot {
    db: Option<Arc<Database>>,
    failures: u32,
    retry_at: Instant,
    last_error: String,
}

impl Reopening {
    /// Opens (or creates) the database at `path`, as [`open_database`].
    pub fn open(path: &Path) -> Result<(Self, Found), OpenError> {
        let (db, found) = open_database(path)?;
        Ok((
            Self {
                path: path.to_path_buf(),
                slot: Mutex::new(Slot {
                    db: Some(Arc::new(db)),
                    failures: 0,
                    retry_at: Instant::now(),
                    last_error: String::new(),
                }),
                errors: std::sync::RwLock::new(Counter::default()),
                faults: AtomicU32::new(0),
                fault_after: AtomicU32::new(0),
            },
            found,
        ))
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Counts its failures (operations that failed, and reopenings that
    /// did) in `counter` from now on, with those counted so far: a member
    /// of `prognos_store_errors_total`.
    pub fn count_errors_in(&self, counter: Counter) {
        let mut errors = self.errors.write().unwrap_or_else(|e| e.into_inner());
        counter.inc_by(errors.get());
        *errors = counter;
    }

    fn count_error(&self) {
        self.errors.read().unwrap_or_else(|e| e.into_inner()).inc();
    }

    /// Whether the database is open, reopening it first when a failure closed
    /// it and its backoff has passed.
    pub fn healthy(&self) -> bool {
        self.database().is_ok()
    }

    /// Makes the next `n` operations fail as a failed write would, before
    /// touching the file (fault-injection tests: a crash or a full disk at
    /// the k-th commit).
    pub fn inject_faults(&self, n: u32) {
        self.inject_fault_after(0, n);
    }

    /// Lets `skip` operations through, then makes the next `n` fail as in
    /// [`Reopening::inject_faults`] (a crash or full disk at the k-th step).
    pub fn inject_fault_after(&self, skip: u32, n: u32) {
        self.fault_after.store(skip, Ordering::SeqCst);
        self.faults.store(n, Ordering::SeqCst);
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Slot> {
        self.slot.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The open database, reopened if a failure closed it and the backoff
    /// has passed; otherwise why not.
    fn database(&self) -> Result<Arc<Database>, String> {
        let mut slot = self.slot();
        if let Some(db) = &slot.db {
            return Ok(db.clone());
        }
        let now = Instant::now();
        if now < slot.retry_at {
            return Err(format!(
                "closed after a failure, reopening in {} s (last error: {})",
                (slot.retry_at - now).as_secs().max(1),
                slot.last_error
            ));
        }
        match open_database(&self.path) {
            Ok((db, _)) => {
                tracing::info!(path = %self.path.display(), failures = slot.failures, "Store reopened after a failure.");
                let db = Arc::new(db);
                slot.db = Some(db.clone());
                Ok(db)
            }
            Err(e) => {
                let message = e.to_string();
                self.closed(&mut slot, &message);
                Err(message)
            }
        }
    }

    /// Closes the database after a failure and schedules its reopening.
    fn closed(&self, slot: &mut Slot, message: &str) {
        self.count_error();
        if slot.db.is_some() || slot.failures == 0 {
            tracing::error!(path = %self.path.display(), error = %message, "Store failed; it is closed and will be reopened (is the disk full?).");
        }
        slot.db = None;
        let wait = REOPEN_FIRST
            .saturating_mul(1 << slot.failures.min(16))
            .min(REOPEN_MAX);
        slot.failures = slot.failures.saturating_add(1);
        slot.retry_at = Instant::now() + wait;
        slot.last_error = crate::secret::excerpt(message, 300);
    }

    /// Runs `op` on the database. When it fails the database is closed (see
    /// the type's documentation); `closed` makes the caller's error from a
    /// message when the database is closed or an injected fault fires.
    pub fn with<T, E: Failure>(
        &self,
        op: impl FnOnce(&Database) -> Result<T, E>,
        closed: impl FnOnce(String) -> E,
    ) -> Result<T, E> {
        let db = match self.database() {
            Ok(db) => db,
            Err(message) => return Err(closed(message)),
        };
        let skipped = self
            .fault_after
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        let injected = !skipped
            && self
                .faults
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
        let result = if injected {
            Err(closed("injected fault".to_string()))
        } else {
            op(&db)
        };
        let mut slot = self.slot();
        match &result {
            // Only the first failure of an open database closes it, and only
            // a failure of the database: a row that does not decode does not.
            Err(e) if e.closes_store() && slot.db.as_ref().is_some_and(|d| Arc::ptr_eq(d, &db)) => {
                self.closed(&mut slot, &e.to_string());
            }
            Err(_) => {}
            // The backoff starts over once an operation succeeds, not when
            // a reopening does: a full disk lets redb reopen, then fails the write.
            Ok(_) => slot.failures = 0,
        }
        drop(slot);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redb::ReadableDatabase as _;

    #[test]
    fn a_new_file_an_existing_store_and_an_empty_file_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        let (db, found) = open_database(&path).unwrap();
        assert_eq!(found, Found::New);
        drop(db);
        assert_eq!(open_database(&path).unwrap().1, Found::Existing);
        let empty = dir.path().join("empty.redb");
        std::fs::write(&empty, b"").unwrap();
        assert_eq!(open_database(&empty).unwrap().1, Found::Empty);
    }

    /// A store holding a few hundred rows, its bytes, and 8 KiB of garbage
    /// written over them from `at`.
    fn garbled(dir: &Path, at: usize) -> std::path::PathBuf {
        const T: redb::TableDefinition<u64, &str> = redb::TableDefinition::new("t");
        let path = dir.join(format!("state-{at}.redb"));
        let (db, _) = open_database(&path).unwrap();
        let tx = db.begin_write().unwrap();
        {
            let mut t = tx.open_table(T).unwrap();
            for k in 0..500u64 {
                t.insert(k, "an alert's state, as JSON, long enough to fill pages")
                    .unwrap();
            }
        }
        tx.commit().unwrap();
        drop(db);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.resize(bytes.len().max(at + 8192), 0);
        let mut x: u32 = 12_345;
        for b in &mut bytes[at..at + 8192] {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            *b = (x >> 16) as u8;
        }
        std::fs::write(&path, &bytes).unwrap();
        path
    }

    const T: redb::TableDefinition<u64, u64> = redb::TableDefinition::new("t");

    fn put(r: &Reopening, k: u64) -> Result<(), String> {
        r.with(
            |db| {
                let tx = db.begin_write().map_err(|e| e.to_string())?;
                tx.open_table(T)
                    .map_err(|e| e.to_string())?
                    .insert(k, k)
                    .map_err(|e| e.to_string())?;
                tx.commit().map_err(|e| e.to_string())
            },
            |m| m,
        )
    }

    fn count(r: &Reopening) -> Result<u64, String> {
        r.with(
            |db| {
                let tx = db.begin_read().map_err(|e| e.to_string())?;
                let t = tx.open_table(T).map_err(|e| e.to_string())?;
                redb::ReadableTableMetadata::len(&t).map_err(|e| e.to_string())
            },
            |m| m,
        )
    }

    /// Finding 7 of issue 11: after a failed write redb refuses every other
    /// one until the database is reopened; prognos never reopened it.
    #[tokio::test(start_paused = true)]
    async fn a_failure_closes_the_store_until_it_is_reopened_after_a_backoff() {
        let dir = tempfile::tempdir().unwrap();
        let (r, _) = Reopening::open(&dir.path().join("s.redb")).unwrap();
        let counter = Counter::default();
        r.count_errors_in(counter.clone());
        put(&r, 1).unwrap();
        r.inject_faults(1);
        assert_eq!(put(&r, 2).unwrap_err(), "injected fault");
        assert_eq!(counter.get(), 1);
        // Closed: operations fail fast, without touching the file, until the backoff passes.
        assert!(!r.healthy());
        let e = put(&r, 3).unwrap_err();
        assert!(e.contains("reopening in 1 s"), "{e}");
        tokio::time::advance(REOPEN_FIRST).await;
        assert!(r.healthy(), "reopened once the backoff passed");
        put(&r, 4).unwrap();
        // What was committed before the failure is there; the failed writes are not.
        assert_eq!(count(&r).unwrap(), 2);
        assert_eq!(counter.get(), 1);
        // Failures in a row back off longer: 1 s, then 2 s.
        r.inject_faults(2);
        put(&r, 5).unwrap_err();
        tokio::time::advance(REOPEN_FIRST).await;
        put(&r, 6).unwrap_err();
        tokio::time::advance(REOPEN_FIRST).await;
        assert!(!r.healthy(), "the second wait is 2 s");
        tokio::time::advance(REOPEN_FIRST).await;
        assert!(r.healthy());
        assert_eq!(counter.get(), 3);
    }

    #[test]
    fn garbage_is_a_clear_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        for at in [0, 4096] {
            let path = garbled(dir.path(), at);
            match open_database(&path) {
                Err(e) => {
                    assert!(matches!(e, OpenError::Corrupt(_)), "at {at}: {e}");
                    assert!(e.to_string().contains("move the file aside"), "{e}");
                }
                // Garbage where redb does not look at opening is found by
                // the reads: an error, not a panic (the stores map it).
                Ok((db, _)) => {
                    let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        db.begin_read().map(|_| ()).map_err(|e| e.to_string())
                    }));
                    assert!(read.is_ok(), "at {at}: redb panicked on reading");
                }
            }
        }
    }
}
