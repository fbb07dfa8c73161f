//! Two sites of three nodes each, as real processes: the `sites` parameter on every admin
//! endpoint, fan-out and merge, honest partial failure (503, `allow_partial`, durable tasks),
//! the directory across sites, and a WAN cut made with the kernel's packet filter.

use crate::common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::net::Cut;
use common::ws::{self, Auth};
use common::{add_user, assert_error, Answer, Api, TestSite};
use common::{cli, cli_command};
use reqwest::Method;
use serde_json::json;

const SESSIONS: &str = "/rest/v1/master/logicalroles/ws/sessions";
const WAIT: Duration = Duration::from_secs(10);
const ALICE_PW: &str = "alice-secret-pw-31";

/// central (c1 c2 c3) and east (e1 e2 e3), federation calls quick to give up.
async fn deployment() -> (TestSite, TestSite) {
    common::sites::central_and_east(common::sites::quick_federation()).await
}

async fn list(api: &Api, base: &str, token: &str, query: &str) -> Answer {
    api.call(
        Method::GET,
        format!("{base}{SESSIONS}?{query}"),
        Some(token),
        None,
    )
    .await
}

/// The (site, session id) pairs of the http items of a listing.
fn sessions_of(answer: &Answer) -> BTreeSet<(String, String)> {
    assert_eq!(answer.status, 200, "{}", answer.text);
    answer
        .body
        .as_array()
        .expect("an array")
        .iter()
        .filter(|item| item["session_type"] == "http")
        .map(|item| {
            (
                item["site"].as_str().unwrap_or_default().to_string(),
                item["session_id"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// Logs in and returns (token, session id).
async fn session(api: &Api, base: &str, login: &str, pwd: &str) -> (String, String) {
    let domain = match login {
        "admin" => "master.domain",
        _ => "example.org",
    };
    let answer = api.login(base, domain, login, pwd).await;
    assert_eq!(answer.status, 200, "{}", answer.text);
    (
        answer.body["token"].as_str().expect("token").to_string(),
        answer.body["session_id"]
            .as_str()
            .expect("session")
            .to_string(),
    )
}

/// The first login of a user just created at the other site: its directory entry reaches this
/// site asynchronously, so up to four tries (five failures would ban the login).
async fn first_login(api: &Api, base: &str, login: &str, pwd: &str) -> (String, String) {
    let mut answer = api.login(base, "example.org", login, pwd).await;
    for _ in 0..3 {
        if answer.status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        answer = api.login(base, "example.org", login, pwd).await;
    }
    assert_eq!(answer.status, 200, "{}", answer.text);
    let field = |name: &str| answer.body[name].as_str().expect(name).to_string();
    (field("token"), field("session_id"))
}

/// Waits (up to 20 s: probes run every 5 s) until health check `name` at `base` has `status`
/// with a cause containing `cause`.
async fn wait_for_check(api: &Api, base: &str, name: &str, status: &str, cause: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let check = api
            .call(
                Method::GET,
                format!("{base}/healthcheck/checks/{name}"),
                None,
                None,
            )
            .await;
        let found = check.body["status"] == status
            && check.body["cause"].as_str().unwrap_or("").contains(cause);
        if found {
            assert_eq!(check.status, 200, "{}", check.text);
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{name} never {status}: {}",
            check.text
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn pairs(site: &str, ids: &[&String]) -> BTreeSet<(String, String)> {
    ids.iter()
        .map(|id| (site.to_string(), id.to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_listed_and_closed_across_sites() {
    let (central, east) = deployment().await;
    let api = Api::default();
    let (c1, c2, e1, e2) = (
        central.api_url(0),
        central.api_url(1),
        east.api_url(0),
        east.api_url(1),
    );
    let (admin_c, admin_c_id) = session(&api, &c1, "admin", common::ADMIN_PASSWORD).await;
    let (admin_e, admin_e_id) = session(&api, &e1, "admin", common::ADMIN_PASSWORD).await;
    add_user(&api, &c1, &admin_c, "example.org", "alice", ALICE_PW).await;
    let (alice_c, alice_c_id) = session(&api, &c2, "alice", ALICE_PW).await;
    let (alice_e, alice_e_id) = first_login(&api, &e2, "alice", ALICE_PW).await;
    let (_, alice_e2_id) = session(&api, &e1, "alice", ALICE_PW).await;

    let central_set = pairs("central", &[&admin_c_id, &alice_c_id]);
    let east_set = pairs("east", &[&admin_e_id, &alice_e_id, &alice_e2_id]);
    let everything: BTreeSet<_> = central_set.union(&east_set).cloned().collect();
    for (base, token, current) in [(&c1, &admin_c, &central_set), (&e1, &admin_e, &east_set)] {
        assert_eq!(&sessions_of(&list(&api, base, token, "").await), current);
        assert_eq!(
            &sessions_of(&list(&api, base, token, "sites=current").await),
            current
        );
        assert_eq!(
            sessions_of(&list(&api, base, token, "sites=all").await),
            everything
        );
        assert_eq!(
            sessions_of(&list(&api, base, token, "sites=%5B%22east%22%5D").await),
            east_set
        );
        assert_eq!(
            sessions_of(&list(&api, base, token, "sites=%5B%22central%22%5D").await),
            central_set
        );
    }

    // Pages over both sites hold every session once.
    let mut paged = BTreeSet::new();
    let mut token_param = String::new();
    for _ in 0..20 {
        let page = list(
            &api,
            &c2,
            &admin_c,
            &format!("sites=all&session_type=http&limit=2{token_param}"),
        )
        .await;
        let got = sessions_of(&page);
        assert!(got.len() <= 2, "{}", page.text);
        paged.extend(got);
        match page.headers.get("x-next-page-token") {
            Some(next) => token_param = format!("&page_token={}", next.to_str().expect("ascii")),
            None => break,
        }
    }
    assert_eq!(paged, everything);

    // Logout everywhere: alice's sessions at both sites end, and so do her websockets.
    let mut socket_c = ws::open(&c2, &alice_c, Auth::Bearer).await;
    let mut socket_e = ws::open(&e2, &alice_e, Auth::Bearer).await;
    let logout = api
        .post(format!("{c1}{SESSIONS}"))
        .as_(&admin_c)
        .body(json!({"action": "logout", "domain": "example.org", "user": "alice", "sites": "all"}))
        .expect(200)
        .await;
    assert_eq!(
        logout.body,
        json!({"status": "logged out all sessions but current", "closed": 3,
               "sites": {"central": 1, "east": 2}})
    );
    for socket in [&mut socket_c, &mut socket_e] {
        let closed = ws::closed_by_server(socket, WAIT).await;
        assert_eq!(closed, (Some("logout".into()), Some(4003)));
    }
    let left = sessions_of(&list(&api, &e2, &admin_e, "sites=all").await);
    assert_eq!(
        left,
        pairs("central", &[&admin_c_id])
            .union(&pairs("east", &[&admin_e_id]))
            .cloned()
            .collect()
    );

    // The administrator logs itself out everywhere but the session it asks with.
    let (_, admin_c2_id) = session(&api, &c2, "admin", common::ADMIN_PASSWORD).await;
    let own = api
        .call(
            Method::POST,
            format!("{c1}{SESSIONS}"),
            Some(&admin_c),
            Some(json!({"action": "logout", "domain": "master.domain", "user": "admin", "sites": ["central", "east"]})),
        )
        .await;
    assert_eq!(
        own.body["sites"],
        json!({"central": 1, "east": 1}),
        "{}",
        own.text
    );
    let left = sessions_of(&list(&api, &c1, &admin_c, "sites=all").await);
    assert_eq!(left, pairs("central", &[&admin_c_id]));
    assert!(!left.iter().any(|(_, id)| *id == admin_c2_id));

    // DELETE of an east session from a central node.
    let (_, doomed) = session(&api, &e1, "alice", ALICE_PW).await;
    let url = format!("{c1}{SESSIONS}/{doomed}?sites=all");
    api.delete(url.clone()).as_(&admin_c).expect(204).await;
    api.delete(url)
        .as_(&admin_c)
        .expect_error(404, "notFound")
        .await;
    let only_central = format!("{c1}{SESSIONS}/{doomed}?sites=current");
    api.delete(only_central)
        .as_(&admin_c)
        .expect_error(404, "notFound")
        .await;

    // A session token works at its own site only, and the refusal names that site.
    let foreign = list(&api, &e1, &admin_c, "").await;
    assert_error(&foreign, 401, "Unauthorized");
    assert!(
        foreign.body["message"]
            .as_str()
            .is_some_and(|m| m.contains("central")),
        "{}",
        foreign.text
    );
}

/// An IMAP channel at east, seen and disconnected from central; certificates of both sites
/// listed and reloaded from central.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_and_certificates_across_sites() {
    let (central, mut east) = deployment().await;
    let api = Api::default();
    let (c1, e1) = (central.api_url(0), east.api_url(0));
    let (admin, _) = session(&api, &c1, "admin", common::ADMIN_PASSWORD).await;
    let (admin_e, _) = session(&api, &e1, "admin", common::ADMIN_PASSWORD).await;
    add_user(&api, &c1, &admin, "example.org", "alice", ALICE_PW).await;
    add_user(&api, &c1, &admin, "example.org", "bob", "bob-secret-pw-77").await;
    let ca = std::fs::read_to_string(&east.nodes[1].cert_file).expect("east's certificate");
    let mut imap = common::mail::tls(east.nodes[1].imaps, &ca).await;
    imap.line().await.expect("greeting");
    imap.send(&format!("a1 LOGIN alice@example.org {ALICE_PW}"))
        .await;
    let logged_in = imap.until("a1 ").await;
    assert!(
        logged_in.last().is_some_and(|l| l.starts_with("a1 OK")),
        "{logged_in:?}"
    );
    let central_ca = std::fs::read_to_string(&central.nodes[0].cert_file).expect("certificate");
    let mut bob = common::mail::tls(central.nodes[0].imaps, &central_ca).await;
    bob.line().await.expect("greeting");
    bob.send("b1 LOGIN bob@example.org bob-secret-pw-77").await;
    let bob_in = bob.until("b1 ").await;
    assert!(
        bob_in.last().is_some_and(|l| l.starts_with("b1 OK")),
        "{bob_in:?}"
    );

    let get = |path: &str| api.call(Method::GET, format!("{c1}{path}"), Some(&admin), None);
    let here = get("/servers/channels").await;
    assert_eq!(here.status, 200, "{}", here.text);
    let users_here: Vec<&str> = here
        .body
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["username"].as_str())
        .collect();
    assert_eq!(users_here, ["bob@example.org"]);
    let everywhere = get("/servers/channels?sites=all&sortBy=username").await;
    let seen: Vec<(&str, &str)> = everywhere
        .body
        .as_array()
        .expect("channels")
        .iter()
        .map(|c| {
            (
                c["username"].as_str().unwrap_or(""),
                c["site"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("alice@example.org", "east"),
            ("bob@example.org", "central")
        ],
        "{}",
        everywhere.text
    );
    let paged = get("/servers/channels?sites=all&sortBy=username&sortDirection=desc&limit=1").await;
    assert_eq!(paged.body.as_array().map(Vec::len), Some(1));
    assert_eq!(paged.body[0]["username"], "bob@example.org");
    let of_alice = get("/servers/channels/alice@example.org?sites=%5B%22east%22%5D").await;
    assert_eq!(of_alice.body[0]["protocol"], "IMAP", "{}", of_alice.text);
    assert_eq!(of_alice.body[0]["site"], "east");
    let connected = get("/servers/connectedUsers?sites=all").await;
    assert_eq!(
        connected.body,
        json!(["alice@example.org", "bob@example.org"])
    );

    api.delete(format!("{c1}/servers/channels/alice@example.org?sites=all"))
        .as_(&admin)
        .expect(204)
        .await;
    let bye = imap.until("* BYE").await;
    assert!(
        bye.last().is_some_and(|l| l.starts_with("* BYE")),
        "{bye:?}"
    );
    assert!(
        imap.closes_within(WAIT).await,
        "east closed alice's IMAP connection"
    );
    let left = get("/servers/connectedUsers?sites=all").await;
    assert_eq!(left.body, json!(["bob@example.org"]));
    bob.send("b2 NOOP").await;
    assert!(bob
        .until("b2 ")
        .await
        .last()
        .is_some_and(|l| l.starts_with("b2 OK")));

    // Certificates: every listener of all six nodes, each named with its site.
    let certificates = get("/servers/certificates?sites=all").await;
    assert_eq!(certificates.status, 200, "{}", certificates.text);
    let nodes: BTreeSet<(String, String)> = certificates
        .body
        .as_array()
        .expect("certificates")
        .iter()
        .map(|c| {
            (
                c["site"].as_str().unwrap_or("").to_string(),
                c["node"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let expected: BTreeSet<(String, String)> = ["c1", "c2", "c3", "e1", "e2", "e3"]
        .iter()
        .map(|n| {
            (
                if n.starts_with('c') {
                    "central"
                } else {
                    "east"
                }
                .to_string(),
                n.to_string(),
            )
        })
        .collect();
    assert_eq!(nodes, expected);
    api.post(format!("{c1}/servers?reload-certificate&sites=all"))
        .as_(&admin)
        .expect(204)
        .await;
    let no_listener = api
        .post(format!("{c1}/servers?reload-certificate&port=1&sites=all"))
        .as_(&admin)
        .expect_error(400, "notFound")
        .await;
    assert!(
        no_listener.text.contains("central") && no_listener.text.contains("east"),
        "{}",
        no_listener.text
    );
    // The east administrator sees central's channels from east, too.
    let from_east = api
        .call(
            Method::GET,
            format!("{e1}/servers/connectedUsers?sites=all"),
            Some(&admin_e),
            None,
        )
        .await;
    assert_eq!(from_east.body, json!(["bob@example.org"]));

    // One east node down: central asks the next one (once east has a leader again: e1 may
    // have led it).
    east.kill(0);
    east.wait_for_leader(WAIT).await;
    for _ in 0..3 {
        let listed = get("/servers/connectedUsers?sites=all").await;
        assert_eq!(listed.status, 200, "{}", listed.text);
        assert_eq!(listed.body, json!(["bob@example.org"]));
    }
}

/// A request that carries a federation token (as one site's node sends another) is served for
/// the receiving site alone: it never fans out again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarded_request_never_fans_out_again() {
    use sessionplane::testing::{FederationClaims, FEDERATION_AUDIENCE};
    let (central, _east) = deployment().await;
    let api = Api::default();
    let c1 = central.api_url(0);
    let now = sessionplane_cluster::now_ms() / 1000;
    let keys = sessionplane::testing::TokenKeys::new("unused", None)
        .expect("keys")
        .with_federation_key(&sessionplane::testing::federation_key(common::SECRET));
    let token = keys
        .sign_federation(&FederationClaims {
            sub: "site:east".into(),
            aud: FEDERATION_AUDIENCE.into(),
            from: "east".into(),
            on_behalf_of: "admin@master.domain".into(),
            domain: None,
            iat: now,
            exp: now + 60,
        })
        .expect("sign");
    let here = list(&api, &c1, &token, "sites=%5B%22central%22%5D").await;
    assert_eq!(here.status, 200, "{}", here.text);
    for sites in ["all", "%5B%22east%22%5D", "%5B%22central%22,%22east%22%5D"] {
        let again = list(&api, &c1, &token, &format!("sites={sites}")).await;
        assert_error(&again, 400, "InvalidArgument");
        assert!(again.text.contains("forwarded"), "{}", again.text);
    }
    let forged = sessionplane::testing::TokenKeys::new("unused", None)
        .expect("keys")
        .with_federation_key(b"another deployment's secret")
        .sign_federation(&FederationClaims {
            sub: "site:east".into(),
            aud: FEDERATION_AUDIENCE.into(),
            from: "east".into(),
            on_behalf_of: "mallory".into(),
            domain: None,
            iat: now,
            exp: now + 60,
        })
        .expect("sign");
    assert_error(&list(&api, &c1, &forged, "").await, 401, "Unauthorized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_created_at_one_site_logs_in_at_the_other_within_a_second() {
    let (central, east) = deployment().await;
    let api = Api::default();
    let (c1, e3) = (central.api_url(0), east.api_url(2));
    let (admin, _) = session(&api, &c1, "admin", common::ADMIN_PASSWORD).await;
    add_user(&api, &c1, &admin, "example.org", "bob", "bob-secret-pw-77").await;
    let created = Instant::now();
    // Four tries at most, below the five failures that would ban the login.
    let mut answer = api
        .login(&e3, "example.org", "bob", "bob-secret-pw-77")
        .await;
    for _ in 0..3 {
        if answer.status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        answer = api
            .login(&e3, "example.org", "bob", "bob-secret-pw-77")
            .await;
    }
    assert_eq!(answer.status, 200, "{}", answer.text);
    assert_eq!(answer.body["site"], "east");
    assert!(
        created.elapsed() < Duration::from_secs(1),
        "the login at east took {:?}",
        created.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_sites_are_refused_by_every_endpoint() {
    let (central, _east) = deployment().await;
    let api = Api::default();
    let c1 = central.api_url(0);
    let (admin, _) = session(&api, &c1, "admin", common::ADMIN_PASSWORD).await;
    let session = "0192f0a4-8c4e-7cc1-9a51-6b1a2bd0c001";
    for bad in [
        "%5B%22west%22%5D",
        "%5Beast",
        "%5B%5D",
        "everywhere",
        "%7B%7D",
    ] {
        let gets = [
            format!("{SESSIONS}?sites={bad}"),
            format!("/servers/channels?sites={bad}"),
            format!("/servers/channels/alice@example.org?sites={bad}"),
            format!("/servers/connectedUsers?sites={bad}"),
            format!("/servers/certificates?sites={bad}"),
        ];
        for path in gets {
            let answer = api
                .get(format!("{c1}{path}"))
                .as_(&admin)
                .expect_error(400, "InvalidArgument")
                .await;
            assert!(
                answer.text.contains("central, east"),
                "{path}: {}",
                answer.text
            );
        }
        let deletes = [
            format!("{SESSIONS}/{session}?sites={bad}"),
            format!("/servers/channels?sites={bad}"),
            format!("/servers/channels/alice@example.org?sites={bad}"),
        ];
        for path in deletes {
            api.delete(format!("{c1}{path}"))
                .as_(&admin)
                .expect_error(400, "InvalidArgument")
                .await;
        }
        api.post(format!("{c1}/servers?reload-certificate&sites={bad}"))
            .as_(&admin)
            .expect_error(400, "InvalidArgument")
            .await;
    }
    for bad in [
        json!("everywhere"),
        json!([]),
        json!(["west"]),
        json!([1]),
        json!({}),
    ] {
        api.post(format!("{c1}{SESSIONS}")).as_(&admin).body(json!({"action": "logout", "domain": "master.domain", "user": "admin", "sites": bad})).expect_error(400, "InvalidArgument").await;
    }
}

/// Stops every node of east: lists answer 503 naming east (or, when allowed, the partial list
/// and the header); a logout is done at central at once and kept as a task that finishes when
/// east is back, across a restart of the central node that drives it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_that_is_down_makes_lists_honest_and_writes_durable() {
    let (mut central, mut east) = deployment().await;
    let api = Api::default();
    let (c1, c2, e1) = (central.api_url(0), central.api_url(1), east.api_url(0));
    let (admin_c, admin_c_id) = session(&api, &c1, "admin", common::ADMIN_PASSWORD).await;
    let (admin_e, _) = session(&api, &e1, "admin", common::ADMIN_PASSWORD).await;
    add_user(&api, &c1, &admin_c, "example.org", "alice", ALICE_PW).await;
    let (_, alice_c_id) = session(&api, &c2, "alice", ALICE_PW).await;
    let (alice_e, _) = first_login(&api, &e1, "alice", ALICE_PW).await;
    let (_, doomed_e_id) = session(&api, &e1, "alice", ALICE_PW).await;

    wait_for_check(&api, &c1, "Site%20east", "healthy", "").await;
    for i in 0..3 {
        east.kill(i);
    }
    wait_for_check(&api, &c1, "Site%20east", "degraded", "cannot be reached").await;

    let whole = list(&api, &c1, &admin_c, "sites=all").await;
    assert_error(&whole, 503, "Unavailable");
    assert!(
        whole.body["message"]
            .as_str()
            .unwrap_or("")
            .contains("east"),
        "{}",
        whole.text
    );
    assert_eq!(whole.body["sites"]["central"], "ok", "{}", whole.text);
    assert!(
        whole.body["sites"]["east"]
            .as_str()
            .unwrap_or("")
            .contains("unreachable"),
        "{}",
        whole.text
    );
    // Said once per site, briefly: each node's reason in a few words, not reqwest's chain.
    let cause = whole.body["cause"].as_str().unwrap_or("");
    assert!(
        cause.starts_with("central: ok | east: unreachable ("),
        "{cause}"
    );
    for node in ["e1", "e2", "e3"] {
        assert!(
            cause.contains(&format!("{node}: connection refused")),
            "{cause}"
        );
    }
    assert!(cause.len() < 200 && !cause.contains("http://"), "{cause}");
    let partial = list(&api, &c1, &admin_c, "sites=all&allow_partial=true").await;
    assert_eq!(
        sessions_of(&partial),
        pairs("central", &[&admin_c_id, &alice_c_id])
    );
    assert_eq!(partial.headers["x-unavailable-sites"], "east");
    let paged = list(&api, &c1, &admin_c, "sites=all&limit=10").await;
    assert_error(&paged, 503, "Unavailable");
    let central_only = list(&api, &c1, &admin_c, "sites=current").await;
    assert_eq!(central_only.status, 200, "{}", central_only.text);
    assert!(central_only.headers.get("x-unavailable-sites").is_none());
    for path in [
        "/servers/channels",
        "/servers/connectedUsers",
        "/servers/certificates",
    ] {
        api.get(format!("{c1}{path}?sites=all"))
            .as_(&admin_c)
            .expect_error(503, "Unavailable")
            .await;
        let partial = api
            .get(format!("{c1}{path}?sites=all&allow_partial=true"))
            .as_(&admin_c)
            .expect(200)
            .await;
        assert_eq!(partial.headers["x-unavailable-sites"], "east", "{path}");
    }

    // The command line says the same.
    let refused = cli(&["sessions", "list", "--sites", "all"], &c1, &admin_c);
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("503 Unavailable") && said.contains("east: unreachable"),
        "{said}"
    );
    let partial = cli(
        &[
            "sessions",
            "list",
            "--sites",
            "all",
            "--allow-partial",
            "--json",
        ],
        &c1,
        &admin_c,
    );
    assert!(
        partial.status.success(),
        "{}",
        String::from_utf8_lossy(&partial.stderr)
    );
    assert!(String::from_utf8_lossy(&partial.stderr).contains("not reached: east"));
    let listed: serde_json::Value = serde_json::from_slice(&partial.stdout).expect("json");
    assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");

    // The logout is done at central now and kept for east.
    let logout = api
        .post(format!("{c2}{SESSIONS}"))
        .as_(&admin_c)
        .body(json!({"action": "logout", "domain": "example.org", "user": "alice", "sites": "all"}))
        .expect_error(503, "Unavailable")
        .await;
    assert_eq!(
        logout.body["sites"]["central"], "done: closed 1",
        "{}",
        logout.text
    );
    let logout_task = logout.body["taskId"]
        .as_str()
        .expect("a task id")
        .to_string();
    assert_eq!(
        sessions_of(&list(&api, &c1, &admin_c, "").await),
        pairs("central", &[&admin_c_id])
    );
    let kill = api
        .delete(format!("{c1}{SESSIONS}/{doomed_e_id}?sites=all"))
        .as_(&admin_c)
        .expect_error(503, "Unavailable")
        .await;
    let kill_task = kill.body["taskId"].as_str().expect("a task id").to_string();
    let report = api
        .get(format!("{c1}/tasks/{logout_task}"))
        .as_(&admin_c)
        .expect(200)
        .await;
    assert_eq!(report.body["type"], "sessions-logout");
    assert!(
        ["waiting", "inProgress"].contains(&report.body["status"].as_str().unwrap_or("")),
        "{}",
        report.text
    );
    assert_eq!(
        report.body["additionalInformation"]["sites"]["east"]["status"],
        "pending"
    );
    api.get(format!("{c1}/tasks/{logout_task}/await?timeout=300ms"))
        .as_(&admin_c)
        .expect_error(408, "WrongState")
        .await;
    let waiting = api
        .call(
            Method::GET,
            format!("{c1}/tasks?status=inProgress"),
            Some(&admin_c),
            None,
        )
        .await;
    let listed: Vec<&str> = waiting
        .body
        .as_array()
        .expect("tasks")
        .iter()
        .filter_map(|t| t["taskId"].as_str())
        .collect();
    assert!(listed.contains(&logout_task.as_str()), "{}", waiting.text);

    // The central node that drives the tasks (the site leader) restarts; east comes back.
    let leader = central.wait_for_leader(WAIT).await;
    central.restart(leader).await;
    central.wait_for_leader(WAIT).await;
    // The cli awaits the task from before east is back: it reports east pending, then done.
    let mut awaiting = cli_command(
        &["tasks", "await", &logout_task, "--timeout-secs", "60"],
        &c2,
        &admin_c,
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .expect("run the cli");
    let progress_lines = BufReader::new(awaiting.stderr.take().expect("cli stderr")).lines();
    let (seen, progress) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in progress_lines.map_while(Result::ok) {
            let _ = seen.send(line.clone());
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let pending = progress.iter().any(|line| line.contains("east: pending"));
    for i in 0..3 {
        east.restart(i).await;
    }
    let awaited = awaiting.wait_with_output().expect("the cli ends");
    let progress = reader.join().expect("cli progress");
    assert!(pending, "the cli reported east pending: {progress}");
    assert!(awaited.status.success(), "{progress}");
    assert!(progress.contains("east: done"), "{progress}");
    assert!(String::from_utf8_lossy(&awaited.stdout).contains("completed"));
    for task in [&logout_task, &kill_task] {
        let done = api
            .get(format!("{c1}/tasks/{task}/await?timeout=60s"))
            .as_(&admin_c)
            .expect(200)
            .await;
        assert_eq!(done.body["status"], "completed", "{}", done.text);
        assert_eq!(
            done.body["additionalInformation"]["sites"]["east"]["status"],
            "done"
        );
        assert!(done.body["completedDate"].is_string(), "{}", done.text);
        // Every site's answer has one shape, whether it came at once or through the task.
        let sites = &done.body["additionalInformation"]["sites"];
        let keys = |site: &str| -> Vec<String> {
            let answer = sites[site]["answer"].as_object();
            let answer = answer.unwrap_or_else(|| panic!("{site}: not an object: {sites}"));
            answer.keys().cloned().collect()
        };
        assert_eq!(keys("central"), keys("east"), "{sites}");
    }
    let logout = api
        .call(
            Method::GET,
            format!("{c1}/tasks/{logout_task}"),
            Some(&admin_c),
            None,
        )
        .await;
    let sites = &logout.body["additionalInformation"]["sites"];
    assert_eq!(sites["central"]["answer"], json!({"closed": 1}), "{sites}");
    assert!(sites["east"]["answer"]["closed"].is_u64(), "{sites}");
    let kill = api
        .call(
            Method::GET,
            format!("{c1}/tasks/{kill_task}"),
            Some(&admin_c),
            None,
        )
        .await;
    let sites = &kill.body["additionalInformation"]["sites"];
    assert_eq!(
        sites["central"]["answer"],
        json!({"killed": false}),
        "{sites}"
    );
    // The logout's task may reach east first and end that session before the kill does.
    assert!(sites["east"]["answer"]["killed"].is_boolean(), "{sites}");
    // East ended alice's sessions: her east token is refused, and east lists none of hers.
    let refused = list(&api, &e1, &alice_e, "").await;
    assert_error(&refused, 401, "Unauthorized");
    let east_now = list(&api, &e1, &admin_e, "").await;
    assert_eq!(east_now.status, 200, "{}", east_now.text);
    assert!(
        !east_now.text.contains("\"alice\""),
        "alice still has sessions at east: {}",
        east_now.text
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tasks_api_refuses_bad_input() {
    let (central, _east) = deployment().await;
    let api = Api::default();
    let c1 = central.api_url(0);
    let (admin, _) = session(&api, &c1, "admin", common::ADMIN_PASSWORD).await;
    let get = |path: String| {
        let api = &api;
        let admin = admin.clone();
        let c1 = c1.clone();
        async move {
            api.call(Method::GET, format!("{c1}{path}"), Some(&admin), None)
                .await
        }
    };
    assert_error(
        &get("/tasks?status=running".into()).await,
        400,
        "InvalidArgument",
    );
    assert_error(
        &get("/tasks/not-a-task".into()).await,
        400,
        "InvalidArgument",
    );
    let unknown = "0192f0a4-8c4e-7cc1-9a51-6b1a2bd0c001";
    assert_error(&get(format!("/tasks/{unknown}")).await, 404, "notFound");
    assert_error(
        &get(format!("/tasks/{unknown}/await?timeout=1s")).await,
        404,
        "notFound",
    );
    assert_error(
        &get(format!("/tasks/{unknown}/await?timeout=soon")).await,
        400,
        "InvalidArgument",
    );
    api.delete(format!("{c1}/tasks/{unknown}"))
        .as_(&admin)
        .expect_error(404, "notFound")
        .await;
    let listed = get("/tasks".into()).await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(listed.body, json!([]));
    api.get(format!("{c1}/tasks"))
        .expect_error(401, "Unauthorized")
        .await;

    // A disconnection of everyone over both sites is recorded as a completed task.
    let everyone = api
        .delete(format!("{c1}/servers/channels?sites=all"))
        .as_(&admin)
        .expect(204)
        .await;
    let task = everyone.headers["x-task-id"]
        .to_str()
        .expect("ascii")
        .to_string();
    let report = get(format!("/tasks/{task}")).await;
    assert_eq!(
        report.body["type"], "channels-disconnect",
        "{}",
        report.text
    );
    assert_eq!(report.body["status"], "completed", "{}", report.text);
    let sites: Vec<&String> = report.body["additionalInformation"]["sites"]
        .as_object()
        .expect("sites")
        .keys()
        .collect();
    assert_eq!(sites, ["central", "east"]);
    let answers = &report.body["additionalInformation"]["sites"];
    assert!(answers["central"]["answer"]["closed"].is_u64(), "{answers}");
    assert_eq!(
        answers["east"]["answer"],
        json!({"closed": null}),
        "{answers}"
    );
}

/// The kernel drops every packet between central's and east's networks: both sites keep
/// serving logins, east cannot write to the directory (central holds its quorum), and each
/// site's lists of all sites name the other as unreachable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wan_cut_keeps_logins_working_and_fails_directory_writes_clearly() {
    let (central, east) = deployment().await;
    let api = Api::default();
    let (c1, e1, e2) = (central.api_url(0), east.api_url(0), east.api_url(1));
    let (admin_c, _) = session(&api, &c1, "admin", common::ADMIN_PASSWORD).await;
    let (admin_e, _) = session(&api, &e1, "admin", common::ADMIN_PASSWORD).await;
    add_user(
        &api,
        &c1,
        &admin_c,
        "example.org",
        "carol",
        "carol-secret-pw-5",
    )
    .await;
    first_login(&api, &e2, "carol", "carol-secret-pw-5").await;

    let cut = Cut::sites(central.octet, east.octet);

    let login = api
        .login(&e2, "example.org", "carol", "carol-secret-pw-5")
        .await;
    assert_eq!(
        login.status, 200,
        "a login at east during the cut: {}",
        login.text
    );
    let admin_login = api
        .login(&e1, "master.domain", "admin", common::ADMIN_PASSWORD)
        .await;
    assert_eq!(admin_login.status, 200, "{}", admin_login.text);
    let wrong = api
        .login(&e2, "example.org", "carol", "not-her-password")
        .await;
    assert_error(&wrong, 401, "Unauthorized");
    let central_login = api
        .login(&c1, "example.org", "carol", "carol-secret-pw-5")
        .await;
    assert_eq!(central_login.status, 200, "{}", central_login.text);

    let started = Instant::now();
    let write = api
        .put(format!("{e1}/domains/cut.example"))
        .as_(&admin_e)
        .expect_error(503, "Unavailable")
        .await;
    assert!(
        write.body["message"]
            .as_str()
            .unwrap_or("")
            .contains("directory"),
        "{}",
        write.text
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    let central_write = api
        .call(
            Method::PUT,
            format!("{c1}/domains/cut.example"),
            Some(&admin_c),
            None,
        )
        .await;
    assert_eq!(
        central_write.status, 204,
        "central holds the directory's quorum: {}",
        central_write.text
    );

    // A responder at the cut-off site still ends a user's sessions there: the user is found
    // in this node's copy of the directory, which needs no directory leader.
    let logout = api
        .call(
            Method::POST,
            format!("{e1}{SESSIONS}"),
            Some(&admin_e),
            Some(json!({"action": "logout", "domain": "example.org", "user": "carol", "sites": "current"})),
        )
        .await;
    assert_eq!(
        logout.status, 200,
        "logout at the cut-off site: {}",
        logout.text
    );
    assert_eq!(logout.body["closed"], 2, "{}", logout.text);

    for (base, token, other) in [(&c1, &admin_c, "east"), (&e1, &admin_e, "central")] {
        let whole = list(&api, base, token, "sites=all").await;
        assert_error(&whole, 503, "Unavailable");
        assert!(
            whole.body["sites"][other]
                .as_str()
                .unwrap_or("")
                .contains("unreachable"),
            "{}",
            whole.text
        );
        let partial = list(&api, base, token, "sites=all&allow_partial=true").await;
        assert_eq!(partial.status, 200, "{}", partial.text);
        assert_eq!(partial.headers["x-unavailable-sites"], other);
    }

    drop(cut);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let whole = list(&api, &c1, &admin_c, "sites=all").await;
        if whole.status == 200 {
            assert!(whole.text.contains("\"east\""), "{}", whole.text);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the WAN came back but: {}",
            whole.text
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Disabling a user, changing its password or deleting it at one site ends its sessions and
/// websockets at every site, also when the change is made while the WAN is cut: the site ends
/// them as soon as the directory entry reaches it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_account_revoked_at_one_site_ends_its_access_everywhere() {
    let (central, east) = deployment().await;
    let api = Api::default();
    let (c1, e2) = (central.api_url(0), east.api_url(1));
    let (admin, _) = session(&api, &c1, "admin", common::ADMIN_PASSWORD).await;
    add_user(&api, &c1, &admin, "example.org", "alice", ALICE_PW).await;
    let alice = "/users/alice@example.org";

    let (token, _) = first_login(&api, &e2, "alice", ALICE_PW).await;
    let mut socket = ws::open(&e2, &token, Auth::Bearer).await;
    api.patch(format!("{c1}{alice}"))
        .as_(&admin)
        .body(json!({"disabled": true}))
        .expect(200)
        .await;
    let closed = ws::closed_by_server(&mut socket, WAIT).await;
    assert_eq!(closed, (Some("user_disabled".into()), Some(4004)));
    assert_error(&list(&api, &e2, &token, "").await, 401, "Unauthorized");

    api.patch(format!("{c1}{alice}"))
        .as_(&admin)
        .body(json!({"disabled": false}))
        .expect(200)
        .await;
    let (token, _) = session(&api, &e2, "alice", ALICE_PW).await;
    let mut socket = ws::open(&e2, &token, Auth::Bearer).await;
    let new_password =
        json!({"newPwd": "alice-second-pw-32", "newPwdConfirm": "alice-second-pw-32"});
    api.post(format!("{c1}{alice}/password"))
        .as_(&admin)
        .body(new_password)
        .expect(204)
        .await;
    let closed = ws::closed_by_server(&mut socket, WAIT).await;
    assert_eq!(closed, (Some("revoked".into()), Some(4001)));

    // Deleted while the WAN is cut: east ends the session once the entry arrives.
    let (token, _) = session(&api, &e2, "alice", "alice-second-pw-32").await;
    let mut socket = ws::open(&e2, &token, Auth::Bearer).await;
    {
        let _cut = Cut::sites(central.octet, east.octet);
        api.delete(format!("{c1}{alice}"))
            .as_(&admin)
            .expect(204)
            .await;
        ws::ping(&mut socket).await;
    }
    let closed = ws::closed_by_server(&mut socket, Duration::from_secs(30)).await;
    assert_eq!(closed, (Some("user_disabled".into()), Some(4004)));
    assert_error(&list(&api, &e2, &token, "").await, 401, "Unauthorized");
}
