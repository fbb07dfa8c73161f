//! Containment of one account across two sites of three nodes each, as real processes with
//! real clients (the integration tests' deployment): each round the user logs in 10 sessions
//! spread over the six nodes, opens 4 websockets (two per site) and 4 IMAP channels (two per
//! site), then one `POST /rest/v1/incidents` contains them. Timed: from the call to the
//! complete receipt, and from the call to the last client socket closed (the websocket's or the
//! IMAP connection's end of stream). The lock is lifted before the next round.
//!
//! `--others N` first fills each site with N sessions of other users, and `--background R`
//! keeps R replicated creates per second going (half per site) while the rounds run.
//!
//! Usage: `cargo bench --bench contain [-- --rounds 200 --others 1000000 --background 2000]`
//! Logins use cheap argon2 parameters (64 KiB, 1 pass) so that setting up 18 holdings a round
//! does not dominate the run; containment does not hash passwords.

mod common;
#[path = "../tests/it/common/mod.rs"]
#[allow(unused_imports)]
mod deployment;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use deployment::sites::{central_and_east, quick_federation};
use deployment::ws::{self, Auth, Socket};
use deployment::{add_user, new_session, Api, TestSite};
use futures_util::StreamExt;
use serde_json::{json, Value};
use sessionplane::testing::SiteCall;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const PASSWORD: &str = "bench-user-password-1";
/// Websocket opens a node refused with 503 (then tried again), and the first refusal's logs.
static REFUSED_OPENS: AtomicU64 = AtomicU64::new(0);
const WAIT: Duration = Duration::from_secs(10);

fn tuning() -> deployment::Tuning {
    let mut tuning = quick_federation();
    tuning.mail = vec!["allow_plaintext_auth = true".into()];
    tuning.iam = [
        "max_login_failures = 1000000",
        "[iam.argon2]",
        "memory_kib = 64",
        "iterations = 1",
        "parallelism = 1",
    ]
    .map(String::from)
    .to_vec();
    tuning.log_filter = Some("warn".into());
    tuning
}

/// The api of every node, central's first.
fn apis(central: &TestSite, east: &TestSite) -> Vec<String> {
    (0..3)
        .map(|i| central.api_url(i))
        .chain((0..3).map(|i| east.api_url(i)))
        .collect()
}

async fn token(api: &Api, base: &str) -> String {
    for _ in 0..50 {
        let answer = api.login(base, "example.org", "bob", PASSWORD).await;
        if answer.status == 200 {
            return answer.body["token"].as_str().expect("token").to_string();
        }
        // The lock's lifting may still be on its way to this site.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("bob could not log in at {base}");
}

async fn imap_login(addr: SocketAddr) -> BufReader<TcpStream> {
    let mut client = BufReader::new(TcpStream::connect(addr).await.expect("connect"));
    let mut line = String::new();
    client.read_line(&mut line).await.expect("greeting");
    assert!(line.starts_with("* OK"), "{line}");
    client
        .get_mut()
        .write_all(format!("a1 LOGIN bob@example.org {PASSWORD}\r\n").as_bytes())
        .await
        .expect("send");
    loop {
        line.clear();
        client.read_line(&mut line).await.expect("answer");
        if line.starts_with("a1 ") {
            assert!(line.starts_with("a1 OK"), "{line}");
            return client;
        }
    }
}

/// A websocket on `base`; a 503 (the node could not confirm the session in time) is counted,
/// its first occurrence shown with the nodes' warnings, and tried again.
async fn open(base: &str, token: &str, central: &TestSite, east: &TestSite) -> Socket {
    for _ in 0..5 {
        match ws::try_open(base, token, Auth::Bearer).await {
            Ok(socket) => return socket,
            Err(status) => {
                if REFUSED_OPENS.fetch_add(1, Ordering::Relaxed) == 0 {
                    let logs = format!("{}{}", central.logs(), east.logs());
                    let tail: Vec<&str> = logs.lines().rev().take(40).collect();
                    eprintln!("a websocket open at {base} was refused with {status}; the nodes' last lines:");
                    for line in tail.iter().rev() {
                        eprintln!("{line}");
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    panic!("websocket opens at {base} kept being refused");
}

/// When the server ends the socket: after its Close frame, the end of the stream.
async fn ws_closed(mut socket: Socket) -> Instant {
    loop {
        match tokio::time::timeout(WAIT, socket.next()).await {
            Ok(Some(Ok(_))) => continue,
            Ok(_) => return Instant::now(),
            Err(_) => panic!("a websocket was not closed within {WAIT:?}"),
        }
    }
}

async fn imap_closed(mut client: BufReader<TcpStream>) -> Instant {
    let mut line = String::new();
    loop {
        line.clear();
        match tokio::time::timeout(WAIT, client.read_line(&mut line)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return Instant::now(),
            Ok(Ok(_)) => continue,
            Err(_) => panic!("an IMAP channel was not closed within {WAIT:?}"),
        }
    }
}

struct Holdings {
    closes: Vec<tokio::task::JoinHandle<Instant>>,
}

/// 10 sessions round the six nodes, websockets on c1, c2, e2, e3 and IMAP on c3, c1, e1, e3,
/// each one's close watched from now on.
async fn hold(api: &Api, central: &TestSite, east: &TestSite) -> Holdings {
    let nodes = apis(central, east);
    let mut tokens = Vec::new();
    for k in 0..10 {
        tokens.push(token(api, &nodes[k % 6]).await);
    }
    let mut closes = Vec::new();
    for (node, k) in [(0, 0), (1, 1), (4, 4), (5, 5)] {
        let mut socket = open(&nodes[node], &tokens[k], central, east).await;
        ws::ping(&mut socket).await;
        closes.push(tokio::spawn(ws_closed(socket)));
    }
    for addr in [
        central.nodes[2].imap,
        central.nodes[0].imap,
        east.nodes[0].imap,
        east.nodes[2].imap,
    ] {
        let client = imap_login(addr).await;
        closes.push(tokio::spawn(imap_closed(client)));
    }
    Holdings { closes }
}

fn total(receipt: &Value, key: &str) -> u64 {
    ["central", "east"]
        .iter()
        .map(|site| receipt["sites"][site][key].as_u64().unwrap_or(0))
        .sum()
}

/// One round: the holdings, the contain, the closes; (to the receipt, to the last close).
async fn round(
    api: &Api,
    admin: &str,
    central: &TestSite,
    east: &TestSite,
) -> (Duration, Duration) {
    let held = hold(api, central, east).await;
    let base = central.api_url(0);
    let started = Instant::now();
    let answer = api
        .post(format!("{base}/rest/v1/incidents"))
        .as_(admin)
        .body(json!({
            "user": "bob@example.org", "sites": "all", "reason": "benchmark",
            "lock": {"message": "locked by the benchmark", "ttl": "1h"},
        }))
        .expect(200)
        .await
        .body;
    let to_receipt = started.elapsed();
    assert_eq!(answer["complete"], true, "{answer}");
    assert_eq!(total(&answer, "sessions_ended"), 10, "{answer}");
    assert_eq!(total(&answer, "websockets_closed"), 4, "{answer}");
    assert_eq!(total(&answer, "channels_closed"), 4, "{answer}");
    let mut last = started;
    for close in held.closes {
        last = last.max(close.await.expect("a watcher"));
    }
    let to_last_close = last - started;
    let lock = answer["lock_id"].as_str().expect("a lock id");
    let lifted = api
        .call(
            reqwest::Method::DELETE,
            format!("{base}/rest/v1/locks/{lock}"),
            Some(admin),
            None,
        )
        .await;
    assert!(lifted.status < 300, "{}", lifted.text);
    (to_receipt, to_last_close)
}

/// Creates `count` sessions of other users in `site`, 64 at a time through its leader.
async fn fill(site: Arc<TestSite>, count: u64) {
    let leader = site.wait_for_leader(Duration::from_secs(30)).await;
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..64 {
        let (site, next) = (site.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < count {
                let user = uuid::Uuid::now_v7();
                let call = SiteCall::create_session(new_session(user, 12 * 3_600_000));
                site.propose(leader, &call).await.expect("a create");
            }
        }));
    }
    for worker in workers {
        worker.await.expect("a filler");
    }
}

/// `per_second` creates in `site`, paced in 10 ms ticks, until `stop`.
async fn background(site: Arc<TestSite>, per_second: u64, stop: Arc<AtomicBool>) -> u64 {
    let leader = site.wait_for_leader(Duration::from_secs(30)).await;
    let per_tick = per_second.div_ceil(100);
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    let mut made = 0;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let creates = (0..per_tick).map(|_| {
            let site = site.clone();
            async move {
                let user = uuid::Uuid::now_v7();
                let call = SiteCall::create_session(new_session(user, 3_600_000));
                site.propose(leader, &call).await.is_ok()
            }
        });
        made += futures_util::future::join_all(creates)
            .await
            .into_iter()
            .filter(|ok| *ok)
            .count() as u64;
    }
    made
}

#[tokio::main]
async fn main() {
    let rounds = common::arg("--rounds", 200) as usize;
    let others = common::arg("--others", 0);
    let per_second = common::arg("--background", 0);

    let (central, east) = central_and_east(tuning()).await;
    let (central, east) = (Arc::new(central), Arc::new(east));
    let api = Api::default();
    let admin = api.admin_token(&central.api_url(1)).await;
    add_user(
        &api,
        &central.api_url(1),
        &admin,
        "example.org",
        "bob",
        PASSWORD,
    )
    .await;

    if others > 0 {
        let started = Instant::now();
        tokio::join!(fill(central.clone(), others), fill(east.clone(), others));
        eprintln!(
            "filled each site with {others} other sessions in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    let load = match per_second {
        0 => Vec::new(),
        _ => [central.clone(), east.clone()]
            .into_iter()
            .map(|site| tokio::spawn(background(site, per_second / 2, stop.clone())))
            .collect(),
    };

    // Two warm-up rounds, then the measured ones.
    for _ in 0..2 {
        round(&api, &admin, &central, &east).await;
    }
    let (mut to_receipt, mut to_close) = (Vec::new(), Vec::new());
    let started = Instant::now();
    for _ in 0..rounds {
        let (receipt, closed) = round(&api, &admin, &central, &east).await;
        to_receipt.push(receipt);
        to_close.push(closed);
    }
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let mut made = 0;
    for task in load {
        made += task.await.expect("background load");
    }

    println!("contain: 2 sites x 3 nodes, 10 sessions + 4 websockets + 4 IMAP channels a round");
    println!(
        "rounds {rounds}, other sessions per site {others}, background {per_second} creates/s"
    );
    if per_second > 0 {
        println!(
            "background creates made: {made} ({:.0}/s over the rounds)",
            made as f64 / elapsed
        );
    }
    println!(
        "websocket opens refused and tried again: {}",
        REFUSED_OPENS.load(Ordering::Relaxed)
    );
    println!("| from the call to | p50 ms | p90 ms | p99 ms |");
    println!("|---|---|---|---|");
    println!(
        "{}",
        common::quantile_row("the complete receipt", &mut to_receipt, 1e3, 1)
    );
    println!(
        "{}",
        common::quantile_row("the last client socket closed", &mut to_close, 1e3, 1)
    );
}
