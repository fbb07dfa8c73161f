//! Faults under load on two sites of three nodes (real processes, each site on its own
//! 127.0.x.0/24): a site leader killed with SIGKILL, a node frozen (SIGSTOP), the WAN cut, a
//! minority cut off inside a site, a rolling restart of every node. Throughout, workers log in,
//! open websockets and revoke sessions at random nodes. Afterwards: every acknowledged session
//! survives, every acknowledged revocation holds, no revoked token was ever accepted after its
//! revocation was acknowledged, and both sites are healthy again on their own.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::net::Cut;
use common::{Api, TestSite, Tuning};
use reqwest::Method;
use tokio::sync::watch;

const SESSIONS: &str = "/rest/v1/master/logicalroles/ws/sessions";
const USERS: usize = 8;
const WORKERS: u64 = 6;

/// What the workers got acknowledged, and what went wrong.
#[derive(Default)]
struct Ledger {
    /// (site, session id) → token, for sessions acknowledged and not revoked.
    live: Mutex<BTreeMap<(usize, String), String>>,
    /// (site, token) of acknowledged revocations.
    revoked: Mutex<Vec<(usize, String)>>,
    violations: Mutex<Vec<String>>,
    logins: AtomicU64,
    revocations: AtomicU64,
    sockets: AtomicU64,
    refused: AtomicU64,
    /// Revocations whose outcome is unknown (no answer, or an error during a fault).
    uncertain: AtomicU64,
}

struct Load {
    sites: Vec<Vec<String>>,
    service_token: String,
    api: Api,
    ledger: Ledger,
}

/// A small xorshift generator: reproducible from its seed, no dependency.
struct Random(u64);

impl Random {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn password(user: usize) -> String {
    format!("chaos-user-{user}-password")
}

impl Load {
    async fn worker(self: Arc<Self>, seed: u64, mut stop: watch::Receiver<bool>) {
        let mut random = Random(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        while !*stop.borrow() {
            let site = random.below(self.sites.len());
            let node = &self.sites[site][random.below(self.sites[site].len())];
            match random.below(4) {
                0 | 1 => self.login(site, node, random.below(USERS)).await,
                2 => self.revoke(site, &mut random).await,
                _ => self.open_socket(site, node, &mut random).await,
            }
            tokio::select! {
                _ = stop.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(10)) => {}
            }
        }
    }

    async fn login(&self, site: usize, node: &str, user: usize) {
        let answer = self
            .api
            .try_login(
                node,
                "chaos.example",
                &format!("user{user}"),
                &password(user),
            )
            .await;
        let Some(answer) = answer.filter(|a| a.status == 200) else {
            self.ledger.refused.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let (Some(id), Some(token)) = (
            answer.body["session_id"].as_str(),
            answer.body["token"].as_str(),
        ) else {
            self.violate(format!(
                "a login answered 200 without a session: {}",
                answer.text
            ));
            return;
        };
        self.ledger.logins.fetch_add(1, Ordering::Relaxed);
        lock(&self.ledger.live).insert((site, id.to_string()), token.to_string());
    }

    async fn revoke(&self, site: usize, random: &mut Random) {
        let picked = {
            let live = lock(&self.ledger.live);
            let of_site: Vec<_> = live.iter().filter(|((s, _), _)| *s == site).collect();
            match of_site.is_empty() {
                true => None,
                false => {
                    let ((_, id), token) = of_site[random.below(of_site.len())];
                    Some((id.clone(), token.clone()))
                }
            }
        };
        let Some((id, token)) = picked else { return };
        let nodes = &self.sites[site];
        let node = &nodes[random.below(nodes.len())];
        let url = format!("{node}{SESSIONS}/{id}");
        let answer = self
            .api
            .try_call(Method::DELETE, url, &self.service_token)
            .await;
        if answer.as_ref().is_none_or(|a| a.status != 204) {
            // No answer, or not a success: the revocation may or may not have happened, so the
            // session no longer counts as acknowledged-and-live.
            lock(&self.ledger.live).remove(&(site, id.clone()));
            self.ledger.uncertain.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.ledger.revocations.fetch_add(1, Ordering::Relaxed);
        lock(&self.ledger.live).remove(&(site, id.clone()));
        lock(&self.ledger.revoked).push((site, token.clone()));
        // Acknowledged: from now on no node of the site may take the token.
        for node in nodes {
            let url = format!("{node}/rest/v1/iam/sessions/current");
            if let Some(answer) = self.api.try_call(Method::GET, url, &token).await {
                if answer.status == 200 {
                    self.violate(format!(
                        "session {id} answered at {node} after its revocation"
                    ));
                }
            }
        }
    }

    async fn open_socket(&self, site: usize, node: &str, random: &mut Random) {
        let token = {
            let live = lock(&self.ledger.live);
            let of_site: Vec<_> = live.iter().filter(|((s, _), _)| *s == site).collect();
            match of_site.is_empty() {
                true => return,
                false => of_site[random.below(of_site.len())].1.clone(),
            }
        };
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let url = format!(
            "{}/rest/v1/ws?token={token}",
            node.replacen("http://", "ws://", 1)
        );
        let Ok(request) = url.into_client_request() else {
            return;
        };
        let opened = tokio::time::timeout(
            Duration::from_secs(2),
            tokio_tungstenite::connect_async(request),
        )
        .await;
        if let Ok(Ok(_socket)) = opened {
            self.ledger.sockets.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn violate(&self, what: String) {
        lock(&self.ledger.violations).push(what);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn signal(pid: u32, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{name} {pid}");
}

/// Waits until every node of both sites answers `/healthcheck` with 200.
async fn wait_healthy(api: &Api, sites: &[&TestSite], within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let mut healthy = true;
        for site in sites {
            for i in 0..site.nodes.len() {
                let url = format!("{}/healthcheck", site.api_url(i));
                let ok = api
                    .try_call(Method::GET, url, "")
                    .await
                    .is_some_and(|a| a.status == 200 && a.body["status"] != "unhealthy");
                healthy &= ok;
            }
        }
        if healthy {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "not healthy again within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn ips(site: &TestSite, nodes: &[usize]) -> Vec<String> {
    nodes
        .iter()
        .map(|i| format!("{}/32", site.nodes[*i].api.ip()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_work_survives_faults_and_the_sites_heal() {
    let keys = tempfile::tempdir().expect("temp dir");
    let key = keys.path().join("service.key");
    std::fs::write(&key, "chaos-service-key-0123456789abcdef").expect("key");
    let octet = 200 + (std::process::id() % 20) as u8 * 2;
    let tuning = Tuning {
        iam: vec![format!("service_key_file = \"{}\"", key.display())],
        federation: vec![
            "timeout_ms = 1000".into(),
            "retry_initial_ms = 200".into(),
            "retry_max_ms = 1000".into(),
        ],
        ..Tuning::default()
    };
    let mut sites = TestSite::start_sites(
        &[("central", octet), ("east", octet + 1)],
        3,
        &[1, 2, 4],
        tuning,
    )
    .await;
    let mut east = sites.pop().expect("east");
    let mut central = sites.pop().expect("central");
    for i in 0..3 {
        central.wait_for_admin(i).await;
        east.wait_for_admin(i).await;
    }
    let api = Api::default();
    let c1 = central.api_url(0);
    let issued = std::process::Command::new(env!("CARGO_BIN_EXE_sessionplane"))
        .args([
            "token",
            "issue",
            "--sub",
            "chaos",
            "--ttl-secs",
            "3600",
            "--key-file",
        ])
        .arg(&key)
        .output()
        .expect("token");
    let service_token = String::from_utf8(issued.stdout)
        .expect("utf-8")
        .trim()
        .to_string();
    let admin = api.admin_token(&c1).await;
    common::add_user(&api, &c1, &admin, "chaos.example", "user0", &password(0)).await;
    for user in 1..USERS {
        let put = api
            .call(
                Method::PUT,
                format!("{c1}/users/user{user}@chaos.example"),
                Some(&admin),
                Some(serde_json::json!({"password": password(user)})),
            )
            .await;
        assert_eq!(put.status, 201, "{}", put.text);
    }
    wait_healthy(&api, &[&central, &east], Duration::from_secs(30)).await;

    let load = Arc::new(Load {
        sites: vec![
            (0..3).map(|i| central.api_url(i)).collect(),
            (0..3).map(|i| east.api_url(i)).collect(),
        ],
        service_token,
        api: Api::default(),
        ledger: Ledger::default(),
    });
    let (stop, stopped) = watch::channel(false);
    let workers: Vec<_> = (0..WORKERS)
        .map(|k| tokio::spawn(load.clone().worker(k + 1, stopped.clone())))
        .collect();
    let mut faults: Vec<(String, Duration)> = Vec::new();
    let under = Duration::from_secs(4);
    tokio::time::sleep(Duration::from_secs(2)).await;

    // 1. The central leader dies (SIGKILL) and comes back.
    let leader = central.wait_for_leader(Duration::from_secs(10)).await;
    central.kill(leader);
    tokio::time::sleep(under).await;
    central.restart(leader).await;
    faults.push((
        format!("SIGKILL central leader c{}", leader + 1),
        wait_healthy(&api, &[&central, &east], Duration::from_secs(60)).await,
    ));

    // 2. An east node freezes (SIGSTOP) and thaws.
    let frozen = east.pid(1).expect("e2 runs");
    signal(frozen, "STOP");
    tokio::time::sleep(under).await;
    signal(frozen, "CONT");
    faults.push((
        "SIGSTOP e2 for 4 s".into(),
        wait_healthy(&api, &[&central, &east], Duration::from_secs(60)).await,
    ));

    // 3. The WAN between the sites is cut.
    {
        let _cut = Cut::sites(octet, octet + 1);
        tokio::time::sleep(under).await;
    }
    faults.push((
        "WAN cut for 4 s".into(),
        wait_healthy(&api, &[&central, &east], Duration::from_secs(60)).await,
    ));

    // 4. A minority of central (c3) is cut off from c1 and c2.
    {
        let _cut = Cut::between(&ips(&central, &[2]), &ips(&central, &[0, 1]));
        tokio::time::sleep(under).await;
    }
    faults.push((
        "c3 cut off inside central for 4 s".into(),
        wait_healthy(&api, &[&central, &east], Duration::from_secs(60)).await,
    ));

    // 5. Every node restarts, one after the other.
    let rolling = Instant::now();
    for site in [&mut central, &mut east] {
        for i in 0..3 {
            site.restart(i).await;
            site.wait_for_leader(Duration::from_secs(20)).await;
        }
    }
    let healed = wait_healthy(&api, &[&central, &east], Duration::from_secs(60)).await;
    faults.push((
        "rolling restart of all 6 nodes".into(),
        rolling.elapsed() + healed,
    ));

    stop.send(true).expect("stop the workers");
    for worker in workers {
        worker.await.expect("a worker");
    }

    // Every acknowledged session is still there; every acknowledged revocation still holds.
    let ledger = &load.ledger;
    let live = lock(&ledger.live).clone();
    let revoked = lock(&ledger.revoked).clone();
    let mut lost = Vec::new();
    for ((site, id), token) in &live {
        let node = &load.sites[*site][0];
        let answer = api
            .call(
                Method::GET,
                format!("{node}/rest/v1/iam/sessions/current"),
                Some(token),
                None,
            )
            .await;
        if answer.status != 200 {
            lost.push(format!("session {id}: {}", answer.text));
        }
    }
    let mut resurrected = Vec::new();
    for (site, token) in &revoked {
        for node in &load.sites[*site] {
            let answer = api
                .call(
                    Method::GET,
                    format!("{node}/rest/v1/iam/sessions/current"),
                    Some(token),
                    None,
                )
                .await;
            if answer.status == 200 {
                resurrected.push(format!("a revoked session answered at {node}"));
            }
        }
    }
    let mut summary = String::from("fault                                   healthy again after\n");
    for (fault, took) in &faults {
        summary += &format!("{fault:<40}{:>8.1} s\n", took.as_secs_f64());
    }
    summary += &format!(
        "\nacknowledged: {} logins, {} revocations, {} websockets opened ({} logins refused or unanswered, {} revocations of unknown outcome during faults)\n",
        ledger.logins.load(Ordering::Relaxed),
        ledger.revocations.load(Ordering::Relaxed),
        ledger.sockets.load(Ordering::Relaxed),
        ledger.refused.load(Ordering::Relaxed),
        ledger.uncertain.load(Ordering::Relaxed),
    );
    summary += &format!(
        "lost sessions: {}   revocations undone: {}   revoked tokens accepted: {}\n",
        lost.len(),
        resurrected.len(),
        lock(&ledger.violations).len()
    );
    println!("\n{summary}");
    // Kept for CI's log (`.ci/run` prints it): libtest captures a passing test's output.
    let kept = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("chaos-summary.txt");
    std::fs::write(&kept, &summary).expect("write the chaos summary");
    assert!(
        ledger.logins.load(Ordering::Relaxed) > 50,
        "too little load to judge"
    );
    assert!(
        ledger.revocations.load(Ordering::Relaxed) > 10,
        "too few revocations to judge"
    );
    assert!(lost.is_empty(), "acknowledged sessions lost: {lost:?}");
    assert!(resurrected.is_empty(), "{resurrected:?}");
    let violations = lock(&ledger.violations).clone();
    assert!(violations.is_empty(), "{violations:?}");
}
