//! The cluster listener's routes: `/raft/{group}/{append|vote|snapshot|propose|read-index|applied|query|status}`
//! `/node/hello` (this node's id and incarnation) and `/node/call/{name}` (a domain's handler).
//!
//! Peers only: every request must carry the cluster secret (compared in constant time), or it is
//! answered 401 before its body is read. Bodies are MessagePack and bounded in size: a declared
//! length over the bound is answered 413 before any of the body is read, and a body that streams
//! past it is answered 413 when it does. A body that does not decode is answered 400 and never
//! reaches Raft. The messages, their encoding and the body bound are `wire.rs`'s; the groups it
//! serves are `group.rs`'s [`GroupCore`]s.

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
use crate::node_calls::NodeCalls;
use crate::types::{GroupId, TypeConfig};
use crate::wire::{
    decode, encode, AppliedQuery, ForwardedCommand, NodeHello, Refusal, MAX_BODY_BYTES,
    SECRET_HEADER,
};

/// The longest a peer may keep an `applied` question waiting.
const MAX_APPLIED_WAIT_MS: u64 = 10_000;

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
        .route("/raft/{group}/applied", post(applied))
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
#[derive(Debug)]
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

async fn applied(State(l): State<Listener>, Path(name): Path<String>, bytes: Bytes) -> Answer {
    let core = group(&l, &name)?;
    let query: AppliedQuery = body(&bytes)?;
    let wait = std::time::Duration::from_millis(query.wait_ms.min(MAX_APPLIED_WAIT_MS));
    reply(&core.applied_at_least(query.index, wait).await)
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

#[cfg(test)]
mod tests {
    use openraft::impls::leader_id_adv::LeaderId;
    use openraft::EntryPayload;
    use proptest::collection::vec;
    use proptest::prelude::*;

    use super::*;
    use crate::types::{Entry, LogId, Proposal, Vote};

    fn log_id() -> impl Strategy<Value = LogId> {
        (any::<u64>(), any::<u64>(), any::<u64>())
            .prop_map(|(term, node_id, index)| LogId::new(LeaderId { term, node_id }, index))
    }

    fn vote() -> impl Strategy<Value = Vote> {
        (any::<u64>(), any::<u64>(), any::<bool>()).prop_map(|(term, node, committed)| {
            match committed {
                true => Vote::new_committed(term, node),
                false => Vote::new(term, node),
            }
        })
    }

    fn entry() -> impl Strategy<Value = Entry> {
        let payload = prop_oneof![
            Just(EntryPayload::Blank),
            (any::<u64>(), vec(vec(any::<u8>(), 0..48), 0..5)).prop_map(|(at_ms, commands)| {
                EntryPayload::Normal(Proposal {
                    at_ms,
                    commands: commands.into_iter().map(ByteBuf::from).collect(),
                })
            }),
        ];
        (log_id(), payload).prop_map(|(log_id, payload)| Entry { log_id, payload })
    }

    fn append() -> impl Strategy<Value = AppendEntriesRequest<TypeConfig>> {
        let parts = (
            vote(),
            proptest::option::of(log_id()),
            vec(entry(), 0..5),
            proptest::option::of(log_id()),
        );
        parts.prop_map(
            |(vote, prev_log_id, entries, leader_commit)| AppendEntriesRequest {
                vote,
                prev_log_id,
                entries,
                leader_commit,
            },
        )
    }

    /// What every route decodes a body into, refused with 400 if it does not.
    fn decodes_everywhere(bytes: &[u8]) -> Result<(), TestCaseError> {
        let statuses = [
            body::<AppendEntriesRequest<TypeConfig>>(bytes).err(),
            body::<VoteRequest<TypeConfig>>(bytes).err(),
            body::<InstallSnapshotRequest<TypeConfig>>(bytes).err(),
            body::<ForwardedCommand>(bytes).err(),
            body::<()>(bytes).err(),
        ];
        for rejection in statuses.into_iter().flatten() {
            prop_assert_eq!(rejection.0, StatusCode::BAD_REQUEST);
        }
        Ok(())
    }

    /// A MessagePack container or byte string header declaring `n` items or bytes.
    fn huge_header(kind: u8, n: u32) -> Vec<u8> {
        let marker = [0xdd, 0xdf, 0xc6, 0xdb][usize::from(kind % 4)];
        let mut header = vec![marker];
        header.extend_from_slice(&n.to_be_bytes());
        header
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn arbitrary_bodies_decode_or_are_refused(bytes in vec(any::<u8>(), 0..2048)) {
            decodes_everywhere(&bytes)?;
        }

        /// An append request reads back as it was sent.
        #[test]
        fn append_requests_round_trip(request in append()) {
            let bytes = encode(&request).unwrap();
            let decoded: AppendEntriesRequest<TypeConfig> = body(&bytes).unwrap();
            prop_assert_eq!(encode(&decoded).unwrap(), bytes);
        }

        #[test]
        fn votes_and_forwarded_commands_round_trip(
            vote in vote(),
            last_log_id in proptest::option::of(log_id()),
            leadership_transfer in any::<bool>(),
            payload in vec(any::<u8>(), 0..256),
            forwarded in any::<bool>(),
        ) {
            let request = VoteRequest::<TypeConfig> { vote, last_log_id, leadership_transfer };
            let decoded: VoteRequest<TypeConfig> = body(&encode(&request).unwrap()).unwrap();
            prop_assert_eq!(decoded, request);
            let command = ForwardedCommand { payload: payload.clone(), forwarded };
            let decoded: ForwardedCommand = body(&encode(&command).unwrap()).unwrap();
            prop_assert_eq!((decoded.payload, decoded.forwarded), (payload, forwarded));
        }

        /// A valid body cut short, with a byte changed or one inserted, is refused or decodes to
        /// something that encodes and decodes again the same: never a panic.
        #[test]
        fn mutated_append_requests_are_refused_or_stable(
            request in append(),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            how in 0u8..3,
        ) {
            let mut bytes = encode(&request).unwrap();
            let i = at.index(bytes.len());
            match how {
                0 => bytes.truncate(i),
                1 => bytes[i] = byte,
                _ => bytes.insert(i, byte),
            }
            decodes_everywhere(&bytes)?;
            if let Ok(decoded) = body::<AppendEntriesRequest<TypeConfig>>(&bytes) {
                let again = encode(&decoded).unwrap();
                let twice: AppendEntriesRequest<TypeConfig> = body(&again).unwrap();
                prop_assert_eq!(encode(&twice).unwrap(), again);
            }
        }

        /// A container or byte string that declares far more than the body holds is refused,
        /// without reserving what it declares: an append request whose entries declare `n`,
        /// a forwarded command whose payload does.
        #[test]
        fn declared_lengths_past_the_body_are_refused(
            vote in vote(),
            prev_log_id in proptest::option::of(log_id()),
            kind in any::<u8>(),
            n in 1024u32..,
        ) {
            // A struct is a MessagePack array of its fields; the entries are the third.
            let append_with = |entries: &[u8]| {
                let mut bytes = vec![0x94];
                bytes.extend(encode(&vote).unwrap());
                bytes.extend(encode(&prev_log_id).unwrap());
                bytes.extend_from_slice(entries);
                bytes.extend(encode(&None::<LogId>).unwrap());
                bytes
            };
            let empty: AppendEntriesRequest<TypeConfig> = body(&append_with(&[0x90])).unwrap();
            prop_assert_eq!((empty.vote, empty.prev_log_id), (vote, prev_log_id));
            let forged = append_with(&huge_header(kind, n));
            prop_assert!(body::<AppendEntriesRequest<TypeConfig>>(&forged).is_err());
            decodes_everywhere(&forged)?;
            let mut command = vec![0x92, 0xc6];
            command.extend_from_slice(&n.to_be_bytes());
            command.extend_from_slice(&[0; 16]);
            prop_assert!(body::<ForwardedCommand>(&command).is_err());
        }

        /// The `{group}` of a route: any name is checked, none panics.
        #[test]
        fn group_names_are_checked(name in any::<String>()) {
            if let Ok(id) = GroupId::new(name.clone()) {
                prop_assert!(!name.is_empty() && name.len() <= 64);
                prop_assert_eq!(id.as_str(), name.as_str());
            }
        }
    }
}
