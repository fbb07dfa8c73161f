//! Containment against two sites of three nodes, as real processes with real clients: a user
//! holding sessions, websockets and IMAP/SMTP channels on several nodes of both sites is
//! previewed (nothing closes), then contained in one call whose receipt is checked node for
//! node against what the clients saw close; the lock then keeps the user out of every node by
//! every protocol until it is lifted or expires; a site cut off gets its part through a task.

use crate::common;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use common::mail::{plain_credentials, LineClient};
use common::sites::{central_and_east, quick_federation};
use common::ws::{self, Auth, Socket};
use common::{add_user, Api, TestSite};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::Message;

const BOB_PW: &str = "bob-secret-pw-77";
const CAROL_PW: &str = "carol-secret-pw-78";
const LOCKED: &str = "Your account is locked: call the service desk";
const WAIT: Duration = Duration::from_secs(10);

type Mail = LineClient<TcpStream>;

async fn deployment() -> (TestSite, TestSite) {
    let mut tuning = quick_federation();
    tuning.mail = vec!["allow_plaintext_auth = true".into()];
    central_and_east(tuning).await
}

/// Logs `login@example.org` in at `base` (the directory entry may still be on its way to
/// that site: a few tries, fewer than the ban allows): its token.
async fn token(api: &Api, base: &str, login: &str, password: &str) -> String {
    for _ in 0..3 {
        let answer = api.login(base, "example.org", login, password).await;
        if answer.status == 200 {
            return answer.body["token"].as_str().expect("token").to_string();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    api.token(base, "example.org", login, password).await
}

async fn connect(addr: SocketAddr, from: Option<IpAddr>) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    if let Some(ip) = from {
        socket
            .bind(SocketAddr::new(ip, 0))
            .expect("bind the source address");
    }
    socket.connect(addr).await.expect("connect")
}

/// An IMAP LOGIN at `addr`: the client and the tagged answer.
async fn imap_login(
    addr: SocketAddr,
    from: Option<IpAddr>,
    user: &str,
    pw: &str,
) -> (Mail, String) {
    let mut client = LineClient::new(connect(addr, from).await);
    assert!(client.line().await.expect("greeting").starts_with("* OK"));
    client.send(&format!("a1 LOGIN {user} {pw}")).await;
    let answer = client.until("a1 ").await.pop().expect("tagged answer");
    (client, answer)
}

/// An SMTP AUTH PLAIN at `addr`: the client and the answer.
async fn smtp_auth(addr: SocketAddr, from: Option<IpAddr>, user: &str, pw: &str) -> (Mail, String) {
    let mut client = LineClient::new(connect(addr, from).await);
    assert!(client.line().await.expect("greeting").starts_with("220 "));
    client.send("EHLO test.client").await;
    client.until("250 ").await;
    client
        .send(&format!("AUTH PLAIN {}", plain_credentials(user, pw)))
        .await;
    let answer = client.line().await.expect("an answer");
    (client, answer)
}

/// A JMAP event source opened with Basic credentials: the answer's status and body.
async fn jmap_basic(api: &Api, base: &str, user: &str, pw: &str) -> (u16, Value) {
    use base64::Engine;
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"));
    let response = api
        .http
        .get(format!(
            "{base}/jmap/eventsource?types=*&closeafter=no&ping=1"
        ))
        .header("authorization", format!("Basic {basic}"))
        .send()
        .await
        .expect("sent");
    let status = response.status().as_u16();
    let body = match status {
        200 => Value::Null,
        _ => response.json().await.unwrap_or(Value::Null),
    };
    (status, body)
}

/// The `session_closed` message and the close code a socket ends with.
async fn closing(socket: &mut Socket) -> (Value, Option<u16>) {
    let said = ws::next_json(socket, WAIT)
        .await
        .expect("a session_closed message");
    loop {
        match tokio::time::timeout(WAIT, socket.next())
            .await
            .expect("closes in time")
        {
            Some(Ok(Message::Close(frame))) => return (said, frame.map(|f| u16::from(f.code))),
            Some(Ok(_)) => continue,
            _ => return (said, None),
        }
    }
}

async fn still_open(socket: &mut Socket) {
    ws::ping(socket).await;
}

async fn imap_still_open(client: &mut Mail) {
    client.send("n1 NOOP").await;
    let answer = client.until("n1 ").await.pop().expect("tagged answer");
    assert!(answer.starts_with("n1 OK"), "{answer}");
}

fn counts(part: &Value) -> (u64, u64, u64) {
    let n = |key: &str| {
        part[key]
            .as_u64()
            .unwrap_or_else(|| panic!("no {key}: {part}"))
    };
    (
        n("sessions_ended"),
        n("websockets_closed"),
        n("channels_closed"),
    )
}

fn node_counts(part: &Value, node: &str) -> (u64, u64) {
    let n = &part["nodes"][node];
    let count = |key: &str| {
        n[key]
            .as_u64()
            .unwrap_or_else(|| panic!("{node}: no {key}: {part}"))
    };
    (count("websockets_closed"), count("channels_closed"))
}

fn every_node(central: &TestSite, east: &TestSite) -> Vec<(String, SocketAddr, SocketAddr)> {
    [central, east]
        .iter()
        .flat_map(|site| {
            (0..site.nodes.len()).map(|i| (site.api_url(i), site.nodes[i].imap, site.nodes[i].smtp))
        })
        .collect()
}

/// Whether bob, with the right password, is kept out of every node by every protocol, with
/// the lock's message where the protocol carries one.
async fn bob_is_kept_out_everywhere(api: &Api, central: &TestSite, east: &TestSite) {
    for (base, imap, smtp) in every_node(central, east) {
        let refused = api.login(&base, "example.org", "bob", BOB_PW).await;
        assert_eq!(refused.status, 403, "{base}: {}", refused.text);
        assert_eq!(refused.body["type"], "Forbidden");
        assert_eq!(refused.body["message"], LOCKED, "{}", refused.text);
        let (_, answer) = imap_login(imap, None, "bob@example.org", BOB_PW).await;
        assert!(
            answer.starts_with("a1 NO [AUTHORIZATIONFAILED]"),
            "{base}: {answer}"
        );
        assert!(answer.contains(LOCKED), "{answer}");
        let (_, answer) = smtp_auth(smtp, None, "bob@example.org", BOB_PW).await;
        assert!(answer.starts_with("535 5.7.8"), "{base}: {answer}");
        let (status, body) = jmap_basic(api, &base, "bob@example.org", BOB_PW).await;
        assert_eq!(
            (status, body["message"].as_str()),
            (403, Some(LOCKED)),
            "{base}"
        );
    }
}

async fn bob_gets_in(api: &Api, base: &str) {
    let answer = api.login(base, "example.org", "bob", BOB_PW).await;
    assert_eq!(answer.status, 200, "{base}: {}", answer.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_contain_closes_what_the_clients_hold_node_for_node_and_the_lock_keeps_the_user_out() {
    let (central, east) = deployment().await;
    let api = Api::default();
    let (c1, c2, c3) = (central.api_url(0), central.api_url(1), central.api_url(2));
    let (e1, e2, e3) = (east.api_url(0), east.api_url(1), east.api_url(2));
    let admin = api.admin_token(&c2).await;
    add_user(&api, &c2, &admin, "example.org", "bob", BOB_PW).await;
    add_user(&api, &c2, &admin, "example.org", "carol", CAROL_PW).await;

    // bob: two sessions per site, a websocket on c1, c2, e2 and e3, IMAP on c3 and e1, SMTP
    // on c2. carol: a session with a websocket on c1 and IMAP on c3, which must stay open.
    let central_tokens = [
        token(&api, &c1, "bob", BOB_PW).await,
        token(&api, &c2, "bob", BOB_PW).await,
    ];
    let east_tokens = [
        token(&api, &e1, "bob", BOB_PW).await,
        token(&api, &e2, "bob", BOB_PW).await,
    ];
    let mut bob_sockets = vec![
        ws::open(&c1, &central_tokens[0], Auth::Bearer).await,
        ws::open(&c2, &central_tokens[1], Auth::Bearer).await,
        ws::open(&e2, &east_tokens[0], Auth::Bearer).await,
        ws::open(&e3, &east_tokens[1], Auth::Bearer).await,
    ];
    let mut bob_mail = Vec::new();
    for addr in [central.nodes[2].imap, east.nodes[0].imap] {
        let (client, answer) = imap_login(addr, None, "bob@example.org", BOB_PW).await;
        assert!(answer.starts_with("a1 OK"), "{answer}");
        bob_mail.push(client);
    }
    let (smtp, answer) = smtp_auth(central.nodes[1].smtp, None, "bob@example.org", BOB_PW).await;
    assert!(answer.starts_with("235 "), "{answer}");
    bob_mail.push(smtp);
    let carol = token(&api, &c1, "carol", CAROL_PW).await;
    let mut carol_socket = ws::open(&c1, &carol, Auth::Bearer).await;
    let (mut carol_imap, answer) =
        imap_login(central.nodes[2].imap, None, "carol@example.org", CAROL_PW).await;
    assert!(answer.starts_with("a1 OK"), "{answer}");

    // The dry run: what the clients hold, site by site and node by node; nothing closes.
    let preview = api
        .post(format!("{c2}/rest/v1/incidents"))
        .as_(&admin)
        .body(json!({"user": "bob@example.org", "sites": "all", "dry_run": true}))
        .expect(200)
        .await
        .body;
    assert_eq!(preview["dry_run"], true);
    assert_eq!(preview["complete"], true);
    let (pc, pe) = (&preview["sites"]["central"], &preview["sites"]["east"]);
    assert_eq!(
        (pc["status"].as_str(), pe["status"].as_str()),
        (Some("preview"), Some("preview"))
    );
    assert_eq!(counts(pc), (2, 2, 2), "{preview}");
    assert_eq!(counts(pe), (2, 2, 1), "{preview}");
    let expected = [
        (pc, "c1", (1, 0)),
        (pc, "c2", (1, 1)),
        (pc, "c3", (0, 1)),
        (pe, "e1", (0, 1)),
        (pe, "e2", (1, 0)),
        (pe, "e3", (1, 0)),
    ];
    for (part, node, held) in expected {
        assert_eq!(node_counts(part, node), held, "{node} in {preview}");
    }
    for socket in &mut bob_sockets {
        still_open(socket).await;
    }
    imap_still_open(&mut bob_mail[0]).await;
    api.get(format!("{e1}/rest/v1/iam/sessions/current"))
        .as_(&east_tokens[0])
        .expect(200)
        .await;
    let stored = api
        .get(format!("{c2}/rest/v1/incidents"))
        .as_(&admin)
        .expect(200)
        .await;
    assert_eq!(stored.body, json!([]), "a dry run keeps no receipt");

    // The contain: one call, a receipt that matches the preview node for node.
    let receipt = api
        .post(format!("{c2}/rest/v1/incidents"))
        .as_(&admin)
        .body(json!({
            "user": "bob@example.org", "sites": "all", "reason": "phished",
            "lock": {"message": LOCKED, "ttl": "1h"},
        }))
        .expect(200)
        .await
        .body;
    assert_eq!(receipt["complete"], true, "{receipt}");
    assert_eq!(receipt["dry_run"], false);
    assert_eq!(receipt["reason"], "phished");
    assert!(receipt["elapsed_ms"].as_f64().is_some_and(|ms| ms > 0.0));
    let lock_id = receipt["lock_id"].as_str().expect("a lock id").to_string();
    let (rc, re) = (&receipt["sites"]["central"], &receipt["sites"]["east"]);
    for part in [rc, re] {
        assert_eq!(part["status"], "contained", "{receipt}");
        assert!(
            part["log_index"].as_u64().is_some_and(|i| i > 0),
            "{receipt}"
        );
    }
    assert_eq!(counts(rc), counts(pc), "{receipt}");
    assert_eq!(counts(re), counts(pe), "{receipt}");
    for (_, node, held) in expected {
        let part = match node.starts_with('c') {
            true => rc,
            false => re,
        };
        assert_eq!(node_counts(part, node), held, "{node} in {receipt}");
        assert!(part["nodes"][node]["applied_at"].is_string(), "{receipt}");
    }

    // What the clients saw: every socket told `locked` and closed with 4005, every channel
    // said goodbye and closed; carol's stay open.
    for socket in &mut bob_sockets {
        let (said, code) = closing(socket).await;
        assert_eq!(said, json!({"type": "session_closed", "reason": "locked"}));
        assert_eq!(code, Some(4005));
    }
    for client in &mut bob_mail {
        let goodbye = client.line().await.expect("a goodbye");
        assert!(
            goodbye.starts_with("* BYE") || goodbye.starts_with("421 "),
            "{goodbye}"
        );
        assert!(client.closes_within(WAIT).await);
    }
    still_open(&mut carol_socket).await;
    imap_still_open(&mut carol_imap).await;

    // Every old token is refused at every node; carol's still works.
    for (site, tokens) in [(&central, &central_tokens), (&east, &east_tokens)] {
        for i in 0..3 {
            for token in tokens.iter() {
                let answer = api
                    .get(format!("{}/rest/v1/iam/sessions/current", site.api_url(i)))
                    .as_(token)
                    .send()
                    .await;
                assert_eq!(answer.status, 401, "{}", answer.text);
            }
        }
    }
    api.get(format!("{c3}/rest/v1/iam/sessions/current"))
        .as_(&carol)
        .expect(200)
        .await;

    // The lock keeps bob out of every node by every protocol; a wrong password is still the
    // ordinary refusal, and the locked attempts never earned a ban.
    bob_is_kept_out_everywhere(&api, &central, &east).await;
    let wrong = api
        .login(&e3, "example.org", "bob", "not-the-password")
        .await;
    assert_eq!(wrong.status, 401, "{}", wrong.text);
    let (_, answer) = imap_login(central.nodes[0].imap, None, "bob@example.org", "wrong").await;
    assert!(
        answer.starts_with("a1 NO [AUTHENTICATIONFAILED]"),
        "{answer}"
    );

    // The lock is listed in force at both sites, the receipt is kept.
    let locks = api
        .get(format!("{c1}/rest/v1/locks"))
        .as_(&admin)
        .query(&[("sites", "all")])
        .expect(200)
        .await
        .body;
    let listed = locks.as_array().expect("a list");
    assert_eq!(listed.len(), 1, "{locks}");
    assert_eq!(listed[0]["lock_id"], lock_id.as_str());
    assert_eq!(listed[0]["target"], json!({"user": "bob@example.org"}));
    assert_eq!(
        listed[0]["sites"],
        json!({"central": "in_force", "east": "in_force"})
    );
    let incident = receipt["incident_id"].as_str().expect("an id");
    let kept = api
        .get(format!("{c3}/rest/v1/incidents/{incident}"))
        .as_(&admin)
        .expect(200)
        .await
        .body;
    assert_eq!(kept["sites"], receipt["sites"]);

    // Lifting the lock lets bob in again, everywhere.
    api.delete(format!("{c1}/rest/v1/locks/{lock_id}"))
        .as_(&admin)
        .expect(204)
        .await;
    for base in [&c1, &e2] {
        bob_gets_in(&api, base).await;
    }
    let (_, answer) = imap_login(east.nodes[2].imap, None, "bob@example.org", BOB_PW).await;
    assert!(answer.starts_with("a1 OK"), "{answer}");

    // A lock's expiry lifts it without anyone.
    let placed = api
        .post(format!("{c1}/rest/v1/locks"))
        .as_(&admin)
        .body(json!({"target": {"user": "bob@example.org"}, "message": LOCKED, "ttl": "3s", "sites": "all"}))
        .expect(201)
        .await
        .body;
    assert_eq!(
        placed["sites"],
        json!({"central": "in_force", "east": "in_force"})
    );
    assert!(placed["expires_at"].is_string());
    let refused = api.login(&e1, "example.org", "bob", BOB_PW).await;
    assert_eq!(
        (refused.status, refused.body["message"].as_str()),
        (403, Some(LOCKED))
    );
    tokio::time::sleep(Duration::from_millis(3_200)).await;
    for base in [&c3, &e1] {
        bob_gets_in(&api, base).await;
    }
    let in_force = api
        .get(format!("{c1}/rest/v1/locks"))
        .as_(&admin)
        .expect(200)
        .await;
    assert_eq!(
        in_force.body,
        json!([]),
        "an expired lock is no longer listed in force"
    );

    // Each site keeps its own event of each change; every locked login is an event too.
    let events = |action: &'static str| {
        let call = api.get(format!("{c1}/rest/v1/audit")).as_(&admin).query(&[
            ("sites", "all"),
            ("action", action),
            ("limit", "1000"),
        ]);
        async move { call.expect(200).await.body }
    };
    let contained = events("incident.contain").await;
    let sites: Vec<&str> = contained
        .as_array()
        .expect("a list")
        .iter()
        .map(|e| e["site"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(sites.len(), 2, "{contained}");
    assert!(
        sites.contains(&"central") && sites.contains(&"east"),
        "{contained}"
    );
    assert_eq!(contained[0]["target"], "bob@example.org");
    assert_eq!(contained[0]["outcome"], "ok");
    assert_eq!(
        events("lock.create").await.as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(
        events("lock.delete").await.as_array().map(Vec::len),
        Some(2)
    );
    let locked = events("login.locked").await;
    assert_eq!(locked.as_array().map(Vec::len), Some(6 * 4 + 1), "{locked}");
    let verified = api
        .get(format!("{e2}/rest/v1/audit/verify"))
        .as_(&api.admin_token(&e2).await)
        .query(&[("sites", "all")])
        .expect(200)
        .await
        .body;
    assert_eq!(verified["sites"]["central"]["ok"], true, "{verified}");
    assert_eq!(verified["sites"]["east"]["ok"], true, "{verified}");
}

/// carol's sessions and sockets as `base` lists them.
async fn carols(api: &Api, base: &str, admin: &str) -> Value {
    api.get(format!("{base}/rest/v1/master/logicalroles/ws/sessions"))
        .as_(admin)
        .query(&[("user", "carol"), ("domain", "example.org")])
        .expect(200)
        .await
        .body
}

/// Polls `GET /tasks/{id}` at `base` until the task completed.
async fn wait_completed(api: &Api, base: &str, admin: &str, task_id: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let task = api
            .get(format!("{base}/tasks/{task_id}"))
            .as_(admin)
            .expect(200)
            .await;
        if task.body["status"] == "completed" {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never completed: {}",
            task.text
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_site_cut_off_is_contained_by_a_task_when_it_answers_and_a_dead_node_is_named() {
    let (mut central, east) = deployment().await;
    let api = Api::default();
    let (c1, c2) = (central.api_url(0), central.api_url(1));
    let (e1, e2, e3) = (east.api_url(0), east.api_url(1), east.api_url(2));
    let admin = api.admin_token(&c1).await;
    add_user(&api, &c1, &admin, "example.org", "bob", BOB_PW).await;
    add_user(&api, &c1, &admin, "example.org", "carol", CAROL_PW).await;
    let at_central = token(&api, &c2, "bob", BOB_PW).await;
    let at_east = token(&api, &e1, "bob", BOB_PW).await;
    let mut east_socket = ws::open(&e2, &at_east, Auth::Bearer).await;

    let cut = common::net::Cut::sites(central.octet, east.octet);
    let refused = api
        .post(format!("{c1}/rest/v1/incidents"))
        .as_(&admin)
        .body(json!({"user": "bob@example.org", "sites": "all", "lock": {"message": LOCKED}}))
        .expect_error(503, "Unavailable")
        .await
        .body;
    let receipt = &refused["receipt"];
    assert_eq!(receipt["complete"], false, "{refused}");
    assert_eq!(
        receipt["sites"]["central"]["status"], "contained",
        "{refused}"
    );
    assert_eq!(counts(&receipt["sites"]["central"]), (1, 0, 0));
    let pending = &receipt["sites"]["east"];
    assert_eq!(pending["status"], "pending", "{refused}");
    assert!(pending["cause"].is_string() && pending.get("sessions_ended").is_none());
    let task_id = pending["task_id"].as_str().expect("a task").to_string();
    assert_eq!(refused["taskId"], task_id.as_str());
    // The reachable site is contained at once; the cut one is untouched until it answers.
    api.get(format!("{c2}/rest/v1/iam/sessions/current"))
        .as_(&at_central)
        .expect(401)
        .await;
    let locked = api.login(&c2, "example.org", "bob", BOB_PW).await;
    assert_eq!(
        (locked.status, locked.body["message"].as_str()),
        (403, Some(LOCKED))
    );
    still_open(&mut east_socket).await;
    let incident = receipt["incident_id"].as_str().expect("an id").to_string();
    let kept = api
        .get(format!("{c1}/rest/v1/incidents/{incident}"))
        .as_(&admin)
        .expect(200)
        .await;
    assert_eq!(kept.body["sites"]["east"]["status"], "pending");

    drop(cut);
    wait_completed(&api, &c1, &admin, &task_id).await;
    let (said, code) = closing(&mut east_socket).await;
    assert_eq!(
        (said["reason"].as_str(), code),
        (Some("locked"), Some(4005))
    );
    let kept = api
        .get(format!("{c2}/rest/v1/incidents/{incident}"))
        .as_(&admin)
        .expect(200)
        .await;
    let filled = &kept.body["sites"]["east"];
    assert_eq!(filled["status"], "contained", "{}", kept.text);
    assert_eq!(counts(filled), (1, 1, 0), "{}", kept.text);
    assert_eq!(node_counts(filled, "e2"), (1, 0), "{}", kept.text);
    assert_eq!(filled["task_id"], task_id.as_str());
    for base in [&e1, &e3] {
        let locked = api.login(base, "example.org", "bob", BOB_PW).await;
        assert_eq!(
            (locked.status, locked.body["message"].as_str()),
            (403, Some(LOCKED))
        );
    }
    let lock_id = receipt["lock_id"].as_str().expect("a lock");
    let lock = api
        .get(format!("{c1}/rest/v1/locks/{lock_id}"))
        .as_(&admin)
        .query(&[("sites", "all")])
        .expect(200)
        .await;
    assert_eq!(
        lock.body["sites"],
        json!({"central": "in_force", "east": "in_force"})
    );

    // A node killed just before a contain is named down; the site is still contained, and
    // the sockets that node held went with it.
    let carol = token(&api, &c1, "carol", CAROL_PW).await;
    let _dead_socket = ws::open(&central.api_url(2), &carol, Auth::Bearer).await;
    let before = carols(&api, &c2, &admin).await;
    assert_eq!(
        before.as_array().map(Vec::len),
        Some(2),
        "a session and its socket: {before}"
    );
    central.kill(2);
    let receipt = api
        .post(format!("{c1}/rest/v1/incidents"))
        .as_(&admin)
        .body(json!({"user": "carol@example.org"}))
        .expect(200)
        .await
        .body;
    let part = &receipt["sites"]["central"];
    assert_eq!(part["status"], "contained", "{receipt}");
    assert_eq!(part["nodes"]["c3"], json!({"status": "down"}), "{receipt}");
    assert_eq!(counts(part), (1, 1, 0), "{receipt}");
    assert!(part["nodes"]["c1"]["applied_at"].is_string(), "{receipt}");
    assert!(
        receipt["sites"].get("east").is_none(),
        "sites defaults to the current site"
    );
    assert_eq!(carols(&api, &c2, &admin).await, json!([]));
    assert_eq!(
        api.get(format!("{e2}/rest/v1/incidents"))
            .as_(&api.admin_token(&e2).await)
            .expect(200)
            .await
            .body,
        json!([]),
        "receipts are kept where the call was taken"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ip_lock_keeps_its_network_out_of_every_protocol_and_lets_others_in() {
    let tuning = common::Tuning {
        mail: vec!["allow_plaintext_auth = true".into()],
        ..Default::default()
    };
    let site = TestSite::start(3, tuning).await;
    site.wait_for_admin(0).await;
    let api = Api::default();
    let base = site.api_url(0);
    let admin = api.admin_token(&base).await;
    add_user(&api, &base, &admin, "example.org", "bob", BOB_PW).await;
    // Sources on networks no node lives on: 127.0.{o}.0/24 is locked, 127.0.{o+1}.0/24 not.
    let o = site.octet.wrapping_add(100);
    let locked_ip: IpAddr = format!("127.0.{o}.9").parse().unwrap();
    let other_ip: IpAddr = format!("127.0.{}.9", o.wrapping_add(1)).parse().unwrap();
    let (from_locked, from_other) = (Api::from_source(locked_ip), Api::from_source(other_ip));
    let opened = from_locked.token(&base, "example.org", "bob", BOB_PW).await;
    let spared = from_other.token(&base, "example.org", "bob", BOB_PW).await;
    let (mut imap_in, answer) = imap_login(
        site.nodes[1].imap,
        Some(locked_ip),
        "bob@example.org",
        BOB_PW,
    )
    .await;
    assert!(answer.starts_with("a1 OK"), "{answer}");

    let lock = api
        .post(format!("{base}/rest/v1/locks"))
        .as_(&admin)
        .body(json!({"target": {"ip": format!("127.0.{o}.0/24")}, "message": LOCKED}))
        .expect(201)
        .await
        .body;
    assert_eq!(lock["target"], json!({"ip": format!("127.0.{o}.0/24")}));
    assert_eq!(lock["expires_at"], Value::Null);
    // What was open from the network is ended; what was not, stays.
    let goodbye = imap_in.line().await.expect("a goodbye");
    assert!(goodbye.starts_with("* BYE"), "{goodbye}");
    api.get(format!("{base}/rest/v1/iam/sessions/current"))
        .as_(&opened)
        .expect(401)
        .await;
    api.get(format!("{base}/rest/v1/iam/sessions/current"))
        .as_(&spared)
        .expect(200)
        .await;
    for i in 0..3 {
        let node = &site.nodes[i];
        let url = site.api_url(i);
        let refused = from_locked.login(&url, "example.org", "bob", BOB_PW).await;
        assert_eq!(
            (refused.status, refused.body["message"].as_str()),
            (403, Some(LOCKED)),
            "{url}"
        );
        let admitted = from_other.login(&url, "example.org", "bob", BOB_PW).await;
        assert_eq!(admitted.status, 200, "{url}: {}", admitted.text);
        let (_, answer) = imap_login(node.imap, Some(locked_ip), "bob@example.org", BOB_PW).await;
        assert!(
            answer.starts_with("a1 NO [AUTHORIZATIONFAILED]"),
            "{answer}"
        );
        let (_, answer) = imap_login(node.imap, Some(other_ip), "bob@example.org", BOB_PW).await;
        assert!(answer.starts_with("a1 OK"), "{answer}");
        let (_, answer) = smtp_auth(node.smtp, Some(locked_ip), "bob@example.org", BOB_PW).await;
        assert!(answer.starts_with("535 5.7.8"), "{answer}");
        let (_, answer) = smtp_auth(node.smtp, Some(other_ip), "bob@example.org", BOB_PW).await;
        assert!(answer.starts_with("235 "), "{answer}");
        let (status, body) = jmap_basic(&from_locked, &url, "bob@example.org", BOB_PW).await;
        assert_eq!((status, body["message"].as_str()), (403, Some(LOCKED)));
        let (status, _) = jmap_basic(&from_other, &url, "bob@example.org", BOB_PW).await;
        assert_eq!(status, 200);
    }
    let lock_id = lock["lock_id"].as_str().expect("an id");
    api.delete(format!("{base}/rest/v1/locks/{lock_id}"))
        .as_(&admin)
        .expect(204)
        .await;
    let admitted = from_locked
        .login(&site.api_url(2), "example.org", "bob", BOB_PW)
        .await;
    assert_eq!(admitted.status, 200, "{}", admitted.text);
    let listed = api
        .get(format!("{base}/rest/v1/locks"))
        .as_(&admin)
        .query(&[("all", "true")])
        .expect(200)
        .await
        .body;
    assert_eq!(listed[0]["sites"], json!({"local": "lifted"}), "{listed}");
    assert!(listed[0]["lifted_at"].is_string());
}

#[tokio::test(flavor = "multi_thread")]
async fn locks_and_incidents_refuse_bad_input_and_callers_outside_their_reach() {
    let (_site, api, base, admin) = common::admin_node(common::Tuning::default()).await;
    add_user(&api, &base, &admin, "a.org", "anna", "anna-password").await;
    add_user(&api, &base, &admin, "a.org", "andy", "andy-password").await;
    add_user(&api, &base, &admin, "b.org", "bert", "bert-password").await;
    add_user(&api, &base, &admin, "b.org", "nina", "nina-password").await;
    api.put(format!("{base}/groups/admins@a.org"))
        .as_(&admin)
        .body(json!({"members": ["anna@a.org"]}))
        .expect(201)
        .await;
    let anna = api.token(&base, "a.org", "anna", "anna-password").await;
    let bert = api.token(&base, "b.org", "bert", "bert-password").await;
    let nina = api.token(&base, "b.org", "nina", "nina-password").await;
    let locks = format!("{base}/rest/v1/locks");
    let incidents = format!("{base}/rest/v1/incidents");
    let lock = |target: Value| json!({"target": target, "message": "locked"});

    for bad in [
        json!({"target": {}, "message": "m"}),
        json!({"target": {"user": "andy@a.org", "domain": "a.org"}, "message": "m"}),
        json!({"target": {"user": 7}, "message": "m"}),
        json!({"target": {"host": "x"}, "message": "m"}),
        json!({"target": "andy@a.org", "message": "m"}),
        json!({"target": {"ip": "300.1.2.3"}, "message": "m"}),
        json!({"target": {"session_id": "not-a-uuid"}, "message": "m"}),
        json!({"target": {"user": "andy@a.org"}, "message": ""}),
        json!({"target": {"user": "andy@a.org"}, "message": "two\nlines"}),
        json!({"target": {"user": "andy@a.org"}, "message": "m", "ttl": "forever"}),
        json!({"target": {"user": "andy@a.org"}, "message": "m", "ttl": "0s"}),
        json!({"target": {"user": "andy@a.org"}, "message": "m", "sites": ["nowhere"]}),
        json!({"target": {"user": "andy@a.org"}}),
    ] {
        api.post(&locks)
            .as_(&admin)
            .body(bad)
            .expect_error(400, "InvalidArgument")
            .await;
    }
    api.post(&locks)
        .as_(&admin)
        .body(lock(json!({"user": "nobody@a.org"})))
        .expect_error(404, "notFound")
        .await;
    api.post(&locks)
        .as_(&admin)
        .body(lock(json!({"domain": "c.org"})))
        .expect_error(404, "notFound")
        .await;
    api.get(format!("{locks}/not-a-uuid"))
        .as_(&admin)
        .expect_error(400, "InvalidArgument")
        .await;
    let unknown = uuid::Uuid::now_v7();
    api.get(format!("{locks}/{unknown}"))
        .as_(&admin)
        .expect_error(404, "notFound")
        .await;
    api.delete(format!("{locks}/{unknown}"))
        .as_(&admin)
        .expect_error(404, "notFound")
        .await;
    api.post(&locks)
        .body(lock(json!({"user": "andy@a.org"})))
        .expect_error(401, "Unauthorized")
        .await;

    // A domain administrator locks its own domain's users only; domain and network locks
    // need a global administrator; a user that administers nothing locks nothing.
    api.post(&locks)
        .as_(&anna)
        .body(lock(json!({"user": "andy@a.org"})))
        .expect(201)
        .await;
    api.post(&locks)
        .as_(&anna)
        .body(lock(json!({"user": "bert@b.org"})))
        .expect_error(403, "Forbidden")
        .await;
    api.post(&locks)
        .as_(&anna)
        .body(lock(json!({"domain": "a.org"})))
        .expect_error(403, "Forbidden")
        .await;
    api.post(&locks)
        .as_(&anna)
        .body(lock(json!({"ip": "10.0.0.0/8"})))
        .expect_error(403, "Forbidden")
        .await;
    api.post(&locks)
        .as_(&bert)
        .body(lock(json!({"user": "bert@b.org"})))
        .expect_error(403, "Forbidden")
        .await;
    let global = api
        .post(&locks)
        .as_(&admin)
        .body(lock(json!({"user": "bert@b.org"})))
        .expect(201)
        .await;
    let seen_by_anna = api.get(&locks).as_(&anna).expect(200).await.body;
    assert_eq!(
        seen_by_anna.as_array().map(Vec::len),
        Some(1),
        "anna sees her domain's: {seen_by_anna}"
    );
    let bert_lock = global.body["lock_id"].as_str().expect("an id");
    api.delete(format!("{locks}/{bert_lock}"))
        .as_(&anna)
        .expect_error(403, "Forbidden")
        .await;
    for bad in [
        json!({}),
        json!({"user": 7}),
        json!({"user": "andy@a.org", "dry_run": "yes"}),
        json!({"user": "andy@a.org", "sites": "everywhere"}),
        json!({"user": "andy@a.org", "lock": {"message": ""}}),
        json!({"user": "andy@a.org", "lock": {"message": "m", "ttl": "soon"}}),
        json!({"user": "andy@a.org", "reason": "two\nlines"}),
        json!({"user": "not an address"}),
    ] {
        api.post(&incidents)
            .as_(&admin)
            .body(bad)
            .expect_error(400, "InvalidArgument")
            .await;
    }
    api.post(&incidents)
        .as_(&admin)
        .body(json!({"user": "nobody@a.org"}))
        .expect_error(404, "notFound")
        .await;
    api.post(&incidents)
        .as_(&anna)
        .body(json!({"user": "bert@b.org"}))
        .expect_error(403, "Forbidden")
        .await;
    api.post(&incidents)
        .as_(&nina)
        .body(json!({"user": "andy@a.org", "dry_run": true}))
        .expect_error(403, "Forbidden")
        .await;
    api.post(&incidents)
        .body(json!({"user": "andy@a.org"}))
        .expect_error(401, "Unauthorized")
        .await;
    api.get(format!("{incidents}/not-a-uuid"))
        .as_(&admin)
        .expect_error(400, "InvalidArgument")
        .await;
    api.get(format!("{incidents}/{unknown}"))
        .as_(&admin)
        .expect_error(404, "notFound")
        .await;
    let receipt = api
        .post(&incidents)
        .as_(&anna)
        .body(json!({"user": "andy@a.org"}))
        .expect(200)
        .await;
    assert_eq!(receipt.body["requested_by"], "anna@a.org");
    let kept = api.get(&incidents).as_(&anna).expect(200).await.body;
    assert_eq!(kept.as_array().map(Vec::len), Some(1), "{kept}");
    let kept_for_nina = api.get(&incidents).as_(&nina).send().await;
    assert_eq!(kept_for_nina.status, 403, "{}", kept_for_nina.text);
    // The caller's own session is never ended by its own lock call (everyone else's from
    // that network is).
    api.post(&locks)
        .as_(&admin)
        .body(lock(json!({"ip": "127.0.0.0/8"})))
        .expect(201)
        .await;
    api.get(format!("{base}/rest/v1/iam/sessions/current"))
        .as_(&admin)
        .expect(200)
        .await;

    api.get(format!("{base}/rest/v1/iam/sessions/current"))
        .as_(&anna)
        .expect(401)
        .await;
}
