//! `/users`: create, read, change, delete users (Sling's user manager, James's user resource).
//! Administrators of a user's domain act on it; a user may change its own password.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::extract::{Json, Path, Query};
use super::{ApiError, ApiState};
use crate::iam::Caller;
use crate::model::{DomainName, PropertyChanges, User, UserAddress};

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/users", get(list).delete(delete_many))
        .route(
            "/users/{user}",
            get(show).put(create).patch(update).delete(delete_one),
        )
        .route("/users/{user}/password", post(change_password))
}

#[derive(Serialize)]
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    password: String,
    #[serde(default)]
    properties: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody {
    #[serde(default)]
    properties: PropertyChanges,
    disabled: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PasswordBody {
    #[serde(rename = "oldPwd")]
    old: Option<String>,
    #[serde(rename = "newPwd")]
    new: String,
    #[serde(rename = "newPwdConfirm")]
    confirm: String,
}

#[derive(Deserialize)]
struct ListParams {
    domain: Option<String>,
}

fn address(raw: &str) -> Result<UserAddress, ApiError> {
    Ok(raw.parse()?)
}

async fn create(
    State(state): State<ApiState>,
    caller: Caller,
    Path(user): Path<String>,
    Json(body): Json<CreateBody>,
) -> Result<StatusCode, ApiError> {
    let address = address(&user)?;
    caller.require_admin_of(&address.domain)?;
    let user = state
        .iam
        .create_user(&address, &body.password, body.properties)
        .await?;
    tracing::info!(user = %address, id = %user.user_id, by = %caller.describe(), "user created");
    Ok(StatusCode::CREATED)
}

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

async fn update(
    State(state): State<ApiState>,
    caller: Caller,
    Path(user): Path<String>,
    Json(body): Json<UpdateBody>,
) -> Result<axum::Json<UserView>, ApiError> {
    let address = address(&user)?;
    caller.require_admin_of(&address.domain)?;
    let user = state.iam.find_user(&address).await?;
    let updated = state
        .iam
        .update_user(&user, body.properties, body.disabled)
        .await?;
    tracing::info!(user = %address, by = %caller.describe(), "user updated");
    Ok(axum::Json(UserView::from(&updated)))
}

async fn change_password(
    State(state): State<ApiState>,
    caller: Caller,
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
    state
        .iam
        .change_password(&caller, &user, body.old.as_deref(), &body.new)
        .await?;
    tracing::info!(user = %address, by = %caller.describe(), "password changed");
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_one(
    State(state): State<ApiState>,
    caller: Caller,
    Path(user): Path<String>,
) -> Result<StatusCode, ApiError> {
    delete(state, caller, vec![user]).await
}

/// Body: `["a@d", "b@d"]`; all are deleted, or none when one is unknown or out of reach.
async fn delete_many(
    State(state): State<ApiState>,
    caller: Caller,
    Json(users): Json<Vec<String>>,
) -> Result<StatusCode, ApiError> {
    if users.is_empty() {
        return Err(ApiError::InvalidArgument(
            "name at least one user: [\"login@domain\", ...]".into(),
        ));
    }
    delete(state, caller, users).await
}

async fn delete(state: ApiState, caller: Caller, raw: Vec<String>) -> Result<StatusCode, ApiError> {
    let mut users = Vec::with_capacity(raw.len());
    for user in &raw {
        let address = address(user)?;
        caller.require_admin_of(&address.domain)?;
        users.push(state.iam.find_user(&address).await?);
    }
    state.iam.delete_users(&users).await?;
    for user in &users {
        tracing::info!(user = %user.address(), by = %caller.describe(), "user deleted");
    }
    Ok(StatusCode::NO_CONTENT)
}

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
