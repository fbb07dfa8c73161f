//! Replicated session creates on a local site (real sockets, fsync on), at several proposer
//! counts. Usage: `cargo bench --bench site_create [-- --nodes 3 --seconds 5 --proposers 1,16,64,256 --via leader|all]`

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sessionplane::testing::NewSession;
use sessionplane::testing::SiteStore;
use uuid::Uuid;

struct Args {
    nodes: u64,
    seconds: u64,
    proposers: Vec<usize>,
    via_all: bool,
}

fn args() -> Args {
    let mut args = Args {
        nodes: 3,
        seconds: 5,
        proposers: vec![1, 16, 64, 256],
        via_all: false,
    };
    let raw: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < raw.len() {
        let value = raw.get(i + 1).cloned().unwrap_or_default();
        match raw[i].as_str() {
            "--nodes" => args.nodes = value.parse().expect("--nodes N"),
            "--seconds" => args.seconds = value.parse().expect("--seconds N"),
            "--proposers" => {
                args.proposers = value
                    .split(',')
                    .map(|p| p.parse().expect("--proposers 1,64"))
                    .collect()
            }
            "--via" => args.via_all = value == "all",
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    args
}

fn new_session(user: Uuid, n: usize) -> NewSession {
    NewSession {
        session_id: Uuid::now_v7(),
        user_id: user,
        login: format!("user{n:06}"),
        domain: "example.org".into(),
        lifetime_ms: 12 * 3_600_000,
        client_addr: Some([203, 0, 113, 45].into()),
        user_agent: Some(format!(
            "Mozilla/5.0 (X11; Linux x86_64) Firefox/{}.0",
            100 + n % 50
        )),
    }
}

async fn run_level(
    stores: &[SiteStore],
    proposers: usize,
    duration: Duration,
) -> (u64, Vec<Duration>, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for p in 0..proposers {
        let store = stores[p % stores.len()].clone();
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let user = Uuid::now_v7();
            let mut latencies = Vec::new();
            let mut errors = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                match store.create_session(new_session(user, p)).await {
                    Ok(_) => latencies.push(started.elapsed()),
                    Err(_) => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let mut errors = 0;
    for task in tasks {
        let (latencies, e) = task.await.expect("proposer");
        all.extend(latencies);
        errors += e;
    }
    let elapsed = started.elapsed();
    all.sort_unstable();
    let per_sec = (all.len() as f64 / elapsed.as_secs_f64()) as u64;
    (per_sec, all, errors)
}

#[tokio::main]
async fn main() {
    let args = args();
    let data = tempfile::tempdir().expect("temp dir");
    let nodes = common::start_site(args.nodes, data.path()).await;
    let leader = nodes
        .iter()
        .position(|n| n.site.group().is_leader())
        .expect("a leader");
    let stores: Vec<SiteStore> = if args.via_all {
        nodes.iter().map(|n| n.site.clone()).collect()
    } else {
        vec![nodes[leader].site.clone()]
    };
    let via = if args.via_all {
        "every node (followers forward)"
    } else {
        "the leader"
    };
    println!(
        "site of {} node(s), fsync on, proposing through {via}, {} s per level",
        args.nodes, args.seconds
    );
    run_level(&stores, 16, Duration::from_secs(1)).await;
    println!("| proposers | creates/s | p50 ms | p99 ms | max ms | errors |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for proposers in &args.proposers {
        let (per_sec, sorted, errors) =
            run_level(&stores, *proposers, Duration::from_secs(args.seconds)).await;
        println!(
            "| {proposers} | {per_sec} | {} | {} | {} | {errors} |",
            common::ms(common::percentile(&sorted, 0.50)),
            common::ms(common::percentile(&sorted, 0.99)),
            common::ms(sorted.last().copied().unwrap_or_default()),
        );
    }
    for node in nodes {
        node.shutdown().await;
    }
}
