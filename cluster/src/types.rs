//! The openraft type configuration shared by every group, and the group identifier.
//!
//! Every group's log carries encoded command bytes (a [`crate::Group`] encodes its state
//! machine's commands), so that one Raft type serves every group and this crate never learns
//! what a session is.
//!
//! The bottom of the crate: this module imports nothing of it, and every other one may import it.

use std::fmt;
use std::io::Cursor;

use serde::{Deserialize, Serialize};

pub type NodeId = u64;
pub use openraft::BasicNode as Member;

/// One log entry's worth of commands, as stored in the log: the leader's wall clock when it
/// accepted them (so that apply computes expiries deterministically on every node) and the
/// domain's commands, applied in order. Concurrent proposals share an entry, so one fsync and one
/// replication round serve them all.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    pub at_ms: u64,
    pub commands: Vec<serde_bytes::ByteBuf>,
}

impl fmt::Display for Proposal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} commands at {}", self.commands.len(), self.at_ms)
    }
}

/// The state machine's answers to an entry's commands, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply(pub Vec<serde_bytes::ByteBuf>);

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} replies", self.0.len())
    }
}

openraft::declare_raft_types!(
    pub TypeConfig:
        D = Proposal,
        R = Reply,
        NodeId = NodeId,
        Node = Member,
        AsyncRuntime = openraft::TokioRuntime,
);

pub type Entry = openraft::alias::EntryOf<TypeConfig>;
pub type LogId = openraft::alias::LogIdOf<TypeConfig>;
pub type Vote = openraft::alias::VoteOf<TypeConfig>;
pub type SnapshotMeta = openraft::alias::SnapshotMetaOf<TypeConfig>;
pub type StoredMembership = openraft::alias::StoredMembershipOf<TypeConfig>;
pub type RaftMetrics = openraft::RaftMetrics<TypeConfig>;
/// A snapshot as the state machine stores and ships it: the serialized state, whole.
pub type SnapshotData = Cursor<Vec<u8>>;

/// The name of a Raft group, e.g. `directory` or `site:central`.
///
/// Only lowercase ASCII letters, digits and `:_-.` are allowed, at most 64 characters, so a
/// group id is safe in a URL path, a table name and a file name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct GroupId(String);

impl GroupId {
    pub fn new(name: impl Into<String>) -> Result<Self, InvalidGroupId> {
        let name = name.into();
        let valid_char =
            |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || ":_-.".contains(c);
        if name.is_empty() || name.len() > 64 || !name.chars().all(valid_char) {
            return Err(InvalidGroupId(name));
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The group's name with `:` replaced, for use as a file or table name.
    pub fn file_stem(&self) -> String {
        self.0.replace(':', "_")
    }
}

impl fmt::Display for GroupId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for GroupId {
    type Error = InvalidGroupId;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<GroupId> for String {
    fn from(value: GroupId) -> Self {
        value.0
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid group id {0:?}: use 1 to 64 of a-z 0-9 : _ - .")]
pub struct InvalidGroupId(pub String);

/// Milliseconds since the Unix epoch on this node's clock.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_ids_are_validated() {
        assert!(GroupId::new("site:central").is_ok());
        assert!(GroupId::new("directory").is_ok());
        assert!(GroupId::new("").is_err());
        assert!(GroupId::new("Site").is_err());
        assert!(GroupId::new("a/b").is_err());
        assert!(GroupId::new("x".repeat(65)).is_err());
        assert_eq!(GroupId::new("site:east").unwrap().file_stem(), "site_east");
    }
}
