//! `sessionplane cluster status`: the Raft groups as the node asked sees them.

use clap::Subcommand;
use reqwest::Method;
use serde_json::Value;

use super::client::{print, ApiArgs, ApiClient};

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Each group's role, leader, term and log positions, and its members' replication.
    Status,
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub async fn cluster(api: &ApiArgs, command: ClusterCommand) -> anyhow::Result<()> {
    let client = ApiClient::new(api)?;
    match command {
        ClusterCommand::Status => {
            let status = client.call(Method::GET, "/cluster/status", None).await?;
            let mut rows = Vec::new();
            for group in status["groups"].as_array().into_iter().flatten() {
                for member in group["members"].as_array().into_iter().flatten() {
                    let role = match member["id"] == group["nodeId"] {
                        true => text(&group["role"]),
                        false => String::new(),
                    };
                    rows.push(vec![
                        text(&group["group"]),
                        text(&member["id"]),
                        text(&member["address"]),
                        if member["voter"] == true {
                            "voter"
                        } else {
                            "learner"
                        }
                        .into(),
                        role,
                        text(&group["leader"]),
                        text(&group["term"]),
                        text(&member["matchedIndex"]),
                        text(&member["lag"]),
                    ]);
                }
            }
            let header = [
                "GROUP",
                "NODE",
                "ADDRESS",
                "KIND",
                "THIS NODE",
                "LEADER",
                "TERM",
                "MATCHED",
                "LAG",
            ];
            print(api.json, &status, &header, rows);
        }
    }
    Ok(())
}
