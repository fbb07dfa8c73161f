//! `sessionplane health`: a node's health checks, for people and for scripts (exit status).

use reqwest::Method;
use serde_json::Value;

use super::client::{print, ApiArgs, ApiClient};

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The node's health checks; fails (exit status 1) when the node is unhealthy.
pub async fn health(api: &ApiArgs) -> anyhow::Result<()> {
    let client = ApiClient::new(api)?;
    let (status, report) = client.call_any(Method::GET, "/healthcheck").await?;
    let rows = report["checks"]
        .as_array()
        .map(|checks| {
            checks
                .iter()
                .map(|c| {
                    vec![
                        text(&c["componentName"]),
                        text(&c["status"]),
                        text(&c["cause"]),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    print(api.json, &report, &["CHECK", "STATUS", "CAUSE"], rows);
    anyhow::ensure!(status == 200, "the node is {}", text(&report["status"]));
    Ok(())
}
