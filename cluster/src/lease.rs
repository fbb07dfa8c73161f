//! A node's read lease on its group: for a while after a read barrier, this node's applied state
//! may answer a read without another barrier, for the reads a [settled](crate::Group::propose_settled)
//! write protects.
//!
//! The rule that makes it safe, in two halves:
//! - A barrier that starts at `t` (this node's monotonic clock, before the read-index request
//!   leaves) and completes gives a lease until `t + period`: the node has then applied every
//!   entry committed before `t`.
//! - A settled write is acknowledged only once every member has applied it, or `settle_wait`
//!   (more than `period`, for clock-rate drift) has passed since its commit was seen, so that a
//!   member that did not answer holds no lease from before the commit any longer.
//!
//! This module only keeps the times; `group.rs` takes the barriers and runs the settling.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::types::NodeId;

/// How long a removed member is still waited for (in `settle_wait`s): a lease it took just
/// before its removal may outlive the removal.
const REMOVED_KEPT_FOR: u32 = 4;

pub(crate) struct ReadLease {
    period: Duration,
    fresh_until: Mutex<Option<Instant>>,
    /// Members this node saw leave the group, with their address and when it saw them leave.
    removed: Mutex<Vec<(NodeId, String, Instant)>>,
    leased_reads: AtomicU64,
    barriers: AtomicU64,
}

impl ReadLease {
    pub(crate) fn new(period: Duration) -> Self {
        Self {
            period,
            fresh_until: Mutex::new(None),
            removed: Mutex::new(Vec::new()),
            leased_reads: AtomicU64::new(0),
            barriers: AtomicU64::new(0),
        }
    }

    pub(crate) fn period(&self) -> Duration {
        self.period
    }

    /// Whether the lease holds now.
    pub(crate) fn holds(&self) -> bool {
        let fresh_until = *self.fresh_until.lock().unwrap_or_else(|p| p.into_inner());
        fresh_until.is_some_and(|until| Instant::now() < until)
    }

    pub(crate) fn count_leased_read(&self) {
        self.leased_reads.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_barrier(&self) {
        self.barriers.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn leased_reads(&self) -> u64 {
        self.leased_reads.load(Ordering::Relaxed)
    }

    pub(crate) fn barriers(&self) -> u64 {
        self.barriers.load(Ordering::Relaxed)
    }

    /// Extends the lease after a barrier that started at `started` completed.
    pub(crate) fn extend_from(&self, started: Instant) {
        let until = started + self.period;
        let mut fresh_until = self.fresh_until.lock().unwrap_or_else(|p| p.into_inner());
        if fresh_until.is_none_or(|current| current < until) {
            *fresh_until = Some(until);
        }
    }

    /// Gives the lease up (this node is no longer a member).
    pub(crate) fn give_up(&self) {
        *self.fresh_until.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    /// How long after a write's commit was seen no member still holds a lease from before it:
    /// the period and a quarter, far above any drift between two monotonic clocks.
    pub(crate) fn settle_wait(&self) -> Duration {
        self.period + self.period / 4
    }

    pub(crate) fn saw_removed(&self, node: NodeId, addr: String) {
        let mut removed = self.removed.lock().unwrap_or_else(|p| p.into_inner());
        removed.retain(|(id, _, _)| *id != node);
        removed.push((node, addr, Instant::now()));
    }

    /// The members removed recently enough that they may still hold a lease.
    pub(crate) fn recently_removed(&self) -> Vec<(NodeId, String)> {
        let kept_for = self.settle_wait() * REMOVED_KEPT_FOR;
        let mut removed = self.removed.lock().unwrap_or_else(|p| p.into_inner());
        removed.retain(|(_, _, at)| at.elapsed() < kept_for);
        removed
            .iter()
            .map(|(id, addr, _)| (*id, addr.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_runs_from_the_barriers_start_and_only_grows() {
        let lease = ReadLease::new(Duration::from_millis(200));
        assert!(!lease.holds());
        let started = Instant::now();
        lease.extend_from(started);
        assert!(lease.holds());
        lease.extend_from(started - Duration::from_millis(150));
        assert!(lease.holds(), "an older barrier does not shorten the lease");
        lease.extend_from(started - Duration::from_millis(300));
        assert!(lease.holds());
        lease.give_up();
        assert!(!lease.holds());
        lease.extend_from(Instant::now() - Duration::from_millis(250));
        assert!(
            !lease.holds(),
            "a barrier older than the period gives no lease"
        );
    }

    #[test]
    fn the_settle_wait_is_longer_than_the_lease() {
        let lease = ReadLease::new(Duration::from_millis(400));
        assert!(lease.settle_wait() > lease.period());
    }

    #[test]
    fn a_removed_member_is_waited_for_a_while_then_forgotten() {
        let lease = ReadLease::new(Duration::from_millis(8));
        lease.saw_removed(3, "n3:1".into());
        lease.saw_removed(3, "n3:1".into());
        assert_eq!(lease.recently_removed(), vec![(3, "n3:1".to_string())]);
        std::thread::sleep(lease.settle_wait() * REMOVED_KEPT_FOR + Duration::from_millis(5));
        assert!(lease.recently_removed().is_empty());
    }
}
