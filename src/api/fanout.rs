//! The federated part of an admin request, shared by the resources that take `sites`: where the
//! request runs, the calls to the other sites, and the contract's honest partial failure (503
//! naming every site's outcome; `allow_partial` on lists; a durable task for a write that
//! missed a site).

use std::collections::BTreeMap;

use axum::http::{HeaderName, HeaderValue};
use axum::response::Response;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use super::{ApiError, ApiState};
use crate::federation::{
    Answers, Plan, Received, SiteAnswer, SiteFailure, SiteRequest, SiteSelector,
};
use crate::iam::Caller;
use crate::model::task::{answer, NewTask, TaskKind};
use crate::state::directory::AdminScope;

/// Names the selected sites a partial listing could not reach.
pub const UNAVAILABLE_SITES_HEADER: &str = "x-unavailable-sites";

/// Where a request runs. A request another site forwarded names this site alone.
pub fn plan(state: &ApiState, caller: &Caller, selector: &SiteSelector) -> Result<Plan, ApiError> {
    Ok(state
        .federation
        .sites
        .plan(selector, caller.is_federated())?)
}

/// Sends `request` to each remote site of `plan` at once, with the caller's reach (a caller
/// whose session check was deferred is confirmed first: its authority does not travel).
pub async fn call_remote(
    state: &ApiState,
    caller: &Caller,
    plan: &Plan,
    request: &SiteRequest,
) -> Result<Answers, ApiError> {
    if plan.remote.is_empty() {
        return Ok(Answers::new());
    }
    state.iam.confirm(caller).await?;
    let token = state.iam.federation_token_for(caller)?;
    Ok(state
        .federation
        .call_each(&plan.remote, request, &token)
        .await)
}

/// As [`call_remote`], with each successful answer's body still arriving.
pub async fn call_remote_streaming(
    state: &ApiState,
    caller: &Caller,
    plan: &Plan,
    request: &SiteRequest,
) -> Result<BTreeMap<String, Result<Received, SiteFailure>>, ApiError> {
    if plan.remote.is_empty() {
        return Ok(BTreeMap::new());
    }
    state.iam.confirm(caller).await?;
    let token = state.iam.federation_token_for(caller)?;
    Ok(state
        .federation
        .call_each_streaming(&plan.remote, request, &token)
        .await)
}

/// Splits remote answers into those given and the sites that gave none.
pub fn split(answers: Answers) -> (BTreeMap<String, SiteAnswer>, BTreeMap<String, SiteFailure>) {
    let mut answered = BTreeMap::new();
    let mut missed = BTreeMap::new();
    for (site, answer) in answers {
        match answer {
            Ok(answer) => {
                answered.insert(site, answer);
            }
            Err(failure) => {
                missed.insert(site, failure);
            }
        }
    }
    (answered, missed)
}

/// A remote site's refusal, as this node's own answer (its status, its message, the site named).
pub fn refusal(site: &str, answer: &SiteAnswer) -> ApiError {
    let message = format!("site {site}: {}", answer.message());
    match answer.status {
        400 => ApiError::InvalidArgument(message),
        401 => ApiError::Unauthorized(message),
        403 => ApiError::Forbidden(message),
        404 => ApiError::NotFound(message),
        409 => ApiError::WrongState(message),
        _ => ApiError::Server(format!("{message} (HTTP {})", answer.status)),
    }
}

/// A successful remote answer's body, or the site's refusal as an error.
pub fn decoded<T: DeserializeOwned>(site: &str, answer: &SiteAnswer) -> Result<T, ApiError> {
    if !answer.is_success() {
        return Err(refusal(site, answer));
    }
    serde_json::from_slice(&answer.body).map_err(|e| {
        ApiError::Server(format!(
            "site {site} sent an answer that does not decode: {e}"
        ))
    })
}

/// A listing's verdict on the sites it missed: 503 naming each site's outcome, or, when the
/// caller allows a partial answer, the names for [`mark_partial`].
pub fn judge_listing(
    answered: &[String],
    missed: &BTreeMap<String, SiteFailure>,
    allow_partial: bool,
) -> Result<Vec<String>, ApiError> {
    if missed.is_empty() || allow_partial {
        return Ok(missed.keys().cloned().collect());
    }
    Err(ApiError::SitesUnavailable {
        message: format!(
            "could not reach site {}; no partial list is given unless asked with allow_partial=true",
            names(missed)
        ),
        sites: outcomes(answered, missed),
        task_id: None,
    })
}

/// Names the sites a listing left out in its `X-Unavailable-Sites` header.
pub fn mark_partial(mut response: Response, missing: &[String]) -> Response {
    if missing.is_empty() {
        return response;
    }
    if let Ok(value) = HeaderValue::from_str(&missing.join(", ")) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(UNAVAILABLE_SITES_HEADER), value);
    }
    response
}

/// Keeps the record of a write that reached every site (a completed task), for the audit of
/// wide operations; its id.
pub async fn record_done(
    state: &ApiState,
    caller: &Caller,
    kind: TaskKind,
    request: SiteRequest,
    done: BTreeMap<String, serde_json::Value>,
) -> Result<Uuid, ApiError> {
    let task = new_task(state, caller, kind, request, done, &BTreeMap::new());
    let task_id = task.task_id;
    state.gateway.site.submit_task(task).await?;
    Ok(task_id)
}

fn new_task(
    state: &ApiState,
    caller: &Caller,
    kind: TaskKind,
    request: SiteRequest,
    done: BTreeMap<String, serde_json::Value>,
    missed: &BTreeMap<String, SiteFailure>,
) -> NewTask {
    NewTask {
        task_id: Uuid::now_v7(),
        kind,
        request,
        submitted_from: state.node_label.clone(),
        on_behalf_of: caller.describe(),
        scope_domain: match caller.scope() {
            Some(AdminScope::Domain(domain)) => Some(domain.to_string()),
            _ => None,
        },
        done,
        pending: missed
            .iter()
            .map(|(s, f)| (s.clone(), f.to_string()))
            .collect(),
    }
}

/// A write that missed some sites: a task keeps trying there, and the caller gets a 503 with
/// each site's outcome and the task's id. `done` holds what the reached sites did (shaped by
/// [`answer`], like the task's later answers).
pub async fn keep_trying(
    state: &ApiState,
    caller: &Caller,
    kind: TaskKind,
    request: SiteRequest,
    done: BTreeMap<String, serde_json::Value>,
    missed: BTreeMap<String, SiteFailure>,
) -> ApiError {
    let reached: Vec<String> = done.keys().cloned().collect();
    let mut sites = outcomes(&reached, &missed);
    for (site, done) in &done {
        sites.insert(site.clone(), format!("done: {}", answer::summary(done)));
    }
    let task = new_task(state, caller, kind, request, done, &missed);
    let task_id = task.task_id;
    let submitted = state.gateway.site.submit_task(task).await;
    let missed_names = names(&missed);
    match submitted {
        Ok(_) => {
            tracing::warn!(caller = %caller.describe(), kind = kind.name(), %task_id, sites = %missed_names, "a write missed sites; a task keeps trying");
            ApiError::SitesUnavailable {
                message: format!(
                    "could not reach site {missed_names}; the sites reached are done, and task {task_id} keeps trying the others (GET /tasks/{task_id})"
                ),
                sites,
                task_id: Some(task_id),
            }
        }
        Err(e) => {
            let why = e.to_string();
            tracing::error!(kind = kind.name(), sites = %missed_names, error = %why, "a write missed sites and no task could be kept");
            ApiError::SitesUnavailable {
                message: format!(
                    "could not reach site {missed_names}, and no task could be kept to retry there ({why}); send the request again"
                ),
                sites,
                task_id: None,
            }
        }
    }
}

fn names(missed: &BTreeMap<String, SiteFailure>) -> String {
    missed.keys().cloned().collect::<Vec<_>>().join(", ")
}

fn outcomes(
    answered: &[String],
    missed: &BTreeMap<String, SiteFailure>,
) -> BTreeMap<String, String> {
    let mut sites: BTreeMap<String, String> = answered
        .iter()
        .map(|s| (s.clone(), "ok".to_string()))
        .collect();
    for (site, failure) in missed {
        sites.insert(site.clone(), failure.to_string());
    }
    sites
}
