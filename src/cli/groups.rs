//! `sessionplane groups …`: groups of users (`admins@domain` makes domain administrators).

use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Value};

use super::client::{print, query, segment, ApiArgs, ApiClient};
use super::done;

#[derive(Subcommand, Debug)]
pub enum GroupsCommand {
    /// Create a group (name@domain) with members (login@domain).
    Add {
        group: String,
        #[arg(long = "member")]
        members: Vec<String>,
    },
    /// Add and remove members.
    Members {
        group: String,
        #[arg(long)]
        add: Vec<String>,
        #[arg(long)]
        remove: Vec<String>,
    },
    Rm {
        group: String,
    },
    List {
        #[arg(long)]
        domain: Option<String>,
    },
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub async fn groups(api: &ApiArgs, command: GroupsCommand) -> anyhow::Result<()> {
    let client = ApiClient::new(api)?;
    match command {
        GroupsCommand::Add { group, members } => {
            let path = format!("/groups/{}", segment(&group));
            client
                .call(Method::PUT, &path, Some(json!({"members": members})))
                .await?;
            let created = json!({"created": group, "members": members});
            done(api.json, &format!("created {group}"), created);
        }
        GroupsCommand::Members { group, add, remove } => {
            anyhow::ensure!(
                !add.is_empty() || !remove.is_empty(),
                "give --add or --remove"
            );
            let path = format!("/groups/{}", segment(&group));
            let body = json!({"add": add, "remove": remove});
            client.call(Method::PATCH, &path, Some(body)).await?;
            let updated = json!({"updated": group, "added": add, "removed": remove});
            done(api.json, &format!("updated {group}"), updated);
        }
        GroupsCommand::Rm { group } => {
            let path = format!("/groups/{}", segment(&group));
            client.call(Method::DELETE, &path, None).await?;
            done(
                api.json,
                &format!("deleted {group}"),
                json!({ "deleted": group }),
            );
        }
        GroupsCommand::List { domain } => {
            let path = "/groups".to_string() + &query(&[("domain", domain.as_deref())]);
            let listed = client.call(Method::GET, &path, None).await?;
            let rows = listed
                .as_array()
                .map(|groups| {
                    groups
                        .iter()
                        .map(|g| {
                            let members: Vec<String> = g["members"]
                                .as_array()
                                .into_iter()
                                .flatten()
                                .map(|m| text(&m["username"]))
                                .collect();
                            vec![
                                format!("{}@{}", text(&g["name"]), text(&g["domain"])),
                                members.join(", "),
                            ]
                        })
                        .collect()
                })
                .unwrap_or_default();
            print(api.json, &listed, &["GROUP", "MEMBERS"], rows);
        }
    }
    Ok(())
}
