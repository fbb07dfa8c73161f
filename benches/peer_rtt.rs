//! What one request between two nodes costs on this machine: a 400-byte call through the
//! cluster's own peer stack (reqwest client, axum cluster listener, its secret check, MessagePack
//! answer) against the same bytes echoed over a bare TCP connection with a length prefix (the
//! floor any leaner transport would sit on). Server and client run on runtimes of their own, as
//! two nodes would. Usage: `cargo bench --bench peer_rtt [-- --rounds N]`

mod common;

use std::time::{Duration, Instant};

use sessionplane_cluster::{ClusterNode, ClusterOptions, PeerClient, RaftTuning};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const SECRET: &str = "peer-rtt-bench-secret";
const BODY_BYTES: usize = 400;

fn main() {
    let rounds = common::arg("--rounds", 5_000) as usize;
    let data = tempfile::tempdir().expect("temp dir");
    let (cluster_addr, echo_addr) = start_servers(data.path().to_path_buf());

    let client = runtime();
    let peers = PeerClient::new(SECRET, None, Default::default()).expect("peer client");
    let body = vec![7u8; BODY_BYTES];
    let through_cluster = client.block_on(async {
        let mut times = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let started = Instant::now();
            let answer = peers
                .call_node(&cluster_addr, "echo", body.clone(), Duration::from_secs(5))
                .await
                .expect("cluster call");
            assert_eq!(answer.expect("echo").len(), BODY_BYTES);
            times.push(started.elapsed());
        }
        times
    });
    let bare = client.block_on(async {
        let mut stream = TcpStream::connect(&echo_addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let mut times = Vec::with_capacity(rounds);
        let mut answer = vec![0u8; BODY_BYTES];
        for _ in 0..rounds {
            let started = Instant::now();
            stream.write_all(&frame(&body)).await.expect("write");
            let len = stream.read_u32().await.expect("length") as usize;
            stream.read_exact(&mut answer[..len]).await.expect("read");
            times.push(started.elapsed());
        }
        times
    });

    println!("one {BODY_BYTES}-byte request and its answer, {rounds} rounds, in µs:");
    println!("| | p50 | p90 | p99 |\n|---|---:|---:|---:|");
    report(
        "cluster listener (HTTP/1.1, reqwest + axum)",
        through_cluster,
    );
    report("bare TCP, length-prefixed echo", bare);
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// Starts the cluster listener (with an `echo` call) and the bare echo server on a runtime of
/// their own, and returns their addresses.
fn start_servers(data_dir: std::path::PathBuf) -> (String, String) {
    let (ready, addrs) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        runtime().block_on(async move {
            let cluster_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let echo_listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let cluster_addr = cluster_listener.local_addr().expect("addr").to_string();
            let node = ClusterNode::open(ClusterOptions {
                node_id: 1,
                advertise: cluster_addr.clone(),
                data_dir,
                secret: SECRET.into(),
                tuning: RaftTuning::default(),
                source_address: None,
                routes: Default::default(),
            })
            .expect("cluster node");
            node.calls()
                .serve("echo", |body| Box::pin(async move { Ok(body) }));
            let echo_addr = echo_listener.local_addr().expect("addr").to_string();
            ready.send((cluster_addr, echo_addr)).expect("ready");
            tokio::spawn(serve_echo(echo_listener));
            axum::serve(cluster_listener, node.router())
                .await
                .expect("serve");
        });
    });
    addrs.recv().expect("servers started")
}

async fn serve_echo(listener: TcpListener) {
    while let Ok((mut stream, _)) = listener.accept().await {
        stream.set_nodelay(true).expect("nodelay");
        tokio::spawn(async move {
            let mut body = vec![0u8; BODY_BYTES];
            while let Ok(len) = stream.read_u32().await {
                let len = len as usize;
                if len > body.len() || stream.read_exact(&mut body[..len]).await.is_err() {
                    return;
                }
                if stream.write_all(&frame(&body[..len])).await.is_err() {
                    return;
                }
            }
        });
    }
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut framed = Vec::with_capacity(body.len() + 4);
    framed.extend_from_slice(&(body.len() as u32).to_be_bytes());
    framed.extend_from_slice(body);
    framed
}

fn report(what: &str, mut times: Vec<Duration>) {
    println!("{}", common::quantile_row(what, &mut times, 1e6, 0));
}
