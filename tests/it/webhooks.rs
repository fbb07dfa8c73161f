//! Webhooks against two sites of three nodes, as real processes delivering to a real HTTP
//! receiver the test starts: the receiver is down while a scripted sequence of logins and
//! kills happens at both sites and every node restarts; once it is up it gets every event,
//! each POST's signature verifies, and each site's events come in that site's order. The
//! delivery shows in `/tasks` (waiting with its last error, then in progress) and the metrics.

use crate::common;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use common::sites::{central_and_east, quick_federation};
use common::{add_user, log_in_at_any, Api, TestSite};
use reqwest::Method;
use ring::hmac;
use serde_json::Value;

const PW: &str = "webhook-user-pw-52";
const SECRET: &str = "webhook-test-secret-0123";
const WAIT: Duration = Duration::from_secs(60);

/// What the receiver got: each POST's events, in the order the POSTs came.
#[derive(Default)]
struct Received {
    posts: Vec<Vec<Value>>,
    bad_signatures: usize,
}

async fn receive(received: Arc<Mutex<Received>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let key = hmac::Key::new(hmac::HMAC_SHA256, SECRET.as_bytes());
    let signature = headers
        .get("x-sessionplane-signature")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("sha256="))
        .and_then(|hex| {
            (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
                .collect::<Option<Vec<u8>>>()
        });
    let timestamp_ok = headers
        .get("x-sessionplane-timestamp")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|t| t.abs_diff(now_secs()) < 300);
    let mut received = received.lock().expect("lock");
    match signature.map(|s| hmac::verify(&key, &body, &s)) {
        Some(Ok(())) if timestamp_ok => {}
        _ => {
            received.bad_signatures += 1;
            return StatusCode::UNAUTHORIZED;
        }
    }
    let events: Vec<Value> = serde_json::from_slice(&body).expect("a JSON array");
    received.posts.push(events);
    StatusCode::NO_CONTENT
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A port free now, for a receiver started later.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

async fn serve_receiver(port: u16, received: Arc<Mutex<Received>>) {
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            receive(received.clone(), headers, body)
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("the receiver's port is still free");
    tokio::spawn(async move { axum::serve(listener, app).await });
}

/// The site's delivery task for `siem`, once there is one.
async fn delivery_task(api: &Api, site: &TestSite, admin: &str) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        for i in 0..3 {
            let url = format!("{}/tasks", site.api_url(i));
            if let Some(answer) = api.try_call(Method::GET, url, admin).await {
                let found = answer.body.as_array().and_then(|tasks| {
                    tasks
                        .iter()
                        .find(|t| t["type"] == "webhook-delivery")
                        .cloned()
                });
                if let Some(task) = found {
                    return task;
                }
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "no delivery task");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn all(site: &TestSite) -> Vec<String> {
    (0..3).map(|i| site.api_url(i)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_receiver_down_then_back_gets_every_event_signed_in_order_through_a_restart_of_every_node(
) {
    let port = free_port();
    let mut tuning = quick_federation();
    tuning.tail = vec![format!(
        "[[webhook]]\nname = \"siem\"\nurl = \"http://127.0.0.1:{port}/hook\"\n\
         secret = \"{SECRET}\"\nevents = [\"session.created\", \"session.ended\"]\n\
         batch_max = 4\nretry_initial_ms = 100\nretry_max_ms = 400\ntimeout_ms = 2000\n"
    )];
    let (mut central, mut east) = central_and_east(tuning).await;
    let api = Api::default();
    let admin = api.admin_token(&central.api_url(0)).await;
    add_user(&api, &central.api_url(0), &admin, "example.org", "fran", PW).await;
    let east_admin = api.admin_token(&east.api_url(0)).await;
    // Each site's delivery has started (from its feed's end) before the script.
    delivery_task(&api, &central, &admin).await;
    delivery_task(&api, &east, &east_admin).await;

    let mut expected: BTreeMap<&str, Vec<(String, &str)>> = BTreeMap::new();
    for round in 0..3 {
        for (name, site) in [("central", &central), ("east", &east)] {
            let session = log_in_at_any(&api, &all(site), "fran", PW).await;
            expected
                .entry(name)
                .or_default()
                .push((session.clone(), "session.created"));
            if round == 1 {
                let kill = api
                    .call(
                        Method::DELETE,
                        format!(
                            "{}/rest/v1/master/logicalroles/ws/sessions/{session}",
                            site.api_url(0)
                        ),
                        Some(if name == "central" {
                            &admin
                        } else {
                            &east_admin
                        }),
                        None,
                    )
                    .await;
                assert_eq!(kill.status, 204, "{}", kill.text);
                expected
                    .entry(name)
                    .or_default()
                    .push((session, "session.ended"));
            }
        }
    }
    // The receiver is down: the delivery waits, and says why.
    let deadline = tokio::time::Instant::now() + WAIT;
    let waiting = loop {
        let task = delivery_task(&api, &central, &admin).await;
        if task["status"] == "waiting" {
            break task;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never waiting: {task}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(waiting["additionalInformation"]["attempts"].as_u64() > Some(0));
    assert!(waiting["additionalInformation"]["backlog"].as_u64() > Some(0));
    assert_eq!(
        waiting["additionalInformation"]["lastError"],
        "connection failed"
    );

    // Every node of both sites restarts.
    for i in 0..3 {
        central.kill(i);
        east.kill(i);
    }
    for i in 0..3 {
        central.restart(i).await;
        east.restart(i).await;
    }
    for (name, site) in [("central", &central), ("east", &east)] {
        let session = log_in_at_any(&api, &all(site), "fran", PW).await;
        expected
            .entry(name)
            .or_default()
            .push((session, "session.created"));
    }

    let received = Arc::new(Mutex::new(Received::default()));
    serve_receiver(port, received.clone()).await;
    let wanted: HashSet<(String, String)> = expected
        .values()
        .flatten()
        .map(|(s, a)| (s.clone(), a.to_string()))
        .collect();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let got: HashSet<(String, String)> = {
            let received = received.lock().expect("lock");
            received
                .posts
                .iter()
                .flatten()
                .map(|e| {
                    let session = e["details"]["session_id"].as_str().unwrap_or("");
                    (
                        session.to_string(),
                        e["action"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        };
        if wanted.is_subset(&got) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "missing: {:?}",
            wanted.difference(&got).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let received = std::mem::take(&mut *received.lock().expect("lock"));
    assert_eq!(received.bad_signatures, 0);
    let mut first_seen: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut ids = HashSet::new();
    for post in &received.posts {
        assert!(post.len() <= 4, "batch_max holds");
        for event in post {
            let site = event["site"].as_str().expect("site").to_string();
            let seq = event["seq"].as_u64().expect("seq");
            assert_eq!(event["id"], format!("{site}:{seq}"));
            // At least once: a repeat is allowed, but each site's events come in its order.
            if ids.insert(format!("{site}:{seq}")) {
                first_seen.entry(site).or_default().push(seq);
            }
        }
    }
    for (site, seqs) in &first_seen {
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "{site}'s events in its order: {seqs:?}"
        );
    }
    for (site, events) in &expected {
        let order: Vec<(String, String)> = received
            .posts
            .iter()
            .flatten()
            .filter(|e| e["site"] == *site)
            .map(|e| {
                let session = e["details"]["session_id"].as_str().unwrap_or("");
                (
                    session.to_string(),
                    e["action"].as_str().unwrap_or("").to_string(),
                )
            })
            .filter(|pair| wanted.contains(pair))
            .collect();
        let mut unique = Vec::new();
        for pair in order {
            if !unique.contains(&pair) {
                unique.push(pair);
            }
        }
        let events: Vec<(String, String)> = events
            .iter()
            .map(|(s, a)| (s.clone(), a.to_string()))
            .collect();
        assert_eq!(
            unique, events,
            "{site}: every event, in the order it happened"
        );
    }
    drop(received);

    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let task = delivery_task(&api, &central, &admin).await;
        let info = &task["additionalInformation"];
        if task["status"] == "inProgress" && info["backlog"] == 0 {
            assert!(info["delivered"].as_u64() >= Some(4), "{task}");
            assert!(info["lastError"].is_null());
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "still behind: {task}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The node that delivered counts what it delivered.
    let mut counted = false;
    for i in 0..3 {
        let url = format!("{}/metrics", central.api_url(i));
        if let Some(metrics) = api.try_call(Method::GET, url, &admin).await {
            counted |= metrics.text.contains(
                "sessionplane_delivery_events_total{receiver=\"siem\",outcome=\"delivered\"}",
            );
        }
    }
    assert!(counted, "no node counted its deliveries");
}
