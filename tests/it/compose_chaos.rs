//! The chaos suite on the compose deployment (deploy/docker-compose.yml): two sites of three
//! containers, each with its own addresses. Under the same steady load and the same judge as
//! `tests/it/chaos.rs`, Docker injects the faults: a site leader killed (SIGKILL), a node paused,
//! the WAN cut (`docker network disconnect`), a minority cut off inside a site, a rolling
//! restart of every container, and a node's disk filled up.
//!
//! It needs the deployment up, which `deploy/test-compose.sh` does before running it (with
//! e3's data on a small filesystem named by `SESSIONPLANE_E3_DISK`); hence `#[ignore]` here:
//! `cargo test` alone has no containers to hurt.

use crate::common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::chaos::{self, wait_healthy, Load};
use common::Api;

const ADMIN_PASSWORD: &str = "example-only-admin-password";
const CENTRAL: [&str; 3] = ["172.28.1.11", "172.28.1.12", "172.28.1.13"];
const EAST: [&str; 3] = ["172.28.2.11", "172.28.2.12", "172.28.2.13"];

fn docker(args: &[&str]) -> String {
    let output = Command::new("docker").args(args).output().expect("docker");
    assert!(
        output.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

fn urls(addresses: &[&str]) -> Vec<String> {
    addresses
        .iter()
        .map(|ip| format!("http://{ip}:8080"))
        .collect()
}

fn restarts(container: &str) -> u64 {
    docker(&["inspect", "-f", "{{.RestartCount}}", container])
        .parse()
        .expect("a restart count")
}

async fn admin_token(api: &Api, base: &str) -> String {
    api.token(base, "master.domain", "admin", ADMIN_PASSWORD)
        .await
}

/// Node id of the central site group's leader (ids 1–3 are c1–c3).
async fn central_leader(api: &Api, base: &str, token: &str) -> u64 {
    let status = api
        .get(format!("{base}/cluster/status"))
        .as_(token)
        .expect(200)
        .await;
    status.body["groups"][0]["leader"]
        .as_u64()
        .unwrap_or_else(|| panic!("no leader: {}", status.text))
}

/// Fills the filesystem under `dir` to the last byte; returns the filler file.
fn fill(dir: &Path) -> PathBuf {
    let filler = dir.join("filler");
    let mut file = std::fs::File::create(&filler).expect("create the filler");
    let chunk = vec![0u8; 1 << 20];
    while file.write_all(&chunk).is_ok() {}
    let _ = file.sync_all();
    filler
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs the compose deployment up: deploy/test-compose.sh runs it"]
async fn acknowledged_work_survives_container_faults_and_the_sites_heal() {
    let small_disk = PathBuf::from(
        std::env::var("SESSIONPLANE_E3_DISK").expect("SESSIONPLANE_E3_DISK: e3's data directory"),
    );
    let api = Api::default();
    let (central, east) = (urls(&CENTRAL), urls(&EAST));
    let everyone = [central.clone(), east.clone()].concat();
    let heal = Duration::from_secs(90);
    wait_healthy(&api, &everyone, heal).await;
    let central_admin = admin_token(&api, &central[0]).await;
    let east_admin = admin_token(&api, &east[0]).await;
    chaos::create_users(&api, &central[0], &central_admin).await;

    let load = Load::new(
        vec![("central", central.clone()), ("east", east.clone())],
        vec![central_admin.clone(), east_admin],
        Some("/app/"),
    );
    let running = load.start();
    let mut faults: Vec<(String, Duration)> = Vec::new();
    let under = Duration::from_secs(4);
    tokio::time::sleep(Duration::from_secs(2)).await;

    // 1. The central leader's container is killed (SIGKILL) and started again.
    let leader = central_leader(&api, &central[0], &central_admin).await;
    let container = format!("sessionplane-c{leader}");
    docker(&["kill", "-s", "KILL", &container]);
    tokio::time::sleep(under).await;
    docker(&["start", &container]);
    faults.push((
        format!("SIGKILL central leader c{leader}"),
        wait_healthy(&api, &everyone, heal).await,
    ));

    // 2. e2 is paused (its processes frozen), then unpaused.
    docker(&["pause", "sessionplane-e2"]);
    tokio::time::sleep(under).await;
    docker(&["unpause", "sessionplane-e2"]);
    faults.push((
        "docker pause e2 for 4 s".into(),
        wait_healthy(&api, &everyone, heal).await,
    ));

    // 3. The east containers leave the WAN network.
    for n in 1..=3 {
        docker(&[
            "network",
            "disconnect",
            "sessionplane-wan",
            &format!("sessionplane-e{n}"),
        ]);
    }
    tokio::time::sleep(under).await;
    for n in 1..=3 {
        docker(&[
            "network",
            "connect",
            "--ip",
            &format!("172.28.0.2{n}"),
            "sessionplane-wan",
            &format!("sessionplane-e{n}"),
        ]);
    }
    faults.push((
        "WAN cut (network disconnect) for 4 s".into(),
        wait_healthy(&api, &everyone, heal).await,
    ));

    // 4. c3 leaves central's network: a minority cut off inside the site.
    docker(&[
        "network",
        "disconnect",
        "sessionplane-central",
        "sessionplane-c3",
    ]);
    tokio::time::sleep(under).await;
    docker(&[
        "network",
        "connect",
        "--ip",
        CENTRAL[2],
        "sessionplane-central",
        "sessionplane-c3",
    ]);
    faults.push((
        "c3 cut off inside central for 4 s".into(),
        wait_healthy(&api, &everyone, heal).await,
    ));

    // 5. Every container restarts, one after the other.
    let rolling = Instant::now();
    for node in ["c1", "c2", "c3", "e1", "e2", "e3"] {
        docker(&["restart", &format!("sessionplane-{node}")]);
        wait_healthy(&api, &everyone, heal).await;
    }
    faults.push((
        "rolling restart of all 6 containers".into(),
        rolling.elapsed(),
    ));

    // 6. e3's disk fills up: it stops and exits, Docker restarts it, the two others keep
    //    serving; once space is back it rejoins on its own.
    let before = restarts("sessionplane-e3");
    let filler = fill(&small_disk);
    let deadline = Instant::now() + Duration::from_secs(60);
    while restarts("sessionplane-e3") == before {
        assert!(Instant::now() < deadline, "e3 kept running on a full disk");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let logs = Command::new("docker")
        .args(["logs", "sessionplane-e3"])
        .output()
        .expect("docker logs");
    let logs =
        String::from_utf8_lossy(&logs.stderr).to_string() + &String::from_utf8_lossy(&logs.stdout);
    assert!(
        logs.contains("a Raft group stopped"),
        "e3 exited for another reason than its full disk:\n{logs}"
    );
    let login = api
        .login(&east[0], "master.domain", "admin", ADMIN_PASSWORD)
        .await;
    assert_eq!(login.status, 200, "east serves with e3 out: {}", login.text);
    std::fs::remove_file(&filler).expect("free the space");
    let freed = Instant::now();
    wait_healthy(&api, &everyone, Duration::from_secs(120)).await;
    faults.push(("e3's disk full, then freed".into(), freed.elapsed()));

    running.stop().await;
    let verdict = load.verify(&api).await;
    chaos::keep_summary(
        "compose-chaos-summary.txt",
        &load.summary(&faults, &verdict),
    );
    load.judge(&verdict);
}
