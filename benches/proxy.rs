//! The reverse proxy's cost per request, side by side in one run: a small GET (300 bytes of
//! body) to the same upstream application, 64 connections kept alive, through
//!
//! - (a) the node's own `[[proxy]]` route, with a session token (`Authorization: Bearer`);
//! - (b) nginx with `auth_request` asking the node's `GET /rest/v1/auth/verify`, then the
//!   upstream (keep-alive pools to both);
//! - (c) nginx straight to the upstream, no authentication (keep-alive pool);
//! - (d) the upstream itself.
//!
//! The node runs as its own process (`sessionplane serve`, a single-node site), the upstream as
//! another (this benchmark's binary started again with `--upstream`: an axum app), nginx from
//! Debian's package with a config written here (as many workers as cores, like the node's
//! runtime), and the load comes from Debian's `wrk`. Every configuration runs `--rounds` times,
//! interleaved (a, b, c, d, a, b, …), after one short warm-up each; the tables give the medians.
//! A run with a single non-2xx answer or socket error fails the benchmark. The same rounds are
//! then made with one connection (`wrk -t1 -c1`): the latency each hop adds when nothing queues.
//!
//! Everything shares the machine's cores: wrk, nginx, the node and the upstream compete for
//! them, as they would on one small host. So each run also reports the CPU time (user and
//! system, from /proc) the node, nginx (master and workers) and the upstream spent per request:
//! what each hop costs, less swayed than requests/s by what else the machine runs.
//!
//! Usage: `cargo bench --bench proxy [-- --rounds 5 --duration 10 --connections 64]`

mod common;

use common::Process;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use tokio::net::TcpStream;

const SECRET: &str = "bench-cluster-secret";
const TOKEN_KEY: &str = "bench-token-key";
const USER_PASSWORD: &str = "bench-user-password-1";
/// The upstream's answer: a few hundred bytes, as a small page fragment or JSON document is.
const BODY: &str = concat!(
    "{\"items\":[{\"id\":1,\"name\":\"alpha\",\"state\":\"ready\"},",
    "{\"id\":2,\"name\":\"beta\",\"state\":\"ready\"},{\"id\":3,\"name\":\"gamma\",",
    "\"state\":\"waiting\"},{\"id\":4,\"name\":\"delta\",\"state\":\"ready\"},",
    "{\"id\":5,\"name\":\"epsilon\",\"state\":\"done\"},{\"id\":6,\"name\":\"zeta\",",
    "\"state\":\"ready\"}],\"next\":null,\"generated\":\"2026-12-01T10:00:00Z\",",
    "\"padding\":\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789\"}",
);

async fn wait_for_port(port: u16, what: &str) {
    for _ in 0..200 {
        if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not listen on {port}");
}

/// The upstream application, in its own process: `GET /app/hello` answers [`BODY`],
/// `GET /app/whoami` the `X-Sessionplane-User` it was sent. Prints its port, then serves until
/// its standard input closes (the benchmark ended, however it ended).
async fn upstream_main() {
    use axum::http::HeaderMap;
    use axum::routing::get;
    let app = axum::Router::new()
        .route(
            "/app/hello",
            get(|| async { ([("content-type", "application/json")], BODY) }),
        )
        .route(
            "/app/whoami",
            get(|headers: HeaderMap| async move {
                headers
                    .get("x-sessionplane-user")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string()
            }),
        );
    common::serve_upstream(app).await;
}

fn start_upstream() -> (Process, u16) {
    let mut child = Command::new(std::env::current_exe().expect("this binary"))
        .arg("--upstream")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the upstream");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("the upstream's port");
    let port = line.trim().parse().expect("a port");
    (Process(child), port)
}

fn start_node(dir: &Path, app: u16) -> (Process, u16) {
    let (api, cluster) = (common::free_port(), common::free_port());
    let config = dir.join("node.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\ncluster_secret = \"{SECRET}\"\n[listen]\napi = \"127.0.0.1:{api}\"\n\
             cluster = \"127.0.0.1:{cluster}\"\n[iam]\ntoken_key = \"{TOKEN_KEY}\"\n\
             [mail]\nenabled = false\n[limits]\napi_max_connections_per_source = 4096\n\
             [[proxy]]\nprefix = \"/app/\"\nupstream = \"http://127.0.0.1:{app}\"\n\
             unauthenticated = \"401\"\n",
            dir.join("data").display()
        ),
    )
    .expect("config");
    let child = common::spawn_node(&config);
    (Process(child), api)
}

/// nginx with two servers: `auth` asks the node's forward auth before each request, `plain`
/// does not; both keep connections alive to their upstreams.
fn start_nginx(dir: &Path, node: u16, app: u16, auth: u16, plain: u16) -> Process {
    let d = dir.display();
    let keepalive = "proxy_http_version 1.1;\n      proxy_set_header Connection \"\";";
    let conf = format!(
        "user root;\nworker_processes auto;\npid {d}/nginx.pid;\n\
         events {{ worker_connections 4096; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
         upstream app {{ server 127.0.0.1:{app}; keepalive 64; }}\n\
         upstream verify {{ server 127.0.0.1:{node}; keepalive 64; }}\n\
         server {{\n    listen 127.0.0.1:{auth};\n\
           location = /_verify {{\n      internal;\n      proxy_pass http://verify/rest/v1/auth/verify;\n\
             {keepalive}\n      proxy_pass_request_body off;\n      proxy_set_header Content-Length \"\";\n    }}\n\
           location / {{\n      auth_request /_verify;\n\
             auth_request_set $sp_user $upstream_http_x_sessionplane_user;\n\
             auth_request_set $sp_user_id $upstream_http_x_sessionplane_user_id;\n\
             auth_request_set $sp_session $upstream_http_x_sessionplane_session;\n\
             auth_request_set $sp_site $upstream_http_x_sessionplane_site;\n\
             {keepalive}\n\
             proxy_set_header Authorization \"\";\n\
             proxy_set_header X-Sessionplane-User $sp_user;\n\
             proxy_set_header X-Sessionplane-User-Id $sp_user_id;\n\
             proxy_set_header X-Sessionplane-Session $sp_session;\n\
             proxy_set_header X-Sessionplane-Site $sp_site;\n\
             proxy_set_header X-Forwarded-For $remote_addr;\n\
             proxy_pass http://app;\n    }}\n  }}\n\
         server {{\n    listen 127.0.0.1:{plain};\n\
           location / {{\n      {keepalive}\n      proxy_pass http://app;\n    }}\n  }}\n}}\n"
    );
    let conf_file = dir.join("nginx.conf");
    std::fs::write(&conf_file, conf).expect("write nginx.conf");
    let child = Command::new("nginx")
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&conf_file)
        .arg("-e")
        .arg(dir.join("error.log"))
        .args(["-g", "daemon off;"])
        .stdout(Stdio::null())
        .spawn()
        .expect("nginx runs (scripts/test installs Debian's nginx)");
    Process(child)
}

struct Target {
    name: &'static str,
    url: String,
    token: bool,
}

/// What one wrk run measured, and the CPU time each server process spent per request in it
/// (µs: the node, nginx's master and workers, the upstream).
#[derive(Clone, Copy)]
struct Run {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    requests: u64,
    cpu_us: [f64; 3],
}

/// The processes whose CPU time is counted: the node, nginx's master, the upstream.
struct Servers {
    pids: [u32; 3],
    /// Clock ticks per second, as /proc/<pid>/stat counts them.
    ticks: f64,
}

impl Servers {
    /// User and system CPU time (s) of `pid` and of its children that run now.
    fn cpu_of(&self, pid: u32) -> f64 {
        let stat = |pid: &str| -> Option<(u32, u64)> {
            let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // After the command's closing parenthesis: state, ppid, …; utime and stime are
            // the 12th and 13th fields from there.
            let fields: Vec<&str> = text.rsplit_once(')')?.1.split_whitespace().collect();
            let ppid = fields.get(1)?.parse().ok()?;
            let time =
                fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
            Some((ppid, time))
        };
        let own = stat(&pid.to_string()).map_or(0, |(_, t)| t);
        let children: u64 = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|name| name.bytes().all(|b| b.is_ascii_digit()))
            .filter_map(|name| stat(&name))
            .filter(|(ppid, _)| *ppid == pid)
            .map(|(_, t)| t)
            .sum();
        (own + children) as f64 / self.ticks
    }

    fn cpu(&self) -> [f64; 3] {
        self.pids.map(|pid| self.cpu_of(pid))
    }
}

/// A latency as wrk prints it (`291.00us`, `1.38ms`, `1.02s`), in milliseconds.
fn wrk_ms(text: &str) -> f64 {
    let (number, scale) = if let Some(n) = text.strip_suffix("us") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1e3)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60e3)
    } else {
        panic!("a latency wrk printed: {text:?}")
    };
    number.parse::<f64>().expect("a number") * scale
}

/// Runs wrk against `target`; panics unless every answer was a 2xx with no socket error.
fn wrk(target: &Target, token: &str, threads: u64, connections: u64, seconds: u64) -> Run {
    let mut command = Command::new("wrk");
    command.args([
        format!("-t{threads}"),
        format!("-c{connections}"),
        format!("-d{seconds}s"),
        "--latency".into(),
    ]);
    if target.token {
        command.args(["-H", &format!("Authorization: Bearer {token}")]);
    }
    let output = command
        .arg(&target.url)
        .output()
        .expect("wrk runs (scripts/test installs Debian's wrk)");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "wrk failed on {}: {text}",
        target.name
    );
    // wrk counts statuses of 400 and above (and socket errors); no path here answers a 3xx:
    // the route answers 401 rather than sending to the login page, and so does nginx.
    for bad in ["Non-2xx or 3xx responses", "Socket errors"] {
        assert!(
            !text.contains(bad),
            "{}: not every answer was a 200:\n{text}",
            target.name
        );
    }
    let field = |prefix: &str| -> String {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} in wrk's output:\n{text}"))
            .trim()
            .to_string()
    };
    let requests: u64 = text
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .map(|(n, _)| n.trim().parse().expect("a count"))
        .unwrap_or_else(|| panic!("no request count in wrk's output:\n{text}"));
    assert!(
        requests > 0,
        "{}: no request completed:\n{text}",
        target.name
    );
    Run {
        rps: field("Requests/sec:").parse().expect("requests/s"),
        p50_ms: wrk_ms(&field("50%")),
        p99_ms: wrk_ms(&field("99%")),
        requests,
        cpu_us: [0.0; 3],
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// One answer through `target`: its status and body.
async fn fetch(http: &reqwest::Client, target: &Target, path: &str, token: &str) -> (u16, String) {
    let url = target.url.replace("/app/hello", path);
    let mut request = http.get(url);
    if target.token {
        request = request.bearer_auth(token);
    }
    let answer = request.send().await.expect("a request");
    let status = answer.status().as_u16();
    (status, answer.text().await.expect("a body"))
}

/// Rounds of every target interleaved: each target's runs.
fn measure(
    targets: &[Target],
    servers: &Servers,
    token: &str,
    rounds: u64,
    (threads, connections, seconds): (u64, u64, u64),
) -> Vec<Vec<Run>> {
    let mut runs = vec![Vec::new(); targets.len()];
    for round in 0..rounds {
        for (k, target) in targets.iter().enumerate() {
            let before = servers.cpu();
            let mut run = wrk(target, token, threads, connections, seconds);
            let after = servers.cpu();
            for i in 0..3 {
                run.cpu_us[i] = (after[i] - before[i]) * 1e6 / run.requests as f64;
            }
            eprintln!(
                "  round {} {:<28} {:>9.0} req/s  p50 {:.3} ms  p99 {:.3} ms  CPU µs/request: \
                 node {:.1}, nginx {:.1}, upstream {:.1}",
                round + 1,
                target.name,
                run.rps,
                run.p50_ms,
                run.p99_ms,
                run.cpu_us[0],
                run.cpu_us[1],
                run.cpu_us[2]
            );
            runs[k].push(run);
        }
    }
    runs
}

/// The table of medians, then the three comparisons and their goals.
fn report(targets: &[Target], runs: &[Vec<Run>], connections: u64, seconds: u64) {
    let medians: Vec<Run> = runs
        .iter()
        .map(|r| Run {
            rps: median(r.iter().map(|x| x.rps).collect()),
            p50_ms: median(r.iter().map(|x| x.p50_ms).collect()),
            p99_ms: median(r.iter().map(|x| x.p99_ms).collect()),
            requests: r.iter().map(|x| x.requests).sum(),
            cpu_us: [0, 1, 2].map(|i| median(r.iter().map(|x| x.cpu_us[i]).collect())),
        })
        .collect();
    println!(
        "\n{connections} connections, {} runs of {seconds} s each, medians (range of requests/s):",
        runs[0].len()
    );
    println!(
        "| path | requests/s | p50 ms | p99 ms | CPU µs per request: node | nginx | upstream |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for ((target, m), r) in targets.iter().zip(&medians).zip(runs) {
        let low = r.iter().map(|x| x.rps).fold(f64::INFINITY, f64::min);
        let high = r.iter().map(|x| x.rps).fold(0.0, f64::max);
        println!(
            "| {} | {:.0} ({low:.0} – {high:.0}) | {:.3} | {:.3} | {:.1} | {:.1} | {:.1} |",
            target.name, m.rps, m.p50_ms, m.p99_ms, m.cpu_us[0], m.cpu_us[1], m.cpu_us[2]
        );
    }
    let (a, b, c, d) = (medians[0], medians[1], medians[2], medians[3]);
    let verdict = |met: bool| if met { "met" } else { "NOT met" };
    let ab = a.rps / b.rps;
    let ac = a.rps / c.rps;
    let added = a.p50_ms - d.p50_ms;
    println!(
        "(a)/(b) requests/s: {ab:.2} (goal ≥ 2: {})",
        verdict(ab >= 2.0)
    );
    println!(
        "(a)/(c) requests/s: {ac:.2} (goal ≥ 0.7: {})",
        verdict(ac >= 0.7)
    );
    println!(
        "p50 (a) − (d): {added:.3} ms (goal ≤ 0.3 ms: {})",
        verdict(added <= 0.3)
    );
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--upstream") {
        return upstream_main().await;
    }
    let rounds = common::arg("--rounds", 5);
    let seconds = common::arg("--duration", 10);
    let connections = common::arg("--connections", 64);
    let dir = tempfile::tempdir().expect("temp dir");
    let (upstream, app) = start_upstream();
    let (node, api) = start_node(dir.path(), app);
    let base = format!("http://127.0.0.1:{api}");
    let http = reqwest::Client::new();
    let admin = common::admin_login(&http, &base).await;
    let admin = admin["token"].as_str().expect("token");
    for (method, path, body) in [
        (reqwest::Method::PUT, "/domains/example.org", None),
        (
            reqwest::Method::PUT,
            "/users/bob@example.org",
            Some(serde_json::json!({"password": USER_PASSWORD})),
        ),
    ] {
        let mut request = http
            .request(method, format!("{base}{path}"))
            .bearer_auth(admin);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = request.send().await.expect("sent");
        assert!(answer.status().is_success(), "{path}: {}", answer.status());
    }
    let login: serde_json::Value = http
        .post(format!("{base}/rest/v1/iam/sessions"))
        .json(&serde_json::json!({"domain": "example.org", "login": "bob",
            "pwd": USER_PASSWORD, "session_type": "token"}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("login answer");
    let token = login["token"].as_str().expect("bob's token").to_string();

    let nginx_dir = tempfile::tempdir().expect("temp dir");
    let (auth, plain) = (common::free_port(), common::free_port());
    let nginx = start_nginx(nginx_dir.path(), api, app, auth, plain);
    wait_for_port(auth, "nginx").await;
    wait_for_port(plain, "nginx").await;

    let targets = [
        Target {
            name: "(a) sessionplane proxy",
            url: format!("{base}/app/hello"),
            token: true,
        },
        Target {
            name: "(b) nginx auth_request",
            url: format!("http://127.0.0.1:{auth}/app/hello"),
            token: true,
        },
        Target {
            name: "(c) nginx, no auth",
            url: format!("http://127.0.0.1:{plain}/app/hello"),
            token: false,
        },
        Target {
            name: "(d) upstream direct",
            url: format!("http://127.0.0.1:{app}/app/hello"),
            token: false,
        },
    ];
    // Each path answers the body, and the authenticated ones tell the upstream who calls.
    for (k, target) in targets.iter().enumerate() {
        let (status, body) = fetch(&http, target, "/app/hello", &token).await;
        assert_eq!((status, body.as_str()), (200, BODY), "{}", target.name);
        let (_, who) = fetch(&http, target, "/app/whoami", &token).await;
        let expected = if k < 2 { "bob@example.org" } else { "" };
        assert_eq!(who, expected, "{}: the upstream was told", target.name);
        if target.token {
            let anonymous = Target {
                name: target.name,
                url: target.url.clone(),
                token: false,
            };
            let (status, _) = fetch(&http, &anonymous, "/app/hello", &token).await;
            assert_eq!(status, 401, "{} without a token", target.name);
        }
    }
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_default();
    println!(
        "proxy: a {}-byte GET, {} cores ({cpu}), load before: {}",
        BODY.len(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );

    eprintln!("warm-up");
    let ticks = Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0);
    let servers = Servers {
        pids: [node.0.id(), nginx.0.id(), upstream.0.id()],
        ticks,
    };
    measure(&targets, &servers, &token, 1, (2, connections, 2));
    eprintln!("{connections} connections");
    let loaded = measure(
        &targets,
        &servers,
        &token,
        rounds,
        (2, connections, seconds),
    );
    eprintln!("1 connection");
    let single = measure(
        &targets,
        &servers,
        &token,
        rounds,
        (1, 1, seconds.div_ceil(2)),
    );
    report(&targets, &loaded, connections, seconds);
    report(&targets, &single, 1, seconds.div_ceil(2));
    println!(
        "load after: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
}
