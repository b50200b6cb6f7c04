//! Alerts as Prometheus has them — inactive → pending → firing → resolved,
//! with `for` and `keep_firing_for` — persisted in an embedded store so a
//! restart resumes pending timers and firing alerts without notifying again.
//!
//! - [`state`]: the pure state machine, one [`state::RuleAlerts`] per rule.
//! - [`store`]: the redb file that holds it between runs.
//! - [`sink`]: where alert events go (the notifiers plug in there).

pub mod sink;
pub mod state;
pub mod store;

pub use sink::{AlertSink, LogSink, alert_info};
pub use state::{Alert, AlertEvent, AlertStatus, Observation, RuleAlerts, Timing};
pub use store::{AlertStore, StoreError};
