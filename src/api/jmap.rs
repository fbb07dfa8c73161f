//! `/jmap/ws` (RFC 8887) and `/jmap/eventsource` (RFC 8620 §7.3): JMAP push channels for users,
//! authenticated by a session token (bearer, `RSession` cookie or `?token=`) or by Basic
//! credentials (`login@domain`, checked under the login ban).

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;

use super::extract::{presented_token, Query};
use super::openapi::ErrorSchema;
use super::{ApiError, ApiState};
use crate::gateway::jmap::{self, EventSourceStream};
use crate::iam::{Caller, IamError};
use crate::mail::{AuthError, ChannelHandle, ChannelOpen, MailUser, OpenError};
use crate::model::{Endpoint, Protocol};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(websocket))
        .routes(routes!(event_source))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct TokenParam {
    /// The session token, for clients that cannot send a header.
    token: Option<String>,
}

/// The schemes a refused JMAP client may answer with (RFC 9110 §11.6.1): Basic first, which
/// JMAP clients expect to be offered, then a session token.
const CHALLENGES: [&str; 2] = [
    "Basic realm=\"sessionplane\", charset=\"UTF-8\"",
    "Bearer realm=\"sessionplane\"",
];

/// The error's answer; a 401 carries the challenges.
fn answer(error: ApiError) -> Response {
    let mut response = error.into_response();
    if response.status() == StatusCode::UNAUTHORIZED {
        for challenge in CHALLENGES {
            let value = HeaderValue::from_static(challenge);
            response.headers_mut().append(WWW_AUTHENTICATE, value);
        }
    }
    response
}

fn auth_error(error: AuthError) -> ApiError {
    match error {
        AuthError::Rejected => ApiError::Unauthorized("invalid credentials".into()),
        AuthError::Banned { retry_after_secs } => ApiError::TooManyRequests {
            message: format!("too many failed logins; retry in {retry_after_secs} s"),
            retry_after_secs,
        },
        AuthError::Unavailable(reason) => ApiError::Unavailable(reason),
    }
}

async fn basic_user(
    state: &ApiState,
    encoded: &str,
    remote: SocketAddr,
) -> Result<MailUser, ApiError> {
    let refused = || ApiError::Unauthorized("malformed Basic credentials".into());
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .map_err(|_| refused())?;
    let text = String::from_utf8(decoded).map_err(|_| refused())?;
    let (username, password) = text.split_once(':').ok_or_else(refused)?;
    state
        .mail
        .authenticate(username, password, remote)
        .await
        .map_err(auth_error)
}

/// The user behind a JMAP request.
async fn jmap_user(
    state: &ApiState,
    headers: &HeaderMap,
    query_token: Option<String>,
    remote: SocketAddr,
) -> Result<MailUser, ApiError> {
    let authorization = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok());
    if let Some(encoded) = authorization.and_then(|v| {
        v.strip_prefix("Basic ")
            .or_else(|| v.strip_prefix("basic "))
    }) {
        return basic_user(state, encoded, remote).await;
    }
    let token = presented_token(headers)
        .map(|(token, _)| token)
        .or(query_token)
        .filter(|t| !t.is_empty())
        .ok_or(IamError::MissingCredentials)?;
    match state.iam.authenticate(&token).await? {
        Caller::User { user, .. } => Ok(MailUser {
            username: user.address().to_string(),
            user_id: user.user_id,
        }),
        Caller::Service { .. } | Caller::Federated { .. } => Err(ApiError::Forbidden(
            "a service or federation token is not a mail user".into(),
        )),
    }
}

async fn open(
    state: &ApiState,
    user: MailUser,
    endpoint: Endpoint,
    remote: SocketAddr,
) -> Result<ChannelHandle, ApiError> {
    let open = ChannelOpen {
        protocol: Protocol::Jmap,
        endpoint,
        user,
        remote,
        encrypted: state.tls,
        info: Default::default(),
    };
    state.mail.open_channel(open).await.map_err(|e| match e {
        OpenError::Locked(message) => ApiError::Forbidden(message),
        OpenError::Unavailable(_) => ApiError::Unavailable(e.to_string()),
    })
}

/// JMAP over websocket (RFC 8887, subprotocol `jmap`): `Core/echo`.
#[utoipa::path(get, path = "/jmap/ws", tag = "gateway", params(TokenParam),
    responses((status = 101, description = "Switching protocols"), (status = 400, description = "Bad input", body = ErrorSchema),
        (status = 401, description = "No, or bad, credentials", body = ErrorSchema),
        (status = 403, description = "Not a mail user", body = ErrorSchema),
        (status = 429, description = "Too many failed logins", body = ErrorSchema),
        (status = 503, description = "The site cannot answer now", body = ErrorSchema)))]
async fn websocket(
    State(state): State<ApiState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(params): Query<TokenParam>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let user = jmap_user(&state, &headers, params.token, remote).await;
    match user {
        Ok(user) => upgrade_websocket(&state, user, remote, upgrade).await,
        Err(e) => Err(e),
    }
    .unwrap_or_else(answer)
}

async fn upgrade_websocket(
    state: &ApiState,
    user: MailUser,
    remote: SocketAddr,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let upgrade = upgrade
        .map_err(|r| {
            ApiError::InvalidArgument(format!("expected a websocket upgrade: {}", r.body_text()))
        })?
        .protocols(["jmap"]);
    if upgrade.selected_protocol().is_none() {
        return Err(ApiError::InvalidArgument(
            "the websocket must ask for the \"jmap\" subprotocol (RFC 8887)".into(),
        ));
    }
    let channel = open(state, user, Endpoint::WebSocket, remote).await?;
    let settings = state.gateway.settings.clone();
    Ok(upgrade
        .max_message_size(settings.max_message_bytes)
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(settings.max_message_bytes * 2)
        .on_upgrade(move |socket| jmap::serve_websocket(socket, channel, settings.idle_timeout)))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct EventSourceParams {
    /// The session token, for clients that cannot send a header.
    token: Option<String>,
    types: Option<String>,
    closeafter: Option<String>,
    ping: Option<String>,
}

/// JMAP push (RFC 8620 §7.3): a `state` event, then pings; an endless event stream.
#[utoipa::path(get, path = "/jmap/eventsource", tag = "gateway", params(EventSourceParams),
    responses((status = 200, description = "The event stream", content_type = "text/event-stream"), (status = 400, description = "Bad input", body = ErrorSchema),
        (status = 401, description = "No, or bad, credentials", body = ErrorSchema),
        (status = 403, description = "Not a mail user", body = ErrorSchema),
        (status = 429, description = "Too many failed logins", body = ErrorSchema),
        (status = 503, description = "The site cannot answer now", body = ErrorSchema)))]
async fn event_source(
    State(state): State<ApiState>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Query(params): Query<EventSourceParams>,
) -> Response {
    event_stream(&state, remote, &headers, params)
        .await
        .unwrap_or_else(answer)
}

async fn event_stream(
    state: &ApiState,
    remote: SocketAddr,
    headers: &HeaderMap,
    params: EventSourceParams,
) -> Result<Response, ApiError> {
    // Who asks first: an anonymous caller learns nothing of what else is wrong.
    let user = jmap_user(state, headers, params.token.clone(), remote).await?;
    let close_after_state = match params.closeafter.as_deref() {
        None | Some("no") => false,
        Some("state") => true,
        Some(other) => {
            return Err(ApiError::InvalidArgument(format!(
                "closeafter {other:?}: \"state\" or \"no\""
            )))
        }
    };
    let ping = match params.ping.as_deref() {
        None => 0,
        Some(raw) => raw
            .parse::<u64>()
            .map_err(|_| ApiError::InvalidArgument(format!("ping {raw:?}: a number of seconds")))?,
    };
    if params.types.as_deref().is_some_and(str::is_empty) {
        return Err(ApiError::InvalidArgument(
            "types must not be empty; use *".into(),
        ));
    }
    let channel = open(state, user, Endpoint::EventSource, remote).await?;
    let stream = EventSourceStream {
        channel,
        // RFC 8620: a server may raise a ping interval it finds too short.
        ping: (ping > 0).then(|| Duration::from_secs(ping.max(1))),
        close_after_state,
        started: false,
    };
    let events = futures_util::stream::unfold(stream, |mut stream| async move {
        let event = stream.next_event().await?;
        Some((Ok::<_, std::convert::Infallible>(event), stream))
    });
    let keep_alive = KeepAlive::new().interval(state.gateway.settings.ping_interval);
    Ok(Sse::new(events).keep_alive(keep_alive).into_response())
}
