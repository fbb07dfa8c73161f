//! `/servers?reload-certificate` and `/servers/certificates` against a real 3-node site: the
//! request fans out to every node over the cluster listener; refusals and a port with no TLS
//! listener answer in the contract's format; an unreachable node is named, never skipped.

mod common;

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
        .call(
            Method::GET,
            format!("{base}/servers/certificates"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(listed.status, 200, "{}", listed.text);
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

    let none = api
        .call(
            Method::POST,
            format!("{base}/servers?reload-certificate"),
            None,
            None,
        )
        .await;
    assert_error(&none, 401, "Unauthorized");
    add_user(&api, &base, &admin, "a.org", "ann", "ann-password").await;
    let admins = api
        .call(
            Method::PUT,
            format!("{base}/groups/admins@a.org"),
            Some(&admin),
            Some(json!({"members": ["ann@a.org"]})),
        )
        .await;
    assert_eq!(admins.status, 201, "{}", admins.text);
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
        .call(
            Method::GET,
            format!("{base}/servers/certificates"),
            Some(&admin),
            None,
        )
        .await;
    assert_error(&partial, 503, "Unavailable");
    assert!(
        partial.text.contains("n3"),
        "names the node: {}",
        partial.text
    );
    let reload = api
        .call(
            Method::POST,
            format!("{base}/servers?reload-certificate"),
            Some(&admin),
            None,
        )
        .await;
    assert_error(&reload, 503, "Unavailable");
}
