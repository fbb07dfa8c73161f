//! `sessionplane users …` and `sessionplane domains …`: the identity REST API for people.

use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Value};

use super::client::{password, print, segment, ApiArgs, ApiClient};
use super::done;

#[derive(Subcommand, Debug)]
pub enum UsersCommand {
    /// Create a user (its domain must exist). Without --password-stdin a password is
    /// generated and printed once.
    Add {
        /// login@domain
        user: String,
        #[arg(long)]
        password_stdin: bool,
        /// A property, key=value (repeatable).
        #[arg(long = "property", value_parser = key_value)]
        properties: Vec<(String, String)>,
    },
    /// Set a user's password (as an administrator of its domain); its sessions are closed.
    Passwd {
        user: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Delete users (all or none); their sessions are closed.
    Rm {
        #[arg(required = true)]
        users: Vec<String>,
    },
    /// Disable a user: its sessions and channels end, its logins are refused.
    Disable { user: String },
    /// Enable a disabled user.
    Enable { user: String },
    /// List users, of one domain or of every domain you administer.
    List {
        #[arg(long)]
        domain: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum DomainsCommand {
    Add { domain: String },
    Rm { domain: String },
    List,
}

fn key_value(raw: &str) -> Result<(String, String), String> {
    raw.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("{raw:?} is not key=value"))
}

pub async fn users(api: &ApiArgs, command: UsersCommand) -> anyhow::Result<()> {
    let client = ApiClient::new(api)?;
    match command {
        UsersCommand::Add {
            user,
            password_stdin,
            properties,
        } => {
            let (password, generated) = password(password_stdin)?;
            let properties: serde_json::Map<String, Value> = properties
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect();
            let body = json!({"password": password, "properties": properties});
            client
                .call(
                    Method::PUT,
                    &format!("/users/{}", segment(&user)),
                    Some(body),
                )
                .await?;
            match generated {
                true => done(
                    api.json,
                    &format!("created {user}; password: {password}"),
                    json!({"created": user, "password": password}),
                ),
                false => done(
                    api.json,
                    &format!("created {user}"),
                    json!({"created": user}),
                ),
            }
        }
        UsersCommand::Passwd {
            user,
            password_stdin,
        } => {
            let (password, generated) = password(password_stdin)?;
            let body = json!({"newPwd": password, "newPwdConfirm": password});
            let path = format!("/users/{}/password", segment(&user));
            client.call(Method::POST, &path, Some(body)).await?;
            match generated {
                true => done(
                    api.json,
                    &format!("new password for {user}: {password}"),
                    json!({"changed": user, "password": password}),
                ),
                false => done(
                    api.json,
                    &format!("password of {user} changed"),
                    json!({"changed": user}),
                ),
            }
        }
        UsersCommand::Rm { users } => {
            client
                .call(Method::DELETE, "/users", Some(json!(users)))
                .await?;
            let sentence = format!("deleted {}", users.join(", "));
            done(api.json, &sentence, json!({ "deleted": users }));
        }
        UsersCommand::Disable { user } => set_disabled(&client, api, &user, true).await?,
        UsersCommand::Enable { user } => set_disabled(&client, api, &user, false).await?,
        UsersCommand::List { domain } => {
            let path = match &domain {
                Some(domain) => format!("/users?domain={}", segment(domain)),
                None => "/users".to_string(),
            };
            let listed = client.call(Method::GET, &path, None).await?;
            let rows = listed
                .as_array()
                .map(|users| {
                    users
                        .iter()
                        .map(|u| {
                            vec![
                                text(&u["username"]),
                                text(&u["user_id"]),
                                if u["disabled"] == true {
                                    "disabled"
                                } else {
                                    ""
                                }
                                .into(),
                            ]
                        })
                        .collect()
                })
                .unwrap_or_default();
            print(api.json, &listed, &["USER", "ID", "STATE"], rows);
        }
    }
    Ok(())
}

async fn set_disabled(
    client: &ApiClient,
    api: &ApiArgs,
    user: &str,
    disabled: bool,
) -> anyhow::Result<()> {
    let path = format!("/users/{}", segment(user));
    let body = json!({ "disabled": disabled });
    client.call(Method::PATCH, &path, Some(body)).await?;
    let verb = if disabled { "disabled" } else { "enabled" };
    done(api.json, &format!("{verb} {user}"), json!({ verb: user }));
    Ok(())
}

pub async fn domains(api: &ApiArgs, command: DomainsCommand) -> anyhow::Result<()> {
    let client = ApiClient::new(api)?;
    match command {
        DomainsCommand::Add { domain } => {
            let path = format!("/domains/{}", segment(&domain));
            client.call(Method::PUT, &path, None).await?;
            done(
                api.json,
                &format!("created {domain}"),
                json!({ "created": domain }),
            );
        }
        DomainsCommand::Rm { domain } => {
            let path = format!("/domains/{}", segment(&domain));
            client.call(Method::DELETE, &path, None).await?;
            done(
                api.json,
                &format!("deleted {domain}"),
                json!({ "deleted": domain }),
            );
        }
        DomainsCommand::List => {
            let listed = client.call(Method::GET, "/domains", None).await?;
            let rows = listed
                .as_array()
                .map(|names| names.iter().map(|n| vec![text(n)]).collect())
                .unwrap_or_default();
            print(api.json, &listed, &["DOMAIN"], rows);
        }
    }
    Ok(())
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}
