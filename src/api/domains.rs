//! `/domains`: James's domain resource. Creating and deleting domains is for administrators of
//! the master domain; a domain administrator sees its own domain.

use axum::extract::State;
use axum::http::StatusCode;

use super::audit_trail::Trail;
use super::extract::Path;
use super::openapi::{AdminErrors, ErrorSchema};
use super::{ApiError, ApiState};
use crate::iam::Caller;
use crate::model::DomainName;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(exists, create, delete))
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
