//! Which peers are up, and in which incarnation.
//!
//! Every node counts its starts (its *incarnation*, persisted and bumped on every start) and
//! answers `/node/hello` on the cluster listener with its id and incarnation. [`Liveness`] asks
//! a fixed list of peers every second; a peer is up while its last answer is recent. Domain code
//! uses this to tell whether what a node registered (a connection) can still be held by it: the
//! node must be up and in the same incarnation. The hello itself ([`NodeHello`]) is a message, in
//! `wire.rs`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::network::PeerClient;
use crate::types::NodeId;
use crate::wire::NodeHello;

/// How often peers are asked.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);
/// A peer whose last answer is older than this is down.
pub const UP_WITHIN: Duration = Duration::from_secs(3);

/// A peer as this node last saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerState {
    Up {
        incarnation: u64,
    },
    /// No answer for `for_at_least` (counted from when this node started watching, if it never
    /// had one).
    Down {
        for_at_least: Duration,
    },
}

#[derive(Clone, Copy)]
struct Seen {
    incarnation: u64,
    at: Instant,
}

/// The liveness of this node's peers. Cheap to clone.
#[derive(Clone)]
pub struct Liveness {
    me: NodeHello,
    since: Instant,
    seen: Arc<RwLock<HashMap<NodeId, Seen>>>,
    /// The peers [`watch_peers`] asks.
    watched: Arc<RwLock<HashSet<NodeId>>>,
}

impl Liveness {
    pub(crate) fn new(me: NodeHello) -> Self {
        Self {
            me,
            since: Instant::now(),
            seen: Default::default(),
            watched: Default::default(),
        }
    }

    pub fn me(&self) -> NodeHello {
        self.me
    }

    /// A peer's state now; this node itself is always up.
    pub fn state(&self, node: NodeId) -> PeerState {
        if node == self.me.node_id {
            return PeerState::Up {
                incarnation: self.me.incarnation,
            };
        }
        let seen = self
            .seen
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&node)
            .copied();
        match seen {
            Some(seen) if seen.at.elapsed() <= UP_WITHIN => PeerState::Up {
                incarnation: seen.incarnation,
            },
            Some(seen) => PeerState::Down {
                for_at_least: seen.at.elapsed().saturating_sub(UP_WITHIN),
            },
            None => PeerState::Down {
                for_at_least: self.since.elapsed(),
            },
        }
    }

    /// How long ago `node` last answered; `None` if it never did.
    pub fn last_heard(&self, node: NodeId) -> Option<Duration> {
        self.seen
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&node)
            .map(|seen| seen.at.elapsed())
    }

    /// Whether `node` is one of the peers this node probes (or this node itself).
    pub fn watches(&self, node: NodeId) -> bool {
        node == self.me.node_id
            || self
                .watched
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .contains(&node)
    }

    /// Whether `node` is up in exactly `incarnation`.
    pub fn is_up_as(&self, node: NodeId, incarnation: u64) -> bool {
        self.state(node) == PeerState::Up { incarnation }
    }

    fn record(&self, hello: NodeHello) {
        self.seen.write().unwrap_or_else(|p| p.into_inner()).insert(
            hello.node_id,
            Seen {
                incarnation: hello.incarnation,
                at: Instant::now(),
            },
        );
    }
}

/// Asks every peer in `peers` (id, cluster address) for its hello, every [`PROBE_EVERY`], until
/// the task is dropped.
pub async fn watch_peers(liveness: Liveness, client: PeerClient, peers: Vec<(NodeId, String)>) {
    let peers: Vec<(NodeId, String)> = peers
        .into_iter()
        .filter(|(id, _)| *id != liveness.me.node_id)
        .collect();
    liveness
        .watched
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .extend(peers.iter().map(|(id, _)| *id));
    let mut tick = tokio::time::interval(PROBE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let probes = peers.iter().map(|(id, addr)| {
            let (client, liveness) = (client.clone(), liveness.clone());
            async move {
                match client.hello(addr, PROBE_EVERY).await {
                    Ok(hello) if hello.node_id == *id => liveness.record(hello),
                    Ok(hello) => tracing::warn!(
                        expected = id,
                        answered = hello.node_id,
                        %addr,
                        "a peer answered with another node id"
                    ),
                    Err(e) => tracing::trace!(peer = id, error = %e, "hello unanswered"),
                }
            }
        });
        futures_util::future::join_all(probes).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_is_up_while_recently_seen_and_only_as_that_incarnation() {
        let liveness = Liveness::new(NodeHello {
            node_id: 1,
            incarnation: 4,
        });
        assert!(liveness.is_up_as(1, 4));
        assert!(!liveness.is_up_as(1, 3));
        assert!(matches!(liveness.state(2), PeerState::Down { .. }));
        liveness.record(NodeHello {
            node_id: 2,
            incarnation: 7,
        });
        assert!(liveness.is_up_as(2, 7));
        assert!(!liveness.is_up_as(2, 6));
        liveness.seen.write().unwrap().get_mut(&2).unwrap().at -=
            UP_WITHIN + Duration::from_secs(5);
        match liveness.state(2) {
            PeerState::Down { for_at_least } => assert!(for_at_least >= Duration::from_secs(5)),
            up => panic!("expected down, got {up:?}"),
        }
    }
}
