//! The token check under the read lease, on a real site of three nodes: a follower answers
//! token checks from its own copy, with no barrier per check; a revocation is acknowledged at
//! once when every node confirms it, and only after a silent node's lease has lapsed when one
//! does not, so that the cut-off node refuses the revoked token instead of taking it.

use crate::common;

use std::time::{Duration, Instant};

use common::net::Cut;
use common::{Api, TestSite, Tuning};
use prometheus_parse::{Scrape, Value};
use reqwest::Method;

const LEASE: Duration = Duration::from_millis(2000);
const CURRENT: &str = "/rest/v1/iam/sessions/current";

/// (token checks answered under the lease, read barriers completed) at `base`.
async fn reads(api: &Api, base: &str) -> (f64, f64) {
    let text = api.get(format!("{base}/metrics")).expect(200).await.text;
    let samples = Scrape::parse(text.lines().map(|l| Ok(l.to_string())))
        .expect("Prometheus text")
        .samples;
    let counter = |name: &str| {
        samples
            .iter()
            .find(|s| s.metric == name)
            .map(|s| match s.value {
                Value::Counter(v) | Value::Untyped(v) => v,
                _ => f64::NAN,
            })
            .unwrap_or_else(|| panic!("{name} is scraped"))
    };
    (
        counter("sessionplane_leased_reads_total"),
        counter("sessionplane_read_barriers_total"),
    )
}

/// A new session of the administrator: (id, token), once `node` takes its token.
async fn session_seen_by(api: &Api, site: &TestSite, at: usize, node: usize) -> (String, String) {
    let answer = api
        .login(
            &site.api_url(at),
            "master.domain",
            "admin",
            common::ADMIN_PASSWORD,
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    let id = answer.body["session_id"].as_str().expect("id").to_string();
    let token = answer.body["token"].as_str().expect("token").to_string();
    api.get(format!("{}{CURRENT}", site.api_url(node)))
        .as_(&token)
        .expect(200)
        .await;
    (id, token)
}

async fn kill(api: &Api, base: &str, admin: &str, id: &str) -> Duration {
    let started = Instant::now();
    api.delete(format!(
        "{base}/rest/v1/master/logicalroles/ws/sessions/{id}"
    ))
    .as_(admin)
    .expect(204)
    .await;
    started.elapsed()
}

async fn status_at(api: &Api, base: &str, token: &str) -> Option<u16> {
    api.try_call(Method::GET, format!("{base}{CURRENT}"), token)
        .await
        .map(|a| a.status)
}

#[tokio::test(flavor = "multi_thread")]
async fn token_checks_are_local_under_the_lease_and_a_kill_waits_out_a_silent_node() {
    let tuning = Tuning {
        raft: vec![format!("read_lease_ms = {}", LEASE.as_millis())],
        ..Tuning::default()
    };
    let site = TestSite::start(3, tuning).await;
    site.wait_for_admin(0).await;
    let leader = site.wait_for_leader(Duration::from_secs(10)).await;
    let (follower, third) = ((leader + 1) % 3, (leader + 2) % 3);
    let api = Api::default();
    let (leader_url, follower_url) = (site.api_url(leader), site.api_url(follower));
    let admin = api.admin_token(&leader_url).await;

    // 1. Steady state: the follower checks a token 200 times without a barrier per check.
    let (_, token) = session_seen_by(&api, &site, leader, follower).await;
    let (leased_before, barriers_before) = reads(&api, &follower_url).await;
    for _ in 0..200 {
        api.get(format!("{follower_url}{CURRENT}"))
            .as_(&token)
            .expect(200)
            .await;
    }
    let (leased_after, barriers_after) = reads(&api, &follower_url).await;
    assert!(
        leased_after - leased_before >= 200.0,
        "200 checks, {} of them under the lease",
        leased_after - leased_before
    );
    assert!(
        barriers_after - barriers_before < 100.0,
        "200 checks took {} barriers: a barrier per check",
        barriers_after - barriers_before
    );

    // 2. Every node up: a kill is acknowledged once all three applied it, well within the lease.
    let (id, token) = session_seen_by(&api, &site, leader, follower).await;
    let waited = kill(&api, &leader_url, &admin, &id).await;
    assert!(
        waited < LEASE * 3 / 4,
        "with every node confirming, the kill waited {waited:?}"
    );
    assert_eq!(status_at(&api, &follower_url, &token).await, Some(401));

    // 3. The follower cut off from the others (its lease still holds): the kill waits its lease
    //    out, and then the follower can no longer take the revoked token from its stale copy.
    let (id, token) = session_seen_by(&api, &site, leader, follower).await;
    let ip = |i: usize| format!("{}/32", site.nodes[i].api.ip());
    let cut = Cut::between(&[ip(follower)], &[ip(leader), ip(third)]);
    let waited = kill(&api, &leader_url, &admin, &id).await;
    let at_follower = status_at(&api, &follower_url, &token).await;
    assert!(
        waited >= LEASE,
        "the kill was acknowledged {waited:?} after the cut, inside the silent node's lease"
    );
    assert_ne!(
        at_follower,
        Some(200),
        "the cut-off follower took a token revoked and acknowledged"
    );
    assert_eq!(status_at(&api, &leader_url, &token).await, Some(401));
    drop(cut);
    let healed = Instant::now();
    loop {
        match status_at(&api, &follower_url, &token).await {
            Some(401) => break,
            Some(200) => panic!("the follower took the revoked token after the cut healed"),
            other => assert!(
                healed.elapsed() < Duration::from_secs(15),
                "the follower still answers {other:?}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
