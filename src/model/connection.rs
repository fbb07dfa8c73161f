//! A websocket connection held by one node for one session.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Who holds a connection: `<N.S.I>` = node id, the connection's sequence number in that
/// node's current start, and the node's incarnation (bumped on every start).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Pid {
    pub node_id: u64,
    pub sequence: u64,
    pub incarnation: u64,
}

impl fmt::Display for Pid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "<{}.{}.{}>",
            self.node_id, self.sequence, self.incarnation
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    pub conn_id: Uuid,
    pub session_id: Uuid,
    /// `name@host` of the holding node.
    pub node: Arc<str>,
    pub pid: Pid,
    /// The leader's clock when the connection was registered (ms since the epoch).
    pub opened_at_ms: u64,
}

/// What a node asks to register; the leader adds the time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewConnection {
    pub conn_id: Uuid,
    pub session_id: Uuid,
    pub node: String,
    pub pid: Pid,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pids_print_like_erlang_pids() {
        let pid = Pid {
            node_id: 3,
            sequence: 11_647,
            incarnation: 54,
        };
        assert_eq!(pid.to_string(), "<3.11647.54>");
    }
}
