//! Opening a redb database file the way both of prognos's stores need: an
//! empty file is reported loudly instead of being taken silently as a new
//! store, and a corrupt one gives an error naming the file and what to do,
//! never a panic.

use std::path::Path;

use redb::Database;

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
