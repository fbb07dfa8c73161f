//! The audit trail against a real node: a scripted run of admin calls, refusals, failed logins
//! and a ban leaves exactly one event each, with its actor, action, target and outcome; the
//! chain verifies; no secret is in any event; filters, pages and bad input; a store tampered
//! with on disk is named by `audit/verify` and makes the node unhealthy.

use crate::common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{assert_error, Api, TestSite, Tuning, ADMIN_PASSWORD};
use serde_json::{json, Value};

const MASTER: &str = "master.domain";
const BOB_PASSWORD: &str = "bob-pw-7c1e9a";
const EVE_PASSWORD: &str = "eve-pw-55b2d0";
const CAROL_PASSWORD: &str = "carol-pw-3f8d41";
const WRONG_PASSWORD: &str = "wrong-pw-a9e7c3";
const BAD_TOKEN: &str = "not-a-token-4d2b7e";

/// (action, target, outcome) of each event, counted.
type Tally = BTreeMap<(String, String, String), usize>;

fn tally(events: &[Value]) -> Tally {
    let mut counted = Tally::new();
    for e in events {
        let key = (
            e["action"].as_str().unwrap_or("").to_string(),
            e["target"].as_str().unwrap_or("").to_string(),
            e["outcome"].as_str().unwrap_or("").to_string(),
        );
        *counted.entry(key).or_default() += 1;
    }
    counted
}

async fn audit(api: &Api, base: &str, admin: &str, query: &[(&str, &str)]) -> common::Answer {
    api.get(format!("{base}/rest/v1/audit"))
        .as_(admin)
        .query(query)
        .expect(200)
        .await
}

/// Every event of the node, once `n` of them are there (directory events reach the site's
/// chain a moment after their change).
async fn wait_for_events(api: &Api, base: &str, admin: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let events = audit(api, base, admin, &[("limit", "10000")]).await.body;
        let events = events.as_array().cloned().unwrap_or_default();
        if events.len() >= n || Instant::now() > deadline {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn key(action: &str, target: &str, outcome: &str) -> (String, String, String) {
    (action.into(), target.into(), outcome.into())
}

/// The scripted run: its tokens (to look for in the trail) and the events it must leave.
async fn scripted_run(site: &TestSite, api: &Api, base: &str, admin: &str) -> (Vec<String>, Tally) {
    api.put(format!("{base}/domains/acme.test"))
        .as_(admin)
        .expect(204)
        .await;
    for (login, password) in [
        ("bob", BOB_PASSWORD),
        ("eve", EVE_PASSWORD),
        ("carol", CAROL_PASSWORD),
    ] {
        api.put(format!("{base}/users/{login}@acme.test"))
            .as_(admin)
            .body(json!({ "password": password }))
            .expect(201)
            .await;
    }
    api.put(format!("{base}/groups/ops@acme.test"))
        .as_(admin)
        .body(json!({"members": ["bob@acme.test"]}))
        .expect(201)
        .await;
    let first = api.login(base, "acme.test", "bob", BOB_PASSWORD).await.body;
    let second = api.token(base, "acme.test", "bob", BOB_PASSWORD).await;
    let killed = first["session_id"]
        .as_str()
        .expect("session id")
        .to_string();
    api.delete(format!(
        "{base}/rest/v1/master/logicalroles/ws/sessions/{killed}"
    ))
    .as_(admin)
    .expect(204)
    .await;
    api.post(format!("{base}/rest/v1/master/logicalroles/ws/sessions"))
        .as_(admin)
        .body(json!({"action": "logout", "domain": "acme.test", "user": "bob"}))
        .expect(200)
        .await;
    api.delete(format!("{base}/servers/channels/bob@acme.test"))
        .as_(admin)
        .expect(204)
        .await;
    let eve = api.token(base, "acme.test", "eve", EVE_PASSWORD).await;
    api.get(format!("{base}/users"))
        .as_(&eve)
        .expect_error(403, "Forbidden")
        .await;
    api.get(format!("{base}/domains"))
        .as_(BAD_TOKEN)
        .expect_error(401, "Unauthorized")
        .await;
    let failed = api.login(base, "acme.test", "bob", WRONG_PASSWORD).await;
    assert_error(&failed, 401, "Unauthorized");
    for _ in 0..3 {
        let failed = api.login(base, "acme.test", "carol", WRONG_PASSWORD).await;
        assert_error(&failed, 401, "Unauthorized");
    }
    let banned = api.login(base, "acme.test", "carol", CAROL_PASSWORD).await;
    assert_error(&banned, 429, "TooManyRequests");
    let ca = std::fs::read_to_string(&site.nodes[0].cert_file).expect("certificate");
    let mut imap = common::mail::tls(site.nodes[0].imaps, &ca).await;
    imap.line().await;
    imap.send(&format!("i1 LOGIN eve@acme.test {WRONG_PASSWORD}"))
        .await;
    let said = imap.line().await.unwrap_or_default();
    assert!(said.starts_with("i1 NO"), "{said}");
    let tokens = vec![
        admin.to_string(),
        first["token"].as_str().unwrap_or_default().to_string(),
        second,
        eve,
    ];
    let expected = Tally::from([
        (key("domain.create", "acme.test", "ok"), 1),
        (key("user.create", "bob@acme.test", "ok"), 1),
        (key("user.create", "eve@acme.test", "ok"), 1),
        (key("user.create", "carol@acme.test", "ok"), 1),
        (key("group.create", "ops@acme.test", "ok"), 1),
        (key("session.kill", &killed, "ok"), 1),
        (key("sessions.logout", "bob@acme.test", "ok"), 1),
        (key("channels.disconnect", "bob@acme.test", "ok"), 1),
        (key("auth.refused", "GET /users", "refused"), 1),
        (key("auth.refused", "GET /domains", "refused"), 1),
        (key("login.failed", "bob@acme.test", "failed"), 1),
        (key("login.failed", "carol@acme.test", "failed"), 3),
        (key("login.failed", "eve@acme.test", "failed"), 1),
        (key("login.banned", "carol@acme.test", "refused"), 1),
    ]);
    (tokens, expected)
}

fn one<'a>(events: &'a [Value], action: &str, target: &str) -> &'a Value {
    let found: Vec<&Value> = events
        .iter()
        .filter(|e| e["action"] == action && e["target"] == target)
        .collect();
    assert_eq!(found.len(), 1, "{action} {target}: {found:?}");
    found[0]
}

#[tokio::test(flavor = "multi_thread")]
async fn every_admin_write_refusal_failed_login_and_ban_is_one_event() {
    let tuning = Tuning {
        iam: vec!["max_login_failures = 3".into()],
        ..Tuning::default()
    };
    let site = TestSite::start(1, tuning).await;
    site.wait_for_admin(0).await;
    let api = Api::default();
    let base = site.api_url(0);
    let admin = api.admin_token(&base).await;
    let (tokens, expected) = scripted_run(&site, &api, &base, &admin).await;
    let total: usize = expected.values().sum();
    wait_for_events(&api, &base, &admin, total).await;
    // Settle: nothing more than expected arrives.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let events = wait_for_events(&api, &base, &admin, total).await;
    assert_eq!(tally(&events), expected, "{events:#?}");

    let admin_actor = &one(&events, "domain.create", "acme.test")["actor"];
    assert_eq!(admin_actor["login"], "admin", "{admin_actor}");
    assert_eq!(admin_actor["domain"], MASTER);
    assert!(admin_actor["session_id"].is_string());
    let kill = events
        .iter()
        .find(|e| e["action"] == "session.kill")
        .unwrap();
    assert_eq!(kill["details"]["sessions_ended"], 1, "{kill}");
    assert_eq!(kill["details"]["domain"], "acme.test", "{kill}");
    let refused = one(&events, "auth.refused", "GET /users");
    assert_eq!(refused["actor"]["login"], "eve", "{refused}");
    assert_eq!(refused["details"]["status"], 403);
    let unauthenticated = one(&events, "auth.refused", "GET /domains");
    assert!(unauthenticated["actor"].is_null(), "{unauthenticated}");
    assert_eq!(unauthenticated["remote_address"], "127.0.0.1");
    let failed = one(&events, "login.failed", "bob@acme.test");
    assert!(failed["actor"].is_null());
    assert_eq!(failed["site"], "local");
    assert_eq!(
        failed["node"].as_str().map(|n| n.starts_with("n1@")),
        Some(true),
        "{failed}"
    );
    for e in &events {
        let time = e["time"].as_str().unwrap_or("");
        assert!(
            time.len() == 24 && time.ends_with('Z'),
            "RFC 3339 with ms: {e}"
        );
        assert_eq!(e["hash"].as_str().map(str::len), Some(64), "{e}");
    }
    let times: Vec<&str> = events.iter().filter_map(|e| e["time"].as_str()).collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {times:?}"
    );

    let text = audit(&api, &base, &admin, &[("limit", "10000")]).await.text;
    for secret in [
        ADMIN_PASSWORD,
        BOB_PASSWORD,
        EVE_PASSWORD,
        CAROL_PASSWORD,
        WRONG_PASSWORD,
        BAD_TOKEN,
    ]
    .iter()
    .map(|s| s.to_string())
    .chain(tokens.iter().cloned())
    {
        assert!(!secret.is_empty());
        assert!(
            !text.contains(&secret),
            "a secret in the audit trail: {secret}"
        );
    }

    let verified = api
        .get(format!("{base}/rest/v1/audit/verify"))
        .as_(&admin)
        .query(&[("sites", "all")])
        .expect(200)
        .await
        .body;
    assert_eq!(
        verified,
        json!({"sites": {"local": {"events": total, "ok": true}}})
    );

    let metrics = api.get(format!("{base}/metrics")).expect(200).await.text;
    assert!(
        metrics
            .contains("sessionplane_audit_events_total{action=\"user.create\",outcome=\"ok\"} 3"),
        "{metrics}"
    );
    assert!(metrics
        .contains("sessionplane_audit_events_total{action=\"login.failed\",outcome=\"failed\"} 5"));

    filters_and_pages(&api, &base, &admin, &events).await;
    bad_input(&api, &base, &admin).await;
    cli_lists_and_verifies(&base, &admin);
    a_domain_administrator_sees_its_domain(&api, &base, &admin, &tokens[3]).await;
}

/// eve, made an administrator of acme.test, sees the events of its users and its domain only.
async fn a_domain_administrator_sees_its_domain(api: &Api, base: &str, admin: &str, eve: &str) {
    api.put(format!("{base}/groups/admins@acme.test"))
        .as_(admin)
        .body(json!({"members": ["eve@acme.test"]}))
        .expect(201)
        .await;
    let seen = audit(api, base, eve, &[("limit", "10000")]).await.body;
    let seen = seen.as_array().cloned().unwrap_or_default();
    let tallied = tally(&seen);
    assert_eq!(
        tallied.get(&key("user.create", "bob@acme.test", "ok")),
        Some(&1)
    );
    assert_eq!(
        tallied.get(&key("login.banned", "carol@acme.test", "refused")),
        Some(&1)
    );
    assert_eq!(
        tallied.get(&key("auth.refused", "GET /users", "refused")),
        Some(&1),
        "its own refusal"
    );
    assert!(
        seen.iter().any(|e| e["action"] == "session.kill"),
        "a kill in its domain"
    );
    assert!(
        !seen.iter().any(|e| e["target"] == "GET /domains"),
        "no event outside its domain: {seen:#?}"
    );
    api.get(format!("{base}/rest/v1/audit/verify"))
        .as_(eve)
        .expect_error(403, "Forbidden")
        .await;
}

async fn filters_and_pages(api: &Api, base: &str, admin: &str, all: &[Value]) {
    let count = |query: &'static [(&'static str, &'static str)]| async move {
        let listed = audit(api, base, admin, query).await.body;
        listed.as_array().map(Vec::len).unwrap_or(0)
    };
    assert_eq!(count(&[("action", "user.*")]).await, 3);
    assert_eq!(
        count(&[("action", "user.create"), ("target", "eve@acme.test")]).await,
        1
    );
    assert_eq!(count(&[("actor", "eve@acme.test")]).await, 1);
    assert_eq!(count(&[("actor", "admin@master.domain")]).await, 8);
    assert_eq!(count(&[("outcome", "refused")]).await, 3);
    assert_eq!(
        count(&[("target", "carol@acme.test"), ("action", "login.failed")]).await,
        3
    );
    assert_eq!(count(&[("since", "2999-01-01T00:00:00Z")]).await, 0);
    assert_eq!(count(&[("until", "2000-01-01T00:00:00Z")]).await, 0);
    let newest = all[0]["time"].as_str().unwrap_or("").to_string();
    let since = audit(api, base, admin, &[("since", newest.as_str())])
        .await
        .body;
    assert!(since
        .as_array()
        .is_some_and(|a| !a.is_empty() && a.len() < all.len()));

    let mut paged = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut query = vec![("limit", "4")];
        if let Some(t) = &token {
            query.push(("page_token", t.as_str()));
        }
        let page = audit(api, base, admin, &query).await;
        let items = page.body.as_array().cloned().unwrap_or_default();
        assert!(items.len() <= 4);
        paged.extend(items.iter().map(|e| e["event_id"].clone()));
        match page.headers.get("x-next-page-token") {
            Some(next) => token = Some(next.to_str().unwrap().to_string()),
            None => break,
        }
        assert!(paged.len() <= all.len(), "pages go on past the end");
    }
    let every: Vec<Value> = all.iter().map(|e| e["event_id"].clone()).collect();
    assert_eq!(paged, every, "the pages, in order, are the whole list once");
}

async fn bad_input(api: &Api, base: &str, admin: &str) {
    for query in [
        [("since", "yesterday")],
        [("until", "2026-13-01T00:00:00Z")],
        [("outcome", "maybe")],
        [("limit", "0")],
        [("limit", "10001")],
        [("limit", "many")],
        [("page_token", "not-a-token")],
        [("sites", "[\"nowhere\"]")],
    ] {
        let answer = api
            .get(format!("{base}/rest/v1/audit"))
            .as_(admin)
            .query(&query)
            .send()
            .await;
        assert_error(&answer, 400, "InvalidArgument");
    }
    let answer = api
        .get(format!("{base}/rest/v1/audit/verify"))
        .as_(admin)
        .query(&[("sites", "[\"nowhere\"]")])
        .send()
        .await;
    assert_error(&answer, 400, "InvalidArgument");
}

fn cli_lists_and_verifies(base: &str, admin: &str) {
    let listed = common::cli(&["audit", "--action", "user.*"], base, admin);
    let out = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.status.success(), "{out}");
    assert_eq!(out.matches("user.create").count(), 3, "{out}");
    assert!(out.contains("admin@master.domain"), "{out}");
    let verified = common::cli(&["audit", "verify", "--json"], base, admin);
    let out = String::from_utf8_lossy(&verified.stdout);
    assert!(verified.status.success(), "{out}");
    let answer: Value = serde_json::from_str(&out).expect("json");
    assert_eq!(answer["sites"]["local"]["ok"], true, "{out}");
}

/// The site group's snapshot file of node `i`.
fn site_snapshot(site: &TestSite, i: usize) -> std::path::PathBuf {
    site.data_dir(i)
        .join("snapshots")
        .join("site_local")
        .join("current.snap")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_tampered_with_on_disk_is_named_and_makes_the_node_unhealthy() {
    let tuning = Tuning {
        raft: vec!["snapshot_every = 5".into()],
        ..Tuning::default()
    };
    let mut site = TestSite::start(1, tuning).await;
    site.wait_for_admin(0).await;
    let api = Api::default();
    let base = site.api_url(0);
    let admin = api.admin_token(&base).await;
    api.put(format!("{base}/domains/tamper-me.test"))
        .as_(&admin)
        .expect(204)
        .await;
    let victim = loop {
        let found = audit(&api, &base, &admin, &[("target", "tamper-me.test")])
            .await
            .body;
        if let Some(event) = found.as_array().and_then(|a| a.first()) {
            break event["event_id"].as_str().unwrap_or_default().to_string();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // More entries, until a snapshot holds the event.
    let path = site_snapshot(&site, 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    let needle = b"tamper-me.test";
    loop {
        api.get(format!("{base}/domains"))
            .as_(common::TOKEN_KEY)
            .expect(401)
            .await;
        let bytes = std::fs::read(&path).unwrap_or_default();
        if bytes.windows(needle.len()).any(|w| w == needle) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no snapshot holds the event\n{}",
            site.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let healthy = api.get(format!("{base}/healthcheck")).expect(200).await;
    assert_eq!(healthy.body["status"], "healthy", "{}", healthy.text);
    site.kill(0);
    let mut bytes = std::fs::read(&path).expect("snapshot");
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("the event in the snapshot");
    bytes[at..at + needle.len()].copy_from_slice(b"tamper-me.xxxx");
    std::fs::write(&path, &bytes).expect("write the tampered snapshot");
    site.restart(0).await;
    site.wait_formed(1, Duration::from_secs(30)).await;
    let admin = api.admin_token(&base).await;
    let verified = api
        .get(format!("{base}/rest/v1/audit/verify"))
        .as_(&admin)
        .expect(200)
        .await
        .body;
    let local = &verified["sites"]["local"];
    assert_eq!(local["ok"], false, "{verified}");
    assert_eq!(local["first_bad_event_id"], victim.as_str(), "{verified}");
    let health = api.get(format!("{base}/healthcheck")).send().await;
    assert_eq!(health.status, 503, "{}", health.text);
    assert_eq!(health.body["status"], "unhealthy", "{}", health.text);
    assert!(health.text.contains(&victim), "{}", health.text);
}

/// central and east, one node each: events stay in the chain of the site that served them, a
/// forwarded call is recorded at the site that served it with the origin's caller, and the
/// listing and the check span the sites (503, or a partial answer, when one is down).
#[tokio::test(flavor = "multi_thread")]
async fn each_site_keeps_its_own_chain_and_the_listing_spans_them() {
    let mut sites = TestSite::start_sites(
        &[("central", 240), ("east", 241)],
        1,
        &[1],
        Tuning::default(),
    )
    .await;
    let mut east = sites.pop().expect("east");
    let central = sites.pop().expect("central");
    central.wait_for_admin(0).await;
    east.wait_for_admin(0).await;
    let api = Api::default();
    let base = central.api_url(0);
    let admin = api.admin_token(&base).await;
    common::add_user(&api, &base, &admin, "multi.test", "bob", BOB_PASSWORD).await;
    api.token(&east.api_url(0), "multi.test", "bob", BOB_PASSWORD)
        .await;
    api.post(format!("{base}/rest/v1/master/logicalroles/ws/sessions"))
        .as_(&admin)
        .body(json!({"action": "logout", "domain": "multi.test", "user": "bob", "sites": "all"}))
        .expect(200)
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    let events = loop {
        let listed = audit(&api, &base, &admin, &[("sites", "all")]).await.body;
        let listed = listed.as_array().cloned().unwrap_or_default();
        if listed.len() >= 4 || Instant::now() > deadline {
            break listed;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let at = |site: &str, action: &str| -> Vec<&Value> {
        events
            .iter()
            .filter(|e| e["site"] == site && e["action"] == action)
            .collect()
    };
    assert_eq!(at("central", "domain.create").len(), 1, "{events:#?}");
    assert_eq!(at("central", "user.create").len(), 1, "{events:#?}");
    assert!(
        at("east", "user.create").is_empty(),
        "served by central: {events:#?}"
    );
    assert_eq!(at("central", "sessions.logout").len(), 1, "{events:#?}");
    let forwarded = at("east", "sessions.logout");
    assert_eq!(forwarded.len(), 1, "{events:#?}");
    assert_eq!(
        forwarded[0]["actor"],
        json!({"federated": "admin@master.domain", "from_site": "central"})
    );
    assert_eq!(forwarded[0]["details"]["federated_from"], "central");
    assert_eq!(forwarded[0]["details"]["sessions_ended"], 1);
    assert_eq!(events.len(), 4, "{events:#?}");

    let verified = api
        .get(format!("{base}/rest/v1/audit/verify"))
        .as_(&admin)
        .query(&[("sites", "all")])
        .expect(200)
        .await
        .body;
    assert_eq!(
        verified,
        json!({"sites": {"central": {"events": 3, "ok": true}, "east": {"events": 1, "ok": true}}})
    );

    east.kill(0);
    let answer = api
        .get(format!("{base}/rest/v1/audit"))
        .as_(&admin)
        .query(&[("sites", "all")])
        .send()
        .await;
    assert_error(&answer, 503, "Unavailable");
    let partial = audit(
        &api,
        &base,
        &admin,
        &[("sites", "all"), ("allow_partial", "true")],
    )
    .await;
    assert_eq!(partial.headers["x-unavailable-sites"], "east");
    let partial = partial.body.as_array().cloned().unwrap_or_default();
    assert!(
        partial.iter().all(|e| e["site"] == "central"),
        "{partial:#?}"
    );
}
