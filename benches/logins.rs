//! Password logins per second with the production argon2id parameters, and how responsive the
//! node stays meanwhile: one client keeps asking `GET /rest/v1/iam/sessions/current` while the
//! others log in as fast as the hash pool allows, each as a user of its own (one account takes
//! at most five password checks at once: the login ban reserves each check before it is made).
//! Usage: `cargo bench --bench logins [-- --seconds 10 --clients 8]`

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

const USER_PASSWORD: &str = "bench-user-password-1";

async fn login(http: &reqwest::Client, base: &str, user: &str) -> Option<String> {
    let (login, domain, pwd) = match user {
        "admin" => ("admin", "master.domain", common::ADMIN_PASSWORD),
        user => (user, "bench.test", USER_PASSWORD),
    };
    let body = json!({"domain": domain, "login": login, "pwd": pwd, "session_type": "token"});
    let response = http
        .post(format!("{base}/rest/v1/iam/sessions"))
        .json(&body)
        .send()
        .await
        .ok()?;
    if !response.status().is_success() {
        return None;
    }
    let value: serde_json::Value = response.json().await.ok()?;
    value["token"].as_str().map(str::to_string)
}

#[tokio::main]
async fn main() {
    let seconds = common::arg("--seconds", 10);
    let clients = common::arg("--clients", 8);
    let data = tempfile::tempdir().expect("temp dir");
    let nodes = common::start_site(1, data.path()).await;
    let base = format!("http://{}", nodes[0].api_addr);
    let http = reqwest::Client::new();
    let token = loop {
        if let Some(token) = login(&http, &base, "admin").await {
            break token;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());

    let stop = Arc::new(AtomicBool::new(false));
    let logins = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let domain = http
        .put(format!("{base}/domains/bench.test"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("create the bench domain");
    assert!(domain.status().is_success(), "domain: {}", domain.status());
    for k in 0..clients {
        let created = http
            .put(format!("{base}/users/user{k}@bench.test"))
            .bearer_auth(&token)
            .json(&json!({"password": USER_PASSWORD}))
            .send()
            .await
            .expect("create a bench user");
        assert!(created.status().is_success(), "user: {}", created.status());
    }
    let mut tasks = Vec::new();
    for k in 0..clients {
        let user = format!("user{k}");
        let (http, base, stop, logins, failures) = (
            http.clone(),
            base.clone(),
            stop.clone(),
            logins.clone(),
            failures.clone(),
        );
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match login(&http, &base, &user).await {
                    Some(_) => logins.fetch_add(1, Ordering::Relaxed),
                    None => failures.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    let probe = {
        let (http, base, stop) = (http.clone(), base.clone(), stop.clone());
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let response = http
                    .get(format!("{base}/rest/v1/iam/sessions/current"))
                    .bearer_auth(&token)
                    .send()
                    .await;
                if response.is_ok_and(|r| r.status().is_success()) {
                    latencies.push(started.elapsed());
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            latencies
        })
    };
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut latencies = probe.await.expect("probe");
    latencies.sort_unstable();
    let per_sec = logins.load(Ordering::Relaxed) as f64 / elapsed;
    println!("argon2id m=19456 KiB t=2 p=1, {clients} login clients, {cores} cores, {seconds} s");
    println!("| logins/s | per core | failures | GET current p50 ms | p99 ms | max ms | samples |");
    println!("|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {per_sec:.1} | {:.1} | {} | {} | {} | {} | {} |",
        per_sec / cores as f64,
        failures.load(Ordering::Relaxed),
        common::ms(common::percentile(&latencies, 0.50)),
        common::ms(common::percentile(&latencies, 0.99)),
        common::ms(latencies.last().copied().unwrap_or_default()),
        latencies.len(),
    );
    for node in nodes {
        node.shutdown().await;
    }
}
