//! A minimal state machine for testing the cluster crate on its own.
#![allow(dead_code)]

use sessionplane_cluster::{SnapshotWriter, StateMachine};

/// A command the counter takes 100 ms to apply, to keep a write in flight.
pub const SLOW: &str = "slow";

/// Any other command: counted at once.
pub fn tick() -> String {
    "tick".into()
}

/// Counts the commands it applied; a query answers the count.
#[derive(Default)]
pub struct Counter(pub u64);

impl StateMachine for Counter {
    type Command = String;
    type Reply = u64;
    type Query = ();
    type QueryReply = u64;

    fn apply(&mut self, _entry: sessionplane_cluster::Applying, command: String) -> u64 {
        if command == SLOW {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        self.0 += 1;
        self.0
    }
    fn undecodable_command(_error: String) -> u64 {
        0
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
    fn query(&self, _query: ()) -> u64 {
        self.0
    }
    fn undecodable_query(_error: String) -> u64 {
        0
    }
}
