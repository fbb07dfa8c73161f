//! `/domains`: James's domain resource. Creating and deleting domains is for administrators of
//! the master domain; a domain administrator sees its own domain.

use axum::extract::State;
use axum::http::StatusCode;

use super::audit_trail::Trail;
use super::extract::Path;
use super::openapi::{AdminErrors, ErrorSchema};
use super::{ApiError, ApiState};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::extract::Json;
use crate::iam::Caller;
use crate::model::{Domain, DomainName, OnLimit, SessionLimit};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(exists, create, delete))
        .routes(routes!(settings, set_settings))
}

/// The highest cap a domain may set.
const MAX_SESSIONS_PER_USER: u32 = 100_000;

/// A domain's settings: its cap on each user's open sessions (none: no cap).
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct DomainSettings {
    /// At most this many sessions per user, counted over the sites that answer at login
    /// (1 to 100,000; null: no cap).
    #[schema(minimum = 1, maximum = 100000)]
    max_sessions_per_user: Option<u32>,
    /// `refuse` (the new login gets 403) or `end_oldest` (the oldest sessions end, reason
    /// `limit`); default `refuse`.
    #[serde(default)]
    on_limit: Option<OnLimit>,
}

impl DomainSettings {
    fn of(domain: &Domain) -> Self {
        Self {
            max_sessions_per_user: domain.session_limit.map(|l| l.max_sessions_per_user),
            on_limit: domain.session_limit.map(|l| l.on_limit),
        }
    }
}

/// The domain's settings.
#[utoipa::path(get, path = "/domains/{domain}/settings", tag = "identity", params(("domain" = String, Path, description = "The domain name")),
    responses((status = 200, description = "The settings", body = DomainSettings), (status = 404, description = "No such domain", body = ErrorSchema), AdminErrors))]
async fn settings(
    State(state): State<ApiState>,
    caller: Caller,
    Path(domain): Path<String>,
) -> Result<axum::Json<DomainSettings>, ApiError> {
    let domain: DomainName = domain.parse()?;
    caller.require_admin_of(&domain)?;
    let found = state
        .iam
        .directory
        .read(|d| d.domain(&domain).cloned())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no domain {domain}")))?;
    Ok(axum::Json(DomainSettings::of(&found)))
}

/// Sets the domain's settings (`max_sessions_per_user: null` lifts the cap).
#[utoipa::path(put, path = "/domains/{domain}/settings", tag = "identity", params(("domain" = String, Path, description = "The domain name")),
    request_body = DomainSettings,
    responses((status = 200, description = "The settings as they now are", body = DomainSettings),
        (status = 400, description = "Bad input", body = ErrorSchema),
        (status = 404, description = "No such domain", body = ErrorSchema), AdminErrors))]
async fn set_settings(
    State(state): State<ApiState>,
    caller: Caller,
    trail: Trail,
    Path(domain): Path<String>,
    Json(body): Json<serde_json::Value>,
) -> Result<axum::Json<DomainSettings>, ApiError> {
    let domain: DomainName = domain.parse()?;
    caller.require_admin_of(&domain)?;
    // An object only: serde would take a list for the struct too.
    if !body.is_object() {
        return Err(ApiError::InvalidArgument(
            "the settings are a JSON object: {\"max_sessions_per_user\": 3, \"on_limit\": \"refuse\"}".into(),
        ));
    }
    let body: DomainSettings = serde_json::from_value(body)
        .map_err(|e| ApiError::InvalidArgument(format!("the settings: {e}")))?;
    let limit = match body.max_sessions_per_user {
        Some(n) if !(1..=MAX_SESSIONS_PER_USER).contains(&n) => {
            return Err(ApiError::InvalidArgument(format!(
                "max_sessions_per_user {n}: from 1 to {MAX_SESSIONS_PER_USER} (null lifts the cap)"
            )))
        }
        Some(max) => Some(SessionLimit {
            max_sessions_per_user: max,
            on_limit: body.on_limit.unwrap_or(OnLimit::Refuse),
        }),
        None => None,
    };
    let event = trail
        .event(&state, &caller, "domain.update", domain.as_str())
        .detail("max_sessions_per_user", json!(body.max_sessions_per_user))
        .detail("on_limit", json!(limit.map(|l| l.on_limit)));
    let updated = state
        .directory
        .audited(event)
        .set_session_limit(domain.clone(), limit)
        .await??;
    tracing::info!(%domain, by = %caller.describe(), "domain settings changed");
    Ok(axum::Json(DomainSettings::of(&updated)))
}

/// The domains the caller administers.
#[utoipa::path(get, path = "/domains", tag = "identity",
    responses((status = 200, description = "Domain names", body = [String]), AdminErrors))]
async fn list(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<axum::Json<Vec<String>>, ApiError> {
    let scope = caller
        .scope()
        .ok_or_else(|| ApiError::Forbidden("administrators only".into()))?;
    let names = state
        .iam
        .directory
        .read(|d| {
            d.domains()
                .filter(|domain| scope.covers(&domain.name))
                .map(|domain| domain.name.to_string())
                .collect()
        })
        .await?;
    Ok(axum::Json(names))
}

/// 204 when the domain exists, 404 otherwise (as James answers).
#[utoipa::path(get, path = "/domains/{domain}", tag = "identity", params(("domain" = String, Path, description = "The domain name")),
    responses((status = 204, description = "It exists"), (status = 404, description = "No such domain", body = ErrorSchema), AdminErrors))]
async fn exists(
    State(state): State<ApiState>,
    caller: Caller,
    Path(domain): Path<String>,
) -> Result<StatusCode, ApiError> {
    let domain: DomainName = domain.parse()?;
    caller.require_admin_of(&domain)?;
    let found = state
        .iam
        .directory
        .read(|d| d.domain(&domain).is_some())
        .await?;
    match found {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(ApiError::NotFound(format!("no domain {domain}"))),
    }
}

#[utoipa::path(put, path = "/domains/{domain}", tag = "identity", params(("domain" = String, Path, description = "The domain name")),
    responses((status = 204, description = "Created"), (status = 409, description = "The domain exists", body = ErrorSchema), AdminErrors))]
async fn create(
    State(state): State<ApiState>,
    caller: Caller,
    trail: Trail,
    Path(domain): Path<String>,
) -> Result<StatusCode, ApiError> {
    let domain: DomainName = domain.parse()?;
    caller.require_global_admin()?;
    let event = trail.event(&state, &caller, "domain.create", domain.as_str());
    state
        .directory
        .audited(event)
        .create_domain(domain.clone())
        .await??;
    tracing::info!(%domain, by = %caller.describe(), "domain created");
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(delete, path = "/domains/{domain}", tag = "identity", params(("domain" = String, Path, description = "The domain name")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "No such domain", body = ErrorSchema),
        (status = 409, description = "The domain still has users or groups", body = ErrorSchema), AdminErrors))]
async fn delete(
    State(state): State<ApiState>,
    caller: Caller,
    trail: Trail,
    Path(domain): Path<String>,
) -> Result<StatusCode, ApiError> {
    let domain: DomainName = domain.parse()?;
    caller.require_global_admin()?;
    if domain == state.iam.master_domain {
        return Err(ApiError::WrongState(
            "the master domain holds the administrators and cannot be deleted".into(),
        ));
    }
    let event = trail.event(&state, &caller, "domain.delete", domain.as_str());
    state
        .directory
        .audited(event)
        .delete_domain(domain.clone())
        .await??;
    tracing::info!(%domain, by = %caller.describe(), "domain deleted");
    Ok(StatusCode::NO_CONTENT)
}
