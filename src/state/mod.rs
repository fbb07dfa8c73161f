//! The replicated state machines and their commands. Everything here is deterministic: the only
//! clock is the leader's, carried in each log entry.

pub mod directory;
pub mod site;

pub use rmp_serde::decode::Error as DecodeError;
pub use rmp_serde::encode::Error as EncodeError;

/// Encodes a command, query or reply for the log or the wire.
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
