//! `/rest/v1/iam/sessions`: password login, and the caller's own session.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::header::USER_AGENT;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::{Cookie, SameSite};
use axum_extra::extract::CookieJar;
use serde::{Deserialize, Serialize};
use sessionplane_cluster::now_ms;
use uuid::Uuid;

use super::extract::{Authenticated, Json, Presented, SESSION_COOKIE};
use super::openapi::{AdminErrors, ErrorSchema};
use super::{ApiError, ApiState};
use crate::iam::login::LoginAttempt;
use crate::iam::Caller;
use crate::model::{CloseReason, Session};
use crate::state::site::Authority;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(routes!(login)).routes(routes!(
        current,
        renew_current,
        close_current
    ))
}

#[derive(Deserialize, ToSchema)]
#[schema(as = Login)]
struct LoginBody {
    domain: String,
    login: String,
    pwd: String,
    session_type: Option<SessionType>,
}

#[derive(Clone, Copy, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(rename_all = "snake_case")]
enum SessionType {
    Token,
    TokenCloneCookie,
    Cookie,
}

#[derive(Serialize, ToSchema)]
#[schema(as = LoggedIn)]
struct LoginAnswer {
    session_id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
    user_id: Uuid,
    domain: String,
    login: String,
    site: String,
    ttl: u64,
}

/// A session as the sessions APIs show it (docs/API.md, "Sessions of the `ws` logical role").
#[derive(Serialize, ToSchema)]
#[schema(as = Session)]
pub struct SessionView {
    pub domain: String,
    pub login: String,
    pub session_id: Uuid,
    pub session_type: &'static str,
    pub site: String,
    pub ttl: u64,
    pub user_id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

impl SessionView {
    pub fn http(session: &Session, site: &str, now_ms: u64) -> Self {
        Self {
            domain: session.domain.to_string(),
            login: session.login.to_string(),
            session_id: session.session_id,
            session_type: "http",
            site: site.to_string(),
            ttl: session.ttl_secs(now_ms),
            user_id: session.user_id,
            token: None,
        }
    }
}

/// A password login: a session, and its token (in the body, as the `RSession` cookie, or both).
#[utoipa::path(post, path = "/rest/v1/iam/sessions", tag = "iam", security(()),
    request_body = LoginBody,
    responses(
        (status = 200, description = "Logged in", body = LoginAnswer),
        (status = 400, description = "Bad input", body = ErrorSchema),
        (status = 401, description = "Invalid credentials (one answer for every cause)", body = ErrorSchema),
        (status = 413, description = "The body is too large", body = ErrorSchema),
        (status = 415, description = "The body is not JSON", body = ErrorSchema),
        (status = 429, description = "Too many failed logins; see Retry-After", body = ErrorSchema),
        (status = 503, description = "The site cannot answer now", body = ErrorSchema)
    ))]
async fn login(
    State(state): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    jar: CookieJar,
    Json(body): Json<LoginBody>,
) -> Result<Response, ApiError> {
    let attempt = LoginAttempt {
        domain: &body.domain,
        login: &body.login,
        password: &body.pwd,
        client_addr: Some(peer.ip()),
        user_agent: headers
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(512).collect()),
    };
    let logged_in = super::session_limit::log_in(&state, attempt).await?;
    let session = &logged_in.session;
    tracing::info!(user = %session.user_id, session = %session.session_id, "login");
    let kind = body.session_type.unwrap_or(SessionType::Cookie);
    let answer = LoginAnswer {
        session_id: session.session_id,
        token: (kind != SessionType::Cookie).then(|| logged_in.token.clone()),
        user_id: session.user_id,
        domain: session.domain.to_string(),
        login: session.login.to_string(),
        site: state.iam.site_name.clone(),
        ttl: session.ttl_secs(now_ms()),
    };
    let jar = match kind {
        SessionType::Token => jar,
        _ => jar.add(session_cookie(&state, logged_in.token, session)),
    };
    Ok((jar, axum::Json(answer)).into_response())
}

pub(super) fn session_cookie(
    state: &ApiState,
    token: String,
    session: &Session,
) -> Cookie<'static> {
    let max_age = session.ttl_secs(now_ms()) as i64;
    Cookie::build((SESSION_COOKIE, token))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(state.tls)
        .max_age(time_secs(max_age))
        .build()
}

pub(super) fn time_secs(secs: i64) -> cookie::time::Duration {
    cookie::time::Duration::seconds(secs)
}

fn current_session(caller: &Caller) -> Result<&Session, ApiError> {
    caller
        .session()
        .ok_or_else(|| ApiError::NotFound("a service token has no current session".into()))
}

/// The caller's own session.
#[utoipa::path(get, path = "/rest/v1/iam/sessions/current", tag = "iam",
    responses((status = 200, description = "The session", body = SessionView),
        (status = 404, description = "A service token has no session", body = ErrorSchema), AdminErrors))]
async fn current(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<axum::Json<SessionView>, ApiError> {
    let session = current_session(&caller)?;
    Ok(axum::Json(SessionView::http(
        session,
        &state.iam.site_name,
        now_ms(),
    )))
}

/// Renews the session to the full lifetime. The token's own expiry cannot move, so a new token
/// comes back: in the body for a bearer caller, as the cookie for a cookie caller.
/// Renews the caller's session to its full lifetime, with a new token.
#[utoipa::path(patch, path = "/rest/v1/iam/sessions/current", tag = "iam",
    responses((status = 200, description = "Renewed", body = SessionView),
        (status = 404, description = "A service token has no session", body = ErrorSchema), AdminErrors))]
async fn renew_current(
    State(state): State<ApiState>,
    auth: Authenticated,
    jar: CookieJar,
) -> Result<Response, ApiError> {
    let session = current_session(&auth.caller)?;
    let renewed = state.iam.renew(session.session_id).await?;
    let token = state.iam.token_for(&renewed)?;
    let mut view = SessionView::http(&renewed, &state.iam.site_name, now_ms());
    let jar = match auth.presented {
        Presented::Bearer => {
            view.token = Some(token);
            jar
        }
        Presented::Cookie => jar.add(session_cookie(&state, token, &renewed)),
    };
    Ok((jar, axum::Json(view)).into_response())
}

/// Logs the caller out: its session and websockets end.
#[utoipa::path(delete, path = "/rest/v1/iam/sessions/current", tag = "iam",
    responses((status = 204, description = "Logged out"),
        (status = 404, description = "A service token has no session", body = ErrorSchema), AdminErrors))]
async fn close_current(
    State(state): State<ApiState>,
    caller: Caller,
    jar: CookieJar,
) -> Result<Response, ApiError> {
    let session = current_session(&caller)?;
    log_out(&state, session).await?;
    Ok((StatusCode::NO_CONTENT, jar.add(forgotten_cookie())).into_response())
}

/// Ends `session` as its owner's logout (its websockets close with 4003).
pub(super) async fn log_out(state: &ApiState, session: &Session) -> Result<(), ApiError> {
    state
        .iam
        .end_session(
            session.session_id,
            CloseReason::Logout,
            Authority::system(),
            None,
        )
        .await?;
    tracing::info!(session = %session.session_id, "logout");
    Ok(())
}

/// The `RSession` cookie cleared.
pub(super) fn forgotten_cookie() -> Cookie<'static> {
    Cookie::build((SESSION_COOKIE, ""))
        .path("/")
        .max_age(time_secs(0))
        .build()
}
