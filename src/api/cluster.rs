//! `GET /cluster/status`: this node's view of each Raft group it belongs to (its role, the
//! leader, term, log and apply positions) and of the members, with their replication state as
//! the leader knows it. Global administrators only.

use axum::extract::State;
use serde::Serialize;
use sessionplane_cluster::GroupStatus;

use super::openapi::AdminErrors;
use super::{ApiError, ApiState};
use crate::iam::Caller;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(routes!(status))
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
struct ClusterStatus {
    node: String,
    site: String,
    groups: Vec<GroupView>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = RaftGroup)]
struct GroupView {
    group: String,
    node_id: u64,
    initialized: bool,
    role: String,
    leader: Option<u64>,
    term: u64,
    last_log_index: Option<u64>,
    last_applied_index: Option<u64>,
    snapshot_index: Option<u64>,
    purged_index: Option<u64>,
    members: Vec<MemberView>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = RaftMember)]
struct MemberView {
    id: u64,
    address: String,
    voter: bool,
    /// Leader only: the last entry it has replicated there, and how far behind that is.
    #[serde(skip_serializing_if = "Option::is_none")]
    matched_index: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lag: Option<u64>,
    /// Leader only: whether the member takes entries at all.
    #[serde(skip_serializing_if = "Option::is_none")]
    replicating: Option<bool>,
}

impl GroupView {
    fn of(status: GroupStatus) -> Self {
        let last = status.last_log_index.unwrap_or(0);
        let members = status
            .members
            .iter()
            .map(|(id, address)| {
                let matched = status
                    .replication
                    .as_ref()
                    .map(|r| r.get(id).copied().flatten());
                MemberView {
                    id: *id,
                    address: address.clone(),
                    voter: status.voters.contains(id),
                    matched_index: matched.flatten(),
                    lag: matched.flatten().map(|m| last.saturating_sub(m)),
                    replicating: matched.map(|m| m.is_some()),
                }
            })
            .collect();
        Self {
            group: status.group.to_string(),
            node_id: status.node_id,
            initialized: status.initialized,
            role: status.role,
            leader: status.leader,
            term: status.term,
            last_log_index: status.last_log_index,
            last_applied_index: status.last_applied_index,
            snapshot_index: status.snapshot_index,
            purged_index: status.purged_index,
            members,
        }
    }
}

/// This node's view of each Raft group it belongs to.
#[utoipa::path(get, path = "/cluster/status", tag = "operations",
    responses((status = 200, description = "The groups", body = ClusterStatus), AdminErrors))]
async fn status(
    State(state): State<ApiState>,
    caller: Caller,
) -> Result<axum::Json<ClusterStatus>, ApiError> {
    caller.require_global_admin()?;
    let site = state.gateway.site.group().status().await;
    let directory = state.iam.directory.group().status().await;
    Ok(axum::Json(ClusterStatus {
        node: state.node_label.clone(),
        site: state.federation.sites.current.clone(),
        groups: vec![GroupView::of(site), GroupView::of(directory)],
    }))
}
