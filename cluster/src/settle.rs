//! Settled writes and the read lease's renewal (the rule is `lease.rs`'s).
//!
//! A settled write is acknowledged once every member of the group has applied it, or, for a
//! member that did not say so in time, once its lease from before the write has lapsed. A node
//! whose lease holds may then answer the reads such writes protect from its own state, with no
//! round trip to the leader: a revoked session is gone from it, or it holds no lease and takes a
//! barrier (which a node cut off from its leader cannot pass).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use openraft::async_runtime::WatchReceiver;
use tokio::sync::watch;

use crate::group::{ClusterError, Group, GroupCore};
use crate::network::PeerError;
use crate::state_machine::StateMachine;
use crate::types::NodeId;
use crate::wire::{AppliedQuery, Refusal};

/// How long a member that cannot be reached is left before it is asked again.
const RETRY: Duration = Duration::from_millis(20);

/// Reads a node answered, by how (see [`Group::read_counts`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadCounts {
    pub leased: u64,
    pub barriers: u64,
}

/// What a settling came to.
#[derive(Debug, Default)]
pub(crate) struct Settlement {
    /// Members that said they applied the write.
    pub(crate) confirmed: Vec<NodeId>,
    /// Members that did not, in time: their leases lapsed instead.
    pub(crate) lapsed: Vec<NodeId>,
}

impl<S: StateMachine> Group<S> {
    /// As [`Self::propose`], but returns only once no member can answer a leased read without
    /// this write (see [`Self::holds_read_lease`]): for revocations. A member that does not
    /// confirm it applied the write delays the answer by at most the lease and a quarter.
    pub async fn propose_settled(&self, command: S::Command) -> Result<S::Reply, ClusterError> {
        let reply = self.propose(command).await?;
        let settlement = self.core().settle().await;
        if !settlement.lapsed.is_empty() {
            tracing::info!(
                group = %self.id(),
                lapsed = ?settlement.lapsed,
                confirmed = settlement.confirmed.len(),
                "a settled write waited out the leases of members that did not confirm it"
            );
        }
        Ok(reply)
    }

    /// Whether this node's state may answer a read without a barrier, for what settled writes
    /// change: every settled write acknowledged anywhere has been applied here.
    pub fn holds_read_lease(&self) -> bool {
        self.core().lease.holds()
    }

    /// Reads this node's state if its read lease holds (see [`Self::holds_read_lease`]).
    pub fn read_leased<T>(&self, read: impl FnOnce(&S) -> T) -> Option<T> {
        if !self.core().lease.holds() {
            return None;
        }
        self.core().lease.count_leased_read();
        Some(self.state().read(read))
    }

    /// How many reads this node answered under its lease, and how many barriers it completed.
    pub fn read_counts(&self) -> ReadCounts {
        ReadCounts {
            leased: self.core().lease.leased_reads(),
            barriers: self.core().lease.barriers(),
        }
    }

    /// Keeps this node's read lease renewed until `stop`: a barrier every quarter of the period.
    pub async fn keep_read_lease(&self, mut stop: watch::Receiver<bool>) {
        let core = self.core();
        let every = core.lease.period() / 4;
        let mut members = core.members();
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = tokio::time::sleep(every) => {}
            }
            if let Err(e) = core.read_barrier().await {
                tracing::debug!(group = %self.id(), error = %e, "could not renew the read lease");
            }
            let now = core.members();
            for (id, addr) in members {
                if !now.contains_key(&id) {
                    core.lease.saw_removed(id, addr);
                }
            }
            members = now;
        }
    }
}

impl GroupCore {
    /// Every member but this node, with the address it is dialled at.
    fn members(&self) -> BTreeMap<NodeId, String> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow_watched();
        metrics
            .membership_config
            .nodes()
            .filter(|(id, _)| **id != self.node_id)
            .map(|(id, node)| (*id, self.peers.route(*id, &node.addr)))
            .collect()
    }

    /// Waits until every member has applied what this node saw committed, or its lease lapsed.
    pub(crate) async fn settle(&self) -> Settlement {
        let deadline = Instant::now() + self.lease.settle_wait();
        let Some(target) = self.settle_target(deadline).await else {
            tokio::time::sleep_until(deadline.into()).await;
            return Settlement {
                lapsed: self.members().into_keys().collect(),
                ..Settlement::default()
            };
        };
        // This node first: its membership is then at least the write's.
        let _ = self.applied_at_least(target, left(deadline)).await;
        let mut members = self.members();
        members.extend(self.lease.recently_removed());
        let answers = join_all(members.into_iter().map(|(id, addr)| async move {
            (id, self.confirm_applied(&addr, target, deadline).await)
        }))
        .await;
        let (confirmed, lapsed): (Vec<_>, Vec<_>) = answers.into_iter().partition(|(_, ok)| *ok);
        Settlement {
            confirmed: confirmed.into_iter().map(|(id, _)| id).collect(),
            lapsed: lapsed.into_iter().map(|(id, _)| id).collect(),
        }
    }

    /// An index at or after every entry committed before now: the leader's read index. (Not
    /// the leader's applied index from its metrics: they are published after the write's answer,
    /// so they may still be short of the write.)
    async fn settle_target(&self, deadline: Instant) -> Option<u64> {
        let (leader, addr) = self.leader()?;
        let answer = if leader == self.node_id {
            self.read_index_as_leader().await
        } else {
            let answer: Result<Result<Option<u64>, Refusal>, PeerError> = self
                .peers
                .call(&addr, &self.id, "read-index", &(), left(deadline))
                .await;
            answer.ok()?
        };
        answer.ok()?
    }

    /// Asks the member at `addr` until `deadline` whether it has applied `target`.
    async fn confirm_applied(&self, addr: &str, target: u64, deadline: Instant) -> bool {
        loop {
            let wait = left(deadline);
            if wait.is_zero() {
                return false;
            }
            let query = AppliedQuery {
                index: target,
                wait_ms: wait.as_millis() as u64,
            };
            let answer: Result<bool, PeerError> = self
                .peers
                .call(addr, &self.id, "applied", &query, wait + RETRY)
                .await;
            match answer {
                Ok(applied) => return applied,
                Err(_) => tokio::time::sleep(RETRY.min(left(deadline))).await,
            }
        }
    }

    /// Whether this node applies `index` within `wait`.
    pub(crate) async fn applied_at_least(&self, index: u64, wait: Duration) -> bool {
        self.raft
            .wait(Some(wait))
            .applied_index_at_least(Some(index), "a settled write")
            .await
            .is_ok()
    }
}

fn left(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}
