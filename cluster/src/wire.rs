//! What travels between nodes, and how: the messages peers exchange over the cluster listener
//! ([`ForwardedCommand`], [`Refusal`], [`NodeHello`], [`GroupStatus`]), their MessagePack
//! encoding ([`encode`], [`decode`], also used for what this crate stores on disk), the header
//! that carries the cluster secret, and the bound on a request body.
//!
//! Both sides of the wire read this module: the client (`network.rs`) and the listener
//! (`server.rs`). Of this crate it imports only `types.rs`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::types::{GroupId, NodeId};

/// The header that carries the cluster secret on every peer request.
pub const SECRET_HEADER: &str = "x-sessionplane-cluster-secret";

/// Largest request body the cluster listener reads (an append batch or a snapshot chunk).
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// Why a leader-side operation asked for by a peer did not happen.
#[derive(Debug, Serialize, Deserialize, thiserror::Error)]
pub(crate) enum Refusal {
    #[error("this node is not the leader")]
    NotLeader,
    #[error("{0}")]
    Failed(String),
}

/// A command or query sent to a peer. `forwarded` marks one a member already routed to the
/// leader: the leader does not forward it again, so two nodes with stale views never bounce it.
#[derive(Serialize, Deserialize)]
pub(crate) struct ForwardedCommand {
    #[serde(with = "serde_bytes")]
    pub(crate) payload: Vec<u8>,
    pub(crate) forwarded: bool,
}

/// Asks a member whether it has applied `index`, waiting at most `wait_ms` for it.
#[derive(Serialize, Deserialize)]
pub(crate) struct AppliedQuery {
    pub(crate) index: u64,
    pub(crate) wait_ms: u64,
}

/// What `/node/hello` answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeHello {
    pub node_id: NodeId,
    pub incarnation: u64,
}

/// A group as seen by one node, for `/cluster/status` and for bootstrap checks.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GroupStatus {
    pub group: GroupId,
    pub node_id: NodeId,
    pub initialized: bool,
    pub role: String,
    pub leader: Option<NodeId>,
    pub term: u64,
    pub last_log_index: Option<u64>,
    pub last_applied_index: Option<u64>,
    pub snapshot_index: Option<u64>,
    /// The log is purged up to here: a member behind it catches up from a snapshot.
    pub purged_index: Option<u64>,
    pub voters: Vec<NodeId>,
    /// Every member with the address this node dials it at.
    pub members: BTreeMap<NodeId, String>,
    /// Leader only: each follower's last replicated index.
    pub replication: Option<BTreeMap<NodeId, Option<u64>>>,
    /// Leader only: milliseconds since each follower last acknowledged the leader (`None`:
    /// never since this node leads).
    #[serde(default)]
    pub last_contact_ms: Option<BTreeMap<NodeId, Option<u64>>>,
}

pub(crate) fn encode<T: serde::Serialize + ?Sized>(
    value: &T,
) -> Result<Vec<u8>, rmp_serde::encode::Error> {
    rmp_serde::to_vec(value)
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
) -> Result<T, rmp_serde::decode::Error> {
    rmp_serde::from_slice(bytes)
}
