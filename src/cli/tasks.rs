//! `sessionplane tasks …`: the site's durable tasks (writes that missed a site), and waiting for
//! one with its progress, site by site, on stderr.

use std::time::{Duration, Instant};

use clap::Subcommand;
use reqwest::Method;
use serde_json::Value;

use super::client::{print, query, segment, ApiArgs, ApiClient};

#[derive(Subcommand, Debug)]
pub enum TasksCommand {
    /// The site's tasks.
    List {
        /// waiting, inProgress, completed, failed or canceled.
        #[arg(long)]
        status: Option<String>,
    },
    /// One task's report.
    Show { task_id: String },
    /// Waits until a task has finished, showing each site's progress as it changes.
    Await {
        task_id: String,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 300)]
        timeout_secs: u64,
    },
    /// Stops a task (a finished one stays as it is).
    Cancel { task_id: String },
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One line per site: its status, and its attempts or answer.
fn progress(report: &Value) -> Vec<String> {
    report["additionalInformation"]["sites"]
        .as_object()
        .map(|sites| {
            sites
                .iter()
                .map(|(site, p)| match p["status"].as_str() {
                    Some("pending") => format!(
                        "{site}: pending, {} attempts, last: {}",
                        text(&p["attempts"]),
                        text(&p["lastError"])
                    ),
                    Some("refused") => format!("{site}: refused: {}", text(&p["reason"])),
                    _ => format!("{site}: done"),
                })
                .collect()
        })
        .unwrap_or_default()
}

pub async fn tasks(api: &ApiArgs, command: TasksCommand) -> anyhow::Result<()> {
    let client = ApiClient::new(api)?;
    match command {
        TasksCommand::List { status } => {
            let path = "/tasks".to_string() + &query(&[("status", status.as_deref())]);
            let listed = client.call(Method::GET, &path, None).await?;
            let rows = listed
                .as_array()
                .map(|tasks| {
                    tasks
                        .iter()
                        .map(|t| {
                            ["taskId", "type", "status", "submitDate", "submittedFrom"]
                                .iter()
                                .map(|k| text(&t[*k]))
                                .collect()
                        })
                        .collect()
                })
                .unwrap_or_default();
            let header = ["TASK", "TYPE", "STATUS", "SUBMITTED", "FROM"];
            print(api.json, &listed, &header, rows);
        }
        TasksCommand::Show { task_id } => {
            let path = format!("/tasks/{}", segment(&task_id));
            let report = client.call(Method::GET, &path, None).await?;
            let rows = progress(&report).into_iter().map(|l| vec![l]).collect();
            print(
                api.json,
                &report,
                &[&format!(
                    "{} {}",
                    text(&report["type"]),
                    text(&report["status"])
                )],
                rows,
            );
        }
        TasksCommand::Await {
            task_id,
            timeout_secs,
        } => {
            let path = format!("/tasks/{}", segment(&task_id));
            let deadline = Instant::now() + Duration::from_secs(timeout_secs);
            let mut shown = Vec::new();
            loop {
                let report = client.call(Method::GET, &path, None).await?;
                let lines = progress(&report);
                if lines != shown {
                    for line in &lines {
                        eprintln!("  {line}");
                    }
                    shown = lines;
                }
                let status = text(&report["status"]);
                if ["completed", "failed", "canceled"].contains(&status.as_str()) {
                    match api.json {
                        true => println!("{}", serde_json::to_string_pretty(&report)?),
                        false => println!("task {task_id}: {status}"),
                    }
                    anyhow::ensure!(status == "completed", "task {task_id} ended {status}");
                    return Ok(());
                }
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "task {task_id} is still {status} after {timeout_secs} s"
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
        TasksCommand::Cancel { task_id } => {
            let path = format!("/tasks/{}", segment(&task_id));
            client.call(Method::DELETE, &path, None).await?;
            let asked = serde_json::json!({ "cancel_asked": task_id });
            super::done(api.json, &format!("cancel asked for {task_id}"), asked);
        }
    }
    Ok(())
}
