//! The websocket connections this node holds, by session: what an applied session end closes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use tokio::sync::mpsc;
use uuid::Uuid;

use crate::model::CloseReason;
use crate::state::site::SiteEffects;

struct Held {
    conn_id: Uuid,
    since: Instant,
    /// Capacity 1: the first reason wins, later ones are dropped without waiting.
    closer: mpsc::Sender<Closing>,
}

/// Why a socket must close, and who waits to hear that it did.
#[derive(Debug)]
pub struct Closing {
    pub reason: CloseReason,
    /// Dropped by the socket once it has sent its close: the receiving end of this channel
    /// hears that every socket it was handed to has closed.
    pub done: Option<mpsc::Sender<()>>,
}

/// A socket's side of its registration: the reason its session ended, once.
pub type Closed = mpsc::Receiver<Closing>;

#[derive(Default)]
pub struct LocalSockets {
    by_session: Mutex<HashMap<Uuid, Vec<Held>>>,
    sequence: AtomicU64,
    held: AtomicU64,
}

impl LocalSockets {
    /// The next connection sequence number of this start (the `S` of `<N.S.I>`).
    pub fn next_sequence(&self) -> u64 {
        self.sequence.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub fn hold(&self, session_id: Uuid, conn_id: Uuid) -> Closed {
        let (closer, closed) = mpsc::channel(1);
        self.lock().entry(session_id).or_default().push(Held {
            conn_id,
            since: Instant::now(),
            closer,
        });
        self.held.fetch_add(1, Ordering::Relaxed);
        closed
    }

    pub fn release(&self, session_id: Uuid, conn_id: Uuid) {
        let mut by_session = self.lock();
        if let Some(held) = by_session.get_mut(&session_id) {
            let before = held.len();
            held.retain(|h| h.conn_id != conn_id);
            self.held
                .fetch_sub((before - held.len()) as u64, Ordering::Relaxed);
            if held.is_empty() {
                by_session.remove(&session_id);
            }
        }
    }

    pub fn holds(&self, session_id: Uuid, conn_id: Uuid) -> bool {
        self.lock()
            .get(&session_id)
            .is_some_and(|held| held.iter().any(|h| h.conn_id == conn_id))
    }

    /// Closes every socket of `session_id` with `reason`.
    pub fn close(&self, session_id: Uuid, reason: CloseReason) {
        self.close_reporting(session_id, reason, None);
    }

    /// Closes every socket of `session_id` with `reason`, each handed a clone of `done` to
    /// drop once closed; how many this node held.
    pub fn close_reporting(
        &self,
        session_id: Uuid,
        reason: CloseReason,
        done: Option<&mpsc::Sender<()>>,
    ) -> u64 {
        let held = self.lock().remove(&session_id).unwrap_or_default();
        self.held.fetch_sub(held.len() as u64, Ordering::Relaxed);
        let count = held.len() as u64;
        for h in held {
            let _ = h.closer.try_send(Closing {
                reason,
                done: done.cloned(),
            });
        }
        count
    }

    /// The sessions with sockets here, and since when the oldest of each has been held.
    pub fn sessions(&self) -> Vec<(Uuid, Instant)> {
        self.lock()
            .iter()
            .filter_map(|(session, held)| Some((*session, held.iter().map(|h| h.since).min()?)))
            .collect()
    }

    pub fn count(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Vec<Held>>> {
        self.by_session.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl SiteEffects for LocalSockets {
    fn sessions_ended(&self, sessions: &[Uuid], reason: CloseReason) {
        for session in sessions {
            self.close(*session, reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ended_session_closes_each_of_its_sockets_once() {
        let sockets = LocalSockets::default();
        let (session, other) = (Uuid::now_v7(), Uuid::now_v7());
        let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let mut closed_a = sockets.hold(session, a);
        let mut closed_b = sockets.hold(session, b);
        let mut closed_c = sockets.hold(other, c);
        assert_eq!(sockets.count(), 3);
        assert!(sockets.holds(session, a) && !sockets.holds(other, a));
        sockets.sessions_ended(&[session], CloseReason::Revoked);
        sockets.sessions_ended(&[session], CloseReason::Expired);
        let reason = |closed: &mut Closed| closed.try_recv().ok().map(|c| c.reason);
        assert_eq!(reason(&mut closed_a), Some(CloseReason::Revoked));
        assert_eq!(reason(&mut closed_b), Some(CloseReason::Revoked));
        assert!(closed_a.try_recv().is_err() && closed_c.try_recv().is_err());
        assert_eq!(sockets.count(), 1);
        sockets.release(other, c);
        sockets.release(other, c);
        assert_eq!(sockets.count(), 0);
        assert!(sockets.sessions().is_empty());
    }
}
