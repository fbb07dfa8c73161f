//! `/tasks` (Apache James conventions): the site's durable tasks, their reports, waiting for
//! one to finish, and cancelling one. Global administrators only. Tasks live in the site's
//! group: any node of the site answers for all of them.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use super::audit_trail::Trail;
use super::extract::{Path, Query};
use super::openapi::{AdminErrors, ErrorSchema};
use super::{ApiError, ApiState};
use crate::iam::Caller;
use crate::model::delivery::Delivery;
use crate::model::task::{SiteProgress, Task, TaskStatus};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The longest `GET /tasks/{id}/await` waits.
const MAX_AWAIT: Duration = Duration::from_secs(3600);
const DEFAULT_AWAIT: Duration = Duration::from_secs(30);
const AWAIT_POLL: Duration = Duration::from_millis(50);

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(show, cancel))
        .routes(routes!(wait))
}

/// A task as James reports it.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Task)]
struct TaskReport {
    task_id: Uuid,
    #[serde(rename = "type")]
    kind: &'static str,
    status: &'static str,
    submit_date: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    started_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    completed_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    failed_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    canceled_date: Option<String>,
    #[schema(value_type = Object)]
    additional_information: Value,
    submitted_from: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    executed_on: Option<String>,
}

impl TaskReport {
    fn of(task: &Task) -> Self {
        let date = |ms: Option<u64>| ms.map(super::channels::rfc3339_ms);
        Self {
            task_id: task.task_id,
            kind: task.kind.name(),
            status: task.status.name(),
            submit_date: super::channels::rfc3339_ms(task.submitted_at_ms),
            started_date: date(task.started_at_ms),
            completed_date: date(task.completed_at_ms),
            failed_date: date(task.failed_at_ms),
            canceled_date: date(task.canceled_at_ms),
            additional_information: additional_information(task),
            submitted_from: task.submitted_from.clone(),
            executed_on: task.executed_on.clone(),
        }
    }
}

impl TaskReport {
    /// A receiver's delivery of the feed, as a task that runs for as long as the receiver is
    /// configured: `inProgress`, or `waiting` while a failed attempt waits to be made again.
    fn of_delivery(delivery: &Delivery, site: &str, last_seq: u64) -> Self {
        let date = |ms: Option<u64>| ms.map(super::channels::rfc3339_ms);
        let status = match delivery.failures {
            0 => TaskStatus::InProgress,
            _ => TaskStatus::Waiting,
        };
        Self {
            task_id: delivery.delivery_id,
            kind: delivery.sink.kind.task_type(),
            status: status.name(),
            submit_date: super::channels::rfc3339_ms(delivery.started_at_ms),
            started_date: date(Some(delivery.started_at_ms)),
            completed_date: None,
            failed_date: None,
            canceled_date: None,
            additional_information: json!({
                "receiver": delivery.sink.name,
                "deliveredThrough": format!("{site}:{}", delivery.delivered_seq),
                "backlog": last_seq.saturating_sub(delivery.delivered_seq),
                "delivered": delivery.delivered,
                "attempts": delivery.failures,
                "lastError": delivery.last_error,
                "lastAttemptDate": date(delivery.last_attempt_ms),
                "lastDeliveryDate": date(delivery.last_success_ms),
            }),
            submitted_from: "config".into(),
            executed_on: None,
        }
    }
}

fn additional_information(task: &Task) -> Value {
    let sites: serde_json::Map<String, Value> = task
        .sites
        .iter()
        .map(|(site, progress)| {
            let shown = match progress {
                SiteProgress::Pending {
                    attempts,
                    last_error,
                } => json!({"status": "pending", "attempts": attempts, "lastError": last_error}),
                SiteProgress::Done { answer } => json!({"status": "done", "answer": answer}),
                SiteProgress::Refused { reason } => json!({"status": "refused", "reason": reason}),
            };
            (site.clone(), shown)
        })
        .collect();
    let request = &task.request;
    json!({
        "request": format!("{} {}", format!("{:?}", request.verb).to_uppercase(), request.path),
        "onBehalfOf": task.on_behalf_of,
        "sites": sites,
    })
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// `waiting`, `inProgress`, `completed`, `failed` or `canceled`.
    status: Option<String>,
}

/// This site's tasks.
#[utoipa::path(get, path = "/tasks", tag = "tasks", params(ListParams),
    responses((status = 200, description = "The tasks", body = [TaskReport]), AdminErrors))]
async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<Vec<TaskReport>>, ApiError> {
    caller.require_global_admin()?;
    let status = match params.status.as_deref() {
        None => None,
        Some(raw) => Some(TaskStatus::parse(raw).ok_or_else(|| {
            ApiError::InvalidArgument(format!(
                "status {raw:?}: one of waiting, inProgress, completed, failed, canceled"
            ))
        })?),
    };
    let (tasks, deliveries, last_seq) = state
        .site
        .read(|s, _| (s.tasks(), s.deliveries(), s.feed_last_seq()))
        .await?;
    let site = &state.federation.sites.current;
    let mut reports: Vec<TaskReport> = tasks
        .values()
        .filter(|t| status.is_none_or(|wanted| t.status == wanted))
        .map(|t| TaskReport::of(t))
        .collect();
    reports.extend(
        deliveries
            .values()
            .map(|d| TaskReport::of_delivery(d, site, last_seq))
            .filter(|r| status.is_none_or(|wanted| r.status == wanted.name())),
    );
    Ok(axum::Json(reports))
}

fn task_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::try_parse(raw).map_err(|_| ApiError::InvalidArgument(format!("{raw:?} is not a task id")))
}

async fn find(state: &ApiState, task_id: Uuid) -> Result<Arc<Task>, ApiError> {
    state
        .site
        .read(|s, _| s.task(&task_id))
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no task {task_id}")))
}

#[utoipa::path(get, path = "/tasks/{id}", tag = "tasks", params(("id" = uuid::Uuid, Path, description = "The task id")),
    responses((status = 200, description = "The task", body = TaskReport), (status = 404, description = "No such task", body = ErrorSchema), AdminErrors))]
async fn show(
    State(state): State<ApiState>,
    caller: Caller,
    Path(raw): Path<String>,
) -> Result<axum::Json<TaskReport>, ApiError> {
    caller.require_global_admin()?;
    let task_id = task_id(&raw)?;
    let (delivery, last_seq) = state
        .site
        .read(|s, _| {
            let found = s
                .deliveries()
                .values()
                .find(|d| d.delivery_id == task_id)
                .cloned();
            (found, s.feed_last_seq())
        })
        .await?;
    if let Some(delivery) = delivery {
        let site = &state.federation.sites.current;
        return Ok(axum::Json(TaskReport::of_delivery(
            &delivery, site, last_seq,
        )));
    }
    let task = find(&state, task_id).await?;
    Ok(axum::Json(TaskReport::of(&task)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AwaitParams {
    /// `500ms`, `30s`, `2m`, `1h` (at most), or seconds; default 30 s.
    timeout: Option<String>,
}

/// Waits until the task has finished.
#[utoipa::path(get, path = "/tasks/{id}/await", tag = "tasks", params(("id" = uuid::Uuid, Path, description = "The task id"), AwaitParams),
    responses((status = 200, description = "The finished task", body = TaskReport), (status = 404, description = "No such task", body = ErrorSchema),
        (status = 408, description = "Still running at the timeout", body = ErrorSchema), AdminErrors))]
async fn wait(
    State(state): State<ApiState>,
    caller: Caller,
    Path(raw): Path<String>,
    Query(params): Query<AwaitParams>,
) -> Result<axum::Json<TaskReport>, ApiError> {
    caller.require_global_admin()?;
    let task_id = task_id(&raw)?;
    let timeout = match params.timeout.as_deref() {
        None => DEFAULT_AWAIT,
        Some(raw) => parse_timeout(raw)?,
    };
    let deadline = tokio::time::Instant::now() + timeout;
    let mut task = find(&state, task_id).await?;
    while !task.status.is_finished() {
        if tokio::time::Instant::now() >= deadline {
            return Err(ApiError::Timeout(format!(
                "task {task_id} is still {} after {}",
                task.status.name(),
                params.timeout.as_deref().unwrap_or("30s")
            )));
        }
        tokio::time::sleep(AWAIT_POLL).await;
        let local = state.site.group().state().read(|s| s.task(&task_id));
        task = local.unwrap_or(task);
    }
    Ok(axum::Json(TaskReport::of(&task)))
}

/// `30s`, `500ms`, `2m`, `1h`, or plain seconds; at most an hour.
fn parse_timeout(raw: &str) -> Result<Duration, ApiError> {
    let bad = || {
        ApiError::InvalidArgument(format!(
            "timeout {raw:?}: a duration such as 500ms, 30s, 2m or 1h, at most 1h"
        ))
    };
    let split = raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len());
    let (number, unit) = raw.split_at(split);
    let number: u64 = number.parse().map_err(|_| bad())?;
    let duration = match unit {
        "ms" => Duration::from_millis(number),
        "" | "s" => Duration::from_secs(number),
        "m" => Duration::from_secs(number.saturating_mul(60)),
        "h" => Duration::from_secs(number.saturating_mul(3600)),
        _ => return Err(bad()),
    };
    match duration <= MAX_AWAIT {
        true => Ok(duration),
        false => Err(bad()),
    }
}

/// Cancels the task (a finished one stays as it is).
#[utoipa::path(delete, path = "/tasks/{id}", tag = "tasks", params(("id" = uuid::Uuid, Path, description = "The task id")),
    responses((status = 204, description = "Canceled"), (status = 404, description = "No such task", body = ErrorSchema), AdminErrors))]
async fn cancel(
    State(state): State<ApiState>,
    caller: Caller,
    trail: Trail,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_global_admin()?;
    let task_id = task_id(&raw)?;
    let event = trail.event(&state, &caller, "task.cancel", &task_id.to_string());
    match state.site.audited(event).cancel_task(task_id).await? {
        Some(task) => {
            tracing::info!(caller = %caller.describe(), %task_id, status = task.status.name(), "task cancel asked");
            Ok(StatusCode::NO_CONTENT)
        }
        None => Err(ApiError::NotFound(format!("no task {task_id}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn await_timeouts() {
        assert_eq!(parse_timeout("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_timeout("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_timeout("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_timeout("7").unwrap(), Duration::from_secs(7));
        for bad in ["", "s", "-1s", "1d", "2h", "1.5s", "ten"] {
            assert!(parse_timeout(bad).is_err(), "{bad}");
        }
    }
}
