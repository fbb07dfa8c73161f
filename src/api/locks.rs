//! `/rest/v1/locks`: place a lock at the selected sites, list and read them, lift one.
//!
//! A lock is placed with one id, one creation time and one expiry at every selected site: the
//! node that takes the request decides them and sends them along, so every site's copy agrees
//! on when it stops applying. A site the request does not reach gets the lock through a
//! durable task; the answer's `sites` map says where it is in force and where it is pending.
//! A domain administrator locks users and sessions of its own domain; domain and network
//! locks need a global administrator.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sessionplane_cluster::now_ms;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use super::audit_trail::Trail;
use super::channels::rfc3339_ms;
use super::extract::{one_line, Json, Path, Query};
use super::openapi::{AdminErrors, ErrorSchema};
use super::scatter::{self, decoded, refusal, Read, Scatter, Write};
use super::{ApiError, ApiState};
use crate::federation::{SiteRequest, SiteSelector, Verb};
use crate::iam::Caller;
use crate::model::task::{answer, TaskKind};
use crate::model::{DomainName, Lock, LockTarget};
use crate::state::directory::AdminScope;

const PATH: &str = "/rest/v1/locks";
/// The longest message a lock may show.
const MAX_MESSAGE_CHARS: usize = 500;
/// The longest a lock may be placed for.
const MAX_TTL: Duration = Duration::from_secs(10 * 366 * 24 * 3600);

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(read, lift))
}

#[derive(Deserialize, ToSchema)]
#[schema(as = NewLock)]
struct CreateBody {
    /// Exactly one of `{"user": "login@domain" or a user id}`, `{"domain": "…"}`,
    /// `{"ip": "203.0.113.7" or "203.0.113.0/24"}`, `{"session_id": "…"}`.
    #[schema(value_type = Object)]
    target: Value,
    /// What a locked user who gets the password right is told.
    message: String,
    /// How long it holds (`24h`, `90m`); without it, until lifted.
    ttl: Option<String>,
    /// `current` (default), `all`, or a list of site names.
    #[serde(
        default,
        deserialize_with = "crate::federation::selector::sites_as_sent"
    )]
    #[schema(value_type = Option<Object>)]
    sites: Option<Value>,
    /// Set by the node that took the request when it sends it on to another site (taken from
    /// another site's node only).
    #[serde(default)]
    #[schema(ignore)]
    placed: Option<Placed>,
}

/// What the node that took a lock request decided, for every site to place the same lock.
#[derive(Clone, Serialize, Deserialize)]
pub(super) struct Placed {
    pub lock_id: Uuid,
    pub created_at_ms: u64,
    pub expires_at_ms: Option<u64>,
    pub created_by: String,
    pub sites: Vec<String>,
    #[serde(default)]
    pub spares: Option<Uuid>,
}

/// A lock as the api shows it.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = LockObject)]
pub(super) struct LockView {
    lock_id: Uuid,
    /// The one target, as given: `{"user": "login@domain"}`, `{"domain"}`, `{"ip"}` (a CIDR)
    /// or `{"session_id"}`.
    #[schema(value_type = Object)]
    target: Value,
    message: String,
    created_at: String,
    expires_at: Option<String>,
    created_by: String,
    /// Where it stands at each site asked: `in_force`, `pending` (not there yet: a task is
    /// taking it there), `lifted` or `expired`.
    sites: BTreeMap<String, String>,
    /// The sites it was placed for.
    selected_sites: Vec<String>,
    lifted_at: Option<String>,
    /// The task that takes it to the sites it is pending at, when this answer made one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    task_id: Option<Uuid>,
}

impl LockView {
    pub(super) fn of(lock: &Lock, site: &str, now_ms: u64) -> Self {
        let status = match (lock.lifted_at_ms, lock.in_force(now_ms)) {
            (Some(_), _) => "lifted",
            (None, true) => "in_force",
            (None, false) => "expired",
        };
        Self {
            lock_id: lock.lock_id,
            target: target_json(&lock.target),
            message: lock.message.clone(),
            created_at: rfc3339_ms(lock.created_at_ms),
            expires_at: lock.expires_at_ms.map(rfc3339_ms),
            created_by: lock.created_by.clone(),
            sites: BTreeMap::from([(site.to_string(), status.to_string())]),
            selected_sites: lock.sites.clone(),
            lifted_at: lock.lifted_at_ms.map(rfc3339_ms),
            task_id: None,
        }
    }

    fn in_force_somewhere(&self) -> bool {
        self.sites.values().any(|s| s == "in_force")
    }
}

pub(super) fn target_json(target: &LockTarget) -> Value {
    match target {
        LockTarget::User { address, .. } => json!({ "user": address }),
        LockTarget::Domain(domain) => json!({ "domain": domain }),
        LockTarget::Network(net) => json!({ "ip": net.to_string() }),
        LockTarget::Session(id) => json!({ "session_id": id }),
    }
}

/// Places a lock at the selected sites.
#[utoipa::path(post, path = "/rest/v1/locks", tag = "locks",
    request_body = CreateBody,
    responses(
        (status = 201, description = "Placed; `sites` says where it is in force and where a task is taking it", body = LockView),
        (status = 404, description = "No such user, domain or session", body = ErrorSchema),
        AdminErrors
    ))]
async fn create(
    State(state): State<ApiState>,
    caller: Caller,
    trail: Trail,
    Json(body): Json<CreateBody>,
) -> Result<(StatusCode, axum::Json<LockView>), ApiError> {
    let selector = state.federation.sites.parse_value(body.sites.as_ref())?;
    let plan = scatter::plan(&state, &caller, &selector)?;
    let message = lock_message(&body.message)?;
    let target = resolve_target(&state, &caller, &body.target).await?;
    let current = state.federation.sites.current.clone();
    let lock = match (body.placed, caller.is_federated()) {
        (Some(placed), true) => placed_lock(placed, target, message),
        _ => {
            let ttl = body.ttl.as_deref().map(parse_ttl).transpose()?;
            new_lock(&caller, target, message, ttl, plan.sites(&current))
        }
    };
    let request = SiteRequest::new(Verb::Post, PATH).json(&forwarded_body(&lock));
    let write = Write {
        kind: TaskKind::LockPlace,
        record_wide: false,
    };
    let scatter = Scatter::new(&state, &caller, &plan, request, write);
    let event = trail
        .event(&state, &caller, "lock.create", &lock.lock_id.to_string())
        .detail("target", target_json(&lock.target))
        .detail("sites", lock.sites.clone())
        .detail("expires_at_ms", lock.expires_at_ms);
    let parts = scatter
        .run(async { Ok(state.site.audited(event).place_lock(lock.clone()).await?) })
        .await?;
    let mut view = LockView::of(&lock, &current, now_ms());
    view.sites.clear();
    let mut done = BTreeMap::new();
    if let Some(closed) = parts.local {
        view.sites.insert(current.clone(), "in_force".into());
        tracing::info!(caller = %caller.describe(), lock = %lock.lock_id, target = %view.target, sessions = closed.sessions, channels = closed.channels, "placed a lock");
    }
    for (site, answer) in &parts.answered {
        let _: LockView = decoded(site, answer)?;
        view.sites.insert(site.clone(), "in_force".into());
        done.insert(site.clone(), answer::placed());
    }
    for site in parts.missed.keys() {
        view.sites.insert(site.clone(), "pending".into());
    }
    view.task_id = scatter.keep_trying_missed(done, &parts.missed).await?;
    Ok((StatusCode::CREATED, axum::Json(view)))
}

/// The lock the node taking the request decides: its id, times and sites.
pub(super) fn new_lock(
    caller: &Caller,
    target: LockTarget,
    message: String,
    ttl: Option<Duration>,
    sites: Vec<String>,
) -> Lock {
    let now = now_ms();
    let spares = caller.session().map(|s| s.session_id);
    Lock {
        lock_id: Uuid::now_v7(),
        target,
        message,
        created_at_ms: now,
        expires_at_ms: ttl.map(|ttl| now.saturating_add(ttl.as_millis() as u64)),
        created_by: caller.describe(),
        sites,
        lifted_at_ms: None,
        spares,
    }
}

pub(super) fn placed_lock(placed: Placed, target: LockTarget, message: String) -> Lock {
    let spares = placed.spares;
    Lock {
        lock_id: placed.lock_id,
        target,
        message,
        created_at_ms: placed.created_at_ms,
        expires_at_ms: placed.expires_at_ms,
        created_by: placed.created_by,
        sites: placed.sites,
        lifted_at_ms: None,
        spares,
    }
}

impl Placed {
    /// What every site needs to place `lock` as this node decided it.
    pub(super) fn of(lock: &Lock) -> Self {
        Self {
            lock_id: lock.lock_id,
            created_at_ms: lock.created_at_ms,
            expires_at_ms: lock.expires_at_ms,
            created_by: lock.created_by.clone(),
            sites: lock.sites.clone(),
            spares: lock.spares,
        }
    }
}

/// The request another site is sent: the target resolved (a user by id), the lock's decided
/// id and times.
fn forwarded_body(lock: &Lock) -> Value {
    let target = match &lock.target {
        LockTarget::User { user_id, .. } => json!({ "user": user_id }),
        other => target_json(other),
    };
    let placed = Placed::of(lock);
    json!({
        "target": target,
        "message": lock.message,
        "sites": "current",
        "placed": placed,
    })
}

pub(super) fn lock_message(message: &str) -> Result<String, ApiError> {
    one_line("a lock's message", message, 1..=MAX_MESSAGE_CHARS)
}

pub(super) fn parse_ttl(raw: &str) -> Result<Duration, ApiError> {
    let ttl = humantime::parse_duration(raw.trim()).map_err(|e| {
        ApiError::InvalidArgument(format!(
            "ttl {raw:?} is not a length such as \"24h\" or \"90m\": {e}"
        ))
    })?;
    if ttl.is_zero() || ttl > MAX_TTL {
        return Err(ApiError::InvalidArgument(format!(
            "ttl {raw:?}: a lock holds from 1 s to 10 years"
        )));
    }
    Ok(ttl)
}

/// The one target a request names, resolved, once the caller may lock it.
async fn resolve_target(
    state: &ApiState,
    caller: &Caller,
    target: &Value,
) -> Result<LockTarget, ApiError> {
    let (kind, value) = one_target(target)?;
    match kind {
        "user" => {
            let user = state.iam.find_user_named(value).await?;
            caller.require_admin_of(&user.domain)?;
            Ok(LockTarget::User {
                user_id: user.user_id,
                address: user.address().to_string(),
            })
        }
        "domain" => {
            caller.require_global_admin()?;
            let domain: DomainName = value.parse()?;
            let known = state
                .directory
                .read_fresh_or_local(|d| d.domain(&domain).map(|_| ()))
                .await;
            known.ok_or_else(|| ApiError::NotFound(format!("no domain {domain}")))?;
            Ok(LockTarget::Domain(domain.to_string()))
        }
        "ip" => {
            caller.require_global_admin()?;
            Ok(LockTarget::Network(parse_network(value)?))
        }
        _ => {
            let session_id = Uuid::try_parse(value).map_err(|_| {
                ApiError::InvalidArgument(format!("session_id {value:?} is not a session id"))
            })?;
            session_may_be_locked(state, caller, session_id).await?;
            Ok(LockTarget::Session(session_id))
        }
    }
}

/// `{"<kind>": "<value>"}` with exactly one of the four kinds.
fn one_target(target: &Value) -> Result<(&'static str, &str), ApiError> {
    const KINDS: [&str; 4] = ["user", "domain", "ip", "session_id"];
    let bad = || {
        ApiError::InvalidArgument(
            "target is an object with exactly one of \"user\", \"domain\", \"ip\", \"session_id\", a string"
                .into(),
        )
    };
    let fields = target
        .as_object()
        .filter(|f| f.len() == 1)
        .ok_or_else(bad)?;
    let (key, value) = fields.iter().next().ok_or_else(bad)?;
    let kind = KINDS.into_iter().find(|k| k == key).ok_or_else(bad)?;
    let value = value
        .as_str()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .ok_or_else(bad)?;
    Ok((kind, value))
}

/// An address (a host network) or a CIDR, as the network it names.
fn parse_network(raw: &str) -> Result<IpNet, ApiError> {
    let net = raw
        .parse::<IpNet>()
        .or_else(|_| raw.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| {
            ApiError::InvalidArgument(format!(
                "ip {raw:?} is not an address or a CIDR such as 203.0.113.0/24"
            ))
        })?;
    Ok(net.trunc())
}

/// A domain administrator locks sessions of its own domain: the session must be at this site
/// and in that domain. A global administrator, or another site relaying a check its own node
/// made, may lock any session id.
async fn session_may_be_locked(
    state: &ApiState,
    caller: &Caller,
    session_id: Uuid,
) -> Result<(), ApiError> {
    match caller.scope() {
        Some(AdminScope::Global) => Ok(()),
        Some(AdminScope::Domain(_)) if caller.is_federated() => Ok(()),
        Some(AdminScope::Domain(own)) => {
            let session = state.site.get(session_id).await?;
            match session {
                Some(s) if *s.domain == *own.as_str() => Ok(()),
                Some(_) => Err(ApiError::Forbidden(format!(
                    "you administer domain {own} only; that session is not of it"
                ))),
                None => Err(ApiError::NotFound(format!(
                    "no session {session_id} at this site"
                ))),
            }
        }
        None => Err(ApiError::Forbidden("administrators only".into())),
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// `current` (default), `all`, or a JSON list of site names.
    sites: Option<String>,
    /// With the lifted and expired locks too.
    #[serde(default)]
    all: bool,
    /// Answer with the sites reached when some cannot be (named in `X-Unavailable-Sites`).
    #[serde(default)]
    allow_partial: bool,
}

/// Lists the locks of the selected sites, newest first.
#[utoipa::path(get, path = "/rest/v1/locks", tag = "locks",
    params(ListParams),
    responses((status = 200, description = "The locks", body = [LockView]), AdminErrors))]
async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    Query(params): Query<ListParams>,
) -> Result<axum::response::Response, ApiError> {
    let plan = scatter::plan_query(&state, &caller, params.sites.as_deref())?;
    let (views, missing) = gather(&state, &caller, &plan, params.allow_partial).await?;
    let views: Vec<LockView> = views
        .into_iter()
        .filter(|v| params.all || v.in_force_somewhere())
        .filter(|v| visible(&caller, v))
        .collect();
    Ok(
        missing.mark(axum::response::IntoResponse::into_response(axum::Json(
            views,
        ))),
    )
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct OneParams {
    /// `current` (default), `all`, or a JSON list of site names.
    sites: Option<String>,
}

/// One lock, as the selected sites have it.
#[utoipa::path(get, path = "/rest/v1/locks/{lock_id}", tag = "locks",
    params(("lock_id" = uuid::Uuid, Path, description = "The lock's id"), OneParams),
    responses(
        (status = 200, description = "The lock", body = LockView),
        (status = 404, description = "No such lock at the selected sites", body = ErrorSchema),
        AdminErrors
    ))]
async fn read(
    State(state): State<ApiState>,
    caller: Caller,
    Path(raw_id): Path<String>,
    Query(params): Query<OneParams>,
) -> Result<axum::Json<LockView>, ApiError> {
    let lock_id = parse_lock_id(&raw_id)?;
    let plan = scatter::plan_query(&state, &caller, params.sites.as_deref())?;
    let (views, _) = gather(&state, &caller, &plan, false).await?;
    views
        .into_iter()
        .find(|v| v.lock_id == lock_id && visible(&caller, v))
        .map(axum::Json)
        .ok_or_else(|| ApiError::NotFound(format!("no lock {lock_id} at the selected sites")))
}

/// Every lock at the sites of `plan`, one view per lock: its status at each site asked,
/// `pending` where it was placed for but is not yet.
async fn gather(
    state: &ApiState,
    caller: &Caller,
    plan: &crate::federation::Plan,
    allow_partial: bool,
) -> Result<(Vec<LockView>, scatter::Missing), ApiError> {
    let current = state.federation.sites.current.clone();
    let request = SiteRequest::new(Verb::Get, PATH).query("all", "true");
    let scatter = Scatter::new(state, caller, plan, request, Read { allow_partial });
    let local = async {
        let site = current.clone();
        Ok(state
            .site
            .read(move |s, now| {
                s.locks()
                    .values()
                    .map(|l| LockView::of(l, &site, now))
                    .collect::<Vec<_>>()
            })
            .await?)
    };
    let gathered = scatter.gather(local).await?;
    let asked: Vec<String> = plan
        .sites(&current)
        .into_iter()
        .filter(|s| !gathered.missing.names().contains(s))
        .collect();
    Ok((merge(gathered.items, &asked), gathered.missing))
}

/// One view per lock, newest first, with every asked site's status.
fn merge(views: Vec<LockView>, asked: &[String]) -> Vec<LockView> {
    let mut by_id: BTreeMap<Uuid, LockView> = BTreeMap::new();
    for view in views {
        match by_id.get_mut(&view.lock_id) {
            Some(merged) => merged.sites.extend(view.sites),
            None => {
                by_id.insert(view.lock_id, view);
            }
        }
    }
    let mut merged: Vec<LockView> = by_id.into_values().rev().collect();
    for view in &mut merged {
        for site in asked.iter().filter(|s| view.selected_sites.contains(s)) {
            view.sites
                .entry(site.clone())
                .or_insert_with(|| "pending".into());
        }
    }
    merged
}

/// A domain administrator sees the locks of its own domain's users and sessions.
fn visible(caller: &Caller, view: &LockView) -> bool {
    match caller.scope() {
        Some(AdminScope::Global) => true,
        Some(AdminScope::Domain(own)) => {
            let domain = view.target["user"]
                .as_str()
                .and_then(|u| u.rsplit_once('@'))
                .map(|(_, d)| d.to_string());
            domain.as_deref() == Some(own.as_str()) || view.target.get("session_id").is_some()
        }
        None => false,
    }
}

fn parse_lock_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::try_parse(raw).map_err(|_| ApiError::InvalidArgument(format!("{raw:?} is not a lock id")))
}

/// Lifts a lock at the selected sites (without `sites`: every site it was placed for).
#[utoipa::path(delete, path = "/rest/v1/locks/{lock_id}", tag = "locks",
    params(("lock_id" = uuid::Uuid, Path, description = "The lock's id"), OneParams),
    responses(
        (status = 204, description = "Lifted"),
        (status = 404, description = "No such lock at the selected sites", body = ErrorSchema),
        AdminErrors
    ))]
async fn lift(
    State(state): State<ApiState>,
    caller: Caller,
    trail: Trail,
    Path(raw_id): Path<String>,
    Query(params): Query<OneParams>,
) -> Result<StatusCode, ApiError> {
    let lock_id = parse_lock_id(&raw_id)?;
    let local_copy = state
        .site
        .read(move |s, _| s.lock(&lock_id).cloned())
        .await?;
    let selector = match (&params.sites, &local_copy) {
        (None, Some(lock)) if !caller.is_federated() => {
            SiteSelector::Named(lock.sites.iter().cloned().collect())
        }
        _ => state
            .federation
            .sites
            .parse_query(params.sites.as_deref())?,
    };
    let plan = scatter::plan(&state, &caller, &selector)?;
    if let Some(lock) = &local_copy {
        let view = LockView::of(lock, "", 0);
        if !visible(&caller, &view) {
            caller.require_global_admin()?;
        }
    }
    let request = SiteRequest::new(Verb::Delete, format!("{PATH}/{lock_id}"));
    let write = Write {
        kind: TaskKind::LockLift,
        record_wide: false,
    };
    let scatter = Scatter::new(&state, &caller, &plan, request, write);
    let event = trail
        .event(&state, &caller, "lock.delete", &lock_id.to_string())
        .detail("sites", plan.sites(&state.federation.sites.current));
    let parts = scatter
        .run(async { Ok(state.site.audited(event).lift_lock(lock_id).await?) })
        .await?;
    let mut done = BTreeMap::new();
    let mut lifted = parts.local.as_ref().is_some_and(Option::is_some);
    if plan.local {
        done.insert(
            state.federation.sites.current.clone(),
            answer::lifted(lifted),
        );
    }
    for (site, answer) in &parts.answered {
        match answer.status {
            204 => {
                lifted = true;
                done.insert(site.clone(), answer::lifted(true));
            }
            404 => {
                done.insert(site.clone(), answer::lifted(false));
            }
            _ => return Err(refusal(site, answer)),
        }
    }
    scatter.settle(done, parts.missed).await?;
    match lifted {
        true => {
            tracing::info!(caller = %caller.describe(), lock = %lock_id, "lifted a lock");
            Ok(StatusCode::NO_CONTENT)
        }
        false => Err(ApiError::NotFound(format!(
            "no lock {lock_id} at the selected sites"
        ))),
    }
}
