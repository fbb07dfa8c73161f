//! `/rest/v1/incidents`: contain a user at every selected site in one call — a lock placed,
//! every session but the caller's ended, every websocket closed, every mail channel
//! disconnected — and answer a receipt that says, site by site and node by node, what was
//! closed and when; or, as a dry run, what would be. Receipts are kept in this site's group
//! and listed.
//!
//! Each site contains the user in one entry of its own log; its node that takes the call then
//! collects every node's own report (each node reports once it has closed what it held). A
//! site not reached is contained later by a durable task, and the stored receipt gets that
//! site's part when the task brings it back.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sessionplane_cluster::now_ms;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::audit_trail::Trail;
use super::extract::{one_line, Json, Path, Query, Revoker};
use super::locks::{lock_message, new_lock, parse_ttl, placed_lock, Placed};
use super::openapi::{AdminErrors, ErrorSchema};
use super::scatter::{self, refusal, Read, Scatter, Write};
use super::{ApiError, ApiState};
use crate::federation::{SiteAnswer, SiteRequest, Verb};
use crate::iam::Caller;
use crate::model::task::TaskKind;
use crate::model::{Containment, LockTarget, NodePart, Receipt, SiteReceipt, SiteStatus, User};
use crate::state::directory::AdminScope;

const PATH: &str = "/rest/v1/incidents";
/// How long the node that took the call waits for each node of its site to report.
const REPORT_BOUND: Duration = Duration::from_secs(2);
/// The longest reason an incident may give.
const MAX_REASON_CHARS: usize = 1_000;

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list, contain))
        .routes(routes!(read))
}

#[derive(Deserialize, ToSchema)]
#[schema(as = Contain)]
struct ContainBody {
    /// The user to contain: `login@domain` or a user id.
    user: String,
    /// `current` (default), `all`, or a list of site names.
    #[serde(
        default,
        deserialize_with = "crate::federation::selector::sites_as_sent"
    )]
    #[schema(value_type = Option<Object>)]
    sites: Option<Value>,
    /// A lock on the user, placed with it.
    lock: Option<ContainLock>,
    /// Why, for the receipt.
    reason: Option<String>,
    /// Only say what would be ended.
    #[serde(default)]
    dry_run: bool,
    /// Set by the node that took the call when it sends it on to another site (taken from
    /// another site's node only).
    #[serde(default)]
    #[schema(ignore)]
    placed: Option<PlacedIncident>,
}

#[derive(Deserialize, ToSchema)]
struct ContainLock {
    /// What the locked user is told when it gets the password right.
    message: String,
    /// How long it holds (`24h`); without it, until lifted.
    ttl: Option<String>,
}

/// What the node that took the call decided, for every site to contain the same incident.
#[derive(Serialize, Deserialize)]
struct PlacedIncident {
    incident_id: Uuid,
    lock: Option<Placed>,
}

/// A receipt as the api shows it (see the contract, §6.2).
#[derive(ToSchema)]
#[schema(as = IncidentReceipt)]
#[allow(dead_code)]
struct ReceiptSchema {
    incident_id: Uuid,
    user: String,
    user_id: Uuid,
    reason: Option<String>,
    lock_id: Option<Uuid>,
    dry_run: bool,
    requested_by: String,
    started_at: String,
    completed_at: String,
    elapsed_ms: f64,
    complete: bool,
    /// Per site: `status` (`contained`, `unconfirmed`, `pending`, `refused`, `preview`,
    /// `unreachable`), `log_index`, the counts, and per node what it closed and when (or
    /// `{"status":"down"}`, `{"status":"no_answer"}`).
    #[schema(value_type = Object)]
    sites: Value,
}

/// Contains a user at the selected sites, or previews what that would end.
#[utoipa::path(post, path = "/rest/v1/incidents", tag = "incidents",
    request_body = ContainBody,
    responses(
        (status = 200, description = "Every selected site contained (or previewed)", body = ReceiptSchema),
        (status = 404, description = "No such user", body = ErrorSchema),
        (status = 503, description = "Some site is pending or some node did not report; the receipt is under `receipt`", body = ErrorSchema),
        AdminErrors
    ))]
async fn contain(
    State(state): State<ApiState>,
    Revoker(caller): Revoker,
    trail: Trail,
    Json(body): Json<ContainBody>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let started_at_ms = now_ms();
    let selector = state.federation.sites.parse_value(body.sites.as_ref())?;
    let plan = scatter::plan(&state, &caller, &selector)?;
    let user = state.iam.find_user_named(body.user.trim()).await?;
    caller.require_admin_of(&user.domain)?;
    let authority = caller.authority()?;
    let reason = body.reason.as_deref().map(incident_reason).transpose()?;
    let current = state.federation.sites.current.clone();
    let placed = body.placed.filter(|_| caller.is_federated());
    let incident_id = placed.as_ref().map_or_else(Uuid::now_v7, |p| p.incident_id);
    let target = LockTarget::User {
        user_id: user.user_id,
        address: user.address().to_string(),
    };
    let lock = match (body.lock, placed.and_then(|p| p.lock)) {
        (None, _) => None,
        (Some(asked), Some(placed)) => {
            Some(placed_lock(placed, target, lock_message(&asked.message)?))
        }
        (Some(asked), None) => {
            let ttl = asked.ttl.as_deref().map(parse_ttl).transpose()?;
            let message = lock_message(&asked.message)?;
            Some(new_lock(
                &caller,
                target,
                message,
                ttl,
                plan.sites(&current),
            ))
        }
    };
    let request = SiteRequest::new(Verb::Post, PATH).json(&json!({
        "user": user.user_id,
        "sites": "current",
        "lock": lock.as_ref().map(|l| json!({"message": l.message})),
        "reason": reason,
        "dry_run": body.dry_run,
        "placed": PlacedIncident { incident_id, lock: lock.as_ref().map(Placed::of) },
    }));
    let write = Write {
        kind: TaskKind::IncidentContain,
        record_wide: false,
    };
    let scatter = Scatter::new(&state, &caller, &plan, request, write);
    let except = caller.session().map(|s| s.session_id);
    let local = async {
        match body.dry_run {
            true => preview_here(&state, &user, except).await,
            false => {
                let containment = Containment {
                    incident_id,
                    user_id: user.user_id,
                    address: user.address().to_string(),
                    domain: user.domain.to_string(),
                    lock: lock.clone(),
                    except,
                };
                let event = trail
                    .event(
                        &state,
                        &caller,
                        "incident.contain",
                        &user.address().to_string(),
                    )
                    .detail("incident_id", incident_id.to_string())
                    .detail("lock_id", lock.as_ref().map(|l| l.lock_id.to_string()))
                    .detail("reason", reason.clone())
                    .detail("sites", plan.sites(&current));
                let (closed, log_index) = state.iam.contain(containment, authority, event).await?;
                let nodes = state.node.incident_parts(incident_id, REPORT_BOUND).await;
                Ok(SiteReceipt::committed(log_index, closed, nodes))
            }
        }
    };
    let parts = scatter.run(local).await?;
    let mut sites = BTreeMap::new();
    if let Some(part) = parts.local {
        sites.insert(current.clone(), part);
    }
    for (site, answer) in &parts.answered {
        sites.insert(site.clone(), remote_part(site, answer)?);
    }
    let mut task_id = None;
    match body.dry_run {
        true => {
            for (site, failure) in &parts.missed {
                let mut part = SiteReceipt::pending(None, failure.to_string());
                part.status = SiteStatus::Unreachable;
                sites.insert(site.clone(), part);
            }
        }
        false => {
            let done = sites
                .iter()
                .map(|(s, p)| (s.clone(), p.to_json()))
                .collect();
            task_id = scatter.keep_trying_missed(done, &parts.missed).await?;
            for (site, failure) in &parts.missed {
                sites.insert(
                    site.clone(),
                    SiteReceipt::pending(task_id, failure.to_string()),
                );
            }
        }
    }
    let receipt = Receipt {
        incident_id,
        user: user.address().to_string(),
        user_id: user.user_id,
        reason,
        lock_id: lock.as_ref().map(|l| l.lock_id),
        dry_run: body.dry_run,
        requested_by: caller.describe(),
        started_at_ms,
        completed_at_ms: now_ms(),
        elapsed_us: started.elapsed().as_micros() as u64,
        sites,
    };
    if !receipt.dry_run && !caller.is_federated() {
        if let Err(e) = state.site.record_receipt(receipt.clone()).await {
            tracing::error!(incident = %incident_id, error = %e, "an incident's receipt could not be kept");
        }
    }
    answer(&state, receipt, task_id, started.elapsed())
}

/// The receipt as the answer: 200 when every site confirmed, else 503 carrying it.
fn answer(
    state: &ApiState,
    receipt: Receipt,
    task_id: Option<Uuid>,
    elapsed: Duration,
) -> Result<Response, ApiError> {
    let outcome = match (receipt.dry_run, receipt.complete()) {
        (true, _) => "preview",
        (false, true) => "contained",
        (false, false) => "incomplete",
    };
    state.telemetry.incident(outcome, elapsed);
    tracing::info!(incident = %receipt.incident_id, user = %receipt.user, by = %receipt.requested_by, outcome, "an incident call");
    if receipt.complete() {
        return Ok(axum::Json(receipt.to_json()).into_response());
    }
    let not_done: Vec<String> = receipt
        .sites
        .iter()
        .filter(|(_, p)| !matches!(p.status, SiteStatus::Contained | SiteStatus::Preview))
        .map(|(site, p)| format!("{site} {}", p.status.name()))
        .collect();
    Err(ApiError::NotContained {
        message: format!(
            "not every selected site confirmed ({}); the receipt says what each did, and a task keeps trying the sites not reached",
            not_done.join(", ")
        ),
        receipt: Box::new(receipt.to_json()),
        task_id,
    })
}

/// What containing `user` would end at this site, node by node.
async fn preview_here(
    state: &ApiState,
    user: &User,
    except: Option<Uuid>,
) -> Result<SiteReceipt, ApiError> {
    let (user_id, address) = (user.user_id, user.address().to_string());
    let preview = state
        .site
        .read(move |s, now| s.preview_containment(user_id, &address, except, now))
        .await?;
    let nodes = state
        .site_nodes
        .iter()
        .map(|node| {
            let held = preview
                .by_node
                .iter()
                .filter(|(label, _)| label.split('@').next() == Some(node.name.as_str()))
                .fold((0, 0), |(w, c), (_, (dw, dc))| (w + dw, c + dc));
            let part = NodePart::Holds {
                websockets: held.0,
                channels: held.1,
            };
            (node.name.clone(), part)
        })
        .collect();
    Ok(SiteReceipt {
        status: SiteStatus::Preview,
        log_index: None,
        closed: preview.closed,
        nodes,
        task_id: None,
        cause: None,
    })
}

/// Another site's part, from its receipt (a 200, or a 503 carrying it).
fn remote_part(site: &str, answer: &SiteAnswer) -> Result<SiteReceipt, ApiError> {
    let body: Value = match answer.status {
        200 | 503 => serde_json::from_slice(&answer.body).unwrap_or(Value::Null),
        _ => return Err(refusal(site, answer)),
    };
    let receipt = match answer.status {
        503 => &body["receipt"],
        _ => &body,
    };
    receipt["sites"]
        .get(site)
        .and_then(SiteReceipt::from_json)
        .ok_or_else(|| match answer.status {
            503 => refusal(site, answer),
            _ => ApiError::Server(format!("site {site} sent a receipt that does not read")),
        })
}

fn incident_reason(reason: &str) -> Result<String, ApiError> {
    one_line("a reason", reason, 0..=MAX_REASON_CHARS)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// `current` (default), `all`, or a JSON list of site names: where the receipts are kept
    /// (at the site of the node that took each call).
    sites: Option<String>,
    /// Answer with the sites reached when some cannot be (named in `X-Unavailable-Sites`).
    #[serde(default)]
    allow_partial: bool,
}

/// The kept receipts, newest first.
#[utoipa::path(get, path = "/rest/v1/incidents", tag = "incidents",
    params(ListParams),
    responses((status = 200, description = "The receipts", body = [ReceiptSchema]), AdminErrors))]
async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    Query(params): Query<ListParams>,
) -> Result<Response, ApiError> {
    let plan = scatter::plan_query(&state, &caller, params.sites.as_deref())?;
    let (receipts, missing) = gather(&state, &caller, &plan, params.allow_partial).await?;
    Ok(missing.mark(axum::Json(receipts).into_response()))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct OneParams {
    /// `current` (default), `all`, or a JSON list of site names.
    sites: Option<String>,
}

/// One kept receipt.
#[utoipa::path(get, path = "/rest/v1/incidents/{incident_id}", tag = "incidents",
    params(("incident_id" = uuid::Uuid, Path, description = "The incident's id"), OneParams),
    responses(
        (status = 200, description = "The receipt", body = ReceiptSchema),
        (status = 404, description = "No such incident at the selected sites", body = ErrorSchema),
        AdminErrors
    ))]
async fn read(
    State(state): State<ApiState>,
    caller: Caller,
    Path(raw_id): Path<String>,
    Query(params): Query<OneParams>,
) -> Result<axum::Json<Value>, ApiError> {
    let incident_id = Uuid::try_parse(&raw_id)
        .map_err(|_| ApiError::InvalidArgument(format!("{raw_id:?} is not an incident id")))?;
    let plan = scatter::plan_query(&state, &caller, params.sites.as_deref())?;
    let (receipts, _) = gather(&state, &caller, &plan, false).await?;
    let wanted = incident_id.to_string();
    receipts
        .into_iter()
        .find(|r| r["incident_id"].as_str() == Some(wanted.as_str()))
        .map(axum::Json)
        .ok_or_else(|| {
            ApiError::NotFound(format!("no incident {incident_id} at the selected sites"))
        })
}

/// The receipts kept at the sites of `plan` that the caller may see, newest first.
async fn gather(
    state: &ApiState,
    caller: &Caller,
    plan: &crate::federation::Plan,
    allow_partial: bool,
) -> Result<(Vec<Value>, scatter::Missing), ApiError> {
    let request = SiteRequest::new(Verb::Get, PATH);
    let scatter = Scatter::new(state, caller, plan, request, Read { allow_partial });
    let domain = match caller.scope() {
        Some(AdminScope::Global) => None,
        Some(AdminScope::Domain(own)) => Some(own.to_string()),
        None => return Err(ApiError::Forbidden("administrators only".into())),
    };
    let local = async {
        Ok(state
            .site
            .read(move |s, _| {
                s.receipts()
                    .values()
                    .filter(|r| match &domain {
                        None => true,
                        Some(own) => r.user.rsplit_once('@').map(|(_, d)| d) == Some(own),
                    })
                    .map(|r| r.to_json())
                    .collect::<Vec<_>>()
            })
            .await?)
    };
    let gathered = scatter.gather(local).await?;
    let mut receipts = gathered.items;
    receipts.sort_by(|a, b| b["incident_id"].as_str().cmp(&a["incident_id"].as_str()));
    Ok((receipts, gathered.missing))
}
