//! The locks in force at this site: placing one (which ends everything open that it
//! matches), lifting one, and the check every way in makes when it applies — a session, a
//! websocket connection or a mail channel opens only if no lock in force at its entry's time
//! matches it, so a lock acknowledged by the site keeps out every login that comes after it in
//! the log, on every node, whatever that node had applied when it checked the password.
//!
//! Owns the lock map of [`SiteState`]; ends sessions (`sessions`) and channels (`holds`)
//! through their modules. Must not touch login failures or tasks.

use std::sync::Arc;

use uuid::Uuid;

use super::{SiteReply, SiteState};
use crate::model::lock::{client_ip, KEEP_ENDED_LOCKS_MS};
use crate::model::{Channel, CloseReason, Closed, Entrant, Lock, LockTarget, Session};

impl SiteReply {
    pub(super) fn locked(lock: &Lock) -> Self {
        Self::Locked {
            lock_id: lock.lock_id,
            message: lock.message.clone(),
        }
    }
}

impl SiteState {
    /// Every lock this site keeps, in force or not, in id order (creation order).
    pub fn locks(&self) -> imbl::OrdMap<Uuid, Arc<Lock>> {
        self.locks.clone()
    }

    pub fn lock(&self, lock_id: &Uuid) -> Option<&Lock> {
        self.locks.get(lock_id).map(|l| &**l)
    }

    pub fn locks_in_force(&self, now_ms: u64) -> usize {
        self.locks.values().filter(|l| l.in_force(now_ms)).count()
    }

    /// The first lock in force at `at_ms` that keeps `entrant` out.
    pub fn lock_against(&self, entrant: &Entrant<'_>, at_ms: u64) -> Option<&Lock> {
        self.locks
            .values()
            .map(|l| &**l)
            .find(|l| l.keeps_out(entrant, at_ms))
    }

    /// The lock that keeps a session (and so its sockets) out, if one does.
    pub fn lock_against_session(&self, session: &Session, at_ms: u64) -> Option<&Lock> {
        self.lock_against(&session_entrant(session), at_ms)
    }

    /// Places a lock and ends what it matches; placing the same lock again does nothing.
    pub(super) fn place_lock(&mut self, at_ms: u64, lock: Lock) -> SiteReply {
        if self.locks.contains_key(&lock.lock_id) {
            return SiteReply::LockPlaced(Closed::default());
        }
        if !lock.in_force(at_ms) {
            return SiteReply::Invalid("the lock has expired already".into());
        }
        let (mut sessions, channels) = self.matching(&lock.target, at_ms);
        sessions.retain(|s| Some(*s) != lock.spares);
        self.locks.insert(lock.lock_id, Arc::new(lock));
        let websockets = self.count_connections(&sessions);
        let ended = self.end_sessions(sessions, CloseReason::Locked);
        let removed = self.remove_channels(channels);
        if let (Some(effects), false) = (&self.effects, removed.is_empty()) {
            effects.channels_disconnected(&removed);
        }
        SiteReply::LockPlaced(Closed {
            sessions: ended.len() as u64,
            websockets,
            channels: removed.len() as u64,
        })
    }

    pub(super) fn lift_lock(&mut self, at_ms: u64, lock_id: Uuid) -> SiteReply {
        let Some(lock) = self.locks.get(&lock_id) else {
            return SiteReply::NotFound;
        };
        let mut lock = Lock::clone(lock);
        if lock.lifted_at_ms.is_none() {
            lock.lifted_at_ms = Some(at_ms);
            self.locks.insert(lock_id, Arc::new(lock.clone()));
        }
        SiteReply::Lock(Box::new(lock))
    }

    /// The live sessions and the channels `target` matches at `at_ms`.
    pub(super) fn matching(&self, target: &LockTarget, at_ms: u64) -> (Vec<Uuid>, Vec<Uuid>) {
        let sessions: Vec<Uuid> = match target {
            LockTarget::User { user_id, .. } => self
                .user_sessions(user_id, at_ms)
                .into_iter()
                .map(|s| s.session_id)
                .collect(),
            LockTarget::Domain(domain) => self
                .domain_sessions(domain, at_ms)
                .into_iter()
                .map(|s| s.session_id)
                .collect(),
            LockTarget::Session(id) => self
                .get(id, at_ms)
                .map(|s| s.session_id)
                .into_iter()
                .collect(),
            LockTarget::Network(_) => self
                .sessions
                .values()
                .filter(|s| s.is_live(at_ms) && target.matches(&session_entrant(s)))
                .map(|s| s.session_id)
                .collect(),
        };
        let channels: Vec<Uuid> = match target {
            LockTarget::User { address, .. } => self
                .user_channels(address)
                .iter()
                .map(|c| c.channel_id)
                .collect(),
            LockTarget::Session(_) => Vec::new(),
            LockTarget::Domain(_) | LockTarget::Network(_) => self
                .channels
                .values()
                .filter(|c| target.matches(&channel_entrant(c)))
                .map(|c| c.channel_id)
                .collect(),
        };
        (sessions, channels)
    }

    /// How many websocket connections `sessions` hold.
    pub(super) fn count_connections(&self, sessions: &[Uuid]) -> u64 {
        sessions
            .iter()
            .map(|s| {
                self.connections
                    .range((*s, Uuid::nil())..=(*s, Uuid::max()))
                    .count() as u64
            })
            .sum()
    }

    /// Forgets the locks that stopped applying long enough ago.
    pub(super) fn forget_ended_locks(&mut self, at_ms: u64) {
        let stale: Vec<Uuid> = self
            .locks
            .values()
            .filter(|l| {
                l.ended_at_ms(at_ms)
                    .is_some_and(|end| end + KEEP_ENDED_LOCKS_MS <= at_ms)
            })
            .map(|l| l.lock_id)
            .collect();
        for id in stale {
            self.locks.remove(&id);
        }
    }

    pub(super) fn has_stale_locks(&self, now_ms: u64) -> bool {
        self.locks.values().any(|l| {
            l.ended_at_ms(now_ms)
                .is_some_and(|end| end + KEEP_ENDED_LOCKS_MS <= now_ms)
        })
    }
}

/// A session as a lock sees it.
pub fn session_entrant(session: &Session) -> Entrant<'_> {
    Entrant {
        user_id: session.user_id,
        domain: &session.domain,
        client: session.client_addr,
        session_id: Some(session.session_id),
    }
}

/// A mail channel as a lock sees it.
pub fn channel_entrant(channel: &Channel) -> Entrant<'_> {
    Entrant {
        user_id: channel.user_id,
        domain: channel.username.rsplit_once('@').map_or("", |(_, d)| d),
        client: client_ip(&channel.remote_address),
        session_id: None,
    }
}
