//! Session limits per domain against two sites of three nodes: with `end_oldest`, the login
//! over the cap at central ends the user's oldest session, at east, whose websocket closes with
//! 4001 and the reason `limit`; with `refuse`, the login over the cap gets 403 and nothing
//! ends. Both are audited; the settings' bad input is refused.

use crate::common;

use std::time::Duration;

use common::sites::{central_and_east, quick_federation};
use common::ws::{self, Auth};
use common::{add_user, assert_error, Api};
use reqwest::Method;
use serde_json::json;

const PW: &str = "limit-user-pw-74";

/// Logs kim in at `base` (the user may still be on its way to that site: a few tries).
async fn log_in(api: &Api, base: &str) -> common::Answer {
    for _ in 0..20 {
        let answer = api.login(base, "example.org", "kim", PW).await;
        if answer.status != 401 {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    api.login(base, "example.org", "kim", PW).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_login_over_the_cap_ends_the_oldest_session_at_the_other_site_or_is_refused() {
    let (central, mut east) = central_and_east(quick_federation()).await;
    let api = Api::default();
    let (c1, e1) = (central.api_url(0), east.api_url(0));
    let admin = api.admin_token(&c1).await;
    add_user(&api, &c1, &admin, "example.org", "kim", PW).await;
    let settings = format!("{c1}/domains/example.org/settings");
    let set = api
        .call(
            Method::PUT,
            settings.clone(),
            Some(&admin),
            Some(json!({"max_sessions_per_user": 2, "on_limit": "end_oldest"})),
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.text);
    assert_eq!(
        set.body,
        json!({"max_sessions_per_user": 2, "on_limit": "end_oldest"})
    );

    let oldest = log_in(&api, &e1).await;
    assert_eq!(oldest.status, 200, "{}", oldest.text);
    let oldest_token = oldest.body["token"].as_str().expect("token").to_string();
    let mut socket = ws::open(&e1, &oldest_token, Auth::Bearer).await;
    let second = log_in(&api, &c1).await;
    assert_eq!(second.status, 200, "{}", second.text);

    // The third: the oldest, at east, makes room.
    let third = log_in(&api, &c1).await;
    assert_eq!(third.status, 200, "{}", third.text);
    let (reason, code) = ws::closed_by_server(&mut socket, Duration::from_secs(10)).await;
    assert_eq!(reason.as_deref(), Some("limit"));
    assert_eq!(code, Some(4001));
    let gone = api
        .call(
            Method::GET,
            format!("{e1}/rest/v1/iam/sessions/current"),
            Some(&oldest_token),
            None,
        )
        .await;
    assert_eq!(gone.status, 401, "{}", gone.text);
    for answer in [&second, &third] {
        let token = answer.body["token"].as_str().expect("token");
        let live = api
            .call(
                Method::GET,
                format!("{c1}/rest/v1/iam/sessions/current"),
                Some(token),
                None,
            )
            .await;
        assert_eq!(live.status, 200, "{}", live.text);
    }
    let events = api
        .call(
            Method::GET,
            format!("{c1}/rest/v1/audit?action=session.limit"),
            Some(&admin),
            None,
        )
        .await;
    let event = &events.body[0];
    assert_eq!(event["target"], "kim@example.org", "{}", events.text);
    assert_eq!(event["details"]["open"], 2);
    assert_eq!(event["details"]["ended"][0]["site"], "east");
    assert_eq!(
        event["details"]["ended"][0]["session_id"],
        oldest.body["session_id"]
    );
    assert_eq!(event["details"]["not_counted"], json!({}));

    // With `refuse`, the login over the cap is refused and nothing ends.
    let set = api
        .call(
            Method::PUT,
            settings.clone(),
            Some(&admin),
            Some(json!({"max_sessions_per_user": 2, "on_limit": "refuse"})),
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.text);
    let refused = log_in(&api, &e1).await;
    assert_error(&refused, 403, "Forbidden");
    assert!(refused.text.contains("2 sessions open"), "{}", refused.text);
    let events = api
        .call(
            Method::GET,
            format!("{c1}/rest/v1/audit?action=login.limited&sites=all"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(events.body[0]["outcome"], "refused", "{}", events.text);
    // Lifted: the login goes through.
    let lifted = api
        .call(
            Method::PUT,
            settings.clone(),
            Some(&admin),
            Some(json!({"max_sessions_per_user": null})),
        )
        .await;
    assert_eq!(
        lifted.body,
        json!({"max_sessions_per_user": null, "on_limit": null})
    );
    assert_eq!(log_in(&api, &e1).await.status, 200);

    // Bad input, and callers who may not.
    for body in [
        json!({"max_sessions_per_user": 0}),
        json!({"max_sessions_per_user": 2147483648u64}),
        json!({"max_sessions_per_user": 100001}),
        json!({"max_sessions_per_user": 2, "on_limit": "sometimes"}),
        json!({"max_sessions_per_user": -1}),
        json!({"limit": 2}),
        json!([null, null]),
        json!(3),
    ] {
        let answer = api
            .call(Method::PUT, settings.clone(), Some(&admin), Some(body))
            .await;
        assert_error(&answer, 400, "InvalidArgument");
    }
    let nowhere = api
        .call(
            Method::GET,
            format!("{c1}/domains/nowhere.example/settings"),
            Some(&admin),
            None,
        )
        .await;
    assert_error(&nowhere, 404, "notFound");
    let kim = log_in(&api, &c1).await;
    let kim = kim.body["token"].as_str().expect("token");
    let not_admin = api
        .call(Method::GET, settings.clone(), Some(kim), None)
        .await;
    assert_error(&not_admin, 403, "Forbidden");

    // East does not answer: its sessions are not counted, and the event says so.
    for i in 0..3 {
        east.kill(i);
    }
    let set = api
        .call(
            Method::PUT,
            settings,
            Some(&admin),
            Some(json!({"max_sessions_per_user": 1, "on_limit": "refuse"})),
        )
        .await;
    assert_eq!(set.status, 200, "{}", set.text);
    let refused = log_in(&api, &c1).await;
    assert_error(&refused, 403, "Forbidden");
    let events = api
        .call(
            Method::GET,
            format!("{c1}/rest/v1/audit?action=login.limited"),
            Some(&admin),
            None,
        )
        .await;
    let not_counted = &events.body[0]["details"]["not_counted"];
    assert!(
        not_counted["east"]
            .as_str()
            .is_some_and(|why| !why.is_empty()),
        "{}",
        events.text
    );
    assert!(not_counted.get("central").is_none(), "{}", events.text);
}
