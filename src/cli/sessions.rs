//! `sessionplane sessions …`: the `ws` logical role's sessions API for people.

use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Value};

use super::client::{print, query, segment, ApiArgs, ApiClient};
use super::done;

#[derive(Subcommand, Debug)]
pub enum SessionsCommand {
    /// List sessions (one row per session item; websocket items show their connections).
    List {
        /// `current`, `all`, or a JSON list of site names.
        #[arg(long, default_value = "current")]
        sites: String,
        #[arg(long)]
        domain: Option<String>,
        /// A user id or login.
        #[arg(long)]
        user: Option<String>,
        /// `http` or `websocket`.
        #[arg(long)]
        session_type: Option<String>,
        /// List what the reachable sites hold when some cannot be reached (they are named on
        /// stderr), instead of failing.
        #[arg(long)]
        allow_partial: bool,
    },
    /// Close every session of a user in a domain (but the one this command uses).
    Logout {
        /// login@domain, or a user id with --domain.
        user: String,
        #[arg(long)]
        domain: Option<String>,
        #[arg(long, default_value = "current")]
        sites: String,
    },
    /// Close one session and its websockets.
    Kill {
        session_id: String,
        #[arg(long, default_value = "current")]
        sites: String,
    },
}

/// The `sites` value as JSON for a body: a bare word becomes a JSON string.
pub(super) fn sites_value(raw: &str) -> anyhow::Result<Value> {
    match raw {
        "current" | "all" => Ok(Value::String(raw.into())),
        _ => serde_json::from_str(raw).map_err(|_| {
            anyhow::anyhow!("--sites: current, all, or a JSON list like '[\"east\"]'")
        }),
    }
}

const PATH: &str = "/rest/v1/master/logicalroles/ws/sessions";

pub async fn sessions(api: &ApiArgs, command: SessionsCommand) -> anyhow::Result<()> {
    let client = ApiClient::new(api)?;
    match command {
        SessionsCommand::List {
            sites,
            domain,
            user,
            session_type,
            allow_partial,
        } => {
            let path = format!(
                "{PATH}{}",
                query(&[
                    ("sites", Some(&sites)),
                    ("domain", domain.as_deref()),
                    ("user", user.as_deref()),
                    ("session_type", session_type.as_deref()),
                    ("allow_partial", allow_partial.then_some("true")),
                ])
            );
            let listed = client.call(Method::GET, &path, None).await?;
            let rows = listed
                .as_array()
                .map(|items| items.iter().map(row).collect())
                .unwrap_or_default();
            let header = ["SESSION", "TYPE", "USER", "SITE", "TTL", "CONNECTIONS"];
            print(api.json, &listed, &header, rows);
        }
        SessionsCommand::Logout {
            user,
            domain,
            sites,
        } => {
            let (user, domain) = match (domain, user.rsplit_once('@')) {
                (Some(domain), _) => (user, domain),
                (None, Some((login, domain))) => (login.to_string(), domain.to_string()),
                (None, None) => anyhow::bail!("give login@domain, or --domain"),
            };
            let body = json!({"action": "logout", "domain": domain, "user": user,
                              "sites": sites_value(&sites)?});
            let answer = client.call(Method::POST, PATH, Some(body)).await?;
            match api.json {
                true => print(true, &answer, &[], Vec::new()),
                false => println!("closed {} session(s)", answer["closed"]),
            }
        }
        SessionsCommand::Kill { session_id, sites } => {
            let path = format!(
                "{PATH}/{}{}",
                segment(&session_id),
                query(&[("sites", Some(&sites))])
            );
            client.call(Method::DELETE, &path, None).await?;
            let sentence = format!("killed {session_id}");
            done(api.json, &sentence, json!({ "killed": session_id }));
        }
    }
    Ok(())
}

fn row(item: &Value) -> Vec<String> {
    let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_string);
    let connections = item["connections"]
        .as_array()
        .map(|conns| {
            conns
                .iter()
                .map(|c| {
                    let dead = if c["is_pid_alive"] == true {
                        ""
                    } else {
                        " (dead)"
                    };
                    format!("{} {}{dead}", text(&c["node"]), text(&c["pid"]))
                })
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    vec![
        text(&item["session_id"]),
        text(&item["session_type"]),
        format!("{}@{}", text(&item["login"]), text(&item["domain"])),
        text(&item["site"]),
        text(&item["ttl"]),
        connections,
    ]
}
