//! The embedded store (redb) holding each rule's alert state between runs.
//! One table, `alerts`: rule id → JSON of its [`RuleAlerts`]. Each
//! evaluation's changes are written in one durable transaction before its
//! events are handed to the sink, so a crash never loses a transition that
//! was announced.

use std::path::Path;

use prognos_notifiers::database::Reopening;
use prometheus_client::metrics::counter::Counter;
use redb::{ReadableDatabase as _, ReadableTable as _, TableDefinition};

use super::state::RuleAlerts;

const ALERTS: TableDefinition<&str, &str> = TableDefinition::new("alerts");

/// A failure of the embedded store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// redb failed (open, transaction, table, commit).
    #[error("state store {path}: {message}")]
    Db {
        /// The database file.
        path: String,
        /// What failed.
        message: String,
    },
    /// A stored value could not be decoded.
    #[error("state store {path}: rule {rule}: {message}")]
    Decode {
        /// The database file.
        path: String,
        /// The rule whose state is unreadable.
        rule: String,
        /// Why.
        message: String,
    },
}

impl prognos_notifiers::database::Failure for StoreError {
    fn closes_store(&self) -> bool {
        matches!(self, StoreError::Db { .. })
    }
}

/// The alert state of every rule, on disk.
#[derive(Debug)]
pub struct AlertStore {
    db: Reopening,
    path: String,
}

impl AlertStore {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let p = path.display().to_string();
        let (db, _) = Reopening::open(path).map_err(|e| StoreError::Db {
            path: p.clone(),
            message: e.to_string(),
        })?;
        Ok(Self { db, path: p })
    }

    /// Whether the store can be written (see [`Reopening`]).
    pub fn healthy(&self) -> bool {
        self.db.healthy()
    }

    /// Counts its failures in `counter` (see [`Reopening::count_errors_in`]).
    pub fn count_errors_in(&self, counter: Counter) {
        self.db.count_errors_in(counter);
    }

    /// Makes the next `n` operations fail (fault-injection tests).
    pub fn inject_faults(&self, n: u32) {
        self.db.inject_faults(n);
    }

    fn err(&self, e: impl std::fmt::Display) -> StoreError {
        StoreError::Db {
            path: self.path.clone(),
            message: e.to_string(),
        }
    }

    /// Every rule's state.
    pub fn load_all(&self) -> Result<Vec<(String, RuleAlerts)>, StoreError> {
        self.db.with(|db| self.read_all(db), |m| self.err(m))
    }

    fn read_all(&self, db: &redb::Database) -> Result<Vec<(String, RuleAlerts)>, StoreError> {
        let tx = db.begin_read().map_err(|e| self.err(e))?;
        let table = match tx.open_table(ALERTS) {
            Ok(t) => t,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(self.err(e)),
        };
        let mut out = Vec::new();
        for row in table.iter().map_err(|e| self.err(e))? {
            let (k, v) = row.map_err(|e| self.err(e))?;
            let rule = k.value().to_string();
            let state = serde_json::from_str(v.value()).map_err(|e| StoreError::Decode {
                path: self.path.clone(),
                rule: rule.clone(),
                message: e.to_string(),
            })?;
            out.push((rule, state));
        }
        Ok(out)
    }

    /// Writes the given rules' states in one durable transaction.
    pub fn save(&self, states: &[(&str, &RuleAlerts)]) -> Result<(), StoreError> {
        self.db.with(
            |db| {
                let tx = db.begin_write().map_err(|e| self.err(e))?;
                {
                    let mut table = tx.open_table(ALERTS).map_err(|e| self.err(e))?;
                    for (rule, state) in states {
                        let json = serde_json::to_string(state).map_err(|e| self.err(e))?;
                        table
                            .insert(*rule, json.as_str())
                            .map_err(|e| self.err(e))?;
                    }
                }
                tx.commit().map_err(|e| self.err(e))
            },
            |m| self.err(m),
        )
    }

    /// Forgets rules no longer configured.
    pub fn remove(&self, rules: &[&str]) -> Result<(), StoreError> {
        self.db.with(
            |db| {
                let tx = db.begin_write().map_err(|e| self.err(e))?;
                {
                    let mut table = tx.open_table(ALERTS).map_err(|e| self.err(e))?;
                    for rule in rules {
                        table.remove(*rule).map_err(|e| self.err(e))?;
                    }
                }
                tx.commit().map_err(|e| self.err(e))
            },
            |m| self.err(m),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::super::state::{AlertStatus, Labels, Observation, Timing};
    use super::*;

    #[test]
    fn state_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let mut r = RuleAlerts::default();
        let labels: Labels = [("alertname".to_string(), "A".to_string())].into();
        r.eval(
            0,
            vec![Observation::holding(labels.clone(), 1.0, Labels::new())],
            Timing::default(),
        );
        {
            let store = AlertStore::open(&path).unwrap();
            assert!(store.load_all().unwrap().is_empty());
            store.save(&[("g/A", &r)]).unwrap();
        }
        let store = AlertStore::open(&path).unwrap();
        let all = store.load_all().unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].0, "g/A");
        assert_eq!(
            all[0].1.active().next().unwrap().status,
            AlertStatus::Firing
        );
        store.remove(&["g/A"]).unwrap();
        assert!(store.load_all().unwrap().is_empty());
    }

    #[test]
    fn garbage_in_the_store_is_a_decode_error_naming_the_rule() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let store = AlertStore::open(&path).unwrap();
        store
            .db
            .with(
                |db| {
                    let tx = db.begin_write().unwrap();
                    tx.open_table(ALERTS)
                        .unwrap()
                        .insert("g/B", "{not json")
                        .unwrap();
                    tx.commit().unwrap();
                    Ok(())
                },
                |m| store.err(m),
            )
            .unwrap();
        let e = store.load_all().unwrap_err().to_string();
        assert!(e.contains("rule g/B"), "{e}");
    }
}
