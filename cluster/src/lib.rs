//! `sessionplane-cluster`: Raft groups on openraft, with durable redb storage and an HTTP
//! network between nodes.
//!
//! This crate knows Raft and nothing of sessions. A domain plugs in by implementing
//! [`StateMachine`] over its own command, reply and query types, which this crate encodes for the
//! log and the wire; it gets back a [`Group`] handle to propose typed commands, read
//! linearizably, and manage membership. One node hosts any number of groups
//! behind one cluster listener ([`ClusterNode::router`]).
#![forbid(unsafe_code)]
// A panic on a request, network or storage path is a crash waiting for bad input; tests may.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]
// openraft's storage traits return its `StorageError` (224 bytes) by value, and redb's errors are
// of the same order; boxing them here would only add conversions at every trait boundary.
#![allow(clippy::result_large_err)]

// Each module imports only those below it (see its `use crate::` lines), from the bottom up:
// `types` (nothing of this crate), `wire` (messages between nodes and their encoding),
// `private_fs`, `lease`; storage: `snapshot_store`, `state_machine`, `log_store`; `network` (the
// peer client), `node_calls`, `batcher`, `liveness`; `group`, `settle` (settled writes and the
// lease's renewal), then `server` (the listener, which serves groups); `host` and `membership`
// on top.
mod batcher;
mod group;
mod host;
mod lease;
mod liveness;
mod log_store;
mod membership;
mod network;
mod node_calls;
pub mod private_fs;
mod server;
mod settle;
mod snapshot_store;
mod state_machine;
mod types;
mod wire;

pub use batcher::MAX_COMMAND_BYTES;
pub use group::{ClusterError, Group};
pub use host::{ClusterNode, ClusterOptions, RaftTuning, SetupError};
pub use liveness::{watch_peers, Liveness, PeerState, PROBE_EVERY, UP_WITHIN};
pub use log_store::{GroupLog, LogDb};
pub use membership::{keep_membership, MemberList};
pub use network::{PeerClient, PeerError, PeerRoutes};
pub use node_calls::{CallFuture, NodeCalls};
pub use settle::ReadCounts;
pub use snapshot_store::SnapshotStore;
pub use state_machine::{
    decode_reply, encode_command, Applying, SnapshotWriter, StateHandle, StateMachine,
    StateMachineStore,
};
pub use types::{now_ms, GroupId, InvalidGroupId, Member, NodeId, Proposal, Reply, TypeConfig};
pub use wire::{GroupStatus, NodeHello, MAX_BODY_BYTES, SECRET_HEADER};
