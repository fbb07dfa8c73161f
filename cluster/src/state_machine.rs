//! The bridge between openraft's `RaftStateMachine` and a domain state machine.
//!
//! The domain implements [`StateMachine`]; this module owns the applied log position, the
//! membership, snapshot building and installation. Readers share the state through
//! [`StateHandle`], which only ever hands out read access.

use std::io::Cursor;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use openraft::storage::RaftStateMachine;
use openraft::{EntryPayload, RaftSnapshotBuilder, Snapshot, StorageIOError};
use serde_bytes::ByteBuf;

use crate::snapshot_store::SnapshotStore;
use crate::types::{Entry, LogId, Reply, SnapshotMeta, StorageError, StoredMembership, TypeConfig};

/// Serializes a frozen copy of the state; runs on a blocking thread while apply goes on.
pub type SnapshotWriter = Box<dyn FnOnce() -> Vec<u8> + Send>;

/// What a domain state machine provides. Every method must be deterministic given the same
/// sequence of `apply` calls: no clocks, no randomness, no I/O.
pub trait StateMachine: Send + Sync + Sized + 'static {
    /// Applies one committed command. `at_ms` is the leader's clock when it accepted the command.
    /// A command the state machine cannot decode is answered, not panicked on.
    fn apply(&mut self, at_ms: u64, command: &[u8]) -> Vec<u8>;

    /// Takes a consistent copy of the state, cheaply, and returns the job that serializes it.
    fn snapshot(&self) -> SnapshotWriter;

    /// Builds a whole new state from snapshot bytes (the state is then replaced by it).
    fn restore(&self, bytes: &[u8]) -> Result<Self, String>;

    /// Answers a read-only query, for peers that read this group remotely.
    fn query(&self, query: &[u8]) -> Vec<u8>;
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
        self.read(|s| s.query(query))
    }
}

/// openraft's view of a domain state machine.
pub struct StateMachineStore<S> {
    handle: StateHandle<S>,
    snapshots: SnapshotStore,
}

impl<S: StateMachine> StateMachineStore<S> {
    /// Starts from `initial`, or from the persisted snapshot when there is one.
    pub fn open(initial: S, snapshots: SnapshotStore) -> Result<Self, StorageError> {
        let mut applied = Applied {
            last_applied: None,
            membership: Default::default(),
            state: initial,
        };
        let loaded = snapshots
            .load()
            .map_err(|e| StorageIOError::read_snapshot(None, &e))?;
        if let Some((meta, data)) = loaded {
            applied.state = applied.state.restore(&data).map_err(|e| {
                StorageIOError::read_snapshot(Some(meta.signature()), &std::io::Error::other(e))
            })?;
            applied.last_applied = meta.last_log_id;
            applied.membership = meta.last_membership;
        }
        Ok(Self {
            handle: StateHandle {
                inner: Arc::new(RwLock::new(applied)),
            },
            snapshots,
        })
    }

    pub fn handle(&self) -> StateHandle<S> {
        self.handle.clone()
    }
}

pub struct SnapshotBuilder<S> {
    handle: StateHandle<S>,
    snapshots: SnapshotStore,
}

impl<S: StateMachine> RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder<S> {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let (last_applied, membership, writer) = {
            let applied = self.handle.guard();
            (
                applied.last_applied,
                applied.membership.clone(),
                applied.state.snapshot(),
            )
        };
        let snapshot_id = match last_applied {
            Some(id) => format!("{}-{}-{}", id.leader_id, id.index, crate::types::now_ms()),
            None => format!("empty-{}", crate::types::now_ms()),
        };
        let meta = SnapshotMeta {
            last_log_id: last_applied,
            last_membership: membership,
            snapshot_id,
        };
        let store = self.snapshots.clone();
        let save_meta = meta.clone();
        let data = tokio::task::spawn_blocking(move || {
            let data = writer();
            store.save(&save_meta, &data).map(|()| data)
        })
        .await
        .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?
        .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl<S: StateMachine> RaftStateMachine<TypeConfig> for StateMachineStore<S> {
    type SnapshotBuilder = SnapshotBuilder<S>;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let applied = self.handle.guard();
        Ok((applied.last_applied, applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Reply>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut applied = self.handle.guard_mut();
        let mut replies = Vec::new();
        for entry in entries {
            applied.last_applied = Some(entry.log_id);
            let reply = match entry.payload {
                EntryPayload::Blank => Vec::new(),
                EntryPayload::Normal(proposal) => proposal
                    .commands
                    .iter()
                    .map(|command| ByteBuf::from(applied.state.apply(proposal.at_ms, command)))
                    .collect(),
                EntryPayload::Membership(membership) => {
                    applied.membership = StoredMembership::new(Some(entry.log_id), membership);
                    Vec::new()
                }
            };
            replies.push(Reply(reply));
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            handle: self.handle.clone(),
            snapshots: self.snapshots.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let handle = self.handle.clone();
        let store = self.snapshots.clone();
        let save_meta = meta.clone();
        let restored = tokio::task::spawn_blocking(move || {
            let restored = handle
                .read(|s| s.restore(&data))
                .map_err(std::io::Error::other)?;
            store.save(&save_meta, &data)?;
            Ok::<_, std::io::Error>(restored)
        })
        .await
        .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?
        .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e))?;
        let mut applied = self.handle.guard_mut();
        applied.state = restored;
        applied.last_applied = meta.last_log_id;
        applied.membership = meta.last_membership.clone();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let store = self.snapshots.clone();
        let loaded = tokio::task::spawn_blocking(move || store.load())
            .await
            .map_err(|e| StorageIOError::read_snapshot(None, &e))?
            .map_err(|e| StorageIOError::read_snapshot(None, &e))?;
        Ok(loaded.map(|(meta, data)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}
