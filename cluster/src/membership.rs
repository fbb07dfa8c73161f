//! Forming a group from a static list of members, and keeping it formed.
//!
//! The seed member initializes a brand-new group with itself alone, unless a peer already belongs
//! to an initialized group (its data was lost, or it is not the first start): then it waits to be
//! caught up like any other member. Whoever leads adds every listed member that is missing as a
//! learner and promotes learners to voters once they have caught up. A restarted member simply
//! rejoins: its log says it is initialized.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::group::Group;
use crate::state_machine::StateMachine;
use crate::types::{Member, NodeId};

const ROUND: Duration = Duration::from_millis(250);
const STATUS_TIMEOUT: Duration = Duration::from_millis(300);
/// A learner this close to the leader's last log index is promoted.
const CAUGHT_UP_WITHIN: u64 = 1_000;

/// The wanted membership of a group.
#[derive(Clone, Debug)]
pub struct MemberList {
    /// Every member, with its cluster address (this node included).
    pub members: BTreeMap<NodeId, Member>,
    /// Members that vote; the others stay learners.
    pub voters: BTreeSet<NodeId>,
    /// The member that initializes a brand-new group.
    pub seed: NodeId,
}

/// Runs until the group shuts down.
pub async fn keep_membership<S: StateMachine>(group: Group<S>, wanted: MemberList) {
    loop {
        if let Err(reason) = one_round(&group, &wanted).await {
            tracing::debug!(group = %group.id(), %reason, "membership round");
        }
        if group.metrics().running_state.is_err() {
            return;
        }
        tokio::time::sleep(ROUND).await;
    }
}

async fn one_round<S: StateMachine>(group: &Group<S>, wanted: &MemberList) -> Result<(), String> {
    if !group.is_initialized().await {
        if wanted.seed == group.node_id() && !any_peer_initialized(group, wanted).await {
            let me = wanted
                .members
                .get(&group.node_id())
                .cloned()
                .ok_or("this node is not in the member list")?;
            group.initialize(me).await.map_err(|e| e.to_string())?;
            tracing::info!(group = %group.id(), "initialized a new group");
        }
        return Ok(());
    }
    if !group.is_leader() {
        return Ok(());
    }
    let metrics = group.metrics();
    let membership = metrics.membership_config.membership().clone();
    for (id, member) in &wanted.members {
        if membership.get_node(id).is_none() {
            group
                .add_learner(*id, member.clone())
                .await
                .map_err(|e| e.to_string())?;
            tracing::info!(group = %group.id(), node = id, "added learner");
        }
    }
    let current_voters: BTreeSet<NodeId> = membership.voter_ids().collect();
    let last = metrics.last_log_index.unwrap_or(0);
    let replication = metrics.replication.clone().unwrap_or_default();
    let ready: BTreeSet<NodeId> = wanted
        .voters
        .iter()
        .filter(|id| !current_voters.contains(id))
        .filter(|id| {
            replication
                .get(id)
                .and_then(|matched| *matched)
                .is_some_and(|matched| matched.index + CAUGHT_UP_WITHIN >= last)
        })
        .copied()
        .collect();
    if !ready.is_empty() {
        group
            .add_voters(ready.clone())
            .await
            .map_err(|e| e.to_string())?;
        tracing::info!(group = %group.id(), voters = ?ready, "promoted learners");
    }
    Ok(())
}

async fn any_peer_initialized<S: StateMachine>(group: &Group<S>, wanted: &MemberList) -> bool {
    for (id, member) in &wanted.members {
        if *id == group.node_id() {
            continue;
        }
        let status = group
            .peers()
            .status(
                &group.peers().route(*id, &member.addr),
                group.id(),
                STATUS_TIMEOUT,
            )
            .await;
        if status.is_ok_and(|s| s.initialized) {
            return true;
        }
    }
    false
}
