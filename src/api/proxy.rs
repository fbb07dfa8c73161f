//! The applications behind the node (`[[proxy]]` routes): every request the api's own routes
//! do not take comes here. A request under a route is let in with a live session (the
//! `RSession` cookie or a bearer token) whose user the route allows, then forwarded by the
//! gateway's proxy; without one it is sent to the login page or refused with a 401.

use std::net::SocketAddr;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::header::{HOST, LOCATION, UPGRADE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use super::extract::{presented_token, Presented};
use super::{ApiError, ApiState};
use crate::gateway::proxy::websocket::relay;
use crate::gateway::proxy::{Forwarded, Identity, ProxyError, Route};
use crate::iam::{Caller, IamError};
use crate::model::{DomainName, GroupName, Session, User};

/// Every request no api route took.
pub async fn fallback(
    State(state): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let Some(route) = state.proxy.route_for(request.uri().path()) else {
        return ApiError::NotFound("no such route".into()).into_response();
    };
    match pass(&state, route, peer, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn pass(
    state: &ApiState,
    route: &Route,
    peer: SocketAddr,
    request: Request,
) -> Result<Response, ApiError> {
    let Some((token, presented)) =
        presented_token(request.headers()).filter(|(t, _)| !t.is_empty())
    else {
        return Ok(unauthenticated(route, &request));
    };
    let caller = match state.iam.authenticate(&token).await {
        Ok(caller) => caller,
        Err(IamError::Store(e)) => return Err(IamError::Store(e).into()),
        Err(_) => return Ok(unauthenticated(route, &request)),
    };
    let Caller::User { session, user, .. } = &caller else {
        return Err(ApiError::Forbidden(
            "an application behind sessionplane serves users' sessions, not service tokens".into(),
        ));
    };
    allowed(state, route, user)?;
    if presented == Presented::Cookie {
        super::csrf::same_origin(&request)?;
    }
    let identity = Identity {
        user: user.address().to_string(),
        user_id: user.user_id.to_string(),
        session_id: session.session_id.to_string(),
        site: state.iam.site_name.clone(),
    };
    let forwarded = Forwarded {
        client_ip: peer.ip(),
        proto: match state.tls {
            true => "https",
            false => "http",
        },
        host: request.headers().get(HOST).cloned(),
    };
    if wants_websocket(request.headers()) {
        return open_websocket(state, route, request, session, &identity, &forwarded).await;
    }
    route
        .forward(request, &identity, &forwarded)
        .await
        .map_err(from_proxy)
}

fn from_proxy(error: ProxyError) -> ApiError {
    match error {
        ProxyError::BadPath(m) => ApiError::InvalidArgument(m),
        ProxyError::BadGateway(m) => ApiError::BadGateway(m),
        ProxyError::GatewayTimeout(m) => ApiError::GatewayTimeout(m),
    }
}

fn wants_websocket(headers: &HeaderMap) -> bool {
    headers
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// A websocket under a route: the upstream's socket first (a 502 when it cannot be had), then
/// the client's registered as a connection of its session, then the client's `101`.
async fn open_websocket(
    state: &ApiState,
    route: &Route,
    request: Request,
    session: &Session,
    identity: &Identity,
    forwarded: &Forwarded,
) -> Result<Response, ApiError> {
    let (mut parts, _) = request.into_parts();
    let upgrade = WebSocketUpgrade::from_request_parts(&mut parts, state)
        .await
        .map_err(|rejection| {
            ApiError::InvalidArgument(format!(
                "expected a websocket upgrade: {}",
                rejection.body_text()
            ))
        })?;
    let upstream = route
        .connect_websocket(&parts.uri, parts.headers.clone(), identity, forwarded)
        .await
        .map_err(from_proxy)?;
    let registration = state.gateway.register(session).await?;
    let send_timeout = state.gateway.settings.send_timeout;
    let stop = state.gateway.stop.clone();
    let largest = route.config.max_message_bytes;
    // Small buffers, as the gateway's own sockets: a proxied socket is held by thousands.
    let mut upgrade = upgrade
        .max_message_size(largest)
        .max_frame_size(largest)
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(largest.saturating_mul(2))
        .on_failed_upgrade(|error| tracing::debug!(%error, "proxied websocket upgrade failed"));
    if let Some(protocol) = upstream.protocol.as_ref().and_then(|p| p.to_str().ok()) {
        upgrade = upgrade.protocols([protocol.to_string()]);
    }
    Ok(upgrade.on_upgrade(move |socket| relay(socket, upstream, registration, send_timeout, stop)))
}

/// A caller without a live session: to the login page (a `GET` or `HEAD` of a route that sends
/// there), else 401.
fn unauthenticated(route: &Route, request: &Request) -> Response {
    let reads = matches!(*request.method(), Method::GET | Method::HEAD);
    if route.sends_to_login() && reads {
        let next = request.uri().path_and_query().map_or("/", |p| p.as_str());
        let location = format!("/login?next={}", super::login::escape_query(next));
        if let Ok(location) = HeaderValue::from_str(&location) {
            return (StatusCode::SEE_OTHER, [(LOCATION, location)]).into_response();
        }
    }
    let mut response =
        ApiError::Unauthorized("sign in first: this application needs a session".into())
            .into_response();
    response.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"sessionplane\""),
    );
    response
}

/// Whether the route lets `user` in: its domains, then its groups, when it names any.
fn allowed(state: &ApiState, route: &Route, user: &User) -> Result<(), ApiError> {
    let config = &route.config;
    let refused = || {
        ApiError::Forbidden(format!(
            "{} is not among the users {} serves",
            user.address(),
            config.prefix
        ))
    };
    if !config.domains.is_empty() {
        let listed = config.domains.iter().any(|d| {
            d.parse::<DomainName>()
                .is_ok_and(|domain| domain == user.domain)
        });
        if !listed {
            return Err(refused());
        }
    }
    if !config.groups.is_empty() {
        let member = state.directory.read_local(|d| {
            config.groups.iter().any(|g| {
                let Some((name, domain)) = g.rsplit_once('@') else {
                    return false;
                };
                let (Ok(name), Ok(domain)) =
                    (name.parse::<GroupName>(), domain.parse::<DomainName>())
                else {
                    return false;
                };
                d.group(&domain, &name)
                    .is_some_and(|group| group.members.contains(&user.user_id))
            })
        });
        if !member {
            return Err(refused());
        }
    }
    Ok(())
}
