//! Concurrent authenticated IMAP channels on one node, the node's memory per channel, and how
//! long `DELETE /servers/channels` (everyone) takes to close them all.
//!
//! The node runs as its own process (`sessionplane serve`). To measure channels rather than
//! password hashing, the benchmark's node uses cheap argon2 parameters and takes LOGIN on the
//! plain IMAP port; both are settings, stated in the output.
//! Usage: `cargo bench --bench imap_channels [-- --channels 10000]`

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};

async fn login(i: usize, imap: u16) -> BufReader<TcpStream> {
    let source = format!("127.0.{}.{}:0", 1 + i / 20_000, 2 + (i % 200))
        .parse()
        .expect("addr");
    let tcp = TcpSocket::new_v4().expect("socket");
    tcp.bind(source).expect("bind");
    let stream = tcp
        .connect(format!("127.0.0.1:{imap}").parse().expect("addr"))
        .await
        .expect("connect");
    let mut client = BufReader::new(stream);
    let mut line = String::new();
    client.read_line(&mut line).await.expect("greeting");
    client
        .get_mut()
        .write_all(b"a LOGIN admin@master.domain bench-admin-password\r\n")
        .await
        .expect("login");
    line.clear();
    client.read_line(&mut line).await.expect("answer");
    assert!(line.starts_with("a OK"), "{line}");
    client
}

#[tokio::main]
async fn main() {
    let channels = common::arg("--channels", 10_000) as usize;
    let dir = tempfile::tempdir().expect("temp dir");
    let (api, cluster, imap) = (
        common::free_port(),
        common::free_port(),
        common::free_port(),
    );
    let config = dir.path().join("node.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\ncluster_secret = \"bench-cluster-secret\"\n\
             [listen]\napi = \"127.0.0.1:{api}\"\ncluster = \"127.0.0.1:{cluster}\"\n\
             imap = \"127.0.0.1:{imap}\"\nimaps = \"127.0.0.1:{}\"\nsmtp = \"127.0.0.1:{}\"\nsmtps = \"127.0.0.1:{}\"\n\
             [mail]\nallow_plaintext_auth = true\nmax_connections = 18000\n\
             [limits]\nreserved_fds = 256\napi_max_connections = 1024\ncluster_max_connections = 256\n\
             mail_max_connections_per_source = 18000\n\
             [iam]\ntoken_key = \"bench-token-key\"\nmax_login_failures = 1000000\n\
             [iam.argon2]\nmemory_kib = 64\niterations = 1\nparallelism = 1\n",
            dir.path().join("data").display(),
            common::free_port(),
            common::free_port(),
            common::free_port()
        ),
    )
    .expect("config");
    let mut server = common::spawn_node(&config);
    let pid = server.id();
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{api}");
    let admin = common::admin_login(&http, &base).await;
    let token = admin["token"].as_str().expect("token").to_string();
    let idle_rss = common::rss_of(pid);

    let started = Instant::now();
    let mut clients = futures_util::stream::iter(0..channels)
        .map(|i| login(i, imap))
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await;
    let opened_in = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let held_rss = common::rss_of(pid);

    let started = Instant::now();
    let answer = http
        .delete(format!("{base}/servers/channels"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("delete");
    assert_eq!(answer.status().as_u16(), 204);
    let answered = started.elapsed();
    let closes = clients.iter_mut().map(|client| async move {
        let mut line = String::new();
        loop {
            line.clear();
            match client.read_line(&mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    });
    futures_util::future::join_all(closes).await;
    let all_closed = started.elapsed();
    let per_channel = held_rss.saturating_sub(idle_rss) / channels.max(1) as u64;
    println!(
        "{channels} IMAP channels (plain LOGIN, argon2 m=64 KiB t=1 for the benchmark), opened in {:.1} s",
        opened_in.as_secs_f64()
    );
    println!("| node RSS idle MiB | holding them MiB | per channel KiB | DELETE answered ms | all closed ms |");
    println!("|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {} | {:.1} | {} | {} |",
        idle_rss / 1048576,
        held_rss / 1048576,
        per_channel as f64 / 1024.0,
        common::ms(answered),
        common::ms(all_closed)
    );
    drop(clients);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = Command::new("kill").arg(pid.to_string()).status();
    let _ = server.wait();
}
