//! IMAP through sessionplane to a real Dovecot, side by side with nginx's mail proxy and with
//! Dovecot direct, and the node holding thousands of relayed channels.
//!
//! Against one Dovecot (Debian's, started by the benchmark with a config of its own): **(a)**
//! the node's IMAP listener relaying to it (`[mail.upstream]`, master login), **(b)** nginx's
//! mail proxy (Debian's `libnginx-mod-mail`) with an `auth_http` responder in this process that
//! lets every login in and names Dovecot and the master login (so both proxies log in to
//! Dovecot the same way), **(c)** Dovecot direct (master login). Two workloads, 64 clients:
//! `login`: connect, LOGIN, SELECT INBOX, FETCH the 100 KiB message, LOGOUT, again; `fetch`:
//! one connection each, logged in once, FETCH the message again and again.
//! Then `--channels` relayed channels held at once (two sockets each in the node): the node's
//! memory per channel, and how long `DELETE /servers/channels` takes to close them all.
//!
//! The node checks passwords with cheap argon2 parameters (the benchmark measures the relay,
//! not the hash), stated in the output.
//! Usage: `cargo bench --bench mail_upstream [-- --duration 8 --rounds 3 --channels 8000]`

mod common;

#[allow(dead_code)]
#[path = "../tests/it/common/mail_servers.rs"]
mod mail_servers;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};

use mail_servers::{Dovecot, ALICE, MASTER_USER};

const MASTER_PW: &str = "bench-master-password";
const CLIENTS: usize = 64;
const MESSAGE_BYTES: usize = 100 * 1024;

/// Dovecot for thousands of connections of one user from one address: high-performance login
/// processes, many clients per imap process.
const DOVECOT_TUNING: &str = "mail_max_userip_connections = 100000\n\
default_client_limit = 20000\n\
service imap-login {\n  service_count = 0\n  client_limit = 10000\n  process_min_avail = 2\n  process_limit = 4\n}\n\
service imap {\n  service_count = 0\n  client_limit = 1000\n  process_limit = 64\n}\n\
service anvil {\n  client_limit = 20000\n}\n";

/// An IMAP client that reads answers as far as their tagged end, literals included.
struct Client {
    stream: BufReader<TcpStream>,
    tag: u64,
}

impl Client {
    async fn connect(to: SocketAddr, from: usize) -> Self {
        let source = format!("127.0.{}.{}:0", 1 + from / 200 % 200, 2 + (from % 200))
            .parse()
            .expect("address");
        let socket = TcpSocket::new_v4().expect("socket");
        socket.bind(source).expect("bind");
        let stream = socket.connect(to).await.expect("connect");
        let _ = stream.set_nodelay(true);
        let mut client = Self {
            stream: BufReader::with_capacity(16 * 1024, stream),
            tag: 0,
        };
        let mut greeting = String::new();
        client
            .stream
            .read_line(&mut greeting)
            .await
            .expect("greeting");
        assert!(greeting.starts_with("* OK"), "{greeting}");
        client
    }

    /// Sends `command`, reads to its tagged answer: the bytes of the literals on the way.
    async fn command(&mut self, command: &str) -> usize {
        self.tag += 1;
        let tag = format!("t{}", self.tag);
        let line = format!("{tag} {command}\r\n");
        self.stream
            .get_mut()
            .write_all(line.as_bytes())
            .await
            .expect("send");
        let mut literals = 0;
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = self
                .stream
                .read_until(b'\n', &mut line)
                .await
                .expect("read");
            assert!(n > 0, "the server closed during {command}");
            if let Some(size) = literal(&line) {
                let mut skip = vec![0u8; size];
                self.stream.read_exact(&mut skip).await.expect("literal");
                literals += size;
                continue;
            }
            if line.starts_with(tag.as_bytes()) && line.get(tag.len()) == Some(&b' ') {
                let text = String::from_utf8_lossy(&line);
                assert!(
                    text[tag.len()..].trim_start().starts_with("OK"),
                    "{command}: {text}"
                );
                return literals;
            }
        }
    }
}

fn literal(line: &[u8]) -> Option<usize> {
    let line = line.strip_suffix(b"\r\n")?.strip_suffix(b"}")?;
    let open = line.iter().rposition(|b| *b == b'{')?;
    std::str::from_utf8(&line[open + 1..]).ok()?.parse().ok()
}

/// One way to Dovecot: where to connect and how to log in.
#[derive(Clone)]
struct Path {
    name: &'static str,
    address: SocketAddr,
    login: String,
}

async fn session(path: &Path, from: usize) -> usize {
    let mut client = Client::connect(path.address, from).await;
    client.command(&path.login).await;
    client.command("SELECT INBOX").await;
    let fetched = client.command("FETCH 1 BODY.PEEK[]").await;
    assert_eq!(fetched, MESSAGE_BYTES, "the whole message");
    client.command("LOGOUT").await;
    fetched
}

/// What the workers did in all, per second since `started`.
async fn per_second(
    workers: impl Iterator<Item = tokio::task::JoinHandle<u64>>,
    started: Instant,
) -> f64 {
    let done: u64 = futures_util::future::join_all(workers)
        .await
        .into_iter()
        .map(|r| r.expect("worker"))
        .sum();
    done as f64 / started.elapsed().as_secs_f64()
}

/// Sessions per second, `CLIENTS` at once, for `duration`.
async fn login_load(path: &Path, duration: Duration) -> f64 {
    let started = Instant::now();
    let workers = (0..CLIENTS).map(|i| {
        let path = path.clone();
        tokio::spawn(async move {
            let mut done = 0u64;
            while started.elapsed() < duration {
                session(&path, i).await;
                done += 1;
            }
            done
        })
    });
    per_second(workers, started).await
}

/// FETCHes per second on `CLIENTS` open connections, for `duration`.
async fn fetch_load(path: &Path, duration: Duration) -> f64 {
    let mut clients = Vec::new();
    for i in 0..CLIENTS {
        let mut client = Client::connect(path.address, i).await;
        client.command(&path.login).await;
        client.command("SELECT INBOX").await;
        clients.push(client);
    }
    let started = Instant::now();
    let workers = clients.into_iter().map(|mut client| {
        tokio::spawn(async move {
            let mut done = 0u64;
            while started.elapsed() < duration {
                client.command("FETCH 1 BODY.PEEK[]").await;
                done += 1;
            }
            client.command("LOGOUT").await;
            done
        })
    });
    per_second(workers, started).await
}

fn node_config(dir: &std::path::Path, dovecot: u16) -> (std::path::PathBuf, u16, u16) {
    let (api, cluster, imap) = (
        common::free_port(),
        common::free_port(),
        common::free_port(),
    );
    let secret = dir.join("master.secret");
    std::fs::write(&secret, MASTER_PW).expect("secret");
    let config = dir.join("node.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"{}\"\ncluster_secret = \"bench-cluster-secret\"\n\
             [listen]\napi = \"127.0.0.1:{api}\"\ncluster = \"127.0.0.1:{cluster}\"\n\
             imap = \"127.0.0.1:{imap}\"\nimaps = \"127.0.0.1:{}\"\nsmtp = \"127.0.0.1:{}\"\nsmtps = \"127.0.0.1:{}\"\n\
             [mail]\nallow_plaintext_auth = true\nmax_connections = 18000\n\
             [mail.upstream]\nimap = \"127.0.0.1:{dovecot}\"\nimap_tls = \"none\"\n\
             master_user = \"{MASTER_USER}\"\nmaster_secret_file = \"{}\"\n\
             [limits]\nreserved_fds = 256\napi_max_connections = 1024\ncluster_max_connections = 256\n\
             mail_max_connections_per_source = 18000\n\
             [iam]\ntoken_key = \"bench-token-key\"\nmax_login_failures = 1000000\n\
             [iam.argon2]\nmemory_kib = 64\niterations = 1\nparallelism = 1\n",
            dir.join("data").display(),
            common::free_port(),
            common::free_port(),
            common::free_port(),
            secret.display(),
        ),
    )
    .expect("config");
    (config, api, imap)
}

/// nginx's mail proxy on `port`, asking the responder on `auth` for every login.
fn start_nginx(dir: &std::path::Path, port: u16, auth: u16) -> common::Process {
    let d = dir.display();
    let conf = format!(
        "load_module /usr/lib/nginx/modules/ngx_mail_module.so;\n\
         daemon off;\nworker_processes auto;\nworker_rlimit_nofile 20000;\n\
         error_log {d}/nginx-error.log warn;\npid {d}/nginx.pid;\n\
         events {{ worker_connections 20000; }}\n\
         mail {{\n  server_name bench;\n  auth_http 127.0.0.1:{auth}/auth;\n\
           imap_capabilities IMAP4rev1 IDLE LITERAL+;\n\
           server {{ listen 127.0.0.1:{port}; protocol imap; proxy on; }}\n}}\n"
    );
    let file = dir.join("nginx.conf");
    std::fs::write(&file, conf).expect("nginx.conf");
    let child = std::process::Command::new("nginx")
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&file)
        .arg("-e")
        .arg(dir.join("nginx-error.log"))
        .spawn()
        .expect("nginx runs (scripts/test installs Debian's nginx and libnginx-mod-mail)");
    common::Process(child)
}

/// nginx's auth_http: every login in, to Dovecot, as the master user on the user's behalf.
async fn serve_auth_http(dovecot: u16) -> u16 {
    use axum::http::HeaderMap;
    use axum::response::IntoResponse;
    let answer = move |headers: HeaderMap| async move {
        let user = headers
            .get("auth-user")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        [
            ("Auth-Status", "OK".to_string()),
            ("Auth-Server", "127.0.0.1".to_string()),
            ("Auth-Port", dovecot.to_string()),
            ("Auth-User", format!("{user}*{MASTER_USER}")),
            ("Auth-Pass", MASTER_PW.to_string()),
        ]
        .into_response()
    };
    let app = axum::Router::new().route("/auth", axum::routing::get(answer));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

async fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn message() -> Vec<u8> {
    let mut text =
        b"From: carol@example.test\r\nTo: alice@example.test\r\nSubject: bench\r\n\r\n".to_vec();
    while text.len() < MESSAGE_BYTES - 80 {
        text.extend_from_slice(
            b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n",
        );
    }
    text.resize(MESSAGE_BYTES - 2, b'x');
    text.extend_from_slice(b"\r\n");
    text
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    let middle = values.len() / 2;
    match values.len() % 2 {
        1 => values[middle],
        _ => (values[middle - 1] + values[middle]) / 2.0,
    }
}

#[tokio::main]
async fn main() {
    let duration = Duration::from_secs(common::arg("--duration", 8));
    let rounds = common::arg("--rounds", 3) as usize;
    let channels = common::arg("--channels", 8000) as usize;
    let dir = tempfile::tempdir().expect("temp dir");

    let (dovecot_imap, dovecot_imaps) = (common::free_port(), common::free_port());
    let dovecot = Dovecot::start_with(dovecot_imap, dovecot_imaps, MASTER_PW, DOVECOT_TUNING);
    dovecot.deliver(ALICE, &message());

    let (config, api, node_imap) = node_config(dir.path(), dovecot_imap);
    let node = common::Process(common::spawn_node(&config));
    let base = format!("http://127.0.0.1:{api}");
    let http = reqwest::Client::new();
    let admin = common::admin_login(&http, &base).await;
    let token = admin["token"].as_str().expect("token").to_string();
    for (url, body) in [
        (format!("{base}/domains/example.test"), None),
        (
            format!("{base}/users/{ALICE}"),
            Some(serde_json::json!({"password": "bench-user-password"})),
        ),
    ] {
        let mut request = http.put(url).bearer_auth(&token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let answer = request.send().await.expect("put");
        assert!(answer.status().is_success(), "{}", answer.status());
    }
    wait_listening(node_imap).await;

    let auth = serve_auth_http(dovecot_imap).await;
    let nginx_port = common::free_port();
    let _nginx = start_nginx(dir.path(), nginx_port, auth);
    wait_listening(nginx_port).await;

    let at = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
    let master_login = format!("LOGIN {ALICE}*{MASTER_USER} {MASTER_PW}");
    let paths = [
        Path {
            name: "(a) sessionplane relay",
            address: at(node_imap),
            login: format!("LOGIN {ALICE} bench-user-password"),
        },
        Path {
            name: "(b) nginx mail proxy",
            address: at(nginx_port),
            login: format!("LOGIN {ALICE} any-password"),
        },
        Path {
            name: "(c) Dovecot direct",
            address: at(dovecot_imap),
            login: master_login,
        },
    ];
    for path in &paths {
        session(path, 0).await;
    }
    println!(
        "Dovecot {} with one 100 KiB message; {CLIENTS} clients; {rounds} rounds of {} s, the paths interleaved",
        dovecot_version(),
        duration.as_secs()
    );
    let mut logins = vec![Vec::new(); paths.len()];
    let mut fetches = vec![Vec::new(); paths.len()];
    for round in 0..rounds {
        for (i, path) in paths.iter().enumerate() {
            let rate = login_load(path, duration).await;
            println!(
                "  round {} {:24} login+SELECT+FETCH {:8.0}/s",
                round + 1,
                path.name,
                rate
            );
            logins[i].push(rate);
            let rate = fetch_load(path, duration).await;
            println!(
                "  round {} {:24} FETCH            {:8.0}/s",
                round + 1,
                path.name,
                rate
            );
            fetches[i].push(rate);
        }
    }
    let logins: Vec<f64> = logins.into_iter().map(median).collect();
    let fetches: Vec<f64> = fetches.into_iter().map(median).collect();
    println!("| path | sessions/s (login, SELECT, FETCH 100 KiB, LOGOUT) | FETCH 100 KiB/s on open connections | MiB/s |");
    println!("|---|---:|---:|---:|");
    for (i, path) in paths.iter().enumerate() {
        println!(
            "| {} | {:.0} | {:.0} | {:.0} |",
            path.name,
            logins[i],
            fetches[i],
            fetches[i] * MESSAGE_BYTES as f64 / 1048576.0
        );
    }
    let verdict = |ok: bool| if ok { "met" } else { "NOT met" };
    let ratio = fetches[0] / fetches[2];
    println!(
        "(a)/(c) FETCH: {ratio:.2} (goal ≥ 0.9: {})",
        verdict(ratio >= 0.9)
    );
    let ratio = fetches[0] / fetches[1];
    println!(
        "(a)/(b) FETCH: {ratio:.2} (goal ≥ 1.0: {})",
        verdict(ratio >= 1.0)
    );
    let ratio = logins[0] / logins[1];
    println!(
        "(a)/(b) sessions: {ratio:.2} (goal ≥ 1.0: {})",
        verdict(ratio >= 1.0)
    );

    hold_channels(&http, &base, &token, node_imap, node.0.id(), channels).await;
    drop(node);
}

/// `channels` relayed channels at once: the node's memory per channel, and the close of all.
async fn hold_channels(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    imap: u16,
    pid: u32,
    channels: usize,
) {
    let idle_rss = common::rss_of(pid);
    let started = Instant::now();
    let address = SocketAddr::from(([127, 0, 0, 1], imap));
    let mut clients = futures_util::stream::iter(0..channels)
        .map(|i| async move {
            let mut client = Client::connect(address, i).await;
            client
                .command(&format!("LOGIN {ALICE} bench-user-password"))
                .await;
            client
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await;
    let opened_in = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let held_rss = common::rss_of(pid);

    let started = Instant::now();
    let answer = http
        .delete(format!("{base}/servers/channels"))
        .bearer_auth(token)
        .send()
        .await
        .expect("delete");
    assert_eq!(answer.status().as_u16(), 204);
    let answered = started.elapsed();
    let closes = clients.iter_mut().map(|client| async move {
        let mut line = Vec::new();
        let mut bye = false;
        loop {
            line.clear();
            match client.stream.read_until(b'\n', &mut line).await {
                Ok(0) | Err(_) => return bye,
                Ok(_) => bye |= line.starts_with(b"* BYE"),
            }
        }
    });
    let byes = futures_util::future::join_all(closes).await;
    let all_closed = started.elapsed();
    let said_bye = byes.iter().filter(|b| **b).count();
    let per_channel = held_rss.saturating_sub(idle_rss) / channels.max(1) as u64;
    println!(
        "{channels} relayed IMAP channels (plain LOGIN, argon2 m=64 KiB t=1 for the benchmark), opened in {:.1} s",
        opened_in.as_secs_f64()
    );
    println!("| node RSS idle MiB | holding them MiB | per channel KiB | DELETE answered ms | all closed ms | told BYE |");
    println!("|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {} | {:.1} | {} | {} | {said_bye} |",
        idle_rss / 1048576,
        held_rss / 1048576,
        per_channel as f64 / 1024.0,
        common::ms(answered),
        common::ms(all_closed)
    );
    let ok = |b: bool| if b { "met" } else { "NOT met" };
    println!(
        "memory per channel ≤ 32 KiB: {}; all closed within 1 s: {}",
        ok(per_channel <= 32 * 1024),
        ok(all_closed <= Duration::from_secs(1))
    );
}

fn dovecot_version() -> String {
    std::process::Command::new("dovecot")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}
