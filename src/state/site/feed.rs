//! The site's event feed: each audit event and session lifecycle change this site's entries
//! make, numbered in log order (see [`crate::model::event`]), kept until the leader trims it.
//!
//! Apply appends; nothing else writes the feed. The time of an event is its entry's, set when
//! the entry starts to apply. Owns the feed of [`SiteState`]; reads the audit trail only to
//! resolve the audit events the feed names.

use std::sync::Arc;

use super::audit::{action_is, AuditFilter};
use super::{SiteReply, SiteState};
use crate::model::audit::{AuditEvent, Outcome};
use crate::model::event::{ChannelRef, ConnectionRef, FeedEvent, FeedKind, SessionRef};
use crate::model::{Channel, CloseReason, Connection, Session};

/// The feed's records in [`SiteState`].
#[derive(Clone, Default)]
pub(super) struct Feed {
    pub(super) events: imbl::OrdMap<u64, Arc<FeedEvent>>,
    /// The last sequence given (0: none yet).
    pub(super) last_seq: u64,
    /// The time of the entry being applied.
    pub(super) entry_ms: u64,
}

impl Feed {
    pub(super) fn push(&mut self, kind: FeedKind) {
        self.last_seq += 1;
        let event = FeedEvent {
            seq: self.last_seq,
            time_ms: self.entry_ms,
            kind,
        };
        self.events.insert(self.last_seq, Arc::new(event));
    }
}

/// A frozen copy of the feed and of the audit events it names, read without the state's lock.
#[derive(Clone, Default)]
pub struct FeedView {
    events: imbl::OrdMap<u64, Arc<FeedEvent>>,
    audit: imbl::OrdMap<u64, Arc<AuditEvent>>,
    last_seq: u64,
}

/// A feed event, its place and time, with its audit event resolved.
#[derive(Clone, Debug)]
pub struct Entry {
    pub seq: u64,
    /// The time of the entry that made it (an audit event's own time is its proposer's).
    pub time_ms: u64,
    pub event: Resolved,
}

#[derive(Clone, Debug)]
pub enum Resolved {
    Audit(Arc<AuditEvent>),
    Lifecycle(Arc<FeedEvent>),
}

impl FeedView {
    /// The last sequence given at this site (0: none yet).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// The oldest sequence still kept, if any is.
    pub fn first_seq(&self) -> Option<u64> {
        self.events.get_min().map(|(seq, _)| *seq)
    }

    /// The events after `seq`, in order, with their audit events resolved (an audit event
    /// purged by the trail's own retention is skipped).
    pub fn after(&self, seq: u64) -> impl Iterator<Item = Entry> + '_ {
        self.events
            .range(seq.saturating_add(1)..)
            .filter_map(|(seq, event)| {
                let resolved = match event.kind {
                    FeedKind::Audit { audit_seq } => {
                        Resolved::Audit(self.audit.get(&audit_seq)?.clone())
                    }
                    _ => Resolved::Lifecycle(event.clone()),
                };
                Some(Entry {
                    seq: *seq,
                    time_ms: event.time_ms,
                    event: resolved,
                })
            })
    }

    /// The sequence of the last event older than `time_ms` (0 when there is none kept): where a
    /// reader that wants the events from `time_ms` on starts.
    pub fn before_time(&self, time_ms: u64) -> u64 {
        let first = self.first_seq().unwrap_or(self.last_seq + 1);
        // Times grow with the sequence (entry times are the leader's, never going back within a
        // term); a binary search over the sequence finds the first event at or after `time_ms`.
        let (mut low, mut high) = (first, self.last_seq + 1);
        while low < high {
            let mid = low + (high - low) / 2;
            match self.events.get(&mid) {
                Some(event) if event.time_ms < time_ms => low = mid + 1,
                Some(_) => high = mid,
                // A gap cannot happen (trims remove a prefix); treat it as older.
                None => low = mid + 1,
            }
        }
        low.saturating_sub(1)
    }
}

impl SiteState {
    pub fn feed_view(&self) -> FeedView {
        FeedView {
            events: self.feed.events.clone(),
            audit: self.audit.clone(),
            last_seq: self.feed.last_seq,
        }
    }

    pub fn feed_last_seq(&self) -> u64 {
        self.feed.last_seq
    }

    /// How many events the feed keeps, and the time of the oldest.
    pub fn feed_extent(&self) -> (usize, Option<u64>) {
        let oldest = self.feed.events.get_min().map(|(_, e)| e.time_ms);
        (self.feed.events.len(), oldest)
    }

    /// The sequence of the last event older than `time_ms`.
    pub fn feed_seq_before(&self, time_ms: u64) -> u64 {
        self.feed_view().before_time(time_ms)
    }

    pub(super) fn feed_session_created(&mut self, session: &Session) {
        let kind = FeedKind::SessionCreated {
            session: session_ref(session),
            client_addr: session.client_addr,
        };
        self.feed.push(kind);
    }

    pub(super) fn feed_session_ended(&mut self, session: &Session, reason: CloseReason) {
        let kind = FeedKind::SessionEnded {
            session: session_ref(session),
            reason,
        };
        self.feed.push(kind);
    }

    pub(super) fn feed_connection(&mut self, connection: &Connection, opened: bool) {
        let Some(session) = self.sessions.get(&connection.session_id) else {
            return;
        };
        let reference = ConnectionRef {
            conn_id: connection.conn_id,
            session: session_ref(session),
            node: connection.node.clone(),
        };
        self.feed.push(match opened {
            true => FeedKind::ConnectionOpened(reference),
            false => FeedKind::ConnectionClosed(reference),
        });
    }

    pub(super) fn feed_channel(&mut self, channel: &Channel, opened: bool) {
        let reference = ChannelRef {
            channel_id: channel.channel_id,
            user_id: channel.user_id,
            username: channel.username.clone(),
            protocol: channel.protocol,
            node: channel.node.clone(),
        };
        self.feed.push(match opened {
            true => FeedKind::ChannelOpened(reference),
            false => FeedKind::ChannelClosed(reference),
        });
    }

    pub(super) fn feed_audit(&mut self, audit_seq: u64) {
        self.feed.push(FeedKind::Audit { audit_seq });
    }

    /// Forgets the events up to `upto` (inclusive), at most `limit` of them, oldest first.
    pub(super) fn trim_feed(&mut self, upto: u64, limit: u32) -> SiteReply {
        let doomed: Vec<u64> = self
            .feed
            .events
            .range(..=upto)
            .take(limit as usize)
            .map(|(seq, _)| *seq)
            .collect();
        for seq in &doomed {
            self.feed.events.remove(seq);
        }
        SiteReply::FeedTrimmed(doomed.len() as u32)
    }

    pub(super) fn restore_feed(&mut self, parts: FeedParts) {
        self.feed.last_seq = parts.last_seq;
        for mut event in parts.events {
            self.intern_refs(&mut event.kind);
            self.feed.events.insert(event.seq, Arc::new(event));
        }
    }

    fn intern_refs(&mut self, kind: &mut FeedKind) {
        let session = match kind {
            FeedKind::SessionCreated { session, .. } | FeedKind::SessionEnded { session, .. } => {
                session
            }
            FeedKind::ConnectionOpened(c) | FeedKind::ConnectionClosed(c) => {
                c.node = self.intern(&c.node);
                &mut c.session
            }
            FeedKind::ChannelOpened(c) | FeedKind::ChannelClosed(c) => {
                c.node = self.intern(&c.node);
                c.username = self.intern(&c.username);
                return;
            }
            FeedKind::Audit { .. } => return,
        };
        session.login = self.intern(&session.login);
        session.domain = self.intern(&session.domain);
    }
}

fn session_ref(session: &Session) -> SessionRef {
    SessionRef {
        session_id: session.session_id,
        user_id: session.user_id,
        login: session.login.clone(),
        domain: session.domain.clone(),
    }
}

/// The feed as a snapshot holds it.
#[derive(Clone, Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct FeedParts {
    pub events: Vec<FeedEvent>,
    pub last_seq: u64,
}

impl AuditFilter {
    /// Whether a feed entry passes the filter: an audit event as the audit listing judges it;
    /// a lifecycle event by its entry's time, its action, the user it is about (its target,
    /// also matched by the session, connection or channel id) and that user's domain. A
    /// lifecycle event has no actor and always the outcome `ok`.
    pub fn matches_entry(&self, entry: &Entry) -> bool {
        let event = match &entry.event {
            Resolved::Audit(audit) => return self.matches(audit),
            Resolved::Lifecycle(event) => event,
        };
        let address = event.kind.user_address().unwrap_or_default();
        self.since_ms.is_none_or(|t| entry.time_ms >= t)
            && self.until_ms.is_none_or(|t| entry.time_ms <= t)
            && self.actor.is_none()
            && self.outcome.is_none_or(|o| o == Outcome::Ok)
            && self
                .action
                .as_deref()
                .is_none_or(|a| event.kind.action().is_some_and(|b| action_is(b, a)))
            && self
                .target
                .as_deref()
                .is_none_or(|t| address.eq_ignore_ascii_case(t) || names(&event.kind, t))
            && self.domain.as_deref().is_none_or(|d| {
                address
                    .rsplit_once('@')
                    .is_some_and(|(_, of)| of.eq_ignore_ascii_case(d))
            })
    }
}

/// Whether `id` is the session, connection or channel a lifecycle event is about.
fn names(kind: &FeedKind, id: &str) -> bool {
    let ids: [Option<uuid::Uuid>; 2] = match kind {
        FeedKind::SessionCreated { session, .. } | FeedKind::SessionEnded { session, .. } => {
            [Some(session.session_id), None]
        }
        FeedKind::ConnectionOpened(c) | FeedKind::ConnectionClosed(c) => {
            [Some(c.conn_id), Some(c.session.session_id)]
        }
        FeedKind::ChannelOpened(c) | FeedKind::ChannelClosed(c) => [Some(c.channel_id), None],
        FeedKind::Audit { .. } => [None, None],
    };
    ids.iter().flatten().any(|known| known.to_string() == id)
}
