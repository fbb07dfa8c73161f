//! A node's cluster side: the log database, the peer client, and the groups it hosts.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::group::{Group, GroupCore};
use crate::liveness::Liveness;
use crate::log_store::LogDb;
use crate::network::{GroupNetwork, PeerClient, PeerRoutes};
use crate::node_calls::NodeCalls;
use crate::private_fs;
use crate::server::{self, Registry};
use crate::snapshot_store::SnapshotStore;
use crate::state_machine::{Raft, StateMachine, StateMachineStore};
use crate::types::{GroupId, NodeId};
use crate::wire::NodeHello;

/// Raft timing and log retention, shared by every group of the node.
#[derive(Clone, Debug)]
pub struct RaftTuning {
    pub heartbeat: Duration,
    pub election_timeout_min: Duration,
    pub election_timeout_max: Duration,
    /// Build a snapshot after this many entries since the last one.
    pub snapshot_every: u64,
    /// Entries kept in the log behind a snapshot, so a lagging follower catches up without one.
    pub logs_kept_after_snapshot: u64,
    /// How long a proposal or read may wait for a leader and an answer.
    pub operation_timeout: Duration,
    /// How long a completed read barrier lets this node answer leased reads without another
    /// (see [`crate::Group::holds_read_lease`]); a settled write waits a quarter more for a
    /// member that does not confirm it.
    pub read_lease: Duration,
}

impl Default for RaftTuning {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_millis(100),
            // openraft makes followers refuse other candidates for `election_timeout_max` after
            // the last heartbeat (a leader lease), so failover takes about one to two timeouts:
            // a narrow, short range keeps it near one second with 4 heartbeats of slack.
            election_timeout_min: Duration::from_millis(400),
            election_timeout_max: Duration::from_millis(700),
            snapshot_every: 100_000,
            logs_kept_after_snapshot: 10_000,
            operation_timeout: Duration::from_secs(5),
            read_lease: Duration::from_millis(500),
        }
    }
}

#[derive(Clone, Debug)]
pub struct ClusterOptions {
    pub node_id: NodeId,
    /// The `host:port` peers use to reach this node's cluster listener.
    pub advertise: String,
    pub data_dir: PathBuf,
    pub secret: String,
    pub tuning: RaftTuning,
    /// The local address outgoing peer connections come from (default: the system's choice).
    pub source_address: Option<std::net::IpAddr>,
    /// How this node reaches peers whose membership address it cannot dial (see [`PeerRoutes`]).
    pub routes: PeerRoutes,
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("cannot open the raft log database {path}: {source}")]
    LogDb {
        path: PathBuf,
        source: redb::DatabaseError,
    },
    #[error("cannot keep the data directory {path} private: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open the snapshot directory {path}: {source}")]
    Snapshots {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open group {group}: {reason}")]
    Group { group: GroupId, reason: String },
    #[error("invalid raft settings: {0}")]
    Config(String),
    #[error("cannot record this start in the raft log database: {0}")]
    Incarnation(String),
    #[error("cannot build the peer client: {0}")]
    Client(String),
}

/// The cluster side of one node. Cheap to clone.
#[derive(Clone)]
pub struct ClusterNode {
    options: Arc<ClusterOptions>,
    db: LogDb,
    peers: PeerClient,
    registry: Registry,
    liveness: Liveness,
    calls: NodeCalls,
}

/// Creates the data directory 0700, or tightens one found readable by others, before the log
/// database is opened (so no secret is written into a loose one).
fn open_data_dir(dir: &std::path::Path) -> Result<(), SetupError> {
    private_fs::keep_private(dir).map_err(|source| SetupError::DataDir {
        path: dir.to_path_buf(),
        source,
    })
}

impl ClusterNode {
    pub fn open(options: ClusterOptions) -> Result<Self, SetupError> {
        open_data_dir(&options.data_dir)?;
        let path = options.data_dir.join("raft.redb");
        let db = LogDb::open(&path).map_err(|source| SetupError::LogDb { path, source })?;
        let peers = PeerClient::new(
            &options.secret,
            options.source_address,
            options.routes.clone(),
        )
        .map_err(|e| SetupError::Client(e.to_string()))?;
        let incarnation = db
            .bump_incarnation()
            .map_err(|e| SetupError::Incarnation(e.to_string()))?;
        let liveness = Liveness::new(NodeHello {
            node_id: options.node_id,
            incarnation,
        });
        Ok(Self {
            options: Arc::new(options),
            db,
            peers,
            registry: Registry::default(),
            liveness,
            calls: NodeCalls::default(),
        })
    }

    pub fn node_id(&self) -> NodeId {
        self.options.node_id
    }

    /// This node's incarnation and what it knows of its peers' liveness.
    pub fn liveness(&self) -> &Liveness {
        &self.liveness
    }

    /// The handlers peers may call on this node.
    pub fn calls(&self) -> &NodeCalls {
        &self.calls
    }

    pub fn peers(&self) -> &PeerClient {
        &self.peers
    }

    /// The routes of the cluster listener, for every group opened on this node.
    pub fn router(&self) -> axum::Router {
        server::router(
            self.registry.clone(),
            self.options.secret.as_str().into(),
            self.liveness.me(),
            self.calls.clone(),
        )
    }

    /// Opens a group with its state machine (restored from its last snapshot, then the log).
    pub async fn open_group<S: StateMachine>(
        &self,
        id: GroupId,
        initial: S,
    ) -> Result<Group<S>, SetupError> {
        let fail = |reason: String| SetupError::Group {
            group: id.clone(),
            reason,
        };
        let dir = self.options.data_dir.join("snapshots").join(id.file_stem());
        let snapshots = SnapshotStore::open(dir.clone())
            .map_err(|source| SetupError::Snapshots { path: dir, source })?;
        let log = self.db.group_log(&id).map_err(|e| fail(e.to_string()))?;
        let (store, handle) =
            StateMachineStore::open(initial, snapshots).map_err(|e| fail(e.to_string()))?;
        let network = GroupNetwork {
            peers: self.peers.clone(),
            group: id.clone(),
        };
        let config = Arc::new(self.raft_config(&id)?);
        let raft = Raft::new(self.options.node_id, config, network, log, store)
            .await
            .map_err(|e| fail(e.to_string()))?;
        let core = Arc::new(GroupCore::new(
            id,
            self.options.node_id,
            raft,
            self.peers.clone(),
            self.options.tuning.operation_timeout,
            self.options.tuning.read_lease,
            Arc::new(handle.clone()),
        ));
        self.registry.insert(core.clone());
        Ok(Group::new(core, handle))
    }

    fn raft_config(&self, id: &GroupId) -> Result<openraft::Config, SetupError> {
        let t = &self.options.tuning;
        let config = openraft::Config {
            cluster_name: id.to_string(),
            heartbeat_interval: t.heartbeat.as_millis() as u64,
            election_timeout_min: t.election_timeout_min.as_millis() as u64,
            election_timeout_max: t.election_timeout_max.as_millis() as u64,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(t.snapshot_every),
            max_in_snapshot_log_to_keep: t.logs_kept_after_snapshot,
            // An entry holds at most ~512 KiB of batched commands (see batcher.rs): 48 of them stay
            // under the cluster listener's 32 MiB body limit.
            max_payload_entries: 48,
            // A leader that restarts must be elected again. Restored at once (openraft's default),
            // it would lead from a state machine replayed only up to the commit index it had
            // stored, which is written lazily; its read index (its old term's first entry, or that
            // commit index) could then be behind writes it had itself acknowledged, and a read
            // barrier through it would let a follower serve a session revoked a moment before.
            // A new term's first entry is after every acknowledged write.
            enable_leader_restore: Some(false),
            ..Default::default()
        };
        config
            .validate()
            .map_err(|e| SetupError::Config(e.to_string()))
    }
}
