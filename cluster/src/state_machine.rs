//! The bridge between openraft's `RaftStateMachine` and a domain state machine.
//!
//! The domain implements [`StateMachine`] over its own command, reply and query types; this
//! module owns the applied log position, the membership, snapshot building and installation, and
//! the decoding of each committed command (and the encoding of its reply) on the way in and out
//! of the log. The encoding is `wire.rs`'s. Readers share the state through
//! [`StateHandle`], which only ever hands out read access. It also names a group's [`Raft`], the
//! openraft instance over this store.

use std::io::{self, Cursor};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use futures_util::{Stream, TryStreamExt};
use openraft::storage::{EntryResponder, RaftStateMachine};
use openraft::{EntryPayload, RaftSnapshotBuilder};
use openraft_legacy::network_v1::SnapshotReceiverFactory;
use serde_bytes::ByteBuf;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::snapshot_store::SnapshotStore;
use crate::types::{Entry, LogId, Reply, SnapshotData, SnapshotMeta, StoredMembership, TypeConfig};
use crate::wire::{decode, encode};

type Snapshot = openraft::alias::SnapshotOf<TypeConfig, SnapshotData>;

/// A group's Raft, over this crate's state machine store.
pub type Raft = openraft::Raft<TypeConfig, StateMachineStore>;

/// Serializes a frozen copy of the state; runs on a blocking thread while apply goes on.
pub type SnapshotWriter = Box<dyn FnOnce() -> Vec<u8> + Send>;

/// What a domain state machine provides. Every method must be deterministic given the same
/// sequence of `apply` calls: no clocks, no randomness, no I/O.
///
/// The domain names its own types; this crate encodes them (MessagePack, `rmp_serde::to_vec`)
/// for the log and the wire and decodes them on the other side, so a domain never handles the
/// bytes of a command or a reply. Changing how one of these types serializes changes what is on
/// every existing log: old entries must keep decoding.
pub trait StateMachine: Send + Sync + Sized + 'static {
    /// What a proposer asks the group to do: one log entry's element.
    type Command: Serialize + DeserializeOwned + Send + Sync + 'static;
    /// The answer to one applied command, sent back to its proposer.
    type Reply: Serialize + DeserializeOwned + Send + 'static;
    /// A read-only question a peer may ask this node's replica.
    type Query: Serialize + DeserializeOwned + Send + 'static;
    /// The answer to a [`Self::Query`].
    type QueryReply: Serialize + DeserializeOwned + Send + 'static;

    /// Applies one committed command of the entry `entry`.
    fn apply(&mut self, entry: Applying, command: Self::Command) -> Self::Reply;

    /// The answer to a committed command that does not decode (`error` says why): it is answered,
    /// not panicked on, and changes nothing.
    fn undecodable_command(error: String) -> Self::Reply;

    /// Takes a consistent copy of the state, cheaply, and returns the job that serializes it.
    fn snapshot(&self) -> SnapshotWriter;

    /// Builds a whole new state from snapshot bytes (the state is then replaced by it).
    fn restore(&self, bytes: &[u8]) -> Result<Self, String>;

    /// Answers a read-only query, for peers that read this group remotely.
    fn query(&self, query: Self::Query) -> Self::QueryReply;

    /// The answer to a query that does not decode (`error` says why).
    fn undecodable_query(error: String) -> Self::QueryReply;
}

/// The bytes of `command` as the log and the wire carry them, for a caller that speaks to a
/// cluster listener without a [`crate::Group`] (a test, a benchmark).
pub fn encode_command<S: StateMachine>(command: &S::Command) -> Result<Vec<u8>, String> {
    encode(command).map_err(|e| e.to_string())
}

/// A reply as a cluster listener answered it, for the same callers.
pub fn decode_reply<S: StateMachine>(bytes: &[u8]) -> Result<S::Reply, String> {
    decode(bytes).map_err(|e| e.to_string())
}

/// The log entry a command is applied from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Applying {
    /// The leader's clock when it accepted the command (ms since the epoch).
    pub at_ms: u64,
    /// The entry's index in the group's log: where every replica applies it.
    pub log_index: u64,
}

/// Decodes one command from the log, applies it and encodes its reply.
fn apply_encoded<S: StateMachine>(state: &mut S, entry: Applying, command: &[u8]) -> Vec<u8> {
    let reply = match decode::<S::Command>(command) {
        Ok(command) => state.apply(entry, command),
        Err(e) => S::undecodable_command(e.to_string()),
    };
    encode(&reply).unwrap_or_default()
}

/// Decodes a peer's query, answers it and encodes the answer.
fn query_encoded<S: StateMachine>(state: &S, query: &[u8]) -> Vec<u8> {
    let reply = match decode::<S::Query>(query) {
        Ok(query) => state.query(query),
        Err(e) => S::undecodable_query(e.to_string()),
    };
    encode(&reply).unwrap_or_default()
}

pub(crate) struct Applied<S> {
    pub(crate) last_applied: Option<LogId>,
    pub(crate) membership: StoredMembership,
    pub(crate) state: S,
}

/// Read access to a group's applied state.
pub struct StateHandle<S> {
    inner: Arc<RwLock<Applied<S>>>,
}

impl<S> Clone for StateHandle<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<S: StateMachine> StateHandle<S> {
    /// Runs `read` with the current state; keep it short, apply waits for it.
    pub fn read<T>(&self, read: impl FnOnce(&S) -> T) -> T {
        read(&self.guard().state)
    }

    fn guard(&self) -> RwLockReadGuard<'_, Applied<S>> {
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn guard_mut(&self) -> RwLockWriteGuard<'_, Applied<S>> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// Type-erased access for the parts of this crate that serve every group alike.
pub(crate) trait Queryable: Send + Sync {
    fn query(&self, query: &[u8]) -> Vec<u8>;
}

impl<S: StateMachine> Queryable for StateHandle<S> {
    fn query(&self, query: &[u8]) -> Vec<u8> {
        self.read(|s| query_encoded(s, query))
    }
}

/// A group's applied state whatever its domain: what openraft's state machine drives, so that one
/// `Raft` type serves every group.
trait Machine: Send + Sync + 'static {
    fn applied(&self) -> (Option<LogId>, StoredMembership);
    /// Applies committed entries in order, one reply per entry.
    fn apply(&self, entries: Vec<Entry>) -> Vec<Reply>;
    /// The applied position and a job that serializes a frozen copy of the state.
    fn freeze(&self) -> (Option<LogId>, StoredMembership, SnapshotWriter);
    /// Builds the state from snapshot bytes, runs `persist`, then replaces the current state
    /// with the built one (blocking).
    fn replace(
        &self,
        meta: &SnapshotMeta,
        data: &[u8],
        persist: &dyn Fn() -> io::Result<()>,
    ) -> io::Result<()>;
}

impl<S: StateMachine> Machine for StateHandle<S> {
    fn applied(&self) -> (Option<LogId>, StoredMembership) {
        let applied = self.guard();
        (applied.last_applied, applied.membership.clone())
    }

    fn apply(&self, entries: Vec<Entry>) -> Vec<Reply> {
        let mut applied = self.guard_mut();
        let mut replies = Vec::with_capacity(entries.len());
        for entry in entries {
            applied.last_applied = Some(entry.log_id);
            let reply = match entry.payload {
                EntryPayload::Blank => Vec::new(),
                EntryPayload::Normal(proposal) => {
                    let at = Applying {
                        at_ms: proposal.at_ms,
                        log_index: entry.log_id.index,
                    };
                    proposal
                        .commands
                        .iter()
                        .map(|command| {
                            ByteBuf::from(apply_encoded(&mut applied.state, at, command))
                        })
                        .collect()
                }
                EntryPayload::Membership(membership) => {
                    applied.membership = StoredMembership::new(Some(entry.log_id), membership);
                    Vec::new()
                }
            };
            replies.push(Reply(reply));
        }
        replies
    }

    fn freeze(&self) -> (Option<LogId>, StoredMembership, SnapshotWriter) {
        let applied = self.guard();
        (
            applied.last_applied,
            applied.membership.clone(),
            applied.state.snapshot(),
        )
    }

    fn replace(
        &self,
        meta: &SnapshotMeta,
        data: &[u8],
        persist: &dyn Fn() -> io::Result<()>,
    ) -> io::Result<()> {
        let restored = self.read(|s| s.restore(data)).map_err(snapshot_error)?;
        persist()?;
        let mut applied = self.guard_mut();
        applied.state = restored;
        applied.last_applied = meta.last_log_id;
        applied.membership = meta.last_membership.clone();
        Ok(())
    }
}

/// openraft's view of a group's state machine.
pub struct StateMachineStore {
    machine: Arc<dyn Machine>,
    snapshots: SnapshotStore,
}

impl StateMachineStore {
    /// Starts from `initial`, or from the persisted snapshot when there is one; returns the store
    /// for openraft and the handle the domain reads the state through.
    pub fn open<S: StateMachine>(
        initial: S,
        snapshots: SnapshotStore,
    ) -> io::Result<(Self, StateHandle<S>)> {
        let handle = StateHandle {
            inner: Arc::new(RwLock::new(Applied {
                last_applied: None,
                membership: Default::default(),
                state: initial,
            })),
        };
        if let Some((meta, data)) = snapshots.load()? {
            handle.replace(&meta, &data, &|| Ok(()))?;
        }
        let store = Self {
            machine: Arc::new(handle.clone()),
            snapshots,
        };
        Ok((store, handle))
    }
}

fn snapshot_error(reason: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("snapshot: {reason}"))
}

pub struct SnapshotBuilder {
    machine: Arc<dyn Machine>,
    snapshots: SnapshotStore,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    type SnapshotData = SnapshotData;

    async fn build_snapshot(&mut self) -> io::Result<Snapshot> {
        let (last_applied, membership, writer) = self.machine.freeze();
        let meta = SnapshotMeta {
            last_log_id: last_applied,
            last_membership: membership,
        };
        let store = self.snapshots.clone();
        let save_meta = meta.clone();
        let data = tokio::task::spawn_blocking(move || {
            let data = writer();
            store.save(&save_meta, &data).map(|()| data)
        })
        .await
        .map_err(snapshot_error)??;
        Ok(Snapshot {
            meta,
            snapshot: Cursor::new(data),
        })
    }
}

/// A snapshot sent in chunks is gathered in memory, then installed whole.
impl SnapshotReceiverFactory<TypeConfig> for StateMachineStore {
    type SnapshotReceiver = SnapshotData;

    async fn begin_receiving_snapshot(&mut self) -> io::Result<SnapshotData> {
        Ok(Cursor::new(Vec::new()))
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotData = SnapshotData;
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> io::Result<(Option<LogId>, StoredMembership)> {
        Ok(self.machine.applied())
    }

    async fn apply<Strm>(&mut self, entries: Strm) -> io::Result<()>
    where
        Strm: Stream<Item = io::Result<EntryResponder<TypeConfig>>> + Unpin + Send,
    {
        let (entries, responders): (Vec<_>, Vec<_>) =
            entries.try_collect::<Vec<_>>().await?.into_iter().unzip();
        let replies = self.machine.apply(entries);
        for (responder, reply) in responders.into_iter().zip(replies) {
            if let Some(responder) = responder {
                responder.send(reply);
            }
        }
        Ok(())
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            machine: self.machine.clone(),
            snapshots: self.snapshots.clone(),
        }
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: SnapshotData,
    ) -> io::Result<()> {
        let data = snapshot.into_inner();
        let machine = self.machine.clone();
        let store = self.snapshots.clone();
        let meta = meta.clone();
        tokio::task::spawn_blocking(move || {
            machine.replace(&meta, &data, &|| store.save(&meta, &data))
        })
        .await
        .map_err(snapshot_error)?
    }

    async fn get_current_snapshot(&mut self) -> io::Result<Option<Snapshot>> {
        let store = self.snapshots.clone();
        let loaded = tokio::task::spawn_blocking(move || store.load())
            .await
            .map_err(snapshot_error)??;
        Ok(loaded.map(|(meta, data)| Snapshot {
            meta,
            snapshot: Cursor::new(data),
        }))
    }
}
