//! Typed access to the site group: one method per operation, replies matched here, reads after
//! a barrier. The rest of the node never builds a site command nor reads a site reply: each
//! method proposes its own command and turns that command's reply into its own result, so that
//! a reply of another kind (only a replica of another version could send one) is handled once,
//! in [`SiteStore::unexpected`].
//!
//! A store made with [`SiteStore::audited`] carries an audit event that its next command takes
//! along, in the same entry (`SiteCommand::Audited`): the typed methods stay as they are, and a
//! change and its event are never apart.
//!
//! Owns [`SiteStore`] and the outcomes of its methods ([`Ended`], [`Refusal`]); must not keep
//! any state of its own.

use sessionplane_cluster::{now_ms, Group};
use uuid::Uuid;

use super::{Authority, LoginFailures, SiteCommand, SiteReply, SiteState};
use crate::model::audit::NewAuditEvent;
use crate::model::delivery::{Delivery, DeliveryOutcome, SinkName};
use crate::model::task::{Attempt, NewTask, Task};
use crate::model::{Channel, ChannelTarget, CloseReason, Connection, NewChannel, NewConnection};
use crate::model::{Closed, Containment, Lock, NewSession, Receipt, Session};
use crate::state::directory::AccessRevocation;
use crate::state::StoreError;

/// The sessions an end removed (none when there was nothing to end).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ended {
    pub sessions: Vec<Uuid>,
}

/// Why the site group refused to end sessions, checked when the end applied (see
/// [`Authority`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The caller's own session had ended before.
    CallerSessionEnded,
    /// The sessions lie in this domain, outside the caller's.
    OutsideDomain(String),
}

#[derive(Clone)]
pub struct SiteStore {
    group: Group<SiteState>,
    /// The event the next command records (see [`Self::audited`]).
    event: Option<Box<NewAuditEvent>>,
}

impl SiteStore {
    pub fn new(group: Group<SiteState>) -> Self {
        Self { group, event: None }
    }

    pub fn group(&self) -> &Group<SiteState> {
        &self.group
    }

    /// This store, its commands recording `event` in their own entry (none: as it is).
    pub fn audited(&self, event: impl Into<Option<NewAuditEvent>>) -> Self {
        Self {
            group: self.group.clone(),
            event: event.into().map(Box::new),
        }
    }

    async fn execute(&self, command: SiteCommand) -> Result<SiteReply, StoreError> {
        let command = match &self.event {
            Some(event) => SiteCommand::Audited {
                event: event.clone(),
                command: Box::new(command),
            },
            None => command,
        };
        let reply = if command.revokes_access() {
            self.group.propose_settled(command).await?
        } else {
            self.group.propose(command).await?
        };
        match reply {
            SiteReply::Invalid(reason) => Err(StoreError::Invalid(reason)),
            SiteReply::Locked { lock_id, message } => Err(StoreError::Locked { lock_id, message }),
            reply => Ok(reply),
        }
    }

    /// A reply that is not its command's: the one place such a reply is handled.
    fn unexpected(&self, reply: SiteReply) -> StoreError {
        StoreError::from(
            self.group
                .codec_error(format!("a site reply of another kind: {reply:?}")),
        )
    }

    pub async fn create_session(&self, new: NewSession) -> Result<Session, StoreError> {
        match self.execute(SiteCommand::CreateSession(new)).await? {
            SiteReply::Session(session) => Ok(session),
            other => Err(self.unexpected(other)),
        }
    }

    /// Extends a live session to `lifetime_ms` from now; `None` when it is not live.
    pub async fn renew_session(
        &self,
        session_id: Uuid,
        lifetime_ms: u64,
    ) -> Result<Option<Session>, StoreError> {
        let command = SiteCommand::RenewSession {
            session_id,
            lifetime_ms,
        };
        match self.execute(command).await? {
            SiteReply::Session(session) => Ok(Some(session)),
            SiteReply::NotFound => Ok(None),
            other => Err(self.unexpected(other)),
        }
    }

    /// Ends one session, if `authority` still may when the end applies.
    pub async fn end_session(
        &self,
        session_id: Uuid,
        reason: CloseReason,
        authority: Authority,
    ) -> Result<Result<Ended, Refusal>, StoreError> {
        let command = SiteCommand::DeleteSession {
            session_id,
            reason,
            authority,
        };
        let reply = self.execute(command).await?;
        self.ended(reply)
    }

    /// Ends every session of a user in a domain but `except`, if `authority` still may.
    pub async fn end_user_sessions(
        &self,
        domain: String,
        user_id: Uuid,
        except: Option<Uuid>,
        reason: CloseReason,
        authority: Authority,
    ) -> Result<Result<Ended, Refusal>, StoreError> {
        let command = SiteCommand::DeleteUserSessions {
            domain,
            user_id,
            except,
            reason,
            authority,
        };
        let reply = self.execute(command).await?;
        self.ended(reply)
    }

    fn ended(&self, reply: SiteReply) -> Result<Result<Ended, Refusal>, StoreError> {
        match reply {
            SiteReply::Deleted(sessions) => Ok(Ok(Ended { sessions })),
            SiteReply::NotFound => Ok(Ok(Ended::default())),
            SiteReply::CallerSessionEnded => Ok(Err(Refusal::CallerSessionEnded)),
            SiteReply::OutsideDomain(domain) => Ok(Err(Refusal::OutsideDomain(domain))),
            other => Err(self.unexpected(other)),
        }
    }

    /// Removes at most `limit` expired sessions (and as many expired login failures, and the
    /// finished tasks kept long enough); the sessions removed.
    pub async fn purge_expired(&self, limit: u32) -> Result<Vec<Uuid>, StoreError> {
        match self.execute(SiteCommand::PurgeExpired { limit }).await? {
            SiteReply::Deleted(ids) => Ok(ids),
            other => Err(self.unexpected(other)),
        }
    }

    /// Reserves one password check for `key` (`Ok`: the failures counted, this one included),
    /// or answers the failures that already use up `limit` (`Err`).
    pub async fn reserve_login_attempt(
        &self,
        key: String,
        window_ms: u64,
        limit: u32,
    ) -> Result<Result<LoginFailures, LoginFailures>, StoreError> {
        let command = SiteCommand::ReserveLoginAttempt {
            key,
            window_ms,
            limit,
        };
        match self.execute(command).await? {
            SiteReply::LoginFailures(counted) => Ok(Ok(counted)),
            SiteReply::LoginBanned(counted) => Ok(Err(counted)),
            other => Err(self.unexpected(other)),
        }
    }

    /// Forgets `key`'s failures (after a successful login).
    pub async fn clear_login_failures(&self, key: String) -> Result<(), StoreError> {
        match self
            .execute(SiteCommand::ClearLoginFailures { key })
            .await?
        {
            SiteReply::LoginFailures(_) => Ok(()),
            other => Err(self.unexpected(other)),
        }
    }

    /// Registers a websocket connection; `None` when its session is not live.
    pub async fn open_connection(
        &self,
        new: NewConnection,
    ) -> Result<Option<Connection>, StoreError> {
        match self.execute(SiteCommand::OpenConnection(new)).await? {
            SiteReply::Connection(connection) => Ok(Some(connection)),
            SiteReply::NotFound => Ok(None),
            other => Err(self.unexpected(other)),
        }
    }

    /// Forgets a connection; how many were removed (0 or 1).
    pub async fn close_connection(&self, conn_id: Uuid) -> Result<u32, StoreError> {
        match self
            .execute(SiteCommand::CloseConnection { conn_id })
            .await?
        {
            SiteReply::ConnectionsClosed(n) => Ok(n),
            other => Err(self.unexpected(other)),
        }
    }

    /// Forgets what `node_id` holds in any incarnation but `keep_incarnation`; the connections
    /// removed.
    pub async fn reap_node(
        &self,
        node_id: u64,
        keep_incarnation: Option<u64>,
    ) -> Result<u32, StoreError> {
        let command = SiteCommand::ReapNode {
            node_id,
            keep_incarnation,
        };
        match self.execute(command).await? {
            SiteReply::ConnectionsClosed(n) => Ok(n),
            other => Err(self.unexpected(other)),
        }
    }

    /// Registers an authenticated mail-protocol channel.
    pub async fn open_channel(&self, new: NewChannel) -> Result<Channel, StoreError> {
        match self.execute(SiteCommand::OpenChannel(new)).await? {
            SiteReply::Channel(channel) => Ok(channel),
            other => Err(self.unexpected(other)),
        }
    }

    /// Forgets a channel whose client left; how many were removed (0 or 1).
    pub async fn close_channel(&self, channel_id: Uuid) -> Result<u32, StoreError> {
        match self
            .execute(SiteCommand::CloseChannel { channel_id })
            .await?
        {
            SiteReply::ChannelsClosed(n) => Ok(n),
            other => Err(self.unexpected(other)),
        }
    }

    /// Ends channels (every node closes those it holds); how many.
    pub async fn disconnect_channels(&self, target: ChannelTarget) -> Result<u32, StoreError> {
        match self
            .execute(SiteCommand::DisconnectChannels(target))
            .await?
        {
            SiteReply::ChannelsClosed(n) => Ok(n),
            other => Err(self.unexpected(other)),
        }
    }

    /// Keeps a write that missed some sites, to be retried there (idempotent by task id).
    pub async fn submit_task(&self, new: NewTask) -> Result<Task, StoreError> {
        match self.execute(SiteCommand::SubmitTask(new)).await? {
            SiteReply::Task(task) => Ok(*task),
            other => Err(self.unexpected(other)),
        }
    }

    /// Records what one attempt of a task at one site came to; `None` for an unknown task.
    pub async fn record_task_attempt(
        &self,
        task_id: Uuid,
        site: String,
        attempt: Attempt,
        node: String,
    ) -> Result<Option<Task>, StoreError> {
        let command = SiteCommand::RecordTaskAttempt {
            task_id,
            site,
            attempt,
            node,
        };
        let reply = self.execute(command).await?;
        self.task_or_none(reply)
    }

    /// Cancels a task; `None` for an unknown task.
    pub async fn cancel_task(&self, task_id: Uuid) -> Result<Option<Task>, StoreError> {
        let reply = self.execute(SiteCommand::CancelTask { task_id }).await?;
        self.task_or_none(reply)
    }

    fn task_or_none(&self, reply: SiteReply) -> Result<Option<Task>, StoreError> {
        match reply {
            SiteReply::Task(task) => Ok(Some(*task)),
            SiteReply::NotFound => Ok(None),
            other => Err(self.unexpected(other)),
        }
    }

    /// Ends, at this site, the access the directory revoked; the sessions it ended.
    pub async fn apply_access_revocation(
        &self,
        revocation: AccessRevocation,
    ) -> Result<Vec<Uuid>, StoreError> {
        match self
            .execute(SiteCommand::ApplyAccessRevocation(revocation))
            .await?
        {
            SiteReply::Deleted(ids) => Ok(ids),
            other => Err(self.unexpected(other)),
        }
    }

    /// Places a lock at this site, ending what it matches but the session it spares; what it
    /// ended.
    pub async fn place_lock(&self, lock: Lock) -> Result<Closed, StoreError> {
        match self.execute(SiteCommand::PlaceLock { lock }).await? {
            SiteReply::LockPlaced(closed) => Ok(closed),
            other => Err(self.unexpected(other)),
        }
    }

    /// Lifts a lock; `None` when this site has no such lock.
    pub async fn lift_lock(&self, lock_id: Uuid) -> Result<Option<Lock>, StoreError> {
        match self.execute(SiteCommand::LiftLock { lock_id }).await? {
            SiteReply::Lock(lock) => Ok(Some(*lock)),
            SiteReply::NotFound => Ok(None),
            other => Err(self.unexpected(other)),
        }
    }

    /// Contains a user at this site in one entry, if `authority` still may: what the group
    /// ended, and the entry's log index.
    pub async fn contain(
        &self,
        containment: Containment,
        authority: Authority,
    ) -> Result<Result<(Closed, u64), Refusal>, StoreError> {
        let command = SiteCommand::Contain {
            containment,
            authority,
        };
        match self.execute(command).await? {
            SiteReply::Contained { closed, log_index } => Ok(Ok((closed, log_index))),
            SiteReply::CallerSessionEnded => Ok(Err(Refusal::CallerSessionEnded)),
            SiteReply::OutsideDomain(domain) => Ok(Err(Refusal::OutsideDomain(domain))),
            other => Err(self.unexpected(other)),
        }
    }

    /// Keeps (or updates) an incident's receipt.
    pub async fn record_receipt(&self, receipt: Receipt) -> Result<Receipt, StoreError> {
        match self
            .execute(SiteCommand::RecordReceipt(Box::new(receipt)))
            .await?
        {
            SiteReply::Receipt(receipt) => Ok(*receipt),
            other => Err(self.unexpected(other)),
        }
    }

    /// Records an event that has no change of its own; its sequence in the chain.
    pub async fn record_audit(&self, event: NewAuditEvent) -> Result<u64, StoreError> {
        match self
            .execute(SiteCommand::RecordAudit(Box::new(event)))
            .await?
        {
            SiteReply::AuditRecorded(seq) => Ok(seq),
            other => Err(self.unexpected(other)),
        }
    }

    /// Records the directory's audit outbox event `seq` in this site's chain (once).
    pub async fn copy_directory_audit(
        &self,
        seq: u64,
        event: NewAuditEvent,
    ) -> Result<(), StoreError> {
        let command = SiteCommand::CopyDirectoryAudit {
            seq,
            event: Box::new(event),
        };
        match self.execute(command).await? {
            SiteReply::AuditRecorded(_) => Ok(()),
            other => Err(self.unexpected(other)),
        }
    }

    /// Forgets at most `limit` audit events older than `keep_ms`; how many.
    pub async fn purge_audit(&self, keep_ms: u64, limit: u32) -> Result<u32, StoreError> {
        match self
            .execute(SiteCommand::PurgeAudit { keep_ms, limit })
            .await?
        {
            SiteReply::AuditPurged(n) => Ok(n),
            other => Err(self.unexpected(other)),
        }
    }

    /// Forgets at most `limit` feed events up to `upto`; how many.
    pub async fn trim_feed(&self, upto: u64, limit: u32) -> Result<u32, StoreError> {
        match self.execute(SiteCommand::TrimFeed { upto, limit }).await? {
            SiteReply::FeedTrimmed(n) => Ok(n),
            other => Err(self.unexpected(other)),
        }
    }

    /// Records what an attempt to deliver the feed to `sink` came to.
    pub async fn record_delivery(
        &self,
        sink: SinkName,
        outcome: DeliveryOutcome,
    ) -> Result<Option<Delivery>, StoreError> {
        match self
            .execute(SiteCommand::RecordDelivery { sink, outcome })
            .await?
        {
            SiteReply::Delivery(delivery) => Ok(Some(*delivery)),
            SiteReply::NotFound => Ok(None),
            other => Err(self.unexpected(other)),
        }
    }

    pub async fn forget_delivery(&self, sink: SinkName) -> Result<(), StoreError> {
        match self.execute(SiteCommand::ForgetDelivery { sink }).await? {
            SiteReply::Delivery(_) | SiteReply::NotFound => Ok(()),
            other => Err(self.unexpected(other)),
        }
    }

    /// The feed as this node has applied it, without a barrier (a reader that resumes waits
    /// for the events it has not seen).
    pub fn feed_local(&self) -> crate::state::site::feed::FeedView {
        self.group.state().read(|state| state.feed_view())
    }

    /// Reads the site's state linearizably: every write committed before the call is seen.
    pub async fn read<T>(&self, read: impl FnOnce(&SiteState, u64) -> T) -> Result<T, StoreError> {
        self.group.read_barrier().await?;
        Ok(self.group.state().read(|state| read(state, now_ms())))
    }

    /// A live session as this node has it, without a barrier: possibly behind the group (see
    /// `SessionCheck::Deferred` for the one use that can afford it).
    pub fn get_local(&self, session_id: Uuid) -> Option<Session> {
        self.group
            .state()
            .read(|state| state.get(&session_id, now_ms()).cloned())
    }

    /// The lock in force that keeps `session` out, as this node has the locks.
    pub fn lock_against_local(&self, session: &Session) -> Option<Lock> {
        self.group
            .state()
            .read(|state| state.lock_against_session(session, now_ms()).cloned())
    }

    /// A live session, from this node's copy while its read lease holds (every revocation
    /// acknowledged anywhere in the site has then been applied here), else after a barrier. A
    /// session this copy does not have is looked up after a barrier: it may be too new for it.
    pub async fn get_leased(&self, session_id: Uuid) -> Result<Option<Session>, StoreError> {
        let leased = self
            .group
            .read_leased(|state| state.get(&session_id, now_ms()).cloned());
        match leased {
            Some(Some(session)) => Ok(Some(session)),
            _ => self.get(session_id).await,
        }
    }

    pub async fn get(&self, session_id: Uuid) -> Result<Option<Session>, StoreError> {
        self.read(|state, now| state.get(&session_id, now).cloned())
            .await
    }
}
