//! `/metrics` scraped from a real 3-node site and parsed as Prometheus text: the site's
//! sessions, logins by outcome, revocations and their latency, each group's Raft state, and
//! request latency by route.

use crate::common;

use std::time::Duration;

use common::{Api, TestSite, Tuning};
use prometheus_parse::{Sample, Scrape, Value};

async fn scrape(api: &Api, base: &str) -> Vec<Sample> {
    let answer = api.get(format!("{base}/metrics")).expect(200).await;
    assert_eq!(
        answer.headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let lines = answer.text.lines().map(|l| Ok(l.to_string()));
    Scrape::parse(lines).expect("Prometheus text").samples
}

/// The value of the sample `metric` whose labels include `labels`.
fn value(samples: &[Sample], metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .filter(|s| s.metric == metric)
        .find(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
            Value::Summary(_) => f64::NAN,
        })
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_what_the_site_does() {
    let site = TestSite::start(3, Tuning::default()).await;
    site.wait_for_admin(0).await;
    let leader = site.wait_for_leader(Duration::from_secs(10)).await;
    let api = Api::default();
    let base = site.api_url(leader);
    let admin = api.admin_token(&base).await;
    let wrong = api.login(&base, "master.domain", "admin", "not-it").await;
    assert_eq!(wrong.status, 401);
    let doomed = api
        .login(&base, "master.domain", "admin", common::ADMIN_PASSWORD)
        .await;
    let doomed_id = doomed.body["session_id"]
        .as_str()
        .expect("session")
        .to_string();
    api.delete(format!(
        "{base}/rest/v1/master/logicalroles/ws/sessions/{doomed_id}"
    ))
    .as_(&admin)
    .expect(204)
    .await;

    let samples = scrape(&api, &base).await;
    let at_least = |metric: &str, labels: &[(&str, &str)], floor: f64| {
        let found = value(&samples, metric, labels);
        assert!(
            found.is_some_and(|v| v >= floor),
            "{metric}{labels:?} = {found:?}"
        );
    };
    at_least("sessionplane_logins_total", &[("outcome", "ok")], 2.0);
    at_least("sessionplane_logins_total", &[("outcome", "failed")], 1.0);
    assert_eq!(
        value(
            &samples,
            "sessionplane_revocations_total",
            &[("kind", "kill")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &samples,
            "sessionplane_revocation_seconds_count",
            &[("kind", "kill")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(&samples, "sessionplane_sessions", &[("site", "local")]),
        Some(1.0),
        "the administrator's one live session"
    );
    assert_eq!(
        value(
            &samples,
            "sessionplane_raft_is_leader",
            &[("group", "site:local")]
        ),
        Some(1.0)
    );
    at_least("sessionplane_raft_term", &[("group", "directory")], 1.0);
    at_least(
        "sessionplane_raft_last_applied_index",
        &[("group", "site:local")],
        1.0,
    );
    for follower in (0..3).filter(|i| *i != leader) {
        let id = site.nodes[follower].id.to_string();
        let lag = value(
            &samples,
            "sessionplane_raft_replication_lag",
            &[("group", "site:local"), ("follower", &id)],
        );
        assert!(lag.is_some(), "no lag for follower {id}");
    }
    at_least(
        "sessionplane_http_request_seconds_count",
        &[
            ("route", "/rest/v1/iam/sessions"),
            ("method", "POST"),
            ("status", "401"),
        ],
        1.0,
    );
    at_least(
        "sessionplane_http_request_seconds_count",
        &[
            (
                "route",
                "/rest/v1/master/logicalroles/ws/sessions/:session_id",
            ),
            ("status", "204"),
        ],
        1.0,
    );
    assert!(
        !samples
            .iter()
            .any(|s| s.labels.values().any(|v| v.contains(&doomed_id))),
        "no id in a label"
    );
    let follower = site.api_url((leader + 1) % 3);
    let elsewhere = scrape(&api, &follower).await;
    assert_eq!(
        value(
            &elsewhere,
            "sessionplane_raft_is_leader",
            &[("group", "site:local")]
        ),
        Some(0.0)
    );
}
