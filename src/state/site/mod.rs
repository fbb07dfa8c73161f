//! The state machine of a site's group: the sessions opened at that site.
//!
//! Sessions are kept in a persistent ordered map (cheap to copy, so a snapshot is taken while
//! apply goes on), ordered by session id (UUIDv7: creation order, a stable cursor). Secondary
//! indexes by user, domain and expiry are rebuilt on restore and never serialized.
//!
//! Expired sessions are invisible to every read at once; the leader purges them in batches
//! with [`SiteCommand::PurgeExpired`].
//!
//! Websocket connections are registered here too, keyed by (session, connection), so that a
//! session's connections are one range and a session's end removes them. Every way a session
//! ends is an entry; applying it tells this node's [`SiteEffects`], which closes the sockets the
//! node holds for it. The effects are the state machine's only way out, and they never feed
//! back into the state.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ops::Bound;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sessionplane_cluster::{SnapshotWriter, StateMachine};
use uuid::Uuid;

use crate::model::{
    Channel, ChannelTarget, CloseReason, Connection, NewChannel, NewConnection, NewSession, Session,
};
use crate::state::directory::AccessRevocation;
use crate::state::{decode, encode, encode_into};
use crate::tasks::{Attempt, NewTask, Task};

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
}

/// What this node does when an applied entry ends sessions or channels: close the sockets it
/// holds for them. Called under the state's write lock, so it must only hand the work off.
pub trait SiteEffects: Send + Sync {
    fn sessions_ended(&self, _sessions: &[Uuid], _reason: CloseReason) {}
    fn channels_disconnected(&self, _channels: &[Uuid]) {}
}

/// The failed logins of one `login@domain` that still count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginFailures {
    pub count: u32,
    /// When the oldest of them stops counting (ms since the epoch); 0 when there is none.
    pub first_expires_at_ms: u64,
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
}

/// A frozen copy of the sessions and connections, taken in O(1) and read without any lock:
/// a listing streams through it while apply goes on.
#[derive(Clone, Default)]
pub struct SiteView {
    sessions: imbl::OrdMap<Uuid, Arc<Session>>,
    by_user: imbl::OrdSet<(Uuid, Uuid)>,
    connections: imbl::OrdMap<(Uuid, Uuid), Arc<Connection>>,
}

impl SiteView {
    /// Sessions in id order, from `from` (inclusive) on; expired ones included.
    pub fn sessions_from(&self, from: Bound<Uuid>) -> impl Iterator<Item = &Session> + '_ {
        self.sessions
            .range((from, Bound::Unbounded))
            .map(|(_, s)| &**s)
    }

    /// A user's sessions in id order, from `from` on; expired ones included.
    pub fn user_sessions_from(
        &self,
        user_id: Uuid,
        from: Bound<Uuid>,
    ) -> impl Iterator<Item = &Session> + '_ {
        let start = match from {
            Bound::Included(id) => Bound::Included((user_id, id)),
            Bound::Excluded(id) => Bound::Excluded((user_id, id)),
            Bound::Unbounded => Bound::Included((user_id, Uuid::nil())),
        };
        self.by_user
            .range((start, Bound::Included((user_id, Uuid::max()))))
            .filter_map(|(_, id)| self.session(id))
    }

    pub fn session(&self, id: &Uuid) -> Option<&Session> {
        self.sessions.get(id).map(|s| &**s)
    }

    pub fn connections_of(&self, session_id: Uuid) -> impl Iterator<Item = &Connection> + '_ {
        self.connections
            .range((session_id, Uuid::nil())..=(session_id, Uuid::max()))
            .map(|(_, c)| &**c)
    }
}

impl SiteState {
    /// An empty state that tells `effects` about the sessions its entries end.
    pub fn with_effects(effects: Arc<dyn SiteEffects>) -> Self {
        Self {
            effects: Some(effects),
            ..Self::default()
        }
    }

    pub fn view(&self) -> SiteView {
        SiteView {
            sessions: self.sessions.clone(),
            by_user: self.by_user.clone(),
            connections: self.connections.clone(),
        }
    }

    /// The (node, incarnation) pairs that hold registered connections or channels.
    pub fn connection_holders(&self) -> BTreeSet<(u64, u64)> {
        let mut holders = BTreeSet::new();
        for index in [&self.conns_by_node, &self.channels_by_node] {
            let mut from = Bound::Unbounded;
            while let Some((node, incarnation, _)) =
                index.range((from, Bound::Unbounded)).next().copied()
            {
                holders.insert((node, incarnation));
                from = Bound::Excluded((node, incarnation, Uuid::max()));
            }
        }
        holders
    }

    /// The channels registered by one node in one incarnation: (channel, registered at).
    pub fn channels_held_by(&self, node_id: u64, incarnation: u64) -> Vec<(Uuid, u64)> {
        self.channels_by_node
            .range((node_id, incarnation, Uuid::nil())..=(node_id, incarnation, Uuid::max()))
            .filter_map(|(_, _, id)| Some((*id, self.channels.get(id)?.connection_date_ms)))
            .collect()
    }

    /// The last directory access revocation this site has applied.
    pub fn access_revocations_done(&self) -> u64 {
        self.access_revocations_done
    }

    /// Every task, in id order (submission order).
    pub fn tasks(&self) -> imbl::OrdMap<Uuid, Arc<Task>> {
        self.tasks.clone()
    }

    pub fn task(&self, task_id: &Uuid) -> Option<Arc<Task>> {
        self.tasks.get(task_id).cloned()
    }

    /// Every channel, in id order (registration order).
    pub fn channels(&self) -> imbl::OrdMap<Uuid, Arc<Channel>> {
        self.channels.clone()
    }

    /// The channels of one user (`login@domain`).
    pub fn user_channels(&self, username: &str) -> Vec<Arc<Channel>> {
        let user: Arc<str> = username.into();
        self.channels_by_user
            .range((user.clone(), Uuid::nil())..=(user, Uuid::max()))
            .filter_map(|(_, id)| self.channels.get(id).cloned())
            .collect()
    }

    /// The connections registered by one node in one incarnation: (connection, session,
    /// registered at).
    pub fn connections_held_by(&self, node_id: u64, incarnation: u64) -> Vec<(Uuid, Uuid, u64)> {
        self.conns_by_node
            .range((node_id, incarnation, Uuid::nil())..=(node_id, incarnation, Uuid::max()))
            .filter_map(|(_, _, conn)| {
                let session = self.conn_session.get(conn)?;
                let c = self.connections.get(&(*session, *conn))?;
                Some((*conn, *session, c.opened_at_ms))
            })
            .collect()
    }

    pub fn connection_count(&self) -> usize {
        self.connections.len()
    }

    /// A live session by id.
    pub fn get(&self, session_id: &Uuid, now_ms: u64) -> Option<&Session> {
        self.sessions
            .get(session_id)
            .map(|s| &**s)
            .filter(|s| s.is_live(now_ms))
    }

    /// A stored session, expired or not.
    pub fn session_stored(&self, session_id: &Uuid) -> Option<&Session> {
        self.sessions.get(session_id).map(|s| &**s)
    }

    /// A user's live sessions.
    pub fn user_sessions(&self, user_id: &Uuid, now_ms: u64) -> Vec<Session> {
        self.by_user
            .range((*user_id, Uuid::nil())..=(*user_id, Uuid::max()))
            .filter_map(|(_, id)| self.get(id, now_ms))
            .cloned()
            .collect()
    }

    /// Live sessions in id order after `after`, at most `limit`.
    pub fn page(&self, after: Option<Uuid>, limit: usize, now_ms: u64) -> Vec<Session> {
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        self.sessions
            .range((start, Bound::Unbounded))
            .map(|(_, s)| &**s)
            .filter(|s| s.is_live(now_ms))
            .take(limit)
            .cloned()
            .collect()
    }

    /// Live sessions of a domain.
    pub fn domain_sessions(&self, domain: &str, now_ms: u64) -> Vec<Session> {
        let domain: Arc<str> = domain.into();
        self.by_domain
            .range((domain.clone(), Uuid::nil())..=(domain, Uuid::max()))
            .filter_map(|(_, id)| self.get(id, now_ms))
            .cloned()
            .collect()
    }

    pub fn live_count(&self, now_ms: u64) -> u64 {
        let expired = self.by_expiry.range(..=(now_ms, Uuid::max())).count();
        (self.sessions.len() - expired) as u64
    }

    /// Whether some session or login failure has expired and awaits purging.
    pub fn has_expired(&self, now_ms: u64) -> bool {
        let due = |first: Option<u64>| first.is_some_and(|expires| expires <= now_ms);
        due(self.by_expiry.first().map(|(at, _)| *at))
            || due(self.failure_expiry.first().map(|(at, _)| *at))
            || self.tasks.values().any(|task| task.is_stale(now_ms))
    }

    /// The failed logins of `key` that still count at `now_ms`.
    pub fn login_failures(&self, key: &str, now_ms: u64) -> LoginFailures {
        let live: Vec<u64> = self
            .failures
            .get(key)
            .map(|times| times.iter().copied().filter(|t| *t > now_ms).collect())
            .unwrap_or_default();
        LoginFailures {
            count: live.len() as u32,
            first_expires_at_ms: live.first().copied().unwrap_or(0),
        }
    }

    pub fn stored_count(&self) -> usize {
        self.sessions.len()
    }

    /// Why a revocation by `authority` of sessions in `domain` (when known) is refused, if it is.
    fn refusal(
        &self,
        authority: &Authority,
        domain: Option<&str>,
        at_ms: u64,
    ) -> Option<SiteReply> {
        if authority
            .session
            .is_some_and(|id| self.get(&id, at_ms).is_none())
        {
            return Some(SiteReply::CallerSessionEnded);
        }
        match (&authority.domain, domain) {
            (Some(own), Some(domain)) if own != domain => {
                Some(SiteReply::OutsideDomain(domain.to_string()))
            }
            _ => None,
        }
    }

    fn execute(&mut self, at_ms: u64, command: SiteCommand) -> SiteReply {
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
            } => {
                let domain = self.get(&session_id, at_ms).map(|s| s.domain.clone());
                if let Some(refused) = self.refusal(&authority, domain.as_deref(), at_ms) {
                    return refused;
                }
                match domain {
                    Some(_) => SiteReply::Deleted(self.end_sessions([session_id], reason)),
                    None => SiteReply::NotFound,
                }
            }
            SiteCommand::DeleteUserSessions {
                domain,
                user_id,
                except,
                reason,
                authority,
            } => {
                if let Some(refused) = self.refusal(&authority, Some(&domain), at_ms) {
                    return refused;
                }
                let doomed: Vec<Uuid> = self
                    .user_sessions(&user_id, at_ms)
                    .into_iter()
                    .filter(|s| *s.domain == *domain && Some(s.session_id) != except)
                    .map(|s| s.session_id)
                    .collect();
                SiteReply::Deleted(self.end_sessions(doomed, reason))
            }
            SiteCommand::PurgeExpired { limit } => {
                let expired: Vec<Uuid> = self
                    .by_expiry
                    .range(..=(at_ms, Uuid::max()))
                    .take(limit as usize)
                    .map(|(_, id)| *id)
                    .collect();
                self.forget_failures_until(at_ms, limit as usize);
                let stale: Vec<Uuid> = self
                    .tasks
                    .values()
                    .filter(|task| task.is_stale(at_ms))
                    .map(|task| task.task_id)
                    .collect();
                for task_id in stale {
                    self.tasks.remove(&task_id);
                }
                SiteReply::Deleted(self.end_sessions(expired, CloseReason::Expired))
            }
            SiteCommand::RecordLoginFailure { key, window_ms } => {
                self.record_login_failure(&key, at_ms, window_ms)
            }
            SiteCommand::ReserveLoginAttempt {
                key,
                window_ms,
                limit,
            } => {
                let counted = self.login_failures(&key, at_ms);
                if counted.count >= limit {
                    return SiteReply::LoginBanned(counted);
                }
                self.record_login_failure(&key, at_ms, window_ms)
            }
            SiteCommand::ClearLoginFailures { key } => {
                if let Some(times) = self.failures.remove(key.as_str()) {
                    let key: Arc<str> = key.into();
                    for until in times {
                        self.failure_expiry.remove(&(until, key.clone()));
                    }
                }
                SiteReply::LoginFailures(LoginFailures::default())
            }
            SiteCommand::OpenConnection(new) => self.open_connection(at_ms, new),
            SiteCommand::CloseConnection { conn_id } => {
                SiteReply::ConnectionsClosed(self.remove_connections([conn_id]))
            }
            SiteCommand::ReapNode {
                node_id,
                keep_incarnation,
            } => {
                let stale = |index: &BTreeSet<(u64, u64, Uuid)>| -> Vec<Uuid> {
                    index
                        .range((node_id, 0, Uuid::nil())..=(node_id, u64::MAX, Uuid::max()))
                        .filter(|(_, incarnation, _)| Some(*incarnation) != keep_incarnation)
                        .map(|(_, _, id)| *id)
                        .collect()
                };
                let (conns, channels) = (stale(&self.conns_by_node), stale(&self.channels_by_node));
                self.remove_channels(channels);
                SiteReply::ConnectionsClosed(self.remove_connections(conns))
            }
            SiteCommand::OpenChannel(new) => self.open_channel(at_ms, new),
            SiteCommand::SubmitTask(new) => {
                let task = self
                    .tasks
                    .entry(new.task_id)
                    .or_insert_with(|| Arc::new(Task::submitted(new, at_ms)));
                SiteReply::Task(Box::new((**task).clone()))
            }
            SiteCommand::RecordTaskAttempt {
                task_id,
                site,
                attempt,
                node,
            } => self.update_task(task_id, |t| t.record(&site, attempt, &node, at_ms)),
            SiteCommand::CancelTask { task_id } => self.update_task(task_id, |t| t.cancel(at_ms)),
            SiteCommand::ApplyAccessRevocation(revocation) => {
                self.apply_access_revocation(at_ms, revocation)
            }
            SiteCommand::CloseChannel { channel_id } => {
                SiteReply::ChannelsClosed(self.remove_channels([channel_id]).len() as u32)
            }
            SiteCommand::DisconnectChannels(target) => {
                let doomed: Vec<Uuid> = match target {
                    ChannelTarget::All => self.channels.keys().copied().collect(),
                    ChannelTarget::Users(users) => users
                        .iter()
                        .flat_map(|u| self.user_channels(u))
                        .map(|c| c.channel_id)
                        .collect(),
                };
                let removed = self.remove_channels(doomed);
                if let (Some(effects), false) = (&self.effects, removed.is_empty()) {
                    effects.channels_disconnected(&removed);
                }
                SiteReply::ChannelsClosed(removed.len() as u32)
            }
        }
    }

    fn apply_access_revocation(&mut self, at_ms: u64, revocation: AccessRevocation) -> SiteReply {
        if revocation.seq <= self.access_revocations_done {
            return SiteReply::Deleted(Vec::new());
        }
        self.access_revocations_done = revocation.seq;
        let doomed: Vec<Uuid> = self
            .user_sessions(&revocation.user_id, at_ms)
            .into_iter()
            // A session opened after the revocation (the user enabled again since) stays.
            .filter(|s| *s.domain == *revocation.domain && Some(s.session_id) != revocation.except)
            .filter(|s| s.created_at_ms <= revocation.at_ms)
            .map(|s| s.session_id)
            .collect();
        let ended = self.end_sessions(doomed, revocation.reason);
        let channels: Vec<Uuid> = self
            .user_channels(&revocation.username)
            .iter()
            .map(|c| c.channel_id)
            .collect();
        let removed = self.remove_channels(channels);
        if let (Some(effects), false) = (&self.effects, removed.is_empty()) {
            effects.channels_disconnected(&removed);
        }
        SiteReply::Deleted(ended)
    }

    fn update_task(&mut self, task_id: Uuid, change: impl FnOnce(&mut Task)) -> SiteReply {
        match self.tasks.get_mut(&task_id) {
            Some(task) => {
                change(Arc::make_mut(task));
                SiteReply::Task(Box::new((**task).clone()))
            }
            None => SiteReply::NotFound,
        }
    }

    fn open_channel(&mut self, at_ms: u64, new: NewChannel) -> SiteReply {
        if let Some(existing) = self.channels.get(&new.channel_id) {
            return SiteReply::Channel(Channel::clone(existing));
        }
        if new.username.is_empty() {
            return SiteReply::Invalid("a channel needs a username".into());
        }
        let channel = Channel {
            channel_id: new.channel_id,
            protocol: new.protocol,
            endpoint: new.endpoint,
            username: self.intern(&new.username),
            user_id: new.user_id,
            remote_address: new.remote_address,
            connection_date_ms: at_ms,
            encrypted: new.encrypted,
            info: new.info,
            node: self.intern(&new.node),
            pid: new.pid,
        };
        self.insert_channel(channel.clone());
        SiteReply::Channel(channel)
    }

    fn insert_channel(&mut self, channel: Channel) {
        let id = channel.channel_id;
        self.channels_by_user.insert((channel.username.clone(), id));
        self.channels_by_node
            .insert((channel.pid.node_id, channel.pid.incarnation, id));
        self.channels.insert(id, Arc::new(channel));
    }

    fn remove_channels(&mut self, ids: impl IntoIterator<Item = Uuid>) -> Vec<Uuid> {
        let mut removed = Vec::new();
        for id in ids {
            if let Some(c) = self.channels.remove(&id) {
                self.channels_by_user.remove(&(c.username.clone(), id));
                self.channels_by_node
                    .remove(&(c.pid.node_id, c.pid.incarnation, id));
                removed.push(id);
            }
        }
        removed
    }

    fn open_connection(&mut self, at_ms: u64, new: NewConnection) -> SiteReply {
        if let Some(connection) = self
            .conn_session
            .get(&new.conn_id)
            .and_then(|session| self.connections.get(&(*session, new.conn_id)))
        {
            return SiteReply::Connection(Connection::clone(connection));
        }
        if self.get(&new.session_id, at_ms).is_none() {
            return SiteReply::NotFound;
        }
        let connection = Connection {
            conn_id: new.conn_id,
            session_id: new.session_id,
            node: self.intern(&new.node),
            pid: new.pid,
            opened_at_ms: at_ms,
        };
        self.insert_connection(connection.clone());
        SiteReply::Connection(connection)
    }

    fn insert_connection(&mut self, connection: Connection) {
        let (conn, session, pid) = (connection.conn_id, connection.session_id, connection.pid);
        self.conn_session.insert(conn, session);
        self.conns_by_node
            .insert((pid.node_id, pid.incarnation, conn));
        self.connections
            .insert((session, conn), Arc::new(connection));
    }

    fn remove_connections(&mut self, ids: impl IntoIterator<Item = Uuid>) -> u32 {
        let mut removed = 0;
        for conn in ids {
            let Some(session) = self.conn_session.remove(&conn) else {
                continue;
            };
            if let Some(c) = self.connections.remove(&(session, conn)) {
                self.conns_by_node
                    .remove(&(c.pid.node_id, c.pid.incarnation, conn));
                removed += 1;
            }
        }
        removed
    }

    /// Removes sessions and their connections, and tells this node's effects.
    fn end_sessions(
        &mut self,
        ids: impl IntoIterator<Item = Uuid>,
        reason: CloseReason,
    ) -> Vec<Uuid> {
        let removed = self.remove_all(ids);
        for session in &removed {
            let conns: Vec<Uuid> = self
                .connections
                .range((*session, Uuid::nil())..=(*session, Uuid::max()))
                .map(|((_, conn), _)| *conn)
                .collect();
            self.remove_connections(conns);
        }
        if let (Some(effects), false) = (&self.effects, removed.is_empty()) {
            effects.sessions_ended(&removed, reason);
        }
        removed
    }

    fn record_login_failure(&mut self, key: &str, at_ms: u64, window_ms: u64) -> SiteReply {
        let key = self.intern(key);
        let until = at_ms.saturating_add(window_ms);
        self.failures.entry(key.clone()).or_default().push(until);
        self.failure_expiry.insert((until, key.clone()));
        SiteReply::LoginFailures(self.login_failures(&key, at_ms))
    }

    fn forget_failures_until(&mut self, at_ms: u64, limit: usize) {
        let expired: Vec<(u64, Arc<str>)> = self
            .failure_expiry
            .iter()
            .take_while(|(until, _)| *until <= at_ms)
            .take(limit)
            .cloned()
            .collect();
        for (until, key) in expired {
            self.failure_expiry.remove(&(until, key.clone()));
            let emptied = match self.failures.get_mut(&key) {
                Some(times) => {
                    times.retain(|t| *t != until);
                    times.is_empty()
                }
                None => false,
            };
            if emptied {
                self.failures.remove(&key);
            }
        }
    }

    fn create(&mut self, at_ms: u64, new: NewSession) -> SiteReply {
        if let Some(existing) = self.sessions.get(&new.session_id) {
            return SiteReply::Session(Session::clone(existing));
        }
        if new.login.is_empty() || new.domain.is_empty() || new.lifetime_ms == 0 {
            return SiteReply::Invalid("a session needs a login, a domain and a lifetime".into());
        }
        let session = Session {
            session_id: new.session_id,
            user_id: new.user_id,
            login: self.intern(&new.login),
            domain: self.intern(&new.domain),
            created_at_ms: at_ms,
            expires_at_ms: at_ms.saturating_add(new.lifetime_ms),
            last_seen_ms: at_ms,
            client_addr: new.client_addr,
            user_agent: new.user_agent.map(|ua| self.intern(&ua)),
        };
        self.insert(session.clone());
        SiteReply::Session(session)
    }

    fn renew(&mut self, at_ms: u64, session_id: Uuid, lifetime_ms: u64) -> SiteReply {
        let Some(mut session) = self.get(&session_id, at_ms).cloned() else {
            return SiteReply::NotFound;
        };
        self.by_expiry.remove(&(session.expires_at_ms, session_id));
        session.expires_at_ms = at_ms.saturating_add(lifetime_ms);
        session.last_seen_ms = at_ms;
        self.by_expiry.insert((session.expires_at_ms, session_id));
        self.sessions.insert(session_id, Arc::new(session.clone()));
        SiteReply::Session(session)
    }

    fn insert(&mut self, session: Session) {
        let id = session.session_id;
        self.by_user.insert((session.user_id, id));
        self.by_domain.insert((session.domain.clone(), id));
        self.by_expiry.insert((session.expires_at_ms, id));
        self.sessions.insert(id, Arc::new(session));
    }

    fn remove_all(&mut self, ids: impl IntoIterator<Item = Uuid>) -> Vec<Uuid> {
        let mut removed = Vec::new();
        for id in ids {
            if let Some(session) = self.sessions.remove(&id) {
                self.by_user.remove(&(session.user_id, id));
                self.by_domain.remove(&(session.domain.clone(), id));
                self.by_expiry.remove(&(session.expires_at_ms, id));
                removed.push(id);
            }
        }
        removed
    }

    fn intern(&mut self, name: &str) -> Arc<str> {
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

impl StateMachine for SiteState {
    fn apply(&mut self, at_ms: u64, command: &[u8]) -> Vec<u8> {
        let reply = match decode::<SiteCommand>(command) {
            Ok(command) => self.execute(at_ms, command),
            Err(e) => SiteReply::Invalid(format!("undecodable site command: {e}")),
        };
        encode(&reply).unwrap_or_default()
    }

    fn snapshot(&self) -> SnapshotWriter {
        let sessions = self.sessions.clone();
        let failures = self.failures.clone();
        let connections = self.connections.clone();
        let channels = self.channels.clone();
        let tasks = self.tasks.clone();
        let revocations_done = self.access_revocations_done;
        Box::new(move || {
            let mut bytes = Vec::with_capacity(sessions.len() * SNAPSHOT_BYTES_PER_SESSION);
            let failures: Vec<(&str, &Vec<u64>)> = failures
                .iter()
                .map(|(key, times)| (&**key, times))
                .collect();
            let connections: Vec<&Connection> = connections.values().map(|c| &**c).collect();
            let channels: Vec<&Channel> = channels.values().map(|c| &**c).collect();
            let tasks: Vec<&Task> = tasks.values().map(|t| &**t).collect();
            let snapshot = (
                EverySession(&sessions),
                failures,
                connections,
                channels,
                tasks,
                revocations_done,
            );
            match encode_into(&mut bytes, &snapshot) {
                Ok(()) => bytes,
                Err(_) => Vec::new(),
            }
        })
    }

    fn restore(&self, bytes: &[u8]) -> Result<Self, String> {
        type Parts = (
            Vec<Session>,
            Vec<(String, Vec<u64>)>,
            Vec<Connection>,
            Vec<Channel>,
            Vec<Task>,
            u64,
        );
        let (sessions, failures, connections, channels, tasks, revocations_done): Parts =
            decode(bytes).map_err(|e| format!("site snapshot does not decode: {e}"))?;
        let mut state = SiteState {
            effects: self.effects.clone(),
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
        Ok(state)
    }

    fn query(&self, query: &[u8]) -> Vec<u8> {
        let now = sessionplane_cluster::now_ms();
        let reply = match decode::<SiteQuery>(query) {
            Ok(query) => self.answer(query, now),
            Err(e) => SiteQueryReply::Invalid(format!("undecodable site query: {e}")),
        };
        encode(&reply).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_session(user: Uuid, domain: &str, lifetime_ms: u64) -> NewSession {
        NewSession {
            session_id: Uuid::now_v7(),
            user_id: user,
            login: "alice".into(),
            domain: domain.into(),
            lifetime_ms,
            client_addr: Some([10, 0, 0, 1].into()),
            user_agent: Some("curl/8".into()),
        }
    }

    fn run(state: &mut SiteState, at: u64, command: SiteCommand) -> SiteReply {
        decode(&state.apply(at, &encode(&command).unwrap())).unwrap()
    }

    #[test]
    fn expiry_is_fixed_at_apply_from_the_entry_time() {
        let mut state = SiteState::default();
        let new = new_session(Uuid::now_v7(), "d", 1_000);
        let SiteReply::Session(s) = run(&mut state, 5_000, SiteCommand::CreateSession(new.clone()))
        else {
            panic!()
        };
        assert_eq!((s.created_at_ms, s.expires_at_ms), (5_000, 6_000));
        assert!(state.get(&s.session_id, 5_999).is_some());
        assert!(
            state.get(&s.session_id, 6_000).is_none(),
            "expired sessions are invisible at once"
        );
        assert_eq!(s.ttl_secs(5_000), 1);
        assert_eq!(s.ttl_secs(9_000), 0);
        // Creating again is idempotent.
        assert_eq!(
            run(&mut state, 5_500, SiteCommand::CreateSession(new)),
            SiteReply::Session(s)
        );
    }

    #[test]
    fn delete_user_sessions_spares_the_exception_and_other_domains() {
        let mut state = SiteState::default();
        let user = Uuid::now_v7();
        let mut ids = Vec::new();
        for domain in ["d", "d", "d", "other"] {
            let SiteReply::Session(s) = run(
                &mut state,
                0,
                SiteCommand::CreateSession(new_session(user, domain, 60_000)),
            ) else {
                panic!()
            };
            ids.push(s.session_id);
        }
        let command = SiteCommand::DeleteUserSessions {
            domain: "d".into(),
            user_id: user,
            except: Some(ids[0]),
            reason: CloseReason::Logout,
            authority: Authority::system(),
        };
        let SiteReply::Deleted(deleted) = run(&mut state, 1, command) else {
            panic!()
        };
        assert_eq!(deleted.len(), 2);
        let left: Vec<Uuid> = state
            .user_sessions(&user, 1)
            .iter()
            .map(|s| s.session_id)
            .collect();
        assert_eq!(left, vec![ids[0], ids[3]]);
        assert_eq!(state.domain_sessions("d", 1).len(), 1);
    }

    #[test]
    fn a_revocation_checks_its_callers_authority_when_it_applies() {
        let mut state = SiteState::default();
        let (admin, victim) = (Uuid::now_v7(), Uuid::now_v7());
        let mut open = |user, domain| match run(
            &mut state,
            0,
            SiteCommand::CreateSession(new_session(user, domain, 60_000)),
        ) {
            SiteReply::Session(s) => s.session_id,
            other => panic!("{other:?}"),
        };
        let (caller, other_domain) = (open(admin, "d"), open(victim, "other"));
        let (first, second) = (open(victim, "d"), open(victim, "d"));
        let of_d = Authority {
            session: Some(caller),
            domain: Some("d".into()),
        };
        let kill = |session_id, authority: &Authority| SiteCommand::DeleteSession {
            session_id,
            reason: CloseReason::Revoked,
            authority: authority.clone(),
        };
        assert_eq!(
            run(&mut state, 1, kill(other_domain, &of_d)),
            SiteReply::OutsideDomain("other".into())
        );
        assert!(state.get(&other_domain, 1).is_some());
        assert_eq!(
            run(&mut state, 1, kill(first, &of_d)),
            SiteReply::Deleted(vec![first])
        );
        // The caller's session ends; its later revocations are refused, whatever a lagging node
        // believed when it proposed them.
        run(&mut state, 2, kill(caller, &Authority::system()));
        assert_eq!(
            run(&mut state, 3, kill(second, &of_d)),
            SiteReply::CallerSessionEnded
        );
        let logout = SiteCommand::DeleteUserSessions {
            domain: "d".into(),
            user_id: victim,
            except: None,
            reason: CloseReason::Logout,
            authority: of_d,
        };
        assert_eq!(run(&mut state, 3, logout), SiteReply::CallerSessionEnded);
        assert!(state.get(&second, 3).is_some());
        let outside = SiteCommand::DeleteUserSessions {
            domain: "other".into(),
            user_id: victim,
            except: None,
            reason: CloseReason::Logout,
            authority: Authority {
                session: None,
                domain: Some("d".into()),
            },
        };
        assert_eq!(
            run(&mut state, 3, outside),
            SiteReply::OutsideDomain("other".into())
        );
        assert!(state.get(&other_domain, 3).is_some());
    }

    #[test]
    fn a_view_finds_a_users_sessions_in_id_order_as_they_were_when_taken() {
        let mut state = SiteState::default();
        let (alice, bob) = (Uuid::now_v7(), Uuid::now_v7());
        let mut of_alice = Vec::new();
        for k in 0..6 {
            let user = if k % 2 == 0 { alice } else { bob };
            let new = new_session(user, "d", 60_000);
            if user == alice {
                of_alice.push(new.session_id);
            }
            run(&mut state, 0, SiteCommand::CreateSession(new));
        }
        let view = state.view();
        let ids = |from| -> Vec<Uuid> {
            view.user_sessions_from(alice, from)
                .map(|s| s.session_id)
                .collect()
        };
        assert_eq!(ids(Bound::Unbounded), of_alice);
        assert_eq!(ids(Bound::Included(of_alice[1])), of_alice[1..]);
        assert_eq!(ids(Bound::Excluded(of_alice[1])), of_alice[2..]);
        // Later writes do not reach a view already taken.
        run(
            &mut state,
            1,
            SiteCommand::DeleteUserSessions {
                domain: "d".into(),
                user_id: alice,
                except: None,
                reason: CloseReason::Revoked,
                authority: Authority::system(),
            },
        );
        assert_eq!(ids(Bound::Unbounded), of_alice);
        assert_eq!(
            state
                .view()
                .user_sessions_from(alice, Bound::Unbounded)
                .count(),
            0
        );
        assert_eq!(
            state
                .view()
                .user_sessions_from(bob, Bound::Unbounded)
                .count(),
            3
        );
    }

    #[test]
    fn purge_removes_expired_in_batches_and_renew_moves_expiry() {
        let mut state = SiteState::default();
        let user = Uuid::now_v7();
        for _ in 0..5 {
            run(
                &mut state,
                0,
                SiteCommand::CreateSession(new_session(user, "d", 100)),
            );
        }
        let keep = new_session(user, "d", 100);
        run(&mut state, 0, SiteCommand::CreateSession(keep.clone()));
        let renewed = run(
            &mut state,
            50,
            SiteCommand::RenewSession {
                session_id: keep.session_id,
                lifetime_ms: 1_000,
            },
        );
        assert!(matches!(renewed, SiteReply::Session(s) if s.expires_at_ms == 1_050));
        assert!(state.has_expired(200));
        let SiteReply::Deleted(first) =
            run(&mut state, 200, SiteCommand::PurgeExpired { limit: 3 })
        else {
            panic!()
        };
        assert_eq!(first.len(), 3);
        let SiteReply::Deleted(second) =
            run(&mut state, 200, SiteCommand::PurgeExpired { limit: 3 })
        else {
            panic!()
        };
        assert_eq!(second.len(), 2);
        assert!(!state.has_expired(200));
        assert_eq!(state.stored_count(), 1);
        assert_eq!(state.live_count(200), 1);
    }

    #[test]
    fn snapshot_restores_the_same_state_with_its_indexes() {
        let mut state = SiteState::default();
        let user = Uuid::now_v7();
        for i in 0..100 {
            run(
                &mut state,
                i,
                SiteCommand::CreateSession(new_session(user, "d", 10_000)),
            );
        }
        let bytes = (state.snapshot())();
        let restored = state.restore(&bytes).unwrap();
        assert_eq!(restored.page(None, 1000, 0), state.page(None, 1000, 0));
        assert_eq!(restored.user_sessions(&user, 0).len(), 100);
        assert_eq!(restored.domain_sessions("d", 0).len(), 100);
        assert!(restored.has_expired(20_000));
        assert!(state.restore(b"garbage").is_err());
    }

    #[test]
    fn login_attempts_are_reserved_up_to_the_limit_in_log_order() {
        let mut state = SiteState::default();
        let reserve = |key: &str| SiteCommand::ReserveLoginAttempt {
            key: key.into(),
            window_ms: 1_000,
            limit: 3,
        };
        for (at, count) in [(100, 1), (110, 2), (120, 3)] {
            let reply = run(&mut state, at, reserve("a@d"));
            assert!(matches!(reply, SiteReply::LoginFailures(f) if f.count == count));
        }
        let refused = run(&mut state, 130, reserve("a@d"));
        let counted = LoginFailures {
            count: 3,
            first_expires_at_ms: 1_100,
        };
        assert_eq!(refused, SiteReply::LoginBanned(counted));
        assert_eq!(
            state.login_failures("a@d", 130),
            counted,
            "a refusal counts nothing"
        );
        assert!(matches!(
            run(&mut state, 130, reserve("b@d")),
            SiteReply::LoginFailures(_)
        ));
        assert!(
            matches!(run(&mut state, 1_100, reserve("a@d")), SiteReply::LoginFailures(f) if f.count == 3)
        );
        run(
            &mut state,
            1_200,
            SiteCommand::ClearLoginFailures { key: "a@d".into() },
        );
        assert!(
            matches!(run(&mut state, 1_200, reserve("a@d")), SiteReply::LoginFailures(f) if f.count == 1)
        );
    }

    #[test]
    fn login_failures_count_within_their_window_survive_snapshots_and_are_purged() {
        let mut state = SiteState::default();
        let record = |key: &str| SiteCommand::RecordLoginFailure {
            key: key.into(),
            window_ms: 1_000,
        };
        for at in [100, 200, 300] {
            run(&mut state, at, record("a@d"));
        }
        let reply = run(&mut state, 400, record("a@d"));
        let expected = LoginFailures {
            count: 4,
            first_expires_at_ms: 1_100,
        };
        assert_eq!(reply, SiteReply::LoginFailures(expected));
        run(&mut state, 400, record("b@d"));
        assert_eq!(state.login_failures("a@d", 1_150).count, 3);
        let restored = state.restore(&(state.snapshot())()).unwrap();
        assert_eq!(restored.login_failures("a@d", 400), expected);
        assert!(!state.has_expired(1_000));
        assert!(state.has_expired(1_100));
        run(&mut state, 1_250, SiteCommand::PurgeExpired { limit: 100 });
        assert_eq!(state.failures.get("a@d").map(Vec::len), Some(2));
        run(&mut state, 5_000, SiteCommand::PurgeExpired { limit: 100 });
        assert!(state.failures.is_empty() && state.failure_expiry.is_empty());
        run(&mut state, 6_000, record("c@d"));
        run(
            &mut state,
            6_001,
            SiteCommand::ClearLoginFailures { key: "c@d".into() },
        );
        assert_eq!(state.login_failures("c@d", 6_001).count, 0);
        assert!(state.failure_expiry.is_empty());
    }

    #[derive(Default)]
    struct Recorded(std::sync::Mutex<Vec<(Uuid, CloseReason)>>);

    impl SiteEffects for Recorded {
        fn sessions_ended(&self, sessions: &[Uuid], reason: CloseReason) {
            let mut seen = self.0.lock().unwrap();
            seen.extend(sessions.iter().map(|id| (*id, reason)));
        }
    }

    fn open(state: &mut SiteState, session: Uuid, node_id: u64, incarnation: u64) -> SiteReply {
        let new = NewConnection {
            conn_id: Uuid::now_v7(),
            session_id: session,
            node: format!("n{node_id}@127.0.0.1"),
            pid: crate::model::Pid {
                node_id,
                sequence: 1,
                incarnation,
            },
        };
        run(state, 10, SiteCommand::OpenConnection(new))
    }

    #[test]
    fn connections_live_and_die_with_their_session_and_their_node() {
        let effects = Arc::new(Recorded::default());
        let mut state = SiteState::with_effects(effects.clone());
        let user = Uuid::now_v7();
        let mut sessions = Vec::new();
        for _ in 0..2 {
            let SiteReply::Session(s) = run(
                &mut state,
                0,
                SiteCommand::CreateSession(new_session(user, "d", 60_000)),
            ) else {
                panic!()
            };
            sessions.push(s.session_id);
        }
        let (a, b) = (sessions[0], sessions[1]);
        assert_eq!(open(&mut state, Uuid::now_v7(), 1, 1), SiteReply::NotFound);
        let SiteReply::Connection(first) = open(&mut state, a, 1, 1) else {
            panic!()
        };
        assert_eq!(first.opened_at_ms, 10);
        open(&mut state, a, 2, 1);
        open(&mut state, b, 2, 1);
        open(&mut state, b, 2, 2);
        assert_eq!(state.view().connections_of(a).count(), 2);
        assert_eq!(
            state.connection_holders(),
            BTreeSet::from([(1, 1), (2, 1), (2, 2)])
        );
        let restored = state.restore(&(state.snapshot())()).unwrap();
        assert_eq!(restored.connection_holders(), state.connection_holders());
        assert_eq!(restored.connections_held_by(2, 1).len(), 2);

        let reap = SiteCommand::ReapNode {
            node_id: 2,
            keep_incarnation: Some(2),
        };
        assert_eq!(run(&mut state, 20, reap), SiteReply::ConnectionsClosed(2));
        assert_eq!(state.connection_holders(), BTreeSet::from([(1, 1), (2, 2)]));
        let close = SiteCommand::CloseConnection {
            conn_id: first.conn_id,
        };
        assert_eq!(
            run(&mut state, 21, close.clone()),
            SiteReply::ConnectionsClosed(1)
        );
        assert_eq!(run(&mut state, 22, close), SiteReply::ConnectionsClosed(0));

        let delete = SiteCommand::DeleteSession {
            session_id: b,
            reason: CloseReason::Revoked,
            authority: Authority::system(),
        };
        run(&mut state, 30, delete);
        assert_eq!(
            state.connection_count(),
            0,
            "a session's end removes its connections"
        );
        run(&mut state, 70_000, SiteCommand::PurgeExpired { limit: 10 });
        assert_eq!(
            *effects.0.lock().unwrap(),
            vec![(b, CloseReason::Revoked), (a, CloseReason::Expired)]
        );
    }

    #[test]
    fn an_access_revocation_ends_older_sessions_once_and_spares_the_kept_one() {
        let mut state = SiteState::default();
        let user = Uuid::now_v7();
        let open = |state: &mut SiteState, at: u64| {
            let SiteReply::Session(s) = run(
                state,
                at,
                SiteCommand::CreateSession(new_session(user, "d", 3_600_000)),
            ) else {
                panic!("no session")
            };
            s.session_id
        };
        let (old, kept) = (open(&mut state, 100), open(&mut state, 110));
        let revocation = |seq, at_ms| AccessRevocation {
            seq,
            user_id: user,
            domain: "d".into(),
            username: "alice@d".into(),
            except: Some(kept),
            reason: CloseReason::Revoked,
            at_ms,
        };
        let SiteReply::Deleted(ended) = run(
            &mut state,
            200,
            SiteCommand::ApplyAccessRevocation(revocation(1, 150)),
        ) else {
            panic!("not applied")
        };
        assert_eq!(ended, vec![old]);
        assert_eq!(state.access_revocations_done(), 1);
        let newer = open(&mut state, 300);
        // Applied again (a retry, another node's leader): nothing more ends.
        let SiteReply::Deleted(again) = run(
            &mut state,
            400,
            SiteCommand::ApplyAccessRevocation(revocation(1, 150)),
        ) else {
            panic!("not answered")
        };
        assert!(again.is_empty());
        // A later revocation made before `newer` was opened spares it too.
        let SiteReply::Deleted(later) = run(
            &mut state,
            500,
            SiteCommand::ApplyAccessRevocation(revocation(2, 250)),
        ) else {
            panic!("not applied")
        };
        assert!(later.is_empty());
        assert!(state.get(&kept, 500).is_some() && state.get(&newer, 500).is_some());
        let restored = state.restore(&state.snapshot()()).unwrap();
        assert_eq!(restored.access_revocations_done(), 2);
    }

    #[test]
    fn finished_tasks_are_kept_a_week_then_purged() {
        use crate::federation::{SiteRequest, Verb};
        use crate::tasks::{NewTask, TaskKind, TaskStatus, KEEP_FINISHED_MS};
        let mut state = SiteState::default();
        let task = |done: &[&str], pending: &[&str]| NewTask {
            task_id: Uuid::now_v7(),
            kind: TaskKind::SessionsLogout,
            request: SiteRequest::new(Verb::Post, "/x"),
            submitted_from: "n1@h".into(),
            on_behalf_of: "admin@master.domain".into(),
            scope_domain: None,
            done: done.iter().map(|s| (s.to_string(), "ok".into())).collect(),
            pending: pending
                .iter()
                .map(|s| (s.to_string(), "down".into()))
                .collect(),
        };
        let finished = task(&["a", "b"], &[]);
        let open = task(&["a"], &["b"]);
        let (finished_id, open_id) = (finished.task_id, open.task_id);
        run(&mut state, 1_000, SiteCommand::SubmitTask(finished));
        run(&mut state, 1_000, SiteCommand::SubmitTask(open));
        assert_eq!(
            state.task(&finished_id).unwrap().status,
            TaskStatus::Completed
        );
        let snapshot = state.snapshot()();
        let restored = SiteState::default().restore(&snapshot).unwrap();
        assert_eq!(restored.tasks().len(), 2, "tasks survive a snapshot");
        assert!(!state.has_expired(1_000 + KEEP_FINISHED_MS - 1));
        assert!(state.has_expired(1_000 + KEEP_FINISHED_MS));
        run(
            &mut state,
            1_000 + KEEP_FINISHED_MS,
            SiteCommand::PurgeExpired { limit: 10 },
        );
        assert!(state.task(&finished_id).is_none());
        assert!(
            state.task(&open_id).is_some(),
            "an unfinished task is never purged"
        );
    }

    #[test]
    fn garbage_commands_are_answered_not_panicked_on() {
        let mut state = SiteState::default();
        let reply: SiteReply = decode(&state.apply(0, b"\xff\x00garbage")).unwrap();
        assert!(matches!(reply, SiteReply::Invalid(_)));
        let reply: SiteReply = decode(&state.apply(
            0,
            &encode(&SiteCommand::CreateSession(new_session(Uuid::nil(), "", 1))).unwrap(),
        ))
        .unwrap();
        assert!(matches!(reply, SiteReply::Invalid(_)));
    }
}
