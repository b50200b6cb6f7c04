//! The durable outbox (redb). Every outgoing item — a notification, a
//! remediation call, an approval request — is written here in a durable
//! transaction BEFORE it is sent, retried from here with backoff, and
//! removed in the same transaction that records its id as delivered, so it
//! is never sent twice once acknowledged and never lost on a crash.
//!
//! Tables (all created on open):
//! - `outbox`: id → (next_attempt_at, created_at, JSON of [`OutboxEntry`]);
//! - `outbox_due`: (next_attempt_at, id) → (), so [`NotifyStore::due`] reads only what is due;
//! - `outbox_created`: (created_at, id) → (), for the oldest entry's age;
//! - `delivered`: id → time; `abandoned`: id → (time, reason) — the dedup tables;
//! - `state`: name → JSON blob (silences, governor, approvals, …; the
//!   dispatcher's next group serial under `dispatcher_serial`; an older
//!   version's whole dispatcher under `dispatcher`, until migrated);
//! - `groups`: group key → JSON of the dispatcher's group, one row per group,
//!   so an ingest or flush writes only the groups it touched ([`GroupRows`]);
//! - `audit`: id → (requested_at, JSON of [`AuditRecord`]) and
//!   `audit_time`: (requested_at, id) → (), newest first.
//!
//! Commits keep redb's default durability (`Immediate`: fsync before commit returns).

use std::path::Path;

use crate::database::Reopening;
use redb::{
    ReadableDatabase as _, ReadableTable as _, ReadableTableMetadata as _, TableDefinition,
    WriteTransaction,
};
use serde::{Deserialize, Serialize};

use crate::alert::Notification;
use crate::remediation::approval::ApprovalRequest;
use crate::remediation::audit::AuditRecord;
use crate::remediation::call::RemediationCall;
use crate::route::GroupRows;

const OUTBOX: TableDefinition<&str, (i64, i64, &str)> = TableDefinition::new("outbox");
const DUE: TableDefinition<(i64, &str), ()> = TableDefinition::new("outbox_due");
const CREATED: TableDefinition<(i64, &str), ()> = TableDefinition::new("outbox_created");
const DELIVERED: TableDefinition<&str, i64> = TableDefinition::new("delivered");
const ABANDONED: TableDefinition<&str, (i64, &str)> = TableDefinition::new("abandoned");
const STATE: TableDefinition<&str, &str> = TableDefinition::new("state");
const GROUPS: TableDefinition<&str, &str> = TableDefinition::new("groups");
const AUDIT: TableDefinition<&str, (i64, &str)> = TableDefinition::new("audit");
const AUDIT_TIME: TableDefinition<(i64, &str), ()> = TableDefinition::new("audit_time");

/// What an outbox entry delivers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Delivery {
    /// A notification to a receiver's channel.
    Notify(Notification),
    /// A remediation webhook call.
    Remediate(RemediationCall),
    /// A request for approval of a remediation, sent to Telegram.
    Approval(ApprovalRequest),
}

/// One item waiting to be delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboxEntry {
    /// Unique: `<target>/<idempotency key>`.
    pub id: String,
    /// The receiver/channel target's name, or `remediation:<action>` / `approval`.
    pub target: String,
    /// Idempotency key sent to the receiver.
    pub key: String,
    /// What to deliver.
    pub delivery: Delivery,
    /// When it was enqueued (Unix seconds).
    pub created_at: i64,
    /// When to try next (Unix seconds).
    pub next_attempt_at: i64,
    /// Attempts made so far.
    pub attempts: u32,
    /// How far a multi-part delivery got (e.g. messages of a split send).
    pub progress: u32,
    /// The last failure, if any.
    pub last_error: Option<String>,
    /// An attempt is under way (set durably before the request, for targets
    /// that deliver at most once): found set after a crash, the attempt may
    /// have been delivered.
    #[serde(default)]
    pub in_flight: bool,
}

/// A failure of the outbox store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// redb failed (open, transaction, table, commit).
    #[error("notification store {path}: {message}")]
    Db {
        /// The database file.
        path: String,
        /// What failed.
        message: String,
    },
    /// A stored value could not be decoded.
    #[error("notification store {path}: table {table}, key {key:?}: {message}")]
    Decode {
        /// The database file.
        path: String,
        /// The table holding the value.
        table: String,
        /// The key whose value is unreadable.
        key: String,
        /// Why.
        message: String,
    },
}

impl crate::database::Failure for StoreError {
    fn closes_store(&self) -> bool {
        matches!(self, StoreError::Db { .. })
    }
}

/// The name, in the `state` table, of the dispatcher's next group serial.
pub const DISPATCHER_SERIAL: &str = "dispatcher_serial";

/// The name, in the `state` table, of a whole dispatcher saved as one blob
/// by an older version (see [`NotifyStore::migrate_dispatcher_blob`]).
pub const DISPATCHER_BLOB: &str = "dispatcher";

/// The dispatcher's saved rows, `(group key, JSON)` in key order, and its
/// next group serial (`None` if never saved), as [`NotifyStore::load_groups`]
/// reads them.
pub type SavedGroups = (Vec<(String, String)>, Option<u64>);

/// The durable outbox, dedup tables, state blobs, dispatcher groups and
/// remediation audit log.
#[derive(Debug)]
pub struct NotifyStore {
    db: Reopening,
    path: String,
}

impl NotifyStore {
    /// Opens (or creates) the store at `path`, creating its tables.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let p = path.display().to_string();
        let (db, _) = Reopening::open(path).map_err(|e| StoreError::Db {
            path: p.clone(),
            message: e.to_string(),
        })?;
        let store = Self { db, path: p };
        // Create every table once, so readers never meet a missing one.
        store.write(|tx| {
            tx.open_table(OUTBOX).map_err(|e| store.err(e))?;
            tx.open_table(DUE).map_err(|e| store.err(e))?;
            tx.open_table(CREATED).map_err(|e| store.err(e))?;
            tx.open_table(DELIVERED).map_err(|e| store.err(e))?;
            tx.open_table(ABANDONED).map_err(|e| store.err(e))?;
            tx.open_table(STATE).map_err(|e| store.err(e))?;
            tx.open_table(GROUPS).map_err(|e| store.err(e))?;
            tx.open_table(AUDIT).map_err(|e| store.err(e))?;
            tx.open_table(AUDIT_TIME).map_err(|e| store.err(e))?;
            Ok(())
        })?;
        Ok(store)
    }

    /// Runs `f` in a write transaction and commits it, through the
    /// reopening database (a failure closes it until it can be reopened).
    fn write<T>(
        &self,
        f: impl FnOnce(&WriteTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.db.with(
            |db| {
                let tx = db.begin_write().map_err(|e| self.err(e))?;
                let out = f(&tx)?;
                tx.commit().map_err(|e| self.err(e))?;
                Ok(out)
            },
            |m| self.err(m),
        )
    }

    /// Runs `f` in a read transaction.
    fn read<T>(
        &self,
        f: impl FnOnce(&redb::ReadTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.db.with(
            |db| {
                let tx = db.begin_read().map_err(|e| self.err(e))?;
                f(&tx)
            },
            |m| self.err(m),
        )
    }

    /// The store's file, as errors name it.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Whether the store can be written (see [`Reopening`]).
    pub fn healthy(&self) -> bool {
        self.db.healthy()
    }

    /// Counts its failures in `counter` (see [`Reopening::count_errors_in`]).
    pub fn count_errors_in(&self, counter: prometheus_client::metrics::counter::Counter) {
        self.db.count_errors_in(counter);
    }

    /// Makes the next `n` operations fail (fault-injection tests).
    pub fn inject_faults(&self, n: u32) {
        self.db.inject_faults(n);
    }

    /// Lets `skip` operations through, then fails the next one (fault-injection
    /// tests: a failure at the k-th step of a decision).
    pub fn inject_fault_after(&self, skip: u32) {
        self.db.inject_fault_after(skip, 1);
    }

    fn err(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::Db {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    fn decode<T: serde::de::DeserializeOwned>(
        &self,
        table: &str,
        key: &str,
        json: &str,
    ) -> Result<T, StoreError> {
        serde_json::from_str(json).map_err(|e| StoreError::Decode {
            path: self.path.clone(),
            table: table.to_string(),
            key: key.to_string(),
            message: e.to_string(),
        })
    }

    /// Adds entries and, in the same durable transaction, saves named state
    /// blobs (e.g. `("governor", json)`). Entries whose id is already in the
    /// outbox or already delivered are skipped (idempotent enqueue). Returns
    /// how many were added.
    pub fn enqueue(
        &self,
        entries: &[OutboxEntry],
        states: &[(&str, &str)],
    ) -> Result<usize, StoreError> {
        self.enqueue_with_audit(entries, states, None, &[])
    }

    /// [`NotifyStore::enqueue`], also writing in the same transaction the
    /// dispatcher's `groups` rows (a `Some` row inserted or replaced, a
    /// `None` row deleted) and next group serial, so a flush's notifications
    /// and the state that produced them commit together; and the remediation
    /// audit `records`, so a remediation's audit record and the outbox entry
    /// of its call (or approval request) exist together or not at all: a
    /// crash between them can neither lose the call behind a record that
    /// says it was planned nor call without a record.
    pub fn enqueue_with_audit(
        &self,
        entries: &[OutboxEntry],
        states: &[(&str, &str)],
        groups: Option<&GroupRows>,
        records: &[AuditRecord],
    ) -> Result<usize, StoreError> {
        self.write(|tx| {
            let mut added = 0;
            {
                let mut outbox = tx.open_table(OUTBOX).map_err(|e| self.err(e))?;
                let mut due = tx.open_table(DUE).map_err(|e| self.err(e))?;
                let mut created = tx.open_table(CREATED).map_err(|e| self.err(e))?;
                let delivered = tx.open_table(DELIVERED).map_err(|e| self.err(e))?;
                for e in entries {
                    let id = e.id.as_str();
                    if outbox.get(id).map_err(|e| self.err(e))?.is_some()
                        || delivered.get(id).map_err(|e| self.err(e))?.is_some()
                    {
                        continue;
                    }
                    let json = serde_json::to_string(e).map_err(|e| self.err(e))?;
                    outbox
                        .insert(id, (e.next_attempt_at, e.created_at, json.as_str()))
                        .map_err(|e| self.err(e))?;
                    due.insert((e.next_attempt_at, id), ())
                        .map_err(|e| self.err(e))?;
                    created
                        .insert((e.created_at, id), ())
                        .map_err(|e| self.err(e))?;
                    added += 1;
                }
                let mut state = tx.open_table(STATE).map_err(|e| self.err(e))?;
                for (name, json) in states {
                    state.insert(*name, *json).map_err(|e| self.err(e))?;
                }
                drop(state);
                if let Some(rows) = groups {
                    self.write_groups(tx, rows)?;
                }
                for r in records {
                    self.write_audit(tx, r)?;
                }
            }
            Ok(added)
        })
    }

    /// Writes the dispatcher's `rows` and next serial within `tx`.
    fn write_groups(&self, tx: &WriteTransaction, rows: &GroupRows) -> Result<(), StoreError> {
        let mut groups = tx.open_table(GROUPS).map_err(|e| self.err(e))?;
        for (key, json) in &rows.groups {
            match json {
                Some(json) => groups.insert(key.as_str(), json.as_str()),
                None => groups.remove(key.as_str()),
            }
            .map_err(|e| self.err(e))?;
        }
        let mut state = tx.open_table(STATE).map_err(|e| self.err(e))?;
        let serial = rows.next_serial.to_string();
        state
            .insert(DISPATCHER_SERIAL, serial.as_str())
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// The dispatcher's rows, `(group key, JSON)` in key order, and its next
    /// group serial (`None` if never saved), read in one transaction.
    pub fn load_groups(&self) -> Result<SavedGroups, StoreError> {
        self.read(|tx| {
            let groups = tx.open_table(GROUPS).map_err(|e| self.err(e))?;
            let rows = groups
                .iter()
                .map_err(|e| self.err(e))?
                .map(|row| row.map(|(k, v)| (k.value().to_string(), v.value().to_string())))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| self.err(e))?;
            let state = tx.open_table(STATE).map_err(|e| self.err(e))?;
            let serial = state
                .get(DISPATCHER_SERIAL)
                .map_err(|e| self.err(e))?
                .map(|v| self.decode("state", DISPATCHER_SERIAL, v.value()))
                .transpose()?;
            Ok((rows, serial))
        })
    }

    /// Moves a dispatcher saved whole under [`DISPATCHER_BLOB`] to rows, in
    /// one durable transaction: the `groups` table is replaced by `rows` (all
    /// of the blob's groups, see `Dispatcher::all_rows`), the serial saved,
    /// and the blob deleted. A crash leaves either the blob or the rows.
    pub fn migrate_dispatcher_blob(&self, rows: &GroupRows) -> Result<(), StoreError> {
        self.write(|tx| {
            {
                let mut groups = tx.open_table(GROUPS).map_err(|e| self.err(e))?;
                // Rows of a newer version run before a downgrade are stale: the blob wins.
                groups.retain(|_, _| false).map_err(|e| self.err(e))?;
            }
            self.write_groups(tx, rows)?;
            let mut state = tx.open_table(STATE).map_err(|e| self.err(e))?;
            state.remove(DISPATCHER_BLOB).map_err(|e| self.err(e))?;
            Ok(())
        })
    }

    /// Entries due at `now` (`next_attempt_at <= now`), earliest due first, at most `limit`.
    pub fn due(&self, now: i64, limit: usize) -> Result<Vec<OutboxEntry>, StoreError> {
        self.read(|tx| {
            let due = tx.open_table(DUE).map_err(|e| self.err(e))?;
            let outbox = tx.open_table(OUTBOX).map_err(|e| self.err(e))?;
            let mut out = Vec::new();
            // The index is ordered by time: stop at the first entry not yet due.
            for row in due.iter().map_err(|e| self.err(e))? {
                if out.len() >= limit {
                    break;
                }
                let (k, _) = row.map_err(|e| self.err(e))?;
                let (at, id) = k.value();
                if at > now {
                    break;
                }
                if let Some(v) = outbox.get(id).map_err(|e| self.err(e))? {
                    out.push(self.decode("outbox", id, v.value().2)?);
                }
            }
            Ok(out)
        })
    }

    /// Every pending entry, earliest due first (for the API and metrics).
    pub fn pending(&self) -> Result<Vec<OutboxEntry>, StoreError> {
        self.due(i64::MAX, usize::MAX)
    }

    /// The earliest `next_attempt_at`, if anything is pending.
    pub fn next_due(&self) -> Result<Option<i64>, StoreError> {
        self.read(|tx| {
            let due = tx.open_table(DUE).map_err(|e| self.err(e))?;
            let first = due.first().map_err(|e| self.err(e))?;
            Ok(first.map(|(k, _)| k.value().0))
        })
    }

    /// Removes an entry (and its index rows) if present.
    fn remove_entry(&self, tx: &redb::WriteTransaction, id: &str) -> Result<(), StoreError> {
        let mut outbox = tx.open_table(OUTBOX).map_err(|e| self.err(e))?;
        let old = outbox.remove(id).map_err(|e| self.err(e))?.map(|v| {
            let (next, created, _) = v.value();
            (next, created)
        });
        if let Some((next, created)) = old {
            let mut due = tx.open_table(DUE).map_err(|e| self.err(e))?;
            due.remove((next, id)).map_err(|e| self.err(e))?;
            let mut c = tx.open_table(CREATED).map_err(|e| self.err(e))?;
            c.remove((created, id)).map_err(|e| self.err(e))?;
        }
        Ok(())
    }

    /// A send was acknowledged: removes the entry and records its id as
    /// delivered (at `now`) in one durable transaction.
    pub fn acknowledge(&self, id: &str, now: i64) -> Result<(), StoreError> {
        self.write(|tx| {
            self.remove_entry(tx, id)?;
            {
                let mut delivered = tx.open_table(DELIVERED).map_err(|e| self.err(e))?;
                delivered.insert(id, now).map_err(|e| self.err(e))?;
            }
            Ok(())
        })
    }

    /// A send failed: stores the entry's new attempts, next_attempt_at,
    /// progress and last_error. An entry no longer in the outbox (acknowledged
    /// or abandoned meanwhile) is not brought back.
    pub fn reschedule(&self, entry: &OutboxEntry) -> Result<(), StoreError> {
        self.write(|tx| {
            {
                let id = entry.id.as_str();
                let mut outbox = tx.open_table(OUTBOX).map_err(|e| self.err(e))?;
                let old = outbox.get(id).map_err(|e| self.err(e))?.map(|v| {
                    let (next, created, _) = v.value();
                    (next, created)
                });
                let Some((old_next, created)) = old else {
                    return Ok(());
                };
                // created_at stays as first stored, so the age index stays consistent.
                let mut e = entry.clone();
                e.created_at = created;
                let json = serde_json::to_string(&e).map_err(|e| self.err(e))?;
                outbox
                    .insert(id, (e.next_attempt_at, created, json.as_str()))
                    .map_err(|e| self.err(e))?;
                let mut due = tx.open_table(DUE).map_err(|e| self.err(e))?;
                due.remove((old_next, id)).map_err(|e| self.err(e))?;
                due.insert((e.next_attempt_at, id), ())
                    .map_err(|e| self.err(e))?;
            }
            Ok(())
        })
    }

    /// Gives an entry up (too old, or a permanent failure): removes it and
    /// records it as abandoned (id, reason, time).
    pub fn abandon(&self, id: &str, reason: &str, now: i64) -> Result<(), StoreError> {
        self.write(|tx| {
            self.remove_entry(tx, id)?;
            {
                let mut abandoned = tx.open_table(ABANDONED).map_err(|e| self.err(e))?;
                abandoned
                    .insert(id, (now, reason))
                    .map_err(|e| self.err(e))?;
            }
            Ok(())
        })
    }

    /// Whether `id` was acknowledged (and not pruned since).
    pub fn was_delivered(&self, id: &str) -> Result<bool, StoreError> {
        self.read(|tx| {
            let delivered = tx.open_table(DELIVERED).map_err(|e| self.err(e))?;
            Ok(delivered.get(id).map_err(|e| self.err(e))?.is_some())
        })
    }

    /// Why and when `id` was abandoned, if it was (and not pruned since).
    pub fn abandoned(&self, id: &str) -> Result<Option<(i64, String)>, StoreError> {
        self.read(|tx| {
            let abandoned = tx.open_table(ABANDONED).map_err(|e| self.err(e))?;
            let row = abandoned.get(id).map_err(|e| self.err(e))?;
            Ok(row.map(|v| {
                let (at, reason) = v.value();
                (at, reason.to_string())
            }))
        })
    }

    /// The outbox's depth and its oldest entry's `created_at`.
    pub fn depth(&self) -> Result<(usize, Option<i64>), StoreError> {
        self.read(|tx| {
            let outbox = tx.open_table(OUTBOX).map_err(|e| self.err(e))?;
            let created = tx.open_table(CREATED).map_err(|e| self.err(e))?;
            let n = outbox.len().map_err(|e| self.err(e))?;
            let oldest = created.first().map_err(|e| self.err(e))?;
            Ok((
                usize::try_from(n).unwrap_or(usize::MAX),
                oldest.map(|(k, _)| k.value().0),
            ))
        })
    }

    /// Forgets delivered and abandoned ids recorded before `before`, keeping
    /// the dedup tables bounded. Returns how many were forgotten.
    pub fn prune(&self, before: i64) -> Result<usize, StoreError> {
        self.write(|tx| {
            let mut n = 0;
            {
                let mut delivered = tx.open_table(DELIVERED).map_err(|e| self.err(e))?;
                delivered
                    .retain(|_, at| {
                        let keep = at >= before;
                        n += usize::from(!keep);
                        keep
                    })
                    .map_err(|e| self.err(e))?;
                let mut abandoned = tx.open_table(ABANDONED).map_err(|e| self.err(e))?;
                abandoned
                    .retain(|_, (at, _)| {
                        let keep = at >= before;
                        n += usize::from(!keep);
                        keep
                    })
                    .map_err(|e| self.err(e))?;
            }
            Ok(n)
        })
    }

    /// A named state blob (silences, remediation governor, …).
    pub fn load_state(&self, name: &str) -> Result<Option<String>, StoreError> {
        self.read(|tx| {
            let state = tx.open_table(STATE).map_err(|e| self.err(e))?;
            let v = state.get(name).map_err(|e| self.err(e))?;
            Ok(v.map(|v| v.value().to_string()))
        })
    }

    /// Saves a named state blob in a durable transaction.
    pub fn save_state(&self, name: &str, json: &str) -> Result<(), StoreError> {
        self.enqueue(&[], &[(name, json)]).map(|_| ())
    }

    /// Inserts or replaces a remediation audit record by id.
    pub fn put_audit(&self, r: &AuditRecord) -> Result<(), StoreError> {
        self.write(|tx| {
            self.write_audit(tx, r)?;
            Ok(())
        })
    }

    /// Inserts or replaces `r` within `tx`, keeping the time index right.
    fn write_audit(&self, tx: &WriteTransaction, r: &AuditRecord) -> Result<(), StoreError> {
        let json = serde_json::to_string(r).map_err(|e| self.err(e))?;
        let mut audit = tx.open_table(AUDIT).map_err(|e| self.err(e))?;
        let mut time = tx.open_table(AUDIT_TIME).map_err(|e| self.err(e))?;
        let old = audit
            .insert(r.id.as_str(), (r.requested_at, json.as_str()))
            .map_err(|e| self.err(e))?
            .map(|v| v.value().0);
        if let Some(old_at) = old {
            time.remove((old_at, r.id.as_str()))
                .map_err(|e| self.err(e))?;
        }
        time.insert((r.requested_at, r.id.as_str()), ())
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Forgets the audit records requested before `before` that have
    /// reached a final status (one awaiting approval, or approved with its
    /// call still queued, stays). Returns how many were forgotten.
    pub fn prune_audit(&self, before: i64) -> Result<usize, StoreError> {
        self.write(|tx| {
            let mut n = 0;
            {
                let mut audit = tx.open_table(AUDIT).map_err(|e| self.err(e))?;
                let mut time = tx.open_table(AUDIT_TIME).map_err(|e| self.err(e))?;
                let old: Vec<(i64, String)> = time
                    .range(..(before, ""))
                    .map_err(|e| self.err(e))?
                    .map(|row| row.map(|(k, _)| (k.value().0, k.value().1.to_string())))
                    .collect::<Result<_, _>>()
                    .map_err(|e| self.err(e))?;
                for (at, id) in old {
                    let finished = match audit.get(id.as_str()).map_err(|e| self.err(e))? {
                        Some(v) => self
                            .decode::<AuditRecord>("audit", &id, v.value().1)
                            .map_or(true, |r| r.status.is_final()),
                        None => true,
                    };
                    if finished {
                        audit.remove(id.as_str()).map_err(|e| self.err(e))?;
                        time.remove((at, id.as_str())).map_err(|e| self.err(e))?;
                        n += 1;
                    }
                }
            }
            Ok(n)
        })
    }

    /// One audit record by id.
    pub fn get_audit(&self, id: &str) -> Result<Option<AuditRecord>, StoreError> {
        self.read(|tx| {
            let audit = tx.open_table(AUDIT).map_err(|e| self.err(e))?;
            let v = audit.get(id).map_err(|e| self.err(e))?;
            v.map(|v| self.decode("audit", id, v.value().1)).transpose()
        })
    }

    /// The newest `limit` audit records, newest first.
    pub fn audit(&self, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
        self.read(|tx| {
            let audit = tx.open_table(AUDIT).map_err(|e| self.err(e))?;
            let time = tx.open_table(AUDIT_TIME).map_err(|e| self.err(e))?;
            let mut out = Vec::new();
            for row in time.iter().map_err(|e| self.err(e))?.rev() {
                if out.len() >= limit {
                    break;
                }
                let (k, _) = row.map_err(|e| self.err(e))?;
                let (_, id) = k.value();
                if let Some(v) = audit.get(id).map_err(|e| self.err(e))? {
                    out.push(self.decode("audit", id, v.value().1)?);
                }
            }
            Ok(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{AlertInfo, Status};
    use crate::remediation::audit::AuditStatus;
    use crate::remediation::call::AuditedCall;

    fn notification(key: &str) -> Notification {
        Notification {
            key: key.to_string(),
            receiver: "ops".to_string(),
            group_key: "{}:{alertname=\"A\"}".to_string(),
            group_labels: [("alertname".to_string(), "A".to_string())].into(),
            alerts: vec![AlertInfo {
                rule: "g/A".to_string(),
                labels: [("alertname".to_string(), "A".to_string())].into(),
                annotations: Default::default(),
                status: Status::Firing,
                starts_at: 10,
                ends_at: None,
                value: 1.0,
                generator_url: String::new(),
                explanation: None,
            }],
            created_at: 10,
            external_url: "http://prognos".to_string(),
        }
    }

    fn entry(key: &str, created: i64, next: i64) -> OutboxEntry {
        OutboxEntry {
            id: format!("telegram-ops/{key}"),
            target: "telegram-ops".to_string(),
            key: key.to_string(),
            delivery: Delivery::Notify(notification(key)),
            created_at: created,
            next_attempt_at: next,
            attempts: 0,
            progress: 0,
            last_error: None,
            in_flight: false,
        }
    }

    fn open() -> (tempfile::TempDir, std::path::PathBuf, NotifyStore) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.redb");
        let s = NotifyStore::open(&path).unwrap();
        (dir, path, s)
    }

    #[test]
    fn unacknowledged_entries_survive_a_crash() {
        let (_dir, path, s) = open();
        let e = entry("k1", 100, 100);
        assert_eq!(
            s.enqueue(std::slice::from_ref(&e), &[("dispatcher", "{\"v\":1}")])
                .unwrap(),
            1
        );
        drop(s); // as a crash would: no acknowledge
        let s = NotifyStore::open(&path).unwrap();
        assert_eq!(s.due(100, 10).unwrap(), vec![e.clone()]);
        assert_eq!(
            s.load_state("dispatcher").unwrap().as_deref(),
            Some("{\"v\":1}")
        );
        assert!(!s.was_delivered(&e.id).unwrap());
    }

    #[test]
    fn acknowledged_entries_are_not_due_and_not_enqueued_again() {
        let (_dir, path, s) = open();
        let e = entry("k1", 100, 100);
        s.enqueue(std::slice::from_ref(&e), &[]).unwrap();
        // Enqueuing the same id while pending is skipped too.
        assert_eq!(s.enqueue(std::slice::from_ref(&e), &[]).unwrap(), 0);
        s.acknowledge(&e.id, 150).unwrap();
        drop(s);
        let s = NotifyStore::open(&path).unwrap();
        assert!(s.due(i64::MAX, 10).unwrap().is_empty());
        assert!(s.was_delivered(&e.id).unwrap());
        assert_eq!(s.depth().unwrap(), (0, None));
        assert_eq!(s.next_due().unwrap(), None);
        assert_eq!(
            s.enqueue(std::slice::from_ref(&e), &[]).unwrap(),
            0,
            "delivered: skipped"
        );
        assert!(s.pending().unwrap().is_empty());
    }

    #[test]
    fn due_is_ordered_limited_and_stops_at_now() {
        let (_dir, _path, s) = open();
        let es = [
            entry("c", 1, 300),
            entry("a", 2, 100),
            entry("b", 3, 200),
            entry("d", 4, 400),
        ];
        assert_eq!(s.enqueue(&es, &[]).unwrap(), 4);
        let keys = |v: Vec<OutboxEntry>| v.into_iter().map(|e| e.key).collect::<Vec<_>>();
        assert_eq!(keys(s.due(300, 10).unwrap()), ["a", "b", "c"]);
        assert_eq!(keys(s.due(300, 2).unwrap()), ["a", "b"]);
        assert!(s.due(99, 10).unwrap().is_empty());
        assert_eq!(keys(s.pending().unwrap()), ["a", "b", "c", "d"]);
        assert_eq!(s.next_due().unwrap(), Some(100));
        assert_eq!(s.depth().unwrap(), (4, Some(1)));
    }

    #[test]
    fn reschedule_moves_an_entry_and_keeps_its_progress() {
        let (_dir, path, s) = open();
        let e = entry("k", 50, 100);
        s.enqueue(std::slice::from_ref(&e), &[]).unwrap();
        let mut r = e.clone();
        r.attempts = 1;
        r.progress = 2;
        r.next_attempt_at = 160;
        r.last_error = Some("HTTP 503".to_string());
        s.reschedule(&r).unwrap();
        assert!(s.due(159, 10).unwrap().is_empty());
        drop(s);
        let s = NotifyStore::open(&path).unwrap();
        assert_eq!(s.due(160, 10).unwrap(), vec![r.clone()]);
        assert_eq!(s.next_due().unwrap(), Some(160));
        assert_eq!(s.depth().unwrap(), (1, Some(50)));
        // Once acknowledged, a late reschedule does not bring it back.
        s.acknowledge(&r.id, 170).unwrap();
        s.reschedule(&r).unwrap();
        assert!(s.pending().unwrap().is_empty());
    }

    #[test]
    fn abandon_removes_and_records_why() {
        let (_dir, _path, s) = open();
        let e = entry("k", 50, 100);
        s.enqueue(std::slice::from_ref(&e), &[]).unwrap();
        s.abandon(&e.id, "HTTP 400: bad chat id", 120).unwrap();
        assert!(s.pending().unwrap().is_empty());
        assert!(!s.was_delivered(&e.id).unwrap());
        assert_eq!(
            s.abandoned(&e.id).unwrap(),
            Some((120, "HTTP 400: bad chat id".to_string()))
        );
    }

    #[test]
    fn prune_forgets_old_ids_only() {
        let (_dir, _path, s) = open();
        let es = [entry("a", 1, 1), entry("b", 1, 1), entry("c", 1, 1)];
        s.enqueue(&es, &[]).unwrap();
        s.acknowledge(&es[0].id, 100).unwrap();
        s.acknowledge(&es[1].id, 300).unwrap();
        s.abandon(&es[2].id, "gone", 150).unwrap();
        assert_eq!(s.prune(200).unwrap(), 2);
        assert!(!s.was_delivered(&es[0].id).unwrap());
        assert!(s.was_delivered(&es[1].id).unwrap());
        assert_eq!(s.abandoned(&es[2].id).unwrap(), None);
        assert_eq!(s.prune(200).unwrap(), 0);
    }

    #[test]
    fn state_blobs_round_trip() {
        let (_dir, path, s) = open();
        assert_eq!(s.load_state("governor").unwrap(), None);
        s.save_state("governor", "{\"a\":1}").unwrap();
        s.save_state("governor", "{\"a\":2}").unwrap();
        drop(s);
        let s = NotifyStore::open(&path).unwrap();
        assert_eq!(
            s.load_state("governor").unwrap().as_deref(),
            Some("{\"a\":2}")
        );
    }

    #[test]
    fn group_rows_are_written_replaced_and_deleted_with_the_entries() {
        let (_dir, path, s) = open();
        let rows = |groups: &[(&str, Option<&str>)], next_serial| GroupRows {
            groups: groups
                .iter()
                .map(|(k, v)| (k.to_string(), v.map(str::to_string)))
                .collect(),
            next_serial,
        };
        let e = entry("k", 1, 1);
        let first = rows(&[("a", Some("{\"v\":1}")), ("b", Some("{\"v\":2}"))], 2);
        assert_eq!(
            s.enqueue_with_audit(std::slice::from_ref(&e), &[], Some(&first), &[])
                .unwrap(),
            1
        );
        let second = rows(&[("a", None), ("b", Some("{\"v\":3}")), ("zz", None)], 3);
        s.enqueue_with_audit(&[], &[], Some(&second), &[]).unwrap();
        drop(s);
        let s = NotifyStore::open(&path).unwrap();
        assert_eq!(
            s.load_groups().unwrap(),
            (vec![("b".to_string(), "{\"v\":3}".to_string())], Some(3))
        );
        assert_eq!(s.pending().unwrap(), vec![e]);
        // Without rows, neither the rows nor the serial change.
        s.enqueue(&[], &[("governor", "{}")]).unwrap();
        assert_eq!(s.load_groups().unwrap().1, Some(3));
    }

    fn record(id: &str, at: i64) -> AuditRecord {
        AuditRecord {
            id: id.to_string(),
            action: "restart".to_string(),
            alert: [("alertname".to_string(), "A".to_string())].into(),
            reason: "A".to_string(),
            requested_at: at,
            status: AuditStatus::Approved,
            decided_by: Some("policy".to_string()),
            decided_at: Some(at),
            request: Some(AuditedCall {
                action: "restart".to_string(),
                url: "http://x/".to_string(),
                method: "POST".to_string(),
                body: "{}".to_string(),
            }),
            result: None,
            finished_at: None,
            refusals: vec![],
        }
    }

    #[test]
    fn audit_records_are_replaced_by_id_and_listed_newest_first() {
        let (_dir, _path, s) = open();
        s.put_audit(&record("a", 100)).unwrap();
        s.put_audit(&record("b", 300)).unwrap();
        s.put_audit(&record("c", 200)).unwrap();
        let mut a = record("a", 400);
        a.status = AuditStatus::Sent;
        a.result = Some("HTTP 200".to_string());
        s.put_audit(&a).unwrap();
        let ids: Vec<String> = s.audit(10).unwrap().into_iter().map(|r| r.id).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert_eq!(s.audit(2).unwrap().len(), 2);
        assert_eq!(s.get_audit("a").unwrap(), Some(a));
        assert_eq!(s.get_audit("zz").unwrap(), None);
    }

    #[test]
    fn a_call_and_its_audit_record_are_written_together() {
        let (_dir, path, s) = open();
        let call = entry("remediation:restart/r1", 100, 100);
        let r = record("r1", 100);
        assert_eq!(
            s.enqueue_with_audit(
                std::slice::from_ref(&call),
                &[("governor", "{}")],
                None,
                std::slice::from_ref(&r)
            )
            .unwrap(),
            1
        );
        drop(s);
        let s = NotifyStore::open(&path).unwrap();
        assert_eq!(s.get_audit("r1").unwrap(), Some(r));
        assert_eq!(s.due(100, 10).unwrap().len(), 1);
        assert_eq!(s.load_state("governor").unwrap().as_deref(), Some("{}"));
    }

    #[test]
    fn old_final_audit_records_are_pruned_and_open_ones_kept() {
        let (_dir, _path, s) = open();
        let with = |id: &str, at: i64, status: AuditStatus| {
            let mut r = record(id, at);
            r.status = status;
            s.put_audit(&r).unwrap();
        };
        with("old-sent", 100, AuditStatus::Sent);
        with("old-rejected", 110, AuditStatus::Rejected);
        with("old-waiting", 120, AuditStatus::AwaitingApproval);
        with("old-queued", 130, AuditStatus::Approved);
        with("new-sent", 500, AuditStatus::Sent);
        assert_eq!(s.prune_audit(200).unwrap(), 2);
        let mut ids: Vec<String> = s.audit(10).unwrap().into_iter().map(|r| r.id).collect();
        ids.sort();
        assert_eq!(ids, ["new-sent", "old-queued", "old-waiting"]);
        assert_eq!(s.get_audit("old-sent").unwrap(), None);
        assert_eq!(s.prune_audit(200).unwrap(), 0, "nothing more to forget");
    }

    #[test]
    fn a_corrupted_row_is_a_decode_error_naming_table_and_key() {
        let (_dir, _path, s) = open();
        s.write(|tx| {
            tx.open_table(OUTBOX)
                .unwrap()
                .insert("telegram-ops/bad", (5, 5, "{not json"))
                .unwrap();
            tx.open_table(DUE)
                .unwrap()
                .insert((5, "telegram-ops/bad"), ())
                .unwrap();
            tx.open_table(AUDIT)
                .unwrap()
                .insert("deadbeef", (5, "[]"))
                .unwrap();
            Ok(())
        })
        .unwrap();
        let e = s.due(10, 10).unwrap_err().to_string();
        assert!(
            e.contains("table outbox") && e.contains("\"telegram-ops/bad\""),
            "{e}"
        );
        assert!(e.contains("notify.redb"), "{e}");
        let e = s.get_audit("deadbeef").unwrap_err().to_string();
        assert!(e.contains("table audit") && e.contains("deadbeef"), "{e}");
    }
}
