//! The event feed, driven command by command: what each change adds, in log order; the
//! effects told; resuming after a sequence or a time; snapshots; trims.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::feed::{Entry, Resolved};
use super::*;
use crate::model::audit::Actor;
use crate::model::event::FeedKind;

fn run(state: &mut SiteState, at: u64, command: SiteCommand) -> SiteReply {
    state.apply(
        sessionplane_cluster::Applying {
            at_ms: at,
            log_index: 0,
        },
        command,
    )
}

fn new_session(user: Uuid) -> NewSession {
    NewSession {
        session_id: Uuid::now_v7(),
        user_id: user,
        login: "alice".into(),
        domain: "d".into(),
        lifetime_ms: 60_000,
        client_addr: Some([10, 0, 0, 1].into()),
        user_agent: None,
    }
}

fn new_connection(session: Uuid) -> NewConnection {
    NewConnection {
        conn_id: Uuid::now_v7(),
        session_id: session,
        node: "n1@127.0.0.1".into(),
        pid: crate::model::Pid {
            node_id: 1,
            sequence: 1,
            incarnation: 1,
        },
    }
}

fn new_channel(user: Uuid) -> NewChannel {
    NewChannel {
        channel_id: Uuid::now_v7(),
        protocol: crate::model::Protocol::Imap,
        endpoint: crate::model::Endpoint::ImapServer,
        username: "alice@d".into(),
        user_id: user,
        remote_address: "10.0.0.1:5000".into(),
        encrypted: false,
        info: Default::default(),
        node: "n1@127.0.0.1".into(),
        pid: crate::model::Pid {
            node_id: 1,
            sequence: 2,
            incarnation: 1,
        },
    }
}

/// The feed after `seq`, as (sequence, time, action) triples.
fn actions(state: &SiteState, after: u64) -> Vec<(u64, u64, String)> {
    let view = state.feed_view();
    view.after(after)
        .map(
            |Entry {
                 seq,
                 time_ms,
                 event,
             }| match event {
                Resolved::Audit(a) => (seq, time_ms, a.action.clone()),
                Resolved::Lifecycle(e) => (seq, time_ms, e.kind.action().unwrap_or("?").into()),
            },
        )
        .collect()
}

/// A state with a session, its connection and a channel, then the session killed (audited)
/// and the channel disconnected.
fn scripted() -> SiteState {
    let mut state = SiteState::default();
    let user = Uuid::now_v7();
    let new = new_session(user);
    let session = new.session_id;
    run(&mut state, 10, SiteCommand::CreateSession(new));
    run(
        &mut state,
        20,
        SiteCommand::OpenConnection(new_connection(session)),
    );
    run(&mut state, 30, SiteCommand::OpenChannel(new_channel(user)));
    let kill = SiteCommand::DeleteSession {
        session_id: session,
        reason: CloseReason::Revoked,
        authority: Authority::system(),
    };
    let event = NewAuditEvent::new(
        "central",
        "c1@host",
        Actor::None,
        "session.kill",
        &session.to_string(),
    );
    run(
        &mut state,
        40,
        SiteCommand::Audited {
            event: Box::new(event),
            command: Box::new(kill),
        },
    );
    run(
        &mut state,
        50,
        SiteCommand::DisconnectChannels(ChannelTarget::All),
    );
    state
}

#[test]
fn every_change_adds_its_events_in_log_order_with_its_entrys_time() {
    let state = scripted();
    let expected = [
        (1, 10, "session.created"),
        (2, 20, "connection.opened"),
        (3, 30, "channel.opened"),
        (4, 40, "connection.closed"),
        (5, 40, "session.ended"),
        (6, 40, "session.kill"),
        (7, 50, "channel.closed"),
    ];
    let expected: Vec<(u64, u64, String)> = expected
        .iter()
        .map(|(s, t, a)| (*s, *t, a.to_string()))
        .collect();
    assert_eq!(actions(&state, 0), expected);
    assert_eq!(
        actions(&state, 5),
        expected[5..].to_vec(),
        "resumes after 5"
    );
    assert_eq!(state.feed_last_seq(), 7);
    let view = state.feed_view();
    let ended = view
        .after(4)
        .find_map(|entry| match entry.event {
            Resolved::Lifecycle(e) => match &e.kind {
                FeedKind::SessionEnded { reason, session } => Some((*reason, session.address())),
                _ => None,
            },
            Resolved::Audit(_) => None,
        })
        .expect("a session.ended");
    assert_eq!(ended, (CloseReason::Revoked, "alice@d".to_string()));
}

#[test]
fn a_refused_or_repeated_change_adds_nothing() {
    let mut state = SiteState::default();
    let new = new_session(Uuid::now_v7());
    run(&mut state, 1, SiteCommand::CreateSession(new.clone()));
    run(&mut state, 2, SiteCommand::CreateSession(new));
    run(
        &mut state,
        3,
        SiteCommand::OpenConnection(new_connection(Uuid::now_v7())),
    );
    run(
        &mut state,
        4,
        SiteCommand::CloseChannel {
            channel_id: Uuid::now_v7(),
        },
    );
    assert_eq!(state.feed_last_seq(), 1);
}

#[derive(Default)]
struct Told(AtomicU64);

impl SiteEffects for Told {
    fn feed_advanced(&self, last_seq: u64) {
        self.0.store(last_seq, Ordering::SeqCst);
    }
}

#[test]
fn the_effects_hear_the_last_sequence_after_each_entry() {
    let told = Arc::new(Told::default());
    let mut state = SiteState::with_effects(told.clone());
    let new = new_session(Uuid::now_v7());
    run(&mut state, 1, SiteCommand::CreateSession(new));
    assert_eq!(told.0.load(Ordering::SeqCst), 1);
    run(&mut state, 2, SiteCommand::PurgeExpired { limit: 10 });
    assert_eq!(
        told.0.load(Ordering::SeqCst),
        1,
        "nothing new, nothing told"
    );
    run(&mut state, 70_000, SiteCommand::PurgeExpired { limit: 10 });
    assert_eq!(
        told.0.load(Ordering::SeqCst),
        2,
        "the expiry's session.ended"
    );
}

#[test]
fn a_reader_starting_at_a_time_gets_the_events_from_that_time_on() {
    let state = scripted();
    let view = state.feed_view();
    assert_eq!(view.before_time(0), 0);
    assert_eq!(view.before_time(10), 0);
    assert_eq!(view.before_time(11), 1);
    assert_eq!(view.before_time(40), 3);
    assert_eq!(view.before_time(41), 6);
    assert_eq!(view.before_time(1_000), 7);
}

#[test]
fn the_feed_survives_a_snapshot_and_a_trim_forgets_its_oldest() {
    let mut state = scripted();
    let bytes = (state.snapshot())();
    let restored = state.restore(&bytes).expect("restores");
    assert_eq!(actions(&restored, 0), actions(&state, 0));
    assert_eq!(restored.feed_last_seq(), 7);

    assert_eq!(
        run(&mut state, 60, SiteCommand::TrimFeed { upto: 5, limit: 2 }),
        SiteReply::FeedTrimmed(2)
    );
    assert_eq!(state.feed_view().first_seq(), Some(3));
    assert_eq!(
        run(&mut state, 61, SiteCommand::TrimFeed { upto: 5, limit: 10 }),
        SiteReply::FeedTrimmed(3)
    );
    assert_eq!(state.feed_view().first_seq(), Some(6));
    assert_eq!(state.feed_extent(), (2, Some(40)));
    // New events go on from the last sequence, not from what is kept.
    run(
        &mut state,
        62,
        SiteCommand::CreateSession(new_session(Uuid::now_v7())),
    );
    assert_eq!(state.feed_last_seq(), 8);
}
