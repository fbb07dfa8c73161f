//! `sessionplane audit …`: the audit trail of the selected sites as a table (or JSON), newest
//! first; `--follow` polls every second and prints newer events as they come, oldest first;
//! `audit verify` re-checks each site's hash chain (exit status 1 when one fails).

use std::collections::HashSet;
use std::time::Duration;

use clap::{Args, Subcommand};
use reqwest::Method;
use serde_json::Value;

use super::client::{print, query, ApiArgs, ApiClient};

#[derive(Args, Debug)]
pub struct AuditArgs {
    /// Events at or after this time (RFC 3339).
    #[arg(long)]
    since: Option<String>,
    /// Events at or before this time (RFC 3339).
    #[arg(long)]
    until: Option<String>,
    /// An action, or a prefix such as `user.*`.
    #[arg(long)]
    action: Option<String>,
    /// login@domain, a user id, or a service's sub.
    #[arg(long)]
    actor: Option<String>,
    /// current (default), all, or a JSON list of site names.
    #[arg(long)]
    sites: Option<String>,
    /// At most this many events (1 to 10,000).
    #[arg(long)]
    limit: Option<u32>,
    /// Keep polling every second, printing newer events as they come.
    #[arg(long)]
    follow: bool,
}

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Re-checks each selected site's hash chain.
    Verify {
        /// current (default), all, or a JSON list of site names.
        #[arg(long)]
        sites: Option<String>,
    },
}

const HEADER: [&str; 7] = [
    "TIME", "SITE", "ACTOR", "ACTION", "TARGET", "OUTCOME", "NODE",
];

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Who an event names as its actor, in one word.
fn actor(v: &Value) -> String {
    if let (Some(login), Some(domain)) = (v["login"].as_str(), v["domain"].as_str()) {
        return format!("{login}@{domain}");
    }
    if let Some(sub) = v["service"].as_str() {
        return format!("service:{sub}");
    }
    if let Some(who) = v["federated"].as_str() {
        return format!("{who} via {}", text(&v["from_site"]));
    }
    "-".into()
}

fn row(event: &Value) -> Vec<String> {
    vec![
        text(&event["time"]),
        text(&event["site"]),
        actor(&event["actor"]),
        text(&event["action"]),
        text(&event["target"]),
        text(&event["outcome"]),
        text(&event["node"]),
    ]
}

impl AuditArgs {
    fn path(&self, since: Option<&str>) -> String {
        let limit = self.limit.map(|l| l.to_string());
        let pairs = [
            ("since", since.or(self.since.as_deref())),
            ("until", self.until.as_deref()),
            ("action", self.action.as_deref()),
            ("actor", self.actor.as_deref()),
            ("sites", self.sites.as_deref()),
            ("limit", limit.as_deref()),
        ];
        format!("/rest/v1/audit{}", query(&pairs))
    }
}

pub async fn audit(
    api: &ApiArgs,
    args: AuditArgs,
    command: Option<AuditCommand>,
) -> anyhow::Result<()> {
    let client = ApiClient::new(api)?;
    if let Some(AuditCommand::Verify { sites }) = command {
        return verify(api, &client, sites.as_deref()).await;
    }
    let listed = client.call(Method::GET, &args.path(None), None).await?;
    let events = listed.as_array().cloned().unwrap_or_default();
    if !args.follow {
        print(api.json, &listed, &HEADER, events.iter().map(row).collect());
        return Ok(());
    }
    follow(api, &client, &args, events).await
}

/// Prints `first` oldest first, then every newer event as it comes.
async fn follow(
    api: &ApiArgs,
    client: &ApiClient,
    args: &AuditArgs,
    first: Vec<Value>,
) -> anyhow::Result<()> {
    let mut seen: HashSet<String> = HashSet::new();
    let mut since: Option<String> = None;
    let mut batch = first;
    if !api.json {
        println!("{}", HEADER.join("  "));
    }
    loop {
        for event in batch.iter().rev() {
            let id = text(&event["event_id"]);
            if !seen.insert(id) {
                continue;
            }
            match api.json {
                true => println!("{event}"),
                false => println!("{}", row(event).join("  ")),
            }
            since = event["time"].as_str().map(str::to_string).or(since);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let listed = client
            .call(Method::GET, &args.path(since.as_deref()), None)
            .await?;
        batch = listed.as_array().cloned().unwrap_or_default();
    }
}

async fn verify(api: &ApiArgs, client: &ApiClient, sites: Option<&str>) -> anyhow::Result<()> {
    let path = format!("/rest/v1/audit/verify{}", query(&[("sites", sites)]));
    let answer = client.call(Method::GET, &path, None).await?;
    let checks = answer["sites"].as_object().cloned().unwrap_or_default();
    let rows = checks
        .iter()
        .map(|(site, c)| {
            vec![
                site.clone(),
                text(&c["events"]),
                if c["ok"] == true { "ok" } else { "FAILED" }.to_string(),
                text(&c["first_bad_event_id"]),
                text(&c["reason"]),
            ]
        })
        .collect();
    print(
        api.json,
        &answer,
        &["SITE", "EVENTS", "CHAIN", "FIRST BAD EVENT", "REASON"],
        rows,
    );
    let failed: Vec<&String> = checks
        .iter()
        .filter(|(_, c)| c["ok"] != true)
        .map(|(s, _)| s)
        .collect();
    anyhow::ensure!(
        failed.is_empty(),
        "the audit chain of {failed:?} fails verification"
    );
    Ok(())
}
