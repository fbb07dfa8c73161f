//! `/rest/v1/signals/jwks`: the public key the Shared Signals receivers verify this
//! deployment's Security Event Tokens with (RFC 7517 key set). Public: it holds no secret.

use axum::extract::State;
use axum::Json;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::openapi::ErrorSchema;
use super::{ApiError, ApiState};

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(routes!(jwks))
}

/// The key set that verifies the Security Event Tokens pushed to Shared Signals receivers.
#[utoipa::path(get, path = "/rest/v1/signals/jwks", tag = "events", security(()),
    responses((status = 200, description = "`{\"keys\":[…]}`, one EC P-256 key (ES256)", body = Object),
        (status = 404, description = "No `[signals] signing_key_file` is configured", body = ErrorSchema)))]
async fn jwks(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    match &state.signing_key {
        Some(key) => Ok(Json(key.jwks())),
        None => Err(ApiError::NotFound(
            "no signing key: [signals] signing_key_file is not configured".into(),
        )),
    }
}
