//! Concurrent websockets held by one node, and that node's resident memory.
//!
//! The node runs as its own process (`sessionplane serve`) so that its memory is measured apart
//! from the clients'. Each socket belongs to its own session (created through the cluster
//! listener, tokens signed with the node's key), is registered in the site group, and stays
//! open while the node's RSS is read from /proc. One process may hold at most `ulimit -n` files:
//! `--sockets` must stay below that on both sides.
//! Usage: `cargo bench --bench websockets [-- --sockets 19000]`

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use sessionplane::testing::NewSession;
use sessionplane::testing::SessionClaims;
use sessionplane::testing::TokenKeys;
use sessionplane::testing::{SiteAnswer, SiteCall};
use sessionplane_cluster::{GroupId, PeerClient};
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use uuid::Uuid;

const SECRET: &str = "bench-cluster-secret";
const TOKEN_KEY: &str = "bench-token-key";

fn mib(bytes: u64) -> String {
    format!("{:.0}", bytes as f64 / 1048576.0)
}

#[tokio::main]
async fn main() {
    let sockets = common::arg("--sockets", 19_000) as usize;
    let dir = tempfile::tempdir().expect("temp dir");
    let (api, cluster) = (common::free_port(), common::free_port());
    let config = dir.path().join("node.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\ncluster_secret = \"{SECRET}\"\n[listen]\napi = \"127.0.0.1:{api}\"\n\
             cluster = \"127.0.0.1:{cluster}\"\n[iam]\ntoken_key = \"{TOKEN_KEY}\"\n\
             [mail]\nenabled = false\n[limits]\nreserved_fds = 256\ncluster_max_connections = 128\n\
             api_max_connections = 19500\napi_max_connections_per_source = 19500\n",
            dir.path().join("data").display()
        ),
    )
    .expect("config");
    let mut server = common::spawn_node(&config);
    let pid = server.id();
    let http = reqwest::Client::new();
    let admin = common::admin_login(&http, &format!("http://127.0.0.1:{api}")).await;
    let user_id: Uuid = admin["user_id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("uuid");
    let idle_rss = common::rss_of(pid);

    let peers = PeerClient::new(SECRET, None, Default::default()).expect("peer client");
    let group = GroupId::new("site:local").expect("group");
    let keys = Arc::new(TokenKeys::new(TOKEN_KEY, None).expect("keys"));
    let started = Instant::now();
    let opened = futures_util::stream::iter(0..sockets)
        .map(|i| {
            let (peers, group, keys) = (peers.clone(), group.clone(), keys.clone());
            async move {
                let session_id = Uuid::now_v7();
                let new = NewSession {
                    session_id,
                    user_id,
                    login: "admin".into(),
                    domain: "master.domain".into(),
                    lifetime_ms: 3_600_000,
                    client_addr: None,
                    user_agent: None,
                };
                let reply = SiteCall::create_session(new)
                    .propose(
                        &peers,
                        &format!("127.0.0.1:{cluster}"),
                        &group,
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
                    dom: "master.domain".into(),
                    site: "local".into(),
                    iat: now,
                    exp: now + 3600,
                };
                let token = keys.sign_session(&claims).expect("sign");
                // Spread the clients over source addresses: one holds ~28,000 ports.
                let source = format!("127.0.{}.{}:0", 1 + i / 20_000, 2 + (i % 200))
                    .parse()
                    .expect("addr");
                let tcp = TcpSocket::new_v4().expect("socket");
                tcp.bind(source).expect("bind");
                let stream = tcp
                    .connect(format!("127.0.0.1:{api}").parse().expect("addr"))
                    .await
                    .expect("connect");
                let mut request = format!("ws://127.0.0.1:{api}/rest/v1/ws")
                    .into_client_request()
                    .expect("request");
                request.headers_mut().insert(
                    "authorization",
                    format!("Bearer {token}").parse().expect("header"),
                );
                let (socket, _) = tokio_tungstenite::client_async(request, stream)
                    .await
                    .expect("websocket");
                socket
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await;
    let open_secs = started.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let held_rss = common::rss_of(pid);
    let per_socket = held_rss.saturating_sub(idle_rss) / opened.len().max(1) as u64;
    println!(
        "{} websockets held by one node (each its own session), opened in {open_secs:.1} s",
        opened.len()
    );
    println!("| node RSS idle MiB | RSS holding them MiB | per socket (session + registration + socket) | extrapolated to 50,000 MiB |");
    println!("|---:|---:|---:|---:|");
    println!(
        "| {} | {} | {:.1} KiB | {} |",
        mib(idle_rss),
        mib(held_rss),
        per_socket as f64 / 1024.0,
        mib(idle_rss + per_socket * 50_000)
    );
    drop(opened);
    // Let the node deregister what the clients closed before it is asked to stop.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let _ = Command::new("kill").arg(pid.to_string()).status();
    let _ = server.wait();
}
