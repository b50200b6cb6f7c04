//! The alert state machine of one rule, a pure function of its inputs and
//! the time passed in (prometheus `rules/alerting.go` `Eval`).
//!
//! Each evaluation hands over every series the rule evaluated, with whether
//! its condition holds now. A new holding one becomes pending; a pending one
//! fires once it has held for `for`; a firing one that stops holding stays
//! firing for `keep_firing_for`, then resolves.
//!
//! Unlike Prometheus, a pending alert whose condition misses one evaluation
//! keeps its `for` clock ([`PENDING_MISSES_TOLERATED`]): a condition that
//! holds but for a single dip still fires, and fires once, rather than
//! restarting its wait at every dip. It only fires at an evaluation where
//! the condition holds. Alerts carry the value of the latest evaluation that
//! saw their series, so a resolved event tells the value at resolution (or,
//! for a vanished series, its last value).
//!
//! Events are emitted on transitions only (firing, resolved), so a restart
//! that reloads this state sends nothing twice.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Label set of an alert: the series' labels, the rule's labels and `alertname`.
pub type Labels = BTreeMap<String, String>;

/// How long a resolved alert is kept (to answer the API and dedupe), seconds.
pub const RESOLVED_RETENTION_SECS: i64 = 15 * 60;

/// Consecutive evaluations in which a pending alert's condition may fail
/// without losing its `for` clock. One: a single dip of a score or an ETA
/// around its limit is noise, two in a row are a change. More would let a
/// condition that holds one evaluation in three fire.
pub const PENDING_MISSES_TOLERATED: u32 = 1;

/// Where an alert is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    /// The condition holds but not yet for `for` (or missed at most
    /// [`PENDING_MISSES_TOLERATED`] evaluations since it last held).
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
    /// Rendered annotations: those of the last evaluation that held,
    /// updated by later evaluations that re-rendered them.
    pub annotations: Labels,
    /// Current status.
    pub status: AlertStatus,
    /// Value at the latest evaluation that saw the series (held or not).
    pub value: f64,
    /// When the condition started holding (Unix seconds).
    pub active_at: i64,
    /// When it fired.
    pub fired_at: Option<i64>,
    /// When it resolved.
    pub resolved_at: Option<i64>,
    /// When it last held (for `keep_firing_for`).
    pub last_held_at: i64,
    /// Consecutive evaluations a pending alert's condition has missed.
    #[serde(default)]
    pub misses: u32,
}

/// A transition worth telling someone about.
#[derive(Debug, Clone, PartialEq)]
pub enum AlertEvent {
    /// The alert started firing.
    Firing(Alert),
    /// The alert stopped firing.
    Resolved(Alert),
}

/// One series as an evaluation of the rule saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// The alert's labels.
    pub labels: Labels,
    /// The value now (`$value`).
    pub value: f64,
    /// Rendered annotations. When the condition does not hold, only those
    /// given replace the alert's (the others keep the text of the last
    /// evaluation that held).
    pub annotations: Labels,
    /// Whether the rule's condition holds for it now.
    pub holds: bool,
}

impl Observation {
    /// A series whose condition holds.
    pub fn holding(labels: Labels, value: f64, annotations: Labels) -> Self {
        Self {
            labels,
            value,
            annotations,
            holds: true,
        }
    }
}

/// A rule's timers, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Timing {
    /// How long the condition must hold before firing (`for`).
    pub for_secs: i64,
    /// How long a firing alert outlives its condition (`keep_firing_for`).
    pub keep_firing_for_secs: i64,
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
    /// Evaluates at `now` with every series the rule evaluated (holding or
    /// not; a series left out is one that vanished). Returns the
    /// transitions.
    pub fn eval(
        &mut self,
        now: i64,
        observed: Vec<Observation>,
        timing: Timing,
    ) -> Vec<AlertEvent> {
        let mut events = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for obs in observed {
            let k = key(&obs.labels);
            match self.alerts.get_mut(&k) {
                Some(a) if a.status != AlertStatus::Resolved => {
                    a.value = obs.value;
                    if obs.holds {
                        a.annotations = obs.annotations;
                        a.last_held_at = now;
                        a.misses = 0;
                        seen.insert(k);
                    } else {
                        a.annotations.extend(obs.annotations);
                    }
                }
                _ if obs.holds => {
                    seen.insert(k.clone());
                    self.alerts.insert(
                        k,
                        Alert {
                            labels: obs.labels,
                            annotations: obs.annotations,
                            status: AlertStatus::Pending,
                            value: obs.value,
                            active_at: now,
                            fired_at: None,
                            resolved_at: None,
                            last_held_at: now,
                            misses: 0,
                        },
                    );
                }
                _ => {}
            }
        }
        let mut drop = Vec::new();
        for (k, a) in &mut self.alerts {
            let holds = seen.contains(k);
            match a.status {
                AlertStatus::Pending if !holds => {
                    a.misses += 1;
                    if a.misses > PENDING_MISSES_TOLERATED {
                        drop.push(k.clone());
                    }
                }
                AlertStatus::Pending if now - a.active_at >= timing.for_secs => {
                    a.status = AlertStatus::Firing;
                    a.fired_at = Some(now);
                    events.push(AlertEvent::Firing(a.clone()));
                }
                AlertStatus::Firing
                    if !holds && now - a.last_held_at >= timing.keep_firing_for_secs =>
                {
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
    /// Ends every alert because its rule is gone: the firing ones resolve
    /// (returned, to be announced) and the pending ones are dropped.
    pub fn resolve_all(&mut self, now: i64) -> Vec<AlertEvent> {
        let mut events = Vec::new();
        for a in self.alerts.values_mut() {
            if a.status == AlertStatus::Firing {
                a.status = AlertStatus::Resolved;
                a.resolved_at = Some(now);
                events.push(AlertEvent::Resolved(a.clone()));
            }
        }
        self.alerts.retain(|_, a| a.status == AlertStatus::Resolved);
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

    /// Whether an alert with this label key ([`key`]) is kept, whatever its status.
    pub fn contains(&self, key: &str) -> bool {
        self.alerts.contains_key(key)
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

    /// Series `v` holding with `value`.
    fn hold(v: &str, value: f64) -> Observation {
        Observation::holding(labels(v), value, Labels::new())
    }

    /// Series `v` seen with `value`, its condition not holding.
    fn seen(v: &str, value: f64) -> Observation {
        Observation {
            holds: false,
            ..hold(v, value)
        }
    }

    fn timing(for_secs: i64, keep_firing_for_secs: i64) -> Timing {
        Timing {
            for_secs,
            keep_firing_for_secs,
        }
    }

    fn letters(events: &[AlertEvent]) -> String {
        events
            .iter()
            .map(|e| match e {
                AlertEvent::Firing(_) => 'F',
                AlertEvent::Resolved(_) => 'R',
            })
            .collect()
    }

    /// Runs a step table: whether the condition holds at each step (`step`
    /// seconds apart; the series is seen either way), the status expected
    /// after it and the events emitted.
    fn run_table(step: i64, t: Timing, table: &[(bool, Option<AlertStatus>, &str)]) {
        let mut r = RuleAlerts::default();
        for (i, (holds, want, ev)) in table.iter().enumerate() {
            let now = step * i as i64;
            let obs = if *holds {
                hold("shop", 1.0)
            } else {
                seen("shop", 0.0)
            };
            let events = r.eval(now, vec![obs], t);
            assert_eq!(status(&r, "shop"), *want, "step {i}");
            assert_eq!(letters(&events), *ev, "step {i}");
        }
    }

    /// A step table as in prometheus `TestKeepFiringFor`.
    #[test]
    fn for_and_keep_firing_for_step_table() {
        use AlertStatus::*;
        run_table(
            15,
            timing(30, 45),
            &[
                (true, Some(Pending), ""),    // t=0: new
                (true, Some(Pending), ""),    // t=15: held 15 s < 30 s
                (true, Some(Firing), "F"),    // t=30: held 30 s = for
                (false, Some(Firing), ""),    // t=45: stopped, keep firing (last held 30)
                (true, Some(Firing), ""),     // t=60: holds again, still firing, no event
                (false, Some(Firing), ""),    // t=75
                (false, Some(Firing), ""),    // t=90: 30 s since last held < 45
                (false, Some(Resolved), "R"), // t=105: 45 s since last held
                (false, Some(Resolved), ""),  // t=120: kept for the API, no event
            ],
        );
    }

    /// One dip while pending keeps the `for` clock; the alert fires only
    /// at an evaluation where the condition holds.
    #[test]
    fn a_single_dip_while_pending_keeps_the_for_clock() {
        use AlertStatus::*;
        run_table(
            60,
            timing(180, 0),
            &[
                (true, Some(Pending), ""),    // t=0: active_at 0
                (true, Some(Pending), ""),    // t=60
                (false, Some(Pending), ""),   // t=120: one miss tolerated
                (false, None, ""),            // t=180: a second miss drops it, silently
                (true, Some(Pending), ""),    // t=240: anew, active_at 240
                (false, Some(Pending), ""),   // t=300: a miss
                (true, Some(Pending), ""),    // t=360: misses reset
                (false, Some(Pending), ""),   // t=420: due, but not holding: no fire
                (true, Some(Firing), "F"),    // t=480: 240 s ≥ 180 s and holds
                (false, Some(Resolved), "R"), // t=540
            ],
        );
    }

    /// An error storm whose score dips for three minutes mid-storm, with
    /// `for: 5m` and the default `keep_firing_for` of 10m: one firing, one
    /// resolution, at the end.
    #[test]
    fn a_storm_with_a_dip_notifies_once() {
        let mut holds = vec![true; 10];
        holds.extend([false; 3]);
        holds.extend([true; 8]);
        holds.extend([false; 15]);
        let mut r = RuleAlerts::default();
        let mut all = String::new();
        let mut resolved_at = None;
        for (i, h) in holds.iter().enumerate() {
            let now = 60 * i as i64;
            let obs = if *h {
                hold("shop", 1.0)
            } else {
                seen("shop", 0.0)
            };
            let ev = r.eval(now, vec![obs], timing(300, 600));
            if letters(&ev) == "R" {
                resolved_at = Some(now);
            }
            all.push_str(&letters(&ev));
        }
        assert_eq!(all, "FR");
        // Last held at t=20 min, resolved 10 min later.
        assert_eq!(resolved_at, Some(30 * 60));
    }

    #[test]
    fn a_resolved_event_carries_the_value_at_resolution() {
        let mut r = RuleAlerts::default();
        let ev = r.eval(0, vec![hold("a", 5437.0)], timing(0, 60));
        assert!(matches!(&ev[..], [AlertEvent::Firing(a)] if a.value == 5437.0));
        // The queue drains: the condition no longer holds, the value moves on.
        assert!(
            r.eval(30, vec![seen("a", 4800.0)], timing(0, 60))
                .is_empty()
        );
        let ev = r.eval(60, vec![seen("a", 4225.0)], timing(0, 60));
        assert!(
            matches!(&ev[..], [AlertEvent::Resolved(a)] if a.value == 4225.0),
            "{ev:?}"
        );
    }

    #[test]
    fn a_vanished_series_resolves_with_its_last_value() {
        let mut r = RuleAlerts::default();
        r.eval(0, vec![hold("a", 10.0)], timing(0, 0));
        r.eval(15, vec![seen("a", 7.0)], timing(0, 60));
        // Gone from the evaluation: nothing new to say about its value.
        let ev = r.eval(75, vec![], timing(0, 60));
        assert!(matches!(&ev[..], [AlertEvent::Resolved(a)] if a.value == 7.0));
    }

    #[test]
    fn annotations_not_re_rendered_keep_the_text_of_the_last_hold() {
        let mut r = RuleAlerts::default();
        let ann = |pairs: &[(&str, &str)]| -> Labels {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        r.eval(
            0,
            vec![Observation::holding(
                labels("a"),
                9.0,
                ann(&[("summary", "full in ~2h"), ("description", "9 now")]),
            )],
            timing(0, 0),
        );
        let ev = r.eval(
            60,
            vec![Observation {
                holds: false,
                ..Observation::holding(labels("a"), 3.0, ann(&[("description", "3 now")]))
            }],
            timing(0, 0),
        );
        let [AlertEvent::Resolved(a)] = &ev[..] else {
            panic!("{ev:?}")
        };
        assert_eq!(
            a.annotations,
            ann(&[("summary", "full in ~2h"), ("description", "3 now")])
        );
    }

    #[test]
    fn a_series_never_holding_makes_no_alert() {
        let mut r = RuleAlerts::default();
        assert!(r.eval(0, vec![seen("a", 1.0)], timing(0, 0)).is_empty());
        assert_eq!(r.all().count(), 0);
    }

    #[test]
    fn pending_that_stops_holding_vanishes_silently() {
        let mut r = RuleAlerts::default();
        assert!(r.eval(0, vec![hold("a", 1.0)], timing(60, 0)).is_empty());
        assert!(r.eval(15, vec![], timing(60, 0)).is_empty());
        assert_eq!(status(&r, "a"), Some(AlertStatus::Pending), "one miss");
        assert!(r.eval(30, vec![], timing(60, 0)).is_empty());
        assert_eq!(status(&r, "a"), None);
    }

    #[test]
    fn zero_for_fires_at_once_and_resolved_is_forgotten_after_retention() {
        let mut r = RuleAlerts::default();
        let ev = r.eval(0, vec![hold("a", 2.0)], timing(0, 0));
        assert!(matches!(&ev[..], [AlertEvent::Firing(a)] if a.value == 2.0));
        let ev = r.eval(10, vec![], timing(0, 0));
        assert!(matches!(&ev[..], [AlertEvent::Resolved(_)]));
        r.eval(10 + RESOLVED_RETENTION_SECS, vec![], timing(0, 0));
        assert_eq!(r.all().count(), 0);
    }

    #[test]
    fn a_resolved_alert_that_holds_again_starts_pending_anew() {
        let mut r = RuleAlerts::default();
        r.eval(0, vec![hold("a", 1.0)], timing(0, 0));
        r.eval(15, vec![], timing(0, 0));
        let ev = r.eval(30, vec![hold("a", 1.0)], timing(60, 0));
        assert!(ev.is_empty());
        assert_eq!(status(&r, "a"), Some(AlertStatus::Pending));
    }

    #[test]
    fn series_are_independent() {
        let mut r = RuleAlerts::default();
        r.eval(0, vec![hold("a", 1.0), hold("b", 1.0)], timing(0, 0));
        let ev = r.eval(15, vec![hold("a", 1.0)], timing(0, 0));
        assert!(matches!(&ev[..], [AlertEvent::Resolved(x)] if x.labels["db"] == "b"));
        assert_eq!(r.active().count(), 1);
    }

    #[test]
    fn survives_a_serde_round_trip_mid_pending() {
        let mut r = RuleAlerts::default();
        r.eval(0, vec![hold("a", 1.0)], timing(60, 0));
        let mut back: RuleAlerts =
            serde_json::from_str(&serde_json::to_string(&r).unwrap()).unwrap();
        assert!(
            back.eval(30, vec![hold("a", 1.0)], timing(60, 0))
                .is_empty()
        );
        let ev = back.eval(60, vec![hold("a", 1.0)], timing(60, 0));
        assert!(matches!(&ev[..], [AlertEvent::Firing(_)]));
    }

    #[test]
    fn state_saved_before_misses_existed_still_loads() {
        let old = r#"{"alerts":{"k":{"labels":{},"annotations":{},"status":"pending","value":1.0,"active_at":0,"fired_at":null,"resolved_at":null,"last_held_at":0}}}"#;
        let r: RuleAlerts = serde_json::from_str(old).unwrap();
        assert_eq!(r.all().next().map(|a| a.misses), Some(0));
    }
}
