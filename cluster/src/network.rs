//! Calls from this node to its peers' cluster listeners: Raft RPCs for openraft, and the
//! forwarding calls of [`crate::Group`] (propose, read index, query, status).
//!
//! One shared reqwest client with timeouts; every request carries the cluster secret; bodies are
//! MessagePack. A refused or failed connection is `Unreachable`, so callers know the request was
//! never seen by the peer. The messages themselves, and their encoding, are `wire.rs`'s.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{NetworkError, RPCError, RaftError, RemoteError, Timeout, Unreachable};
use openraft::network::{RPCOption, RPCTypes, RaftNetworkFactory};
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, VoteRequest, VoteResponse};
use openraft_legacy::network_v1::{
    Adapter, InstallSnapshotError, InstallSnapshotRequest, InstallSnapshotResponse, RaftNetwork,
};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_bytes::ByteBuf;

use crate::state_machine::StateMachine;
use crate::types::{GroupId, Member, NodeId, SnapshotData, TypeConfig};
use crate::wire::{
    decode, encode, ForwardedCommand, GroupStatus, NodeHello, Refusal, SECRET_HEADER,
};

const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Calls in flight to one peer at once; more wait for one to finish. Each call in flight holds a
/// connection, and a peer's cluster listener caps the connections one address may hold: under a
/// burst (hundreds of commands forwarded to the leader at once) the calls queue here instead of
/// opening sockets the peer would refuse.
pub const MAX_CALLS_PER_PEER: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The peer could not be reached: the request was not delivered.
    #[error("peer {addr} unreachable: {reason}")]
    Unreachable { addr: String, reason: String },
    /// The request may or may not have been processed.
    #[error("peer {addr} did not answer within {timeout:?}")]
    Timeout { addr: String, timeout: Duration },
    #[error("peer {addr} answered HTTP {status}: {body}")]
    Status {
        addr: String,
        status: u16,
        body: String,
    },
    #[error("peer {addr} sent an answer that does not decode: {reason}")]
    Decode { addr: String, reason: String },
}

/// How this node dials its peers, by node id, where that differs from the address a group's
/// membership records. The membership is replicated, so it holds one node's view of the network;
/// a node of another site may reach the same peer only through another address (its WAN one).
pub type PeerRoutes = BTreeMap<NodeId, String>;

/// The client side of the cluster listener. Cheap to clone.
#[derive(Clone)]
pub struct PeerClient {
    http: reqwest::Client,
    secret: Arc<str>,
    routes: Arc<PeerRoutes>,
    /// Per peer address: the calls that may be in flight.
    slots: Arc<std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Semaphore>>>>,
}

impl PeerClient {
    pub fn new(
        secret: &str,
        source: Option<std::net::IpAddr>,
        routes: PeerRoutes,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .local_address(source)
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self {
            http,
            secret: secret.into(),
            routes: Arc::new(routes),
            slots: Default::default(),
        })
    }

    /// The address this node dials to reach `node`: its own route when it has one, otherwise the
    /// address the membership records.
    pub fn route(&self, node: NodeId, recorded: &str) -> String {
        self.routes
            .get(&node)
            .cloned()
            .unwrap_or_else(|| recorded.to_string())
    }

    /// POSTs `request` (MessagePack) to `http://{addr}/raft/{group}/{verb}` and decodes the answer.
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        addr: &str,
        group: &GroupId,
        verb: &str,
        request: &Req,
        timeout: Duration,
    ) -> Result<Resp, PeerError> {
        let body = encode(request).map_err(|e| PeerError::Decode {
            addr: addr.into(),
            reason: e.to_string(),
        })?;
        let bytes = self
            .post(addr, &format!("/raft/{group}/{verb}"), body, timeout)
            .await?;
        decode(&bytes).map_err(|e| PeerError::Decode {
            addr: addr.into(),
            reason: e.to_string(),
        })
    }

    /// Proposes `command` through the node at `addr`, which routes it to the group's leader, and
    /// returns the state machine's reply (or why the node could not get one).
    pub async fn propose(
        &self,
        addr: &str,
        group: &GroupId,
        command: Vec<u8>,
        timeout: Duration,
    ) -> Result<Result<Vec<u8>, String>, PeerError> {
        self.through(addr, group, "propose", command, timeout).await
    }

    /// A linearizable query, answered by the node at `addr` from its own replica.
    pub async fn query(
        &self,
        addr: &str,
        group: &GroupId,
        query: Vec<u8>,
        timeout: Duration,
    ) -> Result<Result<Vec<u8>, String>, PeerError> {
        self.through(addr, group, "query", query, timeout).await
    }

    /// [`Self::propose`] with the group's own types: `S`'s command in, its reply out.
    pub async fn propose_as<S: StateMachine>(
        &self,
        addr: &str,
        group: &GroupId,
        command: &S::Command,
        timeout: Duration,
    ) -> Result<Result<S::Reply, String>, PeerError> {
        let bytes = self.encode_for(addr, command)?;
        let answer = self.propose(addr, group, bytes, timeout).await?;
        match answer {
            Ok(reply) => Ok(Ok(self.decode_from(addr, &reply)?)),
            Err(refused) => Ok(Err(refused)),
        }
    }

    /// [`Self::query`] with the group's own types: the peer-read path.
    pub async fn query_as<S: StateMachine>(
        &self,
        addr: &str,
        group: &GroupId,
        query: &S::Query,
        timeout: Duration,
    ) -> Result<Result<S::QueryReply, String>, PeerError> {
        let bytes = self.encode_for(addr, query)?;
        let answer = self.query(addr, group, bytes, timeout).await?;
        match answer {
            Ok(reply) => Ok(Ok(self.decode_from(addr, &reply)?)),
            Err(refused) => Ok(Err(refused)),
        }
    }

    fn encode_for<T: Serialize>(&self, addr: &str, value: &T) -> Result<Vec<u8>, PeerError> {
        encode(value).map_err(|e| PeerError::Decode {
            addr: addr.into(),
            reason: e.to_string(),
        })
    }

    fn decode_from<T: DeserializeOwned>(&self, addr: &str, bytes: &[u8]) -> Result<T, PeerError> {
        decode(bytes).map_err(|e| PeerError::Decode {
            addr: addr.into(),
            reason: e.to_string(),
        })
    }

    /// A group's status as the node at `addr` sees it.
    pub async fn status(
        &self,
        addr: &str,
        group: &GroupId,
        timeout: Duration,
    ) -> Result<GroupStatus, PeerError> {
        self.call(addr, group, "status", &(), timeout).await
    }

    async fn through(
        &self,
        addr: &str,
        group: &GroupId,
        verb: &str,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> Result<Result<Vec<u8>, String>, PeerError> {
        let request = ForwardedCommand {
            payload,
            forwarded: false,
        };
        let answer: Result<ByteBuf, Refusal> =
            self.call(addr, group, verb, &request, timeout).await?;
        Ok(answer.map(ByteBuf::into_vec).map_err(|e| e.to_string()))
    }

    /// Calls the handler `name` on the peer at `addr` (see [`crate::NodeCalls`]): its answer, or
    /// the handler's refusal.
    pub async fn call_node(
        &self,
        addr: &str,
        name: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Result<Vec<u8>, String>, PeerError> {
        let bytes = self
            .post(addr, &format!("/node/call/{name}"), body, timeout)
            .await?;
        let answer: Result<ByteBuf, String> = decode(&bytes).map_err(|e| PeerError::Decode {
            addr: addr.into(),
            reason: e.to_string(),
        })?;
        Ok(answer.map(ByteBuf::into_vec))
    }

    /// The peer's node id and incarnation.
    pub async fn hello(&self, addr: &str, timeout: Duration) -> Result<NodeHello, PeerError> {
        let bytes = self.post(addr, "/node/hello", Vec::new(), timeout).await?;
        decode(&bytes).map_err(|e| PeerError::Decode {
            addr: addr.into(),
            reason: e.to_string(),
        })
    }

    /// POSTs raw bytes to a path on the peer's cluster listener and returns the raw answer.
    pub async fn post(
        &self,
        addr: &str,
        path: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, PeerError> {
        let slots = self.slots_of(addr);
        let _slot = tokio::time::timeout(timeout, slots.acquire_owned())
            .await
            .map_err(|_| PeerError::Timeout {
                addr: addr.into(),
                timeout,
            })?;
        let response = self
            .http
            .post(format!("http://{addr}{path}"))
            .header(SECRET_HEADER, &*self.secret)
            .header(reqwest::header::CONTENT_TYPE, "application/msgpack")
            .timeout(timeout)
            .body(body)
            .send()
            .await
            .map_err(|e| classify(addr, timeout, &e))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| classify(addr, timeout, &e))?;
        if !status.is_success() {
            let body = String::from_utf8_lossy(&bytes[..bytes.len().min(512)]).into_owned();
            return Err(PeerError::Status {
                addr: addr.into(),
                status: status.as_u16(),
                body,
            });
        }
        Ok(bytes.to_vec())
    }
}

impl PeerClient {
    fn slots_of(&self, addr: &str) -> Arc<tokio::sync::Semaphore> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots
            .entry(addr.to_string())
            .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(MAX_CALLS_PER_PEER)))
            .clone()
    }
}

fn classify(addr: &str, timeout: Duration, e: &reqwest::Error) -> PeerError {
    if e.is_connect() {
        PeerError::Unreachable {
            addr: addr.into(),
            reason: error_chain(e),
        }
    } else if e.is_timeout() {
        PeerError::Timeout {
            addr: addr.into(),
            timeout,
        }
    } else {
        PeerError::Status {
            addr: addr.into(),
            status: 0,
            body: error_chain(e),
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// openraft's network factory for one group.
pub struct GroupNetwork {
    pub(crate) peers: PeerClient,
    pub(crate) group: GroupId,
}

impl RaftNetworkFactory<TypeConfig> for GroupNetwork {
    /// Snapshots travel in chunks, one request each, under the listener's body limit.
    type Network = Adapter<TypeConfig, PeerConnection, SnapshotData>;

    async fn new_client(&mut self, target: NodeId, node: &Member) -> Self::Network {
        Adapter::new(PeerConnection {
            peers: self.peers.clone(),
            group: self.group.clone(),
            target,
            addr: self.peers.route(target, &node.addr),
        })
    }
}

pub struct PeerConnection {
    peers: PeerClient,
    group: GroupId,
    target: NodeId,
    addr: String,
}

impl PeerConnection {
    async fn rpc<Req, Resp, E>(
        &self,
        action: RPCTypes,
        request: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<TypeConfig, RaftError<TypeConfig, E>>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let timeout = option.hard_ttl();
        let verb = match action {
            RPCTypes::Vote => "vote",
            RPCTypes::AppendEntries => "append",
            RPCTypes::InstallSnapshot => "snapshot",
            RPCTypes::TransferLeader => "transfer-leader",
        };
        let answer: Result<Resp, RaftError<TypeConfig, E>> = self
            .peers
            .call(&self.addr, &self.group, verb, request, timeout)
            .await
            .map_err(|e| match e {
                PeerError::Unreachable { .. } => RPCError::Unreachable(Unreachable::new(&e)),
                PeerError::Timeout { .. } => RPCError::Timeout(Timeout {
                    action,
                    id: 0,
                    target: self.target,
                    timeout,
                }),
                _ => RPCError::Network(NetworkError::new(&e)),
            })?;
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

impl RaftNetwork<TypeConfig> for PeerConnection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<TypeConfig>, RPCError<TypeConfig, RaftError<TypeConfig>>>
    {
        self.rpc(RPCTypes::AppendEntries, &rpc, &option).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<TypeConfig>,
        RPCError<TypeConfig, RaftError<TypeConfig, InstallSnapshotError>>,
    > {
        self.rpc(RPCTypes::InstallSnapshot, &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<VoteResponse<TypeConfig>, RPCError<TypeConfig, RaftError<TypeConfig>>> {
        self.rpc(RPCTypes::Vote, &rpc, &option).await
    }
}
