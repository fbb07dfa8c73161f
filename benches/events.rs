//! Events out, on a local 3-node site in this process (real sockets, fsync on):
//!
//! 1. replicated creates by 64 proposers through the leader, with no stream reader and with 10
//!    readers of `/rest/v1/events` spread over the nodes, in alternating pairs: creates/s
//!    (A/B), the events/s each reader got, and the time from each create's acknowledgement to
//!    its event at the first reader (p50, p99);
//! 2. a webhook's backlog: `--backlog` sessions created while the receiver (in this process)
//!    refuses, then the time it takes to drain once it accepts.
//!
//! Usage: `cargo bench --bench events [-- --seconds 5 --pairs 3 --readers 10 --rate 20000
//! --backlog 1000000 --batch 1000 --skip-streams 1]` (`--rate`: creates paced at that many a
//! second in all, rather than as fast as they go).

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use sessionplane::testing::{DeliverySettings, NewSession, SiteStore, Webhook};
use uuid::Uuid;

const PROPOSERS: usize = 64;

fn new_session(user: Uuid, n: usize) -> NewSession {
    NewSession {
        session_id: Uuid::now_v7(),
        user_id: user,
        login: format!("user{n:06}"),
        domain: "example.org".into(),
        lifetime_ms: 12 * 3_600_000,
        client_addr: Some([203, 0, 113, 45].into()),
        user_agent: Some("Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0".into()),
    }
}

/// What one create came to: its id, when it was proposed and when acknowledged.
type Acked = (Uuid, Instant, Instant);

/// Creates through `store` with `PROPOSERS` proposers for `duration`, as fast as they go or,
/// with `rate`, that many a second in all.
async fn creates(store: &SiteStore, duration: Duration, rate: Option<u64>) -> Vec<Acked> {
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..PROPOSERS)
        .map(|p| {
            let (store, stop) = (store.clone(), stop.clone());
            tokio::spawn(async move {
                let user = Uuid::now_v7();
                let mut acked = Vec::new();
                let mut pace = rate.map(|r| {
                    let every = Duration::from_secs_f64(PROPOSERS as f64 / r as f64);
                    let mut pace = tokio::time::interval(every);
                    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    pace
                });
                while !stop.load(Ordering::Relaxed) {
                    if let Some(pace) = &mut pace {
                        pace.tick().await;
                    }
                    let new = new_session(user, p);
                    let id = new.session_id;
                    let proposed = Instant::now();
                    if store.create_session(new).await.is_ok() {
                        acked.push((id, proposed, Instant::now()));
                    }
                }
                acked
            })
        })
        .collect();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("proposer"));
    }
    all
}

/// When each session's event came to a reader.
type Arrivals = Arc<std::sync::Mutex<Vec<(Uuid, Instant)>>>;

/// A stream reader: counts the events it gets; the first one also notes when each session's
/// event came.
struct Reader {
    events: Arc<AtomicU64>,
    arrivals: Option<Arrivals>,
    task: tokio::task::JoinHandle<()>,
}

fn read_stream(base: String, token: String, keep_arrivals: bool) -> Reader {
    let events = Arc::new(AtomicU64::new(0));
    let arrivals = keep_arrivals.then(|| Arc::new(std::sync::Mutex::new(Vec::new())));
    let (counted, noted) = (events.clone(), arrivals.clone());
    let task = tokio::spawn(async move {
        let http = reqwest::Client::new();
        let response = http
            .get(format!("{base}/rest/v1/events?action=session.created"))
            .bearer_auth(token)
            .send()
            .await
            .expect("the stream opens");
        assert!(response.status().is_success());
        let mut body = response.bytes_stream();
        let mut partial = Vec::new();
        while let Some(Ok(chunk)) = body.next().await {
            partial.extend_from_slice(&chunk);
            let mut start = 0;
            while let Some(end) = partial[start..].iter().position(|b| *b == b'\n') {
                let line = &partial[start..start + end];
                start += end + 1;
                let Some(data) = line.strip_prefix(b"data: ") else {
                    continue;
                };
                counted.fetch_add(1, Ordering::Relaxed);
                if let Some(noted) = &noted {
                    let at = Instant::now();
                    let event: serde_json::Value = serde_json::from_slice(data).expect("JSON");
                    if let Some(id) = event["details"]["session_id"]
                        .as_str()
                        .and_then(|s| Uuid::try_parse(s).ok())
                    {
                        noted.lock().expect("lock").push((id, at));
                    }
                }
            }
            partial.drain(..start);
        }
    });
    Reader {
        events,
        arrivals,
        task,
    }
}

struct Round {
    creates_per_s: f64,
    /// Each create's time from proposal to acknowledgement, sorted.
    create_times: Vec<Duration>,
    events_per_reader_s: f64,
    /// From each create's acknowledgement to its event at the first reader, sorted.
    latencies: Vec<Duration>,
}

async fn round(
    store: &SiteStore,
    bases: &[String],
    token: &str,
    readers: usize,
    seconds: u64,
    rate: Option<u64>,
) -> Round {
    let readers: Vec<Reader> = (0..readers)
        .map(|k| read_stream(bases[k % bases.len()].clone(), token.into(), k == 0))
        .collect();
    // The streams are open before the creates start.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let acked = creates(store, Duration::from_secs(seconds), rate).await;
    let elapsed = started.elapsed().as_secs_f64();
    // The readers' last events are on their way.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut latencies = Vec::new();
    let mut events = 0;
    for reader in &readers {
        events += reader.events.load(Ordering::Relaxed);
        reader.task.abort();
    }
    if let Some(arrivals) = readers.first().and_then(|r| r.arrivals.clone()) {
        let arrived: HashMap<Uuid, Instant> =
            arrivals.lock().expect("lock").iter().copied().collect();
        for (id, _, at) in &acked {
            if let Some(came) = arrived.get(id) {
                latencies.push(came.saturating_duration_since(*at));
            }
        }
        latencies.sort_unstable();
    }
    let mut create_times: Vec<Duration> = acked.iter().map(|(_, p, a)| *a - *p).collect();
    create_times.sort_unstable();
    Round {
        creates_per_s: acked.len() as f64 / elapsed,
        create_times,
        events_per_reader_s: match readers.len() {
            0 => 0.0,
            n => events as f64 / n as f64 / elapsed,
        },
        latencies,
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

async fn streams(seconds: u64, pairs: u64, reader_count: usize, rate: Option<u64>) {
    let data = tempfile::tempdir().expect("temp dir");
    let nodes = common::start_site(3, data.path()).await;
    let leader = nodes
        .iter()
        .position(|n| n.site.group().is_leader())
        .expect("a leader");
    let bases: Vec<String> = nodes
        .iter()
        .map(|n| format!("http://{}", n.api_addr))
        .collect();
    let http = reqwest::Client::new();
    let login = common::admin_login(&http, &bases[leader]).await;
    let token = login["token"].as_str().expect("token").to_string();
    let store = nodes[leader].site.clone();
    round(&store, &bases, &token, 0, 1, None).await;
    match rate {
        Some(rate) => println!("creates paced at {rate}/s in all"),
        None => println!("creates as fast as {PROPOSERS} proposers go"),
    }
    println!("| pair | creates/s, no reader | creates/s, {reader_count} readers | ratio | create p99 ms, no reader | create p99 ms, readers | events/s per reader | event p50 ms | event p99 ms |");
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let (mut ratios, mut alone, mut read, mut p99s) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for pair in 1..=pairs {
        let a = round(&store, &bases, &token, 0, seconds, rate).await;
        let b = round(&store, &bases, &token, reader_count, seconds, rate).await;
        let ratio = b.creates_per_s / a.creates_per_s;
        let p50 = common::percentile(&b.latencies, 0.50);
        let p99 = common::percentile(&b.latencies, 0.99);
        println!(
            "| {pair} | {:.0} | {:.0} | {ratio:.2} | {} | {} | {:.0} | {} | {} |",
            a.creates_per_s,
            b.creates_per_s,
            common::ms(common::percentile(&a.create_times, 0.99)),
            common::ms(common::percentile(&b.create_times, 0.99)),
            b.events_per_reader_s,
            common::ms(p50),
            common::ms(p99)
        );
        ratios.push(ratio);
        alone.push(a.creates_per_s);
        read.push(b.events_per_reader_s);
        p99s.push(p99.as_secs_f64() * 1000.0);
    }
    println!(
        "medians: creates with readers / without {:.2} (goal ≥ 0.90), events/s per reader {:.0} (goal ≥ 20,000), p99 {:.2} ms (goal ≤ 20 ms); creates/s alone {:.0}",
        median(ratios),
        median(read),
        median(p99s),
        median(alone)
    );
    for node in nodes {
        node.shutdown().await;
    }
}

/// The receiver: refuses (503) until `accepting`, then counts the events of each POST.
async fn serve_receiver(accepting: Arc<AtomicBool>, received: Arc<AtomicU64>) -> u16 {
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::body::Bytes| {
            let (accepting, received) = (accepting.clone(), received.clone());
            async move {
                if !accepting.load(Ordering::Relaxed) {
                    return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                }
                let events: Vec<serde::de::IgnoredAny> =
                    serde_json::from_slice(&body).expect("a JSON array");
                received.fetch_add(events.len() as u64, Ordering::Relaxed);
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

async fn backlog(total: u64, batch: usize) {
    let accepting = Arc::new(AtomicBool::new(false));
    let received = Arc::new(AtomicU64::new(0));
    let port = serve_receiver(accepting.clone(), received.clone()).await;
    let data = tempfile::tempdir().expect("temp dir");
    let nodes = common::start_site_with(3, data.path(), |config| {
        config.webhook = vec![Webhook {
            name: "bench".into(),
            url: format!("http://127.0.0.1:{port}/hook"),
            secret: Some("bench-webhook-secret-0123".into()),
            secret_file: None,
            events: vec!["session.created".into()],
            delivery: DeliverySettings {
                batch_max: batch,
                retry_initial_ms: 200,
                retry_max_ms: 1_000,
                ..DeliverySettings::default()
            },
        }];
    })
    .await;
    let leader = nodes
        .iter()
        .position(|n| n.site.group().is_leader())
        .expect("a leader");
    let store = nodes[leader].site.clone();
    // The delivery has started (from the feed's end) before the backlog builds.
    while store.group().state().read(|s| s.deliveries().is_empty()) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let filling = Instant::now();
    let made = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = (0..256)
        .map(|p| {
            let (store, made) = (store.clone(), made.clone());
            tokio::spawn(async move {
                let user = Uuid::now_v7();
                while made.fetch_add(1, Ordering::Relaxed) < total {
                    while store.create_session(new_session(user, p)).await.is_err() {}
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("proposer");
    }
    println!(
        "backlog of {total} session.created events made in {:.1} s, the receiver refusing",
        filling.elapsed().as_secs_f64()
    );
    let draining = Instant::now();
    accepting.store(true, Ordering::Relaxed);
    while received.load(Ordering::Relaxed) < total {
        assert!(draining.elapsed() < Duration::from_secs(600), "not drained");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let secs = draining.elapsed().as_secs_f64();
    println!(
        "drained in {secs:.2} s: {:.0} events/s (goal ≥ 20,000), batch_max {batch}",
        total as f64 / secs
    );
    for node in nodes {
        node.shutdown().await;
    }
}

#[tokio::main]
async fn main() {
    let seconds = common::arg("--seconds", 5);
    let pairs = common::arg("--pairs", 3);
    let readers = common::arg("--readers", 10) as usize;
    let total = common::arg("--backlog", 1_000_000);
    let batch = common::arg("--batch", 1000) as usize;
    let rate = Some(common::arg("--rate", 0)).filter(|r| *r > 0);
    if common::arg("--skip-streams", 0) == 0 {
        streams(seconds, pairs, readers, rate).await;
    }
    if total > 0 {
        backlog(total, batch).await;
    }
}
