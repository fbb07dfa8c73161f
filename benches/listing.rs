//! Listing and logging out at scale, on one node in this process: `GET …/ws/sessions` of
//! 100,000 sessions; the whole listing of 1,000,000 streamed, with the process's resident memory
//! sampled while it streams; and logout-all of one user among 1,000,000 sessions.
//! Usage: `cargo bench --bench listing [-- --sessions 1000000]`

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use uuid::Uuid;

const PATH: &str = "/rest/v1/master/logicalroles/ws/sessions";

/// Reads a whole listing; its size in items and bytes, and how long it took.
async fn get_all(http: &reqwest::Client, url: &str, token: &str) -> (usize, usize, Duration) {
    let started = Instant::now();
    let mut response = http.get(url).bearer_auth(token).send().await.expect("get");
    assert!(response.status().is_success(), "{}", response.status());
    let (mut bytes, mut items) = (0, 0);
    while let Some(chunk) = response.chunk().await.expect("chunk") {
        bytes += chunk.len();
        items += chunk.iter().filter(|b| **b == b'{').count();
    }
    (items, bytes, started.elapsed())
}

#[tokio::main]
async fn main() {
    let total = common::arg("--sessions", 1_000_000);
    let data = tempfile::tempdir().expect("temp dir");
    let nodes = common::start_site(1, data.path()).await;
    let node = &nodes[0];
    let base = format!("http://{}", node.api_addr);
    let http = reqwest::Client::new();
    let admin = common::admin_login(&http, &base).await;
    let token = admin["token"].as_str().expect("token").to_string();
    let admin_id: Uuid = admin["user_id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("uuid");
    let url = format!("{base}{PATH}");

    common::fill_sessions(node, 100_000).await;
    let mut times = Vec::new();
    for _ in 0..5 {
        let (items, bytes, took) = get_all(&http, &url, &token).await;
        assert!(items >= 100_000, "{items}");
        times.push((took, items, bytes));
    }
    times.sort();
    let (took, items, bytes) = times[2];
    println!(
        "GET all at 100,000 sessions: median {} ms of 5 ({items} items, {:.1} MiB)",
        common::ms(took),
        bytes as f64 / 1048576.0
    );

    let fill_started = Instant::now();
    common::fill_sessions(node, total).await;
    println!(
        "filled to {total} sessions in {:.1} s",
        fill_started.elapsed().as_secs_f64()
    );

    let sampling = Arc::new(AtomicBool::new(true));
    let peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (sampling, peak) = (sampling.clone(), peak.clone());
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max(common::rss_bytes(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let before = common::rss_bytes();
    peak.store(before, Ordering::Relaxed);
    let (items, bytes, took) = get_all(&http, &url, &token).await;
    sampling.store(false, Ordering::Relaxed);
    sampler.join().expect("sampler");
    let growth = peak.load(Ordering::Relaxed).saturating_sub(before);
    println!(
        "GET all at {total} sessions, streamed: {} ms, {items} items, {:.0} MiB of JSON; RSS {:.0} MiB before, peak growth {:.1} MiB",
        common::ms(took),
        bytes as f64 / 1048576.0,
        before as f64 / 1048576.0,
        growth as f64 / 1048576.0
    );

    let mut logouts = Vec::new();
    for _ in 0..20 {
        for _ in 0..10 {
            node.site
                .create_session(common::new_session(admin_id, "admin"))
                .await
                .expect("create");
        }
        let body = serde_json::json!({"action": "logout", "domain": "master.domain",
            "user": "admin"});
        let started = Instant::now();
        let answer = http
            .post(&url)
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .expect("logout");
        let took = started.elapsed();
        let answer: serde_json::Value = answer.json().await.expect("answer");
        assert_eq!(answer["closed"], 10, "{answer}");
        logouts.push(took);
    }
    logouts.sort_unstable();
    println!(
        "logout-all of one user (10 sessions) among {total}: p50 {} ms, max {} ms over 20 (client-side round trip)",
        common::ms(common::percentile(&logouts, 0.5)),
        common::ms(logouts.last().copied().unwrap_or_default())
    );
    for node in nodes {
        node.shutdown().await;
    }
}
