//! `GET /rest/v1/ws`: the websocket gateway's door. Authenticates (bearer, `RSession` cookie or
//! `?token=`), registers the connection in the site group, then hands the socket to the gateway.
//! The connection is listed before the client gets its `101`.

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use serde::Deserialize;

use super::extract::{presented_token, Query};
use super::openapi::ErrorSchema;
use super::{ApiError, ApiState};
use crate::gateway::websocket;
use crate::iam::{Caller, IamError};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(routes!(open))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct OpenParams {
    /// The session token, for clients that cannot send a header.
    token: Option<String>,
}

/// Upgrades to the session's websocket (`{"type":"ping"}` → `{"type":"pong"}`; a
/// `session_closed` message and a close frame when the session ends).
#[utoipa::path(get, path = "/rest/v1/ws", tag = "gateway", params(OpenParams),
    responses((status = 101, description = "Switching protocols"),
        (status = 400, description = "Not a websocket upgrade", body = ErrorSchema),
        (status = 401, description = "No, or a bad, token", body = ErrorSchema),
        (status = 403, description = "A service token has no session", body = ErrorSchema),
        (status = 503, description = "The site cannot answer now", body = ErrorSchema)))]
async fn open(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(params): Query<OpenParams>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let token = presented_token(&headers)
        .map(|(token, _)| token)
        .or(params.token)
        .filter(|token| !token.is_empty())
        .ok_or(IamError::MissingCredentials)?;
    let session = match state.iam.authenticate(&token).await? {
        Caller::User { session, .. } => session,
        Caller::Service { .. } | Caller::Federated { .. } => {
            return Err(ApiError::Forbidden(
                "a service or federation token has no session to open a websocket for".into(),
            ))
        }
    };
    let upgrade = upgrade.map_err(|rejection| {
        ApiError::InvalidArgument(format!(
            "expected a websocket upgrade: {}",
            rejection.body_text()
        ))
    })?;
    let registration = state.gateway.register(&session).await?;
    let settings = state.gateway.settings.clone();
    let stop = state.gateway.stop.clone();
    Ok(upgrade
        .max_message_size(settings.max_message_bytes)
        .max_frame_size(settings.max_message_bytes)
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(settings.max_message_bytes * 2)
        .on_failed_upgrade(|error| tracing::debug!(%error, "websocket upgrade failed"))
        .on_upgrade(move |socket| websocket::serve(socket, registration, settings, stop)))
}
