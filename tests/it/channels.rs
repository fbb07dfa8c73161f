//! Mail channels and the James channels API against real nodes (child processes on 127.0.0.x):
//! JMAP websockets and event sources registered from any node, listed with James's fields,
//! sorted and paged, and disconnected from another node by user, by list or all at once.

use crate::common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use base64::Engine;
use common::cli;
use common::{add_user, assert_error, Api, TestSite, Tuning};
use futures_util::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(5);

fn basic(user: &str, password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

/// Opens `/jmap/ws` with the `jmap` subprotocol, or returns the refusal's status.
async fn jmap_ws(
    api: &str,
    authorization: &str,
    subprotocol: bool,
) -> Result<common::ws::Socket, u16> {
    let url = format!("{}/jmap/ws", api.replacen("http://", "ws://", 1));
    let mut request = url.into_client_request().expect("request");
    request
        .headers_mut()
        .insert("authorization", authorization.parse().unwrap());
    if subprotocol {
        request
            .headers_mut()
            .insert("sec-websocket-protocol", "jmap".parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, response)) => {
            assert_eq!(response.headers()["sec-websocket-protocol"], "jmap");
            Ok(socket)
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(e) => panic!("jmap websocket: {e}"),
    }
}

async fn echo(socket: &mut common::ws::Socket) {
    let request = json!({"@type": "Request", "id": "r1", "using": ["urn:ietf:params:jmap:core"],
                         "methodCalls": [["Core/echo", {"ping": 1}, "c1"]]});
    socket
        .send(Message::Text(request.to_string().into()))
        .await
        .expect("send");
    let answer = common::ws::next_json(socket, WAIT)
        .await
        .expect("an answer");
    assert_eq!(answer["@type"], "Response");
    assert_eq!(
        answer["methodResponses"][0],
        json!(["Core/echo", {"ping": 1}, "c1"])
    );
}

/// Waits for the server to close: the close code it sent.
async fn close_code(socket: &mut common::ws::Socket) -> Option<u16> {
    loop {
        match tokio::time::timeout(WAIT, socket.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|f| u16::from(f.code)),
            Ok(Some(Ok(_))) => continue,
            Ok(_) => return None,
            Err(_) => panic!("not closed within {WAIT:?}"),
        }
    }
}

/// An open event stream: the first event it sent.
async fn event_source(api: &Api, base: &str, token: &str) -> (reqwest::Response, String) {
    let mut response = api
        .http
        .get(format!(
            "{base}/jmap/eventsource?types=*&closeafter=no&ping=1"
        ))
        .bearer_auth(token)
        .send()
        .await
        .expect("event source");
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let first = tokio::time::timeout(WAIT, response.chunk())
        .await
        .expect("an event in time")
        .expect("chunk")
        .expect("not ended");
    (response, String::from_utf8_lossy(&first).into_owned())
}

/// Reads an event stream until it ends; panics if it does not end in time.
async fn stream_ends(response: &mut reqwest::Response) {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, response.chunk()).await {
            Ok(Ok(Some(_))) => continue,
            Ok(_) => return,
            Err(_) => panic!("the event stream did not end"),
        }
    }
}

async fn channels(api: &Api, base: &str, token: &str, path: &str) -> Vec<Value> {
    let answer = api
        .get(format!("{base}{path}"))
        .as_(token)
        .expect(200)
        .await;
    answer.body.as_array().expect("an array").clone()
}

fn assert_james_shape(channel: &Value) {
    let keys: BTreeSet<&str> = channel
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let expected = BTreeSet::from([
        "protocol",
        "endpoint",
        "remoteAddress",
        "connectionDate",
        "isActive",
        "isOpen",
        "isWritable",
        "isEncrypted",
        "username",
        "protocolSpecificInformation",
        "node",
        "site",
    ]);
    assert_eq!(keys, expected, "{channel}");
    for flag in ["isActive", "isOpen", "isWritable", "isEncrypted"] {
        assert!(channel[flag].is_boolean(), "{flag}");
    }
    assert!(channel["protocolSpecificInformation"].is_object());
    let date = channel["connectionDate"].as_str().unwrap();
    assert!(
        time::OffsetDateTime::parse(date, &time::format_description::well_known::Rfc3339).is_ok(),
        "{date}"
    );
    assert_eq!(channel["site"], "local");
}

#[tokio::test(flavor = "multi_thread")]
async fn jmap_channels_are_listed_everywhere_and_disconnected_from_another_node() {
    let site = TestSite::start(3, Tuning::default()).await;
    site.wait_for_admin(2).await;
    let api = Api::default();
    let (b1, b2, b3) = (site.api_url(0), site.api_url(1), site.api_url(2));
    let admin = api.admin_token(&b3).await;
    add_user(&api, &b3, &admin, "example.com", "alice", "alice-password").await;
    add_user(&api, &b3, &admin, "example.com", "bob", "bob-password").await;

    let mut alice_ws = jmap_ws(&b1, &basic("alice@example.com", "alice-password"), true)
        .await
        .unwrap();
    echo(&mut alice_ws).await;
    let alice_token = api
        .token(&b2, "example.com", "alice", "alice-password")
        .await;
    let (mut alice_events, first) = event_source(&api, &b2, &alice_token).await;
    assert!(first.contains("event: state"), "{first}");
    let mut bob_ws = jmap_ws(&b1, &basic("bob@example.com", "bob-password"), true)
        .await
        .unwrap();

    for base in [&b1, &b2, &b3] {
        let listed = channels(&api, base, &admin, "/servers/channels/alice@example.com").await;
        assert_eq!(listed.len(), 2, "{listed:?}");
        for channel in &listed {
            assert_james_shape(channel);
            assert_eq!(channel["protocol"], "JMAP");
            assert_eq!(channel["username"], "alice@example.com");
            assert_eq!(channel["isActive"], true);
        }
        let endpoints: BTreeSet<&str> = listed
            .iter()
            .map(|c| c["endpoint"].as_str().unwrap())
            .collect();
        assert_eq!(endpoints, BTreeSet::from(["EventSource", "WebSocket"]));
        let nodes: BTreeSet<&str> = listed.iter().map(|c| c["node"].as_str().unwrap()).collect();
        assert_eq!(nodes.len(), 2, "held by nodes 1 and 2: {nodes:?}");
    }
    let users = api
        .call(
            Method::GET,
            format!("{b2}/servers/connectedUsers"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(users.body, json!(["alice@example.com", "bob@example.com"]));

    api.delete(format!("{b3}/servers/channels/alice@example.com"))
        .as_(&admin)
        .expect(204)
        .await;
    assert_eq!(close_code(&mut alice_ws).await, Some(1008));
    stream_ends(&mut alice_events).await;
    echo(&mut bob_ws).await;
    assert!(
        channels(&api, &b1, &admin, "/servers/channels/alice@example.com")
            .await
            .is_empty()
    );

    let listed = api
        .send(
            api.http
                .delete(format!("{b2}/servers/channels"))
                .bearer_auth(&admin)
                .body(r#"["bob@example.com"]"#),
        )
        .await;
    assert_eq!(listed.status, 204, "{}", listed.text);
    assert_eq!(close_code(&mut bob_ws).await, Some(1008));

    let mut again = jmap_ws(&b3, &basic("bob@example.com", "bob-password"), true)
        .await
        .unwrap();
    let (mut events, _) = event_source(&api, &b1, &alice_token).await;
    api.delete(format!("{b1}/servers/channels"))
        .as_(&admin)
        .expect(204)
        .await;
    assert_eq!(close_code(&mut again).await, Some(1008));
    stream_ends(&mut events).await;
    assert!(channels(&api, &b2, &admin, "/servers/channels")
        .await
        .is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn channels_sort_page_refuse_bad_input_and_end_with_the_password() {
    let site = TestSite::start(1, Tuning::default()).await;
    site.wait_for_admin(0).await;
    let api = Api::default();
    let base = site.api_url(0);
    let admin = api.admin_token(&base).await;
    add_user(&api, &base, &admin, "example.com", "carl", "carl-password").await;
    add_user(&api, &base, &admin, "other.org", "olga", "olga-password").await;
    let mut sockets = Vec::new();
    for user in ["carl@example.com", "olga@other.org", "carl@example.com"] {
        let password = format!("{}-password", user.split('@').next().unwrap());
        sockets.push(jmap_ws(&base, &basic(user, &password), true).await.unwrap());
    }
    let carl = api
        .token(&base, "example.com", "carl", "carl-password")
        .await;
    let (_events, _) = event_source(&api, &base, &carl).await;

    let all = channels(&api, &base, &admin, "/servers/channels").await;
    assert_eq!(all.len(), 4);
    let sorted = channels(
        &api,
        &base,
        &admin,
        "/servers/channels?sortBy=username&sortDirection=desc",
    )
    .await;
    let names: Vec<&str> = sorted
        .iter()
        .map(|c| c["username"].as_str().unwrap())
        .collect();
    assert_eq!(names[0], "olga@other.org");
    let page = channels(
        &api,
        &base,
        &admin,
        "/servers/channels?sortBy=endpoint&limit=2&offset=1",
    )
    .await;
    assert_eq!(page.len(), 2);
    assert_eq!(
        page[0]["endpoint"], "WebSocket",
        "EventSource sorts first: {page:?}"
    );
    let by_date = channels(
        &api,
        &base,
        &admin,
        "/servers/channels?sortBy=connectionDate",
    )
    .await;
    let dates: Vec<&str> = by_date
        .iter()
        .map(|c| c["connectionDate"].as_str().unwrap())
        .collect();
    assert!(dates.windows(2).all(|w| w[0] <= w[1]), "{dates:?}");

    for (path, status, kind) in [
        ("/servers/channels?sortBy=password", 400, "InvalidArgument"),
        ("/servers/channels?sortDirection=up", 400, "InvalidArgument"),
        ("/servers/channels?sortType=date", 400, "InvalidArgument"),
        ("/servers/channels?limit=0", 400, "InvalidArgument"),
        ("/servers/channels?offset=-1", 400, "InvalidArgument"),
        ("/servers/channels?sites=west", 400, "InvalidArgument"),
        ("/servers/channels/not-an-address", 400, "InvalidArgument"),
    ] {
        let answer = api
            .call(Method::GET, format!("{base}{path}"), Some(&admin), None)
            .await;
        assert_error(&answer, status, kind);
    }
    for body in ["[]", "{\"users\"", "[7]", "[\"no-domain\"]"] {
        let answer = api
            .send(
                api.http
                    .delete(format!("{base}/servers/channels"))
                    .bearer_auth(&admin)
                    .body(body),
            )
            .await;
        assert_error(&answer, 400, "InvalidArgument");
    }
    assert_eq!(
        channels(&api, &base, &admin, "/servers/channels")
            .await
            .len(),
        4,
        "refusals change nothing"
    );

    // Who may: nobody without a token, not a user, a domain administrator for its domain only.
    api.get(format!("{base}/servers/channels"))
        .expect_error(401, "Unauthorized")
        .await;
    api.get(format!("{base}/servers/channels"))
        .as_(&carl)
        .expect_error(403, "Forbidden")
        .await;
    api.put(format!("{base}/groups/admins@other.org"))
        .as_(&admin)
        .body(json!({"members": ["olga@other.org"]}))
        .expect(201)
        .await;
    let olga = api.token(&base, "other.org", "olga", "olga-password").await;
    let hers = channels(&api, &base, &olga, "/servers/channels").await;
    assert!(hers.iter().all(|c| c["username"] == "olga@other.org") && hers.len() == 1);
    api.delete(format!("{base}/servers/channels/carl@example.com"))
        .as_(&olga)
        .expect_error(403, "Forbidden")
        .await;

    // The JMAP doors.
    let refused = jmap_ws(&base, &basic("carl@example.com", "wrong"), true)
        .await
        .err();
    assert_eq!(refused, Some(401));
    let no_subprotocol = jmap_ws(&base, &basic("carl@example.com", "carl-password"), false)
        .await
        .err();
    assert_eq!(no_subprotocol, Some(400));
    let bad_ping = api
        .send(
            api.http
                .get(format!("{base}/jmap/eventsource?ping=soon"))
                .bearer_auth(&carl),
        )
        .await;
    assert_error(&bad_ping, 400, "InvalidArgument");
    assert!(bad_ping.headers.get("www-authenticate").is_none());
    // A 401 names the schemes that work, Basic first (what JMAP clients answer).
    for (path, credentials) in [
        ("/jmap/eventsource", None),
        (
            "/jmap/eventsource",
            Some(basic("carl@example.com", "wrong")),
        ),
        ("/jmap/ws", None),
    ] {
        let mut request = api.http.get(format!("{base}{path}"));
        if let Some(credentials) = credentials {
            request = request.header("authorization", credentials);
        }
        let refused = api.send(request).await;
        assert_error(&refused, 401, "Unauthorized");
        let challenges: Vec<&str> = refused
            .headers
            .get_all("www-authenticate")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        assert_eq!(
            challenges.first().copied(),
            Some("Basic realm=\"sessionplane\", charset=\"UTF-8\""),
            "{path}: {challenges:?}"
        );
        assert!(
            challenges.contains(&"Bearer realm=\"sessionplane\""),
            "{challenges:?}"
        );
    }

    // A password change ends the user's channels.
    let changed = api
        .call(
            Method::POST,
            format!("{base}/users/carl@example.com/password"),
            Some(&admin),
            Some(json!({"newPwd": "carl-password-2", "newPwdConfirm": "carl-password-2"})),
        )
        .await;
    assert!(changed.status < 300, "{}", changed.text);
    assert_eq!(close_code(&mut sockets[0]).await, Some(1008));
    assert_eq!(close_code(&mut sockets[2]).await, Some(1008));
    echo(&mut sockets[1]).await;
    let left = channels(&api, &base, &admin, "/servers/channels").await;
    assert_eq!(left.len(), 1, "{left:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn channels_and_certs_through_the_cli() {
    let site = TestSite::start(1, Tuning::default()).await;
    site.wait_for_admin(0).await;
    let api = Api::default();
    let base = site.api_url(0);
    let admin = api.admin_token(&base).await;
    add_user(&api, &base, &admin, "example.com", "dora", "dora-password").await;
    let mut socket = jmap_ws(&base, &basic("dora@example.com", "dora-password"), true)
        .await
        .unwrap();

    let listed = cli(&["channels", "list", "--json"], &base, &admin);
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(listed[0]["username"], "dora@example.com");
    let table = cli(&["channels", "list", "dora@example.com"], &base, &admin);
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(
        table.contains("dora@example.com") && table.contains("WebSocket"),
        "{table}"
    );

    let done = cli(
        &["channels", "disconnect", "dora@example.com"],
        &base,
        &admin,
    );
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    assert_eq!(close_code(&mut socket).await, Some(1008));
    let none = cli(&["channels", "disconnect"], &base, &admin);
    assert!(!none.status.success());

    let shown = cli(&["certs", "show", "--json"], &base, &admin);
    assert!(
        shown.status.success(),
        "{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(
        shown.as_array().unwrap().len(),
        4,
        "imap, imaps, smtp and smtps: {shown}"
    );
    let reload = cli(&["certs", "reload"], &base, &admin);
    assert!(
        reload.status.success(),
        "{}",
        String::from_utf8_lossy(&reload.stderr)
    );
    let nowhere = cli(&["certs", "reload", "--port", "1"], &base, &admin);
    assert!(!nowhere.status.success());
    assert!(String::from_utf8_lossy(&nowhere.stderr).contains("400 notFound"));
}

/// A message over `max_message_bytes` ends the socket with a close frame 1009 (Message Too
/// Big), on the gateway and on the JMAP websocket alike, rather than a dropped connection.
#[tokio::test(flavor = "multi_thread")]
async fn a_message_over_the_limit_is_answered_with_close_1009() {
    let tuning = Tuning {
        gateway: vec!["max_message_bytes = 1024".into()],
        ..Default::default()
    };
    let (_site, api, base, admin) = common::admin_node(tuning).await;
    add_user(
        &api,
        &base,
        &admin,
        "example.com",
        "alice",
        "alice-password",
    )
    .await;
    let token = api
        .token(&base, "example.com", "alice", "alice-password")
        .await;
    let too_big = Message::Text("x".repeat(2000).into());

    let mut gateway = common::ws::open(&base, &token, common::ws::Auth::Bearer).await;
    common::ws::ping(&mut gateway).await;
    gateway.send(too_big.clone()).await.expect("send");
    assert_eq!(close_code(&mut gateway).await, Some(1009));

    let mut jmap = jmap_ws(&base, &basic("alice@example.com", "alice-password"), true)
        .await
        .unwrap();
    echo(&mut jmap).await;
    jmap.send(too_big).await.expect("send");
    assert_eq!(close_code(&mut jmap).await, Some(1009));
}
