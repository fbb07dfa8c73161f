//! The steady load and the judge of the chaos suites (`tests/it/chaos.rs` on processes,
//! `tests/it/compose_chaos.rs` on the compose deployment's containers): workers log in, open
//! websockets and revoke sessions at random nodes of every site while faults happen; a ledger
//! keeps what was acknowledged; afterwards every acknowledged session must still answer, every
//! acknowledged revocation must still hold, and no revoked token may ever have been accepted
//! after its revocation was acknowledged, neither by the api nor through the reverse proxy (when
//! the nodes have a `[[proxy]]` route to an application). Locks and contains of the target users run beside
//! them: every lock a site acknowledged must still be in force there, and no login of a locked
//! user may ever have been accepted by a site after it acknowledged the lock.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::Api;

pub const SESSIONS: &str = "/rest/v1/master/logicalroles/ws/sessions";
/// Users `user0`..`user7` of `chaos.example` log in.
pub const USERS: usize = 8;
pub const DOMAIN: &str = "chaos.example";
/// Users `target0`..`target3` are locked and contained, never logged in by the load.
pub const TARGETS: usize = 4;
const WORKERS: u64 = 6;

pub fn password(user: usize) -> String {
    format!("chaos-user-{user}-password")
}

fn target_password(target: usize) -> String {
    format!("chaos-target-{target}-password")
}

/// Creates the load's domain and users through `base`, as the administrator.
pub async fn create_users(api: &Api, base: &str, admin: &str) {
    super::add_user(api, base, admin, DOMAIN, "user0", &password(0)).await;
    for user in 1..USERS {
        api.put(format!("{base}/users/user{user}@{DOMAIN}"))
            .as_(admin)
            .body(serde_json::json!({"password": password(user)}))
            .expect(201)
            .await;
    }
    for target in 0..TARGETS {
        api.put(format!("{base}/users/target{target}@{DOMAIN}"))
            .as_(admin)
            .body(serde_json::json!({"password": target_password(target)}))
            .expect(201)
            .await;
    }
}

/// A lock that sites acknowledged: in force there from the answer on.
#[derive(Clone, Debug)]
struct AcknowledgedLock {
    lock_id: String,
    target: usize,
    /// The sites whose answer said the lock is in force (or the user contained).
    sites: Vec<usize>,
}

/// What the workers got acknowledged, and what went wrong.
#[derive(Default)]
pub struct Ledger {
    /// (site, session id) → token, for sessions acknowledged and not revoked.
    live: Mutex<BTreeMap<(usize, String), String>>,
    /// (site, session id, token) of acknowledged revocations.
    revoked: Mutex<Vec<(usize, String, String)>>,
    violations: Mutex<Vec<String>>,
    logins: AtomicU64,
    revocations: AtomicU64,
    sockets: AtomicU64,
    refused: AtomicU64,
    /// Revocations whose outcome is unknown (no answer, or an error during a fault).
    uncertain: AtomicU64,
    locks: Mutex<Vec<AcknowledgedLock>>,
    contains: AtomicU64,
    /// Logins of locked users tried at sites that acknowledged the lock.
    locked_logins: AtomicU64,
    /// Logins of locked users accepted at a site after it acknowledged the lock.
    locked_accepted: Mutex<Vec<String>>,
    /// Requests of live sessions that reached the application through the proxy.
    proxied: AtomicU64,
    /// Requests with revoked tokens sent through the proxy (each refused, or a violation).
    proxied_revoked: AtomicU64,
}

pub struct Load {
    /// The name of each site.
    names: Vec<String>,
    /// The api base URLs of each site's nodes.
    sites: Vec<Vec<String>>,
    /// For each site, a token allowed to revoke its sessions.
    revokers: Vec<String>,
    /// The nodes' `[[proxy]]` route to the application, when they have one (`/app/`).
    proxy: Option<String>,
    api: Api,
    ledger: Ledger,
}

/// The workers, running until stopped.
pub struct Running {
    stop: watch::Sender<bool>,
    workers: Vec<JoinHandle<()>>,
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

impl Load {
    /// `sites`: each site's name and its nodes' api base URLs; `revokers`: for each site, a
    /// token of a global administrator there (it revokes, locks and contains); `proxy`: the
    /// prefix of the nodes' route to an application answering 200, if they have one.
    pub fn new(
        sites: Vec<(&str, Vec<String>)>,
        revokers: Vec<String>,
        proxy: Option<&str>,
    ) -> Arc<Self> {
        assert_eq!(sites.len(), revokers.len(), "a revoker per site");
        let (names, sites) = sites
            .into_iter()
            .map(|(name, nodes)| (name.to_string(), nodes))
            .unzip();
        Arc::new(Self {
            names,
            sites,
            revokers,
            proxy: proxy.map(str::to_string),
            api: Api::default(),
            ledger: Ledger::default(),
        })
    }

    pub fn start(self: &Arc<Self>) -> Running {
        let (stop, stopped) = watch::channel(false);
        let workers = (0..WORKERS)
            .map(|k| tokio::spawn(self.clone().worker(k + 1, stopped.clone())))
            .collect();
        Running { stop, workers }
    }

    async fn worker(self: Arc<Self>, seed: u64, mut stop: watch::Receiver<bool>) {
        let mut random = Random(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        while !*stop.borrow() {
            let site = random.below(self.sites.len());
            let node = &self.sites[site][random.below(self.sites[site].len())];
            match random.below(8) {
                0 | 1 => self.login(site, node, random.below(USERS)).await,
                2 => self.revoke(site, &mut random).await,
                3 => self.open_socket(site, node, &mut random).await,
                4 => self.lock_or_contain(site, node, &mut random).await,
                5 => self.proxied_request(site, node, &mut random).await,
                _ => self.try_locked_login(&mut random).await,
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
            .try_login(node, DOMAIN, &format!("user{user}"), &password(user))
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

    /// A random acknowledged, live session of `site`: (id, token).
    fn pick_live(&self, site: usize, random: &mut Random) -> Option<(String, String)> {
        let live = lock(&self.ledger.live);
        let of_site: Vec<_> = live.iter().filter(|((s, _), _)| *s == site).collect();
        if of_site.is_empty() {
            return None;
        }
        let ((_, id), token) = of_site[random.below(of_site.len())];
        Some((id.clone(), token.clone()))
    }

    async fn revoke(&self, site: usize, random: &mut Random) {
        let Some((id, token)) = self.pick_live(site, random) else {
            return;
        };
        let nodes = &self.sites[site];
        let node = &nodes[random.below(nodes.len())];
        let url = format!("{node}{SESSIONS}/{id}");
        let answer = self
            .api
            .try_call(Method::DELETE, url, &self.revokers[site])
            .await;
        lock(&self.ledger.live).remove(&(site, id.clone()));
        if answer.as_ref().is_none_or(|a| a.status != 204) {
            // No answer, or not a success: the revocation may or may not have happened, so the
            // session no longer counts as acknowledged-and-live.
            self.ledger.uncertain.fetch_add(1, Ordering::Relaxed);
            return;
        }
        self.ledger.revocations.fetch_add(1, Ordering::Relaxed);
        lock(&self.ledger.revoked).push((site, id.clone(), token.clone()));
        // Acknowledged: from now on no node of the site may take the token.
        let acknowledged = std::time::Instant::now();
        for other in nodes {
            self.proxied_revoked(other, &id, &token, acknowledged).await;
            let url = format!("{other}/rest/v1/iam/sessions/current");
            if let Some(answer) = self.api.try_call(Method::GET, url, &token).await {
                if answer.status == 200 {
                    let elapsed = acknowledged.elapsed();
                    let groups = self.groups_seen_by(nodes, &self.revokers[site]).await;
                    self.violate(format!(
                        "session {id} answered at {other} {elapsed:?} after its revocation was \
                         acknowledged by {node}: {}; the groups then, as each node saw them: \
                         {groups}",
                        answer.text
                    ));
                }
            }
        }
    }

    /// A request of a live session to the application through `node`'s proxy.
    async fn proxied_request(&self, site: usize, node: &str, random: &mut Random) {
        let (Some(prefix), Some((id, token))) = (&self.proxy, self.pick_live(site, random)) else {
            return;
        };
        let url = format!("{node}{prefix}whoami");
        let answer = self.api.try_call(Method::GET, url, &token).await;
        if answer.is_some_and(|a| reached_application(&a, &id)) {
            self.ledger.proxied.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A request with a revoked token through `node`'s proxy: reaching the application as that
    /// session after the revocation was acknowledged is a violation.
    async fn proxied_revoked(&self, node: &str, id: &str, token: &str, acknowledged: Instant) {
        let Some(prefix) = &self.proxy else {
            return;
        };
        let url = format!("{node}{prefix}whoami");
        self.ledger.proxied_revoked.fetch_add(1, Ordering::Relaxed);
        if let Some(answer) = self.api.try_call(Method::GET, url, token).await {
            if reached_application(&answer, id) {
                self.violate(format!(
                    "session {id} reached the application through {node} {:?} after its \
                     revocation was acknowledged: {}",
                    acknowledged.elapsed(),
                    answer.text
                ));
            }
        }
    }

    async fn open_socket(&self, site: usize, node: &str, random: &mut Random) {
        let Some((_, token)) = self.pick_live(site, random) else {
            return;
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

    /// Locks a target user at every site, with `POST /rest/v1/locks` or as part of a contain,
    /// at `node` of `site`; the sites that answered in force are kept as acknowledged.
    async fn lock_or_contain(&self, site: usize, node: &str, random: &mut Random) {
        let target = random.below(TARGETS);
        let user = format!("target{target}@{DOMAIN}");
        let asked = serde_json::json!({"message": "locked by the chaos suite", "ttl": "1h"});
        let contain = random.below(2) == 0;
        let (url, body) = match contain {
            true => (
                format!("{node}/rest/v1/incidents"),
                serde_json::json!({"user": user, "sites": "all", "lock": asked}),
            ),
            false => (
                format!("{node}/rest/v1/locks"),
                serde_json::json!({"target": {"user": user}, "sites": "all",
                    "message": asked["message"], "ttl": asked["ttl"]}),
            ),
        };
        let request = self
            .api
            .http
            .post(url)
            .bearer_auth(&self.revokers[site])
            .json(&body)
            .timeout(Duration::from_secs(5));
        let Some(answer) = self.api.try_send(request).await else {
            return;
        };
        let acknowledged = match (contain, answer.status) {
            (true, 200) => self.sites_where(&answer.body["sites"], "contained"),
            (true, 503) => self.sites_where(&answer.body["receipt"]["sites"], "contained"),
            (false, 201) => self.sites_where(&answer.body["sites"], "in_force"),
            _ => return,
        };
        let lock_id = match contain {
            true => answer.body["lock_id"]
                .as_str()
                .or(answer.body["receipt"]["lock_id"].as_str()),
            false => answer.body["lock_id"].as_str(),
        };
        let Some(lock_id) = lock_id.filter(|_| !acknowledged.is_empty()) else {
            return;
        };
        if contain {
            self.ledger.contains.fetch_add(1, Ordering::Relaxed);
        }
        lock(&self.ledger.locks).push(AcknowledgedLock {
            lock_id: lock_id.to_string(),
            target,
            sites: acknowledged,
        });
    }

    /// The sites of a `sites` map whose part is `status` (a string, or an object's `status`).
    fn sites_where(&self, parts: &serde_json::Value, status: &str) -> Vec<usize> {
        (0..self.names.len())
            .filter(|s| {
                let part = &parts[&self.names[*s]];
                part == status || part["status"] == status
            })
            .collect()
    }

    /// A login of a locked user with the right password, at a node of a site that acknowledged
    /// the lock: accepted, it is a violation.
    async fn try_locked_login(&self, random: &mut Random) {
        let locked = {
            let locks = lock(&self.ledger.locks);
            match locks.is_empty() {
                true => return,
                false => locks[random.below(locks.len())].clone(),
            }
        };
        let site = locked.sites[random.below(locked.sites.len())];
        let node = &self.sites[site][random.below(self.sites[site].len())];
        let login = format!("target{}", locked.target);
        let password = target_password(locked.target);
        let answer = self.api.try_login(node, DOMAIN, &login, &password).await;
        self.ledger.locked_logins.fetch_add(1, Ordering::Relaxed);
        if let Some(answer) = answer.filter(|a| a.status == 200) {
            lock(&self.ledger.locked_accepted).push(format!(
                "{login} logged in at {node} after {} acknowledged lock {}: {}",
                self.names[site], locked.lock_id, answer.text
            ));
        }
    }

    /// Each node's view of its groups (role, term, leader, last log and applied index), for a
    /// violation's report: which node believed it led, at which term, and how far it had applied.
    async fn groups_seen_by(&self, nodes: &[String], token: &str) -> String {
        let mut views = Vec::new();
        for node in nodes {
            let url = format!("{node}/cluster/status");
            let view = match self.api.try_call(Method::GET, url, token).await {
                Some(answer) if answer.status == 200 => answer.body["groups"]
                    .as_array()
                    .map(|groups| {
                        groups
                            .iter()
                            .map(|g| {
                                format!(
                                    "{} {} term {} leader {} log {} applied {}",
                                    g["group"],
                                    g["role"],
                                    g["term"],
                                    g["leader"],
                                    g["lastLogIndex"],
                                    g["lastAppliedIndex"]
                                )
                            })
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default(),
                Some(answer) => format!("HTTP {}", answer.status),
                None => "no answer".to_string(),
            };
            views.push(format!("{node}: [{view}]"));
        }
        views.join("; ")
    }

    fn violate(&self, what: String) {
        lock(&self.ledger.violations).push(what);
    }

    /// After the load stopped: asks every acknowledged session and revocation again.
    pub async fn verify(&self, api: &Api) -> Verdict {
        let live = lock(&self.ledger.live).clone();
        let revoked = lock(&self.ledger.revoked).clone();
        let mut verdict = Verdict::default();
        for ((site, id), token) in &live {
            let answer = current(api, &self.sites[*site][0], token).await;
            if answer.status != 200 {
                verdict.lost.push(format!("session {id}: {}", answer.text));
            }
        }
        for (site, id, token) in &revoked {
            for node in &self.sites[*site] {
                if current(api, node, token).await.status == 200 {
                    verdict
                        .resurrected
                        .push(format!("a revoked session answered at {node}"));
                }
                if let Some(prefix) = &self.proxy {
                    let url = format!("{node}{prefix}whoami");
                    let answer = api.call(Method::GET, url, Some(token), None).await;
                    if reached_application(&answer, id) {
                        verdict.resurrected.push(format!(
                            "a revoked session reached the application through {node}"
                        ));
                    }
                }
            }
        }
        let locks = lock(&self.ledger.locks).clone();
        let mut locked_at = std::collections::BTreeSet::new();
        for acknowledged in &locks {
            for site in &acknowledged.sites {
                self.verify_lock(api, acknowledged, *site, &mut verdict)
                    .await;
                locked_at.insert((acknowledged.target, *site));
            }
        }
        for (target, site) in locked_at {
            self.verify_kept_out(api, target, site, &mut verdict).await;
        }
        verdict.violations = lock(&self.ledger.violations).clone();
        verdict
            .locked_accepted
            .extend(lock(&self.ledger.locked_accepted).iter().cloned());
        verdict
    }

    /// Whether `site` still has the lock in force.
    async fn verify_lock(
        &self,
        api: &Api,
        acknowledged: &AcknowledgedLock,
        site: usize,
        verdict: &mut Verdict,
    ) {
        let name = &self.names[site];
        let url = format!(
            "{}/rest/v1/locks/{}?sites=%5B%22{name}%22%5D",
            self.sites[site][0], acknowledged.lock_id
        );
        let answer = api
            .call(Method::GET, url, Some(&self.revokers[site]), None)
            .await;
        if answer.status != 200 || answer.body["sites"][name] != "in_force" {
            verdict.locks_lost.push(format!(
                "lock {} at {name}: {}",
                acknowledged.lock_id, answer.text
            ));
        }
    }

    /// Whether every node of `site`, which acknowledged a lock of `target`, keeps it out.
    async fn verify_kept_out(&self, api: &Api, target: usize, site: usize, verdict: &mut Verdict) {
        let login = format!("target{target}");
        for node in &self.sites[site] {
            let answer = api
                .login(node, DOMAIN, &login, &target_password(target))
                .await;
            if answer.status == 200 {
                verdict.locked_accepted.push(format!(
                    "{login} logged in at {node} after the site acknowledged its lock"
                ));
            }
        }
    }

    /// The table CI prints: each fault and how long the sites took to be healthy again, what
    /// was acknowledged, and what was lost.
    pub fn summary(&self, faults: &[(String, Duration)], verdict: &Verdict) -> String {
        let ledger = &self.ledger;
        let mut summary =
            String::from("fault                                   healthy again after\n");
        for (fault, took) in faults {
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
            "acknowledged: {} locks ({} placed by a contain), {} logins of locked users tried\n",
            lock(&ledger.locks).len(),
            ledger.contains.load(Ordering::Relaxed),
            ledger.locked_logins.load(Ordering::Relaxed),
        );
        if self.proxy.is_some() {
            summary += &format!(
                "through the proxy: {} requests of live sessions reached the application, {} with revoked tokens were tried\n",
                ledger.proxied.load(Ordering::Relaxed),
                ledger.proxied_revoked.load(Ordering::Relaxed),
            );
        }
        summary += &format!(
            "lost sessions: {}   revocations undone: {}   revoked tokens accepted: {}\n",
            verdict.lost.len(),
            verdict.resurrected.len(),
            verdict.violations.len()
        );
        summary += &format!(
            "acknowledged locks lost: {}   locked logins accepted after acknowledgement: {}\n",
            verdict.locks_lost.len(),
            verdict.locked_accepted.len()
        );
        summary
    }

    /// Fails the test when the load was too thin to judge or anything acknowledged was lost.
    pub fn judge(&self, verdict: &Verdict) {
        assert!(
            self.ledger.logins.load(Ordering::Relaxed) > 50,
            "too little load to judge"
        );
        assert!(
            self.ledger.revocations.load(Ordering::Relaxed) > 10,
            "too few revocations to judge"
        );
        if self.proxy.is_some() {
            assert!(
                self.ledger.proxied.load(Ordering::Relaxed) > 10,
                "too few proxied requests to judge"
            );
        }
        assert!(
            verdict.lost.is_empty(),
            "acknowledged sessions lost: {:?}",
            verdict.lost
        );
        assert!(
            lock(&self.ledger.locks).len() > 3,
            "too few acknowledged locks to judge"
        );
        assert!(
            self.ledger.locked_logins.load(Ordering::Relaxed) > 10,
            "too few logins of locked users to judge"
        );
        assert!(verdict.resurrected.is_empty(), "{:?}", verdict.resurrected);
        assert!(
            verdict.locks_lost.is_empty(),
            "{} acknowledged locks lost, the first: {:?}",
            verdict.locks_lost.len(),
            verdict.locks_lost.iter().take(3).collect::<Vec<_>>()
        );
        assert!(
            verdict.locked_accepted.is_empty(),
            "{:?}",
            verdict.locked_accepted
        );
        assert!(verdict.violations.is_empty(), "{:?}", verdict.violations);
    }
}

impl Running {
    pub async fn stop(self) {
        self.stop.send(true).expect("stop the workers");
        for worker in self.workers {
            worker.await.expect("a worker");
        }
    }
}

/// What the final check found.
#[derive(Default)]
pub struct Verdict {
    pub lost: Vec<String>,
    pub resurrected: Vec<String>,
    pub locks_lost: Vec<String>,
    pub locked_accepted: Vec<String>,
    pub violations: Vec<String>,
}

/// Waits until the deployment has healed: every node answers `/healthcheck` with 200 and a
/// status other than unhealthy (a small disk may leave one degraded), and every node sees a leader
/// of the directory (a leaderless directory is only degraded, yet it is not healed); returns how
/// long that took.
pub async fn wait_healthy(api: &Api, nodes: &[String], within: Duration) -> Duration {
    let started = Instant::now();
    loop {
        let mut healed = true;
        let mut seen = Vec::new();
        for node in nodes {
            let url = format!("{node}/healthcheck");
            let answer = api.try_call(Method::GET, url, "").await;
            healed &= answer.as_ref().is_some_and(|a| {
                a.status == 200 && a.body["status"] != "unhealthy" && directory_led(&a.body)
            });
            seen.push(answer.map_or(format!("{node}: no answer"), |a| a.text));
        }
        if healed {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "not healed within {within:?}: {}",
            seen.join("\n")
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn directory_led(health: &serde_json::Value) -> bool {
    health["checks"].as_array().is_some_and(|checks| {
        checks
            .iter()
            .any(|c| c["componentName"] == "Raft directory group" && c["status"] == "healthy")
    })
}

/// Writes the summary where `.ci/run` prints it from (libtest captures a passing test's
/// output), and prints it.
pub fn keep_summary(file: &str, summary: &str) {
    println!("\n{summary}");
    let kept = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(file);
    std::fs::write(&kept, summary).expect("write the chaos summary");
}

/// Whether a proxied answer came from the application, which was told it is session `id` (both
/// the suites' applications echo the `X-Sessionplane-Session` they got). The login page a
/// refused browser request is redirected to answers 200 too, but it is not the application.
fn reached_application(answer: &super::Answer, id: &str) -> bool {
    answer.status == 200 && answer.text.contains(id)
}

/// `GET /rest/v1/iam/sessions/current` at `node` with `token`.
async fn current(api: &Api, node: &str, token: &str) -> super::Answer {
    let url = format!("{node}/rest/v1/iam/sessions/current");
    api.call(Method::GET, url, Some(token), None).await
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
