//! `sessionplane cluster status|add-node|remove-node`: the Raft groups as the node asked sees
//! them, and this site's members changed at runtime.

use clap::Subcommand;
use reqwest::Method;
use serde_json::Value;

use super::client::{print, ApiArgs, ApiClient};
use super::done;

#[derive(Subcommand, Debug)]
pub enum ClusterCommand {
    /// Each group's role, leader, term and log positions, and its members' replication.
    Status,
    /// Adds a node to this site (list it in every node's site_nodes too).
    AddNode {
        #[arg(long)]
        id: u64,
        /// Its cluster listener, host:port.
        #[arg(long)]
        cluster: String,
        /// Only follow: do not vote.
        #[arg(long)]
        learner: bool,
    },
    /// Removes a node from this site (remove it from every node's site_nodes first).
    RemoveNode { id: u64 },
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A last contact for people: `0.2 s ago`, `-` when never.
fn contact(ms: &Value) -> String {
    match ms.as_u64() {
        Some(ms) => format!("{:.1} s ago", ms as f64 / 1000.0),
        None => "-".into(),
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
                        match member["answers"].as_bool() {
                            Some(true) => "yes".into(),
                            Some(false) => "NO".into(),
                            None => "?".into(),
                        },
                        contact(&member["lastContactMs"]),
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
                "ANSWERS",
                "LAST CONTACT",
            ];
            print(api.json, &status, &header, rows);
        }
        ClusterCommand::AddNode {
            id,
            cluster,
            learner,
        } => {
            let body = serde_json::json!({"id": id, "cluster": cluster, "voter": !learner});
            client
                .call(Method::POST, "/cluster/nodes", Some(body))
                .await?;
            let added = serde_json::json!({"added": id, "voter": !learner});
            done(api.json, &format!("added node {id}"), added);
        }
        ClusterCommand::RemoveNode { id } => {
            client
                .call(Method::DELETE, &format!("/cluster/nodes/{id}"), None)
                .await?;
            let removed = serde_json::json!({ "removed": id });
            done(api.json, &format!("removed node {id}"), removed);
        }
    }
    Ok(())
}
