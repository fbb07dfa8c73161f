//! Slow and abusive clients against real nodes: a flood of half-sent requests from one address,
//! the per-source caps, the header, body and keep-alive timeouts, and the errors the HTTP server
//! itself answers (a URI or headers too large, a malformed request) in the contract's JSON.

use crate::common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::{mail, Api, TestSite, Tuning, ADMIN_PASSWORD};
use futures_util::future::join_all;
use reqwest::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A generous bound for something the server must do "soon" (close, answer).
const SOON: Duration = Duration::from_secs(10);

/// A connection from `from` to `to` that has sent `bytes`; `None` if it could not be opened.
async fn half_open(from: IpAddr, to: SocketAddr, bytes: &[u8]) -> Option<TcpStream> {
    let socket = TcpSocket::new_v4().ok()?;
    socket.bind(SocketAddr::new(from, 0)).ok()?;
    let mut stream = tokio::time::timeout(Duration::from_secs(2), socket.connect(to))
        .await
        .ok()?
        .ok()?;
    let _ = stream.write_all(bytes).await;
    Some(stream)
}

/// `n` connections from `from` to `to`, each having sent `bytes` and then nothing.
async fn flood(from: IpAddr, to: SocketAddr, n: usize, bytes: &[u8]) -> Vec<TcpStream> {
    let mut held = Vec::new();
    for batch in (0..n).collect::<Vec<_>>().chunks(200) {
        let opened = join_all(batch.iter().map(|_| half_open(from, to, bytes))).await;
        held.extend(opened.into_iter().flatten());
    }
    held
}

/// Whether the server ends the connection within `within` (reading whatever comes first).
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

/// Everything the server sends until it closes (or `SOON` passes).
async fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut answer = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + SOON;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return answer,
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
        }
    }
}

/// One raw HTTP answer: status, lowercased headers, body.
struct RawAnswer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawAnswer {
    fn parse(bytes: &[u8]) -> Self {
        let text = String::from_utf8_lossy(bytes);
        let (head, body) = text
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("no complete answer: {text:?}"));
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status line: {text:?}"));
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        Self {
            status,
            headers,
            body: body.as_bytes().to_vec(),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `request` on a fresh connection (while reading, so that a server that answers early
/// is heard) and returns the answer it gets before the server closes.
async fn raw(addr: SocketAddr, request: Vec<u8>) -> RawAnswer {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut read, mut write) = stream.into_split();
    let writer = tokio::spawn(async move {
        let _ = write.write_all(&request).await;
        write
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + SOON;
    loop {
        match tokio::time::timeout_at(deadline, read.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
        }
    }
    writer.abort();
    RawAnswer::parse(&answer)
}

/// The contract's error body, with the exact content type.
fn assert_contract_error(answer: &RawAnswer, status: u16) {
    let text = String::from_utf8_lossy(&answer.body).to_string();
    assert_eq!(answer.status, status, "{text}");
    assert_eq!(
        answer.header("content-type"),
        Some("application/json; charset=utf-8"),
        "{:?}",
        answer.headers
    );
    let body: serde_json::Value =
        serde_json::from_slice(&answer.body).unwrap_or_else(|e| panic!("{e}: {text:?}"));
    assert_eq!(body["statusCode"], status, "{body}");
    assert_eq!(body["type"], "InvalidArgument", "{body}");
    assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(body.get("cause").is_some(), "{body}");
}

fn request_with(uri: &str, headers: &str) -> Vec<u8> {
    format!("GET {uri} HTTP/1.1\r\nHost: node\r\n{headers}\r\n").into_bytes()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_from_one_address_leaves_the_node_serving_everyone_else() {
    let _alone = common::turns::alone();
    const LIMIT: usize = 2048;
    let site = TestSite::start(
        3,
        Tuning {
            fd_limit: Some(LIMIT as u64),
            ..Default::default()
        },
    )
    .await;
    site.wait_for_admin(0).await;
    let node = &site.nodes[0];
    let flooder: IpAddr = format!("127.0.{}.200", site.octet).parse().expect("ip");
    let half_request = b"POST /rest/v1/iam/sessions HTTP/1.1\r\nHost: node\r\nContent-Ty";
    let half_cluster = b"POST /raft/site:local/append HTTP/1.1\r\nHost: node\r\nx-sess";
    let half_hello = [0x16, 0x03, 0x01, 0x02];
    // More connections than the node may open files, across its api, cluster and IMAPS ports.
    let mut held = flood(flooder, node.api, LIMIT / 2, half_request).await;
    held.extend(flood(flooder, node.cluster, LIMIT / 4, half_cluster).await);
    held.extend(flood(flooder, node.imaps, LIMIT / 2, &half_hello).await);
    assert!(held.len() > LIMIT, "only {} connections opened", held.len());

    let api = Api::default();
    let base = site.api_url(0);
    let health = api
        .try_call(Method::GET, format!("{base}/healthcheck"), "")
        .await
        .expect("a health check answered under the flood");
    assert_eq!(health.status, 200, "{}", health.text);
    let login = api
        .try_login(&base, "master.domain", "admin", ADMIN_PASSWORD)
        .await
        .expect("a login answered under the flood");
    assert_eq!(login.status, 200, "{}", login.text);
    let admin = login.body["token"].as_str().expect("token");
    let created = api
        .try_call(Method::PUT, format!("{base}/domains/flood.test"), admin)
        .await
        .expect("a replicated write answered under the flood");
    assert_eq!(created.status, 204, "{}", created.text);
    assert!(
        site.status(0).await.is_some_and(|s| s.leader.is_some()),
        "the node's cluster listener answers its peers"
    );
    let ca = std::fs::read_to_string(&node.cert_file).expect("certificate");
    let tcp = tokio::time::timeout(SOON, TcpStream::connect(node.imaps))
        .await
        .expect("IMAPS connects in time")
        .expect("IMAPS connects");
    let mut imaps = mail::LineClient::new(mail::handshake(tcp, &ca).await);
    imaps.line().await.expect("a greeting");
    imaps
        .send(&format!("a1 LOGIN admin@master.domain {ADMIN_PASSWORD}"))
        .await;
    let answer = imaps.line().await.expect("an answer to LOGIN");
    assert!(answer.starts_with("a1 OK"), "{answer}");
    drop(held);
}

#[tokio::test(flavor = "multi_thread")]
async fn one_address_gets_no_more_than_its_share_of_a_listener() {
    let site = TestSite::start(1, Tuning::default()).await;
    let node = &site.nodes[0];
    let source: IpAddr = format!("127.0.{}.201", site.octet).parse().expect("ip");
    // The default per-source caps: 256 on the api, 64 on a mail listener.
    let mut api_held = flood(source, node.api, 256, b"GET /healthcheck HTTP/1.1\r\n").await;
    assert_eq!(api_held.len(), 256);
    let mut refused = half_open(source, node.api, b"GET /healthcheck HTTP/1.1\r\n")
        .await
        .expect("connects");
    assert!(
        closed_within(&mut refused, SOON).await,
        "the 257th is refused"
    );
    assert!(
        !closed_within(&mut api_held[0], Duration::from_millis(200)).await,
        "the first ones stay open"
    );
    let imap_held = flood(source, node.imap, 64, b"").await;
    assert_eq!(imap_held.len(), 64);
    let mut refused = half_open(source, node.imap, b"").await.expect("connects");
    assert!(
        closed_within(&mut refused, SOON).await,
        "the 65th is refused"
    );
    let mut greeted = mail::plain(node.imap).await;
    let greeting = greeted.line().await.expect("another address is greeted");
    assert!(greeting.starts_with("* OK"), "{greeting}");
    let api = Api::default();
    let health = api
        .try_call(Method::GET, format!("{}/healthcheck", site.api_url(0)), "")
        .await
        .expect("another address is served");
    assert_eq!(health.status, 200, "{}", health.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_requests_and_idle_connections_are_closed() {
    let site = TestSite::start(
        1,
        Tuning {
            limits: vec![
                "header_read_timeout_ms = 300".into(),
                "body_read_timeout_ms = 300".into(),
                "keep_alive_timeout_ms = 3000".into(),
            ],
            ..Default::default()
        },
    )
    .await;
    let node = &site.nodes[0];
    for addr in [node.api, node.cluster] {
        let mut half = TcpStream::connect(addr).await.expect("connect");
        half.write_all(b"GET /healthcheck HTTP/1.1\r\nHost: no")
            .await
            .expect("send");
        assert!(
            closed_within(&mut half, SOON).await,
            "half a header on {addr}"
        );
        let mut silent = TcpStream::connect(addr).await.expect("connect");
        assert!(
            closed_within(&mut silent, SOON).await,
            "nothing at all on {addr}"
        );
    }

    let mut slow_body = TcpStream::connect(node.api).await.expect("connect");
    slow_body
        .write_all(b"POST /rest/v1/iam/sessions HTTP/1.1\r\nHost: node\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"domain\":")
        .await
        .expect("send");
    let answer = read_to_close(&mut slow_body).await;
    assert!(!answer.is_empty(), "a body that stops coming is answered");
    let answer = RawAnswer::parse(&answer);
    assert_contract_error_kind(&answer, 408);

    // A kept-alive connection takes another request after more than the header timeout, and is
    // closed once idle for the keep-alive timeout.
    let mut kept = TcpStream::connect(node.api).await.expect("connect");
    for _ in 0..2 {
        kept.write_all(b"GET /healthcheck/checks HTTP/1.1\r\nHost: node\r\n\r\n")
            .await
            .expect("send");
        let mut buf = vec![0u8; 65536];
        let n = tokio::time::timeout(SOON, kept.read(&mut buf))
            .await
            .expect("an answer in time")
            .expect("read");
        assert!(
            buf[..n].starts_with(b"HTTP/1.1 200"),
            "{:?}",
            String::from_utf8_lossy(&buf[..n])
        );
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
    assert!(
        closed_within(&mut kept, SOON).await,
        "an idle kept-alive connection"
    );
}

/// The contract's body for an error with `status`, whatever its `type`.
fn assert_contract_error_kind(answer: &RawAnswer, status: u16) {
    let body: serde_json::Value = serde_json::from_slice(&answer.body)
        .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&answer.body)));
    assert_eq!(answer.status, status, "{body}");
    assert_eq!(body["statusCode"], status, "{body}");
    assert_eq!(
        answer.header("content-type"),
        Some("application/json; charset=utf-8")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_http_servers_own_refusals_carry_the_contracts_body() {
    let site = TestSite::start(1, Tuning::default()).await;
    let api = site.nodes[0].api;
    for size in [9 * 1024, 70 * 1024, 2 * 1024 * 1024] {
        let uri = format!("/healthcheck?{}", "a".repeat(size));
        let answer = raw(api, request_with(&uri, "")).await;
        assert_contract_error(&answer, 414);
    }
    for size in [70 * 1024, 2 * 1024 * 1024] {
        let header = format!("X-Big: {}\r\n", "b".repeat(size));
        let answer = raw(api, request_with("/healthcheck", &header)).await;
        assert_contract_error(&answer, 431);
    }
    let many: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    assert_contract_error(&raw(api, request_with("/healthcheck", &many)).await, 431);
    assert_contract_error(&raw(api, b"GARBAGE\r\n\r\n".to_vec()).await, 400);
    let bad_header = request_with("/healthcheck", "Bad Header: x\r\n");
    assert_contract_error(&raw(api, bad_header).await, 400);
    // A good request on the same listener is still served.
    let fine = raw(
        api,
        b"GET /healthcheck HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n".to_vec(),
    )
    .await;
    assert_eq!(fine.status, 200);
}
