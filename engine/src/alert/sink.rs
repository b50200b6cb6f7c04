//! Where alert transitions go. The notifiers (routing, the durable outbox,
//! Telegram, email, webhooks, Alertmanager) implement [`AlertSink`]; without
//! a `notifications:` section, transitions are logged by [`LogSink`].

use prognos_notifiers::alert::{AlertInfo, Status};

use super::state::{Alert, AlertEvent};

/// Receives alert transitions. Implementations must not block for long: the
/// durable outbox of the notifiers takes over from here.
pub trait AlertSink: Send + Sync {
    /// Hands over the transitions of one evaluation (firing or resolved),
    /// with what the model saw.
    fn send(&self, alerts: &[AlertInfo]);
}

/// The notifiers' view of an engine alert event of rule `rule`.
pub fn alert_info(rule: &str, event: &AlertEvent, generator_url: String) -> AlertInfo {
    let (a, status): (&Alert, Status) = match event {
        AlertEvent::Firing(a) => (a, Status::Firing),
        AlertEvent::Resolved(a) => (a, Status::Resolved),
    };
    AlertInfo {
        rule: rule.to_string(),
        labels: a.labels.clone(),
        annotations: a.annotations.clone(),
        status,
        starts_at: a.fired_at.unwrap_or(a.active_at),
        ends_at: a.resolved_at,
        value: a.value,
        generator_url,
        explanation: None,
    }
}

/// Logs each transition at INFO.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogSink;

impl AlertSink for LogSink {
    fn send(&self, alerts: &[AlertInfo]) {
        for a in alerts {
            match a.status {
                Status::Firing => {
                    tracing::info!(rule = %a.rule, labels = ?a.labels, value = a.value, annotations = ?a.annotations, "Alert firing.")
                }
                Status::Resolved => {
                    tracing::info!(rule = %a.rule, labels = ?a.labels, "Alert resolved.")
                }
            }
        }
    }
}
