//! `sessionplane-cluster`: Raft groups on openraft, with durable redb storage and an HTTP
//! network between nodes.
//!
//! This crate knows Raft and nothing of sessions. A domain plugs in by implementing
//! [`StateMachine`] over opaque command bytes; it gets back a [`Group`] handle to propose
//! commands, read linearizably, and manage membership. One node hosts any number of groups
//! behind one cluster listener ([`ClusterNode::router`]).
#![forbid(unsafe_code)]
// openraft's storage traits return its `StorageError` (224 bytes) by value, and redb's errors are
// of the same order; boxing them here would only add conversions at every trait boundary.
#![allow(clippy::result_large_err)]

mod batcher;
mod group;
mod host;
mod log_store;
mod membership;
mod network;
mod server;
mod snapshot_store;
mod state_machine;
mod types;

pub use batcher::MAX_COMMAND_BYTES;
pub use group::{ClusterError, Group, GroupStatus};
pub use host::{ClusterNode, ClusterOptions, RaftTuning, SetupError};
pub use log_store::{GroupLog, LogDb};
pub use membership::{keep_membership, MemberList};
pub use network::{PeerClient, PeerError, SECRET_HEADER};
pub use server::MAX_BODY_BYTES;
pub use snapshot_store::SnapshotStore;
pub use state_machine::{SnapshotWriter, StateHandle, StateMachine, StateMachineStore};
pub use types::{now_ms, GroupId, InvalidGroupId, Member, NodeId, Proposal, Reply, TypeConfig};

/// Proposes a command through the node at `addr`, which routes it to its group's leader.
pub async fn propose_through(
    peers: &PeerClient,
    addr: &str,
    group: &GroupId,
    command: Vec<u8>,
    timeout: std::time::Duration,
) -> Result<Result<Vec<u8>, String>, PeerError> {
    let request = group::ForwardedCommand {
        payload: command,
        forwarded: false,
    };
    let answer: Result<serde_bytes::ByteBuf, group::Refusal> = peers
        .call(addr, group, "propose", &request, timeout)
        .await?;
    Ok(answer.map(|r| r.into_vec()).map_err(|e| e.to_string()))
}

/// Reads through the node at `addr`: a linearizable query answered from its own replica.
pub async fn query_through(
    peers: &PeerClient,
    addr: &str,
    group: &GroupId,
    query: Vec<u8>,
    timeout: std::time::Duration,
) -> Result<Result<Vec<u8>, String>, PeerError> {
    let request = group::ForwardedCommand {
        payload: query,
        forwarded: false,
    };
    let answer: Result<serde_bytes::ByteBuf, group::Refusal> =
        peers.call(addr, group, "query", &request, timeout).await?;
    Ok(answer.map(|r| r.into_vec()).map_err(|e| e.to_string()))
}

/// A group's status as the node at `addr` sees it.
pub async fn status_of(
    peers: &PeerClient,
    addr: &str,
    group: &GroupId,
    timeout: std::time::Duration,
) -> Result<GroupStatus, PeerError> {
    peers.call(addr, group, "status", &(), timeout).await
}
