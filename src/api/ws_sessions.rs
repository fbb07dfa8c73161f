//! `/rest/v1/master/logicalroles/ws/sessions`: list the sessions of the selected sites, log a
//! user out everywhere but the caller's own session, kill one session. Administrators only; a
//! domain administrator sees and acts on its own domain.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use super::audit_trail::Trail;
use super::extract::{Json, Path, Query, Revoker};
use super::listing::{self, Filter, PageToken, SessionItem as SessionItemSchema};
use super::openapi::{AdminErrors, ErrorSchema};
use super::scatter::{self, decoded, refusal, visible_domain, Scatter, Write};
use super::{ApiError, ApiState};
use crate::federation::{SiteRequest, Verb};
use crate::iam::Caller;
use crate::model::task::{answer, TaskKind};
use crate::model::{CloseReason, DomainName};
use crate::state::site::Authority;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

const PATH: &str = "/rest/v1/master/logicalroles/ws/sessions";

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list, logout))
        .routes(routes!(kill))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// `current` (default), `all`, or a JSON list of site names.
    sites: Option<String>,
    /// Only this domain's sessions.
    domain: Option<String>,
    /// Only this user's sessions (a user id or a login).
    user: Option<String>,
    /// `http` or `websocket`.
    session_type: Option<String>,
    /// A page of at most this many items (1 to 10,000); without it the whole list streams.
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<usize>,
    /// The `X-Next-Page-Token` of the previous page.
    page_token: Option<String>,
    /// Answer with the sites reached when some cannot be (named in `X-Unavailable-Sites`).
    #[serde(default)]
    allow_partial: bool,
}

impl ListParams {
    /// The same listing for another site: the filters as the caller may see them.
    fn for_remote(&self, domain: &Option<DomainName>) -> SiteRequest {
        let mut request = SiteRequest::new(Verb::Get, PATH);
        if let Some(domain) = domain {
            request = request.query("domain", domain.to_string());
        }
        if let Some(user) = &self.user {
            request = request.query("user", user.clone());
        }
        if let Some(kind) = &self.session_type {
            request = request.query("session_type", kind.clone());
        }
        request
    }
}

/// Lists the sessions of the selected sites.
#[utoipa::path(get, path = "/rest/v1/master/logicalroles/ws/sessions", tag = "sessions",
    params(ListParams),
    responses(
        (status = 200, description = "The sessions (a JSON array, streamed without `limit`)", body = [SessionItemSchema],
            headers(
                ("x-next-page-token" = String, description = "The next page's token, when there is one"),
                ("x-unavailable-sites" = String, description = "With allow_partial: the sites not reached")
            )),
        AdminErrors
    ))]
async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    Query(params): Query<ListParams>,
) -> Result<Response, ApiError> {
    let selector = state
        .federation
        .sites
        .parse_query(params.sites.as_deref())?;
    let requested = params.domain.as_deref().map(str::parse).transpose()?;
    let domain = visible_domain(&caller, requested)?;
    let filter = Filter::from_query(
        domain.as_ref().map(|d| d.to_string()),
        params.user.as_deref(),
        params.session_type.as_deref(),
    )?;
    let token = params
        .page_token
        .as_deref()
        .map(str::parse::<PageToken>)
        .transpose()?;
    let limit = listing::limit(params.limit)?;
    let plan = scatter::plan(&state, &caller, &selector)?;
    let request = listing::Request {
        filter,
        token,
        limit,
        remote: params.for_remote(&domain),
        allow_partial: params.allow_partial,
    };
    listing::respond(&state, &caller, &plan, request).await
}

#[derive(Deserialize, ToSchema)]
#[schema(as = Logout)]
struct LogoutBody {
    action: String,
    domain: String,
    user: String,
    /// `current` (default), `all`, or a list of site names.
    #[serde(
        default,
        deserialize_with = "crate::federation::selector::sites_as_sent"
    )]
    #[schema(value_type = Option<Object>)]
    sites: Option<Value>,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[schema(as = LoggedOut)]
struct LogoutAnswer {
    status: String,
    closed: usize,
    sites: BTreeMap<String, usize>,
}

/// Closes every session of a user in the selected sites, but the one this request uses.
#[utoipa::path(post, path = "/rest/v1/master/logicalroles/ws/sessions", tag = "sessions",
    request_body = LogoutBody,
    responses(
        (status = 200, description = "Closed, per site", body = LogoutAnswer),
        (status = 404, description = "No such domain or user", body = ErrorSchema),
        AdminErrors
    ))]
async fn logout(
    State(state): State<ApiState>,
    Revoker(caller): Revoker,
    trail: Trail,
    Json(body): Json<LogoutBody>,
) -> Result<axum::Json<LogoutAnswer>, ApiError> {
    let started = std::time::Instant::now();
    if body.action != "logout" {
        return Err(ApiError::InvalidArgument(format!(
            "action {:?}: the only action is \"logout\"",
            body.action
        )));
    }
    let selector = state.federation.sites.parse_value(body.sites.as_ref())?;
    let plan = scatter::plan(&state, &caller, &selector)?;
    let domain: DomainName = body.domain.parse()?;
    caller.require_admin_of(&domain)?;
    let authority = caller.authority()?;
    let user = state.iam.find_user_in(&domain, &body.user).await?;
    let except = caller.session().map(|s| s.session_id);
    let event = trail
        .event(
            &state,
            &caller,
            "sessions.logout",
            &user.address().to_string(),
        )
        .detail("user_id", user.user_id.to_string())
        .detail("sites", plan.sites(&state.federation.sites.current));
    let request = SiteRequest::new(Verb::Post, PATH).json(&serde_json::json!({
        "action": "logout",
        "domain": domain.to_string(),
        "user": user.user_id.to_string(),
        "sites": "current",
    }));
    let local = async {
        state
            .iam
            .close_user_sessions(&user, except, CloseReason::Logout, authority, Some(event))
            .await
            .map_err(ApiError::from)
    };
    let write = Write {
        kind: TaskKind::SessionsLogout,
        record_wide: false,
    };
    let scatter = Scatter::new(&state, &caller, &plan, request, write);
    let parts = scatter.run(local).await?;
    let mut sites = BTreeMap::new();
    if let Some(closed) = parts.local {
        sites.insert(state.federation.sites.current.clone(), closed);
    }
    for (site, answer) in &parts.answered {
        let remote: LogoutAnswer = decoded(site, answer)?;
        sites.insert(site.clone(), remote.closed);
    }
    tracing::info!(caller = %caller.describe(), user = %user.address(), ?sites, "logged out a user's sessions");
    let done = sites
        .iter()
        .map(|(site, n)| (site.clone(), answer::closed(u64::try_from(*n).ok())))
        .collect();
    scatter.settle(done, parts.missed).await?;
    let closed: usize = sites.values().sum();
    state
        .telemetry
        .revocation("logout", closed as u64, started.elapsed());
    Ok(axum::Json(LogoutAnswer {
        status: "logged out all sessions but current".into(),
        closed,
        sites,
    }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct KillParams {
    /// `current` (default), `all`, or a JSON list of site names.
    sites: Option<String>,
    /// What the session's sockets are told: `revoked` (default, 4001), or `limit` (4001, as a
    /// domain's session limit ends the oldest session at another site).
    reason: Option<String>,
}

impl KillParams {
    fn reason(&self) -> Result<CloseReason, ApiError> {
        match self.reason.as_deref() {
            None | Some("revoked") => Ok(CloseReason::Revoked),
            Some("limit") => Ok(CloseReason::Limit),
            Some(other) => Err(ApiError::InvalidArgument(format!(
                "reason {other:?}: \"revoked\" or \"limit\""
            ))),
        }
    }
}

/// Closes one session and its websockets.
#[utoipa::path(delete, path = "/rest/v1/master/logicalroles/ws/sessions/{session_id}", tag = "sessions",
    params(("session_id" = uuid::Uuid, Path, description = "The session's id"), KillParams),
    responses(
        (status = 204, description = "Closed"),
        (status = 404, description = "No such session in the selected sites", body = ErrorSchema),
        AdminErrors
    ))]
async fn kill(
    State(state): State<ApiState>,
    Revoker(caller): Revoker,
    trail: Trail,
    Path(raw_id): Path<String>,
    Query(params): Query<KillParams>,
) -> Result<StatusCode, ApiError> {
    let started = std::time::Instant::now();
    let session_id = Uuid::try_parse(&raw_id)
        .map_err(|_| ApiError::InvalidArgument(format!("{raw_id:?} is not a session id")))?;
    let reason = params.reason()?;
    let plan = scatter::plan_query(&state, &caller, params.sites.as_deref())?;
    let authority = caller.authority()?;
    let mut request = SiteRequest::new(Verb::Delete, format!("{PATH}/{session_id}"));
    if reason != CloseReason::Revoked {
        request = request.query("reason", reason.as_str());
    }
    let write = Write {
        kind: TaskKind::SessionKill,
        record_wide: false,
    };
    let scatter = Scatter::new(&state, &caller, &plan, request, write);
    let event = trail
        .event(&state, &caller, "session.kill", &session_id.to_string())
        .detail("sites", plan.sites(&state.federation.sites.current))
        .detail("reason", reason.as_str());
    let parts = scatter
        .run(kill_here(&state, session_id, reason, authority, event))
        .await?;
    let mut killed = parts.local.unwrap_or(false);
    let mut done = BTreeMap::new();
    if plan.local && !killed {
        done.insert(
            state.federation.sites.current.clone(),
            answer::killed(false),
        );
    }
    for (site, answer) in &parts.answered {
        match answer.status {
            204 => killed = true,
            404 => {
                done.insert(site.clone(), answer::killed(false));
            }
            _ => return Err(refusal(site, answer)),
        }
    }
    if killed {
        // A session lives at one site: once it is found, the sites not reached cannot hold it.
        tracing::info!(caller = %caller.describe(), %session_id, "killed a session");
        state.telemetry.revocation("kill", 1, started.elapsed());
        return Ok(StatusCode::NO_CONTENT);
    }
    scatter.settle(done, parts.missed).await?;
    Err(ApiError::NotFound(format!(
        "no session {session_id} in the selected sites"
    )))
}

/// Ends a session of this site: whether there was one. The caller's authority is checked by
/// the command when it applies: no read first.
async fn kill_here(
    state: &ApiState,
    session_id: Uuid,
    reason: CloseReason,
    authority: Authority,
    event: crate::model::audit::NewAuditEvent,
) -> Result<bool, ApiError> {
    Ok(state
        .iam
        .end_session(session_id, reason, authority, Some(event))
        .await?)
}
