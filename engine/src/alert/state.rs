//! The alert state machine of one rule, a pure function of its inputs and
//! the time passed in (prometheus `rules/alerting.go` `Eval`).
//!
//! Each evaluation hands over the label sets whose condition holds now. A new
//! one becomes pending; a pending one fires once it has held for `for`; a
//! firing one that stops holding stays firing for `keep_firing_for`, then
//! resolves; a pending one that stops holding is dropped without a word.
//! Events are emitted on transitions only (firing, resolved), so a restart
//! that reloads this state sends nothing twice.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Label set of an alert: the series' labels, the rule's labels and `alertname`.
pub type Labels = BTreeMap<String, String>;

/// How long a resolved alert is kept (to answer the API and dedupe), seconds.
pub const RESOLVED_RETENTION_SECS: i64 = 15 * 60;

/// Where an alert is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    /// The condition holds but not yet for `for`.
    Pending,
    /// The condition has held for `for` (or stopped less than `keep_firing_for` ago).
    Firing,
    /// It fired and no longer holds.
    Resolved,
}

/// One alert instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Identifying labels.
    pub labels: Labels,
    /// Rendered annotations at the last evaluation that held.
    pub annotations: Labels,
    /// Current status.
    pub status: AlertStatus,
    /// Value at the last evaluation that held.
    pub value: f64,
    /// When the condition started holding (Unix seconds).
    pub active_at: i64,
    /// When it fired.
    pub fired_at: Option<i64>,
    /// When it resolved.
    pub resolved_at: Option<i64>,
    /// When it last held (for `keep_firing_for`).
    pub last_held_at: i64,
}

/// A transition worth telling someone about.
#[derive(Debug, Clone, PartialEq)]
pub enum AlertEvent {
    /// The alert started firing.
    Firing(Alert),
    /// The alert stopped firing.
    Resolved(Alert),
}

/// The alerts of one rule, keyed by their label set.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleAlerts {
    alerts: BTreeMap<String, Alert>,
}

/// A stable key of a label set (`k="v",…` in label order).
pub fn key(labels: &Labels) -> String {
    let mut s = String::new();
    for (k, v) in labels {
        s.push_str(k);
        s.push_str("=\"");
        s.push_str(&v.replace('\\', "\\\\").replace('"', "\\\""));
        s.push_str("\",");
    }
    s
}

impl RuleAlerts {
    /// Evaluates at `now` with the label sets whose condition holds, each
    /// with its value and rendered annotations; `for_secs` and
    /// `keep_firing_for_secs` as configured. Returns the transitions.
    pub fn eval(
        &mut self,
        now: i64,
        holding: Vec<(Labels, f64, Labels)>,
        for_secs: i64,
        keep_firing_for_secs: i64,
    ) -> Vec<AlertEvent> {
        let mut events = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for (labels, value, annotations) in holding {
            let k = key(&labels);
            seen.insert(k.clone());
            match self.alerts.get_mut(&k) {
                Some(a) if a.status != AlertStatus::Resolved => {
                    a.value = value;
                    a.annotations = annotations;
                    a.last_held_at = now;
                }
                _ => {
                    self.alerts.insert(
                        k,
                        Alert {
                            labels,
                            annotations,
                            status: AlertStatus::Pending,
                            value,
                            active_at: now,
                            fired_at: None,
                            resolved_at: None,
                            last_held_at: now,
                        },
                    );
                }
            }
        }
        let mut drop = Vec::new();
        for (k, a) in &mut self.alerts {
            let holds = seen.contains(k);
            match a.status {
                AlertStatus::Pending if !holds => drop.push(k.clone()),
                AlertStatus::Pending if now - a.active_at >= for_secs => {
                    a.status = AlertStatus::Firing;
                    a.fired_at = Some(now);
                    events.push(AlertEvent::Firing(a.clone()));
                }
                AlertStatus::Firing if !holds && now - a.last_held_at >= keep_firing_for_secs => {
                    a.status = AlertStatus::Resolved;
                    a.resolved_at = Some(now);
                    events.push(AlertEvent::Resolved(a.clone()));
                }
                AlertStatus::Resolved
                    if a.resolved_at
                        .is_some_and(|r| now - r >= RESOLVED_RETENTION_SECS) =>
                {
                    drop.push(k.clone())
                }
                _ => {}
            }
        }
        for k in drop {
            self.alerts.remove(&k);
        }
        events
    }

    /// The alerts that are pending or firing.
    pub fn active(&self) -> impl Iterator<Item = &Alert> {
        self.alerts
            .values()
            .filter(|a| a.status != AlertStatus::Resolved)
    }

    /// Every alert kept, resolved ones included.
    pub fn all(&self) -> impl Iterator<Item = &Alert> {
        self.alerts.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(v: &str) -> Labels {
        [
            ("alertname".to_string(), "X".to_string()),
            ("db".to_string(), v.to_string()),
        ]
        .into()
    }

    fn status(r: &RuleAlerts, v: &str) -> Option<AlertStatus> {
        r.alerts.get(&key(&labels(v))).map(|a| a.status)
    }

    /// A step table as in prometheus `TestKeepFiringFor`: whether the
    /// condition holds at each step (15 s apart), the status expected after
    /// it, and the events emitted.
    #[test]
    fn for_and_keep_firing_for_step_table() {
        use AlertStatus::*;
        let steps: [(bool, Option<AlertStatus>, &str); 9] = [
            (true, Some(Pending), ""),    // t=0: new
            (true, Some(Pending), ""),    // t=15: held 15 s < 30 s
            (true, Some(Firing), "F"),    // t=30: held 30 s = for
            (false, Some(Firing), ""),    // t=45: stopped, keep firing (last held 30)
            (true, Some(Firing), ""),     // t=60: holds again, still firing, no event
            (false, Some(Firing), ""),    // t=75
            (false, Some(Firing), ""),    // t=90: 30 s since last held < 45
            (false, Some(Resolved), "R"), // t=105: 45 s since last held
            (false, Some(Resolved), ""),  // t=120: kept for the API, no event
        ];
        let mut r = RuleAlerts::default();
        for (i, (holds, want, ev)) in steps.iter().enumerate() {
            let now = 15 * i as i64;
            let holding = if *holds {
                vec![(labels("shop"), 1.0, Labels::new())]
            } else {
                vec![]
            };
            let events = r.eval(now, holding, 30, 45);
            let got: String = events
                .iter()
                .map(|e| match e {
                    AlertEvent::Firing(_) => 'F',
                    AlertEvent::Resolved(_) => 'R',
                })
                .collect();
            assert_eq!(status(&r, "shop"), *want, "step {i}");
            assert_eq!(got, *ev, "step {i}");
        }
    }

    #[test]
    fn pending_that_stops_holding_vanishes_silently() {
        let mut r = RuleAlerts::default();
        assert!(
            r.eval(0, vec![(labels("a"), 1.0, Labels::new())], 60, 0)
                .is_empty()
        );
        assert!(r.eval(15, vec![], 60, 0).is_empty());
        assert_eq!(status(&r, "a"), None);
    }

    #[test]
    fn zero_for_fires_at_once_and_resolved_is_forgotten_after_retention() {
        let mut r = RuleAlerts::default();
        let ev = r.eval(0, vec![(labels("a"), 2.0, Labels::new())], 0, 0);
        assert!(matches!(&ev[..], [AlertEvent::Firing(a)] if a.value == 2.0));
        let ev = r.eval(10, vec![], 0, 0);
        assert!(matches!(&ev[..], [AlertEvent::Resolved(_)]));
        r.eval(10 + RESOLVED_RETENTION_SECS, vec![], 0, 0);
        assert_eq!(r.all().count(), 0);
    }

    #[test]
    fn a_resolved_alert_that_holds_again_starts_pending_anew() {
        let mut r = RuleAlerts::default();
        r.eval(0, vec![(labels("a"), 1.0, Labels::new())], 0, 0);
        r.eval(15, vec![], 0, 0);
        let ev = r.eval(30, vec![(labels("a"), 1.0, Labels::new())], 60, 0);
        assert!(ev.is_empty());
        assert_eq!(status(&r, "a"), Some(AlertStatus::Pending));
    }

    #[test]
    fn series_are_independent() {
        let mut r = RuleAlerts::default();
        r.eval(
            0,
            vec![
                (labels("a"), 1.0, Labels::new()),
                (labels("b"), 1.0, Labels::new()),
            ],
            0,
            0,
        );
        let ev = r.eval(15, vec![(labels("a"), 1.0, Labels::new())], 0, 0);
        assert!(matches!(&ev[..], [AlertEvent::Resolved(x)] if x.labels["db"] == "b"));
        assert_eq!(r.active().count(), 1);
    }

    #[test]
    fn survives_a_serde_round_trip_mid_pending() {
        let mut r = RuleAlerts::default();
        r.eval(0, vec![(labels("a"), 1.0, Labels::new())], 60, 0);
        let mut back: RuleAlerts =
            serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert!(
            back.eval(30, vec![(labels("a"), 1.0, Labels::new())], 60, 0)
                .is_empty()
        );
        let ev = back.eval(60, vec![(labels("a"), 1.0, Labels::new())], 60, 0);
        assert!(matches!(&ev[..], [AlertEvent::Firing(_)]));
    }
}
