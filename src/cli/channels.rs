//! `sessionplane channels …` and `sessionplane certs …`: the James channels API and the
//! certificate endpoints for people.

use clap::Subcommand;
use reqwest::Method;
use serde_json::Value;

use super::client::{print, segment, ApiArgs, ApiClient};

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
    },
    /// Disconnect the channels of the given users (login@domain), or of everyone with --all.
    Disconnect {
        users: Vec<String>,
        #[arg(long, conflicts_with = "users")]
        all: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum CertsCommand {
    /// Every node of the site re-reads its certificates (or only the listener on --port).
    Reload {
        #[arg(long)]
        port: Option<u16>,
    },
    /// The certificates every node serves, per listener.
    Show,
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
        } => {
            let mut path = match &user {
                Some(user) => format!("/servers/channels/{}", segment(user)),
                None => "/servers/channels".to_string(),
            };
            if let Some(field) = sort_by {
                let direction = if desc { "desc" } else { "asc" };
                path.push_str(&format!(
                    "?sortBy={}&sortDirection={direction}",
                    segment(&field)
                ));
            }
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
            let header = ["USER", "PROTOCOL", "ENDPOINT", "REMOTE", "NODE", "SINCE"];
            print(api.json, &listed, &header, rows);
        }
        ChannelsCommand::Disconnect { users, all } => match (all, users.as_slice()) {
            (true, _) => {
                client
                    .call(Method::DELETE, "/servers/channels", None)
                    .await?;
                println!("disconnected every channel");
            }
            (false, []) => anyhow::bail!("name users (login@domain), or give --all"),
            (false, [one]) => {
                let path = format!("/servers/channels/{}", segment(one));
                client.call(Method::DELETE, &path, None).await?;
                println!("disconnected {one}");
            }
            (false, many) => {
                let body = serde_json::to_value(many)?;
                client
                    .call(Method::DELETE, "/servers/channels", Some(body))
                    .await?;
                println!("disconnected {}", many.join(", "));
            }
        },
    }
    Ok(())
}

pub async fn certs(api: &ApiArgs, command: CertsCommand) -> anyhow::Result<()> {
    let client = ApiClient::new(api)?;
    match command {
        CertsCommand::Reload { port } => {
            let path = match port {
                Some(port) => format!("/servers?reload-certificate&port={port}"),
                None => "/servers?reload-certificate".to_string(),
            };
            client.call(Method::POST, &path, None).await?;
            println!("certificates reloaded on every node");
        }
        CertsCommand::Show => {
            let listed = client
                .call(Method::GET, "/servers/certificates", None)
                .await?;
            let rows = listed
                .as_array()
                .map(|items| {
                    items
                        .iter()
                        .map(|c| {
                            ["node", "listener", "port", "subject", "notAfter", "sha256"]
                                .iter()
                                .map(|k| text(&c[*k]))
                                .collect()
                        })
                        .collect()
                })
                .unwrap_or_default();
            let header = [
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
