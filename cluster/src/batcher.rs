//! Proposal batching on the leader.
//!
//! Every log append costs a flush, so one command per entry would cost one fsync per command.
//! Concurrent commands are gathered into one entry
//! instead: while at most [`MAX_IN_FLIGHT`] entries are on their way, new commands queue and
//! leave together in the next one. When a slot frees, the callers the last entry answered are
//! usually about to send their next command: the batcher yields to them (a few microseconds each)
//! until about as many commands are queued as it answered, so
//! the next entry leaves full rather than with one command.
//! A lone command leaves at once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use openraft::error::ClientWriteError;
use openraft::impls::ProgressResponder;
use openraft::raft::ClientWriteResult;
use serde_bytes::ByteBuf;
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::state_machine::Raft;
use crate::types::{now_ms, Proposal, TypeConfig};
use crate::wire::Refusal;

/// Entries proposed but not yet applied, at most: one being flushed, one filling up behind it.
const MAX_IN_FLIGHT: usize = 2;
/// Yields to callers before an entry leaves, at most.
const MAX_LINGER_YIELDS: usize = 16;
/// Commands in one entry, at most.
const MAX_COMMANDS: usize = 1024;
/// Once an entry holds this many bytes of commands, it leaves.
const MAX_ENTRY_BYTES: usize = 256 * 1024;
/// The largest single command accepted; keeps every append request under the cluster
/// listener's body limit (see `host.rs`, `max_payload_entries`).
pub const MAX_COMMAND_BYTES: usize = 256 * 1024;

struct Pending {
    command: Vec<u8>,
    reply: oneshot::Sender<Result<Vec<u8>, Refusal>>,
}

pub(crate) struct Batcher {
    queue: mpsc::UnboundedSender<Pending>,
}

impl Batcher {
    pub(crate) fn start(raft: Raft) -> Self {
        let (queue, pending) = mpsc::unbounded_channel();
        tokio::spawn(run(raft, pending));
        Self { queue }
    }

    /// Proposes one command on this node, which must lead; returns the command's reply.
    pub(crate) async fn submit(&self, command: Vec<u8>) -> Result<Vec<u8>, Refusal> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Pending { command, reply })
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> Refusal {
    Refusal::Failed("the group is stopping".into())
}

async fn run(raft: Raft, mut queue: mpsc::UnboundedReceiver<Pending>) {
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let last_answered = Arc::new(AtomicUsize::new(0));
    while let Some(first) = queue.recv().await {
        // Waiting for a slot is what lets commands pile up into the next entry.
        let Ok(slot) = in_flight.clone().acquire_owned().await else {
            return;
        };
        linger(&queue, last_answered.load(Ordering::Relaxed)).await;
        let mut bytes = first.command.len();
        let mut batch = vec![first];
        while batch.len() < MAX_COMMANDS && bytes < MAX_ENTRY_BYTES {
            match queue.try_recv() {
                Ok(next) => {
                    bytes += next.command.len();
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        let (commands, waiters): (Vec<ByteBuf>, Vec<_>) = batch
            .into_iter()
            .map(|p| (ByteBuf::from(p.command), p.reply))
            .unzip();
        let proposal = Proposal {
            at_ms: now_ms(),
            commands,
        };
        let (responder, outcome) = ProgressResponder::complete_only();
        match raft.client_write_ff(proposal, Some(responder)).await {
            Ok(()) => {
                let last_answered = last_answered.clone();
                tokio::spawn(async move {
                    let outcome = outcome.await;
                    last_answered.store(waiters.len(), Ordering::Relaxed);
                    deliver(outcome, waiters);
                    drop(slot);
                });
            }
            Err(fatal) => fail_all(waiters, || Refusal::Failed(fatal.to_string())),
        }
    }
}

/// Yields until as many commands are queued as the last entry answered (its callers are about to
/// send their next ones), or [`MAX_LINGER_YIELDS`] times.
async fn linger(queue: &mpsc::UnboundedReceiver<Pending>, expected: usize) {
    for _ in 0..MAX_LINGER_YIELDS {
        if queue.len() + 1 >= expected {
            return;
        }
        tokio::task::yield_now().await;
    }
}

type Outcome = Result<ClientWriteResult<TypeConfig>, oneshot::error::RecvError>;

fn deliver(outcome: Outcome, waiters: Vec<oneshot::Sender<Result<Vec<u8>, Refusal>>>) {
    match outcome {
        Ok(Ok(response)) => {
            let mut replies = response.data.0.into_iter();
            for waiter in waiters {
                let reply = replies
                    .next()
                    .map(ByteBuf::into_vec)
                    .ok_or_else(|| Refusal::Failed("missing reply".into()));
                let _ = waiter.send(reply);
            }
        }
        Ok(Err(ClientWriteError::ForwardToLeader(_))) => fail_all(waiters, || Refusal::NotLeader),
        Ok(Err(e)) => fail_all(waiters, || Refusal::Failed(e.to_string())),
        Err(_) => fail_all(waiters, || {
            Refusal::Failed("the write was dropped; its outcome is unknown".into())
        }),
    }
}

fn fail_all(
    waiters: Vec<oneshot::Sender<Result<Vec<u8>, Refusal>>>,
    refusal: impl Fn() -> Refusal,
) {
    for waiter in waiters {
        let _ = waiter.send(Err(refusal()));
    }
}
