//! `/users`: create, read, change, delete users (Sling's user manager, James's user resource).
//! Administrators of a user's domain act on it; a user may change its own password.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::audit_trail::Trail;
use super::extract::{Json, Path, Query};
use super::openapi::{AdminErrors, ErrorSchema};
use super::{ApiError, ApiState};
use crate::iam::Caller;
use crate::model::{DomainName, PropertyChanges, User, UserAddress};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list, delete_many))
        .routes(routes!(show, create, update, delete_one))
        .routes(routes!(change_password))
}

#[derive(Serialize, ToSchema)]
#[schema(as = User)]
pub struct UserView {
    pub user_id: Uuid,
    pub login: String,
    pub domain: String,
    pub username: String,
    pub properties: BTreeMap<String, String>,
    pub disabled: bool,
    /// Milliseconds since the Unix epoch.
    pub created_at: u64,
}

impl From<&User> for UserView {
    fn from(user: &User) -> Self {
        Self {
            user_id: user.user_id,
            login: user.login.to_string(),
            domain: user.domain.to_string(),
            username: user.address().to_string(),
            properties: user.properties.clone(),
            disabled: user.disabled,
            created_at: user.created_at_ms,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = UserCreate)]
struct CreateBody {
    password: String,
    #[serde(default)]
    properties: BTreeMap<String, String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = UserUpdate)]
struct UpdateBody {
    /// Properties to set; a `null` value deletes one.
    #[serde(default)]
    #[schema(value_type = Object)]
    properties: PropertyChanges,
    disabled: Option<bool>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = PasswordChange)]
struct PasswordBody {
    #[serde(rename = "oldPwd")]
    old: Option<String>,
    #[serde(rename = "newPwd")]
    new: String,
    #[serde(rename = "newPwdConfirm")]
    confirm: String,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Only this domain's users.
    domain: Option<String>,
}

fn address(raw: &str) -> Result<UserAddress, ApiError> {
    Ok(raw.parse()?)
}

/// Creates a user with a password (argon2id; never returned).
#[utoipa::path(put, path = "/users/{user}", tag = "identity", params(("user" = String, Path, description = "login@domain")), request_body = CreateBody,
    responses((status = 201, description = "Created", body = UserView), (status = 404, description = "No such domain", body = ErrorSchema),
        (status = 409, description = "The user exists", body = ErrorSchema), AdminErrors))]
async fn create(
    State(state): State<ApiState>,
    caller: Caller,
    trail: Trail,
    Path(user): Path<String>,
    Json(body): Json<CreateBody>,
) -> Result<(StatusCode, axum::Json<UserView>), ApiError> {
    let address = address(&user)?;
    caller.require_admin_of(&address.domain)?;
    let event = trail
        .event(&state, &caller, "user.create", &address.to_string())
        .detail("properties", property_names(body.properties.keys()));
    let user = state
        .iam
        .create_user(&address, &body.password, body.properties, Some(event))
        .await?;
    tracing::info!(user = %address, id = %user.user_id, by = %caller.describe(), "user created");
    Ok((StatusCode::CREATED, axum::Json(UserView::from(&user))))
}

#[utoipa::path(get, path = "/users/{user}", tag = "identity", params(("user" = String, Path, description = "login@domain")),
    responses((status = 200, description = "The user", body = UserView), (status = 404, description = "No such user", body = ErrorSchema), AdminErrors))]
async fn show(
    State(state): State<ApiState>,
    caller: Caller,
    Path(user): Path<String>,
) -> Result<axum::Json<UserView>, ApiError> {
    let address = address(&user)?;
    caller.require_admin_of(&address.domain)?;
    let user = state.iam.find_user(&address).await?;
    Ok(axum::Json(UserView::from(&user)))
}

/// Changes properties, or disables or enables the user (disabling ends its sessions and channels).
#[utoipa::path(patch, path = "/users/{user}", tag = "identity", params(("user" = String, Path, description = "login@domain")), request_body = UpdateBody,
    responses((status = 200, description = "The user", body = UserView), (status = 404, description = "No such user", body = ErrorSchema), AdminErrors))]
async fn update(
    State(state): State<ApiState>,
    caller: Caller,
    trail: Trail,
    Path(user): Path<String>,
    Json(body): Json<UpdateBody>,
) -> Result<axum::Json<UserView>, ApiError> {
    let address = address(&user)?;
    caller.require_admin_of(&address.domain)?;
    let user = state.iam.find_user(&address).await?;
    let action = match body.disabled {
        Some(true) => "user.disable",
        Some(false) => "user.enable",
        None => "user.update",
    };
    let mut event = trail
        .event(&state, &caller, action, &address.to_string())
        .detail("user_id", user.user_id.to_string())
        .detail("properties", property_names(body.properties.keys()));
    if let Some(disabled) = body.disabled {
        event = event.detail("disabled", disabled);
    }
    let updated = state
        .iam
        .update_user(&user, body.properties, body.disabled, Some(event))
        .await?;
    tracing::info!(user = %address, by = %caller.describe(), "user updated");
    Ok(axum::Json(UserView::from(&updated)))
}

/// Changes a password; every session and channel of the user ends, but the caller's own.
#[utoipa::path(post, path = "/users/{user}/password", tag = "identity", params(("user" = String, Path, description = "login@domain")), request_body = PasswordBody,
    responses((status = 204, description = "Changed"), (status = 404, description = "No such user", body = ErrorSchema), AdminErrors))]
async fn change_password(
    State(state): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    caller: Caller,
    trail: Trail,
    Path(user): Path<String>,
    Json(body): Json<PasswordBody>,
) -> Result<StatusCode, ApiError> {
    let address = address(&user)?;
    let is_self = caller.user().is_some_and(|u| u.address() == address);
    if !is_self {
        caller.require_admin_of(&address.domain)?;
    }
    if body.new != body.confirm {
        return Err(ApiError::InvalidArgument(
            "newPwd and newPwdConfirm differ".into(),
        ));
    }
    let user = state.iam.find_user(&address).await?;
    let event = trail
        .event(&state, &caller, "user.password", &address.to_string())
        .detail("user_id", user.user_id.to_string())
        .detail("by_self", is_self);
    state
        .iam
        .change_password(
            &caller,
            &user,
            body.old.as_deref(),
            &body.new,
            Some(peer.ip()),
            Some(event),
        )
        .await?;
    tracing::info!(user = %address, by = %caller.describe(), "password changed");
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes a user; its sessions and channels end everywhere.
#[utoipa::path(delete, path = "/users/{user}", tag = "identity", params(("user" = String, Path, description = "login@domain")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "No such user", body = ErrorSchema), AdminErrors))]
async fn delete_one(
    State(state): State<ApiState>,
    caller: Caller,
    trail: Trail,
    Path(user): Path<String>,
) -> Result<StatusCode, ApiError> {
    delete(state, caller, trail, vec![user]).await
}

/// Body: `["a@d", "b@d"]`; all are deleted, or none when one is unknown or out of reach.
/// Deletes the listed users (`login@domain`).
#[utoipa::path(delete, path = "/users", tag = "identity", request_body = Vec<String>,
    responses((status = 204, description = "Deleted"), (status = 404, description = "No such user", body = ErrorSchema), AdminErrors))]
async fn delete_many(
    State(state): State<ApiState>,
    caller: Caller,
    trail: Trail,
    Json(users): Json<Vec<String>>,
) -> Result<StatusCode, ApiError> {
    if users.is_empty() {
        return Err(ApiError::InvalidArgument(
            "name at least one user: [\"login@domain\", ...]".into(),
        ));
    }
    delete(state, caller, trail, users).await
}

async fn delete(
    state: ApiState,
    caller: Caller,
    trail: Trail,
    raw: Vec<String>,
) -> Result<StatusCode, ApiError> {
    let mut users = Vec::with_capacity(raw.len());
    for user in &raw {
        let address = address(user)?;
        caller.require_admin_of(&address.domain)?;
        users.push(state.iam.find_user(&address).await?);
    }
    let names: Vec<String> = users.iter().map(|u| u.address().to_string()).collect();
    let event = trail
        .event(&state, &caller, "user.delete", &listed(&names))
        .detail("users", names.len());
    state.iam.delete_users(&users, Some(event)).await?;
    for user in &users {
        tracing::info!(user = %user.address(), by = %caller.describe(), "user deleted");
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Names as one target, cut at 1,000 characters (the details count them all).
pub(super) fn listed(names: &[String]) -> String {
    let all = names.join(",");
    match all.char_indices().nth(1000) {
        Some((at, _)) => format!("{}…", &all[..at]),
        None => all,
    }
}

/// The names of the properties a change sets (their values may be anything: not recorded).
fn property_names<'a>(keys: impl Iterator<Item = &'a String>) -> Vec<String> {
    keys.cloned().collect()
}

#[utoipa::path(get, path = "/users", tag = "identity", params(ListParams),
    responses((status = 200, description = "The users", body = [UserView]), (status = 404, description = "No such domain", body = ErrorSchema), AdminErrors))]
async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<Vec<UserView>>, ApiError> {
    let scope = caller
        .scope()
        .ok_or_else(|| ApiError::Forbidden("administrators only".into()))?;
    let domain = match params.domain.as_deref() {
        Some(raw) => {
            let domain: DomainName = raw.parse()?;
            caller.require_admin_of(&domain)?;
            Some(domain)
        }
        None => None,
    };
    let users = state
        .iam
        .directory
        .read(|d| match &domain {
            Some(domain) => d.users_in(domain).into_iter().map(UserView::from).collect(),
            None => d
                .domains()
                .filter(|dom| scope.covers(&dom.name))
                .flat_map(|dom| d.users_in(&dom.name))
                .map(UserView::from)
                .collect(),
        })
        .await?;
    if let Some(domain) = &domain {
        let known = state
            .iam
            .directory
            .read_local(|d| d.domain(domain).is_some());
        if !known {
            return Err(ApiError::NotFound(format!("no domain {domain}")));
        }
    }
    Ok(axum::Json(users))
}
