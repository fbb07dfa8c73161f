//! `sessionplane events`: the selected sites' audit and session lifecycle events, read from
//! the event stream (`/rest/v1/events`). Without `--follow`: the events from `--since` (an hour
//! ago by default) until the stream has nothing more for a second. With `--follow`: on and on,
//! resuming after the last event printed when the stream drops (as a browser's EventSource
//! does), so that nothing is missed or printed twice.

use std::time::Duration;

use clap::Args;
use futures_util::StreamExt;
use serde_json::Value;

use super::client::{query, ApiArgs};
use crate::events::stream::{Item, SseLines};

/// How long without an event ends a read without `--follow`.
const QUIET: Duration = Duration::from_secs(1);
/// How long to wait before reconnecting a dropped stream.
const RECONNECT: Duration = Duration::from_secs(1);
const HEADER: [&str; 6] = ["TIME", "SITE", "ACTION", "TARGET", "OUTCOME", "ID"];

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// Keep reading as events happen.
    #[arg(long)]
    follow: bool,
    /// An action, or a prefix such as `session.*`.
    #[arg(long)]
    action: Option<String>,
    /// The events of this user (login@domain), session, connection or channel.
    #[arg(long)]
    target: Option<String>,
    /// From this time on (RFC 3339); default: an hour ago, or now with --follow.
    #[arg(long)]
    since: Option<String>,
    /// current (default), all, or a JSON list of site names.
    #[arg(long)]
    sites: Option<String>,
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn row(event: &Value) -> String {
    let fields = ["time", "site", "action", "target", "outcome", "id"];
    fields
        .iter()
        .map(|f| text(&event[*f]))
        .collect::<Vec<_>>()
        .join("  ")
}

pub async fn events(api: &ApiArgs, args: EventsArgs) -> anyhow::Result<()> {
    let since = match (&args.since, args.follow) {
        (Some(since), _) => Some(since.clone()),
        (None, true) => None,
        (None, false) => Some(crate::events::json::rfc3339_millis(
            sessionplane_cluster::now_ms().saturating_sub(3_600_000),
        )),
    };
    let pairs = [
        ("sites", args.sites.as_deref()),
        ("action", args.action.as_deref()),
        ("target", args.target.as_deref()),
        ("since", since.as_deref()),
    ];
    let url = format!(
        "{}/rest/v1/events{}",
        api.api.trim_end_matches('/'),
        query(&pairs)
    );
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .build()?;
    if !api.json {
        println!("{}", HEADER.join("  "));
    }
    let mut resume: Option<String> = None;
    loop {
        let outcome = read(api, &http, &url, resume.as_deref(), args.follow).await?;
        resume = outcome.or(resume);
        if !args.follow {
            return Ok(());
        }
        tokio::time::sleep(RECONNECT).await;
    }
}

/// Reads one connection of the stream: the id to resume from (none: nothing read).
async fn read(
    api: &ApiArgs,
    http: &reqwest::Client,
    url: &str,
    resume: Option<&str>,
    follow: bool,
) -> anyhow::Result<Option<String>> {
    let mut request = http.get(url);
    if let Some(token) = api.token.as_deref().filter(|t| !t.is_empty()) {
        request = request.bearer_auth(token);
    }
    if let Some(id) = resume {
        request = request.header("Last-Event-ID", id);
    }
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) if follow => {
            eprintln!("warning: cannot reach {}: {e}; trying again", api.api);
            return Ok(None);
        }
        Err(e) => anyhow::bail!("cannot reach {}: {e}", api.api),
    };
    let status = response.status();
    if !status.is_success() {
        let text = response.text().await.unwrap_or_default();
        let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let message = json["message"].as_str().unwrap_or(text.as_str());
        anyhow::bail!("{} {}: {message}", status.as_u16(), text_of(&json["type"]));
    }
    let mut body = response.bytes_stream();
    let mut lines = SseLines::default();
    loop {
        let chunk = match follow {
            true => body.next().await,
            false => match tokio::time::timeout(QUIET, body.next()).await {
                Ok(chunk) => chunk,
                Err(_) => break,
            },
        };
        let Some(Ok(chunk)) = chunk else { break };
        for item in lines.push(&chunk) {
            match item {
                Item::Event { data, .. } if api.json => println!("{data}"),
                Item::Event { data, .. } => {
                    let event: Value = serde_json::from_str(&data).unwrap_or_default();
                    println!("{}", row(&event));
                }
                Item::Notice(notice) => eprintln!("notice: {notice}"),
            }
        }
    }
    Ok(lines.last_id().map(str::to_owned))
}

fn text_of(v: &Value) -> String {
    v.as_str().unwrap_or("error").to_string()
}
