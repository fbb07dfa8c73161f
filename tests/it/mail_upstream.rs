//! sessionplane in front of real mail servers: Dovecot (IMAP) and Postfix (submission) from
//! Debian's packages, each test with its own pair (`common::mail_servers`). Users log in to
//! sessionplane with the directory's passwords; sessionplane logs in to the servers as their
//! master user. A disconnect ends the client's connection and the server's session.

use crate::common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::mail::{self, plain_credentials, LineClient};
use common::mail_servers::{crlf_to_lf, MailServers, ALICE, ALICE_PW, BOB, MASTER_USER};
use common::{add_user, Api, TestSite, Tuning};
use futures_util::StreamExt;
use serde_json::json;
use tokio::net::TcpStream;

const ALICE_SP: &str = "alice-directory-pw";
const BOB_SP: &str = "bob-directory-pw";
const MASTER_PW: &str = "master-of-mail-41";
const WAIT: Duration = Duration::from_secs(10);
/// In an override's value: the port of Dovecot's implicit-TLS listener.
const IMAPS_PORT: &str = "@IMAPS@";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// The mail servers, and a site of `nodes` nodes relaying to them; `overrides` replace keys
/// of `[mail.upstream]` (`(key, TOML value)`).
struct Setup {
    servers: MailServers,
    site: TestSite,
    api: Api,
    admin: String,
}

async fn setup(nodes: u64, overrides: &[(&str, String)]) -> Setup {
    setup_with(nodes, overrides, ALICE_SP).await
}

/// The nodes' config for relaying to `servers`: `[mail.upstream]` with `overrides`, and
/// plaintext logins allowed on the listeners (the tests' clients speak plain IMAP and SMTP).
fn upstream_tuning(servers: &MailServers, overrides: &[(&str, String)]) -> Tuning {
    let secret = servers.dovecot.dir().join("master.secret");
    std::fs::write(&secret, format!("{MASTER_PW}\n")).expect("write the master secret");
    let mut keys = std::collections::BTreeMap::from([
        ("imap", format!("\"127.0.0.1:{}\"", servers.dovecot.imap)),
        (
            "smtp",
            format!("\"127.0.0.1:{}\"", servers.postfix.submission),
        ),
        ("ca_file", format!("{:?}", servers.dovecot.ca_pem())),
        ("master_user", format!("\"{MASTER_USER}\"")),
        ("master_secret_file", format!("{secret:?}")),
        ("connect_timeout_ms", "3000".to_string()),
    ]);
    let imaps = servers.dovecot.imaps.to_string();
    keys.extend(
        overrides
            .iter()
            .map(|(key, value)| (*key, value.replace(IMAPS_PORT, &imaps))),
    );
    let mut section = vec!["[mail.upstream]".to_string()];
    section.extend(keys.iter().map(|(key, value)| format!("{key} = {value}")));
    Tuning {
        mail: vec!["allow_plaintext_auth = true".into()],
        tail: section,
        ..Tuning::default()
    }
}

/// [`setup`], alice's directory password being `alice_password`.
async fn setup_with(nodes: u64, overrides: &[(&str, String)], alice_password: &str) -> Setup {
    let servers = MailServers::start(free_port(), free_port(), free_port(), MASTER_PW);
    let tuning = upstream_tuning(&servers, overrides);
    let site = TestSite::start(nodes, tuning).await;
    site.wait_for_admin(0).await;
    let api = Api::default();
    let base = site.api_url(0);
    let admin = api.admin_token(&base).await;
    add_user(&api, &base, &admin, "example.test", "alice", alice_password).await;
    add_user(&api, &base, &admin, "example.test", "bob", BOB_SP).await;
    Setup {
        servers,
        site,
        api,
        admin,
    }
}

/// A message of about 100 KiB with every byte value a message body may hold.
fn message(subject: &str) -> Vec<u8> {
    let mut text = format!(
        "From: carol@example.test\r\nTo: alice@example.test\r\nSubject: {subject}\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\r\n"
    )
    .into_bytes();
    for i in 0..1600 {
        text.extend_from_slice(format!("line {i:04} héllo wörld ✓ {{7}} . \"quoted\" ").as_bytes());
        text.extend(std::iter::repeat_n(b'x', 20 + i % 17));
        text.extend_from_slice(b"\r\n");
    }
    text
}

type Imap = async_imap::Session<TcpStream>;

async fn imap_session(node: SocketAddr, user: &str, password: &str) -> Imap {
    let tcp = TcpStream::connect(node).await.expect("connect");
    let mut client = async_imap::Client::new(tcp);
    client
        .read_response()
        .await
        .expect("greeting")
        .expect("a greeting");
    client
        .login(user, password)
        .await
        .map_err(|(e, _)| e)
        .expect("login through sessionplane")
}

async fn fetch_body(imap: &mut Imap, seq: u32) -> Vec<u8> {
    let fetched: Vec<_> = imap
        .fetch(seq.to_string(), "BODY.PEEK[]")
        .await
        .expect("fetch")
        .collect()
        .await;
    let fetch = fetched
        .into_iter()
        .next()
        .expect("one message")
        .expect("fetched");
    fetch.body().expect("a body").to_vec()
}

/// Waits until `user` has no channel listed (a channel is deregistered just after its end).
async fn no_channels_left(setup: &Setup, user: &str) {
    let started = Instant::now();
    while !channels(setup, 0, user).await.is_empty() {
        assert!(started.elapsed() < WAIT, "{user}'s channel is still listed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn channels(setup: &Setup, node: usize, user: &str) -> Vec<serde_json::Value> {
    let answer = setup
        .api
        .get(format!(
            "{}/servers/channels/{user}",
            setup.site.api_url(node)
        ))
        .as_(&setup.admin)
        .expect(200)
        .await;
    answer.body.as_array().expect("a list").clone()
}

/// Waits until `doveadm who` no longer lists `user`.
async fn gone_from_dovecot(servers: &MailServers, user: &str) -> Duration {
    let started = Instant::now();
    while servers.dovecot.who().contains(user) {
        assert!(
            started.elapsed() < WAIT,
            "{user} still connected to Dovecot: {}",
            servers.dovecot.who()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread")]
async fn imap_through_sessionplane_is_dovecot_and_a_disconnect_logs_out_there() {
    let setup = setup(2, &[]).await;
    let delivered = message("first");
    setup.servers.dovecot.deliver(ALICE, &delivered);
    let node = setup.site.nodes[0].imap;

    // Rust's IMAP client: LOGIN, SELECT, FETCH byte for byte, APPEND then FETCH.
    let mut imap = imap_session(node, ALICE, ALICE_SP).await;
    let capabilities = imap.capabilities().await.expect("capabilities");
    assert!(
        capabilities.has_str("IDLE"),
        "Dovecot's capabilities after login"
    );
    let inbox = imap.select("INBOX").await.expect("select");
    assert_eq!(inbox.exists, 1);
    assert_eq!(fetch_body(&mut imap, 1).await, delivered);
    let appended = message("appended");
    imap.append("INBOX", None, None, &appended)
        .await
        .expect("append");
    assert_eq!(fetch_body(&mut imap, 2).await, appended);

    // IDLE sees a message delivered during it.
    let mut idle = imap.idle();
    idle.init().await.expect("idle");
    let (waiting, _stop) = idle.wait_with_timeout(WAIT);
    let late = message("late");
    setup.servers.dovecot.deliver(ALICE, &late);
    let woke = waiting.await.expect("idle ends");
    assert!(
        matches!(woke, async_imap::extensions::idle::IdleResponse::NewData(_)),
        "{woke:?}"
    );
    let mut imap = idle.done().await.expect("done");
    let inbox = imap.select("INBOX").await.expect("select again");
    assert_eq!(inbox.exists, 3);

    // Listed with its upstream from either node; Dovecot has the user connected.
    for i in 0..2 {
        let listed = channels(&setup, i, ALICE).await;
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(listed[0]["protocol"], "IMAP");
        assert_eq!(
            listed[0]["protocolSpecificInformation"]["upstream"],
            format!("127.0.0.1:{}", setup.servers.dovecot.imap)
        );
    }
    assert!(setup.servers.dovecot.who().contains(ALICE));
    drop(imap);
    gone_from_dovecot(&setup.servers, ALICE).await;

    // A raw client sees the BYE when node 2 disconnects it; Dovecot then has no connection.
    let (mut raw, ok) = imap_login(node, ALICE, ALICE_SP).await;
    assert!(
        ok.contains("a OK [CAPABILITY") && ok.contains("IDLE"),
        "{ok}"
    );
    raw.send("b SELECT INBOX").await;
    assert!(raw.until("b ").await.join("\n").contains("b OK"));
    assert!(setup.servers.dovecot.who().contains(ALICE));
    setup
        .api
        .delete(format!(
            "{}/servers/channels/{ALICE}",
            setup.site.api_url(1)
        ))
        .as_(&setup.admin)
        .expect(204)
        .await;
    let bye = raw.until("* BYE").await.join("\n");
    assert!(
        bye.contains("* BYE Disconnected by an administrator"),
        "{bye}"
    );
    assert!(raw.closes_within(WAIT).await, "the client's socket closes");
    gone_from_dovecot(&setup.servers, ALICE).await;
    no_channels_left(&setup, ALICE).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn python_clients_log_in_fetch_append_and_submit_through_sessionplane() {
    let setup = setup(1, &[]).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let delivered = message("for python");
    setup.servers.dovecot.deliver(ALICE, &delivered);
    let expected = dir.path().join("expected.eml");
    std::fs::write(&expected, &delivered).expect("write");
    let node = &setup.site.nodes[0];
    let python = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/python/mail_upstream.py"
        ))
        .args(["--imap", &node.imap.to_string()])
        .args(["--smtp", &node.smtp.to_string()])
        .args(["--user", ALICE, "--password", ALICE_SP])
        .args(["--to", BOB])
        .arg("--expected")
        .arg(&expected)
        .output()
        .expect("python3 is installed (.ci/run installs it)");
    assert!(
        python.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&python.stdout),
        String::from_utf8_lossy(&python.stderr)
    );
    // What smtplib submitted arrived in bob's Maildir, its bytes intact.
    let submitted = std::fs::read(dir.path().join("expected.eml")).expect("read");
    let arrived = setup.servers.delivered(BOB, 1);
    assert!(
        arrived[0].ends_with(&crlf_to_lf(&submitted)),
        "bob's message differs"
    );
}

/// EHLO, AUTH PLAIN on the plain submission port (plaintext logins are allowed in these
/// tests): a relayed SMTP session.
async fn smtp_login(node: SocketAddr, user: &str, password: &str) -> LineClient<TcpStream> {
    let mut smtp = mail::plain(node).await;
    assert!(smtp.line().await.expect("greeting").starts_with("220 "));
    smtp.send("EHLO client.test").await;
    let offered = smtp.until("250 ").await.join("\n");
    assert!(
        offered.contains("SMTPUTF8"),
        "Postfix's extensions: {offered}"
    );
    smtp.send(&format!("AUTH PLAIN {}", plain_credentials(user, password)))
        .await;
    assert_eq!(
        smtp.line().await.expect("answer"),
        "235 2.7.0 Authentication successful"
    );
    smtp
}

#[tokio::test(flavor = "multi_thread")]
async fn smtp_submits_through_sessionplane_and_a_disconnect_answers_421() {
    let setup = setup(2, &[]).await;
    let node = setup.site.nodes[0].smtp;

    // lettre over the relay.
    {
        use lettre::transport::smtp::authentication::Credentials;
        use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
        let email = Message::builder()
            .from(ALICE.parse().expect("from"))
            .to(BOB.parse().expect("to"))
            .subject("from lettre")
            .body("Grüße through the relay\r\n.leading dot\r\n".to_string())
            .expect("message");
        let transport =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(node.ip().to_string())
                .port(node.port())
                .credentials(Credentials::new(ALICE.into(), ALICE_SP.into()))
                .build();
        transport.send(email).await.expect("lettre submits");
        let arrived = setup.servers.delivered(BOB, 1);
        let text = String::from_utf8_lossy(&arrived[0]).into_owned();
        assert!(text.contains("Subject: from lettre"), "{text}");
    }

    // Pipelined envelope, a message whose bytes arrive intact; the server's replies.
    let mut smtp = smtp_login(node, ALICE, ALICE_SP).await;
    smtp.send_raw(b"MAIL FROM:<alice@example.test>\r\nRCPT TO:<nobody@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n")
        .await
        .expect("pipelined");
    assert!(smtp.line().await.expect("mail").starts_with("250 "));
    assert!(smtp.line().await.expect("rcpt").starts_with("550 5.1.1"));
    assert!(smtp.line().await.expect("rcpt").starts_with("250 "));
    assert!(smtp.line().await.expect("data").starts_with("354 "));
    let body = message("raw smtp");
    smtp.send_raw(&body).await.expect("body");
    smtp.send_raw(b".\r\n").await.expect("end");
    assert!(smtp.line().await.expect("queued").starts_with("250 2.0.0"));
    let arrived = setup.servers.delivered(BOB, 2);
    assert!(arrived.iter().any(|m| m.ends_with(&crlf_to_lf(&body))));

    // A disconnect from node 2 in the middle of a message: 421, and nothing delivered.
    smtp.send("MAIL FROM:<alice@example.test>").await;
    assert!(smtp.line().await.expect("mail").starts_with("250 "));
    smtp.send("RCPT TO:<bob@example.test>").await;
    assert!(smtp.line().await.expect("rcpt").starts_with("250 "));
    smtp.send("DATA").await;
    assert!(smtp.line().await.expect("data").starts_with("354 "));
    smtp.send("Subject: never sent").await;
    let listed = channels(&setup, 1, ALICE).await;
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        listed[0]["protocolSpecificInformation"]["upstream"],
        format!("127.0.0.1:{}", setup.servers.postfix.submission)
    );
    setup
        .api
        .delete(format!(
            "{}/servers/channels/{ALICE}",
            setup.site.api_url(1)
        ))
        .as_(&setup.admin)
        .expect(204)
        .await;
    let goodbye = smtp.line().await.expect("goodbye");
    assert!(goodbye.starts_with("421 4.7.0"), "{goodbye}");
    assert!(smtp.closes_within(WAIT).await);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(setup.servers.dovecot.maildir_messages(BOB).len(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn locked_disabled_and_banned_users_never_reach_the_servers() {
    let setup = setup(1, &[]).await;
    let node = &setup.site.nodes[0];
    let base = setup.site.api_url(0);

    // Banned: failures then the right password; none of it is forwarded.
    for _ in 0..6 {
        imap_login(node.imap, BOB, "wrong").await;
    }
    let (_, answer) = imap_login(node.imap, BOB, BOB_SP).await;
    assert!(answer.contains("a NO [AUTHENTICATIONFAILED]"), "{answer}");

    // Locked: a lock on alice refuses IMAP and SMTP before the servers are asked.
    let lock = setup
        .api
        .post(format!("{base}/rest/v1/locks"))
        .as_(&setup.admin)
        .body(json!({"target": {"user": ALICE}, "message": "account under investigation"}))
        .expect(201)
        .await
        .body;
    let (_, answer) = imap_login(node.imap, ALICE, ALICE_SP).await;
    assert!(answer.contains("a NO [AUTHORIZATIONFAILED]"), "{answer}");
    assert!(smtp_auth(node.smtp).await.starts_with("535 5.7.8"));
    let lock_id = lock["lock_id"].as_str().expect("lock id").to_string();
    setup
        .api
        .delete(format!("{base}/rest/v1/locks/{lock_id}"))
        .as_(&setup.admin)
        .expect(204)
        .await;

    // Disabled: the right password is refused.
    setup
        .api
        .patch(format!("{base}/users/{ALICE}"))
        .as_(&setup.admin)
        .body(json!({"disabled": true}))
        .expect(200)
        .await;
    let (_, answer) = imap_login(node.imap, ALICE, ALICE_SP).await;
    assert!(answer.contains("a NO [AUTHENTICATIONFAILED]"), "{answer}");

    let log = setup.servers.dovecot.log();
    for user in [ALICE, BOB] {
        assert!(!log.contains(user), "{user} reached Dovecot:\n{log}");
    }
    let postfix = setup.servers.postfix.log();
    assert!(!postfix.contains("sasl_username"), "{postfix}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_down_or_with_a_wrong_certificate_is_unavailable_never_a_hang() {
    // The servers' certificate checked against a CA that did not sign it.
    let other = tempfile::tempdir().expect("temp dir");
    let (cert, _) = common::certificate(&["127.0.0.1".parse().expect("ip")]);
    let wrong_ca = other.path().join("other-ca.pem");
    std::fs::write(&wrong_ca, cert).expect("write");
    let setup = setup(1, &[("ca_file", format!("{wrong_ca:?}"))]).await;
    let node = &setup.site.nodes[0];
    let (_, answer) = tokio::time::timeout(WAIT, imap_login(node.imap, ALICE, ALICE_SP))
        .await
        .expect("an answer in time");
    assert!(answer.contains("a NO [UNAVAILABLE]"), "{answer}");
    let answer = smtp_auth(node.smtp).await;
    assert!(answer.starts_with("451 4.4.1"), "{answer}");
    no_channels_left(&setup, ALICE).await;
    let log = setup.site.log_of(0);
    assert!(
        log.contains("certificate") || log.contains("UnknownIssuer"),
        "the cause is logged"
    );
    assert!(!log.contains(MASTER_PW), "no secret in the log");
}

#[tokio::test(flavor = "multi_thread")]
async fn servers_that_are_down_are_unavailable_at_once() {
    let closed = format!("\"127.0.0.1:{}\"", free_port());
    let setup = setup(1, &[("imap", closed.clone()), ("smtp", closed)]).await;
    let node = &setup.site.nodes[0];
    let started = Instant::now();
    let (_, answer) = imap_login(node.imap, ALICE, ALICE_SP).await;
    assert!(answer.contains("a NO [UNAVAILABLE]"), "{answer}");
    assert!(smtp_auth(node.smtp).await.starts_with("451 4.4.1"));
    assert!(started.elapsed() < WAIT, "refused, not hung");
    no_channels_left(&setup, ALICE).await;
    let log = setup.site.log_of(0);
    assert!(log.contains("could not be reached"), "the cause is logged");
}

/// A raw client's IMAP LOGIN through the relay: the client, and what was said up to the
/// tagged answer.
async fn imap_login(
    node: SocketAddr,
    user: &str,
    password: &str,
) -> (LineClient<TcpStream>, String) {
    let mut raw = mail::plain(node).await;
    raw.line().await;
    raw.send(&format!("a LOGIN {user} {password}")).await;
    let answer = raw.until("a ").await.join("\n");
    (raw, answer)
}

/// EHLO, then AUTH PLAIN as alice on a raw submission client: the answer to the AUTH.
async fn smtp_auth(node: SocketAddr) -> String {
    let mut smtp = mail::plain(node).await;
    smtp.line().await;
    smtp.send("EHLO x").await;
    smtp.until("250 ").await;
    smtp.send(&format!(
        "AUTH PLAIN {}",
        plain_credentials(ALICE, ALICE_SP)
    ))
    .await;
    smtp.line().await.expect("an answer to AUTH")
}

/// LOGIN through the relay on a raw client, SELECT INBOX: the number of messages.
async fn raw_login(node: SocketAddr, password: &str) -> (LineClient<TcpStream>, String) {
    let (mut raw, answer) = imap_login(node, ALICE, password).await;
    assert!(answer.contains("a OK"), "{answer}");
    raw.send("b SELECT INBOX").await;
    let selected = raw.until("b ").await.join("\n");
    assert!(selected.contains("b OK"), "{selected}");
    (raw, selected)
}

#[tokio::test(flavor = "multi_thread")]
async fn implicit_tls_passthrough_logins_and_unverified_servers_when_configured() {
    // Implicit TLS to Dovecot's IMAPS port, the user's own password passed through.
    let passthrough = [
        ("auth", "\"passthrough\"".to_string()),
        ("imap", format!("\"127.0.0.1:{IMAPS_PORT}\"")),
        ("imap_tls", "\"implicit\"".to_string()),
    ];
    let over_tls = setup_with(1, &passthrough, ALICE_PW).await;
    over_tls
        .servers
        .dovecot
        .deliver(ALICE, &message("over imaps"));
    let (mut raw, selected) = raw_login(over_tls.site.nodes[0].imap, ALICE_PW).await;
    assert!(selected.contains("* 1 EXISTS"), "{selected}");
    // COMPRESS would change the stream under the relay: refused, and the session goes on.
    raw.send("c COMPRESS DEFLATE").await;
    assert_eq!(
        raw.line().await.expect("answer"),
        "c NO COMPRESS is not available through this server"
    );
    raw.send("d NOOP").await;
    assert!(raw.until("d ").await.join("\n").contains("d OK"));
    // The client's LOGOUT is Dovecot's to answer; the relay adds nothing before the close.
    raw.send("z LOGOUT").await;
    let said = raw.until("z ").await.join("\n");
    assert!(said.contains("* BYE") && said.contains("z OK"), "{said}");
    assert_eq!(
        raw.line().await,
        None,
        "closed after the LOGOUT, nothing more said"
    );
    drop(over_tls);

    // A certificate that does not verify is taken when verification is turned off.
    let other = tempfile::tempdir().expect("temp dir");
    let (cert, _) = common::certificate(&["127.0.0.1".parse().expect("ip")]);
    let wrong_ca = other.path().join("other-ca.pem");
    std::fs::write(&wrong_ca, cert).expect("write");
    let unverified = [
        ("ca_file", format!("{wrong_ca:?}")),
        ("verify_certificates", "false".to_string()),
    ];
    let setup = setup(1, &unverified).await;
    raw_login(setup.site.nodes[0].imap, ALICE_SP).await;
    assert!(
        setup.site.log_of(0).contains("not verified"),
        "the choice is logged"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn abuse_through_the_relay_is_refused_or_ended_cleanly() {
    let setup = setup(1, &[]).await;
    let node = setup.site.nodes[0].imap;

    // Garbage before STARTTLS and the login is answered, and the login still works.
    let mut raw = mail::plain(node).await;
    raw.line().await;
    raw.send_raw(b"\x00\xff\x16\x03\x01 garbage\r\n")
        .await
        .expect("garbage");
    assert!(raw.line().await.expect("answer").contains("BAD"));
    raw.send("s STARTTLS").await;
    assert!(raw.line().await.expect("answer").starts_with("s OK"));
    drop(raw);

    // A line of 1 MiB after the login ends the channel, and Dovecot's session.
    let (mut raw, _) = raw_login(node, ALICE_SP).await;
    let mut line = b"e NOOP ".to_vec();
    line.extend(std::iter::repeat_n(b'x', 1 << 20));
    line.extend_from_slice(b"\r\n");
    let _ = raw.send_raw(&line).await;
    let bye = raw.until("* BYE").await.join("\n");
    assert!(bye.contains("* BYE Line too long"), "{bye}");
    assert!(raw.closes_within(WAIT).await);
    gone_from_dovecot(&setup.servers, ALICE).await;

    // A literal of 2 GiB announced: refused before a byte of it is taken.
    let (mut raw, _) = raw_login(node, ALICE_SP).await;
    raw.send("f APPEND INBOX {2147483648+}").await;
    let bye = raw.until("* BYE").await.join("\n");
    assert!(bye.contains("* BYE Literal too large"), "{bye}");
    assert!(raw.closes_within(WAIT).await);
    gone_from_dovecot(&setup.servers, ALICE).await;
    no_channels_left(&setup, ALICE).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_half_closes_ends_the_channel_with_a_bye() {
    // An IMAP server that takes the login, answers one command, then closes its side.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("address").port();
    tokio::spawn(async move {
        let Ok((socket, _)) = listener.accept().await else {
            return;
        };
        let mut server = LineClient::new(socket);
        server.send("* OK ready").await;
        server.line().await;
        server.send("+ ").await;
        server.line().await;
        server
            .send("sp2 OK [CAPABILITY IMAP4rev1 IDLE] Logged in")
            .await;
        server.line().await;
        server.send("b OK [READ-WRITE] SELECT completed").await;
        let mut socket = server.into_inner();
        let _ = tokio::io::AsyncWriteExt::shutdown(&mut socket).await;
        tokio::time::sleep(WAIT).await;
    });
    let overrides = [
        ("imap", format!("\"127.0.0.1:{port}\"")),
        ("imap_tls", "\"none\"".to_string()),
    ];
    let setup = setup(1, &overrides).await;
    let (mut raw, _) = raw_login(setup.site.nodes[0].imap, ALICE_SP).await;
    let bye = raw.until("* BYE").await.join("\n");
    assert!(
        bye.contains("* BYE The mail server closed the connection"),
        "{bye}"
    );
    assert!(raw.closes_within(WAIT).await);
    no_channels_left(&setup, ALICE).await;
}

/// A raw IMAP client's wait for the relay's goodbye, and for its socket to close.
async fn said_bye(raw: &mut LineClient<TcpStream>, expected: &str) {
    let bye = tokio::time::timeout(WAIT, raw.until("* BYE"))
        .await
        .expect("a BYE in time")
        .join("\n");
    assert!(bye.contains(expected), "{bye}");
    assert!(raw.closes_within(WAIT).await, "the client's socket closes");
}

#[tokio::test(flavor = "multi_thread")]
async fn another_sites_disconnect_lock_and_disabling_end_relayed_channels() {
    let servers = MailServers::start(free_port(), free_port(), free_port(), MASTER_PW);
    let tuning = upstream_tuning(&servers, &[]);
    let mut sites =
        TestSite::start_sites(&[("central", 236), ("east", 237)], 1, &[1], tuning).await;
    let east = sites.pop().expect("east");
    let central = sites.pop().expect("central");
    central.wait_for_admin(0).await;
    east.wait_for_admin(0).await;
    let api = Api::default();
    let base = central.api_url(0);
    let admin = api.admin_token(&base).await;
    add_user(&api, &base, &admin, "example.test", "alice", ALICE_SP).await;
    let at_east = east.nodes[0].imap;
    let east_site = || [("sites", "all")];

    // Disconnected from central: the channel held at east says BYE, Dovecot's session ends.
    let (mut raw, _) = raw_login(at_east, ALICE_SP).await;
    assert!(servers.dovecot.who().contains(ALICE));
    api.delete(format!("{base}/servers/channels/{ALICE}"))
        .query(&east_site())
        .as_(&admin)
        .expect(204)
        .await;
    said_bye(&mut raw, "* BYE Disconnected by an administrator").await;
    gone_from_dovecot(&servers, ALICE).await;

    // A lock placed at central for every site ends it too, and keeps the user out.
    let (mut raw, _) = raw_login(at_east, ALICE_SP).await;
    let lock = api
        .post(format!("{base}/rest/v1/locks"))
        .as_(&admin)
        .body(json!({"target": {"user": ALICE}, "message": "under investigation", "sites": "all"}))
        .expect(201)
        .await
        .body;
    said_bye(&mut raw, "* BYE").await;
    gone_from_dovecot(&servers, ALICE).await;
    let (_, answer) = imap_login(at_east, ALICE, ALICE_SP).await;
    assert!(answer.contains("a NO [AUTHORIZATIONFAILED]"), "{answer}");
    let lock_id = lock["lock_id"].as_str().expect("a lock id").to_string();
    api.delete(format!("{base}/rest/v1/locks/{lock_id}"))
        .as_(&admin)
        .expect(204)
        .await;

    // Disabling the user (the directory spans the sites) ends the channel as well.
    let (mut raw, _) = raw_login(at_east, ALICE_SP).await;
    api.patch(format!("{base}/users/{ALICE}"))
        .as_(&admin)
        .body(json!({"disabled": true}))
        .expect(200)
        .await;
    said_bye(&mut raw, "* BYE").await;
    gone_from_dovecot(&servers, ALICE).await;
}
