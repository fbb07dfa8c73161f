//! `/servers/channels` and `/servers/connectedUsers` (Apache James webadmin): list the mail
//! channels (IMAP, SMTP, JMAP) of the site, and disconnect a user, some users or everyone.
//! Administrators only; a domain administrator sees and disconnects its own domain's users.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::audit_trail::Trail;
use super::extract::{Path, Query};
use super::openapi::{AdminErrors, ErrorSchema};
use super::scatter::{self, refusal, visible_domain, Gathered, Scatter, SitesParam, Write};
use super::{ApiError, ApiState};
use crate::federation::{Plan, SiteRequest, Verb};
use crate::iam::Caller;
use crate::model::task::{answer, TaskKind};
use crate::model::{Channel, ChannelTarget, DomainName, UserAddress};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list_all, disconnect_many))
        .routes(routes!(list_user, disconnect_user))
        .routes(routes!(connected_users))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// `current` (default), `all`, or a JSON list of site names.
    sites: Option<String>,
    /// Answer with the sites reached when some cannot be (named in `X-Unavailable-Sites`).
    #[serde(default)]
    allow_partial: bool,
    limit: Option<usize>,
    offset: Option<usize>,
    #[serde(rename = "sortBy")]
    sort_by: Option<String>,
    #[serde(rename = "sortDirection")]
    sort_direction: Option<String>,
    #[serde(rename = "sortType")]
    sort_type: Option<String>,
}

/// One channel as James shows it, with the node and site that hold it.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Channel)]
struct ChannelView {
    protocol: crate::model::Protocol,
    endpoint: crate::model::Endpoint,
    remote_address: String,
    connection_date: String,
    is_active: bool,
    is_open: bool,
    is_writable: bool,
    is_encrypted: bool,
    username: String,
    protocol_specific_information: std::collections::BTreeMap<String, String>,
    node: String,
    site: String,
}

pub(super) use crate::model::time::rfc3339_ms;

fn view(state: &ApiState, channel: &Channel) -> ChannelView {
    let pid = channel.pid;
    let alive = state.liveness.is_up_as(pid.node_id, pid.incarnation);
    ChannelView {
        protocol: channel.protocol,
        endpoint: channel.endpoint,
        remote_address: channel.remote_address.clone(),
        connection_date: rfc3339_ms(channel.connection_date_ms),
        is_active: alive,
        is_open: alive,
        is_writable: alive,
        is_encrypted: channel.encrypted,
        username: channel.username.to_string(),
        protocol_specific_information: channel.info.clone(),
        node: channel.node.to_string(),
        site: state.federation.sites.current.clone(),
    }
}

fn in_domain(username: &str, domain: &Option<DomainName>) -> bool {
    domain.as_ref().is_none_or(|d| {
        username
            .rsplit_once('@')
            .is_some_and(|(_, of)| of.eq_ignore_ascii_case(d.as_str()))
    })
}

async fn channels_of(
    state: &ApiState,
    pick: impl FnOnce(&crate::state::site::SiteState) -> Vec<Arc<Channel>>,
) -> Result<Vec<Arc<Channel>>, ApiError> {
    Ok(state.site.read(|s, _| pick(s)).await?)
}

/// Every mail channel of the selected sites (James fields, plus node and site).
#[utoipa::path(get, path = "/servers/channels", tag = "channels", params(ListParams),
    responses((status = 200, description = "The channels", body = [ChannelView], headers(("x-unavailable-sites" = String, description = "With allow_partial: the sites not reached"))), AdminErrors))]
async fn list_all(
    State(state): State<ApiState>,
    caller: Caller,
    Query(params): Query<ListParams>,
) -> Result<Response, ApiError> {
    let domain = visible_domain(&caller, None)?;
    let order = Order::parse(&params)?;
    let local = async {
        let channels = channels_of(&state, |s| s.channels().values().cloned().collect()).await?;
        Ok(channels
            .iter()
            .filter(|c| in_domain(&c.username, &domain))
            .map(|c| view(&state, c))
            .collect())
    };
    let sites = (params.sites.as_deref(), params.allow_partial);
    let Gathered { items, missing } =
        scatter::gather_get(&state, &caller, sites, "/servers/channels", local).await?;
    let listed = axum::Json(order.apply(items, &params)?).into_response();
    Ok(missing.mark(listed))
}

/// One user's mail channels in the selected sites.
#[utoipa::path(get, path = "/servers/channels/{user}", tag = "channels", params(("user" = String, Path, description = "login@domain"), ListParams),
    responses((status = 200, description = "The channels", body = [ChannelView], headers(("x-unavailable-sites" = String, description = "With allow_partial: the sites not reached"))), AdminErrors))]
async fn list_user(
    State(state): State<ApiState>,
    caller: Caller,
    Path(user): Path<String>,
    Query(params): Query<ListParams>,
) -> Result<Response, ApiError> {
    let address: UserAddress = user.parse()?;
    caller.require_admin_of(&address.domain)?;
    let order = Order::parse(&params)?;
    let name = address.to_string();
    let local = async {
        let channels = channels_of(&state, |s| s.user_channels(&name)).await?;
        Ok(channels.iter().map(|c| view(&state, c)).collect())
    };
    let sites = (params.sites.as_deref(), params.allow_partial);
    let Gathered { items, missing } = scatter::gather_get(
        &state,
        &caller,
        sites,
        format!("/servers/channels/{name}"),
        local,
    )
    .await?;
    let listed = axum::Json(order.apply(items, &params)?).into_response();
    Ok(missing.mark(listed))
}

/// The users with at least one channel in the selected sites.
#[utoipa::path(get, path = "/servers/connectedUsers", tag = "channels", params(SitesParam),
    responses((status = 200, description = "Usernames (login@domain)", body = [String], headers(("x-unavailable-sites" = String, description = "With allow_partial: the sites not reached"))), AdminErrors))]
async fn connected_users(
    State(state): State<ApiState>,
    caller: Caller,
    Query(params): Query<SitesParam>,
) -> Result<Response, ApiError> {
    let domain = visible_domain(&caller, None)?;
    let local = async {
        let channels = channels_of(&state, |s| s.channels().values().cloned().collect()).await?;
        Ok(channels
            .iter()
            .filter(|c| in_domain(&c.username, &domain))
            .map(|c| c.username.to_string())
            .collect())
    };
    let sites = (params.sites.as_deref(), params.allow_partial);
    let Gathered { items, missing } =
        scatter::gather_get::<String>(&state, &caller, sites, "/servers/connectedUsers", local)
            .await?;
    let users: BTreeSet<String> = items.into_iter().collect();
    let listed = axum::Json(users.into_iter().collect::<Vec<_>>()).into_response();
    Ok(missing.mark(listed))
}

async fn disconnect(
    state: &ApiState,
    target: ChannelTarget,
    event: crate::model::audit::NewAuditEvent,
) -> Result<u32, ApiError> {
    let event = match &target {
        ChannelTarget::Users(users) => event.detail("users", users.len()),
        _ => event.detail("users", "all"),
    };
    Ok(state
        .site
        .audited(event)
        .disconnect_channels(target)
        .await?)
}

/// A disconnection at every selected site: here with `local`, elsewhere with `request`. A site
/// not reached gets a task that keeps trying, and the caller a 503 naming it. A disconnection
/// of everyone over several sites is kept as a task in any case, its report the record of what
/// each site did.
async fn disconnect_everywhere<F>(
    state: &ApiState,
    caller: &Caller,
    plan: &Plan,
    request: SiteRequest,
    everyone: bool,
    local: F,
) -> Result<Response, ApiError>
where
    F: std::future::Future<Output = Result<u32, ApiError>>,
{
    let write = Write {
        kind: TaskKind::ChannelsDisconnect,
        record_wide: everyone,
    };
    let scatter = Scatter::new(state, caller, plan, request, write);
    let parts = scatter.run(local).await?;
    let mut done = BTreeMap::new();
    if let Some(closed) = parts.local {
        done.insert(
            state.federation.sites.current.clone(),
            answer::closed(Some(u64::from(closed))),
        );
    }
    for (site, answer) in &parts.answered {
        if !answer.is_success() {
            return Err(refusal(site, answer));
        }
        done.insert(site.clone(), answer::closed(None));
    }
    tracing::info!(caller = %caller.describe(), ?done, "disconnected channels");
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Some(task_id) = scatter.settle(done, parts.missed).await? {
        if let Ok(value) = HeaderValue::from_str(&task_id.to_string()) {
            response.headers_mut().insert(TASK_HEADER, value);
        }
    }
    Ok(response)
}

/// Names the task that records a disconnection of everyone over several sites.
const TASK_HEADER: &str = "x-task-id";

/// Closes every channel of a user in the selected sites.
#[utoipa::path(delete, path = "/servers/channels/{user}", tag = "channels", params(("user" = String, Path, description = "login@domain"), SitesParam),
    responses((status = 204, description = "Disconnected"), (status = 503, description = "A site (or node) was not reached; a task keeps trying a write there (`taskId`)", body = ErrorSchema), AdminErrors))]
async fn disconnect_user(
    State(state): State<ApiState>,
    caller: Caller,
    trail: Trail,
    Path(user): Path<String>,
    Query(params): Query<SitesParam>,
) -> Result<Response, ApiError> {
    let address: UserAddress = user.parse()?;
    caller.require_admin_of(&address.domain)?;
    let plan = scatter::plan_query(&state, &caller, params.sites.as_deref())?;
    let name = address.to_string();
    let request = SiteRequest::new(Verb::Delete, format!("/servers/channels/{name}"));
    let event = trail
        .event(&state, &caller, "channels.disconnect", &name)
        .detail("sites", plan.sites(&state.federation.sites.current));
    let local = disconnect(&state, ChannelTarget::Users(vec![name.clone()]), event);
    disconnect_everywhere(&state, &caller, &plan, request, false, local).await
}

/// No body: everyone (everyone of the caller's domain for a domain administrator). A JSON list
/// of `login@domain`: those users.
/// No body: every channel (of the caller's domain for a domain administrator). A JSON list of
/// users: their channels.
#[utoipa::path(delete, path = "/servers/channels", tag = "channels", params(SitesParam),
    request_body(content = Option<Vec<String>>, description = "Users (login@domain); none: everyone"),
    responses((status = 204, description = "Disconnected", headers(("x-task-id" = String, description = "Everyone over several sites: the task that records it"))),
        (status = 503, description = "A site (or node) was not reached; a task keeps trying a write there (`taskId`)", body = ErrorSchema), AdminErrors))]
async fn disconnect_many(
    State(state): State<ApiState>,
    caller: Caller,
    trail: Trail,
    Query(params): Query<SitesParam>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|r| match r.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge(r.body_text()),
        _ => ApiError::InvalidArgument(r.body_text()),
    })?;
    let domain = visible_domain(&caller, None)?;
    let users = match body.iter().all(u8::is_ascii_whitespace) {
        true => None,
        false => Some(users_in_body(&body, &caller)?),
    };
    let plan = scatter::plan_query(&state, &caller, params.sites.as_deref())?;
    let mut request = SiteRequest::new(Verb::Delete, "/servers/channels");
    if let Some(users) = &users {
        request = request.json(&serde_json::json!(users));
    }
    let everyone = users.is_none();
    let target = match (&users, &domain) {
        (Some(users), _) => super::users::listed(users),
        (None, Some(domain)) => format!("*@{domain}"),
        (None, None) => "*".to_string(),
    };
    let event = trail
        .event(&state, &caller, "channels.disconnect", &target)
        .detail("sites", plan.sites(&state.federation.sites.current));
    let local = async {
        let target = match (users, domain) {
            (Some(users), _) => ChannelTarget::Users(users),
            (None, None) => ChannelTarget::All,
            (None, Some(domain)) => {
                let channels =
                    channels_of(&state, |s| s.channels().values().cloned().collect()).await?;
                let users: BTreeSet<String> = channels
                    .iter()
                    .filter(|c| in_domain(&c.username, &Some(domain.clone())))
                    .map(|c| c.username.to_string())
                    .collect();
                ChannelTarget::Users(users.into_iter().collect())
            }
        };
        disconnect(&state, target, event).await
    };
    disconnect_everywhere(&state, &caller, &plan, request, everyone, local).await
}

fn users_in_body(body: &[u8], caller: &Caller) -> Result<Vec<String>, ApiError> {
    let names: Vec<String> = serde_json::from_slice(body).map_err(|e| {
        ApiError::InvalidArgument(format!(
            "the body must be a JSON list of users (login@domain): {e}"
        ))
    })?;
    if names.is_empty() {
        return Err(ApiError::InvalidArgument(
            "the list of users is empty; send no body to disconnect everyone".into(),
        ));
    }
    names
        .iter()
        .map(|name| {
            let address: UserAddress = name.parse()?;
            caller.require_admin_of(&address.domain)?;
            Ok(address.to_string())
        })
        .collect()
}

/// James's sort and page parameters.
struct Order {
    by: Option<String>,
    descending: bool,
    numeric: bool,
}

const SORTABLE: &[&str] = &[
    "protocol",
    "endpoint",
    "remoteAddress",
    "connectionDate",
    "isActive",
    "isOpen",
    "isWritable",
    "isEncrypted",
    "username",
    "node",
    "site",
];

impl Order {
    fn parse(params: &ListParams) -> Result<Self, ApiError> {
        let by = params.sort_by.clone();
        if let Some(field) = &by {
            let nested = field
                .strip_prefix("protocolSpecificInformation.")
                .is_some_and(|key| !key.is_empty());
            if !nested && !SORTABLE.contains(&field.as_str()) {
                return Err(ApiError::InvalidArgument(format!(
                    "sortBy {field:?}: one of {}, or protocolSpecificInformation.<key>",
                    SORTABLE.join(", ")
                )));
            }
        }
        let descending = match params
            .sort_direction
            .as_deref()
            .map(str::to_ascii_lowercase)
        {
            None => false,
            Some(d) if d == "asc" => false,
            Some(d) if d == "desc" => true,
            Some(d) => {
                return Err(ApiError::InvalidArgument(format!(
                    "sortDirection {d:?}: asc or desc"
                )))
            }
        };
        let numeric = match params.sort_type.as_deref().map(str::to_ascii_lowercase) {
            None => false,
            Some(t) if t == "string" => false,
            Some(t) if t == "number" => true,
            Some(t) => {
                return Err(ApiError::InvalidArgument(format!(
                    "sortType {t:?}: string or number"
                )))
            }
        };
        if params.limit == Some(0) {
            return Err(ApiError::InvalidArgument("limit must be at least 1".into()));
        }
        Ok(Self {
            by,
            descending,
            numeric,
        })
    }

    fn apply(
        &self,
        mut views: Vec<ChannelView>,
        params: &ListParams,
    ) -> Result<Vec<ChannelView>, ApiError> {
        if let Some(by) = &self.by {
            let mut keyed: Vec<(Option<Value>, ChannelView)> =
                views.into_iter().map(|v| (sort_key(&v, by), v)).collect();
            keyed.sort_by(|(a, _), (b, _)| self.compare(a.as_ref(), b.as_ref()));
            views = keyed.into_iter().map(|(_, v)| v).collect();
        }
        let offset = params.offset.unwrap_or(0);
        let limit = params.limit.unwrap_or(usize::MAX);
        Ok(views.into_iter().skip(offset).take(limit).collect())
    }

    /// Values in the wanted direction; a channel without the field always comes last.
    fn compare(&self, a: Option<&Value>, b: Option<&Value>) -> Ordering {
        let (a, b) = match (a, b) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Greater,
            (Some(_), None) => return Ordering::Less,
            (Some(a), Some(b)) => (a, b),
        };
        let ordering = match self.numeric {
            true => {
                let number = |v: &Value| text(v).parse::<f64>().ok();
                match (number(a), number(b)) {
                    (Some(x), Some(y)) => x.total_cmp(&y),
                    (Some(_), None) => return Ordering::Less,
                    (None, Some(_)) => return Ordering::Greater,
                    (None, None) => Ordering::Equal,
                }
            }
            false => text(a).cmp(&text(b)),
        };
        match self.descending {
            true => ordering.reverse(),
            false => ordering,
        }
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn sort_key(view: &ChannelView, by: &str) -> Option<Value> {
    let value = serde_json::to_value(view).ok()?;
    match by.strip_prefix("protocolSpecificInformation.") {
        Some(key) => value["protocolSpecificInformation"].get(key).cloned(),
        None => value.get(by).cloned(),
    }
}
