//! Loading the [`Dispatcher`] from the [`NotifyStore`]: from its `groups`
//! rows and saved serial, or, once, from the single `dispatcher` state blob
//! an older version saved, which is then moved to rows in one transaction.

use crate::route::Dispatcher;
use crate::store::{DISPATCHER_BLOB, NotifyStore, StoreError};

/// Why the dispatcher could not be loaded: the store failed, or a saved
/// value is unreadable ([`StoreError::Decode`] names the store file, the
/// table — `groups` for a group row, `state` for the serial or an old blob —
/// and the key).
pub type LoadError = StoreError;

/// The dispatcher the store holds. A whole dispatcher saved as one blob by
/// an older version is read, written as rows with the blob deleted (one
/// transaction) and returned; otherwise the dispatcher is rebuilt from the
/// `groups` rows (empty when none were saved).
pub fn load_dispatcher(store: &NotifyStore) -> Result<Dispatcher, LoadError> {
    if let Some(json) = store.load_state(DISPATCHER_BLOB)? {
        let dispatcher: Dispatcher =
            serde_json::from_str(&json).map_err(|e| StoreError::Decode {
                path: store.path().to_string(),
                table: "state".to_string(),
                key: DISPATCHER_BLOB.to_string(),
                message: e.to_string(),
            })?;
        store.migrate_dispatcher_blob(&dispatcher.all_rows())?;
        tracing::info!(
            groups = dispatcher.sizes().0,
            "Dispatcher state moved from one blob to one row per group."
        );
        return Ok(dispatcher);
    }
    let (rows, serial) = store.load_groups()?;
    Dispatcher::from_rows(rows, serial.unwrap_or(0)).map_err(|e| StoreError::Decode {
        path: store.path().to_string(),
        table: "groups".to_string(),
        key: e.key,
        message: e.source.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{AlertInfo, KeyValues, Status};
    use crate::route::{GroupRows, Route};

    fn open() -> (tempfile::TempDir, std::path::PathBuf, NotifyStore) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.redb");
        let s = NotifyStore::open(&path).unwrap();
        (dir, path, s)
    }

    fn root() -> Route {
        Route {
            receiver: "ops".into(),
            matchers: vec![],
            group_by: vec!["service".into()],
            group_wait: 30,
            group_interval: 300,
            repeat_interval: 3600,
            continue_matching: false,
            routes: vec![],
        }
    }

    fn alert(name: &str, service: &str, status: Status) -> AlertInfo {
        let labels: KeyValues = [("alertname", name), ("service", service)]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        AlertInfo {
            rule: "g/r".into(),
            labels,
            annotations: KeyValues::new(),
            status,
            starts_at: 0,
            ends_at: (status == Status::Resolved).then_some(1),
            value: 1.0,
            generator_url: String::new(),
            explanation: None,
        }
    }

    fn no_silence(_: &KeyValues) -> bool {
        false
    }

    fn resolved_too(_: &str) -> bool {
        true
    }

    /// Ingests `alerts` and persists the change as the notifier does.
    fn ingest(s: &NotifyStore, d: &mut Dispatcher, alerts: &[AlertInfo], now: i64) {
        let change = d.ingest(&root(), alerts, now);
        s.enqueue_with_audit(&[], &[], Some(&d.rows(&change)), &[])
            .unwrap();
    }

    /// Flushes and persists the change as the notifier does.
    fn flush(s: &NotifyStore, d: &mut Dispatcher, now: i64) -> usize {
        let (ns, change) = d.flush(&root(), &no_silence, &resolved_too, "u", now);
        s.enqueue_with_audit(&[], &[], Some(&d.rows(&change)), &[])
            .unwrap();
        ns.len()
    }

    #[test]
    fn a_fresh_store_loads_an_empty_dispatcher() {
        let (_dir, _path, s) = open();
        assert_eq!(load_dispatcher(&s).unwrap(), Dispatcher::default());
        assert_eq!(s.load_groups().unwrap(), (vec![], None));
    }

    #[test]
    fn rows_round_trip_and_a_removed_group_is_deleted() {
        let (_dir, path, s) = open();
        let mut d = Dispatcher::default();
        ingest(&s, &mut d, &[alert("A", "x", Status::Firing)], 0);
        ingest(&s, &mut d, &[alert("B", "y", Status::Firing)], 0);
        assert_eq!(flush(&s, &mut d, 30), 2);
        assert_eq!(load_dispatcher(&s).unwrap(), d);
        let (rows, serial) = s.load_groups().unwrap();
        assert_eq!(rows.len(), 2);
        assert_eq!(serial, Some(2));

        ingest(&s, &mut d, &[alert("A", "x", Status::Resolved)], 40);
        assert_eq!(flush(&s, &mut d, 330), 1, "x resolved");
        assert_eq!(d.sizes(), (1, 1));
        drop(s);
        let s = NotifyStore::open(&path).unwrap();
        let (rows, serial) = s.load_groups().unwrap();
        let keys: Vec<&str> = rows.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, [r#"0:ops:service="y""#], "x's row is deleted");
        assert_eq!(serial, Some(2), "serials are never reused");
        assert_eq!(load_dispatcher(&s).unwrap(), d);
    }

    #[test]
    fn an_old_blob_is_migrated_to_rows_once() {
        let (_dir, path, s) = open();
        let mut d = Dispatcher::default();
        let _ = d.ingest(
            &root(),
            &[
                alert("A", "x", Status::Firing),
                alert("B", "y", Status::Firing),
            ],
            0,
        );
        let _ = d.flush(&root(), &no_silence, &resolved_too, "u", 30);
        let _ = d.ingest(&root(), &[alert("C", "z", Status::Firing)], 40);
        let blob = serde_json::to_string(&d).unwrap();
        // A stale row (a newer version ran, then an older one): the blob wins.
        let stale = GroupRows {
            groups: vec![("stale".to_string(), Some("{oops".to_string()))],
            next_serial: 99,
        };
        s.enqueue_with_audit(&[], &[(DISPATCHER_BLOB, &blob)], Some(&stale), &[])
            .unwrap();

        assert_eq!(load_dispatcher(&s).unwrap(), d);
        assert_eq!(s.load_state(DISPATCHER_BLOB).unwrap(), None, "blob gone");
        let (rows, serial) = s.load_groups().unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(serial, Some(3));
        drop(s);
        // The second load reads the rows.
        let s = NotifyStore::open(&path).unwrap();
        assert_eq!(load_dispatcher(&s).unwrap(), d);
    }

    #[test]
    fn an_unreadable_blob_is_a_decode_error_and_kept() {
        let (_dir, _path, s) = open();
        s.save_state(DISPATCHER_BLOB, "{oops").unwrap();
        let e = load_dispatcher(&s).unwrap_err();
        assert!(matches!(e, StoreError::Decode { .. }), "{e:?}");
        let e = e.to_string();
        assert!(
            e.contains("notify.redb") && e.contains("table state") && e.contains("\"dispatcher\""),
            "{e}"
        );
        assert!(s.load_state(DISPATCHER_BLOB).unwrap().is_some());
    }

    #[test]
    fn a_corrupt_group_row_is_a_decode_error_naming_table_and_key() {
        let (_dir, _path, s) = open();
        let rows = GroupRows {
            groups: vec![
                ("0:ops:service=\"bad\"".to_string(), Some("[]".to_string())),
                ("0:ops:service=\"gone\"".to_string(), None),
            ],
            next_serial: 1,
        };
        s.enqueue_with_audit(&[], &[], Some(&rows), &[]).unwrap();
        let e = load_dispatcher(&s).unwrap_err();
        assert!(matches!(e, StoreError::Decode { .. }), "{e:?}");
        let e = e.to_string();
        assert!(
            e.contains("notify.redb")
                && e.contains("table groups")
                && e.contains(r#""0:ops:service=\"bad\"""#),
            "{e}"
        );
    }

    #[test]
    fn an_unreadable_serial_is_a_decode_error() {
        let (_dir, _path, s) = open();
        s.save_state(crate::store::DISPATCHER_SERIAL, "\"x\"")
            .unwrap();
        let e = load_dispatcher(&s).unwrap_err().to_string();
        assert!(
            e.contains("table state") && e.contains("dispatcher_serial"),
            "{e}"
        );
    }
}
