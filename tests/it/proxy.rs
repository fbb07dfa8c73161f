//! The reverse proxy and its browser login, against a real upstream application this test
//! starts (an HTTP server on 127.0.0.1 that echoes what it was sent, streams, counts and
//! stalls), through a real node process: identity headers injected and spoofed ones removed,
//! the session token kept from the upstream, the login page and its redirects, routes' rules,
//! 502 and 504, paths that try to leave their route, CSRF, pipelining, forward auth.

use crate::common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::response::IntoResponse;
use axum::routing::{any, get, post};
use common::{add_user, assert_error, Api, TestSite, Tuning};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BOB_PW: &str = "bob-proxy-pw-41";
const WAIT: Duration = Duration::from_secs(5);
static NEXT_OCTET: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(170);

/// What the upstream saw of a request, as JSON.
async fn echo(request: Request) -> axum::Json<Value> {
    let (parts, body) = request.into_parts();
    let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, value) in &parts.headers {
        headers
            .entry(name.to_string())
            .or_default()
            .push(value.to_str().unwrap_or("?").to_string());
    }
    let mut stream = body.into_data_stream();
    let mut body_bytes = 0usize;
    while let Some(Ok(chunk)) = stream.next().await {
        body_bytes += chunk.len();
    }
    axum::Json(json!({
        "method": parts.method.as_str(),
        "path": parts.uri.path(),
        "query": parts.uri.query(),
        "headers": headers,
        "body_bytes": body_bytes,
    }))
}

/// `bytes` zero bytes, streamed in 64 KiB pieces.
async fn download(request: Request) -> impl IntoResponse {
    let bytes: usize = request
        .uri()
        .query()
        .and_then(|q| q.strip_prefix("bytes="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let piece = Bytes::from(vec![0u8; 64 * 1024]);
    let pieces = bytes.div_ceil(piece.len());
    let stream = futures_util::stream::iter((0..pieces).map(move |k| {
        let left = bytes - k * piece.len();
        Ok::<_, std::io::Error>(piece.slice(..left.min(piece.len())))
    }));
    Body::from_stream(stream)
}

/// Close codes the upstream's websockets received from the proxy, with the query each socket
/// was opened with (the test that opened it).
static UPSTREAM_CLOSES: std::sync::Mutex<Vec<(String, u16)>> = std::sync::Mutex::new(Vec::new());

/// An echo websocket: every text and binary message comes back as it was.
async fn echo_socket(
    uri: axum::http::Uri,
    upgrade: axum::extract::ws::WebSocketUpgrade,
) -> impl IntoResponse {
    use axum::extract::ws::Message;
    let opened_by = uri.query().unwrap_or_default().to_string();
    upgrade.on_upgrade(|mut socket| async move {
        while let Some(Ok(message)) = socket.recv().await {
            if let Message::Close(frame) = message {
                let code = frame.map_or(1005, |f| f.code);
                UPSTREAM_CLOSES
                    .lock()
                    .expect("closes")
                    .push((opened_by, code));
                return;
            }
            let data = matches!(message, Message::Text(_) | Message::Binary(_));
            if data && socket.send(message).await.is_err() {
                return;
            }
        }
    })
}

async fn slow() -> &'static str {
    tokio::time::sleep(Duration::from_secs(5)).await;
    "late"
}

/// Starts the upstream application: its address.
async fn upstream() -> SocketAddr {
    let app = axum::Router::new()
        .route("/app/download", get(download))
        .route("/app/upload", post(echo))
        .route("/app/slow", get(slow))
        .route("/app/ws", get(echo_socket))
        .fallback(any(echo));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind upstream");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

fn routes(app: SocketAddr) -> Vec<String> {
    let down = closed_port();
    [
        format!("[[proxy]]\nprefix = \"/app/\"\nupstream = \"http://{app}\""),
        format!(
            "[[proxy]]\nprefix = \"/api/\"\nupstream = \"http://{app}/app/echo\"\nstrip_prefix = true\nunauthenticated = \"401\""
        ),
        format!("[[proxy]]\nprefix = \"/members/\"\nupstream = \"http://{app}\"\ndomains = [\"other.org\"]"),
        format!("[[proxy]]\nprefix = \"/staff/\"\nupstream = \"http://{app}\"\ngroups = [\"staff@example.org\"]"),
        format!("[[proxy]]\nprefix = \"/down/\"\nupstream = \"http://127.0.0.1:{down}\""),
        format!(
            "[[proxy]]\nprefix = \"/late/\"\nupstream = \"http://{app}/app\"\nstrip_prefix = true\nresponse_timeout_ms = 1000"
        ),
    ]
    .to_vec()
}

/// A client that shows redirects rather than following them.
fn browser() -> Api {
    Api {
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .expect("client"),
    }
}

struct Setup {
    site: TestSite,
    app: SocketAddr,
    api: Api,
    base: String,
    admin: String,
    node: SocketAddr,
}

async fn setup() -> Setup {
    setup_nodes(1).await
}

/// A site of `n` nodes, each with the routes to one upstream; `base` and `node` are the first's.
async fn setup_nodes(n: u64) -> Setup {
    let app = upstream().await;
    let tuning = Tuning {
        tail: routes(app),
        ..Tuning::default()
    };
    // Each test's node on a network of its own: the proxy tests run side by side, and ports
    // picked on one address cannot be taken by a neighbour's node on another.
    let octet = NEXT_OCTET.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let site = TestSite::start_sites(&[("local", octet)], n, &[], tuning)
        .await
        .remove(0);
    site.wait_for_admin(0).await;
    let api = browser();
    let base = site.api_url(0);
    let admin = api.admin_token(&base).await;
    add_user(&api, &base, &admin, "example.org", "bob", BOB_PW).await;
    let node = site.nodes[0].api;
    Setup {
        site,
        app,
        api,
        base,
        admin,
        node,
    }
}

/// One raw HTTP/1.1 exchange (or several, pipelined) on a fresh connection: what came back
/// until the server closed.
async fn raw(node: SocketAddr, requests: &str) -> String {
    let mut stream = TcpStream::connect(node).await.expect("connect");
    stream.write_all(requests.as_bytes()).await.expect("send");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer));
    read.await.expect("the node closes in time").expect("read");
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_proxy_forwards_who_calls_and_keeps_its_routes() {
    let Setup {
        site: _site,
        api,
        base,
        admin,
        node,
        ..
    } = setup().await;
    let bob = api.login(&base, "example.org", "bob", BOB_PW).await;
    assert_eq!(bob.status, 200, "{}", bob.text);
    let token = bob.body["token"].as_str().expect("token").to_string();
    let session_id = bob.body["session_id"]
        .as_str()
        .expect("session")
        .to_string();

    // Identity in, spoofed identity and the token out.
    let seen = api
        .send(
            api.http
                .get(format!("{base}/app/echo/x?y=1"))
                .bearer_auth(&token)
                .header("x-sessionplane-user", "admin@master.domain")
                .header("X-Sessionplane-Site", "elsewhere")
                .header("x-forwarded-for", "10.9.9.9")
                .header("cookie", "theme=dark")
                .header("connection", "keep-alive, x-private")
                .header("x-private", "hop"),
        )
        .await;
    assert_eq!(seen.status, 200, "{}", seen.text);
    let (body, headers) = (&seen.body, &seen.body["headers"]);
    assert_eq!(body["path"], "/app/echo/x");
    assert_eq!(body["query"], "y=1");
    assert_eq!(headers["x-sessionplane-user"], json!(["bob@example.org"]));
    assert_eq!(
        headers["x-sessionplane-user-id"],
        json!([bob.body["user_id"]])
    );
    assert_eq!(headers["x-sessionplane-session"], json!([session_id]));
    assert_eq!(headers["x-sessionplane-site"], json!(["local"]));
    assert_eq!(headers["x-forwarded-for"], json!(["127.0.0.1"]));
    assert_eq!(headers["x-forwarded-proto"], json!(["http"]));
    assert_eq!(headers["x-forwarded-host"], json!([node.to_string()]));
    assert_eq!(headers["cookie"], json!(["theme=dark"]));
    assert!(headers.get("authorization").is_none(), "{}", seen.text);
    assert!(headers.get("x-private").is_none(), "{}", seen.text);
    assert!(
        !seen.text.contains(&token),
        "the token reached the upstream"
    );

    // No session: a page read goes to the login page, anything else is a 401; a route for
    // scripts answers 401 to every request.
    let page = api.send(api.http.get(format!("{base}/app/page?a=1"))).await;
    assert_eq!(page.status, 303, "{}", page.text);
    assert_eq!(page.headers["location"], "/login?next=/app/page%3Fa%3D1");
    let posted = api.send(api.http.post(format!("{base}/app/form"))).await;
    assert_error(&posted, 401, "Unauthorized");
    let scripted = api.send(api.http.get(format!("{base}/api/thing"))).await;
    assert_error(&scripted, 401, "Unauthorized");
    let forged = api
        .send(
            api.http
                .get(format!("{base}/app/x"))
                .bearer_auth("not-a-token"),
        )
        .await;
    assert_eq!(forged.status, 303, "{}", forged.text);

    // A route that strips its prefix; a route bob's domain may not use.
    let stripped = api
        .send(
            api.http
                .get(format!("{base}/api/thing"))
                .bearer_auth(&token),
        )
        .await;
    assert_eq!(
        stripped.body["path"], "/app/echo/thing",
        "{}",
        stripped.text
    );
    let members = api
        .send(
            api.http
                .get(format!("{base}/members/x"))
                .bearer_auth(&token),
        )
        .await;
    assert_error(&members, 403, "Forbidden");
    let staff = |api: &Api| api.http.get(format!("{base}/staff/x")).bearer_auth(&token);
    assert_error(&api.send(staff(&api)).await, 403, "Forbidden");
    api.put(format!("{base}/groups/staff@example.org"))
        .as_(&admin)
        .body(json!({"members": []}))
        .expect(201)
        .await;
    assert_error(&api.send(staff(&api)).await, 403, "Forbidden");
    api.patch(format!("{base}/groups/staff@example.org"))
        .as_(&admin)
        .body(json!({"add": ["bob@example.org"]}))
        .expect(200)
        .await;
    let member = api.send(staff(&api)).await;
    assert_eq!(
        member.status, 200,
        "a member of the route's group gets in: {}",
        member.text
    );

    // The upstream down, the upstream too slow.
    let down = api
        .send(api.http.get(format!("{base}/down/x")).bearer_auth(&token))
        .await;
    assert_error(&down, 502, "BadGateway");
    let late = api
        .send(
            api.http
                .get(format!("{base}/late/slow"))
                .bearer_auth(&token),
        )
        .await;
    assert_error(&late, 504, "GatewayTimeout");

    // Paths that would leave the route once decoded (sent raw: clients normalise them).
    for path in [
        "/app/..%2f..%2frest/v1/locks",
        "/app/%2e%2e/rest/",
        "/app/a/../b",
    ] {
        let answer = raw(
            node,
            &format!(
                "GET {path} HTTP/1.1\r\nHost: {node}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
            ),
        )
        .await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{path}: {answer}");
        assert!(answer.contains("\"InvalidArgument\""), "{path}: {answer}");
    }
    // Oversized headers on a proxied path: the listener's 431, in the contract's format.
    let oversized = raw(
        node,
        &format!(
            "GET /app/echo HTTP/1.1\r\nHost: {node}\r\nAuthorization: Bearer {token}\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
            "b".repeat(70 * 1024)
        ),
    )
    .await;
    assert!(oversized.starts_with("HTTP/1.1 431"), "{oversized}");
    assert!(oversized.contains("\"statusCode\":431"), "{oversized}");

    // Outside every route and the api: the contract's 404.
    let nowhere = api
        .send(api.http.get(format!("{base}/nowhere")).bearer_auth(&token))
        .await;
    assert_error(&nowhere, 404, "notFound");

    // Two pipelined requests on one connection come back in order.
    let pipelined = raw(
        node,
        &format!(
            "GET /app/echo/first HTTP/1.1\r\nHost: {node}\r\nAuthorization: Bearer {token}\r\n\r\n\
             GET /app/echo/second HTTP/1.1\r\nHost: {node}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
        ),
    )
    .await;
    let first = pipelined.find("/app/echo/first").expect("the first answer");
    let second = pipelined
        .find("/app/echo/second")
        .expect("the second answer");
    assert!(first < second, "{pipelined}");
    assert_eq!(pipelined.matches("HTTP/1.1 200").count(), 2, "{pipelined}");

    // A chunked upload of unknown length streams through whole.
    let pieces = (0..160).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![7u8; 65536])));
    let uploaded = api
        .send(
            api.http
                .post(format!("{base}/app/upload"))
                .bearer_auth(&token)
                .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
                    pieces,
                ))),
        )
        .await;
    assert_eq!(
        uploaded.body["body_bytes"],
        160 * 65536,
        "{}",
        uploaded.text
    );
    assert_eq!(
        uploaded.body["headers"]["transfer-encoding"],
        json!(["chunked"])
    );

    // Forward auth: 204 with the identity for a live session; 401 once an admin ends it.
    let verified = api
        .send(
            api.http
                .get(format!("{base}/rest/v1/auth/verify"))
                .bearer_auth(&token),
        )
        .await;
    assert_eq!(verified.status, 204, "{}", verified.text);
    assert_eq!(verified.headers["x-sessionplane-user"], "bob@example.org");
    assert_eq!(
        verified.headers["x-sessionplane-session"],
        session_id.as_str()
    );
    let none = api
        .send(api.http.get(format!("{base}/rest/v1/auth/verify")))
        .await;
    assert_error(&none, 401, "Unauthorized");
    api.delete(format!(
        "{base}/rest/v1/master/logicalroles/ws/sessions/{session_id}"
    ))
    .as_(&admin)
    .expect(204)
    .await;
    let killed = api
        .send(
            api.http
                .get(format!("{base}/rest/v1/auth/verify"))
                .bearer_auth(&token),
        )
        .await;
    assert_error(&killed, 401, "Unauthorized");
    let after = api
        .send(api.http.get(format!("{base}/api/x")).bearer_auth(&token))
        .await;
    assert_error(&after, 401, "Unauthorized");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_browser_logs_in_with_the_form_and_cross_site_posts_are_refused() {
    let Setup {
        site: _site,
        api,
        base,
        node,
        ..
    } = setup().await;
    let form = |next: &str| {
        [
            ("domain", "example.org".to_string()),
            ("login", "bob".to_string()),
            ("password", BOB_PW.to_string()),
            ("next", next.to_string()),
        ]
    };

    let page = api
        .send(api.http.get(format!("{base}/login?next=/app/home")))
        .await;
    assert_eq!(page.status, 200);
    assert_eq!(page.headers["content-type"], "text/html; charset=utf-8");
    assert!(page.text.contains("action=\"/login\""), "{}", page.text);
    assert!(page.text.contains("value=\"/app/home\""), "{}", page.text);
    assert!(!page.text.contains("http://") && !page.text.contains("https://"));
    for next in [
        "https://evil.example/",
        "//evil.example/x",
        "/\\evil.example",
    ] {
        let open = api
            .send(
                api.http
                    .get(format!("{base}/login"))
                    .query(&[("next", next)]),
            )
            .await;
        assert_error(&open, 400, "InvalidArgument");
        let posted = api
            .send(api.http.post(format!("{base}/login")).form(&form(next)))
            .await;
        assert_error(&posted, 400, "InvalidArgument");
    }

    // A form posted from another site is refused before the password is looked at.
    let cross = api
        .send(
            api.http
                .post(format!("{base}/login"))
                .header("origin", "https://evil.example")
                .form(&form("/app/home")),
        )
        .await;
    assert_error(&cross, 403, "Forbidden");
    let wrong = api
        .send(api.http.post(format!("{base}/login")).form(&[
            ("domain", "example.org"),
            ("login", "bob"),
            ("password", "nope"),
        ]))
        .await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.text.contains("<form"), "{}", wrong.text);

    let signed_in = api
        .send(
            api.http
                .post(format!("{base}/login"))
                .header("origin", format!("http://{node}"))
                .form(&form("/app/home")),
        )
        .await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.text);
    assert_eq!(signed_in.headers["location"], "/app/home");
    let cookie = signed_in.headers["set-cookie"]
        .to_str()
        .expect("cookie")
        .split(';')
        .next()
        .expect("name=value")
        .to_string();
    assert!(cookie.starts_with("RSession="), "{cookie}");

    // The cookie opens the application; a state change from another site is refused, one
    // from this origin passes.
    let home = api
        .send(
            api.http
                .get(format!("{base}/app/home"))
                .header("cookie", &cookie),
        )
        .await;
    assert_eq!(home.status, 200, "{}", home.text);
    assert_eq!(
        home.body["headers"]["x-sessionplane-user"],
        json!(["bob@example.org"])
    );
    assert!(
        home.body["headers"].get("cookie").is_none(),
        "{}",
        home.text
    );
    let forged = api
        .send(
            api.http
                .post(format!("{base}/app/transfer"))
                .header("cookie", &cookie)
                .header("sec-fetch-site", "cross-site"),
        )
        .await;
    assert_error(&forged, 403, "Forbidden");
    let own = api
        .send(
            api.http
                .post(format!("{base}/app/transfer"))
                .header("cookie", &cookie)
                .header("sec-fetch-site", "same-origin"),
        )
        .await;
    assert_eq!(own.status, 200, "{}", own.text);
    let api_forged = api
        .send(
            api.http
                .delete(format!("{base}/rest/v1/iam/sessions/current"))
                .header("cookie", &cookie)
                .header("origin", "https://evil.example"),
        )
        .await;
    assert_error(&api_forged, 403, "Forbidden");

    // Sign out: the session ends and the cookie goes.
    let out = api
        .send(
            api.http
                .post(format!("{base}/logout"))
                .header("cookie", &cookie)
                .header("origin", format!("http://{node}")),
        )
        .await;
    assert_eq!(out.status, 303, "{}", out.text);
    assert!(out.headers["set-cookie"]
        .to_str()
        .is_ok_and(|c| c.contains("Max-Age=0")));
    let gone = api
        .send(
            api.http
                .get(format!("{base}/app/home"))
                .header("cookie", &cookie),
        )
        .await;
    assert_eq!(gone.status, 303, "{}", gone.text);
}

/// The resident memory of a process, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

const GIB: usize = 1 << 30;

#[tokio::test(flavor = "multi_thread")]
async fn a_gibibyte_streams_through_each_way_and_a_stalled_reader_costs_nothing() {
    let Setup {
        site, api, base, ..
    } = setup().await;
    let token = api.token(&base, "example.org", "bob", BOB_PW).await;
    let pid = site.pid(0).expect("the node runs");
    let long = reqwest::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()
        .expect("client");
    // Warm the node up (pools, buffers) before its memory is the baseline.
    let warm = long
        .get(format!("{base}/app/download?bytes=1048576"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("sent");
    assert_eq!(warm.bytes().await.expect("body").len(), 1 << 20);
    let before = rss(pid);
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(before));
    let watching = {
        let peak = peak.clone();
        tokio::spawn(async move {
            loop {
                peak.fetch_max(rss(pid), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };

    let piece = Bytes::from(vec![1u8; 1 << 16]);
    let pieces = (0..GIB / piece.len()).map(move |_| Ok::<_, std::io::Error>(piece.clone()));
    let uploaded: Value = long
        .post(format!("{base}/app/upload"))
        .bearer_auth(&token)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            pieces,
        )))
        .send()
        .await
        .expect("upload sent")
        .json()
        .await
        .expect("the upload's answer");
    assert_eq!(uploaded["body_bytes"], GIB, "{uploaded}");

    let download = long
        .get(format!("{base}/app/download?bytes={GIB}"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("download sent");
    assert_eq!(download.status(), 200);
    let mut stream = download.bytes_stream();
    let mut got = 0usize;
    while let Some(piece) = stream.next().await {
        got += piece.expect("a piece").len();
    }
    assert_eq!(got, GIB);

    // A client that stops reading: the node must not read the upstream on its behalf.
    let stalled = long
        .get(format!("{base}/app/download?bytes={GIB}"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("stalled download sent");
    let mut stalled_stream = stalled.bytes_stream();
    stalled_stream
        .next()
        .await
        .expect("a first piece")
        .expect("ok");
    tokio::time::sleep(Duration::from_secs(3)).await;
    watching.abort();
    let grew = peak
        .load(std::sync::atomic::Ordering::Relaxed)
        .saturating_sub(before);
    assert!(
        grew < 32 << 20,
        "the node grew by {} MiB while 2 GiB streamed through it",
        grew >> 20
    );
    drop(stalled_stream);
}

/// nginx, started by a test from Debian's package with a config of the test's own; stopped
/// when dropped.
struct Nginx {
    child: std::process::Child,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nginx on `port` in front of `app`, asking `node`'s forward auth for every request.
async fn nginx_in_front(app: SocketAddr, node: SocketAddr, port: u16) -> Nginx {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path().display();
    let conf = format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\nerror_log {d}/error.log warn;\npid {d}/nginx.pid;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
           fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
           server {{\n    listen 127.0.0.1:{port};\n\
             location = /_verify {{\n      internal;\n      proxy_pass http://{node}/rest/v1/auth/verify;\n\
               proxy_pass_request_body off;\n      proxy_set_header Content-Length \"\";\n    }}\n\
             location / {{\n      auth_request /_verify;\n\
               auth_request_set $sp_user $upstream_http_x_sessionplane_user;\n\
               auth_request_set $sp_session $upstream_http_x_sessionplane_session;\n\
               proxy_set_header X-Sessionplane-User $sp_user;\n\
               proxy_set_header X-Sessionplane-Session $sp_session;\n\
               proxy_pass http://{app};\n    }}\n  }}\n}}\n"
    );
    let conf_file = dir.path().join("nginx.conf");
    std::fs::write(&conf_file, conf).expect("write nginx.conf");
    let child = std::process::Command::new("nginx")
        .arg("-p")
        .arg(dir.path())
        .arg("-e")
        .arg(dir.path().join("error.log"))
        .arg("-c")
        .arg(&conf_file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("nginx runs (.ci/run installs Debian's nginx)");
    let nginx = Nginx { child, _dir: dir };
    for _ in 0..100 {
        if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return nginx;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let log = std::fs::read_to_string(nginx._dir.path().join("error.log")).unwrap_or_default();
    panic!("nginx did not listen on {port}: {log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn nginx_auth_request_lets_a_live_session_in_and_not_a_killed_one() {
    let Setup {
        site: _site,
        app,
        api,
        base,
        admin,
        node,
    } = setup().await;
    let bob = api.login(&base, "example.org", "bob", BOB_PW).await;
    let token = bob.body["token"].as_str().expect("token").to_string();
    let session_id = bob.body["session_id"]
        .as_str()
        .expect("session")
        .to_string();
    let port = closed_port();
    let _nginx = nginx_in_front(app, node, port).await;
    let front = format!("http://127.0.0.1:{port}");

    let allowed = api
        .send(
            api.http
                .get(format!("{front}/app/echo/n"))
                .bearer_auth(&token),
        )
        .await;
    assert_eq!(allowed.status, 200, "{}", allowed.text);
    assert_eq!(
        allowed.body["headers"]["x-sessionplane-user"],
        json!(["bob@example.org"])
    );
    assert_eq!(
        allowed.body["headers"]["x-sessionplane-session"],
        json!([session_id])
    );
    let anonymous = api.send(api.http.get(format!("{front}/app/echo/n"))).await;
    assert_eq!(anonymous.status, 401, "{}", anonymous.text);

    api.delete(format!(
        "{base}/rest/v1/master/logicalroles/ws/sessions/{session_id}"
    ))
    .as_(&admin)
    .expect(204)
    .await;
    let killed = api
        .send(
            api.http
                .get(format!("{front}/app/echo/n"))
                .bearer_auth(&token),
        )
        .await;
    assert_eq!(killed.status, 401, "{}", killed.text);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_proxied_websocket_relays_frames_is_listed_and_a_kill_closes_both_sides() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;
    let Setup {
        site: _site,
        api,
        base,
        admin,
        node,
        ..
    } = setup().await;
    let bob = api.login(&base, "example.org", "bob", BOB_PW).await;
    let token = bob.body["token"].as_str().expect("token").to_string();
    let session_id = bob.body["session_id"]
        .as_str()
        .expect("session")
        .to_string();

    let mut socket = open_proxied(node, &token, "relay").await;
    socket
        .send(Message::Text("hello".into()))
        .await
        .expect("send");
    let echoed = socket.next().await.expect("an answer").expect("ok");
    assert_eq!(echoed, Message::Text("hello".into()));
    socket
        .send(Message::Binary(vec![0u8, 1, 2, 255].into()))
        .await
        .expect("send");
    let echoed = socket.next().await.expect("an answer").expect("ok");
    assert_eq!(echoed, Message::Binary(vec![0u8, 1, 2, 255].into()));

    // Listed as a connection of bob's session, on this node.
    let listed = api
        .get(format!("{base}/rest/v1/master/logicalroles/ws/sessions"))
        .as_(&admin)
        .expect(200)
        .await;
    assert!(
        listed.text.contains(&session_id) && listed.text.contains("conn_id"),
        "{}",
        listed.text
    );

    // Without a session the upgrade is refused; an upgrade that is not one is a 400.
    let anonymous = format!("ws://{node}/app/ws")
        .into_client_request()
        .expect("request");
    assert!(tokio_tungstenite::connect_async(anonymous).await.is_err());
    let broken = raw(
        node,
        &format!(
            "GET /app/ws HTTP/1.1\r\nHost: {node}\r\nAuthorization: Bearer {token}\r\nUpgrade: websocket\r\nConnection: close\r\n\r\n"
        ),
    )
    .await;
    assert!(broken.starts_with("HTTP/1.1 400"), "{broken}");

    // An admin kill closes the client with 4001 and the upstream with 1001.
    api.delete(format!(
        "{base}/rest/v1/master/logicalroles/ws/sessions/{session_id}"
    ))
    .as_(&admin)
    .expect(204)
    .await;
    let code = close_code(&mut socket).await;
    assert_eq!(code, Some(4001));
    wait_for_upstream_closes("relay", 1).await;

    // A lock on the user closes a new proxied socket with 4005, the upstream again with 1001.
    let again = api.token(&base, "example.org", "bob", BOB_PW).await;
    let mut socket = open_proxied(node, &again, "relay").await;
    socket
        .send(Message::Text("still here".into()))
        .await
        .expect("send");
    socket.next().await.expect("an echo").expect("ok");
    api.post(format!("{base}/rest/v1/locks"))
        .as_(&admin)
        .body(json!({"target": {"user": "bob@example.org"}, "message": "locked out", "ttl": "1h"}))
        .expect(201)
        .await;
    let code = close_code(&mut socket).await;
    assert_eq!(code, Some(4005));
    wait_for_upstream_closes("relay", 2).await;
}

/// The connections of `session` as listed at `base`: (node, is_pid_alive) of each.
async fn proxied_connections(
    api: &Api,
    base: &str,
    admin: &str,
    session: &str,
) -> Vec<(String, bool)> {
    let listed = api
        .get(format!("{base}/rest/v1/master/logicalroles/ws/sessions"))
        .as_(admin)
        .expect(200)
        .await;
    let items = listed.body.as_array().cloned().unwrap_or_default();
    items
        .iter()
        .filter(|i| i["session_id"] == session)
        .filter_map(|i| i["connections"].as_array())
        .flatten()
        .map(|c| {
            (
                c["node"].as_str().unwrap_or_default().to_string(),
                c["is_pid_alive"] == true,
            )
        })
        .collect()
}

async fn wait_for_connections(
    api: &Api,
    base: &str,
    admin: &str,
    session: &str,
    within: Duration,
    wanted: impl Fn(&[(String, bool)]) -> bool,
) -> Vec<(String, bool)> {
    let deadline = std::time::Instant::now() + within;
    loop {
        let found = proxied_connections(api, base, admin, session).await;
        if wanted(&found) {
            return found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the session's connections stayed {found:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_proxied_websocket_on_node_2_is_killed_from_node_3_and_reaped_when_node_2_dies() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message;
    let Setup {
        mut site,
        api,
        base,
        admin,
        ..
    } = setup_nodes(3).await;
    let (n2, n3) = (site.nodes[1].api, site.api_url(2));
    for i in 1..3 {
        site.wait_for_admin(i).await;
    }
    let bob = api.login(&base, "example.org", "bob", BOB_PW).await;
    let token = bob.body["token"].as_str().expect("token").to_string();
    let session = bob.body["session_id"].as_str().expect("id").to_string();

    // Opened through node 2, listed from node 1 as node 2's and alive.
    let mut socket = open_proxied(n2, &token, "across").await;
    socket.send(Message::Text("hi".into())).await.expect("send");
    socket.next().await.expect("an echo").expect("ok");
    let listed = wait_for_connections(&api, &base, &admin, &session, WAIT, |c| c.len() == 1).await;
    let node_2 = format!("{}@{}", site.nodes[1].name, n2.ip());
    assert_eq!(listed, vec![(node_2, true)]);

    // An admin kill through node 3 closes it at the client (4001) and at the upstream (1001).
    api.delete(format!(
        "{n3}/rest/v1/master/logicalroles/ws/sessions/{session}"
    ))
    .as_(&admin)
    .expect(204)
    .await;
    assert_eq!(close_code(&mut socket).await, Some(4001));
    wait_for_upstream_closes("across", 1).await;

    // Node 2 killed with SIGKILL: its proxied socket is listed dead, then reaped.
    let bob = api.login(&base, "example.org", "bob", BOB_PW).await;
    let token = bob.body["token"].as_str().expect("token").to_string();
    let session = bob.body["session_id"].as_str().expect("id").to_string();
    let mut held = open_proxied(n2, &token, "orphaned").await;
    held.send(Message::Text("hi".into())).await.expect("send");
    held.next().await.expect("an echo").expect("ok");
    wait_for_connections(&api, &base, &admin, &session, WAIT, |c| c.len() == 1).await;
    site.kill(1);
    wait_for_connections(
        &api,
        &base,
        &admin,
        &session,
        Duration::from_secs(10),
        |c| c.len() == 1 && !c[0].1,
    )
    .await;
    wait_for_connections(
        &api,
        &base,
        &admin,
        &session,
        Duration::from_secs(30),
        |c| c.is_empty(),
    )
    .await;
    assert_eq!(
        api.get(format!("{base}/rest/v1/iam/sessions/current"))
            .as_(&token)
            .expect(200)
            .await
            .body["session_id"],
        session.as_str(),
        "the session outlives its dead node's socket"
    );
}

type ProxiedSocket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>;

/// A websocket to the echo upstream through the node's proxy, with `token`; `opened_by` goes
/// to the upstream as the query, which keeps it with the close code it gets.
async fn open_proxied(node: SocketAddr, token: &str, opened_by: &str) -> ProxiedSocket {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("ws://{node}/app/ws?{opened_by}")
        .into_client_request()
        .expect("request");
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    let (socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("the proxied websocket opens");
    socket
}

/// The code of the close frame the socket gets next (skipping other frames).
async fn close_code(socket: &mut ProxiedSocket) -> Option<u16> {
    use tokio_tungstenite::tungstenite::Message;
    loop {
        match tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("closed in time")
        {
            Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            _ => return None,
        }
    }
}

/// Waits until the upstream sockets opened by `opened_by` have been closed with 1001 `count`
/// times.
async fn wait_for_upstream_closes(opened_by: &str, count: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let closes: Vec<u16> = UPSTREAM_CLOSES
            .lock()
            .expect("closes")
            .iter()
            .filter(|(by, _)| by == opened_by)
            .map(|(_, code)| *code)
            .collect();
        if closes.iter().filter(|c| **c == 1001).count() >= count {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the upstream was closed with {closes:?}, not {count} times with 1001"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
