//! `remediation:`: the secret, the rate limit and each action with its
//! binding, template and approval policy.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use prognos_notifiers::config::{AUDIT_RETENTION_SECS, RemediationConfig};
use prognos_notifiers::remediation::{Action, ApprovalPolicy, check_template};

use super::super::validate::Report;
use super::raw::RawRemediation;
use super::{matchers_at, secret_at, secs, url_at};

pub(super) fn remediation(
    report: &mut Report<'_>,
    base: &Path,
    r: &RawRemediation,
    has_bot: bool,
) -> Option<RemediationConfig> {
    let p = "remediation";
    let secret = secret_at(
        report,
        base,
        r.secret_file.as_ref(),
        r.secret_env.as_ref(),
        p,
        "secret",
        true,
    );
    let (max_calls, per) = match &r.rate_limit {
        None => (10, Some(Duration::from_secs(3600))),
        Some(l) => (
            l.max_calls.unwrap_or(10),
            report.duration(
                l.per.as_ref(),
                Duration::from_secs(3600),
                "remediation.rate_limit.per",
                "",
                "remediation.rate_limit.per",
            ),
        ),
    };
    let retention = report.duration(
        r.audit_retention.as_ref(),
        Duration::from_secs(AUDIT_RETENTION_SECS as u64),
        "remediation.audit_retention",
        "",
        "remediation.audit_retention",
    );
    let mut actions = Vec::new();
    let mut names = BTreeSet::new();
    for (i, a) in r.actions.iter().enumerate() {
        let ap = format!("{p}.actions[{i}]");
        let Some(name) = a.name.clone() else {
            report.at(&ap, "", &format!("{ap}.name"), "is required");
            continue;
        };
        if !names.insert(name.clone()) {
            report.at(
                &format!("{ap}.name"),
                "",
                &format!("{ap}.name"),
                format!("duplicate action name {name:?}"),
            );
        }
        let url = url_at(report, a.url.as_deref(), &format!("{ap}.url"));
        let method = a
            .method
            .clone()
            .unwrap_or_else(|| "POST".to_string())
            .to_uppercase();
        if !matches!(method.as_str(), "POST" | "PUT" | "PATCH" | "GET" | "DELETE") {
            report.at(
                &format!("{ap}.method"),
                "",
                &format!("{ap}.method"),
                format!("expected POST, PUT, PATCH, GET or DELETE, got {method:?}"),
            );
        }
        let body = a.body.clone().unwrap_or_default();
        // The body is escaped for its Content-Type (or refused placeholders).
        let content_type = a
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| v.as_str());
        if let Err(e) = check_template(&body, content_type) {
            report.at(
                &format!("{ap}.body"),
                "",
                &format!("{ap}.body"),
                e.to_string(),
            );
        }
        let matchers = matchers_at(report, &a.matchers, &ap);
        if a.matchers.is_empty() {
            report.at(
                &ap,
                "",
                &format!("{ap}.matchers"),
                "needs at least one matcher (which alerts call it)",
            );
        }
        let cooldown = report.duration(
            a.cooldown.as_ref(),
            Duration::from_secs(1800),
            &format!("{ap}.cooldown"),
            "",
            &format!("{ap}.cooldown"),
        );
        let approval = match &a.approval {
            None => None,
            Some(ap_raw) => {
                if ap_raw.approvers.is_empty() {
                    report.at(
                        &format!("{ap}.approval"),
                        "",
                        &format!("{ap}.approval.approvers"),
                        "needs at least one Telegram user id",
                    );
                }
                if !has_bot {
                    report.at(
                        &format!("{ap}.approval"),
                        "",
                        &format!("{ap}.approval"),
                        "needs notifications.telegram_bot to ask for approval",
                    );
                }
                let expires = report.duration(
                    ap_raw.expires.as_ref(),
                    Duration::from_secs(900),
                    &format!("{ap}.approval.expires"),
                    "",
                    &format!("{ap}.approval.expires"),
                );
                expires.map(|e| ApprovalPolicy {
                    expires_secs: secs(e).max(1),
                    approvers: ap_raw.approvers.clone(),
                })
            }
        };
        if let (Some(url), Some(cooldown)) = (url, cooldown) {
            actions.push(Action {
                name,
                url,
                method,
                body_template: body,
                headers: a
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                matchers,
                cooldown_secs: secs(cooldown),
                approval,
                dry_run: a.dry_run || r.dry_run,
                on_resolved: a.on_resolved,
            });
        }
    }
    Some(RemediationConfig {
        secret: secret?,
        max_calls: max_calls.max(1),
        per_secs: secs(per?).max(1),
        dry_run: r.dry_run,
        actions,
        audit_retention_secs: secs(retention?).max(1),
    })
}

#[cfg(test)]
mod tests {
    /// Loads a configuration whose `remediation.actions` are `actions`
    /// (YAML list items indented by four spaces); the errors as lines.
    fn load(actions: &str) -> Result<(), String> {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("prognos.yml");
        std::fs::create_dir_all(dir.path().join("rules")).unwrap();
        std::fs::write(
            dir.path().join("rules/a.yml"),
            "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up\n        condition:\n          time_to_threshold: {threshold: 100, less_than: 3d}\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("hmac.key"), "a remediation secret").unwrap();
        std::fs::write(
            &main,
            format!(
                "global:\n  prometheus:\n    url: http://127.0.0.1:9090\nrule_files:\n  - rules/*.yml\nnotifications:\n  receivers:\n    - name: ops\n      webhook:\n        - url: http://127.0.0.1:9/hook\n  route:\n    receiver: ops\nremediation:\n  secret_file: hmac.key\n  actions:\n{actions}"
            ),
        )
        .unwrap();
        crate::config::load(&main).map(|_| ()).map_err(|e| {
            e.0.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        })
    }

    fn action(headers: &str, body: &str) -> String {
        format!(
            "    - name: scale\n      url: http://127.0.0.1:9/scale\n      matchers: ['service=\"shop\"']\n      headers: {{{headers}}}\n      body: '{body}'\n"
        )
    }

    const FORM_BODY: &str = "service={{ $labels.service }}&action=scale";

    #[test]
    fn a_form_body_with_placeholders_needs_its_content_type() {
        load(&action(
            "Content-Type: application/x-www-form-urlencoded",
            FORM_BODY,
        ))
        .unwrap();
        let e = load(&action("", FORM_BODY)).unwrap_err();
        assert!(
            e.contains("remediation.actions[0].body") && e.contains("needs a Content-Type header"),
            "{e}"
        );
        let e = load(&action("content-type: text/plain", FORM_BODY)).unwrap_err();
        assert!(
            e.contains("remediation.actions[0].body") && e.contains("'text/plain'"),
            "{e}"
        );
        // Without placeholders any content type is sent as written.
        load(&action("Content-Type: application/xml", "<scale/>")).unwrap();
    }
}
