//! The cluster listener's routes: `/raft/{group}/{append|vote|snapshot|propose|read-index|query|status}`
//! `/node/hello` (this node's id and incarnation) and `/node/call/{name}` (a domain's handler).
//!
//! Peers only: every request must carry the cluster secret (compared in constant time), or it is
//! answered 401 before its body is read. Bodies are MessagePack and bounded in size: a declared
//! length over the bound is answered 413 before any of the body is read, and a body that streams
//! past it is answered 413 when it does. A body that does not decode is answered 400 and never
//! reaches Raft.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use openraft::raft::{AppendEntriesRequest, VoteRequest};
use openraft_legacy::network_v1::{ChunkedSnapshotReceiver, InstallSnapshotRequest};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_bytes::ByteBuf;
use subtle::ConstantTimeEq;
use tower_http::limit::RequestBodyLimitLayer;

use crate::group::GroupCore;
use crate::liveness::NodeHello;
use crate::log_store::{decode, encode};
use crate::network::SECRET_HEADER;
use crate::network::{ForwardedCommand, Refusal};
use crate::node_calls::NodeCalls;
use crate::types::{GroupId, TypeConfig};

/// Largest request body the cluster listener reads (an append batch or a snapshot chunk).
pub const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// The groups this node serves, by id.
#[derive(Clone, Default)]
pub(crate) struct Registry(Arc<RwLock<HashMap<GroupId, Arc<GroupCore>>>>);

impl Registry {
    pub(crate) fn insert(&self, core: Arc<GroupCore>) {
        self.0
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(core.id.clone(), core);
    }

    fn get(&self, group: &str) -> Option<Arc<GroupCore>> {
        let id = GroupId::new(group).ok()?;
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&id)
            .cloned()
    }
}

#[derive(Clone)]
struct Listener {
    registry: Registry,
    secret: Arc<str>,
    hello: NodeHello,
    calls: NodeCalls,
}

pub(crate) fn router(
    registry: Registry,
    secret: Arc<str>,
    hello: NodeHello,
    calls: NodeCalls,
) -> Router {
    let listener = Listener {
        registry,
        secret,
        hello,
        calls,
    };
    Router::new()
        .route("/node/hello", post(node_hello))
        .route("/node/call/{name}", post(node_call))
        .route("/raft/{group}/append", post(append))
        .route("/raft/{group}/vote", post(vote))
        .route("/raft/{group}/snapshot", post(snapshot))
        .route("/raft/{group}/propose", post(propose))
        .route("/raft/{group}/read-index", post(read_index))
        .route("/raft/{group}/query", post(query))
        .route("/raft/{group}/status", post(status))
        .fallback(|| async { (StatusCode::NOT_FOUND, "no such cluster route") })
        // One limit, tower-http's: it refuses a declared length unread and bounds a streamed body.
        .layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(
            listener.clone(),
            require_secret,
        ))
        .with_state(listener)
}

async fn require_secret(
    State(listener): State<Listener>,
    request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(SECRET_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if bool::from(presented.ct_eq(listener.secret.as_bytes())) {
        next.run(request).await
    } else {
        (StatusCode::UNAUTHORIZED, "missing or wrong cluster secret").into_response()
    }
}

/// A failed cluster request, answered as plain text with its status.
struct Rejection(StatusCode, String);

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        (self.0, self.1).into_response()
    }
}

type Answer = Result<Response, Rejection>;

fn group(listener: &Listener, name: &str) -> Result<Arc<GroupCore>, Rejection> {
    listener.registry.get(name).ok_or_else(|| {
        Rejection(
            StatusCode::NOT_FOUND,
            format!("no group {name:?} on this node"),
        )
    })
}

fn body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Rejection> {
    decode(bytes).map_err(|e| {
        Rejection(
            StatusCode::BAD_REQUEST,
            format!("body does not decode: {e}"),
        )
    })
}

fn reply<T: Serialize>(value: &T) -> Answer {
    let bytes =
        encode(value).map_err(|e| Rejection(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "application/msgpack")], bytes).into_response())
}

async fn append(State(l): State<Listener>, Path(name): Path<String>, bytes: Bytes) -> Answer {
    let core = group(&l, &name)?;
    let request: AppendEntriesRequest<TypeConfig> = body(&bytes)?;
    reply(&core.raft.append_entries(request).await)
}

async fn vote(State(l): State<Listener>, Path(name): Path<String>, bytes: Bytes) -> Answer {
    let core = group(&l, &name)?;
    let request: VoteRequest<TypeConfig> = body(&bytes)?;
    reply(&core.raft.vote(request).await)
}

async fn snapshot(State(l): State<Listener>, Path(name): Path<String>, bytes: Bytes) -> Answer {
    let core = group(&l, &name)?;
    let request: InstallSnapshotRequest<TypeConfig> = body(&bytes)?;
    reply(&ChunkedSnapshotReceiver::install_snapshot(&core.raft, request).await)
}

async fn propose(State(l): State<Listener>, Path(name): Path<String>, bytes: Bytes) -> Answer {
    let core = group(&l, &name)?;
    let command: ForwardedCommand = body(&bytes)?;
    let answer = if command.forwarded {
        core.propose_as_leader(command.payload).await
    } else {
        core.propose(command.payload)
            .await
            .map_err(|e| Refusal::Failed(e.to_string()))
    };
    let answer: Result<ByteBuf, Refusal> = answer.map(ByteBuf::from);
    reply(&answer)
}

async fn read_index(State(l): State<Listener>, Path(name): Path<String>, bytes: Bytes) -> Answer {
    let core = group(&l, &name)?;
    let () = body(&bytes)?;
    reply(&core.read_index_as_leader().await)
}

async fn query(State(l): State<Listener>, Path(name): Path<String>, bytes: Bytes) -> Answer {
    let core = group(&l, &name)?;
    let query: ForwardedCommand = body(&bytes)?;
    let answer: Result<ByteBuf, Refusal> = match core.read_barrier().await {
        Ok(()) => Ok(ByteBuf::from(core.queryable.query(&query.payload))),
        Err(e) => Err(Refusal::Failed(e.to_string())),
    };
    reply(&answer)
}

async fn status(State(l): State<Listener>, Path(name): Path<String>, bytes: Bytes) -> Answer {
    let core = group(&l, &name)?;
    let () = body(&bytes)?;
    reply(&core.status().await)
}

async fn node_hello(State(l): State<Listener>) -> Answer {
    reply(&l.hello)
}

async fn node_call(State(l): State<Listener>, Path(name): Path<String>, bytes: Bytes) -> Answer {
    let handler = l.calls.get(&name).ok_or_else(|| {
        Rejection(
            StatusCode::NOT_FOUND,
            format!("no call {name:?} on this node"),
        )
    })?;
    let answer: Result<ByteBuf, String> = handler(bytes.to_vec()).await.map(ByteBuf::from);
    reply(&answer)
}
