//! The site state machine, driven command by command.

use std::collections::BTreeSet;
use std::ops::Bound;

use super::*;
use crate::state::decode;

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
    state.apply(
        sessionplane_cluster::Applying {
            at_ms: at,
            log_index: 0,
        },
        command,
    )
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
    let SiteReply::Deleted(first) = run(&mut state, 200, SiteCommand::PurgeExpired { limit: 3 })
    else {
        panic!()
    };
    assert_eq!(first.len(), 3);
    let SiteReply::Deleted(second) = run(&mut state, 200, SiteCommand::PurgeExpired { limit: 3 })
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
    use crate::model::site_request::{SiteRequest, Verb};
    use crate::model::task::{NewTask, TaskKind, TaskStatus, KEEP_FINISHED_MS};
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
    let error = decode::<SiteCommand>(b"\xff\x00garbage").unwrap_err();
    let reply = SiteState::undecodable_command(error.to_string());
    assert!(matches!(reply, SiteReply::Invalid(_)));
    let reply = state.apply(
        sessionplane_cluster::Applying {
            at_ms: 0,
            log_index: 0,
        },
        SiteCommand::CreateSession(new_session(Uuid::nil(), "", 1)),
    );
    assert!(matches!(reply, SiteReply::Invalid(_)));
}

fn user_lock(user: Uuid, expires_at_ms: Option<u64>) -> Lock {
    Lock {
        lock_id: Uuid::now_v7(),
        target: crate::model::LockTarget::User {
            user_id: user,
            address: "alice@d".into(),
        },
        message: "account under investigation".into(),
        created_at_ms: 0,
        expires_at_ms,
        created_by: "admin@master.domain".into(),
        sites: vec!["central".into()],
        lifted_at_ms: None,
        spares: None,
    }
}

fn new_channel(user: Uuid, remote: &str) -> NewChannel {
    NewChannel {
        channel_id: Uuid::now_v7(),
        protocol: crate::model::Protocol::Imap,
        endpoint: crate::model::Endpoint::ImapServer,
        username: "alice@d".into(),
        user_id: user,
        remote_address: remote.into(),
        encrypted: false,
        info: Default::default(),
        node: "n1@127.0.0.1".into(),
        pid: crate::model::Pid {
            node_id: 1,
            sequence: 1,
            incarnation: 1,
        },
    }
}

fn session_of(reply: SiteReply) -> Session {
    match reply {
        SiteReply::Session(session) => session,
        other => panic!("not a session: {other:?}"),
    }
}

#[test]
fn a_user_lock_ends_what_is_open_and_keeps_every_way_in_shut_until_it_expires() {
    let mut state = SiteState::default();
    let (user, other) = (Uuid::now_v7(), Uuid::now_v7());
    let session = session_of(run(
        &mut state,
        0,
        SiteCommand::CreateSession(new_session(user, "d", 60_000)),
    ));
    let bystander = session_of(run(
        &mut state,
        0,
        SiteCommand::CreateSession(new_session(other, "d", 60_000)),
    ));
    assert!(matches!(
        open(&mut state, session.session_id, 1, 1),
        SiteReply::Connection(_)
    ));
    assert!(matches!(
        run(
            &mut state,
            10,
            SiteCommand::OpenChannel(new_channel(user, "10.0.0.1:4000"))
        ),
        SiteReply::Channel(_)
    ));
    let lock = user_lock(user, Some(50_000));
    let placed = run(
        &mut state,
        20,
        SiteCommand::PlaceLock { lock: lock.clone() },
    );
    assert_eq!(
        placed,
        SiteReply::LockPlaced(Closed {
            sessions: 1,
            websockets: 1,
            channels: 1
        })
    );
    assert!(state.get(&session.session_id, 20).is_none());
    assert!(
        state.get(&bystander.session_id, 20).is_some(),
        "another user keeps its session"
    );
    let locked = SiteReply::Locked {
        lock_id: lock.lock_id,
        message: lock.message.clone(),
    };
    assert_eq!(
        run(
            &mut state,
            30,
            SiteCommand::CreateSession(new_session(user, "d", 60_000))
        ),
        locked
    );
    assert_eq!(
        run(
            &mut state,
            30,
            SiteCommand::OpenChannel(new_channel(user, "10.0.0.1:4001"))
        ),
        locked
    );
    assert!(matches!(
        run(
            &mut state,
            30,
            SiteCommand::CreateSession(new_session(other, "d", 60_000))
        ),
        SiteReply::Session(_)
    ));
    assert_eq!(state.locks_in_force(49_999), 1);
    // Placing it again (a retried task) ends nothing more and keeps one lock.
    assert_eq!(
        run(&mut state, 40, SiteCommand::PlaceLock { lock }),
        SiteReply::LockPlaced(Closed::default())
    );
    assert_eq!(state.locks().len(), 1);
    // Past its expiry nobody has to lift it.
    assert_eq!(state.locks_in_force(50_000), 0);
    assert!(matches!(
        run(
            &mut state,
            50_000,
            SiteCommand::CreateSession(new_session(user, "d", 60_000))
        ),
        SiteReply::Session(_)
    ));
}

#[test]
fn a_session_opened_before_a_lock_cannot_open_a_connection_after_it() {
    let mut state = SiteState::default();
    let user = Uuid::now_v7();
    let new = |state: &mut SiteState| {
        session_of(run(
            state,
            0,
            SiteCommand::CreateSession(new_session(user, "d", 60_000)),
        ))
    };
    let (session, spared) = (new(&mut state), new(&mut state));
    let mut lock = user_lock(user, None);
    lock.target = crate::model::LockTarget::Session(session.session_id);
    let lock_id = lock.lock_id;
    run(&mut state, 5, SiteCommand::PlaceLock { lock: lock.clone() });
    assert!(state.get(&session.session_id, 5).is_none());
    let mut session_lock = lock;
    session_lock.lock_id = Uuid::now_v7();
    session_lock.target = crate::model::LockTarget::Session(spared.session_id);
    session_lock.spares = Some(spared.session_id);
    // The caller's own session is neither ended nor kept out by its own lock.
    run(&mut state, 6, SiteCommand::PlaceLock { lock: session_lock });
    assert!(state.get(&spared.session_id, 6).is_some());
    assert!(matches!(
        open(&mut state, spared.session_id, 1, 1),
        SiteReply::Connection(_)
    ));
    let later = new(&mut state);
    let mut by_user = user_lock(user, None);
    by_user.lock_id = Uuid::now_v7();
    // A lock placed before a session's connection opens keeps the connection out.
    state
        .locks
        .insert(by_user.lock_id, Arc::new(by_user.clone()));
    assert!(matches!(
        open(&mut state, later.session_id, 1, 1),
        SiteReply::Locked { .. }
    ));
    let SiteReply::Lock(lifted) = run(
        &mut state,
        20,
        SiteCommand::LiftLock {
            lock_id: by_user.lock_id,
        },
    ) else {
        panic!()
    };
    assert_eq!(lifted.lifted_at_ms, Some(20));
    assert!(matches!(
        open(&mut state, later.session_id, 1, 1),
        SiteReply::Connection(_)
    ));
    assert!(state.lock(&lock_id).is_some_and(|l| l.in_force(20)));
    assert_eq!(
        run(
            &mut state,
            20,
            SiteCommand::LiftLock {
                lock_id: Uuid::now_v7()
            }
        ),
        SiteReply::NotFound
    );
}

#[test]
fn a_network_lock_keeps_out_its_addresses_only() {
    let mut state = SiteState::default();
    let user = Uuid::now_v7();
    let from = |addr: [u8; 4]| NewSession {
        client_addr: Some(addr.into()),
        ..new_session(user, "d", 60_000)
    };
    let inside = session_of(run(
        &mut state,
        0,
        SiteCommand::CreateSession(from([10, 0, 0, 1])),
    ));
    let outside = session_of(run(
        &mut state,
        0,
        SiteCommand::CreateSession(from([10, 0, 1, 1])),
    ));
    run(
        &mut state,
        0,
        SiteCommand::OpenChannel(new_channel(user, "10.0.0.7:993")),
    );
    run(
        &mut state,
        0,
        SiteCommand::OpenChannel(new_channel(user, "10.0.1.7:993")),
    );
    let mut lock = user_lock(user, None);
    lock.target = crate::model::LockTarget::Network("10.0.0.0/24".parse().unwrap());
    let placed = run(&mut state, 1, SiteCommand::PlaceLock { lock });
    assert_eq!(
        placed,
        SiteReply::LockPlaced(Closed {
            sessions: 1,
            websockets: 0,
            channels: 1
        })
    );
    assert!(state.get(&inside.session_id, 1).is_none());
    assert!(state.get(&outside.session_id, 1).is_some());
    assert!(matches!(
        run(
            &mut state,
            2,
            SiteCommand::CreateSession(from([10, 0, 0, 200]))
        ),
        SiteReply::Locked { .. }
    ));
    assert!(matches!(
        run(
            &mut state,
            2,
            SiteCommand::CreateSession(from([10, 0, 2, 1]))
        ),
        SiteReply::Session(_)
    ));
    assert!(matches!(
        run(
            &mut state,
            2,
            SiteCommand::OpenChannel(new_channel(user, "10.0.0.8:993"))
        ),
        SiteReply::Locked { .. }
    ));
    assert!(matches!(
        run(
            &mut state,
            2,
            SiteCommand::OpenChannel(new_channel(user, "10.0.3.8:993"))
        ),
        SiteReply::Channel(_)
    ));
}

#[derive(Default)]
struct Told(std::sync::Mutex<Vec<ContainedHere>>);

impl SiteEffects for Told {
    fn contained(&self, contained: ContainedHere) {
        self.0.lock().unwrap().push(contained);
    }
}

#[test]
fn a_containment_ends_everything_but_the_callers_session_in_one_entry_and_says_where() {
    let told = Arc::new(Told::default());
    let mut state = SiteState::with_effects(told.clone());
    let user = Uuid::now_v7();
    let sessions: Vec<Session> = (0..3)
        .map(|_| {
            session_of(run(
                &mut state,
                0,
                SiteCommand::CreateSession(new_session(user, "d", 60_000)),
            ))
        })
        .collect();
    open(&mut state, sessions[0].session_id, 1, 1);
    open(&mut state, sessions[0].session_id, 2, 1);
    open(&mut state, sessions[2].session_id, 2, 1);
    let channel = new_channel(user, "10.0.0.1:4000");
    run(&mut state, 0, SiteCommand::OpenChannel(channel.clone()));
    let preview = state.preview_containment(user, "alice@d", Some(sessions[2].session_id), 5);
    assert_eq!(
        preview.closed,
        Closed {
            sessions: 2,
            websockets: 2,
            channels: 1
        }
    );
    assert_eq!(preview.by_node.get("n1@127.0.0.1"), Some(&(1, 1)));
    assert_eq!(preview.by_node.get("n2@127.0.0.1"), Some(&(1, 0)));
    let lock = user_lock(user, None);
    let containment = Containment {
        incident_id: Uuid::now_v7(),
        user_id: user,
        address: "alice@d".into(),
        domain: "d".into(),
        lock: Some(lock.clone()),
        except: Some(sessions[2].session_id),
    };
    let command = SiteCommand::Contain {
        containment: containment.clone(),
        authority: Authority::system(),
    };
    let reply = state.apply(
        sessionplane_cluster::Applying {
            at_ms: 10,
            log_index: 77,
        },
        command,
    );
    assert_eq!(
        reply,
        SiteReply::Contained {
            closed: preview.closed,
            log_index: 77
        }
    );
    assert!(
        state.get(&sessions[2].session_id, 10).is_some(),
        "the caller's session is spared"
    );
    assert!(state.get(&sessions[0].session_id, 10).is_none());
    assert!(state.lock(&lock.lock_id).is_some_and(|l| l.in_force(10)));
    let told = told.0.lock().unwrap().clone();
    assert_eq!(told.len(), 1);
    assert_eq!(
        (told[0].incident_id, told[0].log_index, told[0].reason),
        (containment.incident_id, 77, CloseReason::Locked)
    );
    assert_eq!(told[0].sessions.len(), 2);
    assert_eq!(told[0].channels, vec![channel.channel_id]);
    // A domain administrator of another domain is refused when the entry applies.
    let outsider = Authority {
        session: None,
        domain: Some("other".into()),
    };
    let command = SiteCommand::Contain {
        containment,
        authority: outsider,
    };
    assert!(matches!(
        run(&mut state, 20, command),
        SiteReply::OutsideDomain(_)
    ));
}

#[test]
fn locks_and_receipts_survive_snapshots_and_older_snapshots_still_restore() {
    let mut state = SiteState::default();
    let user = Uuid::now_v7();
    let lock = user_lock(user, None);
    run(&mut state, 0, SiteCommand::PlaceLock { lock: lock.clone() });
    let receipt = Receipt {
        incident_id: Uuid::now_v7(),
        user: "alice@d".into(),
        user_id: user,
        reason: Some("phished".into()),
        lock_id: Some(lock.lock_id),
        dry_run: false,
        requested_by: "admin".into(),
        started_at_ms: 0,
        completed_at_ms: 9,
        elapsed_us: 8_600,
        sites: Default::default(),
    };
    run(
        &mut state,
        0,
        SiteCommand::RecordReceipt(Box::new(receipt.clone())),
    );
    let restored = state.restore(&(state.snapshot())()).unwrap();
    assert_eq!(restored.lock(&lock.lock_id), Some(&lock));
    assert_eq!(restored.receipt(&receipt.incident_id), Some(&receipt));
    #[allow(clippy::type_complexity)]
    let older: (
        Vec<Session>,
        Vec<(String, Vec<u64>)>,
        Vec<Connection>,
        Vec<Channel>,
        Vec<Task>,
        u64,
    ) = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        3,
    );
    let restored = state
        .restore(&crate::state::encode(&older).unwrap())
        .unwrap();
    assert!(restored.locks().is_empty() && restored.access_revocations_done() == 3);
}

#[test]
fn ended_locks_are_kept_a_month_then_purged() {
    let mut state = SiteState::default();
    let lock = user_lock(Uuid::now_v7(), Some(1_000));
    run(&mut state, 0, SiteCommand::PlaceLock { lock });
    let month = crate::model::lock::KEEP_ENDED_LOCKS_MS;
    assert!(!state.has_expired(1_000 + month - 1));
    run(
        &mut state,
        1_000 + month - 1,
        SiteCommand::PurgeExpired { limit: 10 },
    );
    assert_eq!(state.locks().len(), 1);
    assert!(state.has_expired(1_000 + month));
    run(
        &mut state,
        1_000 + month,
        SiteCommand::PurgeExpired { limit: 10 },
    );
    assert!(state.locks().is_empty());
}
