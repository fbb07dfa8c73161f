//! The cluster listener serves peers only, and bad input never panics it or changes state.

use crate::common;

use std::time::Duration;

use common::{new_session, TestSite, Tuning, SECRET};
use sessionplane::testing::{SiteAnswer, SiteCall};
use sessionplane::testing::{SiteQuery, SiteQueryReply};
use sessionplane_cluster::{MAX_BODY_BYTES, SECRET_HEADER};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What is sent, where, with which secret, and the status expected.
struct Case {
    what: &'static str,
    url: String,
    secret: Option<String>,
    body: Vec<u8>,
    expected: u16,
}

fn case(what: &'static str, url: &str, secret: Option<&str>, body: Vec<u8>, expected: u16) -> Case {
    Case {
        what,
        url: url.into(),
        secret: secret.map(String::from),
        body,
        expected,
    }
}

async fn post(url: &str, secret: Option<&str>, body: Vec<u8>) -> u16 {
    let client = reqwest::Client::new();
    let mut request = client.post(url).timeout(Duration::from_secs(10)).body(body);
    if let Some(secret) = secret {
        request = request.header(SECRET_HEADER, secret);
    }
    request
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// The status of a POST written by hand with the cluster secret and `headers`; the body is
/// written by a task of its own, so an answer sent before the body is read is still seen.
async fn raw_post(addr: &str, path: &str, headers: &str, body: Vec<u8>) -> u16 {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut reader, mut writer) = stream.into_split();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\n{SECRET_HEADER}: {SECRET}\r\n{headers}\r\n"
    );
    let writing = tokio::spawn(async move {
        // The server may close before the body is through; only the answer matters.
        if writer.write_all(head.as_bytes()).await.is_ok() {
            let _ = writer.write_all(&body).await;
        }
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(30), async {
        while !answer.windows(2).any(|w| w == b"\r\n") {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    writing.abort();
    assert!(read.is_ok(), "no answer within 30 s");
    let line = String::from_utf8_lossy(&answer);
    line.split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {line:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_an_error_status_and_change_nothing() {
    let site = TestSite::start(1, Tuning::default()).await;
    let Ok(SiteAnswer::Session(_)) = site
        .propose(
            0,
            &SiteCall::create_session(new_session(uuid::Uuid::now_v7(), 60_000)),
        )
        .await
    else {
        panic!("create failed")
    };
    let before = site.status(0).await.expect("status");
    let base = format!("http://{}", site.cluster_addr(0));
    let append = format!("{base}/raft/site:local/append");
    let propose = format!("{base}/raft/site:local/propose");
    let valid_propose_body =
        rmp_serde::to_vec(&serde_json::json!({"payload": [1, 2, 3], "forwarded": false})).unwrap();

    let suffixed = format!("{SECRET}x");
    let group_route = |verb: &str| format!("{base}/raft/site:local/{verb}");
    let cases = vec![
        case("no secret", &propose, None, valid_propose_body.clone(), 401),
        case(
            "wrong secret",
            &propose,
            Some("not-the-secret"),
            valid_propose_body.clone(),
            401,
        ),
        case(
            "secret with a suffix",
            &propose,
            Some(&suffixed),
            valid_propose_body,
            401,
        ),
        case(
            "garbage append",
            &append,
            Some(SECRET),
            b"\xc1\xff garbage".to_vec(),
            400,
        ),
        case("empty append", &append, Some(SECRET), Vec::new(), 400),
        case(
            "garbage vote",
            &group_route("vote"),
            Some(SECRET),
            b"{}".to_vec(),
            400,
        ),
        case(
            "garbage snapshot",
            &group_route("snapshot"),
            Some(SECRET),
            vec![0x93, 1, 2, 3],
            400,
        ),
        case(
            "unknown group",
            &format!("{base}/raft/site:nowhere/append"),
            Some(SECRET),
            Vec::new(),
            404,
        ),
        case(
            "invalid group name",
            &format!("{base}/raft/NOT..VALID!/append"),
            Some(SECRET),
            Vec::new(),
            404,
        ),
        case(
            "unknown route",
            &format!("{base}/admin"),
            Some(SECRET),
            Vec::new(),
            404,
        ),
    ];
    for c in cases {
        assert_eq!(
            post(&c.url, c.secret.as_deref(), c.body).await,
            c.expected,
            "{}",
            c.what
        );
    }

    // Oversized bodies, over a raw socket that reads the answer while it writes: an HTTP client
    // that fails on the reset which follows an early answer would make these flaky.
    let addr = site.cluster_addr(0);
    let over = MAX_BODY_BYTES + 1;
    let declared = format!("content-length: {over}\r\n");
    assert_eq!(
        raw_post(&addr, "/raft/site:local/append", &declared, Vec::new()).await,
        413,
        "a declared length over the limit is refused before any of the body is sent"
    );
    let mut chunked = format!("{over:x}\r\n").into_bytes();
    chunked.resize(chunked.len() + over, 0);
    chunked.extend_from_slice(b"\r\n0\r\n\r\n");
    assert_eq!(
        raw_post(
            &addr,
            "/raft/site:local/append",
            "transfer-encoding: chunked\r\n",
            chunked
        )
        .await,
        413,
        "a body with no declared length that streams past the limit"
    );

    // A command the state machine cannot decode is answered, not applied as anything.
    let answer = site
        .peers
        .propose(
            &site.cluster_addr(0),
            &site.group,
            b"\xc1 not a command".to_vec(),
            Duration::from_secs(5),
        )
        .await
        .expect("delivered")
        .expect("applied");
    let reply = SiteAnswer::decode(&answer).expect("a site reply");
    assert!(matches!(reply, SiteAnswer::Invalid(_)), "{reply:?}");

    let after = site.status(0).await.expect("node still answers");
    assert_eq!(after.term, before.term);
    assert_eq!(after.leader, before.leader);
    match site.query(0, &SiteQuery::Counts).await {
        Ok(SiteQueryReply::Counts { live: 1, stored: 1 }) => {}
        other => panic!("state changed: {other:?}"),
    }
    let log = site.log_of(0);
    assert!(!log.contains("panicked"), "the node panicked:\n{log}");
    assert!(!log.contains(SECRET), "the cluster secret was logged");
}
