//! Revocation latency: an administrator's `DELETE …/ws/sessions/{id}` sent to node 3 → the close
//! frame received by a client whose socket is held by node 2, on a 3-node site in this process
//! (real HTTP, real websockets, fsync on every node).
//! Usage: `cargo bench --bench revocation [-- --rounds 1000]`

mod common;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use sessionplane::testing::NewSession;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

#[tokio::main]
async fn main() {
    let rounds = common::arg("--rounds", 1000) as usize;
    let warmup = 50;
    let data = tempfile::tempdir().expect("temp dir");
    let nodes = common::start_site(3, data.path()).await;
    let http = reqwest::Client::new();
    let (n2, n3) = (nodes[1].api_addr, nodes[2].api_addr);
    let admin = common::admin_login(&http, &format!("http://{n3}")).await;
    let admin_token = admin["token"].as_str().expect("token").to_string();
    let user_id: Uuid = admin["user_id"]
        .as_str()
        .expect("user id")
        .parse()
        .expect("uuid");

    let mut latencies = Vec::with_capacity(rounds);
    let mut acknowledged = Vec::with_capacity(rounds);
    for round in 0..rounds + warmup {
        let session = nodes[0]
            .site
            .create_session(NewSession {
                session_id: Uuid::now_v7(),
                user_id,
                login: "admin".into(),
                domain: "master.domain".into(),
                lifetime_ms: 3_600_000,
                client_addr: None,
                user_agent: None,
            })
            .await
            .expect("create session");
        let token = nodes[0].iam.token_for(&session).expect("token");
        let mut request = format!("ws://{n2}/rest/v1/ws")
            .into_client_request()
            .expect("request");
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("header"),
        );
        let (mut socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("websocket");

        let url = format!(
            "http://{n3}/rest/v1/master/logicalroles/ws/sessions/{}",
            session.session_id
        );
        let started = Instant::now();
        let sent = http.delete(url).bearer_auth(&admin_token).send();
        let delete = tokio::spawn(async move {
            let answer = sent.await;
            (answer, started.elapsed())
        });
        let closed_after = loop {
            match tokio::time::timeout(Duration::from_secs(10), socket.next()).await {
                Ok(Some(Ok(Message::Close(frame)))) => {
                    let code = frame.map(|f| u16::from(f.code));
                    assert_eq!(code, Some(4001), "round {round}");
                    break started.elapsed();
                }
                Ok(Some(Ok(_))) => continue,
                other => panic!("round {round}: no close frame: {other:?}"),
            }
        };
        let (answer, acknowledged_after) = delete.await.expect("join");
        let status = answer.expect("delete").status();
        assert_eq!(status.as_u16(), 204, "round {round}");
        if round >= warmup {
            latencies.push(closed_after);
            acknowledged.push(acknowledged_after);
        }
    }
    latencies.sort_unstable();
    let leader = nodes[0].site.group().metrics().current_leader;
    println!(
        "revocation: DELETE on node 3 → close frame from node 2, {rounds} rounds, leader node {}",
        leader.map_or("?".into(), |l| l.to_string())
    );
    acknowledged.sort_unstable();
    println!("| until | p50 ms | p90 ms | p99 ms | max ms |");
    println!("|---|---:|---:|---:|---:|");
    for (what, times) in [
        ("the close frame at node 2", &latencies),
        ("the 204 from node 3 (every node confirmed)", &acknowledged),
    ] {
        println!(
            "| {what} | {} | {} | {} | {} |",
            common::ms(common::percentile(times, 0.50)),
            common::ms(common::percentile(times, 0.90)),
            common::ms(common::percentile(times, 0.99)),
            common::ms(times.last().copied().unwrap_or_default()),
        );
    }
    for node in nodes {
        node.shutdown().await;
    }
}
