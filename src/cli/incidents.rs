//! `sessionplane incident contain …` and `sessionplane locks …`: containment for people. A
//! receipt prints as two tables, one row per site and one per node, or as JSON.

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::{json, Map, Value};

use super::client::{print, query, segment, ApiArgs, ApiClient};
use super::done;
use super::sessions::sites_value;

/// What a locked user reads when no `--message` is given.
const DEFAULT_MESSAGE: &str = "This account is locked by an administrator";

#[derive(Subcommand, Debug)]
pub enum IncidentCommand {
    /// Contain a user at the selected sites in one call: end its sessions, close its
    /// websockets, disconnect its mail channels, and lock it (with --lock or --message).
    /// Exits non-zero unless every selected site confirmed.
    Contain {
        /// login@domain or a user id.
        user: String,
        #[arg(long, default_value = "current")]
        sites: String,
        /// Lock the user for this long (`24h`, `90m`), or `none` for until lifted.
        #[arg(long)]
        lock: Option<String>,
        /// What the locked user reads (implies a lock).
        #[arg(long)]
        message: Option<String>,
        /// Why, for the receipt.
        #[arg(long)]
        reason: Option<String>,
        /// Only show what would be ended.
        #[arg(long)]
        dry_run: bool,
    },
    /// The kept receipts, newest first.
    List {
        #[arg(long, default_value = "current")]
        sites: String,
    },
    /// One kept receipt.
    Show {
        incident_id: String,
        #[arg(long, default_value = "current")]
        sites: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum LocksCommand {
    /// Place a lock on exactly one target.
    Add {
        #[command(flatten)]
        target: TargetArgs,
        #[arg(long, default_value = DEFAULT_MESSAGE)]
        message: String,
        /// How long it holds (`24h`); without it, until lifted.
        #[arg(long)]
        ttl: Option<String>,
        #[arg(long, default_value = "current")]
        sites: String,
    },
    /// The locks in force (with --all, the lifted and expired too).
    List {
        #[arg(long)]
        all: bool,
        #[arg(long, default_value = "current")]
        sites: String,
    },
    /// Lift a lock (without --sites: everywhere it was placed).
    Rm {
        lock_id: String,
        #[arg(long)]
        sites: Option<String>,
    },
}

#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub struct TargetArgs {
    /// A user: login@domain or a user id.
    #[arg(long)]
    user: Option<String>,
    /// Every user of a domain.
    #[arg(long)]
    domain: Option<String>,
    /// An address or a CIDR.
    #[arg(long)]
    ip: Option<String>,
    /// One session.
    #[arg(long)]
    session: Option<String>,
}

impl TargetArgs {
    fn json(&self) -> Value {
        match (&self.user, &self.domain, &self.ip, &self.session) {
            (Some(user), ..) => json!({ "user": user }),
            (_, Some(domain), ..) => json!({ "domain": domain }),
            (_, _, Some(ip), _) => json!({ "ip": ip }),
            (.., Some(session)) => json!({ "session_id": session }),
            _ => Value::Null,
        }
    }
}

pub async fn incident(api: &ApiArgs, command: IncidentCommand) -> anyhow::Result<()> {
    let client = ApiClient::new(api)?;
    match command {
        IncidentCommand::Contain {
            user,
            sites,
            lock,
            message,
            reason,
            dry_run,
        } => {
            let lock = match (lock, message) {
                (None, None) => Value::Null,
                (ttl, message) => json!({
                    "message": message.unwrap_or_else(|| DEFAULT_MESSAGE.into()),
                    "ttl": ttl.filter(|t| t != "none"),
                }),
            };
            let body = json!({"user": user, "sites": sites_value(&sites)?, "lock": lock,
                              "reason": reason, "dry_run": dry_run});
            let (status, answer) = client
                .send(Method::POST, "/rest/v1/incidents", Some(body))
                .await?;
            let receipt = match status {
                200 => answer.clone(),
                503 if answer["receipt"].is_object() => answer["receipt"].clone(),
                _ => anyhow::bail!("{status} {}: {}", answer["type"], answer["message"]),
            };
            print_receipt(api.json, &receipt);
            anyhow::ensure!(
                status == 200,
                "not every selected site confirmed: {}",
                answer["message"].as_str().unwrap_or_default()
            );
        }
        IncidentCommand::List { sites } => {
            let path = format!("/rest/v1/incidents{}", query(&[("sites", Some(&sites))]));
            let listed = client.call(Method::GET, &path, None).await?;
            let rows = listed
                .as_array()
                .map(|all| all.iter().map(incident_row).collect())
                .unwrap_or_default();
            let header = ["INCIDENT", "USER", "STARTED", "COMPLETE", "BY", "REASON"];
            print(api.json, &listed, &header, rows);
        }
        IncidentCommand::Show { incident_id, sites } => {
            let path = format!(
                "/rest/v1/incidents/{}{}",
                segment(&incident_id),
                query(&[("sites", Some(&sites))])
            );
            let receipt = client.call(Method::GET, &path, None).await?;
            print_receipt(api.json, &receipt);
        }
    }
    Ok(())
}

pub async fn locks(api: &ApiArgs, command: LocksCommand) -> anyhow::Result<()> {
    let client = ApiClient::new(api)?;
    match command {
        LocksCommand::Add {
            target,
            message,
            ttl,
            sites,
        } => {
            let body = json!({"target": target.json(), "message": message, "ttl": ttl,
                              "sites": sites_value(&sites)?});
            let lock = client
                .call(Method::POST, "/rest/v1/locks", Some(body))
                .await?;
            let sentence = format!(
                "placed lock {} ({})",
                text(&lock["lock_id"]),
                sites_of(&lock["sites"])
            );
            done(api.json, &sentence, lock);
        }
        LocksCommand::List { all, sites } => {
            let path = format!(
                "/rest/v1/locks{}",
                query(&[("sites", Some(&sites)), ("all", all.then_some("true"))])
            );
            let listed = client.call(Method::GET, &path, None).await?;
            let rows = listed
                .as_array()
                .map(|all| all.iter().map(lock_row).collect())
                .unwrap_or_default();
            let header = ["LOCK", "TARGET", "EXPIRES", "SITES", "MESSAGE"];
            print(api.json, &listed, &header, rows);
        }
        LocksCommand::Rm { lock_id, sites } => {
            let path = format!(
                "/rest/v1/locks/{}{}",
                segment(&lock_id),
                query(&[("sites", sites.as_deref())])
            );
            client.call(Method::DELETE, &path, None).await?;
            done(
                api.json,
                &format!("lifted lock {lock_id}"),
                json!({ "lifted": lock_id }),
            );
        }
    }
    Ok(())
}

fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn sites_of(sites: &Value) -> String {
    sites
        .as_object()
        .map(|all| {
            all.iter()
                .map(|(site, status)| format!("{site} {}", text(status)))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default()
}

fn lock_row(lock: &Value) -> Vec<String> {
    let target = lock["target"]
        .as_object()
        .and_then(|t| t.iter().next())
        .map(|(kind, value)| format!("{kind} {}", text(value)))
        .unwrap_or_default();
    vec![
        text(&lock["lock_id"]),
        target,
        text(&lock["expires_at"]),
        sites_of(&lock["sites"]),
        text(&lock["message"]),
    ]
}

fn incident_row(receipt: &Value) -> Vec<String> {
    vec![
        text(&receipt["incident_id"]),
        text(&receipt["user"]),
        text(&receipt["started_at"]),
        text(&receipt["complete"]),
        text(&receipt["requested_by"]),
        text(&receipt["reason"]),
    ]
}

/// A receipt as two tables (per site, per node), or as JSON.
fn print_receipt(json: bool, receipt: &Value) {
    if json {
        print(true, receipt, &[], Vec::new());
        return;
    }
    let kind = match receipt["dry_run"] == true {
        true => "dry run",
        false => "incident",
    };
    println!(
        "{kind} {} for {}: complete {}, {} ms",
        text(&receipt["incident_id"]),
        text(&receipt["user"]),
        text(&receipt["complete"]),
        text(&receipt["elapsed_ms"])
    );
    let empty = Map::new();
    let sites = receipt["sites"].as_object().unwrap_or(&empty);
    let site_rows = sites
        .iter()
        .map(|(site, part)| {
            let note = match (&part["task_id"], &part["cause"]) {
                (Value::Null, Value::Null) => "-".to_string(),
                (task, Value::Null) => format!("task {}", text(task)),
                (Value::Null, cause) => text(cause),
                (task, cause) => format!("task {}: {}", text(task), text(cause)),
            };
            vec![
                site.clone(),
                text(&part["status"]),
                text(&part["log_index"]),
                text(&part["sessions_ended"]),
                text(&part["websockets_closed"]),
                text(&part["channels_closed"]),
                note,
            ]
        })
        .collect();
    let header = [
        "SITE",
        "STATUS",
        "LOG INDEX",
        "SESSIONS",
        "WEBSOCKETS",
        "CHANNELS",
        "NOTE",
    ];
    print(false, receipt, &header, site_rows);
    let node_rows = sites
        .iter()
        .flat_map(|(site, part)| {
            let nodes = part["nodes"].as_object().cloned().unwrap_or_default();
            nodes.into_iter().map(move |(node, report)| {
                vec![
                    site.clone(),
                    node,
                    match &report["status"] {
                        Value::Null => text(&report["applied_at"]),
                        status => text(status),
                    },
                    text(&report["websockets_closed"]),
                    text(&report["channels_closed"]),
                ]
            })
        })
        .collect();
    let header = ["SITE", "NODE", "APPLIED AT", "WEBSOCKETS", "CHANNELS"];
    print(false, receipt, &header, node_rows);
}
