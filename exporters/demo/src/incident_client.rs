//! `prognos-demo incident`: asks a running service's admin API to start,
//! list or stop incidents, and prints its JSON answer.

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use url::Url;

use crate::admin::read_token_file;
use crate::cli::{IncidentAction, IncidentArgs};
use crate::incident::IncidentBody;

/// `target` + `/admin/incidents` (+ `/kind`), keeping any path prefix.
fn admin_url(target: &Url, kind: Option<&str>) -> anyhow::Result<Url> {
    let mut url = target.clone();
    {
        let mut segments = url
            .path_segments_mut()
            .map_err(|()| anyhow!("--target {target} cannot be a base URL"))?;
        segments.pop_if_empty().extend(["admin", "incidents"]);
        if let Some(kind) = kind {
            segments.push(kind);
        }
    }
    Ok(url)
}

/// Runs `prognos-demo incident`.
pub async fn run(args: IncidentArgs) -> anyhow::Result<()> {
    let token = args
        .admin_token_file
        .as_deref()
        .map(read_token_file)
        .transpose()?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let action = args.action();
    let request = match &action {
        IncidentAction::Start(kind) => {
            let body = IncidentBody {
                kind: kind.clone(),
                duration_seconds: Some(args.duration.as_secs_f64()),
                intensity: Some(args.intensity),
            };
            client.post(admin_url(&args.target, None)?).json(&body)
        }
        IncidentAction::List => client.get(admin_url(&args.target, None)?),
        IncidentAction::Stop(kind) => client.delete(admin_url(&args.target, Some(kind))?),
    };
    let request = match &token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    let response = request
        .send()
        .await
        .with_context(|| format!("cannot reach {}", args.target))?;
    let status = response.status();
    let text = response.text().await.context("reading the answer")?;
    let shown = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or(text);
    println!("{shown}");
    if !status.is_success() {
        bail!("{} answered {status}", args.target);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_urls() {
        let base: Url = "http://127.0.0.1:8081".parse().unwrap();
        assert_eq!(
            admin_url(&base, None).unwrap().as_str(),
            "http://127.0.0.1:8081/admin/incidents"
        );
        let prefixed: Url = "http://host/shop/".parse().unwrap();
        assert_eq!(
            admin_url(&prefixed, Some("db_growth")).unwrap().as_str(),
            "http://host/shop/admin/incidents/db_growth"
        );
        let weird = admin_url(&base, Some("a/b")).unwrap();
        assert_eq!(weird.path(), "/admin/incidents/a%2Fb");
    }
}
