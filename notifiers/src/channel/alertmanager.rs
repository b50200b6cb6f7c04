//! Alertmanager as a channel: post alerts to `/api/v2/alerts` as Prometheus
//! does, so Alertmanager's routing, silences and receivers take over. One
//! channel per Alertmanager instance; for an HA cluster configure one per
//! replica (Alertmanager deduplicates by gossip).

use std::time::Duration;

use serde::Serialize;

use crate::alert::{KeyValues, Notification, Status, rfc3339};
use crate::delivery::SendError;

/// One Alertmanager instance.
#[derive(Debug, Clone)]
pub struct AlertmanagerConfig {
    /// Base URL, e.g. `http://127.0.0.1:9093`.
    pub url: url::Url,
    /// Whole-request timeout.
    pub timeout: Duration,
    /// `endsAt` of a firing alert is now + this, so Alertmanager resolves it
    /// by itself if prognos stops resending (Prometheus uses 4× its resend
    /// interval). Default 5 minutes.
    pub resend_ttl: Duration,
}

/// Posts alerts to one Alertmanager.
#[derive(Debug)]
pub struct AlertmanagerChannel {
    config: AlertmanagerConfig,
    client: reqwest::Client,
}

/// An alert as `POST /api/v2/alerts` takes it (`postableAlert`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PostableAlert<'a> {
    labels: &'a KeyValues,
    annotations: &'a KeyValues,
    starts_at: String,
    ends_at: String,
    #[serde(rename = "generatorURL", skip_serializing_if = "str::is_empty")]
    generator_url: &'a str,
}

/// The alerts of `n` as Alertmanager takes them, at `now` (Unix seconds).
fn postable(n: &Notification, now: i64, ttl: Duration) -> Vec<PostableAlert<'_>> {
    let ttl = i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
    n.alerts
        .iter()
        .map(|a| PostableAlert {
            labels: &a.labels,
            annotations: &a.annotations,
            starts_at: rfc3339(a.starts_at),
            ends_at: match a.status {
                Status::Firing => rfc3339(now.saturating_add(ttl)),
                Status::Resolved => rfc3339(a.ends_at.unwrap_or(now)),
            },
            generator_url: &a.generator_url,
        })
        .collect()
}

impl AlertmanagerChannel {
    /// A channel posting with `client` (shared, for connection reuse).
    pub fn new(c: AlertmanagerConfig, client: reqwest::Client) -> Self {
        Self { config: c, client }
    }

    /// Posts the alerts of `n`. One part: skipped when `*progress >= 1`.
    pub async fn send(&self, n: &Notification, progress: &mut u32) -> Result<(), SendError> {
        if *progress >= 1 || n.alerts.is_empty() {
            *progress = (*progress).max(1);
            return Ok(());
        }
        // Appended, not joined: a base with a path prefix keeps it.
        let mut url = self.config.url.clone();
        let path = format!("{}/api/v2/alerts", url.path().trim_end_matches('/'));
        url.set_path(&path);
        let body = postable(n, chrono::Utc::now().timestamp(), self.config.resend_ttl);
        let resp = self
            .client
            .post(url)
            .timeout(self.config.timeout)
            .json(&body)
            .send()
            .await
            .map_err(super::transport_error)?;
        super::check_response("Alertmanager", resp).await?;
        *progress = 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::AlertInfo;

    fn alert(status: Status, ends_at: Option<i64>) -> AlertInfo {
        AlertInfo {
            rule: "g/r".into(),
            labels: [("alertname".to_string(), "X".to_string())].into(),
            annotations: KeyValues::new(),
            status,
            starts_at: 1_700_000_000,
            ends_at,
            value: 1.0,
            generator_url: String::new(),
            explanation: None,
        }
    }

    #[test]
    fn firing_ends_after_the_ttl_and_resolved_at_its_end() {
        let n = Notification {
            key: "k".into(),
            receiver: "am".into(),
            group_key: "g".into(),
            group_labels: KeyValues::new(),
            alerts: vec![
                alert(Status::Firing, None),
                alert(Status::Resolved, Some(1_700_000_600)),
            ],
            created_at: 0,
            external_url: String::new(),
        };
        let now = 1_700_001_000;
        let v = serde_json::to_value(postable(&n, now, Duration::from_secs(300))).unwrap();
        assert_eq!(v[0]["endsAt"], rfc3339(now + 300));
        assert_eq!(v[0]["startsAt"], "2023-11-14T22:13:20Z");
        assert_eq!(v[1]["endsAt"], rfc3339(1_700_000_600));
        assert!(v[0].get("generatorURL").is_none());
    }
}
