//! `/servers?reload-certificate` and `/servers/certificates` against a real 3-node site: the
//! request fans out to every node over the cluster listener; refusals and a port with no TLS
//! listener answer in the contract's format; an unreachable node is named, never skipped.

use crate::common;

use common::{add_user, assert_error, Api, TestSite, Tuning};
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn reload_and_listing_reach_every_node_and_refuse_bad_requests() {
    let mut site = TestSite::start(3, Tuning::default()).await;
    site.wait_for_admin(0).await;
    let api = Api::default();
    let base = site.api_url(1);
    let admin = api.admin_token(&base).await;

    let listed = api
        .get(format!("{base}/servers/certificates"))
        .as_(&admin)
        .expect(200)
        .await;
    let listed = listed.body.as_array().unwrap().clone();
    assert_eq!(
        listed.len(),
        12,
        "3 nodes, 4 mail listeners each: {listed:?}"
    );
    for certificate in &listed {
        for key in [
            "node", "site", "listener", "port", "subject", "sans", "notAfter", "sha256",
        ] {
            assert!(certificate.get(key).is_some(), "{key} in {certificate}");
        }
    }

    let post = |query: &str| (Method::POST, format!("{base}/servers{query}"));
    for ((method, url), status, kind) in [
        (post(""), 400, "InvalidArgument"),
        (post("?reload-certificate&port=abc"), 400, "InvalidArgument"),
        (post("?reload-certificate&port=0"), 400, "InvalidArgument"),
        (
            post("?reload-certificate&port=70000"),
            400,
            "InvalidArgument",
        ),
        (
            post("?reload-certificate&sites=west"),
            400,
            "InvalidArgument",
        ),
        (post("?reload-certificate&port=1"), 400, "notFound"),
    ] {
        let answer = api.call(method, url, Some(&admin), None).await;
        assert_error(&answer, status, kind);
    }

    api.post(format!("{base}/servers?reload-certificate"))
        .expect_error(401, "Unauthorized")
        .await;
    add_user(&api, &base, &admin, "a.org", "ann", "ann-password").await;
    api.put(format!("{base}/groups/admins@a.org"))
        .as_(&admin)
        .body(json!({"members": ["ann@a.org"]}))
        .expect(201)
        .await;
    let ann = api.token(&base, "a.org", "ann", "ann-password").await;
    for (method, url) in [
        (Method::POST, format!("{base}/servers?reload-certificate")),
        (Method::GET, format!("{base}/servers/certificates")),
    ] {
        let answer = api.call(method, url, Some(&ann), None).await;
        assert_error(&answer, 403, "Forbidden");
    }

    site.kill(2);
    let partial = api
        .get(format!("{base}/servers/certificates"))
        .as_(&admin)
        .expect_error(503, "Unavailable")
        .await;
    assert!(
        partial.text.contains("n3"),
        "names the node: {}",
        partial.text
    );
    api.post(format!("{base}/servers?reload-certificate"))
        .as_(&admin)
        .expect_error(503, "Unavailable")
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_serves_https_and_its_certificate_reloads_too() {
    let tuning = Tuning {
        listen: vec!["api_tls = true".into()],
        ..Default::default()
    };
    let site = TestSite::start(1, tuning).await;
    site.wait_for_admin(0).await;
    let node = &site.nodes[0];
    let pem = std::fs::read(&node.cert_file).unwrap();
    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .unwrap();
    let base = format!("https://{}", node.api);
    let login = https
        .post(format!("{base}/rest/v1/iam/sessions"))
        .json(&json!({"domain": "master.domain", "login": "admin", "pwd": common::ADMIN_PASSWORD}))
        .send()
        .await
        .expect("https login");
    assert_eq!(login.status(), 200);
    let cookie = login.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        cookie.contains("Secure"),
        "cookies are Secure over TLS: {cookie}"
    );
    let token = https
        .post(format!("{base}/rest/v1/iam/sessions"))
        .json(&json!({"domain": "master.domain", "login": "admin",
                      "pwd": common::ADMIN_PASSWORD, "session_type": "token"}))
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let plain = reqwest::Client::new()
        .get(format!("http://{}/rest/v1/iam/sessions/current", node.api))
        .send()
        .await;
    assert!(
        plain.is_err() || !plain.unwrap().status().is_success(),
        "no plain HTTP on a TLS api"
    );

    let listed: serde_json::Value = https
        .get(format!("{base}/servers/certificates"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listeners: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["listener"].as_str().unwrap())
        .collect();
    assert!(listeners.contains(&"api"), "{listed}");
    let reloaded = https
        .post(format!(
            "{base}/servers?reload-certificate&port={}",
            node.api.port()
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(reloaded.status(), 204);
}
