//! `/cluster`: this node's view of each Raft group it belongs to (its role, the leader, term,
//! log and apply positions) and of the members, with their replication state as the leader
//! knows it; adding a node to this site, or removing one, at runtime. Global administrators
//! only.

use axum::extract::State;
use serde::Serialize;
use sessionplane_cluster::{GroupStatus, Liveness, UP_WITHIN};

use super::audit_trail::{recorded_after, Trail};
use super::extract::{Json, Path};
use super::openapi::AdminErrors;
use super::openapi::ErrorSchema;
use super::{ApiError, ApiState};
use crate::iam::Caller;
use crate::node_ops::{Change, MembershipError};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(status))
        .routes(routes!(add_node))
        .routes(routes!(remove_node))
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
    /// Milliseconds since this node last heard from the member (as the group's leader, or by
    /// the site's liveness probe); `null` when it has no word of it (never heard, or a member at
    /// another site seen from a node that does not lead the group).
    last_contact_ms: Option<u64>,
    /// Whether the member answered within the last 3 s; `null` when this node cannot tell.
    answers: Option<bool>,
}

/// Milliseconds since `id` was last heard from, as far as this node knows.
pub(super) fn last_contact(status: &GroupStatus, liveness: &Liveness, id: u64) -> Option<u64> {
    if id == status.node_id {
        return Some(0);
    }
    let as_leader = status
        .last_contact_ms
        .as_ref()
        .and_then(|acked| acked.get(&id).copied().flatten());
    let probed = liveness.last_heard(id).map(|ago| ago.as_millis() as u64);
    match (as_leader, probed) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// Whether a member counts as answering, from its last contact; `None` when nothing is known
/// of it (a member at another site, seen from a node that does not lead the group).
pub(super) fn answers(
    status: &GroupStatus,
    liveness: &Liveness,
    id: u64,
    contact: Option<u64>,
) -> Option<bool> {
    let known = status.last_contact_ms.is_some() || liveness.watches(id) || id == status.node_id;
    known.then(|| contact.is_some_and(|ms| ms <= UP_WITHIN.as_millis() as u64))
}

impl GroupView {
    fn of(status: GroupStatus, liveness: &Liveness) -> Self {
        let last = status.last_log_index.unwrap_or(0);
        let members = status
            .members
            .iter()
            .map(|(id, address)| {
                let matched = status
                    .replication
                    .as_ref()
                    .map(|r| r.get(id).copied().flatten());
                let contact = last_contact(&status, liveness, *id);
                MemberView {
                    id: *id,
                    address: address.clone(),
                    voter: status.voters.contains(id),
                    matched_index: matched.flatten(),
                    lag: matched.flatten().map(|m| last.saturating_sub(m)),
                    replicating: matched.map(|m| m.is_some()),
                    last_contact_ms: contact,
                    answers: answers(&status, liveness, *id, contact),
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
    let site = state.site.group().status().await;
    let directory = state.directory.group().status().await;
    Ok(axum::Json(ClusterStatus {
        node: state.node_label.clone(),
        site: state.federation.sites.current.clone(),
        groups: vec![
            GroupView::of(site, &state.liveness),
            GroupView::of(directory, &state.liveness),
        ],
    }))
}

#[derive(Deserialize, ToSchema)]
#[schema(as = NewNode)]
#[serde(deny_unknown_fields)]
struct NewNode {
    /// The node's id, unique in the deployment.
    id: u64,
    /// Its cluster listener, `host:port`.
    cluster: String,
    /// Whether it votes in this site's group (default) or only follows.
    #[serde(default = "yes")]
    voter: bool,
}

fn yes() -> bool {
    true
}

/// Asks the leader of the group `status` describes to make `change`.
async fn ask_leader(
    state: &ApiState,
    status: &GroupStatus,
    change: Change,
) -> Result<(), ApiError> {
    state
        .node
        .change_membership(status, change)
        .await
        .map_err(|e| match e {
            MembershipError::Encode(e) => ApiError::Server(e.to_string()),
            unavailable => ApiError::Unavailable(unavailable.to_string()),
        })
}

/// Adds a node to this site's group (and to the directory, as a learner). Its own config must
/// list this site's nodes so that it can join; list it in every node's `site_nodes` too, so
/// that it stays a member across restarts.
#[utoipa::path(post, path = "/cluster/nodes", tag = "operations", request_body = NewNode,
    responses((status = 204, description = "Added"),
        (status = 409, description = "The id is already a member", body = ErrorSchema), AdminErrors))]
async fn add_node(
    State(state): State<ApiState>,
    caller: Caller,
    trail: Trail,
    Json(node): Json<NewNode>,
) -> Result<StatusCode, ApiError> {
    caller.require_global_admin()?;
    let valid_addr = node
        .cluster
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
    if node.id == 0 || !valid_addr {
        return Err(ApiError::InvalidArgument(
            "give a node id above 0 and its cluster listener as host:port".into(),
        ));
    }
    let site = state.site.group().status_now();
    if site.members.contains_key(&node.id) {
        return Err(ApiError::WrongState(format!(
            "node {} is already a member of {}",
            node.id, site.group
        )));
    }
    let event = trail
        .event(&state, &caller, "cluster.add_node", &node.id.to_string())
        .detail("cluster", node.cluster.as_str())
        .detail("voter", node.voter);
    recorded_after(&state, event, add_to_groups(&state, &site, &node)).await?;
    tracing::info!(caller = %caller.describe(), node = node.id, "added a node");
    Ok(StatusCode::NO_CONTENT)
}

async fn add_to_groups(
    state: &ApiState,
    site: &GroupStatus,
    node: &NewNode,
) -> Result<(), ApiError> {
    let change = Change::Add {
        id: node.id,
        addr: node.cluster.clone(),
        voter: node.voter,
    };
    ask_leader(state, site, change).await?;
    let directory = state.directory.group().status_now();
    if !directory.members.contains_key(&node.id) {
        let change = Change::Add {
            id: node.id,
            addr: node.cluster.clone(),
            voter: false,
        };
        ask_leader(state, &directory, change).await?;
    }
    Ok(())
}

/// Removes a node from this site's group and from the directory. A node still listed in this
/// node's `site_nodes` is refused: the config would add it back.
#[utoipa::path(delete, path = "/cluster/nodes/{id}", tag = "operations",
    params(("id" = u64, Path, description = "The node's id")),
    responses((status = 204, description = "Removed"),
        (status = 404, description = "Not a member of this site", body = ErrorSchema),
        (status = 409, description = "Still listed in this node's site_nodes", body = ErrorSchema), AdminErrors))]
async fn remove_node(
    State(state): State<ApiState>,
    caller: Caller,
    trail: Trail,
    Path(raw): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_global_admin()?;
    let id: u64 = raw
        .parse()
        .map_err(|_| ApiError::InvalidArgument(format!("{raw:?} is not a node id")))?;
    let site = state.site.group().status_now();
    if !site.members.contains_key(&id) {
        return Err(ApiError::NotFound(format!(
            "node {id} is not a member of {}",
            site.group
        )));
    }
    if state.site_nodes.iter().any(|n| n.id == id) {
        return Err(ApiError::WrongState(format!(
            "node {id} is listed in site_nodes: remove it from every node's config first, or it is added back"
        )));
    }
    let event = trail.event(&state, &caller, "cluster.remove_node", &id.to_string());
    let change = async {
        ask_leader(&state, &site, Change::Remove { id }).await?;
        let directory = state.directory.group().status_now();
        if directory.members.contains_key(&id) {
            ask_leader(&state, &directory, Change::Remove { id }).await?;
        }
        Ok(())
    };
    recorded_after(&state, event, change).await?;
    tracing::info!(caller = %caller.describe(), node = id, "removed a node");
    Ok(StatusCode::NO_CONTENT)
}
