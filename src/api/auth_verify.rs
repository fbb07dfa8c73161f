//! `GET /rest/v1/auth/verify`: forward auth for proxies that stay in front (nginx
//! `auth_request`, Traefik `forwardAuth`, Envoy `ext_authz` over HTTP). A live session's
//! request gets 204 with the identity headers the reverse proxy would send; anything else 401.

use axum::extract::State;
use axum::http::header::WWW_AUTHENTICATE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::presented_token;
use super::openapi::ErrorSchema;
use super::{ApiError, ApiState};
use crate::gateway::proxy::headers::identity_headers;
use crate::gateway::proxy::Identity;
use crate::iam::{Caller, IamError};

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(routes!(verify))
}

/// Whether the request's session is live: 204 with `X-Sessionplane-User`, `-User-Id`,
/// `-Session` and `-Site`; 401 otherwise.
#[utoipa::path(get, path = "/rest/v1/auth/verify", tag = "iam",
    responses(
        (status = 204, description = "A live session; its identity in the X-Sessionplane-* headers"),
        (status = 401, description = "No live session", body = ErrorSchema),
        (status = 503, description = "The site cannot confirm the session now", body = ErrorSchema)
    ))]
async fn verify(State(state): State<ApiState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let refused = || {
        let mut response = ApiError::Unauthorized("no live session".into()).into_response();
        response.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"sessionplane\""),
        );
        response
    };
    let Some((token, _)) = presented_token(&headers).filter(|(t, _)| !t.is_empty()) else {
        return Ok(refused());
    };
    let caller = match state.iam.authenticate(&token).await {
        Ok(caller) => caller,
        Err(IamError::Store(e)) => return Err(IamError::Store(e).into()),
        Err(_) => return Ok(refused()),
    };
    let Caller::User { session, user, .. } = caller else {
        return Ok(refused());
    };
    let identity = Identity {
        user: user.address().to_string(),
        user_id: user.user_id.to_string(),
        session_id: session.session_id.to_string(),
        site: state.iam.site_name.clone(),
    };
    Ok((StatusCode::NO_CONTENT, identity_headers(&identity)).into_response())
}
