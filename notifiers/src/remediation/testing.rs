//! Test helpers shared by the remediation modules' unit tests: alerts,
//! actions, an awaiting approval, and the canaries no shown text may contain.

use super::{Action, ApprovalPolicy, ApprovalRequest, AuditRecord, Governor, plan};
use crate::alert::{AlertInfo, Status};
use crate::store::Delivery;

pub(super) fn alert(labels: &[(&str, &str)], status: Status) -> AlertInfo {
    AlertInfo {
        rule: "mes/MesQueueBacklogSoon".to_string(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        annotations: [("summary".to_string(), "Queue <fills> soon".to_string())].into(),
        status,
        starts_at: 1_700_000_000,
        ends_at: None,
        value: 3600.5,
        generator_url: "http://prognos/api".to_string(),
        explanation: None,
    }
}

pub(super) fn firing() -> AlertInfo {
    alert(
        &[
            ("alertname", "MesQueueBacklogSoon"),
            ("service", "mes-api"),
            ("instance", "node-1"),
        ],
        Status::Firing,
    )
}

pub(super) fn action(name: &str) -> Action {
    Action {
        name: name.to_string(),
        url: url::Url::parse("http://127.0.0.1:9/hook").unwrap(),
        method: "POST".to_string(),
        body_template:
            r#"{"action":"restart","host":"{{ $labels.instance }}","value":{{ $value }}}"#
                .to_string(),
        headers: vec![],
        matchers: crate::matcher::parse_matchers(r#"service="mes-api""#).unwrap(),
        cooldown_secs: 600,
        approval: None,
        dry_run: false,
        on_resolved: false,
    }
}

pub(super) fn approval_action() -> Action {
    let mut a = action("restart");
    a.approval = Some(ApprovalPolicy {
        expires_secs: 900,
        approvers: vec![42],
    });
    a
}

pub(super) fn awaiting(g: &mut Governor) -> (AuditRecord, ApprovalRequest) {
    let mut p = plan(&[approval_action()], g, &firing(), 1000).unwrap();
    let p = p.remove(0);
    let Some(Delivery::Approval(req)) = p.enqueue else {
        panic!("expected an approval request")
    };
    (p.record, req)
}

const CANARIES: [&str; 5] = [
    "CANARY-BEARER",
    "CANARY-APIKEY",
    "CANARY-PASS",
    "CANARY-QUERYKEY",
    "CANARY-USER",
];

pub(super) fn assert_no_canary(what: &str, text: &str) {
    for c in CANARIES {
        assert!(!text.contains(c), "{c} in {what}: {text}");
    }
}
