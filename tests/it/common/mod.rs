//! Real nodes as child processes of the `sessionplane` binary, each on its own 127.0.0.x
//! address, and a client that talks to them over their real listeners.
#![allow(dead_code)]

pub mod chaos;
pub mod client;
pub mod mail;
pub mod mail_servers;
pub mod net;
pub mod sites;
pub mod turns;
pub mod ws;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use sessionplane::testing::{decode, encode};
use sessionplane::testing::{SiteAnswer, SiteCall};
use sessionplane::testing::{SiteQuery, SiteQueryReply};
use sessionplane_cluster::{GroupId, GroupStatus, PeerClient};

pub const SECRET: &str = "test-cluster-secret-0123456789";
pub const TOKEN_KEY: &str = "test-token-key-9876543210";
/// The first administrator's password (given through SESSIONPLANE_ADMIN_PASSWORD).
pub const ADMIN_PASSWORD: &str = "test-admin-pw-5f0e2d";
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

pub struct TestNode {
    pub id: u64,
    pub name: String,
    pub api: SocketAddr,
    pub cluster: SocketAddr,
    pub imap: SocketAddr,
    pub imaps: SocketAddr,
    pub smtp: SocketAddr,
    pub smtps: SocketAddr,
    /// This node's certificate and key (PEM), which a test may replace before a reload.
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

pub struct TestSite {
    pub nodes: Vec<TestNode>,
    pub peers: PeerClient,
    pub group: GroupId,
    /// The site's name, and the third octet of its nodes' addresses.
    pub name: String,
    pub octet: u8,
    dir: tempfile::TempDir,
    log_filter: String,
    fd_limit: Option<u64>,
    /// The site's share of the machine (see `turns`), given back once its nodes are killed.
    _turn: turns::Shared,
}

/// Extra TOML lines for `[raft]`, `[sessions]`, `[iam]` and `[gateway]`, and the nodes' log
/// filter.
#[derive(Default, Clone)]
pub struct Tuning {
    pub raft: Vec<String>,
    pub sessions: Vec<String>,
    pub iam: Vec<String>,
    pub gateway: Vec<String>,
    pub mail: Vec<String>,
    /// Extra `[listen]` lines.
    pub listen: Vec<String>,
    pub federation: Vec<String>,
    /// Extra `[limits]` lines (the section is written only when there are some).
    pub limits: Vec<String>,
    /// TOML written at the end of each node's config (`[[proxy]]` routes).
    pub tail: Vec<String>,
    /// The open-file limit (soft and hard) each node runs under; `None`: the test's own.
    pub fd_limit: Option<u64>,
    /// Nodes beyond `n` in each site, configured (their own config lists every node) but
    /// neither started nor listed in the others' configs: for adding a node at runtime.
    pub spare_nodes: u64,
    pub log_filter: Option<String>,
}

/// A certificate and its key, PEM, for `localhost` and the given addresses.
pub fn certificate(ips: &[std::net::IpAddr]) -> (String, String) {
    let mut names = vec!["localhost".to_string()];
    names.extend(ips.iter().map(|ip| ip.to_string()));
    let signed = rcgen::generate_simple_self_signed(names).expect("certificate");
    (signed.cert.pem(), signed.signing_key.serialize_pem())
}

/// Free ports, each held until the picker is dropped, so that no port is handed out twice.
#[derive(Default)]
struct PortPicker {
    held: Vec<TcpListener>,
}

impl PortPicker {
    fn pick(&mut self, ip: &str) -> SocketAddr {
        let listener = TcpListener::bind(format!("{ip}:0")).expect("bind a free port");
        let addr = listener.local_addr().expect("local addr");
        self.held.push(listener);
        addr
    }
}

impl TestSite {
    /// Starts `n` nodes of site `local` and waits until every one of them votes.
    pub async fn start(n: u64, tuning: Tuning) -> Self {
        let base = 10 + (std::process::id() % 200) as u8;
        let mut sites = Self::start_sites(&[("local", base)], n, &[], tuning).await;
        sites.remove(0)
    }

    /// Starts a deployment: `n` nodes in each of `sites` (name, the third octet of its nodes'
    /// 127.0.x.k addresses), the directory voted by `voters` (node ids, numbered from 1 across
    /// the sites; empty: the first site's nodes), and waits until every site is formed.
    pub async fn start_sites(
        sites: &[(&str, u8)],
        n: u64,
        voters: &[u64],
        tuning: Tuning,
    ) -> Vec<Self> {
        let mut shares: Vec<turns::Shared> = sites.iter().map(|_| turns::shared()).collect();
        let mut planned = Vec::new();
        let mut ports = PortPicker::default();
        for (s, (name, octet)) in sites.iter().enumerate() {
            let dir = tempfile::tempdir().expect("temp dir");
            let mut nodes = Vec::new();
            for k in 1..=n + tuning.spare_nodes {
                let id = s as u64 * (n + tuning.spare_nodes) + k;
                let ip = format!("127.0.{octet}.{k}");
                let prefix = match sites.len() {
                    1 => "n",
                    _ => &name[..1],
                };
                let label = format!("{prefix}{k}");
                nodes.push(TestNode {
                    id,
                    name: label.clone(),
                    api: ports.pick(&ip),
                    cluster: ports.pick(&ip),
                    imap: ports.pick(&ip),
                    imaps: ports.pick(&ip),
                    smtp: ports.pick(&ip),
                    smtps: ports.pick(&ip),
                    cert_file: dir.path().join(format!("{label}-cert.pem")),
                    key_file: dir.path().join(format!("{label}-key.pem")),
                    config: dir.path().join(format!("{label}.toml")),
                    log: dir.path().join(format!("{label}.log")),
                    child: None,
                });
            }
            planned.push((name.to_string(), dir, nodes));
        }
        let node_entry = |table: &str, n: &TestNode| {
            format!(
                "[[{table}]]\nid = {}\nname = \"{}\"\ncluster = \"{}\"\napi = \"http://{}\"\n\n",
                n.id, n.name, n.cluster, n.api
            )
        };
        let voters = match voters.is_empty() {
            true => String::new(),
            false => format!("[directory]\nvoters = {voters:?}\n\n"),
        };
        for (name, dir, nodes) in &planned {
            let regular = &nodes[..n as usize];
            let members_of = |all: &[TestNode]| -> String {
                all.iter().map(|n| node_entry("site_nodes", n)).collect()
            };
            let others: String = planned
                .iter()
                .filter(|(other, _, _)| other != name)
                .map(|(other, _, nodes)| {
                    let entries: String =
                        nodes.iter().map(|n| node_entry("sites.nodes", n)).collect();
                    format!("[[sites]]\nname = \"{other}\"\n\n{entries}")
                })
                .collect();
            let ips: Vec<std::net::IpAddr> = nodes.iter().map(|n| n.api.ip()).collect();
            let (cert, key) = certificate(&ips);
            for (k, node) in nodes.iter().enumerate() {
                let members = match k < regular.len() {
                    true => members_of(regular),
                    false => members_of(nodes),
                };
                std::fs::write(&node.cert_file, &cert).expect("write certificate");
                std::fs::write(&node.key_file, &key).expect("write key");
                // Peer traffic leaves from the node's own address, so that a test can cut it.
                let source = format!("source_address = \"{}\"", node.api.ip());
                let text = format!(
                    "node_id = {id}\nnode_name = \"{label}\"\nsite = \"{name}\"\ndata_dir = \"{data}\"\ncluster_secret = \"{SECRET}\"\n\n\
                     [listen]\napi = \"{api}\"\ncluster = \"{cluster}\"\nimap = \"{imap}\"\nimaps = \"{imaps}\"\nsmtp = \"{smtp}\"\nsmtps = \"{smtps}\"\n{source}\n{listen}\n\n\
                     [tls]\ncert_file = \"{cert_file}\"\nkey_file = \"{key_file}\"\n\n[mail]\n{mail}\n\n{members}{others}{voters}[raft]\n{raft}\n\n[sessions]\n{sessions}\n\n\
                     [iam]\ntoken_key = \"{TOKEN_KEY}\"\n{iam}\n\n[gateway]\n{gateway}\n\n[federation]\n{federation}\n{limits}\n{tail}\n",
                    id = node.id,
                    label = node.name,
                    data = dir.path().join(&node.name).display(),
                    api = node.api,
                    cluster = node.cluster,
                    imap = node.imap,
                    imaps = node.imaps,
                    smtp = node.smtp,
                    smtps = node.smtps,
                    cert_file = node.cert_file.display(),
                    key_file = node.key_file.display(),
                    mail = tuning.mail.join("\n"),
                    listen = tuning.listen.join("\n"),
                    raft = tuning.raft.join("\n"),
                    sessions = tuning.sessions.join("\n"),
                    iam = tuning.iam.join("\n"),
                    gateway = tuning.gateway.join("\n"),
                    federation = tuning.federation.join("\n"),
                    tail = tuning.tail.join("\n"),
                    limits = match tuning.limits.is_empty() {
                        true => String::new(),
                        false => format!("\n[limits]\n{}\n", tuning.limits.join("\n")),
                    },
                );
                std::fs::write(&node.config, text).expect("write config");
            }
        }
        drop(ports);
        let mut started = Vec::new();
        for ((name, octet), (_, dir, nodes)) in sites.iter().zip(planned) {
            let mut site = TestSite {
                nodes,
                peers: PeerClient::new(SECRET, None, Default::default()).expect("peer client"),
                group: GroupId::new(format!("site:{name}")).expect("group id"),
                name: name.to_string(),
                octet: *octet,
                dir,
                log_filter: tuning
                    .log_filter
                    .clone()
                    .unwrap_or_else(|| "info,openraft=warn".into()),
                fd_limit: tuning.fd_limit,
                _turn: shares.pop().expect("a share per site"),
            };
            for i in 0..n as usize {
                site.spawn(i);
            }
            started.push(site);
        }
        for site in &started {
            site.wait_formed(n as usize, Duration::from_secs(30)).await;
        }
        started
    }

    fn spawn(&mut self, i: usize) {
        let node = &self.nodes[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .expect("log file");
        let mut command = match self.fd_limit {
            // The shell lowers its own limit, then becomes the node.
            Some(limit) => {
                let mut shell = Command::new("sh");
                shell
                    .arg("-c")
                    .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
                    .arg(env!("CARGO_BIN_EXE_sessionplane"));
                shell
            }
            None => Command::new(env!("CARGO_BIN_EXE_sessionplane")),
        };
        let child = command
            .args(["serve", "--config"])
            .arg(&node.config)
            .env("RUST_LOG", &self.log_filter)
            .env("SESSIONPLANE_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn sessionplane");
        self.nodes[i].child = Some(child);
    }

    /// SIGKILL: no shutdown, no flush.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills node `i` if it runs, starts it again and waits until its cluster listener answers.
    pub async fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i);
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.status(i).await.is_none() {
            assert!(
                Instant::now() < deadline,
                "node {i} did not come back\n{}",
                self.log_of(i)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Node `i`'s exit status, once it has exited on its own.
    pub fn exited(&mut self, i: usize) -> Option<std::process::ExitStatus> {
        self.nodes[i].child.as_mut()?.try_wait().ok().flatten()
    }

    /// Node `i`'s data directory.
    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.dir.path().join(&self.nodes[i].name)
    }

    /// The process id of node `i`, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.nodes[i].child.as_ref().map(Child::id)
    }

    pub fn is_running(&self, i: usize) -> bool {
        self.nodes[i].child.is_some()
    }

    pub fn api_url(&self, i: usize) -> String {
        format!("http://{}", self.nodes[i].api)
    }

    /// A directory that lives as long as the site (for key files and the like).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    pub fn cluster_addr(&self, i: usize) -> String {
        self.nodes[i].cluster.to_string()
    }

    pub fn log_of(&self, i: usize) -> String {
        std::fs::read_to_string(&self.nodes[i].log).unwrap_or_default()
    }

    pub async fn propose(&self, i: usize, call: &SiteCall) -> Result<SiteAnswer, String> {
        let addr = self.cluster_addr(i);
        let answer = call
            .propose(&self.peers, &addr, &self.group, CALL_TIMEOUT)
            .await;
        answer.map_err(|e| e.to_string())?
    }

    pub async fn query(&self, i: usize, query: &SiteQuery) -> Result<SiteQueryReply, String> {
        let bytes = encode(query).map_err(|e| e.to_string())?;
        let addr = self.cluster_addr(i);
        let answer = self
            .peers
            .query(&addr, &self.group, bytes, CALL_TIMEOUT)
            .await;
        decode(&answer.map_err(|e| e.to_string())??).map_err(|e| e.to_string())
    }

    pub async fn status(&self, i: usize) -> Option<GroupStatus> {
        let addr = self.cluster_addr(i);
        self.peers
            .status(&addr, &self.group, Duration::from_millis(500))
            .await
            .ok()
    }

    /// The index of the node every running node agrees leads.
    pub async fn leader(&self) -> Option<usize> {
        let mut agreed = None;
        for i in 0..self.nodes.len() {
            if !self.is_running(i) {
                continue;
            }
            let leader = self.status(i).await?.leader?;
            let index = self.nodes.iter().position(|n| n.id == leader)?;
            if agreed.is_some_and(|a| a != index) || !self.is_running(index) {
                return None;
            }
            agreed = Some(index);
        }
        agreed
    }

    pub async fn wait_for_leader(&self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(leader) = self.leader().await {
                return leader;
            }
            assert!(
                Instant::now() < deadline,
                "no agreed leader within {timeout:?}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn wait_formed(&self, voters: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let mut formed = true;
            for i in (0..self.nodes.len()).filter(|i| self.is_running(*i)) {
                let ok = self
                    .status(i)
                    .await
                    .is_some_and(|s| s.leader.is_some() && s.voters.len() == voters);
                formed &= ok;
            }
            if formed {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "site did not form within {timeout:?}\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn logs(&self) -> String {
        (0..self.nodes.len())
            .map(|i| format!("--- {} ---\n{}", self.nodes[i].name, self.log_of(i)))
            .collect()
    }
}

impl Drop for TestSite {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

/// A new session for a user, as a caller would propose it.
pub fn new_session(user: uuid::Uuid, lifetime_ms: u64) -> sessionplane::testing::NewSession {
    sessionplane::testing::NewSession {
        session_id: uuid::Uuid::now_v7(),
        user_id: user,
        login: "alice".into(),
        domain: "example.org".into(),
        lifetime_ms,
        client_addr: Some([192, 0, 2, 10].into()),
        user_agent: Some("test-client/1.0".into()),
    }
}

pub async fn get(
    site: &TestSite,
    i: usize,
    id: uuid::Uuid,
) -> Option<sessionplane::testing::Session> {
    match site.query(i, &SiteQuery::Get(id)).await {
        Ok(SiteQueryReply::Session(found)) => found,
        other => panic!("query on node {i} failed: {other:?}"),
    }
}

/// A JSON-speaking HTTP client for the nodes' api listeners.
pub struct Api {
    pub http: reqwest::Client,
}

impl Default for Api {
    fn default() -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(CALL_TIMEOUT)
                .build()
                .expect("http client"),
        }
    }
}

/// An answer: status, headers and the body as JSON (`Null` when empty or not JSON).
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: serde_json::Value,
    pub text: String,
}

impl Answer {
    /// The contract's error `type`.
    pub fn kind(&self) -> &str {
        self.body["type"].as_str().unwrap_or("")
    }
}

impl Api {
    /// A client whose connections come from `source` (any 127.0.0.0/8 address reaches the nodes).
    pub fn from_source(source: std::net::IpAddr) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(CALL_TIMEOUT)
                .local_address(source)
                .build()
                .expect("http client"),
        }
    }

    pub async fn send(&self, request: reqwest::RequestBuilder) -> Answer {
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        Answer {
            status,
            headers,
            body,
            text,
        }
    }

    /// Sends a request; `None` when no answer came (a node down or cut off).
    pub async fn try_send(&self, request: reqwest::RequestBuilder) -> Option<Answer> {
        let response = request.send().await.ok()?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.ok()?;
        let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        Some(Answer {
            status,
            headers,
            body,
            text,
        })
    }

    pub async fn try_login(
        &self,
        base: &str,
        domain: &str,
        login: &str,
        pwd: &str,
    ) -> Option<Answer> {
        let body = serde_json::json!({
            "domain": domain, "login": login, "pwd": pwd, "session_type": "token"
        });
        let request = self
            .http
            .post(format!("{base}/rest/v1/iam/sessions"))
            .json(&body);
        self.try_send(request.timeout(Duration::from_secs(3))).await
    }

    /// A bearer call (no token when `token` is empty); `None` when no answer came.
    pub async fn try_call(
        &self,
        method: reqwest::Method,
        url: String,
        token: &str,
    ) -> Option<Answer> {
        let mut request = self
            .http
            .request(method, url)
            .timeout(Duration::from_secs(3));
        if !token.is_empty() {
            request = request.bearer_auth(token);
        }
        self.try_send(request).await
    }

    pub async fn login(&self, base: &str, domain: &str, login: &str, pwd: &str) -> Answer {
        let body = serde_json::json!({
            "domain": domain, "login": login, "pwd": pwd, "session_type": "token"
        });
        self.send(
            self.http
                .post(format!("{base}/rest/v1/iam/sessions"))
                .json(&body),
        )
        .await
    }

    /// Logs in and returns the token, panicking with the answer when that fails.
    pub async fn token(&self, base: &str, domain: &str, login: &str, pwd: &str) -> String {
        let answer = self.login(base, domain, login, pwd).await;
        assert_eq!(answer.status, 200, "login failed: {}", answer.text);
        answer.body["token"].as_str().expect("token").to_string()
    }

    pub async fn admin_token(&self, base: &str) -> String {
        self.token(base, "master.domain", "admin", ADMIN_PASSWORD)
            .await
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        url: String,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> Answer {
        let mut request = self.http.request(method, url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.send(request).await
    }
}

/// Logs `login@example.org` in at one of `bases`, trying the next while a node is down or
/// electing (or the user is still on its way to that site): the session's id.
pub async fn log_in_at_any(api: &Api, bases: &[String], login: &str, password: &str) -> String {
    for attempt in 0..80 {
        let base = &bases[attempt % bases.len()];
        if let Some(answer) = api.try_login(base, "example.org", login, password).await {
            if answer.status == 200 {
                return answer.body["session_id"]
                    .as_str()
                    .expect("session id")
                    .to_string();
            }
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("no login of {login} at {bases:?}");
}

/// Creates domain `domain` and user `login@domain` with `password`, as the administrator.
pub async fn add_user(
    api: &Api,
    base: &str,
    admin: &str,
    domain: &str,
    login: &str,
    password: &str,
) {
    let put = api
        .call(
            Method::PUT,
            format!("{base}/domains/{domain}"),
            Some(admin),
            None,
        )
        .await;
    assert!(put.status == 204 || put.status == 409, "{}", put.text);
    let user = api
        .call(
            Method::PUT,
            format!("{base}/users/{login}@{domain}"),
            Some(admin),
            Some(json!({"password": password})),
        )
        .await;
    assert_eq!(user.status, 201, "{}", user.text);
}

/// Runs the command line against `api` with `token`.
pub fn cli(args: &[&str], api: &str, token: &str) -> std::process::Output {
    cli_command(args, api, token).output().expect("run the cli")
}

/// The cli with `args`, pointed at `api` with `token`, to start as the caller needs.
pub fn cli_command(args: &[&str], api: &str, token: &str) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sessionplane"));
    command
        .args(args)
        .env("SESSIONPLANE_API", api)
        .env("SESSIONPLANE_TOKEN", token);
    command
}

/// One node started with `tuning`, once its administrator exists: the site, a client, the
/// node's api url and the administrator's token.
pub async fn admin_node(tuning: Tuning) -> (TestSite, Api, String, String) {
    let site = TestSite::start(1, tuning).await;
    site.wait_for_admin(0).await;
    let api = Api::default();
    let base = site.api_url(0);
    let admin = api.admin_token(&base).await;
    (site, api, base, admin)
}

pub fn assert_error(answer: &Answer, status: u16, kind: &str) {
    assert_eq!(answer.status, status, "{}", answer.text);
    assert_eq!(answer.kind(), kind, "{}", answer.text);
    assert_eq!(answer.body["statusCode"], status, "{}", answer.text);
    assert!(answer.body["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    let cause = answer.body.get("cause");
    assert!(
        cause.is_some_and(|c| c.is_null() || c.is_string()),
        "no cause (a string or null): {}",
        answer.text
    );
    assert_eq!(
        answer.headers["content-type"], "application/json; charset=utf-8",
        "{}",
        answer.text
    );
}

impl TestSite {
    /// Waits until node `i` has applied the first administrator (the bootstrap after the first
    /// election), asking the directory group over the cluster listener: polling with logins
    /// would count failures against `admin`.
    pub async fn wait_for_admin(&self, i: usize) {
        use sessionplane::testing::{DirectoryQuery, DirectoryQueryReply};
        let directory = GroupId::new("directory").expect("group id");
        let query = encode(&DirectoryQuery::Counts).expect("encode");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let answer = self
                .peers
                .query(
                    &self.cluster_addr(i),
                    &directory,
                    query.clone(),
                    CALL_TIMEOUT,
                )
                .await;
            if let Ok(Ok(bytes)) = answer {
                if let Ok(DirectoryQueryReply::Counts { users, .. }) = decode(&bytes) {
                    if users > 0 {
                        return;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "no administrator after 20 s\n{}",
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Sends signal `name` (`STOP`, `CONT`, …) to a node's process.
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{name} {pid}");
}
