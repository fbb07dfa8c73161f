//! `/rest/v1/events`: the selected sites' audit events and session lifecycle events as a
//! server-sent-events stream, each event's `id:` the reader's place in every site's feed, so
//! that `Last-Event-ID` (or `last_event_id`, for a browser's first connect) resumes it at any
//! node without a loss or a repeat.
//!
//! Administrators only, with the audit listing's filters and domain scope. Owns the stream's
//! HTTP shape; reading the feeds is `events::stream`'s.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::Response;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::audit::FilterFields;
use super::extract::Query;
use super::openapi::AdminErrors;
use super::scatter::{self, visible_domain};
use super::{ApiError, ApiState};
use crate::events::cursor::StreamCursor;
use crate::events::stream::{self, Item, Opening, Sources};
use crate::iam::Caller;
use crate::state::directory::AdminScope;

/// A comment line this often keeps the stream (and every proxy on its way) open; it is also
/// how a node streaming for another site shows that it is still there.
const KEEP_ALIVE: Duration = Duration::from_secs(1);

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(routes!(events))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct StreamParams {
    /// `current` (default), `all`, or a JSON list of site names.
    sites: Option<String>,
    /// Without an id to resume from: the events from this time on (RFC 3339); otherwise from
    /// now.
    since: Option<String>,
    /// Events at or before this time (RFC 3339).
    until: Option<String>,
    /// `login@domain`, a user id, or a service token's `sub` (lifecycle events have none).
    actor: Option<String>,
    /// An action (`session.ended`), or a prefix ending in `.*` (`session.*`).
    action: Option<String>,
    /// The event's target; a lifecycle event's is its user (`login@domain`), and its session,
    /// connection or channel id also matches.
    target: Option<String>,
    /// `ok`, `refused` or `failed`.
    outcome: Option<String>,
    /// Where to resume, as the `Last-Event-ID` header says (which wins when both are given).
    last_event_id: Option<String>,
}

impl StreamParams {
    fn fields(&self) -> FilterFields<'_> {
        FilterFields {
            since: self.since.as_deref(),
            until: self.until.as_deref(),
            actor: self.actor.as_deref(),
            action: self.action.as_deref(),
            target: self.target.as_deref(),
            outcome: self.outcome.as_deref(),
        }
    }

    /// The filters for another site's stream.
    fn query(&self) -> Vec<(String, String)> {
        let pairs = [
            ("until", &self.until),
            ("actor", &self.actor),
            ("action", &self.action),
            ("target", &self.target),
            ("outcome", &self.outcome),
        ];
        pairs
            .into_iter()
            .filter_map(|(name, value)| value.clone().map(|v| (name.to_string(), v)))
            .collect()
    }
}

/// The audit and session lifecycle events of the selected sites, as they happen.
#[utoipa::path(get, path = "/rest/v1/events", tag = "events", params(StreamParams,
        ("Last-Event-ID" = Option<String>, Header, description = "The `id:` of the last event received: the stream resumes after it")),
    responses(
        (status = 200, description = "A text/event-stream: each event's `data:` a JSON object (`id`, `site`, `seq`, `kind`, `time`, `action`, `target`, `actor`, `outcome`, `details`, and an audit event's other fields); `event: notice` for a site that does not answer or a gap in a trimmed feed", content_type = "text/event-stream", body = String),
        AdminErrors
    ))]
async fn events(
    State(state): State<ApiState>,
    caller: Caller,
    headers: HeaderMap,
    Query(params): Query<StreamParams>,
) -> Result<Response, ApiError> {
    let domain = visible_domain(&caller, None)?.map(|d| d.to_string());
    let mut filter = params.fields().filter(domain.clone())?;
    let plan = scatter::plan_query(&state, &caller, params.sites.as_deref())?;
    let resume = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .or_else(|| params.last_event_id.clone());
    let cursor = match resume {
        Some(raw) => raw
            .parse::<StreamCursor>()
            .map_err(ApiError::InvalidArgument)?,
        None => StreamCursor {
            seen: Default::default(),
            from_ms: Some(filter.since_ms.unwrap_or_else(sessionplane_cluster::now_ms)),
        },
    };
    // Where to start is the cursor's; `since` only chooses it when there is none.
    filter.since_ms = None;
    let token = token_source(&state, &caller, domain);
    let sources = Sources {
        site: state.site.clone(),
        rendered: state.rendered_events.clone(),
        advanced: state.feed_advanced.clone(),
        federation: state.federation.clone(),
        token,
    };
    let opening = Opening {
        current: state.federation.sites.current.clone(),
        local: plan.local,
        remote: plan.remote.clone(),
        cursor: cursor.clone(),
        filter,
        query: params.query(),
    };
    let open = stream::open(sources, opening);
    let watch = SessionWatch {
        site: state.site.clone(),
        session: caller.session().map(|s| s.session_id),
        next_check: tokio::time::Instant::now() + SESSION_CHECK,
    };
    let writer = Writer {
        open,
        cursor,
        watch,
        quiet_until: tokio::time::Instant::now() + KEEP_ALIVE,
    };
    let body = futures_util::stream::unfold(writer, |mut writer| async {
        let chunk = writer.next_chunk().await?;
        Some((Ok::<_, Infallible>(chunk), writer))
    });
    let mut response = Response::new(axum::body::Body::from_stream(body));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Proxies in front (nginx) would hold the events back to fill their buffer.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// At most this many events go out in one write.
const EVENTS_PER_CHUNK: usize = 256;

/// Turns the stream's items into SSE text, as many as are ready in one chunk (one write to
/// the socket rather than one per event).
struct Writer {
    open: stream::Open,
    cursor: StreamCursor,
    watch: SessionWatch,
    /// When a keep-alive comment is due if nothing else went out.
    quiet_until: tokio::time::Instant,
}

impl Writer {
    /// The next chunk; none once the stream ends.
    async fn next_chunk(&mut self) -> Option<Bytes> {
        let first = loop {
            tokio::select! {
                item = self.open.items.recv() => break item?,
                // Dropped: the reader resumes from the last id it has.
                _ = self.open.too_slow.notified() => return None,
                _ = tokio::time::sleep_until(self.quiet_until) => {
                    self.quiet_until = tokio::time::Instant::now() + KEEP_ALIVE;
                    return Some(Bytes::from_static(b": keep-alive\n\n"));
                }
                _ = tokio::time::sleep_until(self.watch.next_check), if self.watch.session.is_some() => {
                    // The reader's session ended (killed, contained, expired): so does its
                    // stream.
                    if self.watch.ended() {
                        return None;
                    }
                }
            }
        };
        let mut text = Vec::with_capacity(512);
        self.write(&mut text, first);
        for _ in 1..EVENTS_PER_CHUNK {
            match self.open.items.try_recv() {
                Ok(item) => self.write(&mut text, item),
                Err(_) => break,
            }
        }
        self.quiet_until = tokio::time::Instant::now() + KEEP_ALIVE;
        Some(Bytes::from(text))
    }

    fn write(&mut self, text: &mut Vec<u8>, item: Item) {
        use std::io::Write as _;
        let data: Arc<str> = match item {
            Item::Event { site, seq, data } => {
                self.cursor.saw(&site, seq);
                let _ = writeln!(text, "id: {}", self.cursor);
                data
            }
            Item::Notice(json) => {
                text.extend_from_slice(b"event: notice\n");
                json.to_string().into()
            }
        };
        // JSON text has no raw newline, but a data line must never carry one.
        for line in data.split('\n') {
            text.extend_from_slice(b"data: ");
            text.extend_from_slice(line.as_bytes());
            text.push(b'\n');
        }
        text.push(b'\n');
    }
}

/// How often a stream looks whether its reader's session still lives.
const SESSION_CHECK: Duration = Duration::from_secs(1);

/// The session a stream is read under (none: a service or another site's node), and when to
/// look next whether it still lives.
struct SessionWatch {
    site: crate::state::SiteStore,
    session: Option<uuid::Uuid>,
    next_check: tokio::time::Instant,
}

impl SessionWatch {
    fn ended(&mut self) -> bool {
        self.next_check += SESSION_CHECK;
        self.session
            .is_some_and(|session| self.site.get_local(session).is_none())
    }
}

/// The caller's federation token, made fresh for each call the stream makes to another site.
fn token_source(state: &ApiState, caller: &Caller, domain: Option<String>) -> stream::TokenSource {
    let iam = state.iam.clone();
    let on_behalf_of = caller.describe();
    let scoped = matches!(caller.scope(), Some(AdminScope::Domain(_)));
    Arc::new(move || {
        let domain = if scoped { domain.clone() } else { None };
        iam.federation_token(&on_behalf_of, domain).ok()
    })
}
