//! The event stream against two sites of three nodes, as real processes read by a real HTTP
//! client: a scripted sequence of logins at both sites is read whole, exactly once and in
//! order per site, through the kill of central's leader and the kill of the node serving the
//! stream (the reader then resumes at another node with `Last-Event-ID`); the refusals and
//! bad input the endpoint must answer.

use crate::common;

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use common::sites::{central_and_east, quick_federation};
use common::{add_user, assert_error, log_in_at_any, Api, TestSite};
use futures_util::StreamExt;
use reqwest::Method;
use serde_json::Value;
use tokio::sync::mpsc;

const PW: &str = "stream-user-pw-41";
const WAIT: Duration = Duration::from_secs(30);

/// One event as the reader got it: its SSE id and its data.
#[derive(Debug, Clone)]
struct Received {
    id: String,
    data: Value,
}

/// Reads a stream at `base` into `out` until it ends; the last id it saw.
async fn read_stream(
    base: String,
    token: String,
    query: String,
    resume: Option<String>,
    out: mpsc::UnboundedSender<Received>,
) -> Option<String> {
    let http = reqwest::Client::new();
    let mut request = http
        .get(format!("{base}/rest/v1/events?{query}"))
        .bearer_auth(&token);
    if let Some(id) = &resume {
        request = request.header("Last-Event-ID", id);
    }
    let mut last = resume;
    let Ok(response) = request.send().await else {
        return last;
    };
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut body = response.bytes_stream();
    let mut buffer = String::new();
    let (mut id, mut data, mut notice) = (None, String::new(), false);
    while let Some(Ok(chunk)) = body.next().await {
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find('\n') {
            let line: String = buffer.drain(..=end).collect();
            let line = line.trim_end();
            if let Some(value) = line.strip_prefix("id: ") {
                id = Some(value.to_string());
            } else if let Some(value) = line.strip_prefix("data: ") {
                data.push_str(value);
            } else if line == "event: notice" {
                notice = true;
            } else if line.is_empty() && !data.is_empty() {
                let parsed: Value = serde_json::from_str(&data).expect("JSON data");
                data.clear();
                if std::mem::take(&mut notice) {
                    continue;
                }
                let id = id.take().expect("every event has an id");
                last = Some(id.clone());
                let _ = out.send(Received { id, data: parsed });
            }
        }
    }
    last
}

fn bases(site: &TestSite, nodes: &[usize]) -> Vec<String> {
    nodes.iter().map(|i| site.api_url(*i)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reader_gets_every_event_once_in_order_through_a_leader_kill_and_its_nodes_restart() {
    let (mut central, east) = central_and_east(quick_federation()).await;
    let api = Api::default();
    let admin = api.admin_token(&central.api_url(0)).await;
    add_user(&api, &central.api_url(0), &admin, "example.org", "dana", PW).await;

    let leader = central.wait_for_leader(WAIT).await;
    let served_by = (leader + 1) % 3;
    let third = (leader + 2) % 3;
    let query = "sites=all&action=session.created&target=dana@example.org".to_string();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let reader = tokio::spawn(read_stream(
        central.api_url(served_by),
        admin.clone(),
        query.clone(),
        None,
        tx.clone(),
    ));
    // The stream is open once its keep-alive could have come: the first logins come after.
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let mut expected: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let all_central = bases(&central, &[0, 1, 2]);
    let all_east = bases(&east, &[0, 1, 2]);
    for _ in 0..4 {
        expected
            .entry("central")
            .or_default()
            .push(log_in_at_any(&api, &all_central, "dana", PW).await);
        expected
            .entry("east")
            .or_default()
            .push(log_in_at_any(&api, &all_east, "dana", PW).await);
    }

    central.kill(leader);
    let up = bases(&central, &[served_by, third]);
    for _ in 0..4 {
        expected
            .entry("central")
            .or_default()
            .push(log_in_at_any(&api, &up, "dana", PW).await);
        expected
            .entry("east")
            .or_default()
            .push(log_in_at_any(&api, &all_east, "dana", PW).await);
    }

    // The node serving the stream goes: the reader resumes at another with its last id.
    central.kill(served_by);
    let last = tokio::time::timeout(WAIT, reader)
        .await
        .expect("the stream ends when its node dies")
        .expect("reader");
    let last = last.expect("the reader had events before its node died");
    central.restart(leader).await;
    let up = bases(&central, &[leader, third]);
    for _ in 0..4 {
        expected
            .entry("east")
            .or_default()
            .push(log_in_at_any(&api, &all_east, "dana", PW).await);
        expected
            .entry("central")
            .or_default()
            .push(log_in_at_any(&api, &up, "dana", PW).await);
    }
    let resumed = tokio::spawn(read_stream(
        central.api_url(third),
        admin.clone(),
        query,
        Some(last),
        tx,
    ));
    central.restart(served_by).await;

    let wanted: usize = expected.values().map(Vec::len).sum();
    let mut got: Vec<Received> = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while got.len() < wanted {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(event)) => got.push(event),
            _ => break,
        }
    }
    // A little longer: a repeat would show now.
    while let Ok(Some(event)) = tokio::time::timeout(Duration::from_secs(2), rx.recv()).await {
        got.push(event);
    }
    resumed.abort();

    let mut per_site: BTreeMap<String, Vec<(u64, String)>> = BTreeMap::new();
    let mut ids = HashSet::new();
    for event in &got {
        assert!(ids.insert(event.id.clone()), "a repeated id: {}", event.id);
        assert_eq!(event.data["action"], "session.created");
        assert_eq!(event.data["target"], "dana@example.org");
        let site = event.data["site"].as_str().expect("site").to_string();
        let seq = event.data["seq"].as_u64().expect("seq");
        assert_eq!(event.data["id"], format!("{site}:{seq}"));
        assert!(
            event.id.contains(&format!("{site}:{seq}")),
            "the SSE id {} carries the event's place",
            event.id
        );
        let session = event.data["details"]["session_id"]
            .as_str()
            .expect("session id")
            .to_string();
        per_site.entry(site).or_default().push((seq, session));
    }
    for (site, sessions) in &expected {
        let seen = per_site.get(*site).cloned().unwrap_or_default();
        let seqs: Vec<u64> = seen.iter().map(|(seq, _)| *seq).collect();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "{site}: in feed order: {seqs:?}"
        );
        let seen: Vec<String> = seen.into_iter().map(|(_, s)| s).collect();
        assert_eq!(
            &seen, sessions,
            "{site}: every login's session.created once, in the order they were made"
        );
    }
}

#[tokio::test]
async fn the_stream_is_for_administrators_and_refuses_what_it_did_not_give() {
    let (site, api, base, admin) = common::admin_node(common::Tuning::default()).await;
    add_user(&api, &base, &admin, "example.org", "erin", PW).await;
    let erin = api.token(&base, "example.org", "erin", PW).await;
    let events = format!("{base}/rest/v1/events");

    let anonymous = api.call(Method::GET, events.clone(), None, None).await;
    assert_error(&anonymous, 401, "Unauthorized");
    let user = api
        .call(Method::GET, events.clone(), Some(&erin), None)
        .await;
    assert_error(&user, 403, "Forbidden");
    for query in [
        "last_event_id=central",
        "last_event_id=central:x",
        "since=yesterday",
        "outcome=maybe",
        "sites=nowhere",
    ] {
        let answer = api
            .call(Method::GET, format!("{events}?{query}"), Some(&admin), None)
            .await;
        assert_error(&answer, 400, "InvalidArgument");
    }
    let request = api
        .http
        .get(&events)
        .bearer_auth(&admin)
        .header("Last-Event-ID", "not an id");
    assert_error(&api.send(request).await, 400, "InvalidArgument");

    // From a time: the events already made are read back, audit and lifecycle alike.
    let (tx, mut rx) = mpsc::unbounded_channel();
    let reader = tokio::spawn(read_stream(
        base.clone(),
        admin.clone(),
        "since=2020-01-01T00:00:00Z&target=erin@example.org".into(),
        None,
        tx,
    ));
    let mut got = Vec::new();
    while got.len() < 2 {
        let event = tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("an event")
            .expect("open");
        got.push(event.data);
    }
    let audit = got
        .iter()
        .find(|e| e["action"] == "user.create")
        .expect("the audit event of erin's creation");
    assert_eq!(audit["kind"], "audit");
    assert!(!audit["hash"].as_str().unwrap_or_default().is_empty());
    let created = got
        .iter()
        .find(|e| e["action"] == "session.created")
        .expect("the lifecycle event of erin's login");
    assert_eq!(created["kind"], "lifecycle");
    assert_eq!(created["outcome"], "ok");
    assert!(created["actor"].is_null());
    assert!(!created["details"]["session_id"].is_null());
    assert_ne!(audit["seq"], created["seq"]);
    reader.abort();

    // The command line: what is there since a time, then on and on with --follow.
    let listed = common::cli(
        &[
            "events",
            "--action",
            "session.*",
            "--target",
            "erin@example.org",
            "--since",
            "2020-01-01T00:00:00Z",
        ],
        &base,
        &admin,
    );
    assert!(listed.status.success(), "{listed:?}");
    let printed = String::from_utf8_lossy(&listed.stdout);
    assert!(printed.starts_with("TIME  SITE  ACTION"), "{printed}");
    assert!(
        printed.contains("session.created  erin@example.org  ok"),
        "{printed}"
    );
    assert!(!printed.contains("user.create"), "{printed}");

    let mut follow = common::cli_command(
        &[
            "--json",
            "events",
            "--follow",
            "--target",
            "erin@example.org",
        ],
        &base,
        &admin,
    )
    .stdout(std::process::Stdio::piped())
    .spawn()
    .expect("the cli starts");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let login = api.login(&base, "example.org", "erin", PW).await;
    let session = login.body["session_id"]
        .as_str()
        .expect("session")
        .to_string();
    let stdout = follow.stdout.take().expect("stdout");
    let line = tokio::task::spawn_blocking(move || {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .map(|_| line)
    });
    let line = tokio::time::timeout(WAIT, line)
        .await
        .expect("a line within the wait")
        .expect("read")
        .expect("a line");
    let _ = follow.kill();
    let _ = follow.wait();
    let event: Value = serde_json::from_str(&line).expect("a JSON line");
    assert_eq!(event["action"], "session.created");
    assert_eq!(event["details"]["session_id"], session.as_str());

    // A stream lives no longer than its reader's session.
    let (tx, _rx) = mpsc::unbounded_channel();
    let reader = tokio::spawn(read_stream(
        base.clone(),
        admin.clone(),
        String::new(),
        None,
        tx,
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let logout = api
        .call(
            Method::DELETE,
            format!("{base}/rest/v1/iam/sessions/current"),
            Some(&admin),
            None,
        )
        .await;
    assert!(logout.status < 300, "{}", logout.text);
    tokio::time::timeout(Duration::from_secs(5), reader)
        .await
        .expect("the stream ends with its reader's session")
        .expect("reader");
    drop(site);
}
