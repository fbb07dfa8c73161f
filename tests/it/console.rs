//! The console as the node serves it: behind the browser login, for administrators, its assets
//! built into the binary with headers that keep it to this origin.

use crate::common;

use common::{add_user, assert_error};
use reqwest::Method;

const PW: &str = "console-user-pw-85";

#[tokio::test]
async fn the_console_is_for_administrators_behind_the_login_with_its_assets_built_in() {
    let (_site, api, base, admin) = common::admin_node(common::Tuning::default()).await;
    add_user(&api, &base, &admin, "example.org", "lena", PW).await;
    let lena = api.token(&base, "example.org", "lena", PW).await;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");

    let anonymous = no_redirects
        .get(format!("{base}/console"))
        .send()
        .await
        .expect("answer");
    assert_eq!(anonymous.status(), 303);
    assert_eq!(anonymous.headers()["location"], "/login?next=%2Fconsole");

    let as_user = api
        .send(
            api.http
                .get(format!("{base}/console"))
                .header("cookie", format!("RSession={lena}")),
        )
        .await;
    assert_error(&as_user, 403, "Forbidden");

    let page = no_redirects
        .get(format!("{base}/console"))
        .header("cookie", format!("RSession={admin}"))
        .send()
        .await
        .expect("answer");
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    assert_eq!(headers["content-type"], "text/html; charset=utf-8");
    let policy = headers["content-security-policy"].to_str().expect("ascii");
    assert!(policy.contains("default-src 'none'") && policy.contains("script-src 'self'"));
    assert_eq!(headers["x-frame-options"], "DENY");
    let html = page.text().await.expect("body");
    for asset in ["/console/assets/console.js", "/console/assets/console.css"] {
        assert!(html.contains(asset), "{html}");
        let served = api
            .call(Method::GET, format!("{base}{asset}"), None, None)
            .await;
        assert_eq!(served.status, 200, "{asset}");
        assert!(!served.text.is_empty());
        assert_eq!(served.headers["x-content-type-options"], "nosniff");
    }
    let script = api
        .call(
            Method::GET,
            format!("{base}/console/assets/console.js"),
            None,
            None,
        )
        .await;
    assert_eq!(
        script.headers["content-type"],
        "text/javascript; charset=utf-8"
    );
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external asset"
    );
    let missing = api
        .call(
            Method::GET,
            format!("{base}/console/assets/nothing.js"),
            None,
            None,
        )
        .await;
    assert_error(&missing, 404, "notFound");
}

#[tokio::test]
async fn a_user_is_contained_from_the_console_preview_first_then_the_receipt() {
    let (_site, api, base, admin) = common::admin_node(common::Tuning::default()).await;
    add_user(&api, &base, &admin, "example.org", "mona", PW).await;
    let login = api.login(&base, "example.org", "mona", PW).await;
    let mona = login.body["token"].as_str().expect("token").to_string();
    let session = login.body["session_id"].as_str().expect("session id");
    let steps = in_browser(&base, "contain", &["contain:mona@example.org"]).await;
    let said = serde_json::Value::from(steps.clone());
    let step = &steps[0];
    let listed = step["sessions"].as_str().expect("the sessions table");
    assert!(listed.contains(session), "mona's session is listed: {said}");
    let preview = step["preview"].as_str().expect("preview");
    assert!(preview.contains("What would end: complete"), "{said}");
    assert!(
        preview.contains("preview"),
        "the preview's status per site: {said}"
    );
    let receipt = step["receipt"].as_str().expect("receipt");
    assert!(receipt.contains("Receipt: complete"), "{said}");
    assert!(receipt.contains("contained"), "{said}");
    assert_eq!(step["errors"], serde_json::json!([]), "{said}");
    // Mona's session is over, and the lock keeps her out.
    let gone = api
        .call(
            Method::GET,
            format!("{base}/rest/v1/iam/sessions/current"),
            Some(&mona),
            None,
        )
        .await;
    assert_eq!(gone.status, 401, "{}", gone.text);
    let locked = api.login(&base, "example.org", "mona", PW).await;
    assert_error(&locked, 403, "Forbidden");
}

#[tokio::test]
async fn the_views_load_in_a_real_browser_with_no_error_and_no_serious_accessibility_issue() {
    let (_site, _api, base, _admin) = common::admin_node(common::Tuning::default()).await;
    let views = in_browser(
        &base,
        "views",
        &["overview", "sessions", "user", "locks", "audit"],
    )
    .await;
    let said = serde_json::Value::from(views.clone());
    let headings: Vec<&str> = views.iter().filter_map(|v| v["heading"].as_str()).collect();
    assert_eq!(
        headings,
        ["Overview", "Sessions", "A user", "Locks", "Audit"],
        "{said}"
    );
    for view in &views {
        let none = serde_json::json!([]);
        assert_eq!(view["errors"], none, "browser console errors: {said}");
        assert_eq!(view["serious"], none, "axe: {said}");
        let png = std::fs::read(view["screenshot"].as_str().expect("path")).expect("screenshot");
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    }
}

/// Runs the browser harness against `base` with `steps`: one JSON value per step.
/// Each test keeps its screenshots in `target/console-screenshots/<folder>`.
async fn in_browser(base: &str, folder: &str, steps: &[&str]) -> Vec<serde_json::Value> {
    let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("target/console-screenshots")
        .join(folder);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/console.py");
    let run = tokio::process::Command::new("python3")
        .arg(script)
        .arg(base)
        .arg(common::ADMIN_PASSWORD)
        .arg(&shots)
        .args(steps)
        .output()
        .await
        .expect("python3 runs (scripts/test installs selenium, chromium and chromium-driver)");
    let said = String::from_utf8_lossy(&run.stdout).to_string();
    assert!(
        run.status.success(),
        "the browser run failed:\n{said}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    said.lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}

fn text_of(step: &serde_json::Value) -> &str {
    step["text"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn across_two_sites_the_console_kills_contains_and_says_what_it_cannot_reach() {
    use common::sites::{central_and_east, quick_federation};
    use common::ws::{self, Auth};
    let (central, mut east) = central_and_east(quick_federation()).await;
    let (c1, e1) = (central.api_url(0), east.api_url(0));
    let api = common::Api::default();
    let admin = api.admin_token(&c1).await;
    add_user(&api, &c1, &admin, "example.org", "nina", PW).await;
    let at_central = common::log_in_at_any(&api, std::slice::from_ref(&c1), "nina", PW).await;
    let socketed = api.login(&e1, "example.org", "nina", PW).await;
    let socketed_id = socketed.body["session_id"]
        .as_str()
        .expect("id")
        .to_string();
    let socketed_token = socketed.body["token"].as_str().expect("token").to_string();
    let mut socket = ws::open(&e1, &socketed_token, Auth::Bearer).await;
    let at_east = common::log_in_at_any(&api, std::slice::from_ref(&e1), "nina", PW).await;

    let kill = format!("kill:{socketed_id}");
    let steps = in_browser(
        &c1,
        "two-sites",
        &[
            "overview",
            "sessions",
            &kill,
            "contain:nina@example.org",
            "locks",
            "audit-search:incident.contain",
        ],
    )
    .await;
    let overview = text_of(&steps[0]);
    assert!(
        overview.contains("central (this site)") && overview.contains("east"),
        "{overview}"
    );
    let listed = text_of(&steps[1]);
    for session in [&at_central, &socketed_id, &at_east] {
        assert!(
            listed.contains(session.as_str()),
            "{session} listed: {listed}"
        );
    }
    // The kill in the browser closed the test's websocket at the other site.
    let (reason, code) =
        ws::closed_by_server(&mut socket, std::time::Duration::from_secs(10)).await;
    assert_eq!((reason.as_deref(), code), (Some("revoked"), Some(4001)));
    let receipt = steps[3]["receipt"].as_str().expect("receipt");
    assert!(receipt.contains("Receipt: complete"), "{receipt}");
    for node in ["c1", "c2", "c3", "e1", "e2", "e3"] {
        assert!(receipt.contains(node), "a row for {node}: {receipt}");
    }
    // Nothing of nina's is left at either site.
    let left = api
        .call(
            Method::GET,
            format!(
                "{c1}/rest/v1/master/logicalroles/ws/sessions?sites=all&user=nina&domain=example.org"
            ),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(left.body, serde_json::json!([]), "{}", left.text);
    let locks = text_of(&steps[4]);
    assert!(locks.contains("user nina@example.org"), "{locks}");
    let audit = text_of(&steps[5]);
    assert!(audit.contains("incident.contain"), "{audit}");

    // East's nodes stop: the overview says it is unreachable, the sessions list that it is
    // partial.
    for i in 0..3 {
        east.kill(i);
    }
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    let steps = in_browser(&c1, "two-sites", &["overview", "sessions"]).await;
    let overview = text_of(&steps[0]);
    assert!(overview.contains("unreachable"), "{overview}");
    let listed = text_of(&steps[1]);
    assert!(
        listed.contains("The list is partial: not reached: east"),
        "{listed}"
    );
}
