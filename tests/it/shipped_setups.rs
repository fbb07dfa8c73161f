//! What the project ships works as shipped: the example configs and the `demo` command.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::turns;
use sessionplane::testing::Config;
use sessionplane_cluster::{GroupId, PeerClient};

/// The shipped configs listen on fixed ports, and two of them share some (the single-node default
/// and the 3-node example's first node both take the mail ports 1143, 1465, 1587 and 1993): the
/// tests that start them take turns.
static FIXED_PORTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn example(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config")
        .join(name)
}

#[test]
fn every_example_config_loads_and_validates() {
    let default = Config::load(&example("sessionplane.toml")).expect("sessionplane.toml");
    assert_eq!(default.site, "local");
    let nodes: Vec<Config> = (1..=3)
        .map(|k| Config::load(&example(&format!("site-3/n{k}.toml"))).expect("site-3 config"))
        .collect();
    for node in &nodes {
        assert_eq!(
            node.site_nodes, nodes[0].site_nodes,
            "every node lists the same site nodes"
        );
        assert_eq!(node.cluster_secret, nodes[0].cluster_secret);
        assert_eq!(
            node.advertised_cluster(),
            node.site_nodes[(node.node_id - 1) as usize].cluster
        );
    }
}

const TWO_SITES: [&str; 6] = ["c1", "c2", "c3", "e1", "e2", "e3"];

#[test]
fn the_two_site_example_configs_agree() {
    let nodes: Vec<Config> = TWO_SITES
        .iter()
        .map(|n| Config::load(&example(&format!("sites-2/{n}.toml"))).expect("sites-2 config"))
        .collect();
    let everyone = |c: &Config| {
        let mut all: Vec<(String, u64, String, Option<String>)> = c
            .deployment_nodes()
            .into_iter()
            .map(|(site, n)| (site, n.id, n.cluster, n.api))
            .collect();
        all.sort();
        all
    };
    for node in &nodes {
        assert_eq!(
            everyone(node),
            everyone(&nodes[0]),
            "{}: the same deployment",
            node.node_name
        );
        assert_eq!(node.directory_voters(), vec![1, 2, 4]);
        assert_eq!(node.cluster_secret, nodes[0].cluster_secret);
        let me = node
            .deployment_nodes()
            .into_iter()
            .find(|(_, n)| n.id == node.node_id);
        let (site, me) = me.expect("every node lists itself");
        assert_eq!(site, node.site);
        assert_eq!(me.cluster, node.advertised_cluster());
        assert_eq!(me.api, Some(format!("http://{}", node.listen.api)));
    }
}

/// The six shipped processes form both sites, and a list of all sites from a central node
/// shows a session opened at east.
#[tokio::test(flavor = "multi_thread")]
async fn the_two_site_example_serves_both_sites() {
    let _turn = turns::shared();
    let _ports = FIXED_PORTS.lock().await;
    let workdir = tempfile::tempdir().unwrap();
    let mut children: Vec<_> = TWO_SITES
        .iter()
        .map(|n| {
            Command::new(env!("CARGO_BIN_EXE_sessionplane"))
                .args(["serve", "--config"])
                .arg(example(&format!("sites-2/{n}.toml")))
                .current_dir(workdir.path())
                .env("SESSIONPLANE_ADMIN_PASSWORD", "two-site-example-pw")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn")
        })
        .collect();
    let outcome = two_sites_answer().await;
    for child in &mut children {
        let _ = child.kill();
        let _ = child.wait();
    }
    let sites = outcome.expect("the two-site example");
    assert_eq!(sites, ["central", "east"]);
}

/// Logs in at e1 then at c1 (once the directory reached them) and lists every site from c1:
/// the sites of the sessions listed.
async fn two_sites_answer() -> Result<Vec<String>, String> {
    let http = reqwest::Client::new();
    let body = serde_json::json!({
        "domain": "master.domain", "login": "admin", "pwd": "two-site-example-pw",
        "session_type": "token"
    });
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut tokens = Vec::new();
    for api in ["http://127.0.0.1:8104", "http://127.0.0.1:8101"] {
        loop {
            let answer = http
                .post(format!("{api}/rest/v1/iam/sessions"))
                .json(&body)
                .send()
                .await;
            if let Ok(answer) = answer {
                if answer.status() == 200 {
                    let value: serde_json::Value =
                        answer.json().await.map_err(|e| e.to_string())?;
                    tokens.push(value["token"].as_str().unwrap_or_default().to_string());
                    break;
                }
            }
            if Instant::now() > deadline {
                return Err(format!("no login at {api} within 40 s"));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    let listed: serde_json::Value = http
        .get("http://127.0.0.1:8101/rest/v1/master/logicalroles/ws/sessions?sites=all")
        .bearer_auth(&tokens[1])
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let mut sites: Vec<String> = listed
        .as_array()
        .ok_or(format!("not a list: {listed}"))?
        .iter()
        .filter_map(|item| item["site"].as_str().map(str::to_owned))
        .collect();
    sites.sort();
    sites.dedup();
    Ok(sites)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_three_node_example_forms_a_site() {
    let _turn = turns::shared();
    let _ports = FIXED_PORTS.lock().await;
    let workdir = tempfile::tempdir().unwrap();
    let mut children: Vec<_> = (1..=3)
        .map(|k| {
            Command::new(env!("CARGO_BIN_EXE_sessionplane"))
                .args(["serve", "--config"])
                .arg(example(&format!("site-3/n{k}.toml")))
                .current_dir(workdir.path())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(workdir.path().join(format!("n{k}.log"))).unwrap())
                .spawn()
                .expect("spawn")
        })
        .collect();
    let config = Config::load(&example("site-3/n1.toml")).unwrap();
    let peers = PeerClient::new(&config.cluster_secret, None, Default::default()).unwrap();
    let group = GroupId::new("site:central").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let formed = loop {
        let mut voters = Vec::new();
        for node in &config.site_nodes {
            let status = peers
                .status(&node.cluster, &group, Duration::from_millis(500))
                .await;
            voters.push(
                status
                    .ok()
                    .filter(|s| s.leader.is_some())
                    .map(|s| s.voters.len()),
            );
        }
        if voters.iter().all(|v| *v == Some(3)) {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for child in &mut children {
        let _ = child.kill();
        let _ = child.wait();
    }
    let logs: Vec<String> = (1..=3)
        .map(|k| std::fs::read_to_string(workdir.path().join(format!("n{k}.log"))).unwrap())
        .collect();
    assert!(formed, "the example site did not form; its logs: {logs:#?}");
    for k in 1..=3 {
        assert!(
            workdir.path().join(format!("data/c{k}/raft.redb")).exists(),
            "c{k} keeps its data in ./data/c{k}"
        );
    }
}

#[test]
fn demo_prints_one_json_line_then_stops_cleanly_on_sigterm() {
    let _turn = turns::shared();
    let data = tempfile::tempdir().unwrap();
    let port_base = 20_000 + (std::process::id() % 500) as u16 * 10;
    let mut child = Command::new(env!("CARGO_BIN_EXE_sessionplane"))
        .args([
            "demo",
            "--nodes",
            "3",
            "--port-base",
            &port_base.to_string(),
            "--data-dir",
        ])
        .arg(data.path())
        .env_remove("SESSIONPLANE_ADMIN_PASSWORD")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn demo");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("read the line");
    let value: serde_json::Value = serde_json::from_str(&line).expect("one line of JSON");
    let nodes = value["nodes"].as_array().expect("nodes");
    assert_eq!(nodes.len(), 3);
    for (k, node) in nodes.iter().enumerate() {
        assert_eq!(node["site"], "local");
        assert_eq!(node["name"], format!("n{}", k + 1));
        assert_eq!(
            node["api"],
            format!("http://127.0.0.1:{}", port_base + 1001 + k as u16)
        );
        assert_eq!(
            node["cluster"],
            format!("http://127.0.0.1:{}", port_base + 1 + k as u16)
        );
    }
    let password = value["admin_password"]
        .as_str()
        .expect("a generated password");
    assert!(password.len() >= 16, "a weak password: {password:?}");
    let api = nodes[1]["api"].as_str().unwrap();
    assert_eq!(
        login_status(api, password),
        200,
        "the printed password logs in"
    );
    assert_eq!(login_status(api, "not-the-password"), 401);

    let exit = stop_with_sigterm(&mut child);
    assert!(exit.success(), "demo did not stop cleanly: {exit:?}");
}

#[test]
fn serve_without_config_is_ready_and_stops_cleanly_even_with_its_stderr_closed() {
    let _turn = turns::shared();
    let _ports = FIXED_PORTS.blocking_lock();
    let workdir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sessionplane"))
        .arg("serve")
        .current_dir(workdir.path())
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    let mut password = None;
    for line in stderr.lines() {
        let line = line.expect("stderr line");
        if let Some((_, rest)) =
            line.split_once("First start: administrator admin@master.domain, password ")
        {
            password = Some(rest.trim().to_string());
        }
        seen.push(line);
        if password.is_some() && seen.iter().any(|l| l.contains(" ready")) {
            break;
        }
    }
    let password = password.expect("the generated administrator password, printed once");
    assert_eq!(login_status("http://127.0.0.1:8080", &password), 200);
    let mentions = seen.iter().filter(|l| l.contains(&password)).count();
    assert_eq!(
        mentions,
        1,
        "printed once, never logged:\n{}",
        seen.join("\n")
    );
    assert!(
        seen.iter().any(|l| l.contains(" ready")),
        "never ready:\n{}",
        seen.join("\n")
    );
    assert!(
        seen.iter().any(|l| l.contains("127.0.0.1:8080")),
        "api on 127.0.0.1:8080:\n{}",
        seen.join("\n")
    );
    assert!(
        workdir.path().join("data/raft.redb").exists(),
        "data goes to ./data"
    );
    assert!(
        workdir.path().join("data/cluster_secret").exists(),
        "a lone node generates its secret"
    );

    let exit = stop_with_sigterm(&mut child);
    assert!(exit.success(), "serve did not stop cleanly: {exit:?}");
}

/// On a first start, `ready` comes once the administrator exists: a login right after it works
/// (it used to come with the site's leader, before the administrator was written).
#[test]
fn the_administrator_logs_in_as_soon_as_serve_says_ready() {
    let _turn = turns::shared();
    let workdir = tempfile::tempdir().unwrap();
    let config = workdir.path().join("node.toml");
    let listen = ["api", "cluster", "imap", "imaps", "smtp", "smtps"]
        .map(|name| format!("{name} = \"127.0.0.1:0\""))
        .join("\n");
    std::fs::write(
        &config,
        format!("data_dir = \"data\"\n\n[listen]\n{listen}\n"),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sessionplane"))
        .args(["serve", "--config"])
        .arg(&config)
        .current_dir(workdir.path())
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .env("SESSIONPLANE_ADMIN_PASSWORD", "ready-admin-password-1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let ready = stderr
        .lines()
        .map_while(Result::ok)
        .find(|line| line.contains(" ready"))
        .expect("serve says ready");
    let api = ready
        .split_whitespace()
        .find_map(|word| word.strip_prefix("api="))
        .expect("the ready line names the api address");
    assert_eq!(
        login_status(&format!("http://{api}"), "ready-admin-password-1"),
        200,
        "a login right after ready: {ready}"
    );
    let exit = stop_with_sigterm(&mut child);
    assert!(exit.success(), "serve did not stop cleanly: {exit:?}");
}

#[test]
fn demo_starts_several_sites() {
    let _turn = turns::shared();
    let data = tempfile::tempdir().unwrap();
    // Ports base..base+5,006, below the kernel's ephemeral range (32,768 and up, where other
    // tests' connections take their local ports) and apart from the other demo test's.
    let port_base = 10_000 + (std::process::id() % 400) as u16 * 10;
    let mut child = Command::new(env!("CARGO_BIN_EXE_sessionplane"))
        .args([
            "demo",
            "--sites",
            "central,east",
            "--nodes",
            "3",
            "--port-base",
        ])
        .arg(port_base.to_string())
        .arg("--data-dir")
        .arg(data.path())
        .env("SESSIONPLANE_ADMIN_PASSWORD", "demo-two-sites-pw")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn demo");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("read the line");
    let value: serde_json::Value = serde_json::from_str(&line).expect("one line of JSON");
    let nodes = value["nodes"].as_array().expect("nodes");
    let named: Vec<(String, String)> = nodes
        .iter()
        .map(|n| {
            (
                n["site"].as_str().unwrap().to_string(),
                n["name"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = [
        ("central", "c1"),
        ("central", "c2"),
        ("central", "c3"),
        ("east", "e1"),
        ("east", "e2"),
        ("east", "e3"),
    ]
    .iter()
    .map(|(s, n)| (s.to_string(), n.to_string()))
    .collect();
    assert_eq!(named, expected);
    for node in nodes {
        for listener in ["api", "cluster", "imap", "imaps", "smtp", "smtps"] {
            assert!(node[listener].is_string(), "{listener} of {node}");
        }
    }
    let east = nodes[4]["api"].as_str().unwrap();
    assert_eq!(
        login_status(east, "demo-two-sites-pw"),
        200,
        "the directory reached east"
    );
    let exit = stop_with_sigterm(&mut child);
    assert!(exit.success(), "demo did not stop cleanly: {exit:?}");
}

/// Logs in as the first administrator; the answer's status.
fn login_status(api: &str, password: &str) -> u16 {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let body = serde_json::json!({
            "domain": "master.domain", "login": "admin", "pwd": password
        });
        reqwest::Client::new()
            .post(format!("{api}/rest/v1/iam/sessions"))
            .json(&body)
            .send()
            .await
            .expect("login sent")
            .status()
            .as_u16()
    })
}

/// Sends SIGTERM and waits for the process to end.
fn stop_with_sigterm(child: &mut std::process::Child) -> std::process::ExitStatus {
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -TERM failed");
    child.wait().unwrap()
}
