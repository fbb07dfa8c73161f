//! `/rest/v1/master/logicalroles/ws/sessions`: list the sessions of the selected sites, log a
//! user out everywhere but the caller's own session, kill one session. Administrators only; a
//! domain administrator sees and acts on its own domain.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sessionplane_cluster::now_ms;
use uuid::Uuid;

use super::extract::{Json, Path, Query};
use super::{ApiError, ApiState};
use crate::gateway::Gateway;
use crate::iam::Caller;
use crate::model::{CloseReason, DomainName};
use crate::sessions::listing::{Cursor, Filter, ItemKind, Listing, SessionItem, UserMatch};
use crate::state::directory::AdminScope;
use crate::state::site::{SiteCommand, SiteReply, SiteView};

const PATH: &str = "/rest/v1/master/logicalroles/ws/sessions";
/// The largest page a client may ask for; without `limit` the whole list streams.
pub const MAX_LIMIT: usize = 10_000;
/// Items per chunk of a streamed listing.
const CHUNK_ITEMS: usize = 512;
pub const NEXT_PAGE_HEADER: &str = "x-next-page-token";

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route(PATH, get(list).post(logout))
        .route(&format!("{PATH}/{{session_id}}"), delete(kill))
}

#[derive(Deserialize)]
struct ListParams {
    sites: Option<String>,
    domain: Option<String>,
    user: Option<String>,
    session_type: Option<String>,
    limit: Option<usize>,
    page_token: Option<String>,
}

/// The domain a caller may look at: everything for a global administrator, its own domain for
/// a domain administrator.
fn visible_domain(
    caller: &Caller,
    requested: Option<DomainName>,
) -> Result<Option<DomainName>, ApiError> {
    match (caller.scope(), requested) {
        (Some(AdminScope::Global), requested) => Ok(requested),
        (Some(AdminScope::Domain(own)), None) => Ok(Some(own)),
        (Some(_), Some(requested)) => {
            caller.require_admin_of(&requested)?;
            Ok(Some(requested))
        }
        (None, _) => Err(ApiError::Forbidden("administrators only".into())),
    }
}

async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    Query(params): Query<ListParams>,
) -> Result<Response, ApiError> {
    let selector = state.sites.parse_query(params.sites.as_deref())?;
    let requested = params.domain.as_deref().map(str::parse).transpose()?;
    let domain = visible_domain(&caller, requested)?;
    let filter = Filter {
        domain: domain.map(|d| d.to_string()),
        user: params.user.as_deref().map(UserMatch::parse),
        kind: params
            .session_type
            .as_deref()
            .map(str::parse::<ItemKind>)
            .transpose()
            .map_err(ApiError::InvalidArgument)?,
    };
    let after = params
        .page_token
        .as_deref()
        .map(str::parse::<Cursor>)
        .transpose()
        .map_err(ApiError::InvalidArgument)?;
    let limit = match params.limit {
        Some(0) => return Err(ApiError::InvalidArgument("limit must be at least 1".into())),
        Some(n) if n > MAX_LIMIT => {
            return Err(ApiError::InvalidArgument(format!(
                "limit is at most {MAX_LIMIT}; leave it out to stream every session"
            )))
        }
        limit => limit,
    };
    let view = match state
        .sites
        .resolve(&selector)
        .contains(&state.sites.current)
    {
        true => state.gateway.site.read(|s, _| s.view()).await?,
        false => SiteView::default(),
    };
    let listed = Listed {
        view,
        filter,
        site: state.sites.current.clone(),
        now_ms: now_ms(),
        gateway: state.gateway.clone(),
    };
    match limit {
        Some(limit) => Ok(listed.page(after, limit)),
        None => Ok(listed.stream(after)),
    }
}

/// A listing's owned inputs, so that a streamed body can outlive the handler.
struct Listed {
    view: SiteView,
    filter: Filter,
    site: String,
    now_ms: u64,
    gateway: Arc<Gateway>,
}

impl Listed {
    fn page_of(
        &self,
        after: Option<Cursor>,
        limit: usize,
    ) -> (Vec<SessionItem<'_>>, Option<Cursor>) {
        let gateway = &self.gateway;
        let listing = Listing {
            view: &self.view,
            filter: &self.filter,
            site: &self.site,
            now_ms: self.now_ms,
            alive: |c: &crate::model::Connection| gateway.is_pid_alive(c),
        };
        listing.page(after, limit)
    }

    fn page(&self, after: Option<Cursor>, limit: usize) -> Response {
        let (items, next) = self.page_of(after, limit);
        let mut response = axum::Json(items).into_response();
        if let Some(next) = next.and_then(|n| HeaderValue::from_str(&n.to_string()).ok()) {
            response.headers_mut().insert(NEXT_PAGE_HEADER, next);
        }
        response
    }

    /// The whole list as one JSON array, serialized chunk by chunk as the client reads it.
    fn stream(self, after: Option<Cursor>) -> Response {
        let start = Streaming {
            listed: self,
            after,
            opened: false,
            wrote_any: false,
        };
        let chunks = futures_util::stream::unfold(Some(start), |streaming| async move {
            let mut streaming = streaming?;
            let (chunk, more) = streaming.next_chunk();
            Some((chunk, more.then_some(streaming)))
        });
        (
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            Body::from_stream(chunks),
        )
            .into_response()
    }
}

struct Streaming {
    listed: Listed,
    after: Option<Cursor>,
    opened: bool,
    wrote_any: bool,
}

impl Streaming {
    /// The next piece of the array, and whether another follows.
    fn next_chunk(&mut self) -> (Result<Bytes, std::io::Error>, bool) {
        let (items, next) = self.listed.page_of(self.after, CHUNK_ITEMS);
        let mut bytes = Vec::with_capacity(items.len() * 256 + 2);
        if !self.opened {
            bytes.push(b'[');
        }
        for item in &items {
            if self.wrote_any {
                bytes.push(b',');
            }
            if let Err(e) = serde_json::to_writer(&mut bytes, item) {
                return (Err(std::io::Error::other(e)), false);
            }
            self.wrote_any = true;
        }
        drop(items);
        self.opened = true;
        self.after = next;
        if next.is_none() {
            bytes.push(b']');
        }
        (Ok(Bytes::from(bytes)), next.is_some())
    }
}

#[derive(Deserialize)]
struct LogoutBody {
    action: String,
    domain: String,
    user: String,
    #[serde(default)]
    sites: Option<Value>,
}

#[derive(Serialize)]
struct LogoutAnswer {
    status: &'static str,
    closed: usize,
    sites: BTreeMap<String, usize>,
}

async fn logout(
    State(state): State<ApiState>,
    caller: Caller,
    Json(body): Json<LogoutBody>,
) -> Result<axum::Json<LogoutAnswer>, ApiError> {
    if body.action != "logout" {
        return Err(ApiError::InvalidArgument(format!(
            "action {:?}: the only action is \"logout\"",
            body.action
        )));
    }
    let selector = state.sites.parse_value(body.sites.as_ref())?;
    let domain: DomainName = body.domain.parse()?;
    caller.require_admin_of(&domain)?;
    let user = state.iam.find_user_in(&domain, &body.user).await?;
    let except = caller.session().map(|s| s.session_id);
    let mut sites = BTreeMap::new();
    for site in state.sites.resolve(&selector) {
        if site == state.sites.current {
            let closed = state
                .iam
                .close_user_sessions(&user, except, CloseReason::Logout)
                .await?;
            sites.insert(site, closed);
        }
    }
    tracing::info!(caller = %caller.describe(), user = %user.address(), "logged out a user's sessions");
    Ok(axum::Json(LogoutAnswer {
        status: "logged out all sessions but current",
        closed: sites.values().sum(),
        sites,
    }))
}

#[derive(Deserialize)]
struct KillParams {
    sites: Option<String>,
}

async fn kill(
    State(state): State<ApiState>,
    caller: Caller,
    Path(raw_id): Path<String>,
    Query(params): Query<KillParams>,
) -> Result<StatusCode, ApiError> {
    let session_id = Uuid::try_parse(&raw_id)
        .map_err(|_| ApiError::InvalidArgument(format!("{raw_id:?} is not a session id")))?;
    let selector = state.sites.parse_query(params.sites.as_deref())?;
    if caller.scope().is_none() {
        return Err(ApiError::Forbidden("administrators only".into()));
    }
    let not_found = || ApiError::NotFound(format!("no session {session_id}"));
    if !state
        .sites
        .resolve(&selector)
        .contains(&state.sites.current)
    {
        return Err(not_found());
    }
    let session = state
        .gateway
        .site
        .get(session_id)
        .await?
        .ok_or_else(not_found)?;
    let domain: DomainName = session.domain.parse()?;
    caller.require_admin_of(&domain)?;
    let command = SiteCommand::DeleteSession {
        session_id,
        reason: CloseReason::Revoked,
    };
    match state.gateway.site.execute(&command).await? {
        SiteReply::Deleted(_) => {
            tracing::info!(caller = %caller.describe(), %session_id, "killed a session");
            Ok(StatusCode::NO_CONTENT)
        }
        SiteReply::NotFound => Err(not_found()),
        other => Err(ApiError::Server(format!("unexpected site reply {other:?}"))),
    }
}
