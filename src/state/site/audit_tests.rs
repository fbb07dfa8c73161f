//! The audit chain, driven command by command: events in the same entry as their change, fail
//! closed, outcomes, bans, snapshots old and new, tampering, retention.

use std::sync::Arc;

use super::*;
use crate::model::audit::{Actor, AuditEvent, Outcome, GENESIS_HASH};
use crate::state::encode;

fn event(action: &str, target: &str) -> NewAuditEvent {
    NewAuditEvent::new("central", "c1@host", Actor::None, action, target)
}

fn audited(event: NewAuditEvent, command: SiteCommand) -> SiteCommand {
    SiteCommand::Audited {
        event: Box::new(event),
        command: Box::new(command),
    }
}

fn session(user: Uuid) -> NewSession {
    NewSession {
        session_id: Uuid::now_v7(),
        user_id: user,
        login: "alice".into(),
        domain: "d".into(),
        lifetime_ms: 60_000,
        client_addr: None,
        user_agent: None,
    }
}

fn events(state: &SiteState) -> Vec<Arc<AuditEvent>> {
    state.audit_events(&audit::AuditFilter::default(), 1000)
}

#[test]
fn an_event_is_recorded_with_its_change_and_the_outcome_of_its_reply() {
    let mut state = SiteState::default();
    let new = session(Uuid::now_v7());
    let id = new.session_id;
    state.apply(
        sessionplane_cluster::Applying {
            at_ms: 0,
            log_index: 0,
        },
        SiteCommand::CreateSession(new),
    );
    let kill = SiteCommand::DeleteSession {
        session_id: id,
        reason: CloseReason::Revoked,
        authority: Authority::system(),
    };
    let reply = state.apply(
        sessionplane_cluster::Applying {
            at_ms: 1,
            log_index: 0,
        },
        audited(event("session.kill", &id.to_string()), kill.clone()),
    );
    assert_eq!(reply, SiteReply::Deleted(vec![id]));
    let reply = state.apply(
        sessionplane_cluster::Applying {
            at_ms: 2,
            log_index: 0,
        },
        audited(event("session.kill", &id.to_string()), kill),
    );
    assert_eq!(reply, SiteReply::NotFound);
    let listed = events(&state);
    assert_eq!(listed.len(), 2);
    let (second, first) = (&listed[0], &listed[1]);
    assert_eq!(
        (first.outcome, second.outcome),
        (Outcome::Ok, Outcome::Failed)
    );
    assert_eq!(first.details["sessions_ended"], 1);
    assert_eq!(first.details["domain"], "d");
    assert_eq!(first.prev_hash, GENESIS_HASH);
    assert_eq!(second.prev_hash, first.hash);
    assert!(state.verify_audit().ok());
    assert_eq!(state.verify_audit().events, 2);
}

#[test]
fn a_refusal_at_apply_is_recorded_as_refused() {
    let mut state = SiteState::default();
    let new = session(Uuid::now_v7());
    let id = new.session_id;
    state.apply(
        sessionplane_cluster::Applying {
            at_ms: 0,
            log_index: 0,
        },
        SiteCommand::CreateSession(new),
    );
    let kill = SiteCommand::DeleteSession {
        session_id: id,
        reason: CloseReason::Revoked,
        authority: Authority {
            session: None,
            domain: Some("other".into()),
        },
    };
    let reply = state.apply(
        sessionplane_cluster::Applying {
            at_ms: 1,
            log_index: 0,
        },
        audited(event("session.kill", &id.to_string()), kill),
    );
    assert_eq!(reply, SiteReply::OutsideDomain("d".into()));
    assert_eq!(events(&state)[0].outcome, Outcome::Refused);
}

#[test]
fn an_event_that_cannot_be_recorded_refuses_its_change() {
    let mut state = SiteState::default();
    let new = session(Uuid::now_v7());
    let id = new.session_id;
    let mut bad = event("session.create", "x");
    bad.details = serde_json::json!("not an object");
    let reply = state.apply(
        sessionplane_cluster::Applying {
            at_ms: 0,
            log_index: 0,
        },
        audited(bad, SiteCommand::CreateSession(new.clone())),
    );
    assert!(matches!(reply, SiteReply::Invalid(_)), "{reply:?}");
    assert!(state.get(&id, 0).is_none(), "the change was not made");
    let huge = event("session.create", &"x".repeat(20 * 1024));
    let reply = state.apply(
        sessionplane_cluster::Applying {
            at_ms: 0,
            log_index: 0,
        },
        audited(huge, SiteCommand::CreateSession(new)),
    );
    assert!(matches!(reply, SiteReply::Invalid(_)), "{reply:?}");
    assert!(state.get(&id, 0).is_none(), "the change was not made");
    assert!(events(&state).is_empty());
    let reply = state.apply(
        sessionplane_cluster::Applying {
            at_ms: 0,
            log_index: 0,
        },
        SiteCommand::RecordAudit(Box::new(event("", "x"))),
    );
    assert!(matches!(reply, SiteReply::Invalid(_)), "{reply:?}");
}

#[test]
fn a_login_reservation_records_only_a_ban() {
    let mut state = SiteState::default();
    let reserve = || SiteCommand::ReserveLoginAttempt {
        key: "bob@d".into(),
        window_ms: 60_000,
        limit: 2,
    };
    let banned = || event("login.banned", "bob@d");
    for at in 0..2 {
        let reply = state.apply(
            sessionplane_cluster::Applying {
                at_ms: at,
                log_index: 0,
            },
            audited(banned(), reserve()),
        );
        assert!(matches!(reply, SiteReply::LoginFailures(_)), "{reply:?}");
    }
    assert!(events(&state).is_empty(), "a reservation is no event");
    let reply = state.apply(
        sessionplane_cluster::Applying {
            at_ms: 3,
            log_index: 0,
        },
        audited(banned(), reserve()),
    );
    assert!(matches!(reply, SiteReply::LoginBanned(_)), "{reply:?}");
    let listed = events(&state);
    assert_eq!(listed.len(), 1);
    assert_eq!(
        (listed[0].action.as_str(), listed[0].outcome),
        ("login.banned", Outcome::Refused)
    );
}

fn state_with_events(n: u64) -> SiteState {
    let mut state = SiteState::default();
    for i in 0..n {
        let mut e = event("auth.refused", &format!("GET /users/{i}"));
        e.time_ms = 1_000 + i;
        state.apply(
            sessionplane_cluster::Applying {
                at_ms: 1_000 + i,
                log_index: 0,
            },
            SiteCommand::RecordAudit(Box::new(e)),
        );
    }
    state
}

#[test]
fn a_tampered_event_in_a_restored_state_is_named() {
    let state = state_with_events(5);
    let bytes = (state.snapshot())();
    let mut restored = state.restore(&bytes).unwrap();
    assert_eq!(restored.verify_audit(), state.verify_audit());
    assert!(restored.verify_audit().ok());
    let (seq, victim) = restored
        .audit
        .iter()
        .nth(2)
        .map(|(s, e)| (*s, e.clone()))
        .unwrap();
    let mut forged = AuditEvent::clone(&victim);
    forged.target = "GET /users/X".into();
    restored.audit.insert(seq, Arc::new(forged));
    let check = restored.verify_audit();
    assert!(!check.ok());
    assert_eq!(check.first_bad, Some(victim.event_id));
    assert_eq!(check.events, 3);
}

#[test]
fn a_forged_hash_breaks_the_next_link() {
    let mut state = state_with_events(3);
    let (seq, victim) = state
        .audit
        .iter()
        .nth(1)
        .map(|(s, e)| (*s, e.clone()))
        .unwrap();
    let mut forged = AuditEvent::clone(&victim);
    forged.target = "GET /users/X".into();
    forged.hash = forged.computed_hash();
    state.audit.insert(seq, Arc::new(forged));
    let next = state.audit.iter().nth(2).map(|(_, e)| e.event_id);
    assert_eq!(state.verify_audit().first_bad, next);
}

#[test]
fn the_chain_goes_on_after_a_restore_and_a_check_resumes() {
    let state = state_with_events(3);
    let mut restored = state.restore(&(state.snapshot())()).unwrap();
    let first = restored.verify_audit();
    restored.apply(
        sessionplane_cluster::Applying {
            at_ms: 5_000,
            log_index: 0,
        },
        SiteCommand::RecordAudit(Box::new(event("a.b", "t"))),
    );
    let resumed = restored.verify_audit_after(first.last.as_ref());
    assert!(resumed.ok());
    assert_eq!(resumed.events, 1);
    assert_eq!(restored.verify_audit().events, 4);
}

#[test]
fn a_snapshot_of_the_layout_before_the_audit_trail_restores() {
    let old = (
        Vec::<Session>::new(),
        Vec::<(String, Vec<u64>)>::new(),
        Vec::<Connection>::new(),
        Vec::<Channel>::new(),
        Vec::<Task>::new(),
        7u64,
    );
    let restored = SiteState::default()
        .restore(&encode(&old).unwrap())
        .unwrap();
    assert_eq!(restored.access_revocations_done, 7);
    assert_eq!(restored.audit_len(), 0);
    assert_eq!(restored.audit_head(), GENESIS_HASH);
}

#[test]
fn retention_forgets_the_oldest_in_batches_and_the_rest_still_verifies() {
    let mut state = state_with_events(10);
    assert!(state.has_expired_audit(2_000, 995));
    let purged = state.apply(
        sessionplane_cluster::Applying {
            at_ms: 2_000,
            log_index: 0,
        },
        SiteCommand::PurgeAudit {
            keep_ms: 995,
            limit: 3,
        },
    );
    assert_eq!(purged, SiteReply::AuditPurged(3));
    state.apply(
        sessionplane_cluster::Applying {
            at_ms: 2_000,
            log_index: 0,
        },
        SiteCommand::PurgeAudit {
            keep_ms: 995,
            limit: 3,
        },
    );
    assert_eq!(state.audit_len(), 5, "events from 1005 on are kept");
    assert!(!state.has_expired_audit(2_000, 995));
    let check = state.verify_audit();
    assert!(check.ok(), "{check:?}");
    assert_eq!(check.events, 5);
    let restored = state.restore(&(state.snapshot())()).unwrap();
    assert!(restored.verify_audit().ok());
}

#[test]
fn directory_events_are_copied_once_in_order() {
    let mut state = SiteState::default();
    let copy = |seq| SiteCommand::CopyDirectoryAudit {
        seq,
        event: Box::new(event("user.create", "bob@d")),
    };
    state.apply(
        sessionplane_cluster::Applying {
            at_ms: 0,
            log_index: 0,
        },
        copy(3),
    );
    state.apply(
        sessionplane_cluster::Applying {
            at_ms: 0,
            log_index: 0,
        },
        copy(3),
    );
    state.apply(
        sessionplane_cluster::Applying {
            at_ms: 0,
            log_index: 0,
        },
        copy(2),
    );
    assert_eq!(state.audit_len(), 1);
    assert_eq!(state.directory_audit_done(), 3);
}

#[test]
fn listings_filter_and_page_newest_first() {
    let mut state = SiteState::default();
    for (i, (action, outcome)) in [
        ("user.create", Outcome::Ok),
        ("user.delete", Outcome::Failed),
        ("group.create", Outcome::Ok),
    ]
    .into_iter()
    .enumerate()
    {
        let mut e = event(action, "bob@d").with_outcome(outcome);
        e.time_ms = 100 + i as u64;
        state.apply(
            sessionplane_cluster::Applying {
                at_ms: 0,
                log_index: 0,
            },
            SiteCommand::RecordAudit(Box::new(e)),
        );
    }
    let filter = |f: audit::AuditFilter| {
        state
            .audit_events(&f, 10)
            .iter()
            .map(|e| e.action.clone())
            .collect::<Vec<_>>()
    };
    let users = audit::AuditFilter {
        action: Some("user.*".into()),
        ..Default::default()
    };
    assert_eq!(filter(users), ["user.delete", "user.create"]);
    let failed = audit::AuditFilter {
        outcome: Some(Outcome::Failed),
        ..Default::default()
    };
    assert_eq!(filter(failed), ["user.delete"]);
    let since = audit::AuditFilter {
        since_ms: Some(101),
        ..Default::default()
    };
    assert_eq!(filter(since), ["group.create", "user.delete"]);
    let first = state.audit_events(&audit::AuditFilter::default(), 1);
    let after = audit::AuditCursor {
        time_ms: first[0].time_ms,
        event_id: first[0].event_id,
    };
    let rest = audit::AuditFilter {
        after: Some(after),
        ..Default::default()
    };
    assert_eq!(filter(rest), ["user.delete", "user.create"]);
    let cursor: audit::AuditCursor = after.to_string().parse().unwrap();
    assert_eq!(cursor, after);
    assert!("nonsense".parse::<audit::AuditCursor>().is_err());
}
