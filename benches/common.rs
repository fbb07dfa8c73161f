//! Shared by the benchmarks: starting a local site in this process, and percentiles.
#![allow(dead_code)]

use std::time::Duration;

use sessionplane::testing::{start, Listeners, RunningNode};
use sessionplane::testing::{Config, IamSettings, Listen, Secret, SiteNode};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use sessionplane::testing::NewSession;
use tokio::net::TcpListener;
use uuid::Uuid;

pub const ADMIN_PASSWORD: &str = "bench-admin-password";

/// Starts `n` nodes of site `local` on 127.0.0.1 with real sockets between them and waits until
/// every node votes.
pub async fn start_site(n: u64, data: &std::path::Path) -> Vec<RunningNode> {
    start_site_with(n, data, |_| {}).await
}

/// As [`start_site`], each node's config changed by `tweak` first.
pub async fn start_site_with(
    n: u64,
    data: &std::path::Path,
    tweak: impl Fn(&mut Config),
) -> Vec<RunningNode> {
    let mut bound = Vec::new();
    for _ in 0..n {
        let api = TcpListener::bind("127.0.0.1:0").await.expect("bind api");
        let cluster = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind cluster");
        bound.push(Listeners {
            api,
            cluster,
            mail: Default::default(),
        });
    }
    let site_nodes: Vec<SiteNode> = bound
        .iter()
        .enumerate()
        .map(|(k, l)| SiteNode {
            id: k as u64 + 1,
            name: format!("n{}", k + 1),
            cluster: l.cluster.local_addr().expect("addr").to_string(),
            api: None,
        })
        .collect();
    let mut nodes = Vec::new();
    for (k, listeners) in bound.into_iter().enumerate() {
        let mut config = Config {
            node_id: k as u64 + 1,
            node_name: format!("n{}", k + 1),
            data_dir: data.join(format!("n{}", k + 1)),
            cluster_secret: "bench-secret".into(),
            iam: IamSettings {
                token_key: "bench-token-key".into(),
                ..IamSettings::default()
            },
            listen: Listen {
                api: listeners.api.local_addr().expect("addr"),
                cluster: listeners.cluster.local_addr().expect("addr"),
                ..Listen::default()
            },
            mail: sessionplane::testing::MailConfig {
                enabled: false,
                ..Default::default()
            },
            site_nodes: site_nodes.clone(),
            initial_admin_password: Some(Secret(ADMIN_PASSWORD.into())),
            ..Config::default()
        };
        tweak(&mut config);
        nodes.push(start(config, listeners).await.expect("start node"));
    }
    for node in &nodes {
        let formed = node
            .site
            .group()
            .wait_until(Duration::from_secs(30), "formed", |m| {
                m.current_leader.is_some()
                    && m.membership_config.membership().voter_ids().count() == n as usize
            })
            .await;
        assert!(formed, "site did not form");
    }
    nodes
}

/// Starts one node per site of `sites`, in this process on 127.0.0.1, each site's node knowing
/// the others' (federation), the directory voted by all of them; waits until every site and
/// the directory have a leader.
pub async fn start_sites(sites: &[&str], data: &std::path::Path) -> Vec<RunningNode> {
    use sessionplane::testing::{DirectorySettings, RemoteSite};
    let mut bound = Vec::new();
    for _ in sites {
        let api = TcpListener::bind("127.0.0.1:0").await.expect("bind api");
        let cluster = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind cluster");
        bound.push(Listeners {
            api,
            cluster,
            mail: Default::default(),
        });
    }
    let described: Vec<SiteNode> = bound
        .iter()
        .enumerate()
        .map(|(k, l)| SiteNode {
            id: k as u64 + 1,
            name: format!("{}1", sites[k]),
            cluster: l.cluster.local_addr().expect("addr").to_string(),
            api: Some(format!("http://{}", l.api.local_addr().expect("addr"))),
        })
        .collect();
    let mut nodes = Vec::new();
    for (k, listeners) in bound.into_iter().enumerate() {
        let others = (0..sites.len())
            .filter(|j| *j != k)
            .map(|j| RemoteSite {
                name: sites[j].to_string(),
                nodes: vec![described[j].clone()],
            })
            .collect();
        let config = Config {
            node_id: k as u64 + 1,
            node_name: described[k].name.clone(),
            site: sites[k].to_string(),
            data_dir: data.join(&described[k].name),
            cluster_secret: "bench-secret".into(),
            iam: IamSettings {
                token_key: "bench-token-key".into(),
                ..IamSettings::default()
            },
            listen: Listen {
                api: listeners.api.local_addr().expect("addr"),
                cluster: listeners.cluster.local_addr().expect("addr"),
                ..Listen::default()
            },
            mail: sessionplane::testing::MailConfig {
                enabled: false,
                ..Default::default()
            },
            site_nodes: vec![described[k].clone()],
            sites: others,
            directory: DirectorySettings {
                voters: described.iter().map(|n| n.id).collect(),
            },
            initial_admin_password: Some(Secret(ADMIN_PASSWORD.into())),
            ..Config::default()
        };
        nodes.push(start(config, listeners).await.expect("start node"));
    }
    for node in &nodes {
        assert!(
            node.wait_for_leader(Duration::from_secs(30)).await,
            "a site did not elect a leader"
        );
    }
    nodes
}

/// The value below which `p` (0..=1) of the sorted samples fall.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// A markdown row `| what | p50 | p90 | p99 |` of `times` (sorted here), each in `scale` units per
/// second (1e3: ms, 1e6: µs) with `decimals` digits.
pub fn quantile_row(what: &str, times: &mut [Duration], scale: f64, decimals: usize) -> String {
    times.sort();
    let [p50, p90, p99] = [0.5, 0.9, 0.99].map(|q| percentile(times, q).as_secs_f64() * scale);
    format!("| {what} | {p50:.decimals$} | {p90:.decimals$} | {p99:.decimals$} |")
}

pub fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// Resident memory of this process, in bytes (Linux).
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

/// Logs the first administrator in through `base` (retrying until the bootstrap has run) and
/// returns the login answer.
pub async fn admin_login(http: &reqwest::Client, base: &str) -> serde_json::Value {
    let body = serde_json::json!({"domain": "master.domain", "login": "admin",
        "pwd": ADMIN_PASSWORD, "session_type": "token"});
    for _ in 0..600 {
        let answer = http
            .post(format!("{base}/rest/v1/iam/sessions"))
            .json(&body)
            .send()
            .await;
        if let Ok(answer) = answer {
            if answer.status().is_success() {
                return answer.json().await.expect("login answer");
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the administrator could not log in");
}

/// The number after `name` on the command line, or `default`.
pub fn arg(name: &str, default: u64) -> u64 {
    let raw: Vec<String> = std::env::args().collect();
    raw.iter()
        .position(|a| a == name)
        .and_then(|i| raw.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A port free on 127.0.0.1 now (for a process this benchmark starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The resident memory of process `pid`, in bytes (Linux).
pub fn rss_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}

/// Starts `sessionplane serve --config <config>` as its own process, quiet.
pub fn spawn_node(config: &std::path::Path) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_sessionplane"))
        .args(["serve", "--config"])
        .arg(config)
        .env("SESSIONPLANE_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn the node")
}

/// A child process ended when dropped: SIGTERM (nginx's master then stops its workers), then
/// waited for.
pub struct Process(pub std::process::Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .arg(self.0.id().to_string())
            .status();
        let _ = self.0.wait();
    }
}

/// Serves `app` on a free port of 127.0.0.1 as an upstream process: prints the port on a line,
/// and exits when its standard input closes (the benchmark that started it has gone).
pub async fn serve_upstream(app: axum::Router) {
    use std::io::Write;
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind upstream");
    let port = listener.local_addr().expect("addr").port();
    println!("{port}");
    std::io::stdout().flush().expect("flush");
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(0);
    });
    axum::serve(listener, app).await.expect("serve");
}

/// A session of `login` (of the master domain) for an hour.
pub fn new_session(user_id: Uuid, login: &str) -> NewSession {
    NewSession {
        session_id: Uuid::now_v7(),
        user_id,
        login: login.into(),
        domain: "master.domain".into(),
        lifetime_ms: 3_600_000,
        client_addr: Some([10, 1, 2, 3].into()),
        user_agent: Some("Mozilla/5.0 (bench)".into()),
    }
}

/// Adds sessions of 10,000 other users (`user0`…) until the node holds `total`.
pub async fn fill_sessions(node: &RunningNode, total: u64) {
    let have = node.site.group().state().read(|s| s.stored_count() as u64);
    let left = Arc::new(AtomicU64::new(total.saturating_sub(have)));
    let users: Arc<Vec<Uuid>> = Arc::new((0..10_000).map(|_| Uuid::now_v7()).collect());
    let mut tasks = Vec::new();
    for worker in 0..256 {
        let (site, left, users) = (node.site.clone(), left.clone(), users.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = worker;
            while left
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok()
            {
                let user = users[i % users.len()];
                site.create_session(new_session(user, &format!("user{}", i % users.len())))
                    .await
                    .expect("create");
                i += 256;
            }
        }));
    }
    for task in tasks {
        task.await.expect("filler");
    }
}
