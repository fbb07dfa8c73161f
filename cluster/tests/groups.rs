//! Several groups on the same nodes behind one cluster listener each: formed from a member list,
//! written through any node, read linearizably on every node, and independent of each other.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{tick, Counter, SLOW};
use sessionplane_cluster::{
    keep_membership, ClusterNode, ClusterOptions, Group, GroupId, Member, MemberList, PeerClient,
    RaftTuning,
};
use tokio::net::TcpListener;

const SECRET: &str = "groups-test-secret";

struct Node {
    cluster: ClusterNode,
    addr: String,
    groups: Vec<Group<Counter>>,
}

async fn start_nodes(n: u64, group_ids: &[GroupId], data: &std::path::Path) -> Vec<Node> {
    start_nodes_recorded(n, group_ids, data, &BTreeSet::new()).await
}

/// Like `start_nodes`, but the membership records an address nobody can dial for the nodes in
/// `hidden`: every node reaches them only through its own routes, as a node of another site
/// reaches a site's nodes through their WAN addresses.
async fn start_nodes_recorded(
    n: u64,
    group_ids: &[GroupId],
    data: &std::path::Path,
    hidden: &BTreeSet<u64>,
) -> Vec<Node> {
    let mut listeners = Vec::new();
    for _ in 0..n {
        listeners.push(TcpListener::bind("127.0.0.1:0").await.unwrap());
    }
    let addrs: Vec<String> = listeners
        .iter()
        .map(|l| l.local_addr().unwrap().to_string())
        .collect();
    let members: BTreeMap<u64, Member> = addrs
        .iter()
        .enumerate()
        .map(|(k, a)| {
            let id = k as u64 + 1;
            let addr = match hidden.contains(&id) {
                // TEST-NET-1: routed nowhere, like a site network seen from another site.
                true => format!("192.0.2.{id}:7000"),
                false => a.clone(),
            };
            (id, Member { addr })
        })
        .collect();
    let routes: BTreeMap<u64, String> = hidden
        .iter()
        .map(|id| (*id, addrs[*id as usize - 1].clone()))
        .collect();
    let mut nodes = Vec::new();
    for (k, listener) in listeners.into_iter().enumerate() {
        let id = k as u64 + 1;
        let cluster = ClusterNode::open(ClusterOptions {
            node_id: id,
            advertise: addrs[k].clone(),
            data_dir: data.join(format!("n{id}")),
            secret: SECRET.into(),
            tuning: RaftTuning::default(),
            source_address: None,
            routes: routes.clone(),
        })
        .unwrap();
        let mut groups = Vec::new();
        for (g, group_id) in group_ids.iter().enumerate() {
            let group = cluster
                .open_group(group_id.clone(), Counter::default())
                .await
                .unwrap();
            // Each group has its own seed, so leaders may differ between groups.
            let seed = (g as u64 % n) + 1;
            let wanted = MemberList {
                members: members.clone(),
                voters: members.keys().copied().collect(),
                seed,
            };
            tokio::spawn(keep_membership(group.clone(), wanted));
            groups.push(group);
        }
        let router = cluster.router();
        tokio::spawn(async move { axum::serve(listener, router).await });
        nodes.push(Node {
            cluster,
            addr: addrs[k].clone(),
            groups,
        });
    }
    for node in &nodes {
        for group in &node.groups {
            let formed = group
                .wait_until(Duration::from_secs(20), "formed", |m| {
                    m.current_leader.is_some()
                        && m.membership_config.membership().voter_ids().count() == n as usize
                })
                .await;
            assert!(
                formed,
                "group {} did not form on node {}",
                group.id(),
                node.cluster.node_id()
            );
        }
    }
    nodes
}

#[tokio::test(flavor = "multi_thread")]
async fn two_groups_share_nodes_and_listeners_but_not_state() {
    let data = tempfile::tempdir().unwrap();
    let ids = [
        GroupId::new("directory").unwrap(),
        GroupId::new("site:a").unwrap(),
    ];
    let nodes = start_nodes(3, &ids, data.path()).await;
    let peers = PeerClient::new(SECRET, None, Default::default()).unwrap();
    let timeout = Duration::from_secs(5);

    for i in 0..5 {
        let via = &nodes[i % 3].addr;
        let reply = peers
            .propose_as::<Counter>(via, &ids[0], &tick(), timeout)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(reply, i as u64 + 1);
    }
    for i in 0..2 {
        let via = &nodes[(i + 1) % 3].addr;
        peers
            .propose_as::<Counter>(via, &ids[1], &tick(), timeout)
            .await
            .unwrap()
            .unwrap();
    }
    // In-process handles too: a follower's propose is forwarded to that group's leader.
    let follower = nodes
        .iter()
        .find(|n| !n.groups[1].is_leader())
        .expect("a follower of site:a");
    follower.groups[1].propose(tick()).await.unwrap();

    for node in &nodes {
        let directory = peers
            .query_as::<Counter>(&node.addr, &ids[0], &(), timeout)
            .await
            .unwrap()
            .unwrap();
        let site = peers
            .query_as::<Counter>(&node.addr, &ids[1], &(), timeout)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((directory, site), (5, 3), "node {}", node.cluster.node_id());
        node.groups[1].read_barrier().await.unwrap();
        assert_eq!(node.groups[1].state().read(|c| c.0), 3);
    }
    let leaders: BTreeSet<Option<u64>> = ids
        .iter()
        .enumerate()
        .map(|(g, _)| nodes[0].groups[g].metrics().current_leader)
        .collect();
    assert_eq!(
        leaders.len(),
        2,
        "each group elected its own leader (its seed): {leaders:?}"
    );

    let unknown = GroupId::new("site:nowhere").unwrap();
    let refused = peers
        .query_as::<Counter>(&nodes[0].addr, &unknown, &(), timeout)
        .await;
    assert!(
        matches!(
            refused,
            Err(sessionplane_cluster::PeerError::Status { status: 404, .. })
        ),
        "{refused:?}"
    );
}

// Every node's apply of a slow command blocks a runtime thread: enough threads stay free.
#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_commands_share_entries_and_callers_that_give_up_free_their_slots() {
    let data = tempfile::tempdir().unwrap();
    let ids = [GroupId::new("site:a").unwrap()];
    let nodes = start_nodes(3, &ids, data.path()).await;
    let leader = nodes
        .iter()
        .map(|n| n.groups[0].clone())
        .find(|g| g.is_leader())
        .expect("a leader");
    let first_index = leader.metrics().last_log_index.unwrap_or(0);

    let callers: Vec<_> = (0..200)
        .map(|_| {
            let group = leader.clone();
            tokio::spawn(async move { group.propose(tick()).await })
        })
        .collect();
    let mut counts = BTreeSet::new();
    for caller in callers {
        let reply = tokio::time::timeout(Duration::from_secs(20), caller)
            .await
            .expect("every command answered");
        counts.insert(reply.unwrap().unwrap());
    }
    assert_eq!(counts, (1..=200).collect(), "each command applied once");
    let entries = leader.metrics().last_log_index.unwrap_or(0) - first_index;
    assert!(
        entries < 200,
        "200 concurrent commands took {entries} entries"
    );

    // Callers that stop waiting while their entry applies (slowly) must not keep its slot: with
    // both slots kept, nothing would ever leave again. One write alone first, so that the next
    // ones are lone commands, which leave at once.
    leader.propose(tick()).await.unwrap();
    for _ in 0..3 {
        let group = leader.clone();
        let caller = tokio::spawn(async move { group.propose(SLOW.into()).await });
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(!caller.is_finished(), "the slow command is still applying");
        caller.abort();
    }
    for _ in 0..10 {
        let answered = tokio::time::timeout(Duration::from_secs(5), leader.propose(tick()));
        answered.await.expect("a slot is free").unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_oversized_command_is_refused_before_it_reaches_the_log() {
    let data = tempfile::tempdir().unwrap();
    let ids = [GroupId::new("site:a").unwrap()];
    let nodes = start_nodes(1, &ids, data.path()).await;
    let before = nodes[0].groups[0].metrics().last_log_index;
    let huge = "x".repeat(sessionplane_cluster::MAX_COMMAND_BYTES + 1);
    let refused = nodes[0].groups[0].propose(huge).await;
    assert!(
        matches!(
            refused,
            Err(sessionplane_cluster::ClusterError::CommandTooLarge { .. })
        ),
        "{refused:?}"
    );
    assert_eq!(nodes[0].groups[0].metrics().last_log_index, before);
}

#[tokio::test(flavor = "multi_thread")]
async fn members_recorded_at_addresses_a_node_cannot_dial_are_reached_through_its_routes() {
    let data = tempfile::tempdir().unwrap();
    let ids = [GroupId::new("directory").unwrap()];
    let hidden: BTreeSet<u64> = [1, 2].into();
    let nodes = start_nodes_recorded(3, &ids, data.path(), &hidden).await;
    let status = nodes[2].groups[0].status().await;
    assert_eq!(status.members.get(&1), Some(&nodes[0].addr), "{status:?}");
    assert_eq!(status.members.get(&2), Some(&nodes[1].addr), "{status:?}");

    // The seed leads; node 3's write is forwarded to it through node 3's route.
    nodes[2].groups[0].propose(tick()).await.unwrap();
    // Without the leader, node 3 and node 2 must elect one of them: whichever wins, node 3 dials
    // node 2 (a vote, an append or a forwarded write) only through its route.
    nodes[0].groups[0].shutdown().await;
    let elected = nodes[2].groups[0]
        .wait_until(Duration::from_secs(20), "a new leader", |m| {
            matches!(m.current_leader, Some(2) | Some(3))
        })
        .await;
    assert!(elected, "{:?}", nodes[2].groups[0].metrics());
    let reply = nodes[2].groups[0].propose(tick()).await.unwrap();
    assert_eq!(reply, 2);
}
