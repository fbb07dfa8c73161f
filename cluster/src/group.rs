//! The handle the rest of the node uses to talk to one Raft group.
//!
//! Callers never see "not leader": a follower forwards proposals and read-index requests to the
//! leader over the cluster listener, and waits for an election when there is no leader yet.
//!
//! [`Group`] is typed by its state machine: it encodes commands and decodes replies, so that
//! callers only see the domain's types; its core, which the listener serves and the batcher
//! feeds, carries the encoded bytes.
//!
//! This module owns [`Group`], its untyped core that the listener serves, and [`ClusterError`];
//! the status a group reports ([`GroupStatus`]) travels between nodes, so it is in `wire.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::async_runtime::WatchReceiver;
use openraft::error::RaftError;
use openraft::{ChangeMembers, ServerState};
use serde_bytes::ByteBuf;

use crate::batcher::{Batcher, MAX_COMMAND_BYTES};
use crate::lease::ReadLease;
use crate::network::{PeerClient, PeerError};
use crate::state_machine::{Queryable, Raft, StateHandle, StateMachine};
use crate::types::{GroupId, Member, NodeId, RaftMetrics};
use crate::wire::{decode, encode, ForwardedCommand, GroupStatus, Refusal};

/// How often a caller waiting for a leader looks again.
const LEADER_POLL: Duration = Duration::from_millis(20);

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("group {group} has no reachable leader after {waited:?}")]
    NoLeader { group: GroupId, waited: Duration },
    /// The command was sent but its outcome is unknown: it may or may not have been applied.
    #[error("group {group}: outcome unknown: {reason}")]
    Indeterminate { group: GroupId, reason: String },
    #[error("group {group} is stopped: {reason}")]
    Stopped { group: GroupId, reason: String },
    #[error("group {group}: membership change refused: {reason}")]
    Membership { group: GroupId, reason: String },
    #[error("a command of {size} bytes is over the limit of {limit}")]
    CommandTooLarge { size: usize, limit: usize },
    /// A command that does not encode, or a reply this node cannot read: the state machine that
    /// applied it answered in a form of another version, or not the command's own kind of
    /// answer. The command may have been applied.
    #[error("group {group}: {reason}")]
    Codec { group: GroupId, reason: String },
}

/// The part of a group that does not depend on its state machine's type.
pub(crate) struct GroupCore {
    pub(crate) id: GroupId,
    pub(crate) node_id: NodeId,
    pub(crate) raft: Raft,
    pub(crate) peers: PeerClient,
    pub(crate) timeout: Duration,
    pub(crate) queryable: Arc<dyn Queryable>,
    batcher: Batcher,
    membership_changes: tokio::sync::Mutex<()>,
    pub(crate) lease: ReadLease,
}

/// One Raft group on this node, with read access to its applied state.
pub struct Group<S> {
    core: Arc<GroupCore>,
    state: StateHandle<S>,
}

impl<S> Clone for Group<S> {
    fn clone(&self) -> Self {
        Self {
            core: self.core.clone(),
            state: self.state.clone(),
        }
    }
}

impl<S: StateMachine> Group<S> {
    pub(crate) fn new(core: Arc<GroupCore>, state: StateHandle<S>) -> Self {
        Self { core, state }
    }

    pub fn id(&self) -> &GroupId {
        &self.core.id
    }

    pub(crate) fn core(&self) -> &Arc<GroupCore> {
        &self.core
    }

    pub fn node_id(&self) -> NodeId {
        self.core.node_id
    }

    pub(crate) fn peers(&self) -> &PeerClient {
        &self.core.peers
    }

    /// The applied state on this node (possibly behind the leader: see [`Self::read_barrier`]).
    pub fn state(&self) -> &StateHandle<S> {
        &self.state
    }

    /// Replicates `command`, waits until it is applied, and returns the state machine's answer.
    /// Commands must be idempotent: a command whose leader stepped down mid-way is sent again.
    pub async fn propose(&self, command: S::Command) -> Result<S::Reply, ClusterError> {
        let bytes = encode(&command)
            .map_err(|e| self.codec_error(format!("a command that does not encode: {e}")))?;
        let reply = self.core.propose(bytes).await?;
        decode(&reply).map_err(|e| self.codec_error(format!("a reply that does not decode: {e}")))
    }

    /// The error for an answer this node cannot read (see [`ClusterError::Codec`]); the domain's
    /// store uses it too, for a reply that is not its command's.
    pub fn codec_error(&self, reason: String) -> ClusterError {
        ClusterError::Codec {
            group: self.core.id.clone(),
            reason,
        }
    }

    /// Returns once this node's state reflects every write committed before the call.
    pub async fn read_barrier(&self) -> Result<(), ClusterError> {
        self.core.read_barrier().await
    }

    pub fn metrics(&self) -> RaftMetrics {
        self.core.raft.metrics().borrow_watched().clone()
    }

    /// Waits until `condition` holds for this node's metrics; false on timeout or shutdown.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        what: &str,
        condition: impl Fn(&RaftMetrics) -> bool + Send,
    ) -> bool {
        self.core
            .raft
            .wait(Some(timeout))
            .metrics(condition, what)
            .await
            .is_ok()
    }

    /// Why the group stopped for good (a storage failure, say), if it has.
    pub fn stopped(&self) -> Option<String> {
        self.core
            .raft
            .metrics()
            .borrow_watched()
            .running_state
            .as_ref()
            .err()
            .map(|fatal| fatal.to_string())
    }

    pub fn is_leader(&self) -> bool {
        self.core.raft.metrics().borrow_watched().current_leader == Some(self.core.node_id)
    }

    pub async fn status(&self) -> GroupStatus {
        self.core.status().await
    }

    /// The same, without waiting: for a metrics scrape.
    pub fn status_now(&self) -> GroupStatus {
        self.core.status_now()
    }

    /// Makes this node the first member of a new group. Refused when a member already exists.
    pub async fn initialize(&self, me: Member) -> Result<(), ClusterError> {
        let members = BTreeMap::from([(self.core.node_id, me)]);
        self.core
            .raft
            .initialize(members)
            .await
            .map_err(|e| self.core.membership_error(e))
    }

    pub async fn is_initialized(&self) -> bool {
        self.core.raft.is_initialized().await.unwrap_or(false)
    }

    /// Adds `id` as a learner (leader only; returns once the change is committed).
    pub async fn add_learner(&self, id: NodeId, member: Member) -> Result<(), ClusterError> {
        let _serial = self.core.membership_changes.lock().await;
        self.core
            .raft
            .add_learner(id, member, false)
            .await
            .map_err(|e| self.core.membership_error(e))?;
        Ok(())
    }

    /// Promotes learners to voters (leader only).
    pub async fn add_voters(&self, ids: BTreeSet<NodeId>) -> Result<(), ClusterError> {
        let _serial = self.core.membership_changes.lock().await;
        let change = ChangeMembers::AddVoterIds(ids);
        self.core
            .raft
            .change_membership(change, false)
            .await
            .map_err(|e| self.core.membership_error(e))?;
        Ok(())
    }

    /// Removes `id` from the group: from the voters first, then from the members (leader only).
    pub async fn remove_member(&self, id: NodeId) -> Result<(), ClusterError> {
        let _serial = self.core.membership_changes.lock().await;
        let voters: BTreeSet<NodeId> = self
            .metrics()
            .membership_config
            .membership()
            .voter_ids()
            .collect();
        if voters.contains(&id) {
            let change = ChangeMembers::RemoveVoters(BTreeSet::from([id]));
            self.core
                .raft
                .change_membership(change, false)
                .await
                .map_err(|e| self.core.membership_error(e))?;
        }
        let change = ChangeMembers::RemoveNodes(BTreeSet::from([id]));
        self.core
            .raft
            .change_membership(change, false)
            .await
            .map_err(|e| self.core.membership_error(e))?;
        Ok(())
    }

    pub async fn shutdown(&self) {
        let _ = self.core.raft.shutdown().await;
    }
}

impl GroupCore {
    pub(crate) fn new(
        id: GroupId,
        node_id: NodeId,
        raft: Raft,
        peers: PeerClient,
        timeout: Duration,
        read_lease: Duration,
        queryable: Arc<dyn Queryable>,
    ) -> Self {
        let batcher = Batcher::start(raft.clone());
        Self {
            id,
            node_id,
            raft,
            peers,
            timeout,
            queryable,
            batcher,
            membership_changes: Default::default(),
            lease: ReadLease::new(read_lease),
        }
    }

    pub(crate) async fn propose(&self, command: Vec<u8>) -> Result<Vec<u8>, ClusterError> {
        if command.len() > MAX_COMMAND_BYTES {
            return Err(ClusterError::CommandTooLarge {
                size: command.len(),
                limit: MAX_COMMAND_BYTES,
            });
        }
        let started = Instant::now();
        loop {
            match self.leader() {
                Some((leader, _)) if leader == self.node_id => {
                    match self.propose_as_leader(command.clone()).await {
                        Ok(reply) => return Ok(reply),
                        Err(Refusal::NotLeader) => {}
                        Err(Refusal::Failed(reason)) => return Err(self.indeterminate(reason)),
                    }
                }
                Some((_, addr)) => {
                    let request = ForwardedCommand {
                        payload: command.clone(),
                        forwarded: true,
                    };
                    let answer: Result<Result<ByteBuf, Refusal>, PeerError> = self
                        .peers
                        .call(&addr, &self.id, "propose", &request, self.timeout)
                        .await;
                    match answer {
                        Ok(Ok(reply)) => return Ok(reply.into_vec()),
                        Ok(Err(Refusal::NotLeader)) | Err(PeerError::Unreachable { .. }) => {}
                        Ok(Err(Refusal::Failed(reason))) => return Err(self.indeterminate(reason)),
                        Err(e) => return Err(self.indeterminate(e.to_string())),
                    }
                }
                None => {}
            }
            self.pause_or_give_up(started).await?;
        }
    }

    pub(crate) async fn propose_as_leader(&self, command: Vec<u8>) -> Result<Vec<u8>, Refusal> {
        if command.len() > MAX_COMMAND_BYTES {
            let size = command.len();
            return Err(Refusal::Failed(format!(
                "a command of {size} bytes is over the limit"
            )));
        }
        self.batcher.submit(command).await
    }

    /// Waits until this node has applied every entry committed before the call; a barrier that
    /// completes extends this node's read lease from the moment it started.
    pub(crate) async fn read_barrier(&self) -> Result<(), ClusterError> {
        let started = Instant::now();
        let index = self.read_index(started).await?;
        self.wait_applied(index, started).await?;
        self.lease.count_barrier();
        if self.member_since(index) {
            self.lease.extend_from(started);
        } else if !self.is_member() {
            self.lease.give_up();
        }
        Ok(())
    }

    /// The index a linearizable read must see, from the leader (this node or another).
    async fn read_index(&self, started: Instant) -> Result<Option<u64>, ClusterError> {
        loop {
            let read_index = match self.leader() {
                Some((leader, _)) if leader == self.node_id => self.read_index_as_leader().await,
                Some((_, addr)) => {
                    let answer: Result<Result<Option<u64>, Refusal>, PeerError> = self
                        .peers
                        .call(&addr, &self.id, "read-index", &(), self.timeout)
                        .await;
                    match answer {
                        Ok(result) => result,
                        Err(PeerError::Unreachable { .. }) => Err(Refusal::NotLeader),
                        Err(e) => Err(Refusal::Failed(e.to_string())),
                    }
                }
                None => Err(Refusal::NotLeader),
            };
            match read_index {
                Ok(index) => return Ok(index),
                Err(Refusal::NotLeader) => self.pause_or_give_up(started).await?,
                Err(Refusal::Failed(reason)) => return Err(self.indeterminate(reason)),
            }
        }
    }

    /// Whether this node is a member under a membership entry at or before `index`: a node
    /// that joined after `index` may have been left out of a settling it should have been in.
    fn member_since(&self, index: Option<u64>) -> bool {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow_watched();
        let config = &metrics.membership_config;
        let entry = config.log_id().as_ref().map(|id| id.index());
        entry <= index && config.get_node(&self.node_id).is_some()
    }

    fn is_member(&self) -> bool {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow_watched();
        metrics.membership_config.get_node(&self.node_id).is_some()
    }

    /// Confirms leadership with a quorum and returns the index a linearizable read must see.
    pub(crate) async fn read_index_as_leader(&self) -> Result<Option<u64>, Refusal> {
        match self
            .raft
            .get_read_log_id(openraft::ReadPolicy::ReadIndex)
            .await
        {
            Ok((read_log_id, _)) => Ok(Some(read_log_id.index())),
            Err(RaftError::APIError(_)) => Err(Refusal::NotLeader),
            Err(e) => Err(Refusal::Failed(e.to_string())),
        }
    }

    async fn wait_applied(&self, index: Option<u64>, started: Instant) -> Result<(), ClusterError> {
        let left = self
            .timeout
            .saturating_sub(started.elapsed())
            .max(Duration::from_millis(1));
        self.raft
            .wait(Some(left))
            .applied_index_at_least(index, "read barrier")
            .await
            .map(|_| ())
            .map_err(|e| self.indeterminate(format!("not caught up with the leader: {e}")))
    }

    async fn pause_or_give_up(&self, started: Instant) -> Result<(), ClusterError> {
        if let Err(fatal) = &self.raft.metrics().borrow_watched().running_state {
            return Err(ClusterError::Stopped {
                group: self.id.clone(),
                reason: fatal.to_string(),
            });
        }
        if started.elapsed() >= self.timeout {
            return Err(ClusterError::NoLeader {
                group: self.id.clone(),
                waited: started.elapsed(),
            });
        }
        tokio::time::sleep(LEADER_POLL).await;
        Ok(())
    }

    /// The current leader and its cluster address, as this node knows them.
    pub(crate) fn leader(&self) -> Option<(NodeId, String)> {
        let metrics = self.raft.metrics();
        let metrics = metrics.borrow_watched();
        let leader = metrics.current_leader?;
        let node = metrics.membership_config.membership().get_node(&leader)?;
        Some((leader, self.peers.route(leader, &node.addr)))
    }

    pub(crate) async fn status(&self) -> GroupStatus {
        let initialized = self.raft.is_initialized().await.unwrap_or(false);
        self.status_with(initialized)
    }

    /// The status from the metrics alone: initialized when a membership is known.
    pub(crate) fn status_now(&self) -> GroupStatus {
        let initialized = self
            .raft
            .metrics()
            .borrow_watched()
            .membership_config
            .membership()
            .voter_ids()
            .next()
            .is_some();
        self.status_with(initialized)
    }

    fn status_with(&self, initialized: bool) -> GroupStatus {
        let m = self.raft.metrics().borrow_watched().clone();
        let membership = m.membership_config.membership();
        GroupStatus {
            group: self.id.clone(),
            node_id: self.node_id,
            initialized,
            role: role_name(m.state).into(),
            leader: m.current_leader,
            term: m.current_term,
            last_log_index: m.last_log_index,
            last_applied_index: m.last_applied.map(|id| id.index),
            snapshot_index: m.snapshot.map(|id| id.index),
            purged_index: m.purged.map(|id| id.index),
            voters: membership.voter_ids().collect(),
            members: membership
                .nodes()
                .map(|(id, node)| (*id, self.peers.route(*id, &node.addr)))
                .collect(),
            replication: m.replication.as_ref().map(|r| {
                r.iter()
                    .map(|(id, log)| (*id, log.map(|l| l.index)))
                    .collect()
            }),
            last_contact_ms: m.heartbeat.as_ref().map(|acked| {
                acked
                    .iter()
                    .map(|(id, at)| {
                        (
                            *id,
                            at.map(|at| openraft::Instant::elapsed(&*at).as_millis() as u64),
                        )
                    })
                    .collect()
            }),
        }
    }

    pub(crate) fn indeterminate(&self, reason: String) -> ClusterError {
        ClusterError::Indeterminate {
            group: self.id.clone(),
            reason,
        }
    }

    fn membership_error(&self, e: impl std::fmt::Display) -> ClusterError {
        ClusterError::Membership {
            group: self.id.clone(),
            reason: e.to_string(),
        }
    }
}

fn role_name(state: ServerState) -> &'static str {
    match state {
        ServerState::Leader => "leader",
        ServerState::Follower => "follower",
        ServerState::Candidate => "candidate",
        ServerState::Learner => "learner",
        ServerState::Shutdown => "shutdown",
    }
}
