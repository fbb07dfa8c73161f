//! The command line against a real node: service tokens issued with `token issue` (HS256 and
//! EdDSA keys made by openssl), then `domains` and `users` through the REST API, `--json` on
//! every command; `serve` (its data dir's modes, a bind error) and the demo's text.

use crate::common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::{Api, TestSite, Tuning};

fn sessionplane(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sessionplane"));
    command
        .args(args)
        .env_remove("SESSIONPLANE_TOKEN")
        .env_remove("SESSIONPLANE_API")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (key, value) in env {
        command.env(key, value);
    }
    let mut child = command.spawn().expect("spawn the cli");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).expect("write stdin");
    }
    drop(input);
    child.wait_with_output().expect("cli output")
}

fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn failed(output: &Output) -> String {
    assert!(!output.status.success(), "should have failed");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn openssl(args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl is installed (.ci/run installs it)");
    assert!(status.success(), "openssl {args:?}");
}

async fn site_with_service_key(lines: Vec<String>) -> TestSite {
    let site = TestSite::start(
        1,
        Tuning {
            iam: lines,
            ..Default::default()
        },
    )
    .await;
    site.wait_for_admin(0).await;
    site
}

fn issue(key: &Path, algorithm: &str) -> String {
    let key = key.to_str().unwrap();
    let token = ok(&sessionplane(
        &[
            "token",
            "issue",
            "--sub",
            "ci-robot",
            "--key-file",
            key,
            "--algorithm",
            algorithm,
        ],
        &[],
        None,
    ));
    token.trim().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn users_and_domains_through_the_cli_with_an_hs256_service_token() {
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("service.key");
    std::fs::write(&key, "cli-test-service-secret\n").unwrap();
    let site =
        site_with_service_key(vec![format!("service_key_file = \"{}\"", key.display())]).await;
    let api_url = site.api_url(0);
    let token = issue(&key, "hs256");
    let env = [
        ("SESSIONPLANE_API", api_url.as_str()),
        ("SESSIONPLANE_TOKEN", token.as_str()),
    ];

    ok(&sessionplane(&["domains", "add", "cli.org"], &env, None));
    let domains = ok(&sessionplane(&["domains", "list", "--json"], &env, None));
    let domains: serde_json::Value = serde_json::from_str(&domains).unwrap();
    assert!(domains.as_array().unwrap().contains(&"cli.org".into()));

    ok(&sessionplane(
        &[
            "users",
            "add",
            "fay@cli.org",
            "--password-stdin",
            "--property",
            "team=red",
        ],
        &env,
        Some("fay-first-password\n"),
    ));
    let generated = ok(&sessionplane(&["users", "add", "gus@cli.org"], &env, None));
    let gus_password = generated
        .rsplit("password: ")
        .next()
        .unwrap()
        .trim()
        .to_string();
    assert!(gus_password.len() >= 16, "{generated}");

    let api = Api::default();
    assert_eq!(
        api.login(&api_url, "cli.org", "fay", "fay-first-password")
            .await
            .status,
        200
    );
    assert_eq!(
        api.login(&api_url, "cli.org", "gus", &gus_password)
            .await
            .status,
        200
    );

    let table = ok(&sessionplane(
        &["users", "list", "--domain", "cli.org"],
        &env,
        None,
    ));
    assert!(
        table.contains("fay@cli.org") && table.contains("gus@cli.org"),
        "{table}"
    );
    let listed = ok(&sessionplane(&["users", "list", "--json"], &env, None));
    let listed: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let fay = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "fay@cli.org")
        .expect("fay listed");
    assert_eq!(fay["properties"]["team"], "red");

    ok(&sessionplane(
        &["users", "passwd", "fay@cli.org", "--password-stdin"],
        &env,
        Some("fay-second-password\n"),
    ));
    assert_eq!(
        api.login(&api_url, "cli.org", "fay", "fay-first-password")
            .await
            .status,
        401
    );
    assert_eq!(
        api.login(&api_url, "cli.org", "fay", "fay-second-password")
            .await
            .status,
        200
    );

    ok(&sessionplane(
        &["users", "rm", "fay@cli.org", "gus@cli.org"],
        &env,
        None,
    ));
    let after: serde_json::Value = serde_json::from_str(&ok(&sessionplane(
        &["users", "list", "--domain", "cli.org", "--json"],
        &env,
        None,
    )))
    .unwrap();
    assert_eq!(after, serde_json::json!([]));

    // Failures say what the api said, and exit non-zero.
    let unknown = failed(&sessionplane(
        &["users", "add", "x@nowhere.org"],
        &env,
        None,
    ));
    assert!(unknown.contains("404 notFound"), "{unknown}");
    let anonymous = failed(&sessionplane(
        &["domains", "list"],
        &[("SESSIONPLANE_API", api_url.as_str())],
        None,
    ));
    assert!(anonymous.contains("401 Unauthorized"), "{anonymous}");
    let unreachable = failed(&sessionplane(
        &["domains", "list", "--api", "http://127.0.0.1:9"],
        &[],
        None,
    ));
    assert!(unreachable.contains("cannot reach"), "{unreachable}");
    assert!(!unreachable.contains("panicked"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_eddsa_service_key_verifies_tokens_its_private_side_signed_and_no_others() {
    let keys = tempfile::tempdir().unwrap();
    let private = keys.path().join("ed.key");
    let public = keys.path().join("ed.pub");
    let stranger = keys.path().join("stranger.key");
    for key in [&private, &stranger] {
        openssl(&[
            "genpkey",
            "-algorithm",
            "ed25519",
            "-out",
            key.to_str().unwrap(),
        ]);
    }
    openssl(&[
        "pkey",
        "-in",
        private.to_str().unwrap(),
        "-pubout",
        "-out",
        public.to_str().unwrap(),
    ]);
    let site = site_with_service_key(vec![
        format!("service_key_file = \"{}\"", public.display()),
        "service_key_algorithm = \"EdDSA\"".into(),
    ])
    .await;
    let api = Api::default();
    let url = format!("{}/domains", site.api_url(0));

    let good = issue(&private, "eddsa");
    api.get(url.clone()).as_(&good).expect(200).await;

    let forged = issue(&stranger, "eddsa");
    api.get(url).as_(&forged).expect(401).await;

    let wrong_kind = failed(&sessionplane(
        &[
            "token",
            "issue",
            "--sub",
            "x",
            "--key-file",
            public.to_str().unwrap(),
            "--algorithm",
            "eddsa",
        ],
        &[],
        None,
    ));
    assert!(wrong_kind.contains("key"), "{wrong_kind}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_list_kill_and_logout_through_the_cli() {
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("service.key");
    std::fs::write(&key, "cli-sessions-service-secret").unwrap();
    let site =
        site_with_service_key(vec![format!("service_key_file = \"{}\"", key.display())]).await;
    let api_url = site.api_url(0);
    let token = issue(&key, "hs256");
    let env = [
        ("SESSIONPLANE_API", api_url.as_str()),
        ("SESSIONPLANE_TOKEN", token.as_str()),
    ];
    ok(&sessionplane(&["domains", "add", "s.org"], &env, None));
    ok(&sessionplane(
        &["users", "add", "hal@s.org", "--password-stdin"],
        &env,
        Some("hal-password-1\n"),
    ));
    let api = Api::default();
    let mut sessions = Vec::new();
    for _ in 0..3 {
        let answer = api.login(&api_url, "s.org", "hal", "hal-password-1").await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        sessions.push(answer.body["session_id"].as_str().unwrap().to_string());
    }
    let listed = |extra: &[&str]| -> serde_json::Value {
        let mut args = vec!["sessions", "list", "--json", "--user", "hal"];
        args.extend_from_slice(extra);
        serde_json::from_str(&ok(&sessionplane(&args, &env, None))).unwrap()
    };
    assert_eq!(listed(&[]).as_array().unwrap().len(), 3);
    assert_eq!(
        listed(&["--sites", "all", "--domain", "s.org"])
            .as_array()
            .unwrap()
            .len(),
        3
    );
    let table = ok(&sessionplane(&["sessions", "list"], &env, None));
    assert!(
        table.contains(&sessions[0]) && table.contains("hal@s.org"),
        "{table}"
    );

    ok(&sessionplane(
        &["sessions", "kill", &sessions[0]],
        &env,
        None,
    ));
    assert_eq!(listed(&[]).as_array().unwrap().len(), 2);
    let logout = ok(&sessionplane(
        &["sessions", "logout", "hal@s.org", "--sites", "all"],
        &env,
        None,
    ));
    assert!(logout.contains("closed 2 session(s)"), "{logout}");
    assert!(listed(&[]).as_array().unwrap().is_empty());

    let error = failed(&sessionplane(
        &["sessions", "kill", "not-an-id"],
        &env,
        None,
    ));
    assert!(error.contains("400 InvalidArgument"), "{error}");
    let error = failed(&sessionplane(
        &["sessions", "list", "--sites", "[\"west\"]"],
        &env,
        None,
    ));
    assert!(error.contains("known sites: local"), "{error}");
    let error = failed(&sessionplane(
        &["sessions", "logout", "nobody@s.org"],
        &env,
        None,
    ));
    assert!(error.contains("404 notFound"), "{error}");
}

#[tokio::test(flavor = "multi_thread")]
async fn groups_users_health_tasks_and_completions_through_the_cli() {
    let site = TestSite::start(1, Tuning::default()).await;
    site.wait_for_admin(0).await;
    let base = site.api_url(0);
    let admin = common::Api::default().admin_token(&base).await;
    let env = [
        ("SESSIONPLANE_SERVER", ""),
        ("SESSIONPLANE_TOKEN", admin.as_str()),
    ];
    let run = |args: &[&str]| {
        let mut all = vec!["--server", base.as_str()];
        all.splice(0..0, args.iter().copied());
        sessionplane(&all, &env, None)
    };
    ok(&run(&["domains", "add", "example.net"]));
    ok(&sessionplane(
        &[
            "users",
            "add",
            "ann@example.net",
            "--password-stdin",
            "--server",
            &base,
        ],
        &env,
        Some("ann-password-1\n"),
    ));
    ok(&run(&[
        "groups",
        "add",
        "admins@example.net",
        "--member",
        "ann@example.net",
    ]));
    let listed = ok(&run(&["groups", "list", "--domain", "example.net"]));
    assert!(
        listed.contains("admins@example.net") && listed.contains("ann@example.net"),
        "{listed}"
    );
    ok(&run(&[
        "groups",
        "members",
        "admins@example.net",
        "--remove",
        "ann@example.net",
    ]));
    let json = ok(&run(&["groups", "list", "--json"]));
    let groups: serde_json::Value = serde_json::from_str(&json).expect("json");
    let admins = groups
        .as_array()
        .and_then(|g| g.iter().find(|g| g["domain"] == "example.net"))
        .expect("the group");
    assert_eq!(admins["members"], serde_json::json!([]));
    ok(&run(&["groups", "rm", "admins@example.net"]));
    assert!(failed(&run(&[
        "groups",
        "members",
        "admins@example.net",
        "--add",
        "ann@example.net"
    ]))
    .contains("404"));

    ok(&run(&["users", "disable", "ann@example.net"]));
    let listed = ok(&run(&["users", "list", "--domain", "example.net"]));
    assert!(listed.contains("disabled"), "{listed}");
    ok(&run(&["users", "enable", "ann@example.net"]));
    assert!(!ok(&run(&["users", "list", "--domain", "example.net"])).contains("disabled"));

    let health = ok(&run(&["health"]));
    assert!(
        health.contains("Raft site group") && health.contains("healthy"),
        "{health}"
    );
    let tasks = ok(&run(&["tasks", "list", "--json"]));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&tasks).unwrap(),
        serde_json::json!([])
    );
    assert!(failed(&run(&["tasks", "show", "not-a-task"])).contains("400"));

    let completions = ok(&sessionplane(&["completions", "bash"], &[], None));
    assert!(
        completions.contains("sessionplane") && completions.contains("sessions"),
        "bash completions"
    );
}

/// Standard output as JSON, failing with what the command printed when it is not.
fn json_of(output: &Output) -> serde_json::Value {
    let stdout = ok(output);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn json_is_a_global_flag_that_every_command_honours() {
    let site = TestSite::start(1, Tuning::default()).await;
    site.wait_for_admin(0).await;
    let base = site.api_url(0);
    let admin = Api::default().admin_token(&base).await;
    let env = [
        ("SESSIONPLANE_API", base.as_str()),
        ("SESSIONPLANE_TOKEN", admin.as_str()),
    ];
    let run = |args: &[&str]| json_of(&sessionplane(args, &env, None));

    // Before the command, after it, or after its arguments: the same flag.
    assert!(run(&["--json", "sessions", "list"]).is_array());
    assert!(run(&["sessions", "--json", "list", "--sites", "all"]).is_array());
    assert_eq!(
        run(&["--json", "domains", "add", "j.org"])["created"],
        "j.org"
    );

    let added = run(&["users", "add", "gus@j.org", "--json"]);
    assert_eq!(added["created"], "gus@j.org");
    let password = added["password"].as_str().expect("the generated password");
    assert_eq!(
        Api::default()
            .login(&base, "j.org", "gus", password)
            .await
            .status,
        200
    );
    let changed = run(&["--json", "users", "passwd", "gus@j.org"]);
    let password = changed["password"].as_str().expect("the new password");
    let session = Api::default().login(&base, "j.org", "gus", password).await;
    assert_eq!(session.status, 200, "{}", session.text);
    let given = json_of(&sessionplane(
        &["--json", "users", "add", "ivy@j.org", "--password-stdin"],
        &env,
        Some("ivy-password-1\n"),
    ));
    assert_eq!(given, serde_json::json!({"created": "ivy@j.org"}));

    assert_eq!(
        run(&["--json", "users", "disable", "ivy@j.org"])["disabled"],
        "ivy@j.org"
    );
    assert_eq!(
        run(&["--json", "users", "enable", "ivy@j.org"])["enabled"],
        "ivy@j.org"
    );
    assert!(run(&["--json", "users", "list"]).is_array());
    assert!(run(&["--json", "domains", "list"]).is_array());
    let group = [
        "--json",
        "groups",
        "add",
        "admins@j.org",
        "--member",
        "ivy@j.org",
    ];
    assert_eq!(run(&group)["created"], "admins@j.org");
    let members = run(&[
        "--json",
        "groups",
        "members",
        "admins@j.org",
        "--add",
        "gus@j.org",
    ]);
    assert_eq!(members["updated"], "admins@j.org");
    assert!(run(&["--json", "groups", "list"]).is_array());
    assert_eq!(
        run(&["--json", "groups", "rm", "admins@j.org"])["deleted"],
        "admins@j.org"
    );

    let id = session.body["session_id"].as_str().unwrap();
    assert_eq!(run(&["--json", "sessions", "kill", id])["killed"], id);
    assert_eq!(
        run(&["--json", "sessions", "logout", "gus@j.org"])["closed"],
        0
    );
    assert!(run(&["--json", "channels", "list"]).is_array());
    let one = run(&["--json", "channels", "disconnect", "gus@j.org"]);
    assert_eq!(one["disconnected"], serde_json::json!(["gus@j.org"]));
    assert_eq!(
        run(&["--json", "channels", "disconnect", "--all"])["disconnected"],
        "all"
    );
    assert!(run(&["--json", "certs", "show"]).is_array());
    assert_eq!(run(&["--json", "certs", "reload"])["reloaded"], true);
    assert!(run(&["--json", "cluster", "status"])["groups"].is_array());
    assert!(run(&["--json", "tasks", "list"]).is_array());
    assert_eq!(run(&["--json", "health"])["status"], "healthy");
    let deleted = run(&["--json", "users", "rm", "gus@j.org", "ivy@j.org"]);
    assert_eq!(
        deleted["deleted"],
        serde_json::json!(["gus@j.org", "ivy@j.org"])
    );
    assert_eq!(
        run(&["--json", "domains", "rm", "j.org"])["deleted"],
        "j.org"
    );

    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("service.key");
    std::fs::write(&key, "json-service-secret").unwrap();
    let issued = run(&[
        "--json",
        "token",
        "issue",
        "--sub",
        "ci",
        "--key-file",
        key.to_str().unwrap(),
    ]);
    assert_eq!(
        issued["token"].as_str().map(|t| t.split('.').count()),
        Some(3)
    );
}

/// A free port on 127.0.0.1 (free once returned: the node binds it next).
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}

/// A lone node's config: every listener on a free port, no certificate and no secrets given
/// (so the node generates them into its data dir), a snapshot after every entry.
fn lone_node_config(dir: &Path, api: u16) -> std::path::PathBuf {
    let listen: Vec<String> = ["imap", "imaps", "smtp", "smtps", "cluster"]
        .iter()
        .map(|name| format!("{name} = \"127.0.0.1:{}\"", free_port()))
        .collect();
    let text = format!(
        "data_dir = \"{}\"\n\n[listen]\napi = \"127.0.0.1:{api}\"\n{}\n\n[raft]\nsnapshot_every = 1\n",
        dir.join("data").display(),
        listen.join("\n"),
    );
    let config = dir.join("node.toml");
    std::fs::write(&config, text).unwrap();
    config
}

#[test]
fn a_bind_error_is_said_once_and_fails_the_start() {
    let _turn = common::turns::shared();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let config = lone_node_config(dir.path(), port);
    let output = sessionplane(&["serve", "--config", config.to_str().unwrap()], &[], None);
    let stderr = failed(&output);
    assert_eq!(
        stderr.matches("cannot listen on").count(),
        1,
        "said more than once:\n{stderr}"
    );
    assert_eq!(
        stderr.matches("in use").count(),
        1,
        "the cause repeated:\n{stderr}"
    );
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
    assert_eq!(output.status.code(), Some(1));
}

/// Runs `serve` until it logs that it is ready (and until `until` holds), then stops it;
/// its stderr.
fn serve_until(config: &Path, until: impl Fn() -> bool) -> String {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_sessionplane"))
        .args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "info")
        .env("SESSIONPLANE_ADMIN_PASSWORD", "data-dir-admin-pw")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn serve");
    let mut seen = String::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.expect("stderr line");
        seen.push_str(&line);
        seen.push('\n');
        if line.contains(" ready") {
            break;
        }
    }
    assert!(seen.contains(" ready"), "the node did not start:\n{seen}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !until() {
        assert!(std::time::Instant::now() < deadline, "never came:\n{seen}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    seen
}

/// Every directory under `root` (itself included) and every file, with its mode.
fn modes(root: &Path) -> Vec<(std::path::PathBuf, bool, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut found = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let meta = std::fs::symlink_metadata(&dir).unwrap();
        found.push((dir.clone(), true, meta.permissions().mode() & 0o777));
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            match meta.is_dir() {
                true => pending.push(path),
                false => found.push((path, false, meta.permissions().mode() & 0o777)),
            }
        }
    }
    found
}

fn assert_private(root: &Path) {
    let all = modes(root);
    for (path, dir, mode) in &all {
        let wanted = if *dir { 0o700 } else { 0o600 };
        assert_eq!(*mode, wanted, "{} is {mode:o}", path.display());
    }
    let names: Vec<String> = all
        .iter()
        .filter_map(|(p, _, _)| p.strip_prefix(root).ok())
        .map(|p| p.display().to_string())
        .collect();
    for expected in [
        "raft.redb",
        "cluster_secret",
        "token_key",
        "tls/key.pem",
        "tls/cert.pem",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "no {expected} in {names:?}"
        );
    }
    assert!(
        names.iter().any(|n| n.ends_with("current.snap")),
        "no snapshot in {names:?}"
    );
}

fn has_snapshot(data: &Path) -> bool {
    modes(data)
        .iter()
        .any(|(p, _, _)| p.ends_with("current.snap"))
}

#[test]
fn the_data_dir_is_the_nodes_alone_and_a_looser_one_is_tightened_on_start() {
    let _turn = common::turns::shared();
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = lone_node_config(dir.path(), free_port());
    serve_until(&config, || has_snapshot(&data));
    assert_private(&data);

    let loosen = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    loosen(&data, 0o755);
    loosen(&data.join("tls"), 0o755);
    loosen(&data.join("raft.redb"), 0o644);
    loosen(&data.join("tls/cert.pem"), 0o644);
    loosen(&data.join("token_key"), 0o666);
    let stderr = serve_until(&config, || true);
    assert_private(&data);
    assert!(
        stderr.contains("readable by others") && stderr.contains("5 entries"),
        "the tightening is not logged:\n{stderr}"
    );
}

#[test]
fn the_demo_tells_people_every_listener_and_where_the_admin_password_is() {
    use std::io::{BufRead, BufReader};
    let _turn = common::turns::shared();
    let data = tempfile::tempdir().unwrap();
    // Below the ephemeral ports, apart from the other demo tests' ports: the demo of two sites
    // in shipped_setups, in this same process, takes base + 1..=6 (and + 1001..=1006, ...)
    // from 10,000 + the same multiple of ten; this one node takes base + 8, + 1008, ...
    let port_base = 10_007 + (std::process::id() % 400) as u16 * 10;
    let mut child = Command::new(env!("CARGO_BIN_EXE_sessionplane"))
        .args([
            "demo",
            "--nodes",
            "1",
            "--port-base",
            &port_base.to_string(),
            "--data-dir",
        ])
        .arg(data.path())
        .env_remove("SESSIONPLANE_ADMIN_PASSWORD")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn demo");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("the JSON line");
    let described: serde_json::Value = serde_json::from_str(&line).expect("JSON");
    let mut said = String::new();
    for text in BufReader::new(child.stderr.take().unwrap()).lines() {
        let text = text.expect("stderr line");
        said.push_str(&text);
        said.push('\n');
        if text.contains("Ctrl-C") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let node = &described["nodes"][0];
    for listener in ["api", "cluster", "imap", "imaps", "smtp", "smtps"] {
        let address = node[listener].as_str().expect("a listener");
        assert!(
            said.contains(&format!("{listener} {address}")),
            "no {listener}:\n{said}"
        );
    }
    let file = data.path().join("admin_password");
    assert!(
        said.contains("admin@master.domain") && said.contains(&file.display().to_string()),
        "where the password is:\n{said}"
    );
    let password = described["admin_password"].as_str().expect("password");
    assert!(!said.contains(password), "the password on stderr:\n{said}");
}
