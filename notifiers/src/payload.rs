//! The Alertmanager webhook payload, version 4, so receivers written for
//! Alertmanager take prognos's notifications unchanged.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Labels or annotations.
pub type KeyValues = BTreeMap<String, String>;

/// Whether an alert is firing or resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Still firing.
    Firing,
    /// No longer firing.
    Resolved,
}

/// One alert in a webhook payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAlert {
    /// Firing or resolved.
    pub status: Status,
    /// Identifying labels.
    pub labels: KeyValues,
    /// Annotations.
    pub annotations: KeyValues,
    /// RFC 3339 start.
    pub starts_at: String,
    /// RFC 3339 end; `0001-01-01T00:00:00Z` while firing, as Alertmanager sends.
    pub ends_at: String,
    /// Link back to prognos.
    #[serde(rename = "generatorURL")]
    pub generator_url: String,
    /// Stable hash of the labels, hex.
    pub fingerprint: String,
}

/// The webhook body (`version: "4"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookPayload {
    /// Always "4".
    pub version: String,
    /// Identifies the group the alerts were sent as.
    pub group_key: String,
    /// Alerts left out because of a size limit.
    pub truncated_alerts: usize,
    /// Firing if any alert fires.
    pub status: Status,
    /// The receiver's name.
    pub receiver: String,
    /// Labels the group was formed by.
    pub group_labels: KeyValues,
    /// Labels every alert shares.
    pub common_labels: KeyValues,
    /// Annotations every alert shares.
    pub common_annotations: KeyValues,
    /// prognos's external URL.
    #[serde(rename = "externalURL")]
    pub external_url: String,
    /// The alerts.
    pub alerts: Vec<WebhookAlert>,
}

/// A stable fingerprint of a label set (FNV-1a over `k=v` pairs), hex.
pub fn fingerprint(labels: &KeyValues) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (k, v) in labels {
        for b in k.bytes().chain([b'=']).chain(v.bytes()).chain([0xff]) {
            h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

fn common(maps: impl Iterator<Item = KeyValues>) -> KeyValues {
    let mut it = maps;
    let Some(mut acc) = it.next() else {
        return KeyValues::new();
    };
    for m in it {
        acc.retain(|k, v| m.get(k) == Some(v));
    }
    acc
}

impl WebhookPayload {
    /// A payload for `alerts`, grouped by `group_labels`, at most `max_alerts`
    /// of them (0 for no limit; the rest are counted in `truncated_alerts`).
    pub fn new(
        receiver: &str,
        group_labels: KeyValues,
        mut alerts: Vec<WebhookAlert>,
        external_url: &str,
        max_alerts: usize,
    ) -> Self {
        let status = if alerts.iter().any(|a| a.status == Status::Firing) {
            Status::Firing
        } else {
            Status::Resolved
        };
        let truncated = if max_alerts > 0 && alerts.len() > max_alerts {
            let t = alerts.len() - max_alerts;
            alerts.truncate(max_alerts);
            t
        } else {
            0
        };
        let group_key = format!(
            "{{}}:{{{}}}",
            group_labels
                .iter()
                .map(|(k, v)| format!("{k}={v:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        Self {
            version: "4".to_string(),
            group_key,
            truncated_alerts: truncated,
            status,
            receiver: receiver.to_string(),
            common_labels: common(alerts.iter().map(|a| a.labels.clone())),
            common_annotations: common(alerts.iter().map(|a| a.annotations.clone())),
            group_labels,
            external_url: external_url.to_string(),
            alerts,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(service: &str, status: Status) -> WebhookAlert {
        let labels: KeyValues = [
            ("alertname", "ApiCpuHighSoon"),
            ("service", service),
            ("severity", "warning"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        WebhookAlert {
            status,
            fingerprint: fingerprint(&labels),
            labels,
            annotations: [("summary".to_string(), format!("{service} CPU high soon"))].into(),
            starts_at: "2026-11-24T05:00:00Z".to_string(),
            ends_at: "0001-01-01T00:00:00Z".to_string(),
            generator_url: "http://127.0.0.1:9464/api/v1/alerts".to_string(),
        }
    }

    #[test]
    fn serialises_as_alertmanager_version_4() {
        let p = WebhookPayload::new(
            "ops",
            [("alertname".to_string(), "ApiCpuHighSoon".to_string())].into(),
            vec![
                alert("mes-api", Status::Firing),
                alert("crm-api", Status::Resolved),
            ],
            "http://prognos:9464",
            0,
        );
        let v: serde_json::Value = serde_json::to_value(&p).unwrap();
        assert_eq!(v["version"], "4");
        assert_eq!(v["status"], "firing");
        assert_eq!(v["externalURL"], "http://prognos:9464");
        assert_eq!(
            v["alerts"][0]["generatorURL"],
            "http://127.0.0.1:9464/api/v1/alerts"
        );
        assert_eq!(v["alerts"][1]["status"], "resolved");
        assert_eq!(v["commonLabels"]["severity"], "warning");
        assert!(v["commonLabels"].get("service").is_none());
        assert!(v["commonAnnotations"].as_object().unwrap().is_empty());
        for key in [
            "groupKey",
            "truncatedAlerts",
            "receiver",
            "groupLabels",
            "startsAt",
        ] {
            assert!(
                v.get(key).is_some() || v["alerts"][0].get(key).is_some(),
                "{key}"
            );
        }
        let back: WebhookPayload = serde_json::from_value(v).unwrap();
        assert_eq!(back, p);
    }

    #[test]
    fn truncates_and_counts() {
        let alerts = (0..5)
            .map(|i| alert(&format!("s{i}"), Status::Resolved))
            .collect();
        let p = WebhookPayload::new("ops", KeyValues::new(), alerts, "", 2);
        assert_eq!(
            (p.alerts.len(), p.truncated_alerts, p.status),
            (2, 3, Status::Resolved)
        );
    }

    #[test]
    fn fingerprints_are_stable_and_distinct() {
        let a = alert("a", Status::Firing).labels;
        let b = alert("b", Status::Firing).labels;
        assert_eq!(fingerprint(&a), fingerprint(&a.clone()));
        assert_ne!(fingerprint(&a), fingerprint(&b));
    }
}
