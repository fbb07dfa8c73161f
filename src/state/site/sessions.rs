//! The sessions opened at this site: their records and indexes' reads, opening, renewal and
//! every way they end (a delete, a user's sessions, a directory access revocation), with the
//! caller's authority checked when the end applies.
//!
//! Owns the session maps of [`SiteState`]; ending a session also removes its connections
//! (`holds`). Must not touch login failures or tasks.

use std::ops::Bound;
use std::sync::Arc;

use uuid::Uuid;

use super::{Authority, SiteReply, SiteState};
use crate::model::{CloseReason, Connection, Entrant, NewSession, Session};
use crate::state::directory::AccessRevocation;

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
    pub fn view(&self) -> SiteView {
        SiteView {
            sessions: self.sessions.clone(),
            by_user: self.by_user.clone(),
            connections: self.connections.clone(),
        }
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

    pub fn stored_count(&self) -> usize {
        self.sessions.len()
    }

    /// The last directory access revocation this site has applied.
    pub fn access_revocations_done(&self) -> u64 {
        self.access_revocations_done
    }

    pub(super) fn delete_session(
        &mut self,
        at_ms: u64,
        session_id: Uuid,
        reason: CloseReason,
        authority: &Authority,
    ) -> SiteReply {
        let domain = self.get(&session_id, at_ms).map(|s| s.domain.clone());
        if let Some(refused) = self.refusal(authority, domain.as_deref(), at_ms) {
            return refused;
        }
        match domain {
            Some(_) => SiteReply::Deleted(self.end_sessions([session_id], reason)),
            None => SiteReply::NotFound,
        }
    }

    /// Ends every session of a user in a domain, but `except`.
    pub(super) fn delete_user_sessions(
        &mut self,
        at_ms: u64,
        domain: &str,
        user_id: Uuid,
        except: Option<Uuid>,
        reason: CloseReason,
        authority: &Authority,
    ) -> SiteReply {
        if let Some(refused) = self.refusal(authority, Some(domain), at_ms) {
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

    /// Why a revocation by `authority` of sessions in `domain` (when known) is refused, if it is.
    pub(super) fn refusal(
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

    pub(super) fn apply_access_revocation(
        &mut self,
        at_ms: u64,
        revocation: AccessRevocation,
    ) -> SiteReply {
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

    /// Removes sessions and their connections, and tells this node's effects.
    pub(super) fn end_sessions(
        &mut self,
        ids: impl IntoIterator<Item = Uuid>,
        reason: CloseReason,
    ) -> Vec<Uuid> {
        let (removed, _) = self.forget_sessions(ids, reason);
        if let (Some(effects), false) = (&self.effects, removed.is_empty()) {
            effects.sessions_ended(&removed, reason);
        }
        removed
    }

    /// Removes sessions and their connections without telling anyone: the sessions removed
    /// and how many connections went with them.
    pub(super) fn forget_sessions(
        &mut self,
        ids: impl IntoIterator<Item = Uuid>,
        reason: CloseReason,
    ) -> (Vec<Uuid>, u32) {
        let mut removed = Vec::new();
        let mut connections = 0;
        for id in ids {
            let conns: Vec<Uuid> = self
                .connections
                .range((id, Uuid::nil())..=(id, Uuid::max()))
                .map(|((_, conn), _)| *conn)
                .collect();
            // The connections first: their events name the session, still there.
            connections += self.remove_connections(conns);
            if let Some(session) = self.remove_session(id) {
                self.feed_session_ended(&session, reason);
                removed.push(id);
            }
        }
        (removed, connections)
    }

    pub(super) fn create(&mut self, at_ms: u64, new: NewSession) -> SiteReply {
        if let Some(existing) = self.sessions.get(&new.session_id) {
            return SiteReply::Session(Session::clone(existing));
        }
        if new.login.is_empty() || new.domain.is_empty() || new.lifetime_ms == 0 {
            return SiteReply::Invalid("a session needs a login, a domain and a lifetime".into());
        }
        let entrant = Entrant {
            user_id: new.user_id,
            domain: &new.domain,
            client: new.client_addr,
            session_id: Some(new.session_id),
        };
        if let Some(lock) = self.lock_against(&entrant, at_ms) {
            return SiteReply::locked(lock);
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
        self.feed_session_created(&session);
        SiteReply::Session(session)
    }

    pub(super) fn renew(&mut self, at_ms: u64, session_id: Uuid, lifetime_ms: u64) -> SiteReply {
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

    pub(super) fn insert(&mut self, session: Session) {
        let id = session.session_id;
        self.by_user.insert((session.user_id, id));
        self.by_domain.insert((session.domain.clone(), id));
        self.by_expiry.insert((session.expires_at_ms, id));
        self.sessions.insert(id, Arc::new(session));
    }

    fn remove_session(&mut self, id: Uuid) -> Option<Arc<Session>> {
        let session = self.sessions.remove(&id)?;
        self.by_user.remove(&(session.user_id, id));
        self.by_domain.remove(&(session.domain.clone(), id));
        self.by_expiry.remove(&(session.expires_at_ms, id));
        Some(session)
    }
}
