//! The `ws` logical role's listing, over the selected sites: every live session once as
//! `http`, and once more as `websocket` with its connections when it has any. Items come in
//! (session id, http before websocket) order, from a frozen [`SiteView`], so a listing pages
//! with a stable cursor and streams at any size without holding a lock.
//!
//! Owns the listing's mechanics: its items and filter, the cursor in one site, the page token
//! over several (`site~cursor`), a page gathered site after site, and the whole list streamed
//! as one JSON array. In `api` because it builds HTTP bodies and pages through [`Scatter`]; the
//! handler parses and authorizes, and the sessions themselves are the site store's.

use std::fmt;
use std::ops::Bound;
use std::str::FromStr;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::value::RawValue;
use sessionplane_cluster::now_ms;
use uuid::Uuid;

use super::scatter::{decoded, Missing, Read, Scatter};
use super::{ApiError, ApiState};
use crate::federation::splice::splice;
use crate::federation::{Plan, SiteRequest};
use crate::gateway::Gateway;
use crate::iam::Caller;
use crate::model::{Connection, Session};
use crate::state::site::SiteView;

/// The largest page a client may ask for; without `limit` the whole list streams.
pub const MAX_LIMIT: usize = 10_000;
/// Items per chunk of a streamed listing.
const CHUNK_ITEMS: usize = 512;
pub const NEXT_PAGE_HEADER: &str = "x-next-page-token";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ItemKind {
    Http,
    Websocket,
}

impl ItemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Websocket => "websocket",
        }
    }
}

impl FromStr for ItemKind {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        match raw {
            "http" => Ok(Self::Http),
            "websocket" => Ok(Self::Websocket),
            other => Err(format!(
                "session_type {other:?}: expected \"http\" or \"websocket\""
            )),
        }
    }
}

/// Where a page ends: the last item given. Shown to clients as an opaque page token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    session_id: Uuid,
    kind: ItemKind,
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = match self.kind {
            ItemKind::Http => 'h',
            ItemKind::Websocket => 'w',
        };
        write!(f, "{}{tag}", self.session_id.simple())
    }
}

impl FromStr for Cursor {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, String> {
        let malformed = || format!("page_token {raw:?} is not one this API gave");
        let (id, tag) = raw.split_at_checked(32).ok_or_else(malformed)?;
        let kind = match tag {
            "h" => ItemKind::Http,
            "w" => ItemKind::Websocket,
            _ => return Err(malformed()),
        };
        let session_id = Uuid::try_parse(id).map_err(|_| malformed())?;
        Ok(Self { session_id, kind })
    }
}

/// A user named by id or by login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserMatch {
    Id(Uuid),
    Login(String),
}

impl UserMatch {
    pub fn parse(raw: &str) -> Self {
        match Uuid::try_parse(raw) {
            Ok(id) => Self::Id(id),
            Err(_) => Self::Login(raw.to_string()),
        }
    }

    fn matches(&self, session: &Session) -> bool {
        match self {
            Self::Id(id) => session.user_id == *id,
            Self::Login(login) => *session.login == **login,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Filter {
    pub domain: Option<String>,
    pub user: Option<UserMatch>,
    pub kind: Option<ItemKind>,
}

impl Filter {
    /// The filter of a request's query: the domain the caller may see, a user, a kind.
    pub fn from_query(
        domain: Option<String>,
        user: Option<&str>,
        session_type: Option<&str>,
    ) -> Result<Self, ApiError> {
        Ok(Self {
            domain,
            user: user.map(UserMatch::parse),
            kind: session_type
                .map(str::parse::<ItemKind>)
                .transpose()
                .map_err(ApiError::InvalidArgument)?,
        })
    }

    fn matches(&self, session: &Session) -> bool {
        self.domain.as_deref().is_none_or(|d| *session.domain == *d)
            && self.user.as_ref().is_none_or(|u| u.matches(session))
    }

    fn wants(&self, kind: ItemKind) -> bool {
        self.kind.is_none_or(|k| k == kind)
    }
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ConnectionItem<'a> {
    pub conn_id: Uuid,
    pub is_pid_alive: bool,
    pub node: &'a str,
    pub pid: String,
}

/// A session as the `ws` logical role lists it: once as `http`, and once more as `websocket`
/// with its connections when it has open websockets.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SessionItem<'a> {
    pub domain: &'a str,
    pub login: &'a str,
    pub session_id: Uuid,
    pub session_type: &'static str,
    pub site: &'a str,
    pub ttl: u64,
    pub user_id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections: Option<Vec<ConnectionItem<'a>>>,
}

/// One listing request over a frozen view.
pub struct Listing<'a, Alive> {
    pub view: &'a SiteView,
    pub filter: &'a Filter,
    pub site: &'a str,
    pub now_ms: u64,
    /// Whether a connection's holder still has it (`is_pid_alive`).
    pub alive: Alive,
}

impl<'a, Alive: Fn(&Connection) -> bool> Listing<'a, Alive> {
    /// At most `limit` items after `after`, and the cursor of the last one when more may follow.
    pub fn page(
        &self,
        after: Option<Cursor>,
        limit: usize,
    ) -> (Vec<SessionItem<'a>>, Option<Cursor>) {
        let from = after.map_or(Bound::Unbounded, |c| Bound::Included(c.session_id));
        let mut items = Vec::new();
        let mut last = None;
        // A user given by id pages through the by-user index; anything else walks every session.
        let sessions: Box<dyn Iterator<Item = &'a Session>> = match &self.filter.user {
            Some(UserMatch::Id(user_id)) => Box::new(self.view.user_sessions_from(*user_id, from)),
            _ => Box::new(self.view.sessions_from(from)),
        };
        for session in sessions {
            if !session.is_live(self.now_ms) || !self.filter.matches(session) {
                continue;
            }
            for kind in [ItemKind::Http, ItemKind::Websocket] {
                let position = Cursor {
                    session_id: session.session_id,
                    kind,
                };
                let already_given = after.is_some_and(|a| {
                    (a.session_id, a.kind) >= (position.session_id, position.kind)
                });
                if already_given || !self.filter.wants(kind) {
                    continue;
                }
                let Some(item) = self.item(session, kind) else {
                    continue;
                };
                if items.len() == limit {
                    return (items, last);
                }
                items.push(item);
                last = Some(position);
            }
        }
        (items, None)
    }

    fn item(&self, session: &'a Session, kind: ItemKind) -> Option<SessionItem<'a>> {
        let connections = match kind {
            ItemKind::Http => None,
            ItemKind::Websocket => {
                let connections: Vec<ConnectionItem<'a>> = self
                    .view
                    .connections_of(session.session_id)
                    .map(|c| ConnectionItem {
                        conn_id: c.conn_id,
                        is_pid_alive: (self.alive)(c),
                        node: &c.node,
                        pid: c.pid.to_string(),
                    })
                    .collect();
                if connections.is_empty() {
                    return None;
                }
                Some(connections)
            }
        };
        Some(SessionItem {
            domain: &session.domain,
            login: &session.login,
            session_id: session.session_id,
            session_type: kind.as_str(),
            site: self.site,
            ttl: session.ttl_secs(self.now_ms),
            user_id: session.user_id,
            connections,
        })
    }
}

/// The `limit` a client asked for: a page of at most that many items, or (none) the whole list.
pub fn limit(asked: Option<usize>) -> Result<Option<usize>, ApiError> {
    match asked {
        Some(0) => Err(ApiError::InvalidArgument("limit must be at least 1".into())),
        Some(n) if n > MAX_LIMIT => Err(ApiError::InvalidArgument(format!(
            "limit is at most {MAX_LIMIT}; leave it out to stream every session"
        ))),
        limit => Ok(limit),
    }
}

/// Where a page starts: a site, and a place in it (none: its beginning). Written `site~cursor`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageToken {
    site: String,
    after: Option<Cursor>,
}

impl FromStr for PageToken {
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

impl fmt::Display for PageToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.after {
            Some(cursor) => write!(f, "{}~{cursor}", self.site),
            None => write!(f, "{}~", self.site),
        }
    }
}

/// One listing request, parsed and authorized.
pub struct Request {
    pub filter: Filter,
    pub token: Option<PageToken>,
    /// A page of at most this many items; none: the whole list, streamed.
    pub limit: Option<usize>,
    /// The same listing for another site (its filters as the caller may see them).
    pub remote: SiteRequest,
    pub allow_partial: bool,
}

/// Lists the sessions of the sites `plan` selects: a page, or the whole list streamed.
pub async fn respond(
    state: &ApiState,
    caller: &Caller,
    plan: &Plan,
    request: Request,
) -> Result<Response, ApiError> {
    let current = state.federation.sites.current.clone();
    let sites = plan.sites(&current);
    if let Some(token) = &request.token {
        if !sites.contains(&token.site) {
            return Err(ApiError::InvalidArgument(format!(
                "page_token is for site {}, which this request does not select",
                token.site
            )));
        }
    }
    let view = match plan.local {
        true => state.site.read(|s, _| s.view()).await?,
        false => SiteView::default(),
    };
    let listed = Listed {
        view,
        filter: request.filter,
        site: current,
        now_ms: now_ms(),
        gateway: state.gateway.clone(),
    };
    let read = Read {
        allow_partial: request.allow_partial,
    };
    let after = request.token.as_ref().and_then(|t| t.after);
    match request.limit {
        Some(limit) => {
            let pages = Pages {
                state,
                caller,
                listed: &listed,
                remote: request.remote,
                read,
            };
            pages.page(&sites, request.token, limit).await
        }
        None if plan.remote.is_empty() => Ok(listed.stream(after)),
        None => {
            let local = async {
                tokio::task::spawn_blocking(move || listed.render(after))
                    .await
                    .map_err(|e| ApiError::Server(e.to_string()))?
            };
            let scatter = Scatter::new(state, caller, plan, request.remote, read);
            let (parts, missing) = scatter.stream(local).await?;
            let body = Body::from_stream(splice(parts));
            Ok(missing.mark(json_response(body)))
        }
    }
}

fn json_response(body: impl Into<Body>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.into(),
    )
        .into_response()
}

/// One page over several sites: the sites in name order, each from where the last page left.
struct Pages<'a> {
    state: &'a ApiState,
    caller: &'a Caller,
    listed: &'a Listed,
    remote: SiteRequest,
    read: Read,
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
        let mut missing = Missing::default();
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
        let mut response = json_response(body);
        if let Some(next) = next.and_then(|n| HeaderValue::from_str(&n.to_string()).ok()) {
            response.headers_mut().insert(NEXT_PAGE_HEADER, next);
        }
        Ok(missing.mark(response))
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
        let scatter = Scatter::new(self.state, self.caller, &plan, request, self.read);
        let Some(answer) = scatter.ask_the_one_site().await? else {
            return Ok(None);
        };
        let items: Vec<Box<RawValue>> = decoded(site, &answer)?;
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
            alive: |c: &Connection| gateway.is_pid_alive(c),
        };
        listing.page(after, limit)
    }

    /// Every item after `after`, comma-separated without brackets.
    fn render(self, mut after: Option<Cursor>) -> Result<Bytes, ApiError> {
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
                return Ok(Bytes::from(bytes));
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
        json_response(Body::from_stream(chunks))
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn cursor() -> impl Strategy<Value = Cursor> {
        (any::<u128>(), any::<bool>()).prop_map(|(id, websocket)| Cursor {
            session_id: Uuid::from_u128(id),
            kind: match websocket {
                true => ItemKind::Websocket,
                false => ItemKind::Http,
            },
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn cursors_round_trip(cursor in cursor()) {
            prop_assert_eq!(cursor.to_string().parse::<Cursor>(), Ok(cursor));
        }

        /// Any token is a cursor or refused; a cursor is read only from what this API writes
        /// (up to the case of its hex digits).
        #[test]
        fn any_token_is_a_cursor_or_refused(raw in any::<String>()) {
            if let Ok(cursor) = raw.parse::<Cursor>() {
                prop_assert!(cursor.to_string().eq_ignore_ascii_case(&raw));
            }
        }

        /// A token this API writes (a site name as the configuration allows, and a cursor or
        /// none) reads back as written.
        #[test]
        fn page_tokens_round_trip(
            site in "[a-z0-9_-]{1,48}",
            after in proptest::option::of(cursor()),
        ) {
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

        /// A written cursor with one character changed, cut or lengthened is refused or reads
        /// as another cursor, never a panic.
        #[test]
        fn damaged_cursors_are_refused_or_read_whole(
            cursor in cursor(),
            at in any::<prop::sample::Index>(),
            c in any::<char>(),
            how in 0u8..3,
        ) {
            let mut chars: Vec<char> = cursor.to_string().chars().collect();
            let i = at.index(chars.len());
            match how {
                0 => chars[i] = c,
                1 => chars.truncate(i),
                _ => chars.insert(i, c),
            }
            let damaged: String = chars.into_iter().collect();
            if let Ok(read) = damaged.parse::<Cursor>() {
                prop_assert!(read.to_string().eq_ignore_ascii_case(&damaged));
            }
        }
    }
}
