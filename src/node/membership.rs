//! Changes to a group's members asked at runtime (`POST /cluster/nodes`, `DELETE
//! /cluster/nodes/{id}`): a named node call that the group's leader carries out. The api asks
//! through [`crate::node_ops::NodeOps::change_membership`], which finds the leader and calls
//! it; a node that is not (or no longer) the leader refuses.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sessionplane_cluster::{ClusterNode, Group, GroupStatus, Member, PeerClient, StateMachine};

use crate::node_ops::{Change, EncodeError, MembershipError};
use crate::state::directory::DirectoryState;
use crate::state::site::SiteState;
use crate::state::{decode, encode};

/// The node call's name.
pub const MEMBERSHIP_CALL: &str = "membership";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MembershipRequest {
    /// The group's id (`site:central`, `directory`).
    pub group: String,
    pub change: Change,
}

const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Asks the leader of the group `status` describes to make `change`.
pub async fn ask_leader(
    peers: &PeerClient,
    status: &GroupStatus,
    change: Change,
) -> Result<(), MembershipError> {
    let group = status.group.to_string();
    let Some(leader) = status.leader else {
        return Err(MembershipError::NoLeader { group });
    };
    let Some(addr) = status.members.get(&leader) else {
        return Err(MembershipError::UnknownLeader { group });
    };
    let request = MembershipRequest {
        group: group.clone(),
        change,
    };
    let body = encode(&request).map_err(|e| EncodeError(e.to_string()))?;
    match peers
        .call_node(addr, MEMBERSHIP_CALL, body, CALL_TIMEOUT)
        .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(why)) => Err(MembershipError::Refused { group, leader, why }),
        Err(e) => Err(MembershipError::Unreachable {
            group,
            leader,
            why: e.to_string(),
        }),
    }
}

/// Serves the membership call for this node's two groups.
pub fn serve(cluster: &ClusterNode, site: Group<SiteState>, directory: Group<DirectoryState>) {
    let groups = Arc::new((site, directory));
    cluster.calls().serve(MEMBERSHIP_CALL, move |body| {
        let groups = groups.clone();
        Box::pin(async move {
            let request: MembershipRequest = decode(&body).map_err(|e| e.to_string())?;
            let (site, directory) = &*groups;
            if request.group == site.id().to_string() {
                apply(site, request.change).await?;
            } else if request.group == directory.id().to_string() {
                apply(directory, request.change).await?;
            } else {
                return Err(format!("this node has no group {}", request.group));
            }
            encode(&()).map_err(|e| e.to_string())
        })
    });
}

async fn apply<S: StateMachine>(group: &Group<S>, change: Change) -> Result<(), String> {
    if !group.is_leader() {
        return Err(format!("this node does not lead {}", group.id()));
    }
    match change {
        Change::Add { id, addr, voter } => {
            group
                .add_learner(id, Member { addr })
                .await
                .map_err(|e| e.to_string())?;
            if voter {
                group
                    .add_voters(BTreeSet::from([id]))
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        Change::Remove { id } => group.remove_member(id).await.map_err(|e| e.to_string())?,
    }
    tracing::info!(group = %group.id(), "membership changed at an operator's request");
    Ok(())
}
