//! The token check on a follower: `GET /rest/v1/iam/sessions/current` with a session token,
//! sent to a node that does not lead its 3-node site (in this process, real HTTP, fsync on
//! every node). One client in a loop for the latency, then 64 at once for the throughput.
//! Usage: `cargo bench --bench token_check [-- --requests 20000 --seconds 5]`

mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

async fn check(http: &reqwest::Client, url: &str, token: &str) {
    let answer = http
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("answer");
    assert_eq!(answer.status().as_u16(), 200, "the token check failed");
    answer.bytes().await.expect("body");
}

#[tokio::main]
async fn main() {
    let requests = common::arg("--requests", 20_000) as usize;
    let seconds = common::arg("--seconds", 5);
    let data = tempfile::tempdir().expect("temp dir");
    let nodes = common::start_site(3, data.path()).await;
    let http = reqwest::Client::new();
    let admin = common::admin_login(&http, &format!("http://{}", nodes[0].api_addr)).await;
    let token = admin["token"].as_str().expect("token").to_string();
    let leader = loop {
        if let Some(leader) = nodes[0].site.group().metrics().current_leader {
            break leader;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let follower = nodes
        .iter()
        .find(|n| n.site.group().node_id() != leader)
        .expect("a follower");
    let url = format!("http://{}/rest/v1/iam/sessions/current", follower.api_addr);

    let mut latencies = Vec::with_capacity(requests);
    for round in 0..requests + 500 {
        let started = Instant::now();
        check(&http, &url, &token).await;
        if round >= 500 {
            latencies.push(started.elapsed());
        }
    }

    let done = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(seconds);
    let clients: Vec<_> = (0..64)
        .map(|_| {
            let (http, url, token, done) = (http.clone(), url.clone(), token.clone(), done.clone());
            tokio::spawn(async move {
                while Instant::now() < until {
                    check(&http, &url, &token).await;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for client in clients {
        client.await.expect("client");
    }
    let per_second = done.load(Ordering::Relaxed) as f64 / seconds as f64;

    println!(
        "token check at follower node {} (leader: node {leader}), {requests} in a row, then 64 clients for {seconds} s",
        follower.site.group().node_id()
    );
    println!("| what | p50 ms | p90 ms | p99 ms |");
    println!("|---|---:|---:|---:|");
    println!(
        "{}",
        common::quantile_row("GET current, one client", &mut latencies, 1e3, 3)
    );
    println!("checks/s with 64 clients: {per_second:.0}");
    for node in nodes {
        node.shutdown().await;
    }
}
