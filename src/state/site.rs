//! The state machine of a site's group: the sessions opened at that site.
//!
//! Sessions are kept in a persistent ordered map (cheap to copy, so a snapshot is taken while
//! apply goes on), ordered by session id (UUIDv7: creation order, a stable cursor). Secondary
//! indexes by user, domain and expiry are rebuilt on restore and never serialized.
//!
//! Expired sessions are invisible to every read at once; the leader purges them in batches
//! with [`SiteCommand::PurgeExpired`].

use std::collections::{BTreeSet, HashSet};
use std::ops::Bound;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sessionplane_cluster::{SnapshotWriter, StateMachine};
use uuid::Uuid;

use crate::model::{CloseReason, NewSession, Session};
use crate::state::{decode, encode, encode_into};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SiteCommand {
    /// Opens a session; idempotent by `session_id`.
    CreateSession(NewSession),
    /// Extends a live session to `lifetime_ms` from now.
    RenewSession { session_id: Uuid, lifetime_ms: u64 },
    DeleteSession {
        session_id: Uuid,
        reason: CloseReason,
    },
    /// Deletes every session of a user in a domain, but `except`.
    DeleteUserSessions {
        domain: String,
        user_id: Uuid,
        except: Option<Uuid>,
        reason: CloseReason,
    },
    /// Removes at most `limit` sessions expired at the entry's time, and as many expired login
    /// failures.
    PurgeExpired { limit: u32 },
    /// Counts a failed login for `key` (`login@domain`) for `window_ms`.
    RecordLoginFailure { key: String, window_ms: u64 },
    /// Forgets `key`'s failures (after a successful login).
    ClearLoginFailures { key: String },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SiteReply {
    Session(Session),
    NotFound,
    Deleted(Vec<Uuid>),
    LoginFailures(LoginFailures),
    Invalid(String),
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
    sessions: imbl::OrdMap<Uuid, Arc<Session>>,
    by_user: BTreeSet<(Uuid, Uuid)>,
    by_domain: BTreeSet<(Arc<str>, Uuid)>,
    by_expiry: BTreeSet<(u64, Uuid)>,
    /// One allocation per distinct domain and login string.
    names: HashSet<Arc<str>>,
    /// Failed logins per `login@domain`: the times at which each stops counting, oldest first.
    failures: imbl::OrdMap<Arc<str>, Vec<u64>>,
    failure_expiry: BTreeSet<(u64, Arc<str>)>,
}

impl SiteState {
    /// A live session by id.
    pub fn get(&self, session_id: &Uuid, now_ms: u64) -> Option<&Session> {
        self.sessions
            .get(session_id)
            .map(|s| &**s)
            .filter(|s| s.is_live(now_ms))
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

    fn execute(&mut self, at_ms: u64, command: SiteCommand) -> SiteReply {
        match command {
            SiteCommand::CreateSession(new) => self.create(at_ms, new),
            SiteCommand::RenewSession {
                session_id,
                lifetime_ms,
            } => self.renew(at_ms, session_id, lifetime_ms),
            SiteCommand::DeleteSession { session_id, .. } => match self.get(&session_id, at_ms) {
                Some(_) => SiteReply::Deleted(self.remove_all([session_id])),
                None => SiteReply::NotFound,
            },
            SiteCommand::DeleteUserSessions {
                domain,
                user_id,
                except,
                ..
            } => {
                let doomed: Vec<Uuid> = self
                    .user_sessions(&user_id, at_ms)
                    .into_iter()
                    .filter(|s| *s.domain == *domain && Some(s.session_id) != except)
                    .map(|s| s.session_id)
                    .collect();
                SiteReply::Deleted(self.remove_all(doomed))
            }
            SiteCommand::PurgeExpired { limit } => {
                let expired: Vec<Uuid> = self
                    .by_expiry
                    .range(..=(at_ms, Uuid::max()))
                    .take(limit as usize)
                    .map(|(_, id)| *id)
                    .collect();
                self.forget_failures_until(at_ms, limit as usize);
                SiteReply::Deleted(self.remove_all(expired))
            }
            SiteCommand::RecordLoginFailure { key, window_ms } => {
                let key = self.intern(&key);
                let until = at_ms.saturating_add(window_ms);
                self.failures.entry(key.clone()).or_default().push(until);
                self.failure_expiry.insert((until, key.clone()));
                SiteReply::LoginFailures(self.login_failures(&key, at_ms))
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
        }
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
        Box::new(move || {
            let mut bytes = Vec::with_capacity(sessions.len() * SNAPSHOT_BYTES_PER_SESSION);
            let failures: Vec<(&str, &Vec<u64>)> = failures
                .iter()
                .map(|(key, times)| (&**key, times))
                .collect();
            let snapshot = (EverySession(&sessions), failures);
            match encode_into(&mut bytes, &snapshot) {
                Ok(()) => bytes,
                Err(_) => Vec::new(),
            }
        })
    }

    fn restore(&self, bytes: &[u8]) -> Result<Self, String> {
        let (sessions, failures): (Vec<Session>, Vec<(String, Vec<u64>)>) =
            decode(bytes).map_err(|e| format!("site snapshot does not decode: {e}"))?;
        let mut state = SiteState::default();
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
