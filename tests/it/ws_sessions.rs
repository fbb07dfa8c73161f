//! The `ws` logical role's sessions API and the websocket gateway, against real nodes (child
//! processes on 127.0.0.x) with real HTTP and websocket clients: listing field for field,
//! kill and logout closing sockets on every node, every way a session ends reaching its
//! sockets, node loss, paging and streaming, and bad input.

use crate::common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::ws::{self, Auth};
use common::{add_user, assert_error, Api, TestSite, Tuning};
use reqwest::Method;
use serde_json::{json, Value};

const SESSIONS: &str = "/rest/v1/master/logicalroles/ws/sessions";
const WAIT: Duration = Duration::from_secs(5);

async fn list(api: &Api, base: &str, token: &str, query: &str) -> Vec<Value> {
    let answer = api
        .get(format!("{base}{SESSIONS}{query}"))
        .as_(token)
        .expect(200)
        .await;
    answer.body.as_array().expect("a bare array").clone()
}

/// The items of one session, keyed by `session_type`.
fn items_of<'a>(items: &'a [Value], session_id: &str) -> Vec<&'a Value> {
    items
        .iter()
        .filter(|item| item["session_id"] == session_id)
        .collect()
}

fn keys(value: &Value) -> BTreeSet<&str> {
    value
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect()
}

/// Checks an item against the contract's example, key for key and type for type.
fn assert_contract_shape(item: &Value, site: &str) {
    let mut expected = BTreeSet::from([
        "domain",
        "login",
        "session_id",
        "session_type",
        "site",
        "ttl",
        "user_id",
    ]);
    if item["session_type"] == "websocket" {
        expected.insert("connections");
    } else {
        assert_eq!(item["session_type"], "http");
    }
    assert_eq!(keys(item), expected, "{item}");
    for key in ["domain", "login", "session_id", "user_id"] {
        assert!(item[key].as_str().is_some_and(|v| !v.is_empty()), "{key}");
    }
    assert!(uuid::Uuid::parse_str(item["session_id"].as_str().unwrap()).is_ok());
    assert!(uuid::Uuid::parse_str(item["user_id"].as_str().unwrap()).is_ok());
    assert_eq!(item["site"], site);
    assert!(item["ttl"].as_u64().is_some_and(|ttl| ttl > 0), "{item}");
    for connection in item["connections"].as_array().into_iter().flatten() {
        assert_eq!(
            keys(connection),
            BTreeSet::from(["conn_id", "is_pid_alive", "node", "pid"])
        );
        assert!(uuid::Uuid::parse_str(connection["conn_id"].as_str().unwrap()).is_ok());
        assert!(connection["is_pid_alive"].is_boolean());
        let pid = connection["pid"].as_str().unwrap();
        let parts: Vec<&str> = pid
            .strip_prefix('<')
            .and_then(|p| p.strip_suffix('>'))
            .expect("<N.S.I>")
            .split('.')
            .collect();
        assert_eq!(parts.len(), 3, "{pid}");
        assert!(parts.iter().all(|p| p.parse::<u64>().is_ok()), "{pid}");
    }
}

/// Polls node `i`'s listing until `done` holds for the items of `session_id`.
async fn wait_for_items(
    api: &Api,
    base: &str,
    token: &str,
    session_id: &str,
    within: Duration,
    done: impl Fn(&[&Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + within;
    loop {
        let items = list(api, base, token, "").await;
        let found: Vec<Value> = items_of(&items, session_id).into_iter().cloned().collect();
        if done(&found.iter().collect::<Vec<_>>()) {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "listing did not settle within {within:?}: {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn login(api: &Api, base: &str, domain: &str, user: &str, pwd: &str) -> (String, String) {
    let answer = api.login(base, domain, user, pwd).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    (
        answer.body["token"].as_str().unwrap().to_string(),
        answer.body["session_id"].as_str().unwrap().to_string(),
    )
}

/// Every item of a listing read page after page (`query` sets `limit`), each page at most
/// `limit` long.
async fn pages(api: &Api, base: &str, admin: &str, query: &str, limit: usize) -> Vec<Value> {
    let mut items = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut url = format!("{base}{SESSIONS}?{query}");
        if let Some(t) = &token {
            url += &format!("&page_token={t}");
        }
        let answer = api.get(url).as_(admin).expect(200).await;
        let page = answer.body.as_array().expect("an array").clone();
        assert!(page.len() <= limit, "{}", answer.text);
        items.extend(page);
        match answer.headers.get("x-next-page-token") {
            Some(next) => token = Some(next.to_str().expect("ascii").to_string()),
            None => return items,
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_admin_kill_on_one_node_closes_the_sockets_held_by_the_others() {
    let site = TestSite::start(3, Tuning::default()).await;
    site.wait_for_admin(2).await;
    let api = Api::default();
    let (b1, b2, b3) = (site.api_url(0), site.api_url(1), site.api_url(2));
    let admin = api.admin_token(&b3).await;
    add_user(&api, &b3, &admin, "example.com", "alice", "alice-password").await;
    let (alice, session) = login(&api, &b1, "example.com", "alice", "alice-password").await;

    let mut on_n1 = ws::open(&b1, &alice, Auth::Bearer).await;
    let mut on_n2 = ws::open(&b2, &alice, Auth::Query).await;
    ws::ping(&mut on_n1).await;
    ws::ping(&mut on_n2).await;

    let items = list(&api, &b3, &admin, "?user=alice&domain=example.com").await;
    let mine = items_of(&items, &session);
    assert_eq!(mine.len(), 2, "{items:?}");
    for item in &mine {
        assert_contract_shape(item, "local");
        assert_eq!(item["login"], "alice");
        assert_eq!(item["domain"], "example.com");
    }
    let socket_item = mine
        .iter()
        .find(|i| i["session_type"] == "websocket")
        .expect("a websocket item");
    let connections = socket_item["connections"].as_array().unwrap();
    let nodes: BTreeSet<&str> = connections
        .iter()
        .map(|c| c["node"].as_str().unwrap())
        .collect();
    let expected: BTreeSet<String> = [0, 1]
        .iter()
        .map(|&i| format!("n{}@{}", i + 1, site.nodes[i].cluster.ip()))
        .collect();
    assert_eq!(
        nodes,
        expected.iter().map(String::as_str).collect::<BTreeSet<_>>()
    );
    assert!(connections.iter().all(|c| c["is_pid_alive"] == true));
    assert!(
        items_of(&items, &session)
            .iter()
            .all(|i| i.get("connections").is_some() == (i["session_type"] == "websocket")),
        "connections only on websocket items"
    );

    api.delete(format!("{b3}{SESSIONS}/{session}?sites=%22all%22"))
        .as_(&admin)
        .expect(204)
        .await;
    for socket in [&mut on_n1, &mut on_n2] {
        let closed = ws::closed_by_server(socket, WAIT).await;
        assert_eq!(closed, (Some("revoked".into()), Some(4001)));
    }
    for base in [&b1, &b2, &b3] {
        let items = list(&api, base, &admin, "").await;
        assert!(items_of(&items, &session).is_empty(), "{items:?}");
    }
    api.get(format!("{b2}/rest/v1/iam/sessions/current"))
        .as_(&alice)
        .expect(401)
        .await;
    assert_eq!(
        ws::try_open(&b1, &alice, Auth::Cookie).await.err(),
        Some(401)
    );
    api.delete(format!("{b1}{SESSIONS}/{session}"))
        .as_(&admin)
        .expect_error(404, "notFound")
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn logout_closes_every_other_session_and_socket_and_spares_the_callers() {
    let site = TestSite::start(3, Tuning::default()).await;
    site.wait_for_admin(0).await;
    let api = Api::default();
    let (b1, b2) = (site.api_url(0), site.api_url(1));
    let (mine, my_session) =
        login(&api, &b1, "master.domain", "admin", common::ADMIN_PASSWORD).await;
    let (other, other_session) =
        login(&api, &b2, "master.domain", "admin", common::ADMIN_PASSWORD).await;
    let mut my_socket = ws::open(&b1, &mine, Auth::Cookie).await;
    let mut other_socket = ws::open(&b2, &other, Auth::Bearer).await;

    let answer = api
        .post(format!("{b1}{SESSIONS}"))
        .as_(&mine)
        .body(
            json!({"action": "logout", "domain": "master.domain", "user": "admin",
                        "sites": "all"}),
        )
        .expect(200)
        .await;
    assert_eq!(
        answer.body,
        json!({"status": "logged out all sessions but current", "closed": 1,
               "sites": {"local": 1}})
    );
    let closed = ws::closed_by_server(&mut other_socket, WAIT).await;
    assert_eq!(closed, (Some("logout".into()), Some(4003)));
    ws::ping(&mut my_socket).await;
    let items = list(&api, &b2, &mine, "").await;
    assert!(items_of(&items, &other_session).is_empty());
    let kept = items_of(&items, &my_session);
    assert_eq!(
        kept.len(),
        2,
        "the caller's session and socket stay: {items:?}"
    );

    // By user id this time, from a service-less admin session on another node: nothing else
    // to close, and the caller's own session still stands.
    let user_id = kept[0]["user_id"].as_str().unwrap();
    let again = api
        .call(
            Method::POST,
            format!("{b2}{SESSIONS}"),
            Some(&mine),
            Some(json!({"action": "logout", "domain": "master.domain", "user": user_id})),
        )
        .await;
    assert_eq!(again.body["closed"], 0, "{}", again.text);
    ws::ping(&mut my_socket).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn every_way_a_session_ends_reaches_its_sockets() {
    let tuning = Tuning {
        sessions: vec!["lifetime_secs = 3".into(), "purge_interval_ms = 100".into()],
        ..Default::default()
    };
    let site = TestSite::start(1, tuning).await;
    site.wait_for_admin(0).await;
    let api = Api::default();
    let base = site.api_url(0);
    let admin = api.admin_token(&base).await;
    add_user(&api, &base, &admin, "example.com", "bob", "bob-password-1").await;

    // Expiry: 4002, before the admin's own 3 s session runs out too.
    let (bob, _) = login(&api, &base, "example.com", "bob", "bob-password-1").await;
    let mut socket = ws::open(&base, &bob, Auth::Bearer).await;
    let closed = ws::closed_by_server(&mut socket, Duration::from_secs(8)).await;
    assert_eq!(closed, (Some("expired".into()), Some(4002)));

    // IAM logout: 4003.
    let (bob, _) = login(&api, &base, "example.com", "bob", "bob-password-1").await;
    let mut socket = ws::open(&base, &bob, Auth::Query).await;
    api.delete(format!("{base}/rest/v1/iam/sessions/current"))
        .as_(&bob)
        .expect(204)
        .await;
    let closed = ws::closed_by_server(&mut socket, WAIT).await;
    assert_eq!(closed, (Some("logout".into()), Some(4003)));

    // A password change by an administrator: 4001.
    let (bob, _) = login(&api, &base, "example.com", "bob", "bob-password-1").await;
    let mut socket = ws::open(&base, &bob, Auth::Bearer).await;
    let admin = api.admin_token(&base).await;
    let changed = api
        .call(
            Method::POST,
            format!("{base}/users/bob@example.com/password"),
            Some(&admin),
            Some(json!({"newPwd": "bob-password-2", "newPwdConfirm": "bob-password-2"})),
        )
        .await;
    assert!(changed.status < 300, "{}", changed.text);
    let closed = ws::closed_by_server(&mut socket, WAIT).await;
    assert_eq!(closed, (Some("revoked".into()), Some(4001)));

    // Disabled, then deleted: 4004 both.
    for (method, body) in [
        (Method::PATCH, Some(json!({"disabled": true}))),
        (Method::DELETE, None),
    ] {
        if method == Method::DELETE {
            api.patch(format!("{base}/users/bob@example.com"))
                .as_(&admin)
                .body(json!({"disabled": false}))
                .expect(200)
                .await;
        }
        let (bob, _) = login(&api, &base, "example.com", "bob", "bob-password-2").await;
        let mut socket = ws::open(&base, &bob, Auth::Cookie).await;
        let admin = api.admin_token(&base).await;
        let answer = api
            .call(
                method,
                format!("{base}/users/bob@example.com"),
                Some(&admin),
                body,
            )
            .await;
        assert!(answer.status < 300, "{}", answer.text);
        let closed = ws::closed_by_server(&mut socket, WAIT).await;
        assert_eq!(closed, (Some("user_disabled".into()), Some(4004)));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silent_client_is_dropped_and_its_connection_forgotten() {
    let tuning = Tuning {
        gateway: vec![
            "ping_interval_ms = 200".into(),
            "idle_timeout_ms = 800".into(),
        ],
        ..Default::default()
    };
    let site = TestSite::start(1, tuning).await;
    site.wait_for_admin(0).await;
    let api = Api::default();
    let base = site.api_url(0);
    let (admin, session) = login(
        &api,
        &base,
        "master.domain",
        "admin",
        common::ADMIN_PASSWORD,
    )
    .await;
    // Never read: the server's pings go unanswered.
    let silent = ws::open(&base, &admin, Auth::Bearer).await;
    let listed = wait_for_items(&api, &base, &admin, &session, WAIT, |items| {
        items.len() == 2
    })
    .await;
    assert_eq!(listed[1]["connections"][0]["is_pid_alive"], true);
    wait_for_items(&api, &base, &admin, &session, WAIT, |items| {
        items.len() == 1
    })
    .await;
    drop(silent);

    // A client that answers stays, past several idle timeouts.
    let mut talking = ws::open(&base, &admin, Auth::Bearer).await;
    for _ in 0..8 {
        ws::ping(&mut talking).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let items = list(&api, &base, &admin, "").await;
    assert_eq!(items_of(&items, &session).len(), 2);
    let unknown = r#"{"type":"subscribe"}"#;
    futures_util::SinkExt::send(&mut talking, unknown.into())
        .await
        .unwrap();
    let answer = ws::next_json(&mut talking, WAIT).await.unwrap();
    assert_eq!(answer["type"], "error");
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_of_a_killed_node_show_dead_then_vanish() {
    let site_tuning = Tuning::default();
    let mut site = TestSite::start(3, site_tuning).await;
    site.wait_for_admin(0).await;
    let api = Api::default();
    let (b1, b3) = (site.api_url(0), site.api_url(2));
    let (admin, session) = login(&api, &b1, "master.domain", "admin", common::ADMIN_PASSWORD).await;
    let _held_by_n3 = ws::open(&b3, &admin, Auth::Bearer).await;
    wait_for_items(&api, &b1, &admin, &session, WAIT, |items| {
        items.len() == 2 && items[1]["connections"][0]["is_pid_alive"] == true
    })
    .await;

    let killed_at = Instant::now();
    site.kill(2);
    wait_for_items(
        &api,
        &b1,
        &admin,
        &session,
        Duration::from_secs(10),
        |items| items.len() == 2 && items[1]["connections"][0]["is_pid_alive"] == false,
    )
    .await;
    wait_for_items(
        &api,
        &b1,
        &admin,
        &session,
        Duration::from_secs(30),
        |items| items.len() == 1,
    )
    .await;
    assert!(
        killed_at.elapsed() < Duration::from_secs(30),
        "reaped after {:?}",
        killed_at.elapsed()
    );

    // The restarted node registers under its next incarnation.
    site.restart(2).await;
    let mut again = ws::open(&b3, &admin, Auth::Bearer).await;
    ws::ping(&mut again).await;
    let items = wait_for_items(&api, &b1, &admin, &session, WAIT, |items| {
        items.len() == 2 && items[1]["connections"][0]["is_pid_alive"] == true
    })
    .await;
    let pid = items[1]["connections"][0]["pid"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(pid.starts_with("<3."), "{pid}");
    assert!(
        pid.ends_with(".2>"),
        "the second incarnation of node 3: {pid}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_and_streams_give_the_same_list() {
    let site = TestSite::start(1, Tuning::default()).await;
    site.wait_for_admin(0).await;
    let api = Api::default();
    let base = site.api_url(0);
    let admin = api.admin_token(&base).await;
    add_user(
        &api,
        &base,
        &admin,
        "example.com",
        "carol",
        "carol-password",
    )
    .await;
    let mut sockets = Vec::new();
    for i in 0..7 {
        let (token, _) = login(&api, &base, "example.com", "carol", "carol-password").await;
        if i % 2 == 0 {
            sockets.push(ws::open(&base, &token, Auth::Bearer).await);
        }
    }
    let streamed = list(&api, &base, &admin, "").await;
    assert_eq!(streamed.len(), 8 + 4, "8 sessions, 4 with a socket");

    let paged = pages(&api, &base, &admin, "limit=5", 5).await;
    let strip_ttl = |items: &[Value]| -> Vec<Value> {
        items
            .iter()
            .map(|i| {
                let mut i = i.clone();
                i["ttl"] = Value::Null;
                i
            })
            .collect()
    };
    assert_eq!(strip_ttl(&paged), strip_ttl(&streamed));

    let websockets = list(&api, &base, &admin, "?session_type=websocket").await;
    assert_eq!(websockets.len(), 4);
    let carol = list(&api, &base, &admin, "?user=carol&session_type=http").await;
    assert_eq!(carol.len(), 7);
    // By id, the listing pages through the by-user index: the same items, page after page.
    let carol_id = carol[0]["user_id"].as_str().expect("user_id").to_string();
    let by_id = list(&api, &base, &admin, &format!("?user={carol_id}")).await;
    let by_login = list(&api, &base, &admin, "?user=carol").await;
    assert_eq!(strip_ttl(&by_id), strip_ttl(&by_login));
    let paged_by_id = pages(&api, &base, &admin, &format!("user={carol_id}&limit=3"), 3).await;
    assert_eq!(strip_ttl(&paged_by_id), strip_ttl(&by_login));
    let by_domain = list(&api, &base, &admin, "?domain=Example.COM").await;
    assert_eq!(by_domain.len(), 7 + 4);
}

/// A request as a table row: method, path (with query) and body.
type Request = (Method, String, Option<Value>);

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_the_exact_status_and_type() {
    let site = TestSite::start(1, Tuning::default()).await;
    site.wait_for_admin(0).await;
    let api = Api::default();
    let base = site.api_url(0);
    let admin = api.admin_token(&base).await;
    add_user(&api, &base, &admin, "example.com", "dave", "dave-password").await;
    add_user(&api, &base, &admin, "other.org", "olga", "olga-password").await;
    api.put(format!("{base}/groups/admins@other.org"))
        .as_(&admin)
        .body(json!({"members": ["olga@other.org"]}))
        .expect(201)
        .await;
    let (dave, dave_session) = login(&api, &base, "example.com", "dave", "dave-password").await;
    let (olga, _) = login(&api, &base, "other.org", "olga", "olga-password").await;

    let get = |query: &str| (Method::GET, format!("{SESSIONS}{query}"), None);
    let post = |body: Value| (Method::POST, SESSIONS.to_string(), Some(body));
    let logout = |sites: Value| {
        json!({"action": "logout", "domain": "example.com",
                                       "user": "dave", "sites": sites})
    };
    let cases: Vec<(Request, u16, &str)> = vec![
        (get("?sites=west"), 400, "InvalidArgument"),
        (get("?sites=%5B%22west%22%5D"), 400, "InvalidArgument"),
        (get("?sites=%5B"), 400, "InvalidArgument"),
        (get("?sites=%5B%5D"), 400, "InvalidArgument"),
        (get("?sites=null"), 400, "InvalidArgument"),
        (post(logout(Value::Null)), 400, "InvalidArgument"),
        (
            (Method::GET, "/servers/channels?sites=null".into(), None),
            400,
            "InvalidArgument",
        ),
        (get("?limit=0"), 400, "InvalidArgument"),
        (get("?limit=abc"), 400, "InvalidArgument"),
        (get("?limit=10001"), 400, "InvalidArgument"),
        (get("?page_token=garbage"), 400, "InvalidArgument"),
        (get("?session_type=imap"), 400, "InvalidArgument"),
        (get("?domain=a%2Fb"), 400, "InvalidArgument"),
        (
            post(json!({"action": "kill", "domain": "example.com", "user": "dave"})),
            400,
            "InvalidArgument",
        ),
        (
            post(json!({"domain": "example.com", "user": "dave"})),
            400,
            "InvalidArgument",
        ),
        (
            post(json!({"action": "logout", "user": "dave"})),
            400,
            "InvalidArgument",
        ),
        (
            post(json!({"action": "logout", "domain": 7, "user": "dave"})),
            400,
            "InvalidArgument",
        ),
        (post(logout(json!("everywhere"))), 400, "InvalidArgument"),
        (post(logout(json!(["west"]))), 400, "InvalidArgument"),
        (
            post(json!({"action": "logout", "domain": "nowhere.org", "user": "dave"})),
            404,
            "notFound",
        ),
        (
            post(json!({"action": "logout", "domain": "example.com", "user": "nobody"})),
            404,
            "notFound",
        ),
        (
            post(json!({"action": "logout", "domain": "example.com",
                     "user": uuid::Uuid::now_v7().to_string()})),
            404,
            "notFound",
        ),
        (
            (Method::DELETE, format!("{SESSIONS}/not-a-uuid"), None),
            400,
            "InvalidArgument",
        ),
        (
            (
                Method::DELETE,
                format!("{SESSIONS}/{}", uuid::Uuid::now_v7()),
                None,
            ),
            404,
            "notFound",
        ),
        (
            (
                Method::DELETE,
                format!("{SESSIONS}/{dave_session}?sites=nowhere"),
                None,
            ),
            400,
            "InvalidArgument",
        ),
        (
            (Method::PUT, SESSIONS.to_string(), None),
            405,
            "InvalidArgument",
        ),
    ];
    for ((method, path, body), status, kind) in cases {
        let answer = api
            .call(
                method.clone(),
                format!("{base}{path}"),
                Some(&admin),
                body.clone(),
            )
            .await;
        assert_error(&answer, status, kind);
        if status == 400 && path.contains("sites=") {
            assert!(
                answer.text.contains("local"),
                "names the known sites: {}",
                answer.text
            );
        }
    }
    let malformed = api
        .send(
            api.http
                .post(format!("{base}{SESSIONS}"))
                .bearer_auth(&admin)
                .header("content-type", "application/json")
                .body("{\"action\": "),
        )
        .await;
    assert_error(&malformed, 400, "InvalidArgument");

    // Who may do what.
    for (token, status, kind) in [(None, 401, "Unauthorized"), (Some(&dave), 403, "Forbidden")] {
        for (method, path, body) in [
            get(""),
            post(logout(json!("current"))),
            (Method::DELETE, format!("{SESSIONS}/{dave_session}"), None),
        ] {
            let answer = api
                .call(
                    method,
                    format!("{base}{path}"),
                    token.map(String::as_str),
                    body,
                )
                .await;
            assert_error(&answer, status, kind);
        }
    }
    for (method, path, body) in [
        get("?domain=example.com"),
        post(logout(json!("current"))),
        (Method::DELETE, format!("{SESSIONS}/{dave_session}"), None),
    ] {
        let answer = api
            .call(method, format!("{base}{path}"), Some(&olga), body)
            .await;
        assert_error(&answer, 403, "Forbidden");
    }
    let olgas_view = list(&api, &base, &olga, "").await;
    assert!(!olgas_view.is_empty());
    assert!(
        olgas_view.iter().all(|i| i["domain"] == "other.org"),
        "{olgas_view:?}"
    );
    let still_there = list(&api, &base, &admin, "?user=dave").await;
    assert_eq!(still_there.len(), 1, "refused requests change nothing");

    // The gateway's door.
    assert_eq!(ws::try_open(&base, "", Auth::Query).await.err(), Some(401));
    assert_eq!(
        ws::try_open(&base, "garbage", Auth::Bearer).await.err(),
        Some(401)
    );
    api.get(format!("{base}/rest/v1/ws"))
        .as_(&dave)
        .expect_error(400, "InvalidArgument")
        .await;
}

/// A 3-node site, every node ready, with the user erin@example.com; the admin's token.
async fn three_nodes_with_erin() -> (TestSite, Api, String) {
    let site = TestSite::start(3, Tuning::default()).await;
    for i in 0..3 {
        site.wait_for_admin(i).await;
    }
    let api = Api::default();
    let admin = api.admin_token(&site.api_url(0)).await;
    add_user(
        &api,
        &site.api_url(0),
        &admin,
        "example.com",
        "erin",
        "erin-password",
    )
    .await;
    (site, api, admin)
}

/// A session opened through one node is found, and revoked, by the next request at another
/// node at once: the revoking command applies after the login's in the site's log, and never
/// answers 404 for a session acknowledged before it.
#[tokio::test(flavor = "multi_thread")]
async fn a_session_opened_at_one_node_is_revoked_at_another_at_once() {
    let (site, api, admin) = three_nodes_with_erin().await;
    for round in 0..30 {
        let (_, id) = login(
            &api,
            &site.api_url(round % 3),
            "example.com",
            "erin",
            "erin-password",
        )
        .await;
        let other = site.api_url((round + 1) % 3);
        let revoked = api
            .call(
                Method::DELETE,
                format!("{other}{SESSIONS}/{id}"),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(revoked.status, 204, "round {round}: {}", revoked.text);
        let again = api
            .call(
                Method::DELETE,
                format!("{other}{SESSIONS}/{id}"),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(again.status, 404, "round {round}: {}", again.text);
    }
}

/// A revoked administrator's token revokes nothing, at any node, from the moment its own
/// revocation is acknowledged: the revoking command checks its caller's session when it
/// applies, so a node that has not applied the revocation yet cannot let it through.
#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_administrator_cannot_revoke_at_any_node() {
    let (site, api, admin) = three_nodes_with_erin().await;
    let (_, erins) = login(
        &api,
        &site.api_url(2),
        "example.com",
        "erin",
        "erin-password",
    )
    .await;
    for round in 0..30 {
        let node = |k: usize| site.api_url((round + k) % 3);
        let (doomed, doomed_id) = login(
            &api,
            &node(0),
            "master.domain",
            "admin",
            common::ADMIN_PASSWORD,
        )
        .await;
        let revoked = api
            .call(
                Method::DELETE,
                format!("{}{SESSIONS}/{doomed_id}", node(1)),
                Some(&admin),
                None,
            )
            .await;
        assert_eq!(revoked.status, 204, "round {round}: {}", revoked.text);
        api.delete(format!("{}{SESSIONS}/{erins}", node(2)))
            .as_(&doomed)
            .expect_error(401, "Unauthorized")
            .await;
        api.post(format!("{}{SESSIONS}", node(2)))
            .as_(&doomed)
            .body(json!({"action": "logout", "domain": "example.com", "user": "erin"}))
            .expect_error(401, "Unauthorized")
            .await;
    }
    let still = list(&api, &site.api_url(0), &admin, "?user=erin").await;
    assert_eq!(items_of(&still, &erins).len(), 1, "{still:?}");
}
