//! Alertmanager-style routing and grouping. The [`Route`] tree picks the
//! receivers of an alert; the [`Dispatcher`] groups alerts per route and
//! group labels and decides when a group is notified (`group_wait`,
//! `group_interval`, `repeat_interval`). Pure and synchronous: the time is
//! passed in as Unix seconds, and the state is plain data persisted as JSON.

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
/// as JSON with the notifications it produced.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Dispatcher {
    groups: BTreeMap<String, Group>,
    /// Serial of the next group created.
    next_serial: u64,
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
    /// alert never seen firing by the group is ignored.
    pub fn ingest(&mut self, root: &Route, alerts: &[AlertInfo], now: i64) {
        for alert in alerts {
            let fp = alert.fingerprint();
            for (route_id, route) in root.matching(&alert.labels) {
                let group_labels = route.group_labels(&alert.labels);
                let key = group_key(&route_id, &route.receiver, &group_labels);
                if alert.status == Status::Resolved {
                    // Only an alert the group holds can resolve in it.
                    if let Some(g) = self.groups.get_mut(&key)
                        && let Some(held) = g.alerts.get_mut(&fp)
                    {
                        held.clone_from(alert);
                    }
                    continue;
                }
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
    }

    /// The notifications due at `now`. For each group whose flush time has
    /// come, tells the receiver its unsilenced firing alerts, plus (when
    /// `send_resolved(receiver)`) the resolved ones it was told fire. A
    /// notification is made when a firing alert is new to the receiver, when
    /// one it knows resolved, or when anything fires and the last
    /// notification is `repeat_interval` old. Resolved alerts are then
    /// dropped, an empty group removed, and the others are due again after
    /// `group_interval`.
    pub fn flush(
        &mut self,
        root: &Route,
        silenced: &dyn Fn(&KeyValues) -> bool,
        send_resolved: &dyn Fn(&str) -> bool,
        external_url: &str,
        now: i64,
    ) -> Vec<Notification> {
        let mut out = Vec::new();
        let mut emptied = Vec::new();
        for (key, g) in self.groups.iter_mut().filter(|(_, g)| g.next_flush <= now) {
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
        out
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
            let f = |d: &mut Dispatcher, now| d.flush(&root, &no_silence, &sr, "u", now);
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
        assert_eq!(d.flush(&root, &no_silence, &never, "u", 30).len(), 1);
        d.ingest(&root, &[resolved("B", "x")], 40);
        assert!(d.flush(&root, &no_silence, &never, "u", 330).is_empty());
        d.ingest(&root, &[firing("B", "x")], 400);
        let ns = d.flush(&root, &no_silence, &never, "u", 630);
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
        let ns = d.flush(&root, &mute_b, &all_resolved, "u", 30);
        assert_eq!(ns.len(), 1);
        let told: Vec<&str> = ns[0].alerts.iter().map(|a| a.name()).collect();
        assert_eq!(told, vec!["A", "C"]);

        let mut d = Dispatcher::default();
        d.ingest(&root, &[firing("A", "mes-api"), firing("B", "mes-api")], 0);
        let mute_all = |_: &KeyValues| true;
        assert!(d.flush(&root, &mute_all, &all_resolved, "u", 30).is_empty());
        assert!(
            d.flush(&root, &mute_all, &all_resolved, "u", 30 + 7200)
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

    #[derive(Debug, Clone)]
    enum Op {
        Fire(u8),
        Resolve(u8),
        Wait(i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..8).prop_map(Op::Fire),
            (0u8..8).prop_map(Op::Resolve),
            (0i64..2000).prop_map(Op::Wait),
        ]
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
                match op {
                    Op::Fire(i) => d.ingest(&root, &[mk(i, Status::Firing)], now),
                    Op::Resolve(i) => d.ingest(&root, &[mk(i, Status::Resolved)], now),
                    Op::Wait(s) => now += s,
                }
                for n in d.flush(&root, &silenced, &sr, "u", now) {
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
    }
}
