//! `/rest/v1/master/logicalroles/ws/sessions`: list the sessions of the selected sites, log a
//! user out everywhere but the caller's own session, kill one session. Administrators only; a
//! domain administrator sees and acts on its own domain.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;
use sessionplane_cluster::now_ms;
use uuid::Uuid;

use super::extract::{Json, Path, Query, Revoker};
use super::openapi::{AdminErrors, ErrorSchema};
use super::{fanout, ApiError, ApiState};
use crate::federation::splice::{splice, Part};
use crate::federation::{Plan, Received, SiteRequest, Verb};
use crate::gateway::Gateway;
use crate::iam::Caller;
use crate::model::task::{answer, TaskKind};
use crate::model::{CloseReason, DomainName};
use crate::sessions::listing::SessionItem as SessionItemSchema;
use crate::sessions::listing::{Cursor, Filter, ItemKind, Listing, SessionItem, UserMatch};
use crate::state::directory::AdminScope;
use crate::state::site::{Authority, SiteView};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

const PATH: &str = "/rest/v1/master/logicalroles/ws/sessions";
/// The largest page a client may ask for; without `limit` the whole list streams.
pub const MAX_LIMIT: usize = 10_000;
/// Items per chunk of a streamed listing.
const CHUNK_ITEMS: usize = 512;
pub const NEXT_PAGE_HEADER: &str = "x-next-page-token";

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

/// Where a page starts: a site, and a place in it (none: its beginning). Written `site~cursor`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct PageToken {
    site: String,
    after: Option<Cursor>,
}

impl std::str::FromStr for PageToken {
    type Err = ApiError;

    fn from_str(raw: &str) -> Result<Self, ApiError> {
        let malformed =
            || ApiError::InvalidArgument(format!("page_token {raw:?} is not one this API gave"));
        let (site, cursor) = raw.split_once('~').ok_or_else(malformed)?;
        let after = match cursor {
            "" => None,
            cursor => Some(cursor.parse::<Cursor>().map_err(|_| malformed())?),
        };
        Ok(Self {
            site: site.to_string(),
            after,
        })
    }
}

impl std::fmt::Display for PageToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.after {
            Some(cursor) => write!(f, "{}~{cursor}", self.site),
            None => write!(f, "{}~", self.site),
        }
    }
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
    let filter = Filter {
        domain: domain.as_ref().map(|d| d.to_string()),
        user: params.user.as_deref().map(UserMatch::parse),
        kind: params
            .session_type
            .as_deref()
            .map(str::parse::<ItemKind>)
            .transpose()
            .map_err(ApiError::InvalidArgument)?,
    };
    let token = params
        .page_token
        .as_deref()
        .map(str::parse::<PageToken>)
        .transpose()?;
    let limit = match params.limit {
        Some(0) => return Err(ApiError::InvalidArgument("limit must be at least 1".into())),
        Some(n) if n > MAX_LIMIT => {
            return Err(ApiError::InvalidArgument(format!(
                "limit is at most {MAX_LIMIT}; leave it out to stream every session"
            )))
        }
        limit => limit,
    };
    let plan = fanout::plan(&state, &caller, &selector)?;
    let current = state.federation.sites.current.clone();
    let sites = plan.sites(&current);
    if let Some(token) = &token {
        if !sites.contains(&token.site) {
            return Err(ApiError::InvalidArgument(format!(
                "page_token is for site {}, which this request does not select",
                token.site
            )));
        }
    }
    let view = match plan.local {
        true => state.gateway.site.read(|s, _| s.view()).await?,
        false => SiteView::default(),
    };
    let listed = Listed {
        view,
        filter,
        site: current,
        now_ms: now_ms(),
        gateway: state.gateway.clone(),
    };
    let remote = params.for_remote(&domain);
    match limit {
        Some(limit) => {
            let pages = Pages {
                state: &state,
                caller: &caller,
                listed: &listed,
                remote,
                allow_partial: params.allow_partial,
            };
            pages.page(&sites, token, limit).await
        }
        None if plan.remote.is_empty() => Ok(listed.stream(token.as_ref().and_then(|t| t.after))),
        None => {
            let after = token.as_ref().and_then(|t| t.after);
            let local = async {
                match plan.local {
                    true => tokio::task::spawn_blocking(move || listed.render(after))
                        .await
                        .map_err(|e| ApiError::Server(e.to_string()))?
                        .map(Some),
                    false => Ok(None),
                }
            };
            let (local, answers) = tokio::join!(
                local,
                fanout::call_remote_streaming(&state, &caller, &plan, &remote)
            );
            let mut arriving = BTreeMap::new();
            let mut missed = BTreeMap::new();
            for (site, received) in answers? {
                match received {
                    Ok(Received::Streaming(answer)) => {
                        arriving.insert(site, answer);
                    }
                    Ok(Received::Whole(answer)) => return Err(fanout::refusal(&site, &answer)),
                    Err(failure) => {
                        missed.insert(site, failure);
                    }
                }
            }
            let reached: Vec<String> = sites
                .iter()
                .filter(|s| !missed.contains_key(*s))
                .cloned()
                .collect();
            let missing = fanout::judge_listing(&reached, &missed, params.allow_partial)?;
            let mut parts: BTreeMap<String, Part> = BTreeMap::new();
            if let Some((site, items)) = local? {
                parts.insert(site, Part::Ready(items));
            }
            for (site, answer) in arriving {
                parts.insert(site.clone(), Part::Arriving { site, answer });
            }
            let body = Body::from_stream(splice(parts.into_values().collect()));
            let response = (
                [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
                body,
            )
                .into_response();
            Ok(fanout::mark_partial(response, &missing))
        }
    }
}

/// One page over several sites: the sites in name order, each from where the last page left.
struct Pages<'a> {
    state: &'a ApiState,
    caller: &'a Caller,
    listed: &'a Listed,
    remote: SiteRequest,
    allow_partial: bool,
}

impl Pages<'_> {
    async fn page(
        &self,
        sites: &[String],
        token: Option<PageToken>,
        limit: usize,
    ) -> Result<Response, ApiError> {
        let start = token
            .as_ref()
            .map_or(0, |t| sites.iter().position(|s| *s == t.site).unwrap_or(0));
        let mut after = token.and_then(|t| t.after);
        let mut items: Vec<Box<RawValue>> = Vec::new();
        let mut missing = Vec::new();
        let mut next = None;
        for site in sites.iter().skip(start) {
            if items.len() == limit {
                next = Some(PageToken {
                    site: site.clone(),
                    after: None,
                });
                break;
            }
            let want = limit - items.len();
            let (got, more) = match self.site_page(site, after.take(), want).await? {
                Some(page) => page,
                None => {
                    missing.push(site.clone());
                    continue;
                }
            };
            items.extend(got);
            if let Some(more) = more {
                next = Some(more);
                break;
            }
        }
        let body = serde_json::to_vec(&items).map_err(|e| ApiError::Server(e.to_string()))?;
        let mut response = (
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            body,
        )
            .into_response();
        if let Some(next) = next.and_then(|n| HeaderValue::from_str(&n.to_string()).ok()) {
            response.headers_mut().insert(NEXT_PAGE_HEADER, next);
        }
        Ok(fanout::mark_partial(response, &missing))
    }

    /// Up to `want` items of one site after `after`, and where its next page starts; `None`
    /// when the site could not be reached and the caller allows a partial answer.
    async fn site_page(
        &self,
        site: &str,
        after: Option<Cursor>,
        want: usize,
    ) -> Result<Option<(Vec<Box<RawValue>>, Option<PageToken>)>, ApiError> {
        if site == self.listed.site {
            let (items, next) = self.listed.page_of(after, want);
            let raw = items
                .iter()
                .map(serde_json::value::to_raw_value)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| ApiError::Server(e.to_string()))?;
            let next = next.map(|after| PageToken {
                site: site.to_string(),
                after: Some(after),
            });
            return Ok(Some((raw, next)));
        }
        let token = PageToken {
            site: site.to_string(),
            after,
        };
        let request = self
            .remote
            .clone()
            .query("limit", want.to_string())
            .query("page_token", token.to_string());
        let plan = Plan {
            local: false,
            remote: vec![site.to_string()],
        };
        let answers = fanout::call_remote(self.state, self.caller, &plan, &request).await?;
        let (answered, missed) = fanout::split(answers);
        fanout::judge_listing(
            std::slice::from_ref(&self.listed.site),
            &missed,
            self.allow_partial,
        )?;
        let Some(answer) = answered.get(site) else {
            return Ok(None);
        };
        let items: Vec<Box<RawValue>> = fanout::decoded(site, answer)?;
        let next = match answer.next_page.as_deref() {
            Some(raw) => Some(raw.parse::<PageToken>()?),
            None => None,
        };
        Ok(Some((items, next)))
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

    /// Every item after `after`, comma-separated without brackets, with this site's name.
    fn render(self, mut after: Option<Cursor>) -> Result<(String, Bytes), ApiError> {
        let mut bytes = Vec::new();
        loop {
            let (items, next) = self.page_of(after, CHUNK_ITEMS);
            for item in &items {
                if !bytes.is_empty() {
                    bytes.push(b',');
                }
                serde_json::to_writer(&mut bytes, item)
                    .map_err(|e| ApiError::Server(e.to_string()))?;
            }
            after = next;
            if after.is_none() {
                return Ok((self.site.clone(), Bytes::from(bytes)));
            }
        }
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
    let plan = fanout::plan(&state, &caller, &selector)?;
    let domain: DomainName = body.domain.parse()?;
    caller.require_admin_of(&domain)?;
    let authority = caller.authority()?;
    let user = state.iam.find_user_in(&domain, &body.user).await?;
    let except = caller.session().map(|s| s.session_id);
    let request = SiteRequest::new(Verb::Post, PATH).json(&serde_json::json!({
        "action": "logout",
        "domain": domain.to_string(),
        "user": user.user_id.to_string(),
        "sites": "current",
    }));
    let local = async {
        match plan.local {
            true => Some(
                state
                    .iam
                    .close_user_sessions(&user, except, CloseReason::Logout, authority)
                    .await,
            ),
            false => None,
        }
    };
    let (local, answers) =
        tokio::join!(local, fanout::call_remote(&state, &caller, &plan, &request));
    let mut sites = BTreeMap::new();
    if let Some(closed) = local {
        sites.insert(state.federation.sites.current.clone(), closed?);
    }
    let (answered, missed) = fanout::split(answers?);
    for (site, answer) in &answered {
        let remote: LogoutAnswer = fanout::decoded(site, answer)?;
        sites.insert(site.clone(), remote.closed);
    }
    tracing::info!(caller = %caller.describe(), user = %user.address(), ?sites, "logged out a user's sessions");
    if !missed.is_empty() {
        let done = sites
            .iter()
            .map(|(site, n)| (site.clone(), answer::closed(u64::try_from(*n).ok())))
            .collect();
        return Err(fanout::keep_trying(
            &state,
            &caller,
            TaskKind::SessionsLogout,
            request,
            done,
            missed,
        )
        .await);
    }
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
    Path(raw_id): Path<String>,
    Query(params): Query<KillParams>,
) -> Result<StatusCode, ApiError> {
    let started = std::time::Instant::now();
    let session_id = Uuid::try_parse(&raw_id)
        .map_err(|_| ApiError::InvalidArgument(format!("{raw_id:?} is not a session id")))?;
    let selector = state
        .federation
        .sites
        .parse_query(params.sites.as_deref())?;
    let plan = fanout::plan(&state, &caller, &selector)?;
    let authority = caller.authority()?;
    let request = SiteRequest::new(Verb::Delete, format!("{PATH}/{session_id}"));
    let local = async {
        match plan.local {
            true => Some(kill_here(&state, session_id, authority).await),
            false => None,
        }
    };
    let (local, answers) =
        tokio::join!(local, fanout::call_remote(&state, &caller, &plan, &request));
    let mut killed = local.transpose()?.unwrap_or(false);
    let mut done = BTreeMap::new();
    if plan.local && !killed {
        done.insert(
            state.federation.sites.current.clone(),
            answer::killed(false),
        );
    }
    let (answered, missed) = fanout::split(answers?);
    for (site, answer) in &answered {
        match answer.status {
            204 => killed = true,
            404 => {
                done.insert(site.clone(), answer::killed(false));
            }
            _ => return Err(fanout::refusal(site, answer)),
        }
    }
    if killed {
        // A session lives at one site: once it is found, the sites not reached cannot hold it.
        tracing::info!(caller = %caller.describe(), %session_id, "killed a session");
        state.telemetry.revocation("kill", 1, started.elapsed());
        return Ok(StatusCode::NO_CONTENT);
    }
    if !missed.is_empty() {
        return Err(fanout::keep_trying(
            &state,
            &caller,
            TaskKind::SessionKill,
            request,
            done,
            missed,
        )
        .await);
    }
    Err(ApiError::NotFound(format!(
        "no session {session_id} in the selected sites"
    )))
}

/// Ends a session of this site: whether there was one. The caller's authority is checked by
/// the command when it applies: no read first.
async fn kill_here(
    state: &ApiState,
    session_id: Uuid,
    authority: Authority,
) -> Result<bool, ApiError> {
    Ok(state
        .iam
        .end_session(session_id, CloseReason::Revoked, authority)
        .await?)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn cursor() -> impl Strategy<Value = Option<Cursor>> {
        proptest::option::of((any::<u128>(), any::<bool>()).prop_map(|(id, websocket)| {
            let kind = if websocket { 'w' } else { 'h' };
            let written = format!("{}{kind}", Uuid::from_u128(id).simple());
            written.parse::<Cursor>().unwrap()
        }))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// A token this API writes (a site name as the configuration allows, and a cursor or
        /// none) reads back as written.
        #[test]
        fn page_tokens_round_trip(site in "[a-z0-9_-]{1,48}", after in cursor()) {
            let token = PageToken { site, after };
            prop_assert_eq!(token.to_string().parse::<PageToken>().ok(), Some(token));
        }

        /// Any other text is a token or a 400 that quotes it, never a panic.
        #[test]
        fn any_page_token_is_read_or_refused(raw in any::<String>()) {
            match raw.parse::<PageToken>() {
                Ok(token) => {
                    let prefix = token.site + "~";
                    prop_assert!(raw.starts_with(&prefix));
                }
                Err(ApiError::InvalidArgument(why)) => prop_assert!(why.contains("page_token")),
                Err(other) => prop_assert!(false, "{:?}", other),
            }
        }
    }
}
