//! `sessionplane channels …` and `sessionplane certs …`: the James channels API and the
//! certificate endpoints for people.

use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Value};

use super::client::{print, query, segment, ApiArgs, ApiClient};
use super::done;

#[derive(Subcommand, Debug)]
pub enum ChannelsCommand {
    /// List mail channels (IMAP, SMTP, JMAP), of everyone or of one user.
    List {
        /// login@domain
        user: Option<String>,
        /// A field to sort by (e.g. connectionDate, username, protocol).
        #[arg(long)]
        sort_by: Option<String>,
        #[arg(long)]
        desc: bool,
        /// `current`, `all`, or a JSON list of site names.
        #[arg(long, default_value = "current")]
        sites: String,
        /// List what the reachable sites hold when some cannot be reached.
        #[arg(long)]
        allow_partial: bool,
    },
    /// Disconnect the channels of the given users (login@domain), or of everyone with --all.
    Disconnect {
        users: Vec<String>,
        #[arg(long, conflicts_with = "users")]
        all: bool,
        #[arg(long, default_value = "current")]
        sites: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum CertsCommand {
    /// Every node of the selected sites re-reads its certificates (or only the listener on
    /// --port).
    Reload {
        #[arg(long)]
        port: Option<u16>,
        #[arg(long, default_value = "current")]
        sites: String,
    },
    /// The certificates every node serves, per listener.
    Show {
        #[arg(long, default_value = "current")]
        sites: String,
        #[arg(long)]
        allow_partial: bool,
    },
}

fn text(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

pub async fn channels(api: &ApiArgs, command: ChannelsCommand) -> anyhow::Result<()> {
    let client = ApiClient::new(api)?;
    match command {
        ChannelsCommand::List {
            user,
            sort_by,
            desc,
            sites,
            allow_partial,
        } => {
            let base = match &user {
                Some(user) => format!("/servers/channels/{}", segment(user)),
                None => "/servers/channels".to_string(),
            };
            let direction = sort_by.as_ref().map(|_| if desc { "desc" } else { "asc" });
            let path = base
                + &query(&[
                    ("sites", Some(&sites)),
                    ("sortBy", sort_by.as_deref()),
                    ("sortDirection", direction),
                    ("allow_partial", allow_partial.then_some("true")),
                ]);
            let listed = client.call(Method::GET, &path, None).await?;
            let rows = listed
                .as_array()
                .map(|items| {
                    items
                        .iter()
                        .map(|c| {
                            [
                                "username",
                                "protocol",
                                "endpoint",
                                "remoteAddress",
                                "site",
                                "node",
                                "connectionDate",
                            ]
                            .iter()
                            .map(|k| text(&c[*k]))
                            .collect()
                        })
                        .collect()
                })
                .unwrap_or_default();
            let header = [
                "USER", "PROTOCOL", "ENDPOINT", "REMOTE", "SITE", "NODE", "SINCE",
            ];
            print(api.json, &listed, &header, rows);
        }
        ChannelsCommand::Disconnect { users, all, sites } => {
            let sites = query(&[("sites", Some(&sites))]);
            let disconnected = |sentence: &str, who: Value| {
                done(api.json, sentence, json!({ "disconnected": who }))
            };
            match (all, users.as_slice()) {
                (true, _) => {
                    let path = format!("/servers/channels{sites}");
                    client.call(Method::DELETE, &path, None).await?;
                    disconnected("disconnected every channel", json!("all"));
                }
                (false, []) => anyhow::bail!("name users (login@domain), or give --all"),
                (false, [one]) => {
                    let path = format!("/servers/channels/{}{sites}", segment(one));
                    client.call(Method::DELETE, &path, None).await?;
                    disconnected(&format!("disconnected {one}"), json!([one]));
                }
                (false, many) => {
                    let body = serde_json::to_value(many)?;
                    let path = format!("/servers/channels{sites}");
                    client
                        .call(Method::DELETE, &path, Some(body.clone()))
                        .await?;
                    disconnected(&format!("disconnected {}", many.join(", ")), body);
                }
            }
        }
    }
    Ok(())
}

pub async fn certs(api: &ApiArgs, command: CertsCommand) -> anyhow::Result<()> {
    let client = ApiClient::new(api)?;
    match command {
        CertsCommand::Reload { port, sites } => {
            let port_text = port.map(|p| p.to_string());
            let path = "/servers".to_string()
                + &query(&[
                    ("reload-certificate", Some("")),
                    ("port", port_text.as_deref()),
                    ("sites", Some(&sites)),
                ]);
            client.call(Method::POST, &path, None).await?;
            done(
                api.json,
                "certificates reloaded on every node",
                json!({"reloaded": true, "port": port, "sites": sites}),
            );
        }
        CertsCommand::Show {
            sites,
            allow_partial,
        } => {
            let path = "/servers/certificates".to_string()
                + &query(&[
                    ("sites", Some(&sites)),
                    ("allow_partial", allow_partial.then_some("true")),
                ]);
            let listed = client.call(Method::GET, &path, None).await?;
            let rows = listed
                .as_array()
                .map(|items| {
                    items
                        .iter()
                        .map(|c| {
                            [
                                "site", "node", "listener", "port", "subject", "notAfter", "sha256",
                            ]
                            .iter()
                            .map(|k| text(&c[*k]))
                            .collect()
                        })
                        .collect()
                })
                .unwrap_or_default();
            let header = [
                "SITE",
                "NODE",
                "LISTENER",
                "PORT",
                "SUBJECT",
                "NOT AFTER",
                "SHA-256",
            ];
            print(api.json, &listed, &header, rows);
        }
    }
    Ok(())
}
