//! Identity and login against real nodes (child processes on 127.0.0.x) with a real HTTP client:
//! login on any node, revocation everywhere, the site-wide login ban, authentication and RBAC
//! on every endpoint, the error contract for bad input, and secrets kept out of the logs.

use crate::common;

use common::{add_user, assert_error, signal, Api, TestSite, Tuning, ADMIN_PASSWORD, TOKEN_KEY};
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

const MASTER: &str = "master.domain";

async fn one_node() -> (TestSite, Api, String) {
    let site = TestSite::start(1, Tuning::default()).await;
    site.wait_for_admin(0).await;
    let api = Api::default();
    let base = site.api_url(0);
    (site, api, base)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_login_works_on_every_node_and_its_logout_revokes_it_everywhere() {
    let site = TestSite::start(3, Tuning::default()).await;
    site.wait_for_admin(0).await;
    let api = Api::default();
    let bases: Vec<String> = (0..3).map(|i| site.api_url(i)).collect();

    let login = api.login(&bases[1], MASTER, "admin", ADMIN_PASSWORD).await;
    assert_eq!(login.status, 200, "{}", login.text);
    for field in [
        "session_id",
        "token",
        "user_id",
        "domain",
        "login",
        "site",
        "ttl",
    ] {
        assert!(!login.body[field].is_null(), "login answer lacks {field}");
    }
    assert_eq!(login.body["site"], "local");
    assert!(login.body["ttl"].as_u64().unwrap() > 43_000);
    let token = login.body["token"].as_str().unwrap();

    for base in &bases {
        let current = api
            .get(format!("{base}/rest/v1/iam/sessions/current"))
            .as_(token)
            .expect(200)
            .await;
        assert_eq!(current.body["session_id"], login.body["session_id"]);
        assert_eq!(current.body["session_type"], "http");
        assert_eq!(current.body["login"], "admin");
    }

    let renewed = api
        .patch(format!("{}/rest/v1/iam/sessions/current", bases[2]))
        .as_(token)
        .expect(200)
        .await;
    assert!(
        renewed.body["token"].as_str().is_some(),
        "a bearer caller gets a new token"
    );

    api.delete(format!("{}/rest/v1/iam/sessions/current", bases[0]))
        .as_(token)
        .expect(204)
        .await;
    for base in &bases {
        api.get(format!("{base}/rest/v1/iam/sessions/current"))
            .as_(token)
            .expect_error(401, "Unauthorized")
            .await;
    }
    let renewed_token = renewed.body["token"].as_str().unwrap();
    api.get(format!("{}/rest/v1/iam/sessions/current", bases[1]))
        .as_(renewed_token)
        .expect_error(401, "Unauthorized")
        .await;
}

/// A 3-node site with the user bob@victim.org (password `bob-password-1`), and its api urls.
async fn three_nodes_with_bob() -> (TestSite, Api, Vec<String>) {
    let site = TestSite::start(3, Tuning::default()).await;
    site.wait_for_admin(0).await;
    let api = Api::default();
    let bases: Vec<String> = (0..3).map(|i| site.api_url(i)).collect();
    let admin = api.admin_token(&bases[0]).await;
    add_user(
        &api,
        &bases[0],
        &admin,
        "victim.org",
        "bob",
        "bob-password-1",
    )
    .await;
    (site, api, bases)
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_logins_all_look_alike_and_ban_the_login_site_wide() {
    let (_site, api, bases) = three_nodes_with_bob().await;

    let wrong_password = api.login(&bases[0], "victim.org", "bob", "nope").await;
    let unknown_user = api.login(&bases[1], "victim.org", "nobody", "nope").await;
    let unknown_domain = api.login(&bases[2], "nowhere.org", "bob", "nope").await;
    let invalid_name = api.login(&bases[2], "bad@domain", "bob", "nope").await;
    for answer in [
        &wrong_password,
        &unknown_user,
        &unknown_domain,
        &invalid_name,
    ] {
        assert_error(answer, 401, "Unauthorized");
        assert_eq!(answer.text, wrong_password.text, "the 401 bodies differ");
    }

    // bob has one failure; four more, spread over the three nodes, make five.
    for k in 0..4 {
        let answer = api.login(&bases[k % 3], "victim.org", "bob", "nope").await;
        assert_error(&answer, 401, "Unauthorized");
    }
    for base in &bases {
        let banned = api.login(base, "victim.org", "bob", "bob-password-1").await;
        assert_error(&banned, 429, "TooManyRequests");
        let retry: u64 = banned.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=180).contains(&retry), "Retry-After {retry}");
    }
    // Another login is not affected.
    let other = api.login(&bases[1], MASTER, "admin", ADMIN_PASSWORD).await;
    assert_eq!(other.status, 200, "{}", other.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_guesses_on_every_node_get_no_more_password_checks_than_the_ban_allows() {
    let (_site, api, bases) = three_nodes_with_bob().await;

    let guesses = (0..300).map(|k| api.login(&bases[k % 3], "victim.org", "bob", "nope"));
    let answers = futures_util::future::join_all(guesses).await;
    let checked: Vec<&common::Answer> = answers.iter().filter(|a| a.status != 429).collect();
    for answer in &checked {
        assert_error(answer, 401, "Unauthorized");
    }
    assert_eq!(
        checked.len(),
        5,
        "300 concurrent guesses got {} password checks",
        checked.len()
    );
    for answer in answers.iter().filter(|a| a.status == 429) {
        assert_error(answer, 429, "TooManyRequests");
    }
    for base in &bases {
        let banned = api.login(base, "victim.org", "bob", "bob-password-1").await;
        assert_error(&banned, 429, "TooManyRequests");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_password_check_counts_towards_one_ban() {
    let (site, api, base, admin) = common::admin_node(Tuning::default()).await;
    add_user(&api, &base, &admin, "victim.org", "dave", "dave-password-1").await;
    let stolen = api
        .token(&base, "victim.org", "dave", "dave-password-1")
        .await;
    let ca = std::fs::read_to_string(&site.nodes[0].cert_file).expect("certificate");

    let rest = api.login(&base, "victim.org", "dave", "nope").await;
    assert_error(&rest, 401, "Unauthorized");
    let mut imap = common::mail::tls(site.nodes[0].imaps, &ca).await;
    imap.line().await;
    imap.send("a1 LOGIN dave@victim.org nope").await;
    let refused = imap.until("a1 ").await.join("\n");
    assert!(refused.contains("a1 NO"), "{refused}");
    let mut smtp = common::mail::tls(site.nodes[0].smtps, &ca).await;
    smtp.line().await;
    smtp.send("EHLO test.client").await;
    smtp.until("250 ").await;
    let plain = common::mail::plain_credentials("dave@victim.org", "nope");
    smtp.send(&format!("AUTH PLAIN {plain}")).await;
    let refused = smtp.line().await.unwrap_or_default();
    assert!(refused.starts_with("535"), "{refused}");
    let basic = base64_basic("dave@victim.org", "nope");
    let jmap = api
        .send(
            api.http
                .get(format!("{base}/jmap/eventsource?ping=0"))
                .header("authorization", basic),
        )
        .await;
    assert_error(&jmap, 401, "Unauthorized");

    // A stolen token guesses the old password under the same ban: the fifth check is the last.
    let wrong_old = json!({"oldPwd": "nope", "newPwd": "x-new-password-1", "newPwdConfirm": "x-new-password-1"});
    let url = format!("{base}/users/dave@victim.org/password");
    api.post(url.clone())
        .as_(&stolen)
        .body(wrong_old.clone())
        .expect_error(403, "Forbidden")
        .await;
    api.post(url)
        .as_(&stolen)
        .body(wrong_old)
        .expect_error(429, "TooManyRequests")
        .await;
    let banned = api
        .login(&base, "victim.org", "dave", "dave-password-1")
        .await;
    assert_error(&banned, 429, "TooManyRequests");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trusted_network_is_not_locked_out_by_a_ban_earned_elsewhere() {
    let tuning = Tuning {
        iam: vec![r#"trusted_networks = ["127.0.0.1/32"]"#.into()],
        ..Tuning::default()
    };
    let site = TestSite::start(1, tuning).await;
    site.wait_for_admin(0).await;
    let inside = Api::default();
    let base = site.api_url(0);
    let outside = Api::from_source(format!("127.0.{}.200", site.octet).parse().unwrap());
    for _ in 0..5 {
        let guess = outside.login(&base, MASTER, "admin", "nope").await;
        assert_error(&guess, 401, "Unauthorized");
    }
    let banned = outside.login(&base, MASTER, "admin", ADMIN_PASSWORD).await;
    assert_error(&banned, 429, "TooManyRequests");
    let admin = inside.login(&base, MASTER, "admin", ADMIN_PASSWORD).await;
    assert_eq!(admin.status, 200, "{}", admin.text);

    // The trusted sources have a ban of their own.
    for _ in 0..5 {
        let guess = inside.login(&base, MASTER, "admin", "nope").await;
        assert_error(&guess, 401, "Unauthorized");
    }
    let banned = inside.login(&base, MASTER, "admin", ADMIN_PASSWORD).await;
    assert_error(&banned, 429, "TooManyRequests");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_too_large_for_one_command_is_the_clients_error() {
    let (_site, api, base) = one_node().await;
    let admin = api.admin_token(&base).await;
    add_user(&api, &base, &admin, "big.org", "ann", "ann-password-1").await;
    let properties: serde_json::Map<String, Value> = (0..900)
        .map(|k| (format!("p{k}"), Value::String("v".repeat(1_000))))
        .collect();
    let too_many_properties = [
        (
            Method::PUT,
            "/users/bob@big.org",
            json!({"password": "bob-password-1", "properties": properties}),
        ),
        (
            Method::PATCH,
            "/users/ann@big.org",
            json!({"properties": properties}),
        ),
    ];
    let users: Vec<String> = (0..30_000).map(|k| format!("user{k}@big.org")).collect();
    let too_many_users = (Method::DELETE, "/servers/channels", json!(users));
    for (method, path, body) in too_many_properties.into_iter().chain([too_many_users]) {
        let answer = api
            .call(
                method.clone(),
                format!("{base}{path}"),
                Some(&admin),
                Some(body),
            )
            .await;
        assert_error(&answer, 413, "InvalidArgument");
        let message = answer.body["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("262144"),
            "{method} {path}: the limit is not named: {message}"
        );
    }
    // Nothing was half-done, and the node still takes writes.
    api.get(format!("{base}/users/bob@big.org"))
        .as_(&admin)
        .expect_error(404, "notFound")
        .await;
    api.patch(format!("{base}/users/ann@big.org"))
        .as_(&admin)
        .body(json!({"properties": {"team": "red"}}))
        .expect(200)
        .await;
}

fn base64_basic(user: &str, password: &str) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

#[tokio::test(flavor = "multi_thread")]
async fn every_admin_endpoint_refuses_missing_bad_and_dead_credentials() {
    let (site, api, base) = one_node().await;
    let admin = api.admin_token(&base).await;
    add_user(&api, &base, &admin, "plain.org", "carol", "carol-password").await;
    let carol = api
        .token(&base, "plain.org", "carol", "carol-password")
        .await;

    let expired = sign_with(TOKEN_KEY, claims_like(&admin, -10));
    let other_key = sign_with("another-key", claims_like(&admin, 3600));
    let dead = api.token(&base, MASTER, "admin", ADMIN_PASSWORD).await;
    api.delete(format!("{base}/rest/v1/iam/sessions/current"))
        .as_(&dead)
        .expect(204)
        .await;

    let endpoints: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, "/rest/v1/iam/sessions/current".into(), None),
        (Method::PATCH, "/rest/v1/iam/sessions/current".into(), None),
        (Method::DELETE, "/rest/v1/iam/sessions/current".into(), None),
        (Method::GET, "/domains".into(), None),
        (Method::GET, "/domains/plain.org".into(), None),
        (Method::PUT, "/domains/new.org".into(), None),
        (Method::DELETE, "/domains/plain.org".into(), None),
        (Method::GET, "/users?domain=plain.org".into(), None),
        (
            Method::PUT,
            "/users/x@plain.org".into(),
            Some(json!({"password": "p"})),
        ),
        (Method::GET, "/users/carol@plain.org".into(), None),
        (
            Method::PATCH,
            "/users/carol@plain.org".into(),
            Some(json!({"properties": {}})),
        ),
        (
            Method::POST,
            "/users/carol@plain.org/password".into(),
            Some(json!({"newPwd": "a", "newPwdConfirm": "a"})),
        ),
        (Method::DELETE, "/users/carol@plain.org".into(), None),
        (
            Method::DELETE,
            "/users".into(),
            Some(json!(["carol@plain.org"])),
        ),
        (Method::GET, "/groups?domain=plain.org".into(), None),
        (Method::PUT, "/groups/g@plain.org".into(), Some(json!({}))),
        (Method::GET, "/groups/g@plain.org".into(), None),
        (Method::PATCH, "/groups/g@plain.org".into(), Some(json!({}))),
        (Method::DELETE, "/groups/g@plain.org".into(), None),
    ];
    for (method, path, body) in &endpoints {
        let url = format!("{base}{path}");
        for (label, token) in [
            ("no token", None),
            ("garbage", Some("garbage.token.here")),
            ("expired", Some(expired.as_str())),
            ("other key", Some(other_key.as_str())),
            ("closed session", Some(dead.as_str())),
        ] {
            let answer = api
                .call(method.clone(), url.clone(), token, body.clone())
                .await;
            assert_eq!(
                answer.status, 401,
                "{method} {path} with {label}: {}",
                answer.text
            );
            assert_eq!(answer.kind(), "Unauthorized");
        }
        // The cookie is a credential too, and a dead one is refused the same way.
        let cookie = api
            .send(
                api.http
                    .request(method.clone(), url.clone())
                    .header("cookie", format!("RSession={dead}")),
            )
            .await;
        assert_eq!(cookie.status, 401, "{method} {path} with a dead cookie");
        if !path.starts_with("/rest/v1/iam") && !path.contains("carol@plain.org/password") {
            let answer = api
                .call(method.clone(), url, Some(&carol), body.clone())
                .await;
            assert_error(&answer, 403, "Forbidden");
        }
    }
    drop(site);
}

#[tokio::test(flavor = "multi_thread")]
async fn domain_administrators_act_on_their_domain_only() {
    let (_site, api, base) = one_node().await;
    let admin = api.admin_token(&base).await;
    add_user(&api, &base, &admin, "a.org", "anna", "anna-password").await;
    add_user(&api, &base, &admin, "a.org", "andy", "andy-password").await;
    add_user(&api, &base, &admin, "b.org", "bert", "bert-password").await;
    api.put(format!("{base}/groups/admins@a.org"))
        .as_(&admin)
        .body(json!({"members": ["anna@a.org"]}))
        .expect(201)
        .await;
    let anna = api.token(&base, "a.org", "anna", "anna-password").await;

    let own = api
        .get(format!("{base}/users/andy@a.org"))
        .as_(&anna)
        .expect(200)
        .await;
    assert!(
        own.text.find("argon2").is_none(),
        "a hash in an answer: {}",
        own.text
    );
    let listed = api
        .call(Method::GET, format!("{base}/domains"), Some(&anna), None)
        .await;
    assert_eq!(listed.body, json!(["a.org"]));
    for (method, path, body) in [
        (Method::GET, "/users/bert@b.org", None),
        (Method::DELETE, "/users/bert@b.org", None),
        (
            Method::PUT,
            "/users/new@b.org",
            Some(json!({"password": "x"})),
        ),
        (Method::GET, "/users?domain=b.org", None),
        (Method::PUT, "/groups/admins@b.org", Some(json!({}))),
        (Method::PUT, "/domains/c.org", None),
        (Method::DELETE, "/domains/a.org", None),
        (
            Method::DELETE,
            "/users",
            Some(json!(["andy@a.org", "bert@b.org"])),
        ),
    ] {
        let answer = api
            .call(method.clone(), format!("{base}{path}"), Some(&anna), body)
            .await;
        assert_error(&answer, 403, "Forbidden");
    }
    // The refused multi-delete deleted nothing, not even the user in anna's own domain.
    api.get(format!("{base}/users/andy@a.org"))
        .as_(&admin)
        .expect(200)
        .await;

    // A group's members: another domain's user and no user at all are answered alike.
    let group = format!("{base}/groups/team@a.org");
    let created = api
        .put(group.clone())
        .as_(&anna)
        .body(json!({"members": ["andy@a.org"]}))
        .expect(201)
        .await;
    assert_eq!(
        created.body["name"], "team",
        "PUT answers the group: {}",
        created.text
    );
    assert_eq!(created.body["members"][0]["username"], "andy@a.org");
    let amy = api
        .put(format!("{base}/users/amy@a.org"))
        .as_(&anna)
        .body(json!({"password": "amy-password-1", "properties": {"team": "red"}}))
        .expect(201)
        .await;
    assert_eq!(
        amy.body["username"], "amy@a.org",
        "PUT answers the user: {}",
        amy.text
    );
    assert_eq!(amy.body["properties"]["team"], "red");
    assert!(
        amy.body["user_id"].is_string() && !amy.text.contains("argon2"),
        "{}",
        amy.text
    );
    let bert_id = api
        .call(
            Method::GET,
            format!("{base}/users/bert@b.org"),
            Some(&admin),
            None,
        )
        .await
        .body["user_id"]
        .as_str()
        .expect("bert's id")
        .to_string();
    let answer_to = |member: String| {
        let (api, group, anna) = (&api, group.clone(), anna.clone());
        async move {
            let answer = api
                .call(
                    Method::PATCH,
                    group,
                    Some(&anna),
                    Some(json!({"add": [member.clone()]})),
                )
                .await;
            (answer.status, answer.text.replace(&member, "<member>"))
        }
    };
    let existing = answer_to("bert@b.org".into()).await;
    let missing = answer_to("nobody@b.org".into()).await;
    assert_eq!(existing.0, 404, "{}", existing.1);
    assert_eq!(
        existing, missing,
        "another domain's user is told apart from no user"
    );
    let by_id = answer_to(bert_id).await;
    let no_id = answer_to(uuid::Uuid::now_v7().to_string()).await;
    assert_eq!(
        by_id, no_id,
        "another domain's user id is told apart from no user"
    );
    assert_eq!(by_id, existing);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_the_exact_status_and_type() {
    let (_site, api, base) = one_node().await;
    let admin = api.admin_token(&base).await;
    add_user(&api, &base, &admin, "input.org", "ida", "ida-password").await;
    let raw = |method: Method, path: &str, body: &str| {
        api.http
            .request(method, format!("{base}{path}"))
            .bearer_auth(&admin)
            .header("content-type", "application/json")
            .body(body.to_string())
    };
    let long = "x".repeat(256);
    let max = "x".repeat(255);
    let cases: Vec<(&str, reqwest::RequestBuilder, u16, &str)> = vec![
        (
            "malformed JSON",
            raw(Method::PUT, "/users/a@input.org", "{\"password\":"),
            400,
            "InvalidArgument",
        ),
        (
            "wrong field type",
            raw(Method::PUT, "/users/a@input.org", "{\"password\":42}"),
            400,
            "InvalidArgument",
        ),
        (
            "missing field",
            raw(Method::PUT, "/users/a@input.org", "{}"),
            400,
            "InvalidArgument",
        ),
        (
            "unknown field",
            raw(
                Method::PUT,
                "/users/a@input.org",
                "{\"password\":\"p\",\"pasword\":1}",
            ),
            400,
            "InvalidArgument",
        ),
        (
            "empty password",
            raw(Method::PUT, "/users/a@input.org", "{\"password\":\"\"}"),
            400,
            "InvalidArgument",
        ),
        (
            "not JSON",
            api.http
                .put(format!("{base}/users/a@input.org"))
                .bearer_auth(&admin)
                .body("password=p"),
            415,
            "InvalidArgument",
        ),
        (
            "2 MiB body",
            raw(
                Method::PUT,
                "/users/a@input.org",
                &format!("{{\"password\":\"{}\"}}", "p".repeat(2 << 20)),
            ),
            413,
            "InvalidArgument",
        ),
        (
            "256-char domain",
            raw(Method::PUT, &format!("/domains/{long}"), ""),
            400,
            "InvalidArgument",
        ),
        (
            "256-char login",
            raw(
                Method::PUT,
                &format!("/users/{long}@input.org"),
                "{\"password\":\"p\"}",
            ),
            400,
            "InvalidArgument",
        ),
        (
            "@ in a domain",
            raw(Method::PUT, "/domains/a@b.org", ""),
            400,
            "InvalidArgument",
        ),
        (
            "/ in a domain",
            raw(Method::PUT, "/domains/a%2Fb.org", ""),
            400,
            "InvalidArgument",
        ),
        (
            "space in a login",
            raw(
                Method::PUT,
                "/users/a%20b@input.org",
                "{\"password\":\"p\"}",
            ),
            400,
            "InvalidArgument",
        ),
        (
            "no @ in a user",
            raw(Method::GET, "/users/justlogin", ""),
            400,
            "InvalidArgument",
        ),
        (
            "empty login",
            raw(Method::GET, "/users/@input.org", ""),
            400,
            "InvalidArgument",
        ),
        (
            "duplicate user",
            raw(Method::PUT, "/users/ida@input.org", "{\"password\":\"p\"}"),
            409,
            "WrongState",
        ),
        (
            "duplicate domain",
            raw(Method::PUT, "/domains/input.org", ""),
            409,
            "WrongState",
        ),
        (
            "unknown user",
            raw(Method::GET, "/users/nobody@input.org", ""),
            404,
            "notFound",
        ),
        (
            "unknown domain's user",
            raw(Method::PUT, "/users/a@nowhere.org", "{\"password\":\"p\"}"),
            404,
            "notFound",
        ),
        (
            "unknown domain",
            raw(Method::GET, "/domains/nowhere.org", ""),
            404,
            "notFound",
        ),
        (
            "unknown group member",
            raw(
                Method::PUT,
                "/groups/g@input.org",
                "{\"members\":[\"ghost@input.org\"]}",
            ),
            404,
            "notFound",
        ),
        (
            "domain still in use",
            raw(Method::DELETE, "/domains/input.org", ""),
            409,
            "WrongState",
        ),
        (
            "the master domain",
            raw(Method::DELETE, "/domains/master.domain", ""),
            409,
            "WrongState",
        ),
        (
            "passwords differ",
            raw(
                Method::POST,
                "/users/ida@input.org/password",
                "{\"newPwd\":\"a\",\"newPwdConfirm\":\"b\"}",
            ),
            400,
            "InvalidArgument",
        ),
        (
            "empty delete list",
            raw(Method::DELETE, "/users", "[]"),
            400,
            "InvalidArgument",
        ),
        (
            "unknown route",
            raw(Method::GET, "/no/such/route", ""),
            404,
            "notFound",
        ),
        (
            "wrong method",
            raw(Method::PUT, "/rest/v1/iam/sessions", ""),
            405,
            "InvalidArgument",
        ),
        (
            "login without pwd",
            raw(
                Method::POST,
                "/rest/v1/iam/sessions",
                "{\"domain\":\"d\",\"login\":\"l\"}",
            ),
            400,
            "InvalidArgument",
        ),
        (
            "unknown session_type",
            raw(
                Method::POST,
                "/rest/v1/iam/sessions",
                "{\"domain\":\"d\",\"login\":\"l\",\"pwd\":\"p\",\"session_type\":\"jwt\"}",
            ),
            400,
            "InvalidArgument",
        ),
    ];
    for (label, request, status, kind) in cases {
        let answer = api.send(request).await;
        assert_eq!(answer.status, status, "{label}: {}", answer.text);
        if status == 413 {
            assert_eq!(
                answer.headers.get("connection").map(|v| v.as_bytes()),
                Some(&b"close"[..]),
                "{label}: the connection is not kept for another request"
            );
        }
        assert_eq!(answer.kind(), kind, "{label}: {}", answer.text);
        assert_eq!(answer.body["statusCode"], status, "{label}");
        assert!(
            answer.body.get("cause").is_some(),
            "{label}: no cause: {}",
            answer.text
        );
        assert!(!answer.text.contains("panicked"), "{label}");
    }

    // Limits that are not errors: 255 characters, and names beyond ASCII.
    for ok in [
        raw(Method::PUT, &format!("/domains/{max}"), ""),
        raw(Method::PUT, "/domains/b%C3%BCcher.example", ""),
    ] {
        assert_eq!(api.send(ok).await.status, 204);
    }
    let unicode = api
        .send(raw(
            Method::PUT,
            "/users/%C3%A9lodie@b%C3%BCcher.example",
            "{\"password\":\"pässwörd ✓\"}",
        ))
        .await;
    assert_eq!(unicode.status, 201, "{}", unicode.text);
    let login = api
        .login(&base, "BÜCHER.example", "élodie", "pässwörd ✓")
        .await;
    assert_eq!(
        login.status, 200,
        "domains compare without case: {}",
        login.text
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_disabling_or_changing_a_password_closes_the_users_sessions() {
    let (_site, api, base) = one_node().await;
    let admin = api.admin_token(&base).await;
    add_user(&api, &base, &admin, "life.org", "dora", "dora-password").await;
    let current = |token: String| {
        let api = &api;
        let url = format!("{base}/rest/v1/iam/sessions/current");
        async move { api.call(Method::GET, url, Some(&token), None).await.status }
    };

    // A password change by the user keeps the session it was made from, and ends the others.
    let kept = api.token(&base, "life.org", "dora", "dora-password").await;
    let other = api.token(&base, "life.org", "dora", "dora-password").await;
    api.post(format!("{base}/users/dora@life.org/password"))
        .as_(&kept)
        .body(json!({"oldPwd": "nope", "newPwd": "n1", "newPwdConfirm": "n1"}))
        .expect_error(403, "Forbidden")
        .await;
    api.post(format!("{base}/users/dora@life.org/password")).as_(&kept).body(json!({"oldPwd": "dora-password", "newPwd": "dora-new-1", "newPwdConfirm": "dora-new-1"})).expect(204).await;
    assert_eq!(current(kept.clone()).await, 200);
    assert_eq!(current(other).await, 401);
    assert_eq!(
        api.login(&base, "life.org", "dora", "dora-password")
            .await
            .status,
        401
    );

    // Disabling ends every session and refuses the right password.
    let disable = api
        .patch(format!("{base}/users/dora@life.org"))
        .as_(&admin)
        .body(json!({"disabled": true, "properties": {"team": "blue", "gone": null}}))
        .expect(200)
        .await;
    assert_eq!(disable.body["properties"], json!({"team": "blue"}));
    assert_eq!(current(kept).await, 401);
    assert_eq!(
        api.login(&base, "life.org", "dora", "dora-new-1")
            .await
            .status,
        401
    );

    // Deleting ends the sessions too.
    api.patch(format!("{base}/users/dora@life.org"))
        .as_(&admin)
        .body(json!({"disabled": false}))
        .expect(200)
        .await;
    let again = api.token(&base, "life.org", "dora", "dora-new-1").await;
    api.delete(format!("{base}/users/dora@life.org"))
        .as_(&admin)
        .expect(204)
        .await;
    assert_eq!(current(again).await, 401);
    api.get(format!("{base}/users/dora@life.org"))
        .as_(&admin)
        .expect_error(404, "notFound")
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cookie_logins_and_service_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let service_key = dir.path().join("service.key");
    std::fs::write(&service_key, "service-secret-for-tests").unwrap();
    let tuning = Tuning {
        iam: vec![format!("service_key_file = \"{}\"", service_key.display())],
        ..Default::default()
    };
    let site = TestSite::start(1, tuning).await;
    site.wait_for_admin(0).await;
    let api = Api::default();
    let base = site.api_url(0);

    let cookie_login = api
        .send(
            api.http
                .post(format!("{base}/rest/v1/iam/sessions"))
                .json(&json!({"domain": MASTER, "login": "admin", "pwd": ADMIN_PASSWORD})),
        )
        .await;
    assert_eq!(cookie_login.status, 200, "{}", cookie_login.text);
    assert!(
        cookie_login.body.get("token").is_none(),
        "cookie-only logins keep the token out of the body"
    );
    let set_cookie = cookie_login.headers["set-cookie"]
        .to_str()
        .unwrap()
        .to_string();
    for attribute in ["RSession=", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    let by_cookie = api
        .send(
            api.http
                .get(format!("{base}/domains"))
                .header("cookie", &cookie),
        )
        .await;
    assert_eq!(by_cookie.status, 200, "{}", by_cookie.text);

    let both = api
        .send(api.http.post(format!("{base}/rest/v1/iam/sessions")).json(
            &json!({"domain": MASTER, "login": "admin", "pwd": ADMIN_PASSWORD, "session_type": "token_clone_cookie"}),
        ))
        .await;
    assert!(both.body["token"].is_string() && both.headers.contains_key("set-cookie"));

    let now = now_secs();
    let service = sign_with(
        "service-secret-for-tests",
        json!({"sub": "incident-bot", "admin": true, "exp": now + 300}),
    );
    api.get(format!("{base}/domains"))
        .as_(&service)
        .expect(200)
        .await;
    api.get(format!("{base}/rest/v1/iam/sessions/current"))
        .as_(&service)
        .expect_error(404, "notFound")
        .await;
    for refused in [
        json!({"sub": "bot", "admin": false, "exp": now + 300}),
        json!({"sub": "", "admin": true, "exp": now + 300}),
        json!({"sub": "bot", "admin": true, "exp": now - 10}),
        json!({"sub": "bot", "admin": true}),
    ] {
        let token = sign_with("service-secret-for-tests", refused.clone());
        api.get(format!("{base}/domains"))
            .as_(&token)
            .expect_error(401, "Unauthorized")
            .await;
    }
}

/// A service token is honoured from its `nbf` on, and one refused for a claim says which claim,
/// with nothing of the key or the token in the answer.
#[tokio::test(flavor = "multi_thread")]
async fn service_tokens_wait_for_nbf_and_refusals_name_the_claim() {
    let dir = tempfile::tempdir().unwrap();
    let service_key = dir.path().join("service.key");
    std::fs::write(&service_key, "service-secret-for-claims").unwrap();
    let tuning = Tuning {
        iam: vec![format!("service_key_file = \"{}\"", service_key.display())],
        ..Default::default()
    };
    let site = TestSite::start(1, tuning).await;
    site.wait_for_admin(0).await;
    let api = Api::default();
    let url = format!("{}/domains", site.api_url(0));
    let now = now_secs();

    let due = sign_with(
        "service-secret-for-claims",
        json!({"sub": "bot", "admin": true, "exp": now + 300, "nbf": now - 5}),
    );
    api.get(url.clone()).as_(&due).expect(200).await;

    for (claims, named) in [
        (
            json!({"sub": "bot", "admin": true, "exp": now + 300, "nbf": now + 3600}),
            "nbf",
        ),
        (json!({"sub": "bot", "admin": true}), "exp"),
        (json!({"admin": true, "exp": now + 300}), "sub"),
        (json!({"sub": "", "admin": true, "exp": now + 300}), "sub"),
        (
            json!({"sub": "bot", "admin": "yes", "exp": now + 300}),
            "admin",
        ),
    ] {
        let token = sign_with("service-secret-for-claims", claims.clone());
        let answer = api
            .get(url.clone())
            .as_(&token)
            .expect_error(401, "Unauthorized")
            .await;
        let said = format!("{} {}", answer.body["message"], answer.body["cause"]);
        assert!(said.contains(&format!("`{named}`")), "{claims}: {said}");
        assert!(
            !said.contains("algorithm") && !said.contains("signature"),
            "{claims}: {said}"
        );
        assert!(
            !answer.text.contains("service-secret") && !answer.text.contains(&token),
            "{}",
            answer.text
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn passwords_hashes_keys_and_tokens_never_reach_the_logs() {
    let tuning = Tuning {
        log_filter: Some("trace".into()),
        ..Default::default()
    };
    let site = TestSite::start(1, tuning).await;
    site.wait_for_admin(0).await;
    let api = Api::default();
    let base = site.api_url(0);
    let admin = api.admin_token(&base).await;
    add_user(
        &api,
        &base,
        &admin,
        "quiet.org",
        "eve",
        "eve-secret-password-1",
    )
    .await;
    let eve = api
        .token(&base, "quiet.org", "eve", "eve-secret-password-1")
        .await;
    api.login(&base, "quiet.org", "eve", "eve-wrong-password-2")
        .await;
    api.post(format!("{base}/users/eve@quiet.org/password")).as_(&eve).body(json!({"oldPwd": "eve-secret-password-1", "newPwd": "eve-new-password-3", "newPwdConfirm": "eve-new-password-3"})).expect(204).await;
    api.call(
        Method::GET,
        format!("{base}/domains"),
        Some("garbage-token-4"),
        None,
    )
    .await;
    let shown = api
        .get(format!("{base}/users/eve@quiet.org"))
        .as_(&admin)
        .expect(200)
        .await;

    let logs = site.logs();
    assert!(
        logs.contains("login"),
        "the nodes logged nothing useful:\n{logs}"
    );
    for secret in [
        ADMIN_PASSWORD,
        "eve-secret-password-1",
        "eve-wrong-password-2",
        "eve-new-password-3",
        "garbage-token-4",
        TOKEN_KEY,
        admin.as_str(),
        eve.as_str(),
        "$argon2id$",
    ] {
        assert!(!logs.contains(secret), "{secret:?} is in the logs");
        assert!(!shown.text.contains(secret), "{secret:?} is in an answer");
    }
    // Token pieces too: the signature part alone must not leak either.
    let signature = eve.rsplit('.').next().unwrap();
    assert!(!logs.contains(signature));
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A session token's claims copied from `token`, with a new expiry `exp_in` seconds from now.
fn claims_like(token: &str, exp_in: i64) -> Value {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    let mut claims: Value = serde_json::from_slice(&bytes).unwrap();
    claims["exp"] = json!(now_secs() as i64 + exp_in);
    claims
}

fn sign_with(key: &str, claims: Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(key.as_bytes()),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn invisible_characters_are_refused_and_every_spelling_of_a_name_is_the_same_name() {
    let (_site, api, base) = one_node().await;
    let admin = api.admin_token(&base).await;
    add_user(&api, &base, &admin, "plain.org", "bob", "bob-password").await;
    let put = |path: String, body: Option<Value>| {
        api.call(Method::PUT, format!("{base}{path}"), Some(&admin), body)
    };
    let password = || Some(json!({"password": "a-password"}));

    // Refused, naming what was refused: a zero-width space, a right-to-left override, a line
    // separator, a byte order mark.
    let refused = [
        (
            "/domains/ali%E2%80%8Bce.org".to_string(),
            None,
            "format character (Cf)",
        ),
        (
            "/domains/xn--bcher-kva%E2%80%AE.org".to_string(),
            None,
            "bidirectional control",
        ),
        (
            "/users/ali%E2%80%8Bce@plain.org".to_string(),
            password(),
            "format character (Cf)",
        ),
        (
            "/users/alice%E2%80%AEtxt@plain.org".to_string(),
            password(),
            "bidirectional control",
        ),
        (
            "/users/ali%E2%80%A8ce@plain.org".to_string(),
            password(),
            "line separator (Zl)",
        ),
        (
            "/groups/%EF%BB%BFadmins@plain.org".to_string(),
            Some(json!({"members": []})),
            "format character (Cf)",
        ),
    ];
    for (path, body, class) in refused {
        let answer = put(path.clone(), body).await;
        assert_error(&answer, 400, "InvalidArgument");
        let message = answer.body["message"].as_str().unwrap_or_default();
        assert!(message.contains(class), "{path}: {message}");
        assert!(!answer.text.contains('\u{202E}'), "{path}: {}", answer.text);
    }
    let users = api
        .call(
            Method::GET,
            format!("{base}/users?domain=plain.org"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(
        users.body.as_array().map(Vec::len),
        Some(1),
        "{}",
        users.text
    );

    // One domain, three spellings: Unicode, A-label, decomposed (NFD).
    assert_eq!(
        put("/domains/B%C3%BCcher.example".into(), None)
            .await
            .status,
        204
    );
    for other in [
        "/domains/xn--bcher-kva.example",
        "/domains/bu%CC%88cher.EXAMPLE",
    ] {
        let again = put(other.into(), None).await;
        assert_error(&again, 409, "WrongState");
    }
    let domains = api
        .call(Method::GET, format!("{base}/domains"), Some(&admin), None)
        .await;
    let names: Vec<&str> = domains
        .body
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter(|d| d.contains("cher"))
        .collect();
    assert_eq!(names, ["b\u{fc}cher.example"], "{}", domains.text);

    // One login, two spellings: decomposed (NFD) and composed (NFC).
    let created = put(
        "/users/e%CC%81lodie@xn--bcher-kva.example".into(),
        password(),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let shown = api
        .get(format!("{base}/users/e%CC%81lodie@XN--BCHER-KVA.example"))
        .as_(&admin)
        .expect(200)
        .await;
    assert_eq!(shown.body["username"], "\u{e9}lodie@b\u{fc}cher.example");
    let again = put("/users/%C3%A9lodie@b%C3%BCcher.example".into(), password()).await;
    assert_error(&again, 409, "WrongState");
    for (domain, login) in [
        ("xn--bcher-kva.example", "\u{e9}lodie"),
        ("BU\u{308}CHER.example", "e\u{301}lodie"),
    ] {
        let answer = api.login(&base, domain, login, "a-password").await;
        assert_eq!(answer.status, 200, "{domain} {login}: {}", answer.text);
        assert_eq!(answer.body["login"], "\u{e9}lodie");
        assert_eq!(answer.body["domain"], "b\u{fc}cher.example");
    }

    // At login a refused name is only a failed login, like a wrong password.
    let invisible = api
        .login(&base, "plain.org", "b\u{200B}ob", "bob-password")
        .await;
    let wrong = api.login(&base, "plain.org", "bob", "not-it").await;
    assert_error(&invisible, 401, "Unauthorized");
    assert_eq!(invisible.body, wrong.body);
}

/// Logs bob in through `base`: his session's id and token.
async fn log_in_bob(api: &Api, base: &str) -> (String, String) {
    let login = api.login(base, "victim.org", "bob", "bob-password-1").await;
    assert_eq!(login.status, 200, "{}", login.text);
    (
        login.body["session_id"].as_str().unwrap().to_string(),
        login.body["token"].as_str().unwrap().to_string(),
    )
}

async fn kill_session(api: &Api, base: &str, admin: &str, id: &str) {
    api.delete(format!(
        "{base}/rest/v1/master/logicalroles/ws/sessions/{id}"
    ))
    .as_(admin)
    .expect(204)
    .await;
}

/// Asks `nodes` in turn for 3 s that none takes the revoked `token` (`context` names the round).
async fn never_served(api: &Api, bases: &[String], nodes: &[usize], token: &str, context: &str) {
    let until = std::time::Instant::now() + Duration::from_secs(3);
    while std::time::Instant::now() < until {
        for &node in nodes {
            let url = format!("{}/rest/v1/iam/sessions/current", bases[node]);
            if let Some(answer) = api.try_call(Method::GET, url, token).await {
                assert_ne!(
                    answer.status, 200,
                    "{context}: the revoked session answered at node {node}: {}",
                    answer.text
                );
            }
        }
    }
}

/// Waits until `node` names a leader other than `old` (node ids).
async fn new_leader_seen_by(site: &TestSite, node: usize, old: u64) -> u64 {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(leader) = site.status(node).await.and_then(|s| s.leader) {
            if leader != old {
                return leader;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no new leader seen by node {node}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A leader frozen (SIGSTOP) while the others elect a new one and revoke a session must not serve
/// that session once it thaws: every read of it passes a read barrier, and a leader whose term
/// is over cannot confirm one. Each round asks the thawed node, and the third one, at once and
/// again for a while.
#[tokio::test(flavor = "multi_thread")]
async fn a_leader_that_slept_through_a_revocation_never_serves_the_revoked_session() {
    let (site, api, bases) = three_nodes_with_bob().await;
    for round in 0..3 {
        let frozen = site.wait_for_leader(Duration::from_secs(15)).await;
        let awake: Vec<usize> = (0..3).filter(|i| *i != frozen).collect();
        let admin = api.admin_token(&bases[awake[0]]).await;
        let (id, token) = log_in_bob(&api, &bases[awake[0]]).await;

        signal(site.pid(frozen).expect("the leader runs"), "STOP");
        new_leader_seen_by(&site, awake[0], site.nodes[frozen].id).await;
        kill_session(&api, &bases[awake[1]], &admin, &id).await;
        signal(site.pid(frozen).expect("the leader runs"), "CONT");

        let context = format!("round {round}, session {id}, frozen node {frozen}");
        never_served(
            &api,
            &bases,
            &[frozen, awake[0], awake[1]],
            &token,
            &context,
        )
        .await;
    }
}

/// The same for a node that was down through the revocation (SIGKILL) and comes back: from its
/// first answer on, it must not serve the session, whichever node it was.
#[tokio::test(flavor = "multi_thread")]
async fn a_node_down_through_a_revocation_never_serves_the_revoked_session() {
    let (mut site, api, bases) = three_nodes_with_bob().await;
    for down in 0..3 {
        let up: Vec<usize> = (0..3).filter(|i| *i != down).collect();
        site.wait_for_leader(Duration::from_secs(15)).await;
        let admin = api.admin_token(&bases[up[0]]).await;
        let (id, token) = log_in_bob(&api, &bases[down]).await;

        site.kill(down);
        kill_session(&api, &bases[up[1]], &admin, &id).await;
        site.restart(down).await;

        let context = format!("session {id}, node {down} down through it");
        never_served(&api, &bases, &[down, up[0], up[1]], &token, &context).await;
    }
}

/// The leader that committed a revocation is killed at once and comes straight back, before the
/// others time out: it must not lead again from a state machine behind its own log (replayed
/// only up to the commit index it had found time to store), or a follower that had not yet
/// applied the revocation would pass its read barrier and serve the session.
#[tokio::test(flavor = "multi_thread")]
async fn a_leader_killed_right_after_a_revocation_never_serves_the_revoked_session() {
    let tuning = Tuning {
        raft: vec![
            "heartbeat_ms = 500".into(),
            "election_timeout_min_ms = 4000".into(),
            "election_timeout_max_ms = 6000".into(),
        ],
        ..Tuning::default()
    };
    let mut site = TestSite::start(3, tuning).await;
    site.wait_for_admin(0).await;
    let api = Api::default();
    let bases: Vec<String> = (0..3).map(|i| site.api_url(i)).collect();
    let admin = api.admin_token(&bases[0]).await;
    add_user(
        &api,
        &bases[0],
        &admin,
        "victim.org",
        "bob",
        "bob-password-1",
    )
    .await;
    for round in 0..3 {
        let leader = site.wait_for_leader(Duration::from_secs(15)).await;
        let followers: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
        let admin = api.admin_token(&bases[followers[0]]).await;
        let (id, token) = log_in_bob(&api, &bases[followers[0]]).await;

        // The other follower sleeps through the revocation, so it has to catch up after it.
        let sleeper = site.pid(followers[1]).expect("the follower runs");
        signal(sleeper, "STOP");
        kill_session(&api, &bases[followers[0]], &admin, &id).await;
        let term = site
            .status(followers[0])
            .await
            .expect("a follower answers")
            .term;
        site.restart(leader).await;
        signal(sleeper, "CONT");

        let context = format!("round {round}, session {id}, restarted leader {leader}");
        never_served(
            &api,
            &bases,
            &[followers[1], followers[0], leader],
            &token,
            &context,
        )
        .await;
        // Whoever leads now was elected after the restart: nobody led on from a state machine
        // it had only replayed up to the commit index it had stored.
        let now = site
            .status(leader)
            .await
            .expect("the restarted node answers");
        assert!(
            now.term > term,
            "round {round}: node {leader} came back leading term {} without an election \
             (term before: {term})",
            now.term
        );
    }
}
