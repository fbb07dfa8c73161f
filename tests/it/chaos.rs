//! Faults under load on two sites of three nodes (real processes, each site on its own
//! 127.0.x.0/24): a site leader killed with SIGKILL, a node frozen (SIGSTOP), the WAN cut, a
//! minority cut off inside a site, a rolling restart of every node. Throughout, workers log in,
//! open websockets, call an application through every node's reverse proxy, revoke sessions,
//! lock and contain users at random nodes. Afterwards: every acknowledged session survives,
//! every acknowledged revocation and lock holds, no revoked token or locked user was ever
//! accepted after the site acknowledged it (by the api or through the proxy), and both sites
//! are healthy again on their own.

use crate::common;

use std::time::{Duration, Instant};

use common::chaos::{self, wait_healthy, Load};
use common::net::Cut;
use common::{signal, Api, TestSite, Tuning};

fn ips(site: &TestSite, nodes: &[usize]) -> Vec<String> {
    nodes
        .iter()
        .map(|i| format!("{}/32", site.nodes[*i].api.ip()))
        .collect()
}

fn api_urls(site: &TestSite) -> Vec<String> {
    (0..site.nodes.len()).map(|i| site.api_url(i)).collect()
}

/// The application behind every node's `/app/` route: 200 with the session it was told of.
async fn application() -> std::net::SocketAddr {
    let app = axum::Router::new().fallback(|headers: axum::http::HeaderMap| async move {
        let session = headers
            .get("x-sessionplane-session")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("none")
            .to_string();
        format!("session {session}")
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the application");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_work_survives_faults_and_the_sites_heal() {
    let _alone = common::turns::alone();
    let keys = tempfile::tempdir().expect("temp dir");
    let key = keys.path().join("service.key");
    std::fs::write(&key, "chaos-service-key-0123456789abcdef").expect("key");
    let octet = 200 + (std::process::id() % 20) as u8 * 2;
    let app = application().await;
    let tuning = Tuning {
        tail: vec![format!(
            "[[proxy]]\nprefix = \"/app/\"\nupstream = \"http://{app}\"\nstrip_prefix = true\nunauthenticated = \"401\""
        )],
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
    chaos::create_users(&api, &c1, &admin).await;
    let everyone = [api_urls(&central), api_urls(&east)].concat();
    wait_healthy(&api, &everyone, Duration::from_secs(30)).await;

    let load = Load::new(
        vec![("central", api_urls(&central)), ("east", api_urls(&east))],
        vec![service_token.clone(), service_token],
        Some("/app/"),
    );
    let running = load.start();
    let mut faults: Vec<(String, Duration)> = Vec::new();
    let under = Duration::from_secs(4);
    let heal = Duration::from_secs(60);
    tokio::time::sleep(Duration::from_secs(2)).await;

    // 1. The central leader dies (SIGKILL) and comes back.
    let leader = central.wait_for_leader(Duration::from_secs(10)).await;
    central.kill(leader);
    tokio::time::sleep(under).await;
    central.restart(leader).await;
    faults.push((
        format!("SIGKILL central leader c{}", leader + 1),
        wait_healthy(&api, &everyone, heal).await,
    ));

    // 2. An east node freezes (SIGSTOP) and thaws.
    let frozen = east.pid(1).expect("e2 runs");
    signal(frozen, "STOP");
    tokio::time::sleep(under).await;
    signal(frozen, "CONT");
    faults.push((
        "SIGSTOP e2 for 4 s".into(),
        wait_healthy(&api, &everyone, heal).await,
    ));

    // 3. The WAN between the sites is cut.
    {
        let _cut = Cut::sites(octet, octet + 1);
        tokio::time::sleep(under).await;
    }
    faults.push((
        "WAN cut for 4 s".into(),
        wait_healthy(&api, &everyone, heal).await,
    ));

    // 4. A minority of central (c3) is cut off from c1 and c2.
    {
        let _cut = Cut::between(&ips(&central, &[2]), &ips(&central, &[0, 1]));
        tokio::time::sleep(under).await;
    }
    faults.push((
        "c3 cut off inside central for 4 s".into(),
        wait_healthy(&api, &everyone, heal).await,
    ));

    // 5. Every node restarts, one after the other.
    let rolling = Instant::now();
    for site in [&mut central, &mut east] {
        for i in 0..3 {
            site.restart(i).await;
            site.wait_for_leader(Duration::from_secs(20)).await;
        }
    }
    let healed = wait_healthy(&api, &everyone, heal).await;
    faults.push((
        "rolling restart of all 6 nodes".into(),
        rolling.elapsed() + healed,
    ));

    running.stop().await;
    let verdict = load.verify(&api).await;
    chaos::keep_summary("chaos-summary.txt", &load.summary(&faults, &verdict));
    load.judge(&verdict);
}
