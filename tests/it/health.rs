//! `/healthcheck` against real nodes: every check and its name, one check, the codes; a
//! certificate near its end, a site group without quorum.

use crate::common;

use std::time::{Duration, Instant};

use common::{assert_error, Api, TestSite, Tuning};
use reqwest::Method;

async fn get(api: &Api, base: &str, path: &str) -> common::Answer {
    api.call(Method::GET, format!("{base}{path}"), None, None)
        .await
}

fn check<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["checks"]
        .as_array()
        .and_then(|checks| checks.iter().find(|c| c["componentName"] == name))
        .unwrap_or_else(|| panic!("no check {name} in {report}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_reports_each_check_and_answers_by_name() {
    let site = TestSite::start(1, Tuning::default()).await;
    site.wait_for_admin(0).await;
    let api = Api::default();
    let base = site.api_url(0);
    let report = get(&api, &base, "/healthcheck").await;
    assert_eq!(report.status, 200, "{}", report.text);
    assert_eq!(report.body["status"], "healthy", "{}", report.text);
    for name in [
        "Raft site group",
        "Raft directory group",
        "Storage",
        "TLS certificates",
        "Audit trail",
    ] {
        let one = check(&report.body, name);
        assert_eq!(one["status"], "healthy", "{one}");
        assert_eq!(one["escapedComponentName"], name.replace(' ', "%20"));
        assert!(one["cause"].is_null(), "{one}");
    }
    let names = get(&api, &base, "/healthcheck/checks").await;
    assert_eq!(names.status, 200);
    let listed: Vec<&str> = names
        .body
        .as_array()
        .expect("names")
        .iter()
        .filter_map(|n| n["componentName"].as_str())
        .collect();
    assert_eq!(
        listed,
        [
            "Raft site group",
            "Raft directory group",
            "Storage",
            "TLS certificates",
            "Audit trail"
        ]
    );
    let one = get(&api, &base, "/healthcheck/checks/Raft%20site%20group").await;
    assert_eq!(one.status, 200, "{}", one.text);
    assert_eq!(one.body["componentName"], "Raft site group");
    assert_eq!(one.body["status"], "healthy");
    let unknown = get(&api, &base, "/healthcheck/checks/Cassandra%20backend").await;
    assert_error(&unknown, 404, "notFound");
}

/// A certificate expiring within 14 days degrades TLS (the node still serves: 200).
#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_near_its_end_degrades_the_node() {
    let site = TestSite::start(1, Tuning::default()).await;
    site.wait_for_admin(0).await;
    let api = Api::default();
    let base = site.api_url(0);
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(10);
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("certificate");
    std::fs::write(&site.nodes[0].cert_file, cert.pem()).unwrap();
    std::fs::write(&site.nodes[0].key_file, key.serialize_pem()).unwrap();
    let admin = api.admin_token(&base).await;
    api.post(format!("{base}/servers?reload-certificate"))
        .as_(&admin)
        .expect(204)
        .await;
    let report = get(&api, &base, "/healthcheck").await;
    assert_eq!(report.status, 200, "{}", report.text);
    assert_eq!(report.body["status"], "degraded", "{}", report.text);
    let tls = check(&report.body, "TLS certificates");
    assert_eq!(tls["status"], "degraded");
    let cause = tls["cause"].as_str().unwrap_or_default();
    assert!(
        cause.contains("imaps in 9 days") || cause.contains("imaps in 10 days"),
        "{cause}"
    );
}

/// The last node of a site of three has no leader: its site group is unhealthy (503).
#[tokio::test(flavor = "multi_thread")]
async fn a_site_without_quorum_is_unhealthy() {
    let mut site = TestSite::start(3, Tuning::default()).await;
    site.wait_for_admin(2).await;
    let api = Api::default();
    let base = site.api_url(2);
    assert_eq!(get(&api, &base, "/healthcheck").await.status, 200);
    site.kill(0);
    site.kill(1);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let report = get(&api, &base, "/healthcheck").await;
        if report.status == 503 {
            assert_eq!(report.body["status"], "unhealthy", "{}", report.text);
            let group = check(&report.body, "Raft site group");
            assert_eq!(group["status"], "unhealthy");
            assert!(group["cause"].as_str().unwrap_or("").contains("no leader"));
            let one = get(&api, &base, "/healthcheck/checks/Raft%20site%20group").await;
            assert_eq!(one.status, 503, "{}", one.text);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {}: {}",
            report.status,
            report.text
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn cluster_status_shows_each_group_and_its_replication() {
    let site = TestSite::start(3, Tuning::default()).await;
    site.wait_for_admin(0).await;
    let leader = site.wait_for_leader(Duration::from_secs(10)).await;
    let api = Api::default();
    let base = site.api_url(leader);
    let admin = api.admin_token(&base).await;
    let status = api
        .get(format!("{base}/cluster/status"))
        .as_(&admin)
        .expect(200)
        .await;
    assert_eq!(status.body["site"], "local");
    let groups = status.body["groups"].as_array().expect("groups");
    let names: Vec<&str> = groups.iter().filter_map(|g| g["group"].as_str()).collect();
    assert_eq!(names, ["site:local", "directory"]);
    let site_group = &groups[0];
    assert_eq!(site_group["role"], "leader");
    assert_eq!(site_group["leader"], site.nodes[leader].id);
    let members = site_group["members"].as_array().expect("members");
    assert_eq!(members.len(), 3);
    for member in members {
        assert_eq!(member["voter"], true, "{member}");
        assert_eq!(member["replicating"], true, "{member}");
        assert!(member["lag"].as_u64().is_some(), "{member}");
    }
    let follower = (leader + 1) % 3;
    let other = site.api_url(follower);
    let token = api.admin_token(&other).await;
    let seen = api
        .call(
            Method::GET,
            format!("{other}/cluster/status"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(seen.body["groups"][0]["role"], "follower", "{}", seen.text);
    assert!(seen.body["groups"][0]["members"][0]["lag"].is_null());
    api.get(format!("{base}/cluster/status"))
        .expect_error(401, "Unauthorized")
        .await;
    common::add_user(&api, &base, &admin, "example.com", "eve", "eve-password-1").await;
    let eve = api
        .token(&base, "example.com", "eve", "eve-password-1")
        .await;
    api.get(format!("{base}/cluster/status"))
        .as_(&eve)
        .expect_error(403, "Forbidden")
        .await;

    let shown = common::cli(&["cluster", "status"], &base, &admin);
    assert!(
        shown.status.success(),
        "{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    let table = String::from_utf8_lossy(&shown.stdout);
    assert!(
        table.contains("site:local") && table.contains("directory") && table.contains("leader"),
        "{table}"
    );
    let json = common::cli(&["cluster", "status", "--json"], &base, &admin);
    let parsed: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!(parsed["groups"].as_array().map(Vec::len), Some(2));
}

/// A member that is down is shown as not answering, with its last contact, from the leader
/// and from a follower alike (it used to look like a healthy voter with lag 0).
#[tokio::test(flavor = "multi_thread")]
async fn cluster_status_shows_a_member_that_is_down() {
    let mut site = TestSite::start(3, Tuning::default()).await;
    site.wait_for_admin(0).await;
    let leader = site.wait_for_leader(Duration::from_secs(10)).await;
    let (down, follower) = ((leader + 1) % 3, (leader + 2) % 3);
    let api = Api::default();
    let tokens: Vec<(String, String)> = {
        let mut tokens = Vec::new();
        for i in [leader, follower] {
            let base = site.api_url(i);
            let token = api.admin_token(&base).await;
            tokens.push((base, token));
        }
        tokens
    };
    site.kill(down);
    let down_id = site.nodes[down].id;
    tokio::time::sleep(Duration::from_secs(4)).await;
    for (base, token) in &tokens {
        let status = api
            .get(format!("{base}/cluster/status"))
            .as_(token)
            .expect(200)
            .await;
        let members = status.body["groups"][0]["members"]
            .as_array()
            .expect("members");
        for member in members {
            let is_down = member["id"] == down_id;
            assert_eq!(member["answers"], !is_down, "{base}: {member}");
            let contact = member["lastContactMs"].as_u64();
            match is_down {
                true => assert!(contact.is_some_and(|ms| ms >= 3_000), "{base}: {member}"),
                false => assert!(contact.is_some_and(|ms| ms < 3_000), "{base}: {member}"),
            }
        }
    }
    let (base, token) = &tokens[0];
    let shown = common::cli(&["cluster", "status"], base, token);
    let table = String::from_utf8_lossy(&shown.stdout);
    let row = table
        .lines()
        .find(|l| l.contains("site:local") && l.contains(&site.nodes[down].cluster.to_string()))
        .unwrap_or_else(|| panic!("no row for the node that is down:\n{table}"));
    assert!(row.contains("NO"), "{table}");
}

/// A fourth node, configured to join but listed in no one's config, is added at runtime,
/// votes, then is removed; the refusals say why.
#[tokio::test(flavor = "multi_thread")]
async fn a_node_is_added_and_removed_at_runtime() {
    let mut site = TestSite::start(
        3,
        Tuning {
            spare_nodes: 1,
            ..Tuning::default()
        },
    )
    .await;
    site.wait_for_admin(0).await;
    let api = Api::default();
    let base = site.api_url(0);
    let admin = api.admin_token(&base).await;
    let call = |method: Method, path: &str, body: Option<serde_json::Value>| {
        api.call(method, format!("{base}{path}"), Some(&admin), body)
    };
    assert_error(
        &call(
            Method::POST,
            "/cluster/nodes",
            Some(serde_json::json!({"id": 0, "cluster": "x"})),
        )
        .await,
        400,
        "InvalidArgument",
    );
    let taken = serde_json::json!({"id": 2, "cluster": site.cluster_addr(1)});
    assert_error(
        &call(Method::POST, "/cluster/nodes", Some(taken)).await,
        409,
        "WrongState",
    );
    assert_error(
        &call(Method::DELETE, "/cluster/nodes/9", None).await,
        404,
        "notFound",
    );
    assert_error(
        &call(Method::DELETE, "/cluster/nodes/3", None).await,
        409,
        "WrongState",
    );
    assert_error(
        &call(Method::DELETE, "/cluster/nodes/three", None).await,
        400,
        "InvalidArgument",
    );

    site.restart(3).await;
    let added = common::cli(
        &[
            "cluster",
            "add-node",
            "--id",
            "4",
            "--cluster",
            &site.cluster_addr(3),
        ],
        &base,
        &admin,
    );
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    site.wait_formed(4, Duration::from_secs(20)).await;
    let status = site.status(3).await.expect("the new node answers");
    assert_eq!(status.voters, vec![1, 2, 3, 4]);

    let removed = common::cli(&["cluster", "remove-node", "4"], &base, &admin);
    assert!(
        removed.status.success(),
        "{}",
        String::from_utf8_lossy(&removed.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let voters = site.status(0).await.map(|s| s.voters).unwrap_or_default();
        if voters == vec![1, 2, 3] {
            break;
        }
        assert!(Instant::now() < deadline, "voters still {voters:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = api
        .call(
            Method::GET,
            format!("{base}/cluster/status"),
            Some(&admin),
            None,
        )
        .await;
    let members = status.body["groups"][0]["members"].as_array().map(Vec::len);
    assert_eq!(members, Some(3), "{}", status.text);
}
