//! A minimal state machine for testing the cluster crate on its own.
#![allow(dead_code)]

use sessionplane_cluster::{SnapshotWriter, StateMachine};

/// A command the counter takes 100 ms to apply, to keep a write in flight.
pub const SLOW: &[u8] = b"slow";

/// Counts the commands it applied; a query answers the count.
#[derive(Default)]
pub struct Counter(pub u64);

impl StateMachine for Counter {
    fn apply(&mut self, _at_ms: u64, command: &[u8]) -> Vec<u8> {
        if command == SLOW {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        self.0 += 1;
        self.0.to_be_bytes().to_vec()
    }
    fn snapshot(&self) -> SnapshotWriter {
        let value = self.0;
        Box::new(move || value.to_be_bytes().to_vec())
    }
    fn restore(&self, bytes: &[u8]) -> Result<Self, String> {
        let bytes: [u8; 8] = bytes
            .try_into()
            .map_err(|_| "bad counter snapshot".to_string())?;
        Ok(Counter(u64::from_be_bytes(bytes)))
    }
    fn query(&self, _query: &[u8]) -> Vec<u8> {
        self.0.to_be_bytes().to_vec()
    }
}

pub fn count(bytes: &[u8]) -> u64 {
    u64::from_be_bytes(bytes.try_into().expect("an 8-byte count"))
}
