//! The state machine of a site's group: what this site's nodes agree on, one kind of record per
//! module. This module owns the protocol of the group (its command and reply enums, which never
//! leave `state`), the [`SiteState`] that holds every record, and the dispatch that routes each
//! command to its record's module:
//!
//! - [`sessions`]: the sessions opened at this site, and the revocations that end them;
//! - [`failures`]: failed logins and the login ban's reservations;
//! - [`holds`]: the sockets some node holds for a user (websocket connections, mail channels);
//! - [`tasks`]: the task records' storage and attempts;
//! - [`locks`]: the locks in force, and the check every session, connection and channel
//!   passes when it opens;
//! - [`incidents`]: containing a user in one entry, its preview, and the receipts kept;
//! - [`audit`]: the audit trail's hash chain, its listing, check and retention;
//! - [`feed`]: the event feed (audit events and session lifecycle changes, in log order);
//! - [`deliveries`]: how far the feed's delivery to each webhook and signals receiver got;
//! - [`snapshot`]: writing and restoring the whole state;
//! - [`store`]: the typed [`SiteStore`] the rest of the node goes through;
//! - [`peer`]: commands for tests and benchmarks that speak to the group without a store.
//!
//! Sessions are kept in a persistent ordered map (cheap to copy, so a snapshot is taken while
//! apply goes on), ordered by session id (UUIDv7: creation order, a stable cursor). Secondary
//! indexes by user, domain and expiry are rebuilt on restore and never serialized.
//!
//! Expired sessions are invisible to every read at once; the leader purges them in batches
//! with `PurgeExpired`.
//!
//! Every way a session ends is an entry; applying it tells this node's [`SiteEffects`], which
//! closes the sockets the node holds for it. The effects are the state machine's only way out,
//! and they never feed back into the state. Everything here is deterministic and imports only
//! `crate::model`: no clock but the entry's, no I/O.

pub mod audit;
#[cfg(test)]
mod audit_tests;
pub mod deliveries;
pub mod failures;
pub mod feed;
#[cfg(test)]
mod feed_tests;
pub mod holds;
pub mod incidents;
pub mod locks;
pub mod peer;
pub mod sessions;
mod snapshot;
pub mod store;
pub mod tasks;
#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sessionplane_cluster::{Applying, SnapshotWriter, StateMachine};
use uuid::Uuid;

use crate::model::audit::NewAuditEvent;
use crate::model::delivery::{Delivery, DeliveryOutcome, SinkName};
use crate::model::task::{Attempt, NewTask, Task};
use crate::model::{
    Channel, ChannelTarget, CloseReason, Closed, Connection, Containment, Lock, NewChannel,
    NewConnection, NewSession, Receipt, Session,
};
use crate::state::directory::AccessRevocation;

pub use failures::LoginFailures;
pub use sessions::SiteView;
pub use store::{Ended, Refusal, SiteStore};

pub(crate) use protocol::{SiteCommand, SiteReply};

/// The group's protocol: what is on its log and on the wire, so a change here must keep every
/// existing entry decoding. Public types in a private module: the cluster crate's
/// `StateMachine` names them, nothing outside `state::site` can.
mod protocol {
    use super::*;

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub enum SiteCommand {
        /// Opens a session; idempotent by `session_id`.
        CreateSession(NewSession),
        /// Extends a live session to `lifetime_ms` from now.
        RenewSession {
            session_id: Uuid,
            lifetime_ms: u64,
        },
        DeleteSession {
            session_id: Uuid,
            reason: CloseReason,
            #[serde(default)]
            authority: Authority,
        },
        /// Deletes every session of a user in a domain, but `except`.
        DeleteUserSessions {
            domain: String,
            user_id: Uuid,
            except: Option<Uuid>,
            reason: CloseReason,
            #[serde(default)]
            authority: Authority,
        },
        /// Removes at most `limit` sessions expired at the entry's time, and as many expired login
        /// failures.
        PurgeExpired {
            limit: u32,
        },
        /// Counts a failed login for `key` (`login@domain`) for `window_ms`. Written by earlier
        /// versions, which counted a failure after its password check; kept so their logs replay.
        RecordLoginFailure {
            key: String,
            window_ms: u64,
        },
        /// Forgets `key`'s failures (after a successful login).
        ClearLoginFailures {
            key: String,
        },
        /// Registers a websocket connection of a live session.
        OpenConnection(NewConnection),
        CloseConnection {
            conn_id: Uuid,
        },
        /// Forgets the connections and channels a node registered in any incarnation but
        /// `keep_incarnation` (all of them when `None`): the node died or restarted.
        ReapNode {
            node_id: u64,
            keep_incarnation: Option<u64>,
        },
        /// Registers an authenticated mail-protocol channel.
        OpenChannel(NewChannel),
        /// Forgets a channel whose client left.
        CloseChannel {
            channel_id: Uuid,
        },
        /// Ends channels: every node closes those it holds.
        DisconnectChannels(ChannelTarget),
        /// Keeps a write that missed some sites, to be retried there.
        SubmitTask(NewTask),
        /// What one attempt of a task at one site came to.
        RecordTaskAttempt {
            task_id: Uuid,
            site: String,
            attempt: Attempt,
            node: String,
        },
        CancelTask {
            task_id: Uuid,
        },
        /// Ends, at this site, the access the directory revoked (`seq` and before are done:
        /// applying one twice, or out of order, does nothing).
        ApplyAccessRevocation(AccessRevocation),
        /// Reserves one password check for `key` before it is made: counted as a failure for
        /// `window_ms` (a success clears it), refused once `limit` of them count. In log order, so
        /// concurrent attempts on any node of the site get at most `limit` checks between them.
        ReserveLoginAttempt {
            key: String,
            window_ms: u64,
            limit: u32,
        },
        /// Places a lock, ending what it matches but the session it spares.
        PlaceLock {
            lock: Lock,
        },
        LiftLock {
            lock_id: Uuid,
        },
        /// Contains a user in one entry (see `incidents`), if `authority` still may.
        Contain {
            containment: Containment,
            authority: Authority,
        },
        /// Keeps (or updates) an incident's receipt.
        RecordReceipt(Box<Receipt>),
        /// Applies `command`, then records `event` with the outcome of its reply, in this one
        /// entry (an event that cannot be recorded refuses the command: it is not applied).
        Audited {
            event: Box<NewAuditEvent>,
            command: Box<SiteCommand>,
        },
        /// Records an event that has no change of its own (a refused call, a failed login).
        RecordAudit(Box<NewAuditEvent>),
        /// Records the directory's audit outbox event `seq` (a change to users, groups or
        /// domains served at this site); `seq` and before are done.
        CopyDirectoryAudit {
            seq: u64,
            event: Box<NewAuditEvent>,
        },
        /// Forgets at most `limit` audit events older than `keep_ms`, oldest first.
        PurgeAudit {
            keep_ms: u64,
            limit: u32,
        },
        /// Forgets at most `limit` feed events up to `upto` (inclusive), oldest first.
        TrimFeed {
            upto: u64,
            limit: u32,
        },
        /// What an attempt to deliver the feed to `sink` came to.
        RecordDelivery {
            sink: SinkName,
            outcome: DeliveryOutcome,
        },
        /// Forgets the delivery to a receiver no longer configured.
        ForgetDelivery {
            sink: SinkName,
        },
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub enum SiteReply {
        Session(Session),
        NotFound,
        Deleted(Vec<Uuid>),
        LoginFailures(LoginFailures),
        Connection(Connection),
        ConnectionsClosed(u32),
        Channel(Channel),
        ChannelsClosed(u32),
        Task(Box<Task>),
        Invalid(String),
        /// The revocation's caller session had ended before it applied.
        CallerSessionEnded,
        /// The session to end lies in this domain, outside the caller's.
        OutsideDomain(String),
        /// No password check for this key now: as many as allowed already count.
        LoginBanned(LoginFailures),
        /// A lock in force keeps this session, connection or channel from opening.
        Locked {
            lock_id: Uuid,
            message: String,
        },
        LockPlaced(Closed),
        Lock(Box<Lock>),
        /// What a containment ended, and the log index of its entry.
        Contained {
            closed: Closed,
            log_index: u64,
        },
        Receipt(Box<Receipt>),
        /// The audit event's sequence in the site's chain.
        AuditRecorded(u64),
        /// How many audit events a purge forgot.
        AuditPurged(u32),
        /// How many feed events a trim forgot.
        FeedTrimmed(u32),
        Delivery(Box<Delivery>),
    }

    impl SiteCommand {
        /// Whether the command takes access away (ends sessions, places a lock): such a command
        /// is acknowledged only once settled, so that no node checks a token from a copy
        /// without it (see `SiteStore::get_leased`).
        pub fn revokes_access(&self) -> bool {
            match self {
                Self::DeleteSession { .. }
                | Self::DeleteUserSessions { .. }
                | Self::ApplyAccessRevocation(_)
                | Self::PlaceLock { .. }
                | Self::Contain { .. } => true,
                Self::Audited { command, .. } => command.revokes_access(),
                Self::CreateSession(_)
                | Self::RenewSession { .. }
                | Self::PurgeExpired { .. }
                | Self::RecordLoginFailure { .. }
                | Self::ClearLoginFailures { .. }
                | Self::OpenConnection(_)
                | Self::CloseConnection { .. }
                | Self::ReapNode { .. }
                | Self::OpenChannel(_)
                | Self::CloseChannel { .. }
                | Self::DisconnectChannels(_)
                | Self::SubmitTask(_)
                | Self::RecordTaskAttempt { .. }
                | Self::CancelTask { .. }
                | Self::ReserveLoginAttempt { .. }
                | Self::LiftLock { .. }
                | Self::RecordReceipt(_)
                | Self::RecordAudit(_)
                | Self::CopyDirectoryAudit { .. }
                | Self::PurgeAudit { .. }
                | Self::TrimFeed { .. }
                | Self::RecordDelivery { .. }
                | Self::ForgetDelivery { .. } => false,
            }
        }
    }
}

/// What a revocation's caller may do, checked when the revocation applies: in log order, so a
/// caller whose session ended before cannot revoke, even through a node that has not applied
/// that end yet, and no read barrier has to come first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Authority {
    /// The caller's session, which must still be live (none: a service or another site).
    pub session: Option<Uuid>,
    /// The one domain whose sessions the caller may end (none: any).
    pub domain: Option<String>,
}

impl Authority {
    /// The system itself (a logout of one's own session, an account change): no check.
    pub fn system() -> Self {
        Self::default()
    }
}

/// What this node does when an applied entry ends sessions or channels: close the sockets it
/// holds for them. Called under the state's write lock, so it must only hand the work off.
pub trait SiteEffects: Send + Sync {
    fn sessions_ended(&self, _sessions: &[Uuid], _reason: CloseReason) {}
    fn channels_disconnected(&self, _channels: &[Uuid]) {}
    /// A containment ended these sessions and channels: close this node's sockets of them,
    /// then report this node's part of the incident.
    fn contained(&self, _contained: ContainedHere) {}
    /// The feed's last event is now `last_seq`.
    fn feed_advanced(&self, _last_seq: u64) {}
}

/// What one containment entry ended at this site, as each node applies it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainedHere {
    pub incident_id: Uuid,
    pub log_index: u64,
    pub sessions: Vec<Uuid>,
    pub channels: Vec<Uuid>,
    pub reason: CloseReason,
}

/// Read-only questions a peer may ask a site's group (answered after a read barrier).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SiteQuery {
    Get(Uuid),
    UserSessions(Uuid),
    Counts,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SiteQueryReply {
    Session(Option<Session>),
    Sessions(Vec<Session>),
    /// Live sessions, and sessions stored (expired ones not yet purged included).
    Counts {
        live: u64,
        stored: u64,
    },
    Invalid(String),
}

#[derive(Default)]
pub struct SiteState {
    effects: Option<Arc<dyn SiteEffects>>,
    sessions: imbl::OrdMap<Uuid, Arc<Session>>,
    /// (user, session): persistent, so that a view carries it at no cost.
    by_user: imbl::OrdSet<(Uuid, Uuid)>,
    by_domain: BTreeSet<(Arc<str>, Uuid)>,
    by_expiry: BTreeSet<(u64, Uuid)>,
    /// One allocation per distinct domain and login string.
    names: HashSet<Arc<str>>,
    /// Failed logins per `login@domain`: the times at which each stops counting, oldest first.
    failures: imbl::OrdMap<Arc<str>, Vec<u64>>,
    failure_expiry: BTreeSet<(u64, Arc<str>)>,
    connections: imbl::OrdMap<(Uuid, Uuid), Arc<Connection>>,
    conn_session: HashMap<Uuid, Uuid>,
    /// (node id, incarnation, connection id).
    conns_by_node: BTreeSet<(u64, u64, Uuid)>,
    channels: imbl::OrdMap<Uuid, Arc<Channel>>,
    channels_by_user: BTreeSet<(Arc<str>, Uuid)>,
    /// (node id, incarnation, channel id).
    channels_by_node: BTreeSet<(u64, u64, Uuid)>,
    tasks: imbl::OrdMap<Uuid, Arc<Task>>,
    /// The last directory access revocation applied at this site.
    access_revocations_done: u64,
    locks: imbl::OrdMap<Uuid, Arc<Lock>>,
    receipts: imbl::OrdMap<Uuid, Arc<Receipt>>,
    /// The audit trail by sequence (log order), and its index by (time, event id, sequence).
    audit: imbl::OrdMap<u64, Arc<crate::model::audit::AuditEvent>>,
    audit_by_time: BTreeSet<(u64, Uuid, u64)>,
    audit_next_seq: u64,
    /// The last event's hash (none: no event yet).
    audit_head: Option<String>,
    /// The `prev_hash` of the first event kept (none: no event was ever recorded).
    audit_anchor: Option<String>,
    /// The last directory audit outbox event copied into this site's chain.
    directory_audit_done: u64,
    feed: feed::Feed,
    deliveries: imbl::OrdMap<SinkName, Arc<Delivery>>,
}

impl SiteState {
    /// An empty state that tells `effects` about the sessions its entries end.
    pub fn with_effects(effects: Arc<dyn SiteEffects>) -> Self {
        Self {
            effects: Some(effects),
            ..Self::default()
        }
    }

    /// Whether some session or login failure has expired and awaits purging.
    pub fn has_expired(&self, now_ms: u64) -> bool {
        let due = |first: Option<u64>| first.is_some_and(|expires| expires <= now_ms);
        due(self.by_expiry.first().map(|(at, _)| *at))
            || due(self.failure_expiry.first().map(|(at, _)| *at))
            || self.tasks.values().any(|task| task.is_stale(now_ms))
            || self.has_stale_locks(now_ms)
            || self.has_old_receipts(now_ms)
    }

    fn execute(&mut self, entry: Applying, command: SiteCommand) -> SiteReply {
        let at_ms = entry.at_ms;
        self.feed.entry_ms = at_ms;
        match command {
            SiteCommand::CreateSession(new) => self.create(at_ms, new),
            SiteCommand::RenewSession {
                session_id,
                lifetime_ms,
            } => self.renew(at_ms, session_id, lifetime_ms),
            SiteCommand::DeleteSession {
                session_id,
                reason,
                authority,
            } => self.delete_session(at_ms, session_id, reason, &authority),
            SiteCommand::DeleteUserSessions {
                domain,
                user_id,
                except,
                reason,
                authority,
            } => self.delete_user_sessions(at_ms, &domain, user_id, except, reason, &authority),
            SiteCommand::PurgeExpired { limit } => self.purge_expired(at_ms, limit),
            SiteCommand::RecordLoginFailure { key, window_ms } => {
                self.record_login_failure(&key, at_ms, window_ms)
            }
            SiteCommand::ReserveLoginAttempt {
                key,
                window_ms,
                limit,
            } => self.reserve_login_attempt(&key, at_ms, window_ms, limit),
            SiteCommand::ClearLoginFailures { key } => self.clear_login_failures(key),
            SiteCommand::OpenConnection(new) => self.open_connection(at_ms, new),
            SiteCommand::CloseConnection { conn_id } => {
                SiteReply::ConnectionsClosed(self.remove_connections([conn_id]))
            }
            SiteCommand::ReapNode {
                node_id,
                keep_incarnation,
            } => self.reap_node(node_id, keep_incarnation),
            SiteCommand::OpenChannel(new) => self.open_channel(at_ms, new),
            SiteCommand::SubmitTask(new) => self.submit_task(at_ms, new),
            SiteCommand::RecordTaskAttempt {
                task_id,
                site,
                attempt,
                node,
            } => {
                if let Attempt::Answered(part) = &attempt {
                    self.fill_in_receipts(task_id, &site, part);
                }
                self.update_task(task_id, |t| t.record(&site, attempt, &node, at_ms))
            }
            SiteCommand::CancelTask { task_id } => self.update_task(task_id, |t| t.cancel(at_ms)),
            SiteCommand::ApplyAccessRevocation(revocation) => {
                self.apply_access_revocation(at_ms, revocation)
            }
            SiteCommand::CloseChannel { channel_id } => {
                SiteReply::ChannelsClosed(self.remove_channels([channel_id]).len() as u32)
            }
            SiteCommand::DisconnectChannels(target) => self.disconnect_channels(target),
            SiteCommand::PlaceLock { lock } => self.place_lock(at_ms, lock),
            SiteCommand::LiftLock { lock_id } => self.lift_lock(at_ms, lock_id),
            SiteCommand::Contain {
                containment,
                authority,
            } => self.contain(entry, containment, &authority),
            SiteCommand::RecordReceipt(receipt) => self.record_receipt(*receipt),
            SiteCommand::Audited { event, command } => self.audited(entry, *event, *command),
            SiteCommand::RecordAudit(event) => self.record_alone(*event),
            SiteCommand::CopyDirectoryAudit { seq, event } => {
                self.copy_directory_audit(seq, *event)
            }
            SiteCommand::PurgeAudit { keep_ms, limit } => self.purge_audit(at_ms, keep_ms, limit),
            SiteCommand::TrimFeed { upto, limit } => self.trim_feed(upto, limit),
            SiteCommand::RecordDelivery { sink, outcome } => {
                self.record_delivery(at_ms, sink, outcome)
            }
            SiteCommand::ForgetDelivery { sink } => self.forget_delivery(&sink),
        }
    }

    /// Removes at most `limit` sessions expired at `at_ms`, as many expired login failures, and
    /// the finished tasks kept long enough.
    fn purge_expired(&mut self, at_ms: u64, limit: u32) -> SiteReply {
        let expired: Vec<Uuid> = self
            .by_expiry
            .range(..=(at_ms, Uuid::max()))
            .take(limit as usize)
            .map(|(_, id)| *id)
            .collect();
        self.forget_failures_until(at_ms, limit as usize);
        self.forget_stale_tasks(at_ms);
        self.forget_ended_locks(at_ms);
        self.forget_old_receipts(at_ms);
        SiteReply::Deleted(self.end_sessions(expired, CloseReason::Expired))
    }

    pub(super) fn intern(&mut self, name: &str) -> Arc<str> {
        if let Some(shared) = self.names.get(name) {
            return shared.clone();
        }
        let shared: Arc<str> = name.into();
        self.names.insert(shared.clone());
        shared
    }

    fn answer(&self, query: SiteQuery, now_ms: u64) -> SiteQueryReply {
        match query {
            SiteQuery::Get(id) => SiteQueryReply::Session(self.get(&id, now_ms).cloned()),
            SiteQuery::UserSessions(user) => {
                SiteQueryReply::Sessions(self.user_sessions(&user, now_ms))
            }
            SiteQuery::Counts => SiteQueryReply::Counts {
                live: self.live_count(now_ms),
                stored: self.stored_count() as u64,
            },
        }
    }
}

impl StateMachine for SiteState {
    type Command = SiteCommand;
    type Reply = SiteReply;
    type Query = SiteQuery;
    type QueryReply = SiteQueryReply;

    fn apply(&mut self, entry: Applying, command: SiteCommand) -> SiteReply {
        let before = self.feed.last_seq;
        let reply = self.execute(entry, command);
        if let (Some(effects), true) = (&self.effects, self.feed.last_seq != before) {
            effects.feed_advanced(self.feed.last_seq);
        }
        reply
    }

    fn undecodable_command(error: String) -> SiteReply {
        SiteReply::Invalid(format!("undecodable site command: {error}"))
    }

    fn snapshot(&self) -> SnapshotWriter {
        snapshot::write(self)
    }

    fn restore(&self, bytes: &[u8]) -> Result<Self, String> {
        snapshot::restore(self, bytes)
    }

    fn query(&self, query: SiteQuery) -> SiteQueryReply {
        self.answer(query, sessionplane_cluster::now_ms())
    }

    fn undecodable_query(error: String) -> SiteQueryReply {
        SiteQueryReply::Invalid(format!("undecodable site query: {error}"))
    }
}
