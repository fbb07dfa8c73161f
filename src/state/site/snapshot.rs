//! Writing and restoring the whole site state: sessions, login failures, connections, channels,
//! tasks and the last access revocation applied, in that order (the layout every existing
//! snapshot has), then the locks, the incident receipts, the audit trail, the event feed and
//! the deliveries (absent from older snapshots, read as none). Secondary indexes are never written: restore rebuilds them.
//!
//! Reads every record of [`SiteState`] but changes none of a live state: restore builds a new one.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sessionplane_cluster::SnapshotWriter;
use uuid::Uuid;

use super::audit::AuditParts;
use super::feed::FeedParts;
use super::SiteState;
use crate::model::audit::AuditEvent;
use crate::model::delivery::Delivery;
use crate::model::event::FeedEvent;
use crate::model::task::Task;
use crate::model::{Channel, Connection, Lock, Receipt, Session};
use crate::state::{decode, encode_into};

/// A snapshot's size per session, give or take: the buffer is sized once instead of doubling
/// its way up to ~150 MiB for a million sessions.
const SNAPSHOT_BYTES_PER_SESSION: usize = 160;

/// Serializes the sessions as one sequence without collecting them first.
struct EverySession<'a>(&'a imbl::OrdMap<Uuid, Arc<Session>>);

impl Serialize for EverySession<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for session in self.0.values() {
            seq.serialize_element(&**session)?;
        }
        seq.end()
    }
}

/// Copies the maps of the state (cheap: they are persistent) and returns the job that encodes them.
pub(super) fn write(state: &SiteState) -> SnapshotWriter {
    let sessions = state.sessions.clone();
    let failures = state.failures.clone();
    let connections = state.connections.clone();
    let channels = state.channels.clone();
    let tasks = state.tasks.clone();
    let revocations_done = state.access_revocations_done;
    let locks = state.locks.clone();
    let receipts = state.receipts.clone();
    let audit = state.audit.clone();
    let audit_tail = (
        state.audit_next_seq,
        state.audit_head.clone(),
        state.audit_anchor.clone(),
        state.directory_audit_done,
    );
    let feed = (state.feed.events.clone(), state.feed.last_seq);
    let deliveries = state.deliveries.clone();
    Box::new(move || {
        let mut bytes = Vec::with_capacity(sessions.len() * SNAPSHOT_BYTES_PER_SESSION);
        let failures: Vec<(&str, &Vec<u64>)> = failures
            .iter()
            .map(|(key, times)| (&**key, times))
            .collect();
        let connections: Vec<&Connection> = connections.values().map(|c| &**c).collect();
        let channels: Vec<&Channel> = channels.values().map(|c| &**c).collect();
        let tasks: Vec<&Task> = tasks.values().map(|t| &**t).collect();
        let locks: Vec<&Lock> = locks.values().map(|l| &**l).collect();
        let receipts: Vec<&Receipt> = receipts.values().map(|r| &**r).collect();
        let events: Vec<(u64, &AuditEvent)> = audit.iter().map(|(s, e)| (*s, &**e)).collect();
        let (next_seq, head, anchor, directory_done) = &audit_tail;
        let feed_events: Vec<&FeedEvent> = feed.0.values().map(|e| &**e).collect();
        let deliveries: Vec<&Delivery> = deliveries.values().map(|d| &**d).collect();
        let snapshot = (
            EverySession(&sessions),
            failures,
            connections,
            channels,
            tasks,
            revocations_done,
            locks,
            receipts,
            (events, next_seq, head, anchor, directory_done),
            (feed_events, feed.1),
            deliveries,
        );
        match encode_into(&mut bytes, &snapshot) {
            Ok(()) => bytes,
            Err(_) => Vec::new(),
        }
    })
}

/// A new state from snapshot bytes, with the effects of `previous` and every index rebuilt.
pub(super) fn restore(previous: &SiteState, bytes: &[u8]) -> Result<SiteState, String> {
    let Parts {
        sessions,
        failures,
        connections,
        channels,
        tasks,
        revocations_done,
        locks,
        receipts,
        audit,
        feed,
        deliveries,
    } = decode(bytes).map_err(|e| format!("site snapshot does not decode: {e}"))?;
    let mut state = SiteState {
        effects: previous.effects.clone(),
        ..SiteState::default()
    };
    for (key, times) in failures {
        let key = state.intern(&key);
        for until in &times {
            state.failure_expiry.insert((*until, key.clone()));
        }
        state.failures.insert(key, times);
    }
    for mut session in sessions {
        session.login = state.intern(&session.login);
        session.domain = state.intern(&session.domain);
        session.user_agent = session.user_agent.map(|ua| state.intern(&ua));
        state.insert(session);
    }
    for mut connection in connections {
        connection.node = state.intern(&connection.node);
        state.insert_connection(connection);
    }
    for mut channel in channels {
        channel.node = state.intern(&channel.node);
        channel.username = state.intern(&channel.username);
        state.insert_channel(channel);
    }
    state.tasks = tasks
        .into_iter()
        .map(|t| (t.task_id, Arc::new(t)))
        .collect();
    state.access_revocations_done = revocations_done;
    state.locks = locks
        .into_iter()
        .map(|l| (l.lock_id, Arc::new(l)))
        .collect();
    state.receipts = receipts
        .into_iter()
        .map(|r| (r.incident_id, Arc::new(r)))
        .collect();
    state.restore_audit(audit);
    state.restore_feed(feed);
    state.deliveries = deliveries
        .into_iter()
        .map(|d| (d.sink.clone(), Arc::new(d)))
        .collect();
    Ok(state)
}

/// A snapshot's elements, in the order [`write`] puts them; those added later (locks,
/// receipts, the audit trail, the feed, the deliveries) are absent from older snapshots and read as empty.
#[derive(Deserialize)]
struct Parts {
    sessions: Vec<Session>,
    failures: Vec<(String, Vec<u64>)>,
    connections: Vec<Connection>,
    channels: Vec<Channel>,
    tasks: Vec<Task>,
    revocations_done: u64,
    #[serde(default)]
    locks: Vec<Lock>,
    #[serde(default)]
    receipts: Vec<Receipt>,
    #[serde(default)]
    audit: AuditParts,
    #[serde(default)]
    feed: FeedParts,
    #[serde(default)]
    deliveries: Vec<Delivery>,
}
