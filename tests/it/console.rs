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
    assert!(html.contains(r#"content="global""#), "{html}");
    for asset in [
        "/console/assets/console.js",
        "/console/assets/console.css",
        "/console/assets/api.js",
        "/console/assets/views/sessions.js",
        "/console/assets/views/certificates.js",
    ] {
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
    let outside = api
        .call(
            Method::GET,
            format!("{base}/console/assets/../Cargo.toml"),
            None,
            None,
        )
        .await;
    assert_eq!(outside.status, 404, "{}", outside.text);
}

#[tokio::test]
async fn the_overview_reads_each_site_from_its_own_nodes() {
    let (_site, api, base, admin) = common::admin_node(common::Tuning::default()).await;
    add_user(&api, &base, &admin, "example.org", "lena", PW).await;
    let lena = api.token(&base, "example.org", "lena", PW).await;
    let sites = api
        .get(format!("{base}/cluster/sites?sites=all"))
        .as_(&admin)
        .expect(200)
        .await;
    let said = sites.text.clone();
    let only = &sites.body[0];
    assert_eq!(sites.body.as_array().map(Vec::len), Some(1), "{said}");
    assert_eq!(only["site"], "local", "{said}");
    assert_eq!(only["leader"], 1, "{said}");
    assert_eq!(only["members"][0]["answers"], true, "{said}");
    let listed = api
        .get(format!(
            "{base}/rest/v1/master/logicalroles/ws/sessions?session_type=http"
        ))
        .as_(&admin)
        .expect(200)
        .await;
    let live = listed.body.as_array().map(Vec::len).expect("a list") as u64;
    assert!(
        live >= 2,
        "the admin's and lena's sessions at least: {}",
        listed.text
    );
    assert_eq!(only["sessions"].as_u64(), Some(live), "{said}");
    assert_eq!(
        (only["websockets"].as_u64(), only["channels"].as_u64()),
        (Some(0), Some(0)),
        "{said}"
    );
    let as_user = api
        .call(
            Method::GET,
            format!("{base}/cluster/sites"),
            Some(&lena),
            None,
        )
        .await;
    assert_error(&as_user, 403, "Forbidden");
    let unknown = api
        .call(
            Method::GET,
            format!("{base}/cluster/sites?sites=west"),
            Some(&admin),
            None,
        )
        .await;
    assert_error(&unknown, 400, "InvalidArgument");
    let anonymous = api
        .call(Method::GET, format!("{base}/cluster/sites"), None, None)
        .await;
    assert_error(&anonymous, 401, "Unauthorized");
}

/// A domain administrator of acme.test, with users and sessions in acme.test and other.org.
async fn two_domains(api: &common::Api, base: &str, admin: &str) -> (String, String) {
    add_user(api, base, admin, "acme.test", "ann", PW).await;
    add_user(api, base, admin, "acme.test", "abe", PW).await;
    add_user(api, base, admin, "other.org", "oz", PW).await;
    api.put(format!("{base}/groups/admins@acme.test"))
        .as_(admin)
        .body(serde_json::json!({"members": ["ann@acme.test"]}))
        .expect(201)
        .await;
    let abe = api.login(base, "acme.test", "abe", PW).await;
    let oz = api.login(base, "other.org", "oz", PW).await;
    let id = |answer: &common::Answer| answer.body["session_id"].as_str().expect("id").to_string();
    (id(&abe), id(&oz))
}

#[tokio::test]
async fn a_domain_administrator_sees_its_own_domain_only() {
    let (_site, api, base, admin) = common::admin_node(common::Tuning::default()).await;
    let (abe, oz) = two_domains(&api, &base, &admin).await;
    let ann = api.token(&base, "acme.test", "ann", PW).await;
    let page = api
        .send(
            api.http
                .get(format!("{base}/console"))
                .header("cookie", format!("RSession={ann}")),
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(
        page.text.contains(r#"content="domain:acme.test""#),
        "{}",
        page.text
    );

    let steps = BrowserRun::start(
        &base,
        ("ann@acme.test", PW),
        "domain-admin",
        &["sessions", "channels", "locks", "audit", "overview"],
    )
    .finish()
    .await;
    let said = serde_json::Value::from(steps.clone());
    assert_eq!(
        steps[0]["nav"],
        serde_json::json!(["Sessions", "A user", "Locks", "Audit", "Channels"]),
        "no overview, certificates or tasks for a domain administrator: {said}"
    );
    let listed = text_of(&steps[0]);
    assert!(
        listed.contains(&abe) && listed.contains("abe@acme.test"),
        "{listed}"
    );
    assert!(
        !listed.contains(&oz) && !listed.contains("other.org"),
        "{listed}"
    );
    assert!(!text_of(&steps[3]).contains("other.org"), "{said}");
    // The overview is for global administrators: its address leads to the sessions.
    assert_eq!(steps[4]["heading"], "Sessions", "{said}");
    for step in &steps {
        assert_eq!(step["errors"], serde_json::json!([]), "{said}");
        assert_eq!(step["serious"], serde_json::json!([]), "{said}");
    }
}

#[tokio::test]
async fn another_origin_cannot_use_the_console_cookie_to_change_anything() {
    let (_site, api, base, admin) = common::admin_node(common::Tuning::default()).await;
    let (abe, _) = two_domains(&api, &base, &admin).await;
    // A page of another origin on the same host (so the browser still sends the SameSite
    // cookie: the server's own check is what refuses it), posting a logout of abe's domain.
    let host = base
        .trim_start_matches("http://")
        .split(':')
        .next()
        .expect("host")
        .to_string();
    let target = format!("{base}/rest/v1/master/logicalroles/ws/sessions");
    let forged = format!(
        r#"<!doctype html><html lang="en"><title>prize</title><body>
<form id="f" method="post" enctype="text/plain" action="{target}">
<input type="hidden" name='{{"action":"logout","domain":"acme.test","user":"abe","sites":"all","x":"' value='"}}'>
</form><script>document.getElementById("f").submit()</script></body></html>"#
    );
    let listener = tokio::net::TcpListener::bind((host.as_str(), 0))
        .await
        .expect("bind");
    let evil = format!("http://{}/", listener.local_addr().expect("addr"));
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let page = forged.clone();
            async move { axum::response::Html(page) }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });

    let visit = format!("visit:{evil}");
    let steps = in_browser(&base, "csrf", &[&visit]).await;
    let said = serde_json::Value::from(steps.clone());
    let landed = steps[0]["text"].as_str().expect("text");
    assert!(landed.contains(r#""statusCode":403"#), "{said}");
    assert!(landed.contains("this site's own pages"), "{said}");
    // abe is still logged in.
    let listed = api
        .get(format!("{target}?user=abe&domain=acme.test"))
        .as_(&admin)
        .expect(200)
        .await;
    assert!(listed.text.contains(&abe), "{}", listed.text);

    // The same with a script: state-changing calls with the cookie from another origin are
    // refused, from this origin they pass.
    let cookie = format!("RSession={admin}");
    let body = serde_json::json!({"user": "abe@acme.test", "dry_run": true}).to_string();
    for (header, value, status) in [
        ("sec-fetch-site", "cross-site", 403),
        ("sec-fetch-site", "same-site", 403),
        ("origin", evil.trim_end_matches('/'), 403),
        ("sec-fetch-site", "same-origin", 200),
    ] {
        let answer = api
            .send(
                api.http
                    .post(format!("{base}/rest/v1/incidents"))
                    .header("cookie", &cookie)
                    .header("content-type", "application/json")
                    .header(header, value)
                    .body(body.clone()),
            )
            .await;
        assert_eq!(answer.status, status, "{header}: {value}: {}", answer.text);
    }
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
        &[
            "overview",
            "sessions",
            "user",
            "locks",
            "audit",
            "channels",
            "certificates",
            "tasks",
            "narrow:overview",
            "narrow:sessions",
            "narrow:user",
        ],
    )
    .await;
    let said = serde_json::Value::from(views.clone());
    let headings: Vec<&str> = views.iter().filter_map(|v| v["heading"].as_str()).collect();
    assert_eq!(
        headings,
        [
            "Overview",
            "Sessions",
            "A user",
            "Locks",
            "Audit",
            "Channels",
            "Certificates",
            "Tasks",
            "Overview",
            "Sessions",
            "A user"
        ],
        "{said}"
    );
    for view in &views {
        let none = serde_json::json!([]);
        assert_eq!(view["errors"], none, "browser console errors: {said}");
        assert_eq!(view["serious"], none, "axe: {said}");
        let png = std::fs::read(view["screenshot"].as_str().expect("path")).expect("screenshot");
        assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    }
    for view in &views[8..] {
        assert_eq!(
            view["overflow"],
            serde_json::json!(0),
            "nothing wider than a 390 px window: {said}"
        );
    }
    // The overview counts this one site, as its own node sees it.
    let overview = text_of(&views[0]);
    assert!(overview.contains("Every site answered (1)"), "{overview}");
}

#[tokio::test]
async fn the_console_works_from_the_keyboard_with_the_focus_always_visible() {
    let (_site, _api, base, _admin) = common::admin_node(common::Tuning::default()).await;
    let steps = in_browser(&base, "keyboard", &["keyboard"]).await;
    let said = serde_json::Value::from(steps.clone());
    let stops = steps[0]["stops"].as_array().expect("stops");
    let named = |name: &str| {
        stops
            .iter()
            .any(|s| s["name"].as_str().is_some_and(|n| n.starts_with(name)))
    };
    for control in [
        "Skip to the content",
        "Overview",
        "Sessions",
        "Tasks",
        "Log out",
        "Apply",
    ] {
        assert!(named(control), "Tab reaches {control}: {said}");
    }
    assert!(named("Kill session"), "Tab reaches a row's Kill: {said}");
    for tag in ["select", "input"] {
        assert!(stops.iter().any(|s| s["tag"] == tag), "a {tag}: {said}");
    }
    for stop in stops {
        assert_eq!(
            stop["visible"], true,
            "a visible focus ring: {stop} in {said}"
        );
    }
    let followed = steps[0]["followed"].as_str().expect("url");
    assert!(followed.ends_with("/console#overview"), "{followed}");
}

/// The browser harness, running: its steps' JSON lines as they come.
struct BrowserRun {
    child: tokio::process::Child,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
}

impl BrowserRun {
    /// Starts the harness against `base`, logged in as `address` with `password`, with
    /// `steps`; it keeps its screenshots in `target/console-screenshots/<folder>`.
    fn start(base: &str, (address, password): (&str, &str), folder: &str, steps: &[&str]) -> Self {
        use tokio::io::AsyncBufReadExt;
        let shots = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target/console-screenshots")
            .join(folder);
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/console.py");
        let mut child = tokio::process::Command::new("python3")
            .arg(script)
            .arg(base)
            .arg(address)
            .arg(password)
            .arg(&shots)
            .args(steps)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 runs (scripts/test installs selenium, chromium and chromium-driver)");
        let stdout = child.stdout.take().expect("piped");
        Self {
            child,
            lines: tokio::io::BufReader::new(stdout).lines(),
        }
    }

    /// The next line the harness says; when it ends instead, what it said on stderr.
    async fn next(&mut self) -> serde_json::Value {
        let line =
            tokio::time::timeout(std::time::Duration::from_secs(120), self.lines.next_line())
                .await
                .expect("the browser says something within 2 min")
                .expect("read");
        let Some(line) = line else {
            let mut stderr = String::new();
            if let Some(mut err) = self.child.stderr.take() {
                use tokio::io::AsyncReadExt;
                let _ = err.read_to_string(&mut stderr).await;
            }
            panic!("the browser run ended before its next step:\n{stderr}");
        };
        serde_json::from_str(&line).expect("a JSON line")
    }

    /// The rest of the lines, once the harness has ended well.
    async fn finish(mut self) -> Vec<serde_json::Value> {
        let mut said = Vec::new();
        while let Some(line) = self.lines.next_line().await.expect("read") {
            said.push(line);
        }
        let ended = self
            .child
            .wait_with_output()
            .await
            .expect("the harness ends");
        assert!(
            ended.status.success(),
            "the browser run failed:\n{}\n{}",
            said.join("\n"),
            String::from_utf8_lossy(&ended.stderr)
        );
        said.iter()
            .map(|line| serde_json::from_str(line).expect("a JSON line"))
            .collect()
    }
}

const ADMIN: (&str, &str) = ("admin@master.domain", common::ADMIN_PASSWORD);

/// Runs the browser harness as the administrator: one JSON value per step.
async fn in_browser(base: &str, folder: &str, steps: &[&str]) -> Vec<serde_json::Value> {
    BrowserRun::start(base, ADMIN, folder, steps).finish().await
}

fn text_of(step: &serde_json::Value) -> &str {
    step["text"].as_str().unwrap_or_default()
}

/// The overview's row for `site`: the line of the text that starts with its name.
fn row_of<'a>(text: &'a str, site: &str) -> &'a str {
    text.lines()
        .find(|line| line.starts_with(&format!("{site} ")))
        .unwrap_or_default()
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
    add_user(&api, &c1, &admin, "example.org", "omar", PW).await;
    let at_central = common::log_in_at_any(&api, std::slice::from_ref(&c1), "nina", PW).await;
    let socketed = api.login(&e1, "example.org", "nina", PW).await;
    let socketed_id = socketed.body["session_id"]
        .as_str()
        .expect("id")
        .to_string();
    let socketed_token = socketed.body["token"].as_str().expect("token").to_string();
    let mut socket = ws::open(&e1, &socketed_token, Auth::Bearer).await;
    let at_east = common::log_in_at_any(&api, std::slice::from_ref(&e1), "nina", PW).await;
    // A websocket at central stays open until the containment.
    let held = api.login(&c1, "example.org", "nina", PW).await;
    let held_id = held.body["session_id"].as_str().expect("id").to_string();
    let held_token = held.body["token"].as_str().expect("token").to_string();
    let mut held_socket = ws::open(&c1, &held_token, Auth::Bearer).await;
    let ca = std::fs::read_to_string(&east.nodes[1].cert_file).expect("east's certificate");
    let mut imap = common::mail::tls(east.nodes[1].imaps, &ca).await;
    assert!(imap.line().await.expect("greeting").starts_with("* OK"));
    imap.send(&format!("a1 LOGIN nina@example.org {PW}")).await;
    let logged_in = imap.until("a1 ").await.pop().expect("tagged");
    assert!(logged_in.starts_with("a1 OK"), "{logged_in}");
    // East gets new certificates on disk: the reload from the console makes its nodes serve them.
    let (cert, key) =
        common::certificate(&east.nodes.iter().map(|n| n.api.ip()).collect::<Vec<_>>());
    for node in &east.nodes {
        std::fs::write(&node.cert_file, &cert).expect("write");
        std::fs::write(&node.key_file, &key).expect("write");
    }
    let sites = api
        .get(format!("{c1}/cluster/sites?sites=all"))
        .as_(&admin)
        .expect(200)
        .await;
    let east_summary = &sites.body[1];
    assert_eq!(east_summary["site"], "east", "{}", sites.text);
    let east_counts = (
        east_summary["sessions"].as_u64().expect("n"),
        east_summary["websockets"].as_u64().expect("n"),
        east_summary["channels"].as_u64().expect("n"),
    );
    assert_eq!(east_counts, (2, 1, 1), "nina's at east: {}", sites.text);

    let kill = format!("kill:{socketed_id}");
    let mut browser = BrowserRun::start(
        &c1,
        ADMIN,
        "two-sites",
        &[
            "overview",
            "sessions",
            "channels",
            &kill,
            "live:omar@example.org",
            "logout:omar@example.org",
            "reload-certificates",
            "contain:nina@example.org",
            "locks",
            "audit-search:incident.contain",
        ],
    );
    let overview = text_of(&browser.next().await).to_string();
    let (s, w, c) = east_counts;
    assert!(
        row_of(&overview, "east").starts_with("east ● up")
            && row_of(&overview, "east").ends_with(&format!("3 of 3 {s} {w} {c}")),
        "east's row, its nodes and counts: {overview}"
    );
    assert!(
        row_of(&overview, "central").starts_with("central ● up"),
        "{overview}"
    );
    for node in ["Nodes of central", "Nodes of east"] {
        assert!(overview.contains(node), "{overview}");
    }
    let listed = text_of(&browser.next().await).to_string();
    for session in [&at_central, &socketed_id, &at_east, &held_id] {
        assert!(
            listed.contains(session.as_str()),
            "{session} listed: {listed}"
        );
    }
    let channels = text_of(&browser.next().await).to_string();
    assert!(
        channels.contains("nina@example.org IMAP") && channels.contains("east"),
        "{channels}"
    );
    browser.next().await; // the kill
                          // The kill in the browser closed the test's websocket at the other site.
    let (reason, code) =
        ws::closed_by_server(&mut socket, std::time::Duration::from_secs(10)).await;
    assert_eq!((reason.as_deref(), code), (Some("revoked"), Some(4001)));
    // Omar logs in at east while the sessions view is open: it shows him without a reload.
    assert_eq!(browser.next().await["view"], "live-waiting");
    let omar = common::log_in_at_any(&api, std::slice::from_ref(&e1), "omar", PW).await;
    let live = browser.next().await;
    assert!(!live["before"].as_str().unwrap_or_default().contains(&omar));
    assert!(text_of(&live).contains(&omar), "{live}");
    let logout = browser.next().await;
    assert!(
        text_of(&logout).contains("omar@example.org logged out: 1 session(s) ended."),
        "{logout}"
    );
    let reloaded = browser.next().await;
    let table = text_of(&reloaded);
    assert!(
        reloaded["answer"]
            .as_str()
            .unwrap_or_default()
            .contains("Reloaded on every node"),
        "{reloaded}"
    );
    for line in table.lines().filter(|l| l.starts_with("east ")) {
        assert!(line.ends_with("new certificate"), "{line} in {table}");
    }
    for line in table.lines().filter(|l| l.starts_with("central ")) {
        assert!(line.ends_with("unchanged"), "{line} in {table}");
    }
    assert!(
        table.lines().filter(|l| l.starts_with("east ")).count() >= 3,
        "{table}"
    );

    let contained = browser.next().await;
    let preview = contained["preview"].as_str().expect("preview");
    assert!(preview.contains("What would end: complete"), "{preview}");
    let receipt = contained["receipt"].as_str().expect("receipt");
    assert!(receipt.contains("Receipt: complete"), "{receipt}");
    for node in ["c1", "c2", "c3", "e1", "e2", "e3"] {
        assert!(receipt.contains(node), "a row for {node}: {receipt}");
    }
    // The websocket at central is told `locked` and closed with 4005; the IMAP client at east
    // is told BYE, and its connection closes.
    let (reason, code) =
        ws::closed_by_server(&mut held_socket, std::time::Duration::from_secs(10)).await;
    assert_eq!((reason.as_deref(), code), (Some("locked"), Some(4005)));
    let bye = imap.until("* BYE").await;
    assert!(!bye.is_empty(), "IMAP says BYE");
    assert!(imap.closes_within(std::time::Duration::from_secs(10)).await);
    let locks = text_of(&browser.next().await).to_string();
    assert!(locks.contains("user nina@example.org"), "{locks}");
    let audit = text_of(&browser.next().await).to_string();
    assert!(audit.contains("incident.contain"), "{audit}");
    browser.finish().await;
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
    let channels_left = api
        .get(format!("{c1}/servers/channels/nina@example.org?sites=all"))
        .as_(&admin)
        .expect(200)
        .await;
    assert_eq!(
        channels_left.body,
        serde_json::json!([]),
        "{}",
        channels_left.text
    );

    // Pia has a session at each site. East's nodes stop: the overview says it is unreachable,
    // the sessions list that it is partial, and containing Pia gives an incomplete receipt
    // that completes, in the open view, once east is back.
    add_user(&api, &c1, &admin, "example.org", "pia", PW).await;
    common::log_in_at_any(&api, std::slice::from_ref(&c1), "pia", PW).await;
    let pia_at_east = common::log_in_at_any(&api, std::slice::from_ref(&e1), "pia", PW).await;
    for i in 0..3 {
        east.kill(i);
    }
    tokio::time::sleep(std::time::Duration::from_secs(6)).await;
    let mut browser = BrowserRun::start(
        &c1,
        ADMIN,
        "two-sites-east-down",
        &["overview", "sessions", "contain-pending:pia@example.org"],
    );
    let steps = [browser.next().await, browser.next().await];
    let waiting = browser.next().await;
    let incomplete = waiting["receipt"].as_str().unwrap_or_default().to_string();
    assert!(incomplete.contains("Receipt: incomplete"), "{waiting}");
    assert!(
        row_of(&incomplete, "east").contains("pending"),
        "{incomplete}"
    );
    for i in 0..3 {
        east.restart(i).await;
    }
    let completed = browser.next().await;
    let receipt = completed["receipt"].as_str().unwrap_or_default();
    assert!(receipt.contains("Receipt: complete"), "{completed}");
    assert!(row_of(receipt, "east").contains("contained"), "{receipt}");
    for node in ["e1", "e2", "e3"] {
        let row = receipt
            .lines()
            .find(|l| l.starts_with(&format!("east {node} ")))
            .unwrap_or_default();
        let said = row.split_whitespace().nth(2).unwrap_or_default();
        assert!(
            said.starts_with("20") || ["down", "no_answer"].contains(&said),
            "{node} says when it applied, or why not: {receipt}"
        );
    }
    browser.finish().await;
    let east_left = api
        .get(format!(
            "{c1}/rest/v1/master/logicalroles/ws/sessions?sites=all&user=pia&domain=example.org"
        ))
        .as_(&admin)
        .expect(200)
        .await;
    assert!(!east_left.text.contains(&pia_at_east), "{}", east_left.text);
    assert_eq!(east_left.body, serde_json::json!([]), "{}", east_left.text);
    let overview = text_of(&steps[0]);
    assert!(
        row_of(overview, "east").starts_with("east ✕ unreachable — — — — —"),
        "{overview}"
    );
    assert!(
        overview.contains("Their counts are unknown, not zero"),
        "{overview}"
    );
    let listed = text_of(&steps[1]);
    assert!(
        listed.contains("The list is partial: not reached: east"),
        "{listed}"
    );
}
