//! The replicated state machines, one folder per Raft group (`site`, `directory`), each with its
//! records, its protocol (the command and reply enums, which never leave this module) and its
//! typed store, the only way the rest of the node proposes to or reads a group.
//!
//! Everything here is deterministic: the only clock is the leader's, carried in each log entry.
//! Of this crate, `state` imports only `crate::model`; the cluster crate encodes the commands
//! and replies.

pub mod directory;
mod error;
pub mod site;

pub use directory::DirectoryStore;
pub use error::StoreError;
pub use site::SiteStore;

pub use rmp_serde::decode::Error as DecodeError;
pub use rmp_serde::encode::Error as EncodeError;

/// Encodes a snapshot, or the body of a node call (which is not a group's command).
pub fn encode<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, EncodeError> {
    rmp_serde::to_vec(value)
}

/// Encodes into a buffer the caller sized.
pub fn encode_into<T: serde::Serialize>(
    buffer: &mut Vec<u8>,
    value: &T,
) -> Result<(), EncodeError> {
    rmp_serde::encode::write(buffer, value)
}

pub fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    rmp_serde::from_slice(bytes)
}
