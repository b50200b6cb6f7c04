//! Alertmanager-style routing and grouping. The [`Route`] tree picks the
//! receivers of an alert; the [`Dispatcher`] groups alerts per route and
//! group labels and decides when a group is notified (`group_wait`,
//! `group_interval`, `repeat_interval`). Pure and synchronous: the time is
//! passed in as Unix seconds, and the state is plain data persisted as JSON,
//! one row per group: [`Dispatcher::ingest`] and [`Dispatcher::flush`] return
//! a [`Change`] naming the groups they touched, from which
//! [`Dispatcher::rows`] gives the rows to write and [`Dispatcher::revert`]
//! undoes the operation when the write fails, both in time proportional to
//! the groups touched, not to all groups held.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::alert::{AlertInfo, KeyValues, Notification, Status};
use crate::matcher::{Matcher, all_match};

/// The `group_by` entry that groups by every label.
pub const GROUP_BY_ALL: &str = "...";

/// One node of the routing tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Route {
    /// The receiver's name; a child with none inherits its parent's.
    #[serde(default)]
    pub receiver: String,
    /// The labels an alert must have to take this route (ignored on the root).
    #[serde(default)]
    pub matchers: Vec<Matcher>,
    /// Labels alerts are grouped by: `["..."]` groups by all labels, `[]`
    /// makes one group per route.
    #[serde(default)]
    pub group_by: Vec<String>,
    /// Wait before the first notification of a new group, seconds.
    #[serde(default)]
    pub group_wait: i64,
    /// Wait between notifications of a group's changes, seconds.
    #[serde(default)]
    pub group_interval: i64,
    /// Resend a still-firing group after this long, seconds.
    #[serde(default)]
    pub repeat_interval: i64,
    /// Keep matching the following siblings after this route matched.
    #[serde(default)]
    pub continue_matching: bool,
    /// Child routes, tried in order.
    #[serde(default)]
    pub routes: Vec<Route>,
}

/// The id of the root route; children are `"{parent}/{index}"`.
const ROOT_ID: &str = "0";

impl Route {
    /// Fills children's empty receiver/group_by and unset (<= 0) timings
    /// from their parent, recursively (Alertmanager inheritance). Call once
    /// on the root.
    pub fn inherit(&mut self) {
        let (receiver, group_by) = (self.receiver.clone(), self.group_by.clone());
        let (wait, interval, repeat) = (self.group_wait, self.group_interval, self.repeat_interval);
        for c in &mut self.routes {
            if c.receiver.is_empty() {
                c.receiver.clone_from(&receiver);
            }
            if c.group_by.is_empty() {
                c.group_by.clone_from(&group_by);
            }
            if c.group_wait <= 0 {
                c.group_wait = wait;
            }
            if c.group_interval <= 0 {
                c.group_interval = interval;
            }
            if c.repeat_interval <= 0 {
                c.repeat_interval = repeat;
            }
            c.inherit();
        }
    }

    /// The routes an alert with `labels` goes to, depth-first as
    /// Alertmanager: the root always matches; the deepest matching children
    /// win; a child without `continue_matching` stops its siblings; if no
    /// child matches the node itself is used. Returns (route id, route),
    /// the id being the path of child indexes from the root, e.g. `"0/1/0"`.
    pub fn matching<'a>(&'a self, labels: &KeyValues) -> Vec<(String, &'a Route)> {
        let mut out = Vec::new();
        self.collect(ROOT_ID.to_string(), labels, &mut out);
        out
    }

    fn collect<'a>(&'a self, id: String, labels: &KeyValues, out: &mut Vec<(String, &'a Route)>) {
        let before = out.len();
        for (i, c) in self.routes.iter().enumerate() {
            if !all_match(&c.matchers, labels) {
                continue;
            }
            c.collect(format!("{id}/{i}"), labels, out);
            if !c.continue_matching {
                break;
            }
        }
        if out.len() == before {
            out.push((id, self));
        }
    }

    /// The route with id `id` (as [`Route::matching`] gives), if the tree has it.
    pub fn by_id(&self, id: &str) -> Option<&Route> {
        let mut parts = id.split('/');
        if parts.next() != Some(ROOT_ID) {
            return None;
        }
        let mut node = self;
        for p in parts {
            node = node.routes.get(p.parse::<usize>().ok()?)?;
        }
        Some(node)
    }

    /// The labels of `labels` this route groups by.
    pub fn group_labels(&self, labels: &KeyValues) -> KeyValues {
        if self.group_by.iter().any(|g| g == GROUP_BY_ALL) {
            return labels.clone();
        }
        self.group_by
            .iter()
            .filter_map(|k| labels.get(k).map(|v| (k.clone(), v.clone())))
            .collect()
    }
}

/// The key of the group of `route_id`, `receiver` and `group_labels`:
/// `{route id}:{receiver}:{k="v",…}`.
pub fn group_key(route_id: &str, receiver: &str, group_labels: &KeyValues) -> String {
    let labels: Vec<String> = group_labels
        .iter()
        .map(|(k, v)| format!("{k}={v:?}"))
        .collect();
    format!("{route_id}:{receiver}:{}", labels.join(","))
}

/// One group of alerts: same route, receiver and group labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Group {
    route_id: String,
    receiver: String,
    group_labels: KeyValues,
    /// The alerts by fingerprint (a newer state replaces the older).
    alerts: BTreeMap<String, AlertInfo>,
    /// When the group is flushed next.
    next_flush: i64,
    /// The timings of the route when the group last took an alert, used
    /// when the route is no longer in the tree (configuration changed).
    group_interval: i64,
    repeat_interval: i64,
    /// When the last notification was made.
    last_sent: Option<i64>,
    /// Fingerprints the receiver was told fire (and not yet told resolved).
    told_firing: BTreeSet<String>,
    /// Dispatcher-wide serial of this group, so a group re-created under
    /// the same key never reuses a notification key.
    serial: u64,
    /// Notifications made by this group.
    seq: u64,
}

/// Groups alerts and decides what to notify when. Plain data, persisted
/// one JSON row per group (see [`Dispatcher::rows`]) with the
/// notifications it produced. Still (de)serialisable whole, so a state saved
/// as one blob by an older version can be read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Dispatcher {
    groups: BTreeMap<String, Group>,
    /// Serial of the next group created.
    next_serial: u64,
}

/// What one [`Dispatcher::ingest`] or [`Dispatcher::flush`] changed: each
/// group it touched (created, modified or removed) as it was before, and the
/// serial of the next group before. Give it to [`Dispatcher::rows`] for the
/// rows to persist, or to [`Dispatcher::revert`] to undo the operation.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// Touched group key → the group before the operation (`None`: absent).
    before: BTreeMap<String, Option<Group>>,
    /// The dispatcher's `next_serial` before the operation.
    next_serial: u64,
}

impl Change {
    fn new(next_serial: u64) -> Self {
        Self {
            before: BTreeMap::new(),
            next_serial,
        }
    }

    /// Records the group under `key` as it is now, unless already recorded:
    /// call before its first modification.
    fn touch(&mut self, groups: &BTreeMap<String, Group>, key: &str) {
        if !self.before.contains_key(key) {
            self.before
                .insert(key.to_string(), groups.get(key).cloned());
        }
    }

    /// Whether no group was touched (nothing to persist or revert).
    pub fn is_empty(&self) -> bool {
        self.before.is_empty()
    }

    /// How many groups were touched.
    pub fn len(&self) -> usize {
        self.before.len()
    }
}

/// Rows of a [`Dispatcher`] to persist, as plain strings so a store needs
/// no knowledge of the group type: [`Dispatcher::rows`] gives those of a
/// [`Change`], [`Dispatcher::all_rows`] every group.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupRows {
    /// `(group key, JSON of the group)`, or `(group key, None)` for a group
    /// that no longer exists (its row is to be deleted). Keys are unique.
    pub groups: Vec<(String, Option<String>)>,
    /// The serial of the next group the dispatcher creates.
    pub next_serial: u64,
}

/// A persisted group row that could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("group {key:?}: {source}")]
pub struct GroupRowError {
    /// The row's group key.
    pub key: String,
    /// Why its JSON is unreadable.
    #[source]
    pub source: serde_json::Error,
}

/// A group's row: plain data with string keys, so serialising cannot fail.
fn group_json(g: &Group) -> String {
    serde_json::to_string(g).unwrap_or_default()
}

/// A group as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupView {
    /// The group's key.
    pub group_key: String,
    /// The receiver it notifies.
    pub receiver: String,
    /// The labels it was formed by.
    pub group_labels: KeyValues,
    /// Its alerts (firing first, then resolved; each sorted by labels).
    pub alerts: Vec<AlertInfo>,
    /// When it is flushed next (Unix seconds).
    pub next_flush: i64,
}

impl Dispatcher {
    /// Takes alerts (firing or resolved; the same fingerprint replaces the
    /// previous state). A new group is due at `now + group_wait`. A resolved
    /// alert never seen firing by the group is ignored. Returns the groups
    /// touched, as they were before.
    pub fn ingest(&mut self, root: &Route, alerts: &[AlertInfo], now: i64) -> Change {
        let mut change = Change::new(self.next_serial);
        for alert in alerts {
            let fp = alert.fingerprint();
            for (route_id, route) in root.matching(&alert.labels) {
                let group_labels = route.group_labels(&alert.labels);
                let key = group_key(&route_id, &route.receiver, &group_labels);
                if alert.status == Status::Resolved {
                    // Only an alert the group holds can resolve in it.
                    if self
                        .groups
                        .get(&key)
                        .is_some_and(|g| g.alerts.contains_key(&fp))
                    {
                        change.touch(&self.groups, &key);
                        if let Some(held) = self
                            .groups
                            .get_mut(&key)
                            .and_then(|g| g.alerts.get_mut(&fp))
                        {
                            held.clone_from(alert);
                        }
                    }
                    continue;
                }
                change.touch(&self.groups, &key);
                let g = self.groups.entry(key).or_insert_with(|| {
                    let serial = self.next_serial;
                    self.next_serial += 1;
                    Group {
                        route_id: route_id.clone(),
                        receiver: route.receiver.clone(),
                        group_labels,
                        alerts: BTreeMap::new(),
                        next_flush: now + route.group_wait.max(0),
                        group_interval: route.group_interval,
                        repeat_interval: route.repeat_interval,
                        last_sent: None,
                        told_firing: BTreeSet::new(),
                        serial,
                        seq: 0,
                    }
                });
                g.group_interval = route.group_interval;
                g.repeat_interval = route.repeat_interval;
                g.alerts.insert(fp.clone(), alert.clone());
            }
        }
        change
    }

    /// The notifications due at `now`. For each group whose flush time has
    /// come, tells the receiver its unsilenced firing alerts, plus (when
    /// `send_resolved(receiver)`) the resolved ones it was told fire. A
    /// notification is made when a firing alert is new to the receiver, when
    /// one it knows resolved, or when anything fires and the last
    /// notification is `repeat_interval` old. Resolved alerts are then
    /// dropped, an empty group removed, and the others are due again after
    /// `group_interval`. Returns the notifications and the groups touched
    /// (every group due), as they were before.
    pub fn flush(
        &mut self,
        root: &Route,
        silenced: &dyn Fn(&KeyValues) -> bool,
        send_resolved: &dyn Fn(&str) -> bool,
        external_url: &str,
        now: i64,
    ) -> (Vec<Notification>, Change) {
        let mut change = Change::new(self.next_serial);
        let mut out = Vec::new();
        let mut emptied = Vec::new();
        for (key, g) in self.groups.iter_mut().filter(|(_, g)| g.next_flush <= now) {
            // Each key comes once: this is the group before any change.
            change.before.insert(key.clone(), Some(g.clone()));
            // The current configuration's timings when the route still exists.
            let (interval, repeat) = match root.by_id(&g.route_id) {
                Some(r) if r.receiver == g.receiver => (r.group_interval, r.repeat_interval),
                _ => (g.group_interval, g.repeat_interval),
            };
            let resolved_too = send_resolved(&g.receiver);
            let mut firing: Vec<&AlertInfo> = Vec::new();
            let mut resolved: Vec<&AlertInfo> = Vec::new();
            let mut new_firing = false;
            for (fp, a) in &g.alerts {
                if silenced(&a.labels) {
                    continue;
                }
                match a.status {
                    Status::Firing => {
                        new_firing |= !g.told_firing.contains(fp);
                        firing.push(a);
                    }
                    // A resolution is news only to a receiver told it fired.
                    Status::Resolved if resolved_too && g.told_firing.contains(fp) => {
                        resolved.push(a);
                    }
                    Status::Resolved => {}
                }
            }
            let repeat_due =
                !firing.is_empty() && g.last_sent.is_none_or(|t| now - t >= repeat.max(0));
            let send = new_firing || !resolved.is_empty() || repeat_due;
            // The receiver keeps believing in alerts it was told fire while
            // they still fire (silenced or not); told-firing now too.
            let still_firing: BTreeSet<String> = g
                .alerts
                .iter()
                .filter(|(_, a)| a.status == Status::Firing)
                .map(|(fp, _)| fp.clone())
                .collect();
            let mut told: BTreeSet<String> =
                g.told_firing.intersection(&still_firing).cloned().collect();
            if send {
                firing.sort_by(|a, b| a.labels.cmp(&b.labels));
                resolved.sort_by(|a, b| a.labels.cmp(&b.labels));
                told.extend(firing.iter().map(|a| a.fingerprint()));
                let alerts: Vec<AlertInfo> = firing.into_iter().chain(resolved).cloned().collect();
                out.push(Notification {
                    key: notification_key(key, &g.receiver, g.serial, g.seq),
                    receiver: g.receiver.clone(),
                    group_key: key.clone(),
                    group_labels: g.group_labels.clone(),
                    alerts,
                    created_at: now,
                    external_url: external_url.to_string(),
                });
                g.seq += 1;
                g.last_sent = Some(now);
            }
            g.told_firing = told;
            g.alerts.retain(|_, a| a.status == Status::Firing);
            if g.alerts.is_empty() {
                emptied.push(key.clone());
            } else {
                // At least a second, so a zero interval cannot spin.
                g.next_flush = now + interval.max(1);
            }
        }
        for key in emptied {
            self.groups.remove(&key);
        }
        (out, change)
    }

    /// Undoes the operation that returned `change` (the store write that
    /// was to persist it failed): every group it touched, and the serial of
    /// the next group, are put back as they were. Changes must be reverted
    /// newest first.
    pub fn revert(&mut self, change: Change) {
        for (key, before) in change.before {
            match before {
                Some(g) => {
                    self.groups.insert(key, g);
                }
                None => {
                    self.groups.remove(&key);
                }
            }
        }
        self.next_serial = change.next_serial;
    }

    /// The rows to persist after the operation that returned `change`: for
    /// each group it touched, its JSON now, or `None` if it is gone; and the
    /// serial of the next group.
    pub fn rows(&self, change: &Change) -> GroupRows {
        GroupRows {
            groups: change
                .before
                .keys()
                .map(|key| (key.clone(), self.groups.get(key).map(group_json)))
                .collect(),
            next_serial: self.next_serial,
        }
    }

    /// Every group's row (e.g. to migrate a state saved as one blob).
    pub fn all_rows(&self) -> GroupRows {
        GroupRows {
            groups: self
                .groups
                .iter()
                .map(|(key, g)| (key.clone(), Some(group_json(g))))
                .collect(),
            next_serial: self.next_serial,
        }
    }

    /// Rebuilds a dispatcher from its persisted rows (`(group key, JSON)`,
    /// as [`Dispatcher::rows`] wrote them) and serial of the next group. The
    /// serial is raised above every group's, should it lag behind, so a
    /// group created later never reuses a notification key. Fails on the
    /// first row whose JSON is unreadable, naming its key.
    pub fn from_rows(
        rows: impl IntoIterator<Item = (String, String)>,
        next_serial: u64,
    ) -> Result<Self, GroupRowError> {
        let mut groups = BTreeMap::new();
        for (key, json) in rows {
            match serde_json::from_str::<Group>(&json) {
                Ok(g) => {
                    groups.insert(key, g);
                }
                Err(source) => return Err(GroupRowError { key, source }),
            }
        }
        let next_serial = groups
            .values()
            .map(|g| g.serial.saturating_add(1))
            .fold(next_serial, u64::max);
        Ok(Self {
            groups,
            next_serial,
        })
    }

    /// Earliest flush time over all groups.
    pub fn next_due(&self) -> Option<i64> {
        self.groups.values().map(|g| g.next_flush).min()
    }

    /// Number of groups and of alerts held, for metrics.
    pub fn sizes(&self) -> (usize, usize) {
        let alerts = self.groups.values().map(|g| g.alerts.len()).sum();
        (self.groups.len(), alerts)
    }

    /// The groups, for the API.
    pub fn groups(&self) -> Vec<GroupView> {
        self.groups
            .iter()
            .map(|(key, g)| {
                let mut alerts: Vec<AlertInfo> = g.alerts.values().cloned().collect();
                alerts.sort_by(|a, b| {
                    (a.status != Status::Firing, &a.labels)
                        .cmp(&(b.status != Status::Firing, &b.labels))
                });
                GroupView {
                    group_key: key.clone(),
                    receiver: g.receiver.clone(),
                    group_labels: g.group_labels.clone(),
                    alerts,
                    next_flush: g.next_flush,
                }
            })
            .collect()
    }
}

/// Stable idempotency key of a group's `seq`-th notification.
fn notification_key(group_key: &str, receiver: &str, serial: u64, seq: u64) -> String {
    let mut h = Sha256::new();
    // Length-prefixed so no two field splits hash alike.
    for part in [group_key.as_bytes(), receiver.as_bytes()] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.update(serial.to_be_bytes());
    h.update(seq.to_be_bytes());
    hex::encode(&h.finalize()[..16])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::Explanation;
    use crate::matcher::parse_matchers;
    use proptest::prelude::*;

    fn labels(pairs: &[(&str, &str)]) -> KeyValues {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn alert(pairs: &[(&str, &str)], status: Status) -> AlertInfo {
        AlertInfo {
            rule: "g/r".into(),
            labels: labels(pairs),
            annotations: KeyValues::new(),
            status,
            starts_at: 0,
            ends_at: (status == Status::Resolved).then_some(1),
            value: 1.0,
            generator_url: "http://prognos/x".into(),
            explanation: None,
        }
    }

    fn firing(name: &str, service: &str) -> AlertInfo {
        alert(&[("alertname", name), ("service", service)], Status::Firing)
    }

    fn resolved(name: &str, service: &str) -> AlertInfo {
        alert(
            &[("alertname", name), ("service", service)],
            Status::Resolved,
        )
    }

    fn route(receiver: &str, matchers: &str) -> Route {
        Route {
            receiver: receiver.into(),
            matchers: parse_matchers(matchers).unwrap(),
            group_by: vec![],
            group_wait: 0,
            group_interval: 0,
            repeat_interval: 0,
            continue_matching: false,
            routes: vec![],
        }
    }

    /// Root `default` grouped by service, 30 s / 300 s / 3600 s.
    fn tree(children: Vec<Route>) -> Route {
        let mut root = route("default", "");
        root.group_by = vec!["service".into()];
        root.group_wait = 30;
        root.group_interval = 300;
        root.repeat_interval = 3600;
        root.routes = children;
        root.inherit();
        root
    }

    fn no_silence(_: &KeyValues) -> bool {
        false
    }

    fn all_resolved(_: &str) -> bool {
        true
    }

    fn flush(d: &mut Dispatcher, root: &Route, now: i64) -> Vec<Notification> {
        d.flush(root, &no_silence, &all_resolved, "http://prognos", now)
            .0
    }

    fn names(n: &Notification) -> Vec<(String, Status)> {
        n.alerts
            .iter()
            .map(|a| (a.name().to_string(), a.status))
            .collect()
    }

    fn receivers(root: &Route, l: &[(&str, &str)]) -> Vec<(String, String)> {
        root.matching(&labels(l))
            .into_iter()
            .map(|(id, r)| (id, r.receiver.clone()))
            .collect()
    }

    fn pair(id: &str, r: &str) -> (String, String) {
        (id.to_string(), r.to_string())
    }

    #[test]
    fn alerts_route_to_the_deepest_matching_child() {
        let mut team = route("mes-team", r#"team="mes""#);
        team.routes = vec![
            route("mes-api-oncall", r#"service="mes-api""#),
            route("mes-db", r#"service=~"mes-db.*""#),
        ];
        let root = tree(vec![route("pager", r#"severity="critical""#), team]);
        assert_eq!(
            receivers(&root, &[("severity", "critical"), ("team", "mes")]),
            vec![pair("0/0", "pager")],
            "first match without continue stops the siblings"
        );
        assert_eq!(
            receivers(&root, &[("team", "mes"), ("service", "mes-api")]),
            vec![pair("0/1/0", "mes-api-oncall")]
        );
        assert_eq!(
            receivers(&root, &[("team", "mes"), ("service", "mes-db-2")]),
            vec![pair("0/1/1", "mes-db")]
        );
        assert_eq!(
            receivers(&root, &[("team", "mes"), ("service", "other")]),
            vec![pair("0/1", "mes-team")],
            "no child matches: the node itself"
        );
        assert_eq!(
            receivers(&root, &[("team", "shop")]),
            vec![pair("0", "default")],
            "the root always matches"
        );
        assert_eq!(root.by_id("0/1/0").unwrap().receiver, "mes-api-oncall");
        assert!(root.by_id("0/7").is_none() && root.by_id("1").is_none());
    }

    #[test]
    fn continue_keeps_matching_siblings() {
        let mut audit = route("audit", r#"severity=~"critical|warning""#);
        audit.continue_matching = true;
        let root = tree(vec![
            audit,
            route("pager", r#"severity="critical""#),
            route("chat", r#"severity="critical""#),
        ]);
        assert_eq!(
            receivers(&root, &[("severity", "critical")]),
            vec![pair("0/0", "audit"), pair("0/1", "pager")]
        );
        assert_eq!(
            receivers(&root, &[("severity", "warning")]),
            vec![pair("0/0", "audit")],
            "a continue match counts: the root is not added"
        );
    }

    #[test]
    fn children_inherit_unset_settings() {
        let mut child = route("", r#"team="mes""#);
        let mut grandchild = route("mes-oncall", r#"severity="critical""#);
        grandchild.group_wait = 5;
        grandchild.group_by = vec!["alertname".into()];
        child.routes = vec![grandchild];
        let root = tree(vec![child]);
        let c = &root.routes[0];
        assert_eq!(c.receiver, "default");
        assert_eq!(c.group_by, vec!["service".to_string()]);
        assert_eq!(
            (c.group_wait, c.group_interval, c.repeat_interval),
            (30, 300, 3600)
        );
        let g = &c.routes[0];
        assert_eq!(g.receiver, "mes-oncall");
        assert_eq!(g.group_by, vec!["alertname".to_string()]);
        assert_eq!(
            (g.group_wait, g.group_interval, g.repeat_interval),
            (5, 300, 3600)
        );
    }

    #[test]
    fn group_keys_and_labels() {
        let mut all = route("r", "");
        all.group_by = vec![GROUP_BY_ALL.into()];
        let l = labels(&[("alertname", "A"), ("service", "mes \"api\"")]);
        assert_eq!(all.group_labels(&l), l);
        let mut some = route("r", "");
        some.group_by = vec!["service".into(), "missing".into()];
        assert_eq!(some.group_labels(&l), labels(&[("service", "mes \"api\"")]));
        assert!(route("r", "").group_labels(&l).is_empty(), "[]: one group");
        assert_eq!(
            group_key("0/1", "r", &l),
            r#"0/1:r:alertname="A",service="mes \"api\"""#
        );
        assert_eq!(group_key("0", "r", &KeyValues::new()), "0:r:");
    }

    #[test]
    fn one_eval_of_three_alerts_is_one_notification_after_group_wait() {
        let root = tree(vec![]);
        let mut d = Dispatcher::default();
        let alerts = [
            firing("HighLatency", "mes-api"),
            firing("ErrorRate", "mes-api"),
            firing("DiskFull", "mes-api"),
        ];
        d.ingest(&root, &alerts, 1000);
        assert_eq!(d.next_due(), Some(1030));
        assert_eq!(d.sizes(), (1, 3));
        assert!(flush(&mut d, &root, 1000).is_empty());
        assert!(
            flush(&mut d, &root, 1029).is_empty(),
            "none before group_wait"
        );
        let ns = flush(&mut d, &root, 1030);
        assert_eq!(ns.len(), 1);
        let n = &ns[0];
        assert_eq!(n.alerts.len(), 3);
        assert_eq!(n.receiver, "default");
        assert_eq!(n.group_key, r#"0:default:service="mes-api""#);
        assert_eq!(n.group_labels, labels(&[("service", "mes-api")]));
        assert_eq!(n.created_at, 1030);
        assert_eq!(n.external_url, "http://prognos");
        let sorted: Vec<&str> = n.alerts.iter().map(|a| a.name()).collect();
        assert_eq!(sorted, vec!["DiskFull", "ErrorRate", "HighLatency"]);
        assert_eq!(d.next_due(), Some(1330));
        assert!(
            flush(&mut d, &root, 1330).is_empty(),
            "nothing new, no repeat yet"
        );
    }

    #[test]
    fn a_joining_alert_waits_for_the_group_interval() {
        let root = tree(vec![]);
        let mut d = Dispatcher::default();
        let three = [
            firing("A", "mes-api"),
            firing("B", "mes-api"),
            firing("C", "mes-api"),
        ];
        d.ingest(&root, &three, 0);
        let first = flush(&mut d, &root, 30);
        assert_eq!(first.len(), 1);
        d.ingest(&root, &[firing("D", "mes-api")], 100);
        assert_eq!(d.next_due(), Some(330), "joining does not reschedule");
        assert!(flush(&mut d, &root, 100).is_empty());
        assert!(flush(&mut d, &root, 329).is_empty());
        let ns = flush(&mut d, &root, 330);
        assert_eq!(ns.len(), 1);
        assert_eq!(ns[0].alerts.len(), 4);
        assert_ne!(ns[0].key, first[0].key);
        // Another service is another group, with its own group_wait.
        d.ingest(&root, &[firing("A", "shop")], 340);
        assert_eq!(d.sizes(), (2, 5));
        let ns = flush(&mut d, &root, 370);
        assert_eq!(ns.len(), 1);
        assert_eq!(ns[0].group_labels, labels(&[("service", "shop")]));
    }

    #[test]
    fn a_still_firing_group_is_resent_after_repeat_interval() {
        let root = tree(vec![]);
        let mut d = Dispatcher::default();
        d.ingest(&root, &[firing("A", "mes-api")], 0);
        let first = flush(&mut d, &root, 30);
        assert_eq!(first.len(), 1);
        let mut t = 30;
        let mut repeats = Vec::new();
        while t < 30 + 3600 + 300 {
            t = d.next_due().unwrap();
            let ns = flush(&mut d, &root, t);
            if !ns.is_empty() {
                repeats.push((t, ns));
            }
        }
        assert_eq!(repeats.len(), 1, "{repeats:?}");
        let (at, ns) = &repeats[0];
        assert_eq!(*at, 30 + 3600);
        assert_eq!(names(&ns[0]), vec![("A".to_string(), Status::Firing)]);
        assert_ne!(ns[0].key, first[0].key, "a repeat has a new key");
    }

    #[test]
    fn resolved_alerts_are_notified_to_receivers_that_want_them() {
        let root = tree(vec![]);
        for wants in [true, false] {
            let mut d = Dispatcher::default();
            d.ingest(&root, &[firing("A", "mes-api"), firing("B", "mes-api")], 0);
            let sr = |_: &str| wants;
            let f = |d: &mut Dispatcher, now| d.flush(&root, &no_silence, &sr, "u", now).0;
            assert_eq!(f(&mut d, 30).len(), 1);
            d.ingest(&root, &[resolved("B", "mes-api")], 100);
            let ns = f(&mut d, 330);
            if wants {
                assert_eq!(ns.len(), 1);
                assert_eq!(
                    names(&ns[0]),
                    vec![("A".into(), Status::Firing), ("B".into(), Status::Resolved)],
                    "firing first"
                );
                assert_eq!(ns[0].status(), Status::Firing);
            } else {
                assert!(ns.is_empty(), "{ns:?}");
            }
            assert_eq!(
                d.sizes(),
                (1, 1),
                "resolved alerts are dropped after a flush"
            );
            d.ingest(&root, &[resolved("A", "mes-api")], 400);
            let ns = f(&mut d, 630);
            if wants {
                assert_eq!(ns.len(), 1);
                assert_eq!(ns[0].status(), Status::Resolved);
                assert_eq!(names(&ns[0]), vec![("A".into(), Status::Resolved)]);
            } else {
                assert!(ns.is_empty());
            }
            assert_eq!(d.sizes(), (0, 0), "an empty group is removed");
            assert_eq!(d.next_due(), None);
        }
    }

    #[test]
    fn an_alert_resolved_before_it_was_told_is_not_notified() {
        let root = tree(vec![]);
        let mut d = Dispatcher::default();
        // Resolved, never seen firing: ignored.
        d.ingest(&root, &[resolved("A", "mes-api")], 0);
        assert_eq!(d.sizes(), (0, 0));
        // Fired and resolved within group_wait: nothing to tell.
        d.ingest(&root, &[firing("A", "mes-api")], 0);
        d.ingest(&root, &[resolved("A", "mes-api")], 10);
        assert!(flush(&mut d, &root, 30).is_empty());
        assert_eq!(d.sizes(), (0, 0));
    }

    #[test]
    fn a_resolved_alert_firing_again_is_news() {
        let root = tree(vec![]);
        let mut d = Dispatcher::default();
        let never = |_: &str| false;
        d.ingest(&root, &[firing("A", "x"), firing("B", "x")], 0);
        assert_eq!(d.flush(&root, &no_silence, &never, "u", 30).0.len(), 1);
        d.ingest(&root, &[resolved("B", "x")], 40);
        assert!(d.flush(&root, &no_silence, &never, "u", 330).0.is_empty());
        d.ingest(&root, &[firing("B", "x")], 400);
        let ns = d.flush(&root, &no_silence, &never, "u", 630).0;
        assert_eq!(ns.len(), 1, "B fires again");
        assert_eq!(ns[0].alerts.len(), 2);
    }

    #[test]
    fn silenced_alerts_are_left_out() {
        let root = tree(vec![]);
        let mut d = Dispatcher::default();
        d.ingest(
            &root,
            &[
                firing("A", "mes-api"),
                firing("B", "mes-api"),
                firing("C", "mes-api"),
            ],
            0,
        );
        let mute_b = |l: &KeyValues| l.get("alertname").is_some_and(|n| n == "B");
        let ns = d.flush(&root, &mute_b, &all_resolved, "u", 30).0;
        assert_eq!(ns.len(), 1);
        let told: Vec<&str> = ns[0].alerts.iter().map(|a| a.name()).collect();
        assert_eq!(told, vec!["A", "C"]);

        let mut d = Dispatcher::default();
        d.ingest(&root, &[firing("A", "mes-api"), firing("B", "mes-api")], 0);
        let mute_all = |_: &KeyValues| true;
        assert!(
            d.flush(&root, &mute_all, &all_resolved, "u", 30)
                .0
                .is_empty()
        );
        assert!(
            d.flush(&root, &mute_all, &all_resolved, "u", 30 + 7200)
                .0
                .is_empty()
        );
        assert_eq!(d.sizes(), (1, 2), "silenced alerts are still held");
        // The silence ends: now they are news.
        let next = d.next_due().unwrap();
        assert_eq!(flush(&mut d, &root, next).len(), 1);
    }

    #[test]
    fn the_explanation_reaches_the_notification() {
        let root = tree(vec![]);
        let mut d = Dispatcher::default();
        let mut a = firing("A", "mes-api");
        a.explanation = Some(Explanation {
            condition: "forecast".into(),
            expr: "up".into(),
            current: Some(3.0),
            history: vec![(1, 2.0)],
            ..Explanation::default()
        });
        d.ingest(&root, std::slice::from_ref(&a), 0);
        let ns = flush(&mut d, &root, 30);
        assert_eq!(ns[0].alerts[0], a);
    }

    #[test]
    fn a_thousand_alerts_in_one_group_are_one_notification() {
        let root = tree(vec![]);
        let mut d = Dispatcher::default();
        let alerts: Vec<AlertInfo> = (0..1000)
            .map(|i| {
                alert(
                    &[
                        ("alertname", "DiskFull"),
                        ("service", "mes-api"),
                        ("instance", &format!("h{i:04}")),
                    ],
                    Status::Firing,
                )
            })
            .collect();
        d.ingest(&root, &alerts, 0);
        assert_eq!(d.sizes(), (1, 1000));
        let ns = flush(&mut d, &root, 30);
        assert_eq!(ns.len(), 1);
        assert_eq!(ns[0].alerts.len(), 1000);
        assert_eq!(ns[0].alerts[0].labels["instance"], "h0000");
        assert_eq!(ns[0].alerts[999].labels["instance"], "h0999");
        let g = d.groups();
        assert_eq!(g.len(), 1);
        assert_eq!(g[0].alerts.len(), 1000);
    }

    #[test]
    fn groups_show_what_is_held() {
        let mut mes = route("mes", r#"service="mes-api""#);
        mes.group_by = vec!["alertname".into()];
        let root = tree(vec![mes]);
        let mut d = Dispatcher::default();
        d.ingest(&root, &[firing("A", "mes-api"), firing("A", "shop")], 0);
        let g = d.groups();
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].group_key, r#"0/0:mes:alertname="A""#);
        assert_eq!(g[0].receiver, "mes");
        assert_eq!(g[0].group_labels, labels(&[("alertname", "A")]));
        assert_eq!(g[1].group_key, r#"0:default:service="shop""#);
        assert_eq!(g[1].alerts[0].labels["service"], "shop");
        assert_eq!(g[1].next_flush, 30);
    }

    #[test]
    fn a_restored_dispatcher_makes_the_same_notifications() {
        let root = tree(vec![]);
        let mut d = Dispatcher::default();
        d.ingest(&root, &[firing("A", "mes-api"), firing("B", "mes-api")], 0);
        assert_eq!(flush(&mut d, &root, 30).len(), 1);
        d.ingest(
            &root,
            &[firing("C", "mes-api"), resolved("A", "mes-api")],
            100,
        );
        d.ingest(&root, &[firing("A", "shop")], 100);
        let json = serde_json::to_string(&d).unwrap();
        let mut back: Dispatcher = serde_json::from_str(&json).unwrap();
        assert_eq!(back, d);
        for t in [130, 330, 3630, 3930] {
            let a = flush(&mut d, &root, t);
            let b = flush(&mut back, &root, t);
            assert_eq!(a, b, "at {t}");
        }
        // Recomputing a flush from the same saved state gives the same keys.
        let mut d2: Dispatcher = serde_json::from_str(&json).unwrap();
        let again = flush(&mut d2, &root, 330);
        let mut d3: Dispatcher = serde_json::from_str(&json).unwrap();
        assert_eq!(flush(&mut d3, &root, 330), again, "same flush, same keys");
        assert_eq!(again.len(), 2);
    }

    #[test]
    fn a_recreated_group_gets_new_keys() {
        let root = tree(vec![]);
        let mut d = Dispatcher::default();
        d.ingest(&root, &[firing("A", "x")], 0);
        let first = flush(&mut d, &root, 30);
        d.ingest(&root, &[resolved("A", "x")], 40);
        let second = flush(&mut d, &root, 330);
        assert_eq!(d.sizes(), (0, 0));
        d.ingest(&root, &[firing("A", "x")], 400);
        let third = flush(&mut d, &root, 430);
        let keys: BTreeSet<&str> = [&first[0], &second[0], &third[0]]
            .iter()
            .map(|n| n.key.as_str())
            .collect();
        assert_eq!(keys.len(), 3);
    }

    /// Applies `change`'s rows to `table` and `serial` as the store would.
    fn persist(d: &Dispatcher, change: &Change, table: &mut BTreeMap<String, String>) -> u64 {
        let rows = d.rows(change);
        for (key, json) in rows.groups {
            match json {
                Some(json) => table.insert(key, json),
                None => table.remove(&key),
            };
        }
        rows.next_serial
    }

    #[test]
    fn a_reverted_ingest_gives_back_the_dispatcher() {
        let root = tree(vec![]);
        let mut d = Dispatcher::default();
        d.ingest(&root, &[firing("A", "x"), firing("B", "y")], 0);
        flush(&mut d, &root, 30);
        let before = d.clone();
        let mut newer = firing("A", "x");
        newer.value = 7.0;
        // Replaces A in x, resolves B in y, creates z (a new serial), and
        // touches x twice: it is recorded once, as it was first.
        let change = d.ingest(
            &root,
            &[
                newer.clone(),
                resolved("B", "y"),
                firing("C", "z"),
                firing("D", "x"),
                resolved("Q", "w"),
            ],
            100,
        );
        assert_eq!(change.len(), 3, "x, y and z; not the unknown w");
        assert_ne!(d, before);
        assert_eq!(d.next_serial, before.next_serial + 1);
        d.revert(change);
        assert_eq!(d, before);

        // Nothing touched: an empty change.
        let change = d.ingest(&root, &[resolved("Q", "w")], 100);
        assert!(change.is_empty());
        assert!(d.rows(&change).groups.is_empty());
        d.revert(change);
        assert_eq!(d, before);
    }

    #[test]
    fn a_reverted_flush_gives_back_the_dispatcher() {
        let root = tree(vec![]);
        let mut d = Dispatcher::default();
        d.ingest(&root, &[firing("A", "x"), firing("B", "y")], 0);
        d.ingest(&root, &[firing("C", "later")], 20);
        let before = d.clone();
        let (ns, change) = d.flush(&root, &no_silence, &all_resolved, "u", 30);
        assert_eq!(ns.len(), 2);
        assert_eq!(change.len(), 2, "only the groups due");
        d.revert(change);
        assert_eq!(d, before);

        // A flush that removes a group (its only alert resolved).
        flush(&mut d, &root, 30);
        d.ingest(&root, &[resolved("A", "x")], 40);
        let before = d.clone();
        let (ns, change) = d.flush(&root, &no_silence, &all_resolved, "u", 330);
        assert_eq!(ns.len(), 2, "x resolved, later new; y has nothing new");
        assert_eq!(change.len(), 3, "x, y and later were due");
        assert_eq!(d.sizes().0, 2, "x is gone");
        let rows = d.rows(&change);
        assert!(
            rows.groups
                .contains(&(r#"0:default:service="x""#.to_string(), None))
        );
        d.revert(change);
        assert_eq!(d, before);
    }

    #[test]
    fn an_ingest_touching_one_of_a_thousand_groups_is_one_row() {
        let root = tree(vec![]);
        let mut d = Dispatcher::default();
        let alerts: Vec<AlertInfo> = (0..1000)
            .map(|i| firing("A", &format!("s{i:04}")))
            .collect();
        let all = d.ingest(&root, &alerts, 0);
        assert_eq!(all.len(), 1000);
        assert_eq!(d.rows(&all).groups.len(), 1000);
        let change = d.ingest(&root, &[firing("B", "s0500")], 10);
        let rows = d.rows(&change);
        assert_eq!(rows.groups.len(), 1);
        assert_eq!(rows.groups[0].0, r#"0:default:service="s0500""#);
        assert_eq!(rows.next_serial, 1000);
        let json = rows.groups[0].1.as_deref().unwrap_or_default();
        assert!(json.contains("\"B\""), "{json}");
        let mut back = d.clone();
        back.revert(change);
        assert_eq!(back.sizes(), (1000, 1000));
    }

    #[test]
    fn a_dispatcher_rebuilt_from_its_rows_is_the_same() {
        let root = tree(vec![]);
        let mut d = Dispatcher::default();
        assert_eq!(Dispatcher::from_rows([], 0).unwrap(), d);
        d.ingest(&root, &[firing("A", "x"), firing("B", "y")], 0);
        flush(&mut d, &root, 30);
        d.ingest(&root, &[firing("C", "x"), resolved("B", "y")], 40);
        let rows = d.all_rows();
        let back = Dispatcher::from_rows(
            rows.groups
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().unwrap_or_default())),
            rows.next_serial,
        )
        .unwrap();
        assert_eq!(back, d);
        // A serial lagging behind its groups' is raised above them.
        let lagging = Dispatcher::from_rows(
            rows.groups
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().unwrap_or_default())),
            0,
        )
        .unwrap();
        assert_eq!(lagging, d);
        // An unreadable row names its key.
        let e = Dispatcher::from_rows([("k1".to_string(), "{oops".to_string())], 0).unwrap_err();
        assert_eq!(e.key, "k1");
        assert!(e.to_string().contains("\"k1\""), "{e}");
    }

    #[derive(Debug, Clone)]
    enum Op {
        Fire(u8),
        Resolve(u8),
        /// Several alerts in one ingest: (alert, firing).
        Batch(Vec<(u8, bool)>),
        Wait(i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..8).prop_map(Op::Fire),
            (0u8..8).prop_map(Op::Resolve),
            proptest::collection::vec((0u8..8, any::<bool>()), 1..6).prop_map(Op::Batch),
            (0i64..2000).prop_map(Op::Wait),
        ]
    }

    /// The alerts an op ingests (`mk(i, status)` makes one).
    fn op_alerts(op: &Op, mk: impl Fn(u8, Status) -> AlertInfo) -> Vec<AlertInfo> {
        let status = |firing: bool| {
            if firing {
                Status::Firing
            } else {
                Status::Resolved
            }
        };
        match op {
            Op::Fire(i) => vec![mk(*i, Status::Firing)],
            Op::Resolve(i) => vec![mk(*i, Status::Resolved)],
            Op::Batch(b) => b.iter().map(|(i, f)| mk(*i, status(*f))).collect(),
            Op::Wait(_) => vec![],
        }
    }

    proptest! {
        #[test]
        fn flush_never_sends_empty_notifications_and_keys_are_unique(
            ops in proptest::collection::vec(op(), 1..80),
            muted in proptest::collection::btree_set(0u8..8, 0..3),
            send_res in any::<bool>(),
            wait in 0i64..60,
        ) {
            let mut mes = route("mes", r#"service="s0""#);
            mes.continue_matching = true;
            mes.group_wait = wait;
            let root = tree(vec![mes, route("other", r#"service=~"s[01]""#)]);
            let mut d = Dispatcher::default();
            let mut keys = BTreeSet::new();
            let mut now = 0;
            let silenced = |l: &KeyValues| {
                muted.iter().any(|m| l.get("alertname") == Some(&format!("a{m}")))
            };
            let sr = |_: &str| send_res;
            let mk = |i: u8, s: Status| {
                alert(&[("alertname", &format!("a{i}")), ("service", &format!("s{}", i % 3))], s)
            };
            for op in ops {
                if let Op::Wait(s) = op {
                    now += s;
                }
                d.ingest(&root, &op_alerts(&op, mk), now);
                for n in d.flush(&root, &silenced, &sr, "u", now).0 {
                    prop_assert!(!n.alerts.is_empty());
                    prop_assert!(n.alerts.iter().all(|a| !silenced(&a.labels)));
                    if !send_res {
                        prop_assert_eq!(n.status(), Status::Firing);
                    }
                    prop_assert!(keys.insert(n.key.clone()), "duplicate key {}", n.key);
                }
                // Every group due has been flushed.
                prop_assert!(d.next_due().is_none_or(|t| t > now));
            }
        }

        /// After every ingest and flush, reverting its change gives the
        /// dispatcher before it, and the rows persisted so far (only those of
        /// the groups touched) rebuild the live dispatcher. Some writes fail:
        /// the operation is reverted and nothing persisted.
        #[test]
        fn changes_revert_and_their_rows_rebuild_the_dispatcher(
            ops in proptest::collection::vec((op(), proptest::bool::weighted(0.2)), 1..80),
            muted in proptest::collection::btree_set(0u8..8, 0..3),
            send_res in any::<bool>(),
            wait in 0i64..60,
        ) {
            let mut mes = route("mes", r#"service="s0""#);
            mes.continue_matching = true;
            mes.group_wait = wait;
            let root = tree(vec![mes, route("other", r#"service=~"s[01]""#)]);
            let mut d = Dispatcher::default();
            let mut table = BTreeMap::new();
            let mut now = 0;
            let silenced = |l: &KeyValues| {
                muted.iter().any(|m| l.get("alertname") == Some(&format!("a{m}")))
            };
            let sr = |_: &str| send_res;
            let mk = |i: u8, s: Status| {
                alert(&[("alertname", &format!("a{i}")), ("service", &format!("s{}", i % 3))], s)
            };
            for (op, write_fails) in ops {
                if let Op::Wait(s) = op {
                    now += s;
                }
                for step in 0..2 {
                    let before = d.clone();
                    let change = if step == 0 {
                        d.ingest(&root, &op_alerts(&op, mk), now)
                    } else {
                        d.flush(&root, &silenced, &sr, "u", now).1
                    };
                    let mut reverted = d.clone();
                    reverted.revert(change.clone());
                    prop_assert_eq!(&reverted, &before);
                    if write_fails {
                        d.revert(change);
                        continue;
                    }
                    let serial = persist(&d, &change, &mut table);
                    let rebuilt = Dispatcher::from_rows(table.clone(), serial).ok();
                    prop_assert_eq!(rebuilt.as_ref(), Some(&d));
                }
            }
        }
    }
}
