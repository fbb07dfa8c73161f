//! Fan-out overhead, on three sites of one node each in this process (loopback): a listing of
//! all sites against the slowest site's own listing, and logout-all across the three sites.
//! Usage: `cargo bench --bench federation [-- --sessions 1000 --rounds 200]`

mod common;

use std::time::{Duration, Instant};

use sessionplane::testing::RunningNode;
use uuid::Uuid;

const PATH: &str = "/rest/v1/master/logicalroles/ws/sessions";
const SITES: [&str; 3] = ["central", "east", "west"];

async fn fill(node: &RunningNode, sessions: u64) {
    let mut tasks = Vec::new();
    for worker in 0..64 {
        let site = node.site.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = worker;
            while i < sessions {
                let user = Uuid::now_v7();
                site.create_session(common::new_session(user, &format!("user{i}")))
                    .await
                    .expect("create");
                i += 64;
            }
        }));
    }
    for task in tasks {
        task.await.expect("filler");
    }
}

/// GETs a whole listing; the time until its last byte.
async fn timed_get(http: &reqwest::Client, url: &str, token: &str) -> Duration {
    let started = Instant::now();
    let response = http.get(url).bearer_auth(token).send().await.expect("get");
    assert!(response.status().is_success(), "{}", response.status());
    let body = response.bytes().await.expect("body");
    assert!(body.len() > 2);
    started.elapsed()
}

fn summary(label: &str, samples: &mut [Duration]) {
    samples.sort();
    println!(
        "{label:<44} median {:>7} ms   p99 {:>7} ms",
        common::ms(common::percentile(samples, 0.5)),
        common::ms(common::percentile(samples, 0.99))
    );
}

#[tokio::main]
async fn main() {
    let sessions = common::arg("--sessions", 1_000);
    let rounds = common::arg("--rounds", 200) as usize;
    let data = tempfile::tempdir().expect("temp dir");
    let nodes = common::start_sites(&SITES, data.path()).await;
    let http = reqwest::Client::new();
    let mut tokens = Vec::new();
    let mut admin_id = Uuid::nil();
    for node in &nodes {
        let login = common::admin_login(&http, &format!("http://{}", node.api_addr)).await;
        tokens.push(login["token"].as_str().expect("token").to_string());
        admin_id = login["user_id"]
            .as_str()
            .and_then(|id| Uuid::try_parse(id).ok())
            .expect("user id");
    }
    for node in &nodes {
        fill(node, sessions).await;
    }
    println!(
        "3 sites × 1 node, {sessions} sessions per site, {rounds} rounds, loopback, release build"
    );
    let urls: Vec<String> = nodes
        .iter()
        .map(|n| format!("http://{}{PATH}", n.api_addr))
        .collect();
    let all_url = format!("{}?sites=all", urls[0]);
    for _ in 0..20 {
        timed_get(&http, &all_url, &tokens[0]).await;
    }
    // The sites' own listings one after the other (each alone on the machine), and all three
    // at once (sharing its cores, as the sites' parts of a fan-out do here).
    let mut slowest_alone = Vec::new();
    let mut slowest_together = Vec::new();
    let mut all = Vec::new();
    let mut over_alone = Vec::new();
    let mut over_together = Vec::new();
    for _ in 0..rounds {
        let mut alone = Duration::ZERO;
        for (k, url) in urls.iter().enumerate() {
            alone = alone.max(timed_get(&http, &format!("{url}?sites=current"), &tokens[k]).await);
        }
        let own_urls: Vec<String> = urls.iter().map(|u| format!("{u}?sites=current")).collect();
        let together = futures_util::future::join_all(
            own_urls
                .iter()
                .zip(&tokens)
                .map(|(url, token)| timed_get(&http, url, token)),
        )
        .await
        .into_iter()
        .max()
        .unwrap_or_default();
        let whole = timed_get(&http, &all_url, &tokens[0]).await;
        slowest_alone.push(alone);
        slowest_together.push(together);
        all.push(whole);
        over_alone.push(whole.saturating_sub(alone));
        over_together.push(whole.saturating_sub(together));
    }
    summary("list: slowest site's own, each alone", &mut slowest_alone);
    summary(
        "list: slowest site's own, all three at once",
        &mut slowest_together,
    );
    summary("list: sites=all from one node", &mut all);
    summary("list: overhead vs slowest alone", &mut over_alone);
    summary("list: overhead vs slowest at once", &mut over_together);

    // Each round, the administrator has one more session at every site, which the logout ends
    // (all but the session it asks with).
    let mut logouts = Vec::new();
    let body = serde_json::json!({"action": "logout", "domain": "master.domain",
        "user": "admin", "sites": "all"});
    for _ in 0..rounds {
        for node in &nodes {
            node.site
                .create_session(common::new_session(admin_id, "admin"))
                .await
                .expect("create");
        }
        let started = Instant::now();
        let answer = http
            .post(&urls[0])
            .bearer_auth(&tokens[0])
            .json(&body)
            .send()
            .await
            .expect("logout");
        assert!(answer.status().is_success(), "{}", answer.status());
        let closed: serde_json::Value = answer.json().await.expect("body");
        logouts.push(started.elapsed());
        // The first round also ends the logins that got the other sites' tokens.
        assert!(closed["closed"].as_u64() >= Some(3), "{closed}");
    }
    summary("logout sites=all (3 sites)", &mut logouts);
    for node in nodes {
        node.shutdown().await;
    }
}
