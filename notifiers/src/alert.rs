//! Alerts and notifications as plain data: what the engine hands over, and
//! what the outbox stores and the channels send. Nothing here does I/O.

use serde::{Deserialize, Serialize};

pub use crate::payload::{KeyValues, Status};

/// One alert as the notifiers see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertInfo {
    /// The rule that produced it (`group/rule`).
    pub rule: String,
    /// Identifying labels (with `alertname`).
    pub labels: KeyValues,
    /// Rendered annotations (`summary`, `description`, …).
    pub annotations: KeyValues,
    /// Firing or resolved.
    pub status: Status,
    /// When it started firing (Unix seconds).
    pub starts_at: i64,
    /// When it resolved (Unix seconds), if it did.
    pub ends_at: Option<i64>,
    /// The rule's value when it last held (ETA seconds, forecast, score …).
    #[serde(deserialize_with = "f64_or_nan")]
    pub value: f64,
    /// Link back to prognos (the series' forecast in the API).
    pub generator_url: String,
    /// Why it fired, for messages that explain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation: Option<Explanation>,
}

impl AlertInfo {
    /// Stable hash of the labels (as Alertmanager's fingerprint), hex.
    pub fn fingerprint(&self) -> String {
        crate::payload::fingerprint(&self.labels)
    }

    /// The `alertname` label, or the rule.
    pub fn name(&self) -> &str {
        self.labels
            .get("alertname")
            .map(String::as_str)
            .unwrap_or(&self.rule)
    }
}

/// What the model saw when the alert held.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    /// The condition kind: `forecast`, `time_to_threshold`, `anomaly`, `burn_rate`.
    pub condition: String,
    /// The PromQL expression of the series.
    pub expr: String,
    /// The latest observed value.
    pub current: Option<f64>,
    /// What the model expected now.
    pub expected: Option<f64>,
    /// The band around `expected` (lower, upper) at `level`.
    pub band: Option<(f64, f64)>,
    /// The band's coverage level, e.g. 0.95.
    pub level: Option<f64>,
    /// The threshold of a time-to-threshold rule.
    pub threshold: Option<f64>,
    /// Time to threshold: best estimate and the band's range, seconds.
    pub eta: Option<Eta>,
    /// Anomaly score in [0, 1].
    pub anomaly_score: Option<f64>,
    /// Link to the Grafana panel, if configured.
    pub dashboard_url: Option<String>,
    /// Recent history for the chart: (Unix seconds, value).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<(i64, f64)>,
    /// The forecast for the chart.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forecast: Vec<ForecastPoint>,
}

/// Time to a threshold: the best estimate and, from the band, the earliest
/// and latest (None: not within the horizon).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Eta {
    /// Best estimate, seconds from `starts_at`'s evaluation.
    #[serde(deserialize_with = "f64_or_nan")]
    pub seconds: f64,
    /// Earliest (the band's pessimistic edge), seconds.
    pub earliest: Option<f64>,
    /// Latest (the band's optimistic edge), seconds.
    pub latest: Option<f64>,
    /// In words, e.g. "in ~3d 4h (between 2d and 5d)".
    pub text: String,
}

/// One step of a forecast.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ForecastPoint {
    /// Unix seconds.
    pub t: i64,
    /// Expected value.
    #[serde(deserialize_with = "f64_or_nan")]
    pub mean: f64,
    /// Lower edge of the band.
    #[serde(deserialize_with = "f64_or_nan")]
    pub lower: f64,
    /// Upper edge of the band.
    #[serde(deserialize_with = "f64_or_nan")]
    pub upper: f64,
}

/// One message to one receiver about one group of alerts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    /// Idempotency key: stable for this group, receiver and alert set, so a
    /// resend after a crash is recognisable by the receiver.
    pub key: String,
    /// The receiver's name (configuration).
    pub receiver: String,
    /// The group's key (receiver route + group labels).
    pub group_key: String,
    /// The labels the group was formed by.
    pub group_labels: KeyValues,
    /// The alerts, firing first.
    pub alerts: Vec<AlertInfo>,
    /// When it was made (Unix seconds).
    pub created_at: i64,
    /// prognos's external URL.
    pub external_url: String,
}

impl Notification {
    /// The alert a message leads with and charts: the first firing one, else the first.
    pub fn lead(&self) -> Option<&AlertInfo> {
        self.alerts
            .iter()
            .find(|a| a.status == Status::Firing)
            .or_else(|| self.alerts.first())
    }

    /// Drops the chart data (history, forecast) of every alert but the lead,
    /// which alone is charted: keeps outbox entries of big groups small.
    pub fn keep_only_the_lead_chart(&mut self) {
        let lead = self.lead().map(AlertInfo::fingerprint);
        for a in &mut self.alerts {
            if Some(a.fingerprint()) != lead
                && let Some(e) = &mut a.explanation
            {
                e.history = Vec::new();
                e.forecast = Vec::new();
            }
        }
    }

    /// Firing if any alert fires.
    pub fn status(&self) -> Status {
        if self.alerts.iter().any(|a| a.status == Status::Firing) {
            Status::Firing
        } else {
            Status::Resolved
        }
    }

    /// The Alertmanager webhook payload (version 4) of this notification,
    /// keeping at most `max_alerts` alerts (0: all).
    pub fn webhook_payload(&self, max_alerts: usize) -> crate::payload::WebhookPayload {
        let alerts = self
            .alerts
            .iter()
            .map(|a| crate::payload::WebhookAlert {
                status: a.status,
                labels: a.labels.clone(),
                annotations: a.annotations.clone(),
                starts_at: rfc3339(a.starts_at),
                ends_at: a
                    .ends_at
                    .map(rfc3339)
                    .unwrap_or_else(|| "0001-01-01T00:00:00Z".to_string()),
                generator_url: a.generator_url.clone(),
                fingerprint: a.fingerprint(),
            })
            .collect();
        let mut payload = crate::payload::WebhookPayload::new(
            &self.receiver,
            self.group_labels.clone(),
            alerts,
            &self.external_url,
            max_alerts,
        );
        payload.group_key = self.group_key.clone();
        payload
    }
}

/// Unix seconds as RFC 3339 (UTC).
pub fn rfc3339(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// JSON has no NaN or infinity: serde_json writes them as `null`. Reading
/// `null` back as NaN keeps stored alerts loadable.
fn f64_or_nan<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_values_survive_a_json_round_trip() {
        let a = AlertInfo {
            rule: "g/r".into(),
            labels: KeyValues::new(),
            annotations: KeyValues::new(),
            status: Status::Firing,
            starts_at: 0,
            ends_at: None,
            value: f64::NAN,
            generator_url: String::new(),
            explanation: Some(Explanation {
                forecast: vec![ForecastPoint {
                    t: 1,
                    mean: f64::INFINITY,
                    lower: 0.0,
                    upper: f64::NAN,
                }],
                ..Explanation::default()
            }),
        };
        let back: AlertInfo = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        assert!(back.value.is_nan());
        assert!(back.explanation.unwrap().forecast[0].mean.is_nan());
    }
}
