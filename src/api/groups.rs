//! `/groups`: groups of users of one domain (Sling's group manager). Members are named as
//! `login@domain` or by user id; members of `admins` administer the group's domain.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::audit_trail::Trail;
use super::extract::{Json, Path, Query};
use super::openapi::{AdminErrors, ErrorSchema};
use super::{ApiError, ApiState};
use crate::iam::Caller;
use crate::model::{DomainName, Group, GroupAddress, PropertyChanges, UserAddress};
use crate::state::directory::DirectoryState;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(show, create, update, delete))
}

#[derive(Serialize, ToSchema)]
#[schema(as = GroupMember)]
struct Member {
    user_id: Uuid,
    username: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = Group)]
struct GroupView {
    name: String,
    domain: String,
    members: Vec<Member>,
    properties: BTreeMap<String, String>,
}

fn view(group: &Group, directory: &DirectoryState) -> GroupView {
    GroupView {
        name: group.name.to_string(),
        domain: group.domain.to_string(),
        members: group
            .members
            .iter()
            .map(|id| Member {
                user_id: *id,
                username: directory.user(id).map(|u| u.address().to_string()),
            })
            .collect(),
        properties: group.properties.clone(),
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = GroupCreate)]
struct CreateBody {
    #[serde(default)]
    members: Vec<String>,
    #[serde(default)]
    properties: BTreeMap<String, String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = GroupUpdate)]
struct UpdateBody {
    #[serde(default)]
    add: Vec<String>,
    #[serde(default)]
    remove: Vec<String>,
    /// Properties to set; a `null` value deletes one.
    #[serde(default)]
    #[schema(value_type = Object)]
    properties: PropertyChanges,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// Only this domain's groups.
    domain: Option<String>,
}

/// Turns `login@domain` or user ids into the ids of users of the group's `domain`. A user that
/// does not exist and a user of another domain get the same 404, so that a domain's
/// administrator learns nothing of the other domains' users.
async fn member_ids(
    state: &ApiState,
    domain: &DomainName,
    names: &[String],
) -> Result<BTreeSet<Uuid>, ApiError> {
    let mut wanted = Vec::with_capacity(names.len());
    for name in names {
        wanted.push(match Uuid::parse_str(name) {
            Ok(id) => Ok(id),
            Err(_) => Err(name.parse::<UserAddress>()?),
        });
    }
    let resolved = state
        .iam
        .directory
        .read(|d| {
            wanted
                .iter()
                .map(|w| {
                    let (found, named) = match w {
                        Ok(id) => (d.user(id), id.to_string()),
                        Err(address) => (
                            d.user_by_login(&address.domain, &address.login),
                            address.to_string(),
                        ),
                    };
                    found
                        .filter(|u| u.domain == *domain)
                        .map(|u| u.user_id)
                        .ok_or(named)
                })
                .collect::<Result<BTreeSet<Uuid>, String>>()
        })
        .await?;
    resolved.map_err(|unknown| ApiError::NotFound(format!("no user {unknown} in domain {domain}")))
}

#[utoipa::path(put, path = "/groups/{group}", tag = "identity", params(("group" = String, Path, description = "name@domain")), request_body = CreateBody,
    responses((status = 201, description = "Created", body = GroupView), (status = 404, description = "No such domain or member", body = ErrorSchema),
        (status = 409, description = "The group exists", body = ErrorSchema), AdminErrors))]
async fn create(
    State(state): State<ApiState>,
    caller: Caller,
    trail: Trail,
    Path(group): Path<String>,
    Json(body): Json<CreateBody>,
) -> Result<(StatusCode, axum::Json<GroupView>), ApiError> {
    let address: GroupAddress = group.parse()?;
    caller.require_admin_of(&address.domain)?;
    let members = member_ids(&state, &address.domain, &body.members).await?;
    let event = trail
        .event(&state, &caller, "group.create", &address.to_string())
        .detail("members", members.len());
    let created = state
        .iam
        .directory
        .audited(event)
        .create_group(
            address.domain.clone(),
            address.name.clone(),
            members,
            body.properties,
        )
        .await??;
    tracing::info!(group = %address, by = %caller.describe(), "group created");
    let shown = state.directory.read_local(|d| view(&created, d));
    Ok((StatusCode::CREATED, axum::Json(shown)))
}

#[utoipa::path(get, path = "/groups/{group}", tag = "identity", params(("group" = String, Path, description = "name@domain")),
    responses((status = 200, description = "The group", body = GroupView), (status = 404, description = "No such group", body = ErrorSchema), AdminErrors))]
async fn show(
    State(state): State<ApiState>,
    caller: Caller,
    Path(group): Path<String>,
) -> Result<axum::Json<GroupView>, ApiError> {
    let address: GroupAddress = group.parse()?;
    caller.require_admin_of(&address.domain)?;
    state
        .iam
        .directory
        .read(|d| d.group(&address.domain, &address.name).map(|g| view(g, d)))
        .await?
        .map(axum::Json)
        .ok_or_else(|| ApiError::NotFound(format!("no group {address}")))
}

/// Adds and removes members, sets properties.
#[utoipa::path(patch, path = "/groups/{group}", tag = "identity", params(("group" = String, Path, description = "name@domain")), request_body = UpdateBody,
    responses((status = 200, description = "The group", body = GroupView), (status = 404, description = "No such group or member", body = ErrorSchema), AdminErrors))]
async fn update(
    State(state): State<ApiState>,
    caller: Caller,
    trail: Trail,
    Path(group): Path<String>,
    Json(body): Json<UpdateBody>,
) -> Result<axum::Json<GroupView>, ApiError> {
    let address: GroupAddress = group.parse()?;
    caller.require_admin_of(&address.domain)?;
    let add = member_ids(&state, &address.domain, &body.add).await?;
    let remove = member_ids(&state, &address.domain, &body.remove).await?;
    let event = trail
        .event(&state, &caller, "group.update", &address.to_string())
        .detail("added", add.len())
        .detail("removed", remove.len())
        .detail(
            "properties",
            body.properties.keys().cloned().collect::<Vec<_>>(),
        );
    let updated = state
        .iam
        .directory
        .audited(event)
        .update_group(
            address.domain.clone(),
            address.name.clone(),
            add,
            remove,
            body.properties,
        )
        .await??;
    tracing::info!(group = %address, by = %caller.describe(), "group updated");
    let shown = state.directory.read_local(|d| view(&updated, d));
    Ok(axum::Json(shown))
}

#[utoipa::path(delete, path = "/groups/{group}", tag = "identity", params(("group" = String, Path, description = "name@domain")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "No such group", body = ErrorSchema), AdminErrors))]
async fn delete(
    State(state): State<ApiState>,
    caller: Caller,
    trail: Trail,
    Path(group): Path<String>,
) -> Result<StatusCode, ApiError> {
    let address: GroupAddress = group.parse()?;
    caller.require_admin_of(&address.domain)?;
    let event = trail.event(&state, &caller, "group.delete", &address.to_string());
    state
        .iam
        .directory
        .audited(event)
        .delete_group(address.domain.clone(), address.name.clone())
        .await??;
    tracing::info!(group = %address, by = %caller.describe(), "group deleted");
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/groups", tag = "identity", params(ListParams),
    responses((status = 200, description = "The groups", body = [GroupView]), (status = 404, description = "No such domain", body = ErrorSchema), AdminErrors))]
async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    Query(params): Query<ListParams>,
) -> Result<axum::Json<Vec<GroupView>>, ApiError> {
    let scope = caller
        .scope()
        .ok_or_else(|| ApiError::Forbidden("administrators only".into()))?;
    let domain: Option<DomainName> = params.domain.as_deref().map(str::parse).transpose()?;
    if let Some(domain) = &domain {
        caller.require_admin_of(domain)?;
    }
    let groups = state
        .iam
        .directory
        .read(|d| {
            d.domains()
                .filter(|dom| scope.covers(&dom.name))
                .filter(|dom| domain.as_ref().is_none_or(|only| &dom.name == only))
                .flat_map(|dom| d.groups_in(&dom.name))
                .map(|g| view(g, d))
                .collect()
        })
        .await?;
    Ok(axum::Json(groups))
}
