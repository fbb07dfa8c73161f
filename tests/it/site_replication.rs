//! A site of real `sessionplane` processes on 127.0.0.x: replication, leader loss, catch-up
//! from the log and from a snapshot, durability across kill -9, restart and expiry.

use crate::common;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{get, new_session, TestSite, Tuning};
use sessionplane::testing::{SiteAnswer, SiteCall};
use sessionplane::testing::{SiteQuery, SiteQueryReply};
use uuid::Uuid;

const HOUR_MS: u64 = 3_600_000;

async fn create_via(site: &TestSite, node: usize, user: Uuid) -> Uuid {
    let new = new_session(user, HOUR_MS);
    match site
        .propose(node, &SiteCall::create_session(new.clone()))
        .await
    {
        Ok(SiteAnswer::Session(s)) => {
            assert_eq!(s.session_id, new.session_id);
            s.session_id
        }
        other => panic!("create through node {node}: {other:?}\n{}", site.logs()),
    }
}

async fn counts(site: &TestSite, node: usize) -> (u64, u64) {
    match site.query(node, &SiteQuery::Counts).await {
        Ok(SiteQueryReply::Counts { live, stored }) => (live, stored),
        other => panic!("counts on node {node}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_session_written_through_any_node_is_read_through_every_node() {
    let site = TestSite::start(3, Tuning::default()).await;
    let user = Uuid::now_v7();
    let mut ids = Vec::new();
    for writer in 0..3 {
        ids.push(create_via(&site, writer, user).await);
    }
    for reader in 0..3 {
        for id in &ids {
            let found = get(&site, reader, *id)
                .await
                .unwrap_or_else(|| panic!("node {reader} misses {id}"));
            assert_eq!(found.user_id, user);
        }
        assert_eq!(counts(&site, reader).await, (3, 3));
    }
    let SiteAnswer::Deleted(deleted) = site
        .propose(
            1,
            &SiteCall::delete_user_sessions(
                "example.org",
                user,
                Some(ids[0]),
                sessionplane::testing::CloseReason::Logout,
            ),
        )
        .await
        .unwrap()
    else {
        panic!("delete answered something else")
    };
    assert_eq!(deleted.len(), 2);
    for reader in 0..3 {
        assert!(get(&site, reader, ids[0]).await.is_some());
        assert!(get(&site, reader, ids[1]).await.is_none());
        assert!(get(&site, reader, ids[2]).await.is_none());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_the_leader_elects_another_and_the_node_catches_up_on_restart() {
    let mut site = TestSite::start(3, Tuning::default()).await;
    let user = Uuid::now_v7();
    let before = create_via(&site, 0, user).await;
    let old_leader = site.wait_for_leader(Duration::from_secs(5)).await;

    site.kill(old_leader);
    let killed_at = Instant::now();
    let new_leader = site.wait_for_leader(Duration::from_secs(5)).await;
    let election = killed_at.elapsed();
    assert_ne!(new_leader, old_leader);
    assert!(
        election < Duration::from_secs(2),
        "new leader after {election:?}"
    );

    let survivor = (0..3).find(|i| *i != old_leader).unwrap();
    let mut during = Vec::new();
    for _ in 0..20 {
        during.push(create_via(&site, survivor, user).await);
    }

    site.restart(old_leader).await;
    for id in during.iter().chain([&before]) {
        assert!(
            get(&site, old_leader, *id).await.is_some(),
            "restarted node misses {id}"
        );
    }
    assert_eq!(counts(&site, old_leader).await, (21, 21));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_behind_the_purged_log_catches_up_from_a_snapshot() {
    let tuning = Tuning {
        raft: vec![
            "snapshot_every = 50".into(),
            "logs_kept_after_snapshot = 0".into(),
        ],
        ..Default::default()
    };
    let mut site = TestSite::start(3, tuning).await;
    let leader = site.wait_for_leader(Duration::from_secs(5)).await;
    let follower = (leader + 1) % 3;
    let user = Uuid::now_v7();
    create_via(&site, leader, user).await;
    let follower_last = site
        .status(follower)
        .await
        .and_then(|s| s.last_log_index)
        .unwrap_or(0);
    site.kill(follower);

    let mut written = Vec::new();
    for _ in 0..300 {
        written.push(create_via(&site, leader, user).await);
    }
    let purged = site
        .status(leader)
        .await
        .and_then(|s| s.purged_index)
        .unwrap_or(0);
    assert!(
        purged > follower_last,
        "the leader's log must be purged past the follower ({purged} <= {follower_last})"
    );

    site.restart(follower).await;
    for id in &written {
        assert!(
            get(&site, follower, *id).await.is_some(),
            "follower misses {id} after snapshot catch-up"
        );
    }
    let status = site.status(follower).await.expect("follower status");
    assert!(
        status.snapshot_index.is_some_and(|i| i >= purged),
        "follower installed no snapshot: {status:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_acknowledged_write_survives_repeated_leader_kills() {
    let mut site = TestSite::start(3, Tuning::default()).await;
    let site_peers = (site.peers.clone(), site.group.clone());
    let addrs: Vec<String> = (0..3).map(|i| site.cluster_addr(i)).collect();
    let acknowledged = Arc::new(Mutex::new(Vec::<Uuid>::new()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));

    let mut writers = Vec::new();
    for w in 0..4 {
        let (peers, group) = site_peers.clone();
        let addrs = addrs.clone();
        let acknowledged = acknowledged.clone();
        let stop = stop.clone();
        writers.push(tokio::spawn(async move {
            let user = Uuid::now_v7();
            let mut n = w;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let new = new_session(user, HOUR_MS);
                let call = SiteCall::create_session(new.clone());
                let addr = &addrs[n % addrs.len()];
                let answer = call
                    .propose(&peers, addr, &group, Duration::from_secs(3))
                    .await;
                if let Ok(Ok(SiteAnswer::Session(s))) = answer {
                    assert_eq!(s.session_id, new.session_id);
                    acknowledged.lock().unwrap().push(s.session_id);
                }
            }
        }));
    }

    for _round in 0..3 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let leader = site.wait_for_leader(Duration::from_secs(10)).await;
        site.kill(leader);
        site.wait_for_leader(Duration::from_secs(10)).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        site.restart(leader).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }

    let acknowledged: BTreeSet<Uuid> = acknowledged.lock().unwrap().iter().copied().collect();
    assert!(
        acknowledged.len() > 100,
        "the writers made too little progress: {}",
        acknowledged.len()
    );
    site.wait_formed(3, Duration::from_secs(20)).await;
    for node in 0..3 {
        let (_, stored) = counts(&site, node).await;
        assert!(
            stored >= acknowledged.len() as u64,
            "node {node} stores {stored} < {} acknowledged",
            acknowledged.len()
        );
        for id in &acknowledged {
            assert!(
                get(&site, node, *id).await.is_some(),
                "node {node} lost acknowledged session {id}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_restarted_single_node_keeps_every_session_from_snapshot_and_log() {
    let tuning = Tuning {
        raft: vec!["snapshot_every = 100".into()],
        ..Default::default()
    };
    let mut site = TestSite::start(1, tuning).await;
    let user = Uuid::now_v7();
    let mut ids = Vec::new();
    for _ in 0..250 {
        ids.push(create_via(&site, 0, user).await);
    }
    let before = site.status(0).await.expect("status");
    assert!(
        before.snapshot_index.is_some(),
        "a snapshot was expected after 250 entries"
    );
    assert!(
        before.last_log_index > before.snapshot_index,
        "entries after the snapshot were expected"
    );

    site.kill(0);
    site.restart(0).await;
    site.wait_for_leader(Duration::from_secs(10)).await;
    for id in &ids {
        assert!(
            get(&site, 0, *id).await.is_some(),
            "lost {id} across restart"
        );
    }
    assert_eq!(counts(&site, 0).await, (250, 250));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_session_vanishes_from_reads_and_is_purged() {
    let tuning = Tuning {
        sessions: vec!["purge_interval_ms = 100".into()],
        ..Default::default()
    };
    let site = TestSite::start(3, tuning).await;
    let new = new_session(Uuid::now_v7(), 1_000);
    let Ok(SiteAnswer::Session(created)) = site.propose(1, &SiteCall::create_session(new)).await
    else {
        panic!("create failed")
    };
    assert_eq!(created.expires_at_ms - created.created_at_ms, 1_000);
    assert!(get(&site, 2, created.session_id).await.is_some());

    let expiry = Duration::from_millis(
        created
            .expires_at_ms
            .saturating_sub(sessionplane_cluster::now_ms()),
    );
    tokio::time::sleep(expiry).await;
    for node in 0..3 {
        assert!(
            get(&site, node, created.session_id).await.is_none(),
            "node {node} still shows an expired session"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stored: Vec<u64> = futures_stored(&site).await;
        if stored.iter().all(|s| *s == 0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "expired session not purged: stored {stored:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn futures_stored(site: &TestSite) -> Vec<u64> {
    let mut stored = Vec::new();
    for node in 0..3 {
        stored.push(counts(site, node).await.1);
    }
    stored
}
