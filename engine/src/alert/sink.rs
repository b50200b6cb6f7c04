//! Where alert events go. The notifiers (Telegram, email, webhooks,
//! Alertmanager) implement [`AlertSink`]; until they are wired in, events are
//! logged by [`LogSink`].

use super::state::AlertEvent;

/// Receives alert transitions. Implementations must not block for long: the
/// durable outbox of the notifiers takes over from here.
pub trait AlertSink: Send + Sync {
    /// Hands over the events of one evaluation of `rule`.
    fn send(&self, rule: &str, events: &[AlertEvent]);
}

/// Logs each event at INFO.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogSink;

impl AlertSink for LogSink {
    fn send(&self, rule: &str, events: &[AlertEvent]) {
        for e in events {
            match e {
                AlertEvent::Firing(a) => {
                    tracing::info!(rule, labels = ?a.labels, value = a.value, annotations = ?a.annotations, "Alert firing.")
                }
                AlertEvent::Resolved(a) => {
                    tracing::info!(rule, labels = ?a.labels, "Alert resolved.")
                }
            }
        }
    }
}
