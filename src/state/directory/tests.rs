//! The directory state machine, driven command by command.

use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::state::decode;

fn run(state: &mut DirectoryState, command: DirectoryCommand) -> DirectoryReply {
    state.apply(
        sessionplane_cluster::Applying {
            at_ms: 7,
            log_index: 0,
        },
        command,
    )
}

fn new_user(domain: &str, login: &str) -> NewUser {
    NewUser {
        user_id: Uuid::now_v7(),
        domain: domain.parse().unwrap(),
        login: login.parse().unwrap(),
        password_hash: "$argon2id$stub".into(),
        properties: BTreeMap::new(),
    }
}

fn master() -> DomainName {
    "master.domain".parse().unwrap()
}

#[test]
fn ended_access_is_recorded_in_order_kept_a_week_and_snapshotted() {
    let mut state = DirectoryState::default();
    run(
        &mut state,
        DirectoryCommand::CreateDomain("d.example".parse().unwrap()),
    );
    let (a, b) = (new_user("d.example", "a"), new_user("d.example", "b"));
    run(&mut state, DirectoryCommand::CreateUser(a.clone()));
    run(&mut state, DirectoryCommand::CreateUser(b.clone()));
    let keep = Uuid::now_v7();
    let at = |state: &mut DirectoryState, ms: u64, command: DirectoryCommand| {
        state.apply(
            sessionplane_cluster::Applying {
                at_ms: ms,
                log_index: 0,
            },
            command,
        )
    };
    let enable = |id, disabled| DirectoryCommand::UpdateUser {
        user_id: id,
        properties: Default::default(),
        disabled: Some(disabled),
    };
    at(&mut state, 10, enable(a.user_id, false));
    assert!(
        state.revocations_after(0).is_empty(),
        "enabling ends nothing"
    );
    at(&mut state, 20, enable(a.user_id, true));
    let password = DirectoryCommand::SetPassword {
        user_id: b.user_id,
        password_hash: "$argon2id$other".into(),
        keep_session: Some(keep),
    };
    at(&mut state, 30, password);
    at(
        &mut state,
        40,
        DirectoryCommand::DeleteUsers(vec![a.user_id]),
    );
    let all = state.revocations_after(0);
    let seen: Vec<(u64, Uuid, Option<Uuid>, CloseReason)> = all
        .iter()
        .map(|r| (r.seq, r.user_id, r.except, r.reason))
        .collect();
    assert_eq!(
        seen,
        vec![
            (1, a.user_id, None, CloseReason::UserDisabled),
            (2, b.user_id, Some(keep), CloseReason::Revoked),
            (3, a.user_id, None, CloseReason::UserDisabled),
        ]
    );
    assert_eq!(all[1].username, "b@d.example");
    assert_eq!(state.revocations_after(2).len(), 1);
    let restored = state.restore(&state.snapshot()()).unwrap();
    assert_eq!(restored.revocations_after(0), all);
    // A week later the old ones are forgotten as a new one is recorded.
    at(
        &mut state,
        40 + KEEP_REVOCATIONS_MS,
        enable(b.user_id, true),
    );
    let left: Vec<u64> = state.revocations_after(0).iter().map(|r| r.seq).collect();
    assert_eq!(left, vec![4]);
}

#[test]
fn bootstrap_happens_once_and_makes_a_global_admin() {
    let mut state = DirectoryState::default();
    let admin = new_user("master.domain", "admin");
    let bootstrap = DirectoryCommand::Bootstrap {
        master_domain: master(),
        admin: admin.clone(),
    };
    assert_eq!(
        run(&mut state, bootstrap.clone()),
        DirectoryReply::Bootstrapped { created: true }
    );
    let again = DirectoryCommand::Bootstrap {
        master_domain: master(),
        admin: new_user("master.domain", "admin"),
    };
    assert_eq!(
        run(&mut state, again),
        DirectoryReply::Bootstrapped { created: false }
    );
    let user = state.user(&admin.user_id).unwrap();
    assert_eq!(user.created_at_ms, 7);
    assert_eq!(state.admin_scope(user, &master()), Some(AdminScope::Global));
}

#[test]
fn domain_admins_administer_their_domain_only() {
    let mut state = DirectoryState::default();
    run(
        &mut state,
        DirectoryCommand::CreateDomain("d.org".parse().unwrap()),
    );
    let alice = new_user("d.org", "alice");
    run(&mut state, DirectoryCommand::CreateUser(alice.clone()));
    let bob = new_user("d.org", "bob");
    run(&mut state, DirectoryCommand::CreateUser(bob.clone()));
    run(
        &mut state,
        DirectoryCommand::CreateGroup {
            domain: "d.org".parse().unwrap(),
            name: "admins".parse().unwrap(),
            members: BTreeSet::from([alice.user_id]),
            properties: BTreeMap::new(),
        },
    );
    let alice = state.user(&alice.user_id).unwrap();
    let scope = state.admin_scope(alice, &master()).unwrap();
    assert!(scope.covers(&"d.org".parse().unwrap()));
    assert!(!scope.covers(&master()));
    assert_eq!(
        state.admin_scope(state.user(&bob.user_id).unwrap(), &master()),
        None
    );
}

#[test]
fn logins_are_unique_per_domain_and_domains_must_exist() {
    let mut state = DirectoryState::default();
    let orphan = run(
        &mut state,
        DirectoryCommand::CreateUser(new_user("nope", "a")),
    );
    assert!(matches!(orphan, DirectoryReply::NotFound(_)));
    run(
        &mut state,
        DirectoryCommand::CreateDomain("d".parse().unwrap()),
    );
    run(
        &mut state,
        DirectoryCommand::CreateDomain("e".parse().unwrap()),
    );
    assert!(matches!(
        run(
            &mut state,
            DirectoryCommand::CreateDomain("D".parse().unwrap())
        ),
        DirectoryReply::Conflict(_)
    ));
    run(&mut state, DirectoryCommand::CreateUser(new_user("d", "a")));
    assert!(matches!(
        run(&mut state, DirectoryCommand::CreateUser(new_user("d", "a"))),
        DirectoryReply::Conflict(_)
    ));
    assert!(matches!(
        run(&mut state, DirectoryCommand::CreateUser(new_user("e", "a"))),
        DirectoryReply::User(_)
    ));
    assert!(matches!(
        run(
            &mut state,
            DirectoryCommand::DeleteDomain("d".parse().unwrap())
        ),
        DirectoryReply::Conflict(_)
    ));
}

#[test]
fn deleting_users_is_all_or_nothing_and_leaves_their_groups() {
    let mut state = DirectoryState::default();
    let d: DomainName = "d".parse().unwrap();
    run(&mut state, DirectoryCommand::CreateDomain(d.clone()));
    let a = new_user("d", "a");
    run(&mut state, DirectoryCommand::CreateUser(a.clone()));
    run(
        &mut state,
        DirectoryCommand::CreateGroup {
            domain: d.clone(),
            name: "g".parse().unwrap(),
            members: BTreeSet::from([a.user_id]),
            properties: BTreeMap::new(),
        },
    );
    let partial = DirectoryCommand::DeleteUsers(vec![a.user_id, Uuid::now_v7()]);
    assert!(matches!(
        run(&mut state, partial),
        DirectoryReply::NotFound(_)
    ));
    assert!(state.user(&a.user_id).is_some());
    let DirectoryReply::Deleted(gone) =
        run(&mut state, DirectoryCommand::DeleteUsers(vec![a.user_id]))
    else {
        panic!()
    };
    assert_eq!(gone.len(), 1);
    assert!(state.user_by_login(&d, &"a".parse().unwrap()).is_none());
    let group = state.group(&d, &"g".parse().unwrap()).unwrap();
    assert!(group.members.is_empty());
    assert!(matches!(
        run(&mut state, DirectoryCommand::DeleteDomain(d.clone())),
        DirectoryReply::Conflict(_)
    ));
}

#[test]
fn groups_take_members_of_their_own_domain_only() {
    let mut state = DirectoryState::default();
    run(
        &mut state,
        DirectoryCommand::CreateDomain("d".parse().unwrap()),
    );
    run(
        &mut state,
        DirectoryCommand::CreateDomain("e".parse().unwrap()),
    );
    let stranger = new_user("e", "x");
    run(&mut state, DirectoryCommand::CreateUser(stranger.clone()));
    let reply = run(
        &mut state,
        DirectoryCommand::CreateGroup {
            domain: "d".parse().unwrap(),
            name: "g".parse().unwrap(),
            members: BTreeSet::from([stranger.user_id]),
            properties: BTreeMap::new(),
        },
    );
    assert!(matches!(reply, DirectoryReply::NotFound(m) if m.contains("not of domain")));
}

#[test]
fn properties_set_and_delete_and_snapshot_round_trips() {
    let mut state = DirectoryState::default();
    run(
        &mut state,
        DirectoryCommand::CreateDomain("d".parse().unwrap()),
    );
    let a = new_user("d", "a");
    run(&mut state, DirectoryCommand::CreateUser(a.clone()));
    let set = PropertyChanges::from([
        ("k".to_string(), Some("v".to_string())),
        ("x".to_string(), Some("y".to_string())),
    ]);
    run(
        &mut state,
        DirectoryCommand::UpdateUser {
            user_id: a.user_id,
            properties: set,
            disabled: Some(true),
        },
    );
    let unset = PropertyChanges::from([("x".to_string(), None)]);
    run(
        &mut state,
        DirectoryCommand::UpdateUser {
            user_id: a.user_id,
            properties: unset,
            disabled: None,
        },
    );
    let user = state.user(&a.user_id).unwrap();
    assert_eq!(user.properties.len(), 1);
    assert!(user.disabled);
    let bytes = (state.snapshot())();
    let restored = state.restore(&bytes).unwrap();
    assert_eq!(restored.user(&a.user_id), state.user(&a.user_id));
    assert!(restored
        .user_by_login(&"d".parse().unwrap(), &"a".parse().unwrap())
        .is_some());
    assert!(state.restore(b"garbage").is_err());
    let error = decode::<DirectoryCommand>(b"\xff\x00").unwrap_err();
    assert!(matches!(
        DirectoryState::undecodable_command(error.to_string()),
        DirectoryReply::Invalid(_)
    ));
}

#[test]
fn audited_changes_keep_their_event_in_the_outbox_per_site_and_snapshotted() {
    use crate::model::audit::{Actor, NewAuditEvent, Outcome};
    let mut state = DirectoryState::default();
    let event =
        |site: &str| NewAuditEvent::new(site, "n1@h", Actor::None, "domain.create", "d.example");
    let audited = |site: &str| DirectoryCommand::Audited {
        event: Box::new(event(site)),
        command: Box::new(DirectoryCommand::CreateDomain("d.example".parse().unwrap())),
    };
    assert!(matches!(
        run(&mut state, audited("central")),
        DirectoryReply::Domain(_)
    ));
    assert!(matches!(
        run(&mut state, audited("east")),
        DirectoryReply::Conflict(_)
    ));
    let central = state.audit_outbox_after(0, "central");
    assert_eq!(central.len(), 1);
    assert_eq!(central[0].event.outcome, Outcome::Ok);
    let east = state.audit_outbox_after(0, "east");
    assert_eq!((east[0].seq, east[0].event.outcome), (2, Outcome::Failed));
    assert!(state.audit_outbox_after(2, "east").is_empty());
    let mut bad = event("central");
    bad.details = serde_json::json!(null);
    let refused = DirectoryCommand::Audited {
        event: Box::new(bad),
        command: Box::new(DirectoryCommand::CreateDomain("e.example".parse().unwrap())),
    };
    assert!(matches!(
        run(&mut state, refused),
        DirectoryReply::Invalid(_)
    ));
    assert!(
        state.domain(&"e.example".parse().unwrap()).is_none(),
        "fail closed"
    );
    let restored = state.restore(&(state.snapshot())()).unwrap();
    assert_eq!(restored.audit_outbox_after(0, "east"), east);
    let mut later = restored.clone();
    let reply = later.apply(
        sessionplane_cluster::Applying {
            at_ms: 7 + audit_outbox::KEEP_AUDIT_OUTBOX_MS,
            log_index: 0,
        },
        DirectoryCommand::Audited {
            event: Box::new(event("central")),
            command: Box::new(DirectoryCommand::CreateDomain("f.example".parse().unwrap())),
        },
    );
    assert!(matches!(reply, DirectoryReply::Domain(_)));
    assert!(
        later.audit_outbox_after(0, "east").is_empty(),
        "forgotten after a week"
    );
    assert_eq!(later.audit_outbox_after(0, "central").len(), 1);
}
