//! Proxied websockets held by one node, and how fast a user's end closes them.
//!
//! The node runs as its own process (`sessionplane serve`, a single-node site) with a
//! `[[proxy]]` route to a websocket echo upstream, itself a process of its own (this
//! benchmark's binary started again with `--upstream`). Each proxied socket is two in the node:
//! the client's and the node's own to the upstream. Every socket belongs to a session of its
//! own (created through the cluster listener, tokens signed with the node's key).
//!
//! 1. Memory: the node's RSS once its `--sockets` sessions exist, then with a proxied socket
//!    open on each of them; per socket, the difference over the count (the session's own
//!    memory is reported apart).
//! 2. Closing one user's sockets, while those stay open: each round a user holds 100 proxied
//!    sockets (100 sessions), and one `POST …/ws/sessions` logout of that user ends them. Timed,
//!    for each of the 100 client sockets, from the call until its close frame (4003) comes; the
//!    upstream must see each of its 100 sockets closed with 1001.
//!
//! The node holds 2 files per proxied socket and the benchmark's and the upstream's process one
//! each: the open-file limit (soft raised to hard here, and inherited) must exceed twice
//! `--sockets` plus a few hundred.
//! Usage: `cargo bench --bench proxied_websockets [-- --sockets 8000 --rounds 30]`

mod common;

use common::Process;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use sessionplane::testing::{NewSession, SessionClaims, SiteAnswer, SiteCall, TokenKeys};
use sessionplane_cluster::{GroupId, PeerClient};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

const SECRET: &str = "bench-cluster-secret";
const TOKEN_KEY: &str = "bench-token-key";
const HELD: usize = 100;

type Socket = tokio_tungstenite::WebSocketStream<TcpStream>;

fn open_files(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / 1048576.0)
}

/// Close codes the upstream's sockets received: 1001, and any other.
static GOING_AWAY: AtomicU64 = AtomicU64::new(0);
static OTHER_CLOSES: AtomicU64 = AtomicU64::new(0);

/// The upstream, in its own process: an echo websocket at `/app/ws` that counts the close
/// codes it gets, and `GET /closes` (`<1001s> <others>`). Prints its port, then serves until
/// its standard input closes.
async fn upstream_main() {
    use axum::extract::ws::{Message, WebSocketUpgrade};
    use axum::routing::get;
    let echo = |upgrade: WebSocketUpgrade| async move {
        upgrade.on_upgrade(|mut socket| async move {
            while let Some(Ok(message)) = socket.recv().await {
                if let Message::Close(frame) = message {
                    match frame.map(|f| f.code) {
                        Some(1001) => GOING_AWAY.fetch_add(1, Ordering::Relaxed),
                        _ => OTHER_CLOSES.fetch_add(1, Ordering::Relaxed),
                    };
                    return;
                }
                if matches!(message, Message::Text(_) | Message::Binary(_))
                    && socket.send(message).await.is_err()
                {
                    return;
                }
            }
        })
    };
    let closes = || async {
        format!(
            "{} {}",
            GOING_AWAY.load(Ordering::Relaxed),
            OTHER_CLOSES.load(Ordering::Relaxed)
        )
    };
    let app = axum::Router::new()
        .route("/app/ws", get(echo))
        .route("/closes", get(closes));
    common::serve_upstream(app).await;
}

/// What the benchmark needs to make sessions of one user and open sockets on them.
#[derive(Clone)]
struct Opener {
    peers: PeerClient,
    group: GroupId,
    cluster: String,
    keys: Arc<TokenKeys>,
    api: u16,
}

impl Opener {
    /// A new session of `user` and its token.
    async fn session(&self, user_id: Uuid, login: &str, domain: &str) -> String {
        let session_id = Uuid::now_v7();
        let new = NewSession {
            session_id,
            user_id,
            login: login.into(),
            domain: domain.into(),
            lifetime_ms: 3_600_000,
            client_addr: None,
            user_agent: None,
        };
        let reply = SiteCall::create_session(new)
            .propose(
                &self.peers,
                &self.cluster,
                &self.group,
                Duration::from_secs(30),
            )
            .await
            .expect("propose")
            .expect("accepted");
        assert!(matches!(reply, SiteAnswer::Session(_)));
        let now = sessionplane_cluster::now_ms() / 1000;
        let claims = SessionClaims {
            sub: user_id,
            sid: session_id,
            dom: domain.into(),
            site: "local".into(),
            iat: now,
            exp: now + 3600,
        };
        self.keys.sign_session(&claims).expect("sign")
    }

    /// A websocket to the echo upstream through the node's route, checked with one echo.
    async fn open(&self, token: &str) -> Socket {
        use futures_util::SinkExt;
        let stream = TcpStream::connect(("127.0.0.1", self.api))
            .await
            .expect("connect");
        let mut request = format!("ws://127.0.0.1:{}/app/ws", self.api)
            .into_client_request()
            .expect("request");
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("header"),
        );
        let (mut socket, _) = tokio_tungstenite::client_async(request, stream)
            .await
            .expect("the proxied websocket opens");
        socket
            .send(Message::Text("hello".into()))
            .await
            .expect("send");
        let echoed = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("an echo in time");
        assert!(
            matches!(echoed, Some(Ok(Message::Text(ref t))) if t.as_str() == "hello"),
            "{echoed:?}"
        );
        socket
    }
}

/// When `socket` gets its close frame, and the frame's code.
async fn closed(mut socket: Socket) -> (Instant, Option<u16>) {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => {
                return (Instant::now(), frame.map(|f| u16::from(f.code)))
            }
            Ok(Some(Ok(_))) => continue,
            other => panic!("no close frame: {other:?}"),
        }
    }
}

/// The upstream's close counts: (1001, any other).
async fn upstream_closes(http: &reqwest::Client, upstream: u16) -> (u64, u64) {
    let text = http
        .get(format!("http://127.0.0.1:{upstream}/closes"))
        .send()
        .await
        .expect("the upstream answers")
        .text()
        .await
        .expect("a body");
    let (going, other) = text.split_once(' ').expect("two counts");
    (
        going.parse().expect("a count"),
        other.parse().expect("a count"),
    )
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--upstream") {
        return upstream_main().await;
    }
    let sockets = common::arg("--sockets", 8_000) as usize;
    let rounds = common::arg("--rounds", 30) as usize;
    let warmup = 3;
    let limit = rlimit::increase_nofile_limit(u64::MAX).expect("the open-file limit");
    assert!(
        limit as usize > 2 * (sockets + HELD) + 512,
        "{sockets} proxied sockets need about {} open files in the node; the limit is {limit}",
        2 * (sockets + HELD) + 512
    );

    let mut child = Command::new(std::env::current_exe().expect("this binary"))
        .arg("--upstream")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the upstream");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the upstream's port");
    let upstream: u16 = line.trim().parse().expect("a port");
    let _upstream = Process(child);

    let dir = tempfile::tempdir().expect("temp dir");
    let (api, cluster) = (common::free_port(), common::free_port());
    let config = dir.path().join("node.toml");
    // Each proxied socket takes two of the node's files: the upstream's half is held back from
    // the listeners' caps as reserve.
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\ncluster_secret = \"{SECRET}\"\n[listen]\napi = \"127.0.0.1:{api}\"\n\
             cluster = \"127.0.0.1:{cluster}\"\n[iam]\ntoken_key = \"{TOKEN_KEY}\"\n\
             [mail]\nenabled = false\n[limits]\nreserved_fds = {}\ncluster_max_connections = 128\n\
             api_max_connections = {}\napi_max_connections_per_source = {}\n\
             [[proxy]]\nprefix = \"/app/\"\nupstream = \"http://127.0.0.1:{upstream}\"\n\
             unauthenticated = \"401\"\n",
            dir.path().join("data").display(),
            sockets + HELD + 512,
            sockets + HELD + 256,
            sockets + HELD + 256,
        ),
    )
    .expect("config");
    let node = common::spawn_node(&config);
    let pid = node.id();
    let _node = Process(node);
    let base = format!("http://127.0.0.1:{api}");
    let http = reqwest::Client::new();
    let admin = common::admin_login(&http, &base).await;
    let admin_token = admin["token"].as_str().expect("token").to_string();
    let admin_id: Uuid = admin["user_id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("uuid");
    let domain = http
        .put(format!("{base}/domains/example.org"))
        .bearer_auth(&admin_token)
        .send()
        .await
        .expect("sent");
    assert!(domain.status().is_success(), "{}", domain.status());
    let bob: serde_json::Value = http
        .put(format!("{base}/users/bob@example.org"))
        .bearer_auth(&admin_token)
        .json(&serde_json::json!({"password": "bench-user-password-1"}))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("the user");
    let bob_id: Uuid = bob["user_id"]
        .as_str()
        .expect("bob's id")
        .parse()
        .expect("uuid");

    let opener = Opener {
        peers: PeerClient::new(SECRET, None, Default::default()).expect("peer client"),
        group: GroupId::new("site:local").expect("group"),
        cluster: format!("127.0.0.1:{cluster}"),
        keys: Arc::new(TokenKeys::new(TOKEN_KEY, None).expect("keys")),
        api,
    };
    // Warm the node's paths up (one proxied socket opened and closed) before the baseline.
    let token = opener.session(admin_id, "admin", "master.domain").await;
    drop(opener.open(&token).await);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let idle_rss = common::rss_of(pid);

    let tokens = futures_util::stream::iter(0..sockets)
        .map(|_| {
            let opener = opener.clone();
            async move { opener.session(admin_id, "admin", "master.domain").await }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sessions_rss = common::rss_of(pid);
    let files_before = open_files(pid);
    let started = Instant::now();
    let held = futures_util::stream::iter(tokens)
        .map(|token| {
            let opener = opener.clone();
            async move { opener.open(&token).await }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await;
    let open_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let held_rss = common::rss_of(pid);
    let files_held = open_files(pid);
    let per_socket = held_rss.saturating_sub(sessions_rss) as f64 / held.len().max(1) as f64;
    let per_session = sessions_rss.saturating_sub(idle_rss) as f64 / held.len().max(1) as f64;
    println!(
        "proxied_websockets: {} proxied websockets held by one node, each its own session, \
         opened in {open_secs:.1} s; the node's open files {files_before} → {files_held}; \
         load {}",
        held.len(),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    println!("| node RSS idle MiB | with the sessions MiB | holding the sockets MiB | per session KiB | per proxied socket KiB (goal ≤ 24) |");
    println!("|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {} | {} | {:.1} | {:.1} ({}) |",
        mib(idle_rss),
        mib(sessions_rss),
        mib(held_rss),
        per_session / 1024.0,
        per_socket / 1024.0,
        if per_socket <= 24.0 * 1024.0 {
            "met"
        } else {
            "NOT met"
        }
    );

    // One user's 100 proxied sockets, ended by one logout, while the others stay open.
    let logout = serde_json::json!({"action": "logout", "domain": "example.org", "user": "bob"});
    let (mut each, mut last) = (Vec::new(), Vec::new());
    let (going_before, other_before) = upstream_closes(&http, upstream).await;
    for round in 0..rounds + warmup {
        let mut bobs = Vec::new();
        for _ in 0..HELD {
            let token = opener.session(bob_id, "bob", "example.org").await;
            bobs.push(opener.open(&token).await);
        }
        let watchers: Vec<_> = bobs.into_iter().map(|s| tokio::spawn(closed(s))).collect();
        let started = Instant::now();
        let answer = http
            .post(format!("{base}/rest/v1/master/logicalroles/ws/sessions"))
            .bearer_auth(&admin_token)
            .json(&logout)
            .send()
            .await
            .expect("the logout");
        let answered = started.elapsed();
        assert_eq!(answer.status().as_u16(), 200, "round {round}");
        let answer: serde_json::Value = answer.json().await.expect("the logout's answer");
        assert_eq!(answer["closed"], HELD, "round {round}: {answer}");
        let mut times = Vec::new();
        for watcher in watchers {
            let (at, code) = watcher.await.expect("a watcher");
            assert_eq!(code, Some(4003), "round {round}");
            times.push(at - started);
        }
        // The upstream's half of each: closed with 1001 going away.
        let expected = going_before + (round as u64 + 1) * HELD as u64;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let (going, other) = upstream_closes(&http, upstream).await;
            assert_eq!(
                other, other_before,
                "round {round}: other close codes upstream"
            );
            if going >= expected {
                assert_eq!(going, expected, "round {round}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "round {round}: the upstream saw {going} closes with 1001, not {expected}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        if round >= warmup {
            last.push(times.iter().copied().max().unwrap_or_default());
            each.extend(times);
            eprintln!(
                "  round {}: answered in {:.2} ms, last close at {:.2} ms",
                round + 1 - warmup,
                ms(answered),
                ms(*last.last().expect("a round"))
            );
        }
    }
    each.sort_unstable();
    last.sort_unstable();
    println!(
        "\nlogout of a user holding {HELD} proxied sockets (among {} open), {rounds} rounds: \
         from the call to each client's close frame (4003); every upstream socket closed with 1001",
        held.len()
    );
    println!("| | p50 ms | p90 ms | p99 ms | max ms |");
    println!("|---|---:|---:|---:|---:|");
    for (what, times) in [
        ("each socket", &each),
        ("the last of the 100, per round", &last),
    ] {
        println!(
            "| {what} | {:.2} | {:.2} | {:.2} | {:.2} |",
            ms(common::percentile(times, 0.5)),
            ms(common::percentile(times, 0.9)),
            ms(common::percentile(times, 0.99)),
            ms(times.last().copied().unwrap_or_default()),
        );
    }
    let p99 = common::percentile(&each, 0.99);
    println!(
        "p99 {:.2} ms (goal ≤ 20 ms: {})",
        ms(p99),
        if p99 <= Duration::from_millis(20) {
            "met"
        } else {
            "NOT met"
        }
    );
    drop(held);
    // Let the node deregister what the clients closed before it is asked to stop.
    tokio::time::sleep(Duration::from_secs(3)).await;
}
