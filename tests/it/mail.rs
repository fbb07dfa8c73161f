//! SMTP submission against a real 3-node site: STARTTLS and implicit TLS logins with a raw
//! client and with Python's smtplib, channels listed from any node and disconnected from
//! another, certificates reloaded on every node without dropping a connection, and abuse.

use crate::common;

use std::time::Duration;

use common::mail::{self, plain_credentials, LineClient};
use common::{add_user, Api, TestSite, Tuning};
use reqwest::Method;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

type Tls = LineClient<TlsStream<TcpStream>>;

fn ca(site: &TestSite) -> String {
    std::fs::read_to_string(&site.nodes[0].cert_file).expect("certificate")
}

/// EHLO, STARTTLS, EHLO, AUTH PLAIN: an authenticated SMTP client over STARTTLS.
async fn smtp_starttls(site: &TestSite, i: usize, user: &str, password: &str) -> Tls {
    let mut client = mail::plain(site.nodes[i].smtp).await;
    assert!(client.line().await.unwrap().starts_with("220 "));
    client.send("EHLO test.client").await;
    let offered = client.until("250 ").await.join("\n");
    assert!(offered.contains("STARTTLS"), "{offered}");
    assert!(!offered.contains("AUTH"), "AUTH before TLS: {offered}");
    client.send("AUTH PLAIN AGFAYg==").await;
    assert!(client.line().await.unwrap().starts_with("530 5.7.0"));
    client.send("STARTTLS").await;
    assert!(client.line().await.unwrap().starts_with("220 2.0.0"));
    let mut client = mail::start_tls(client, &ca(site)).await;
    client.send("EHLO test.client").await;
    let offered = client.until("250 ").await.join("\n");
    assert!(
        offered.contains("AUTH PLAIN LOGIN") && !offered.contains("STARTTLS"),
        "{offered}"
    );
    client
        .send(&format!("AUTH PLAIN {}", plain_credentials(user, password)))
        .await;
    assert_eq!(
        client.line().await.unwrap(),
        "235 2.7.0 Authentication successful"
    );
    client
}

/// Implicit TLS and AUTH LOGIN.
async fn smtps(site: &TestSite, i: usize, user: &str, password: &str) -> Tls {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let mut client = mail::tls(site.nodes[i].smtps, &ca(site)).await;
    assert!(client.line().await.unwrap().starts_with("220 "));
    client.send("EHLO test.client").await;
    client.until("250 ").await;
    client.send("AUTH LOGIN").await;
    assert_eq!(client.line().await.unwrap(), "334 VXNlcm5hbWU6");
    client.send(&b64(user)).await;
    assert_eq!(client.line().await.unwrap(), "334 UGFzc3dvcmQ6");
    client.send(&b64(password)).await;
    assert_eq!(
        client.line().await.unwrap(),
        "235 2.7.0 Authentication successful"
    );
    client
}

async fn channels_of(api: &Api, base: &str, token: &str, user: &str) -> Vec<serde_json::Value> {
    let answer = api
        .get(format!("{base}/servers/channels/{user}"))
        .as_(token)
        .expect(200)
        .await;
    answer.body.as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn smtp_logins_are_channels_listed_everywhere_and_disconnected_from_another_node() {
    let site = TestSite::start(3, Tuning::default()).await;
    site.wait_for_admin(2).await;
    let api = Api::default();
    let b3 = site.api_url(2);
    let admin = api.admin_token(&b3).await;
    add_user(&api, &b3, &admin, "example.com", "alice", "alice-password").await;
    add_user(&api, &b3, &admin, "example.com", "bob", "bob-password").await;

    let mut on_n1 = smtp_starttls(&site, 0, "alice@example.com", "alice-password").await;
    let mut on_n2 = smtps(&site, 1, "alice@example.com", "alice-password").await;
    let mut bob = smtps(&site, 0, "bob@example.com", "bob-password").await;
    on_n1.send("MAIL FROM:<alice@example.com>").await;
    assert!(on_n1.line().await.unwrap().starts_with("554 5.3.2"));
    on_n1.send("RCPT TO:<x@example.com>").await;
    assert!(on_n1.line().await.unwrap().starts_with("503 5.5.1"));

    let mut wrong = mail::tls(site.nodes[2].smtps, &ca(&site)).await;
    wrong.line().await;
    wrong.send("EHLO x").await;
    wrong.until("250 ").await;
    wrong
        .send(&format!(
            "AUTH PLAIN {}",
            plain_credentials("alice@example.com", "nope")
        ))
        .await;
    assert!(wrong.line().await.unwrap().starts_with("535 5.7.8"));

    for i in 0..3 {
        let listed = channels_of(&api, &site.api_url(i), &admin, "alice@example.com").await;
        assert_eq!(listed.len(), 2, "{listed:?}");
        for channel in &listed {
            assert_eq!(channel["protocol"], "SMTP");
            assert_eq!(channel["endpoint"], "smtpserver");
            assert_eq!(channel["isEncrypted"], true);
            assert_eq!(
                channel["protocolSpecificInformation"]["ehlo"],
                "test.client"
            );
        }
    }

    let python = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/python/mail_clients.py"
        ))
        .args(["--ca", site.nodes[2].cert_file.to_str().unwrap()])
        .args(["--user", "bob@example.com", "--password", "bob-password"])
        .args(["--smtp", &site.nodes[2].smtp.to_string()])
        .args(["--smtps", &site.nodes[2].smtps.to_string()])
        .output()
        .expect("python3 is installed (.ci/run installs it)");
    assert!(
        python.status.success(),
        "smtplib: {}{}",
        String::from_utf8_lossy(&python.stdout),
        String::from_utf8_lossy(&python.stderr)
    );

    api.delete(format!("{b3}/servers/channels/alice@example.com"))
        .as_(&admin)
        .expect(204)
        .await;
    for client in [&mut on_n1, &mut on_n2] {
        let line = client.line().await.unwrap();
        assert!(line.starts_with("421 4.7.0"), "{line}");
        assert!(client.closes_within(Duration::from_secs(5)).await);
    }
    bob.send("NOOP").await;
    assert_eq!(
        bob.line().await.unwrap(),
        "250 2.0.0 OK",
        "bob's channel stays"
    );
    assert!(channels_of(&api, &b3, &admin, "alice@example.com")
        .await
        .is_empty());
}

async fn fingerprint_at(addr: std::net::SocketAddr, ca_pem: &str) -> String {
    let client = mail::tls(addr, ca_pem).await;
    mail::fingerprint(&client)
}

#[tokio::test(flavor = "multi_thread")]
async fn certificates_reload_on_every_node_without_dropping_a_connection() {
    let site = TestSite::start(3, Tuning::default()).await;
    site.wait_for_admin(0).await;
    let api = Api::default();
    let base = site.api_url(1);
    let admin = api.admin_token(&base).await;
    add_user(&api, &base, &admin, "example.com", "carl", "carl-password").await;
    let old_ca = ca(&site);
    let mut open = smtps(&site, 0, "carl@example.com", "carl-password").await;
    let mut imap_open = mail::tls(site.nodes[0].imaps, &old_ca).await;
    imap_open.line().await;
    imap_open
        .send("i1 LOGIN carl@example.com carl-password")
        .await;
    assert!(imap_open.line().await.unwrap().starts_with("i1 OK"));
    let old = fingerprint_at(site.nodes[0].smtps, &old_ca).await;

    let ips: Vec<std::net::IpAddr> = site.nodes.iter().map(|n| n.api.ip()).collect();
    let (cert, key) = common::certificate(&ips);
    for node in &site.nodes {
        std::fs::write(&node.cert_file, &cert).unwrap();
        std::fs::write(&node.key_file, &key).unwrap();
    }
    api.post(format!("{base}/servers?reload-certificate"))
        .as_(&admin)
        .expect(204)
        .await;
    open.send("NOOP").await;
    assert_eq!(
        open.line().await.unwrap(),
        "250 2.0.0 OK",
        "the open connection still works"
    );
    imap_open.send("i2 NOOP").await;
    assert_eq!(imap_open.line().await.unwrap(), "i2 OK NOOP completed");
    let new = fingerprint_at(site.nodes[0].smtps, &cert).await;
    assert_ne!(old, new);
    for node in &site.nodes {
        assert_eq!(fingerprint_at(node.smtps, &cert).await, new);
        assert_eq!(fingerprint_at(node.imaps, &cert).await, new);
    }
    let listed = api
        .call(
            Method::GET,
            format!("{base}/servers/certificates"),
            Some(&admin),
            None,
        )
        .await;
    let listed = listed.body.as_array().unwrap().clone();
    assert_eq!(listed.len(), 12, "3 nodes, 4 mail listeners: {listed:?}");
    assert!(
        listed.iter().all(|c| c["sha256"] == new.as_str()),
        "{listed:?}"
    );

    // Only the listener on the given port.
    let (third, third_key) = common::certificate(&ips);
    std::fs::write(&site.nodes[0].cert_file, &third).unwrap();
    std::fs::write(&site.nodes[0].key_file, &third_key).unwrap();
    let port = site.nodes[0].smtps.port();
    api.post(format!("{base}/servers?reload-certificate&port={port}"))
        .as_(&admin)
        .expect(204)
        .await;
    let smtps_now = {
        let client = mail::tls(site.nodes[0].smtps, &third).await;
        mail::fingerprint(&client)
    };
    assert_ne!(smtps_now, new);
    let mut starttls = mail::plain(site.nodes[0].smtp).await;
    starttls.line().await;
    starttls.send("EHLO x").await;
    starttls.until("250 ").await;
    starttls.send("STARTTLS").await;
    starttls.line().await;
    let upgraded = mail::start_tls(starttls, &cert).await;
    assert_eq!(
        mail::fingerprint(&upgraded),
        new,
        "the smtp listener kept its pair"
    );

    // A broken file on node 2, a foreign key on node 3: 400 naming them, old pairs kept.
    std::fs::write(
        &site.nodes[1].cert_file,
        "-----BEGIN CERTIFICATE-----\ngarbage\n",
    )
    .unwrap();
    let (_, foreign_key) = common::certificate(&ips);
    std::fs::write(&site.nodes[2].key_file, foreign_key).unwrap();
    let refused = api
        .post(format!("{base}/servers?reload-certificate"))
        .as_(&admin)
        .expect_error(400, "InvalidArgument")
        .await;
    assert!(
        refused.text.contains("n2") && refused.text.contains("n3"),
        "{}",
        refused.text
    );
    assert!(!refused.body["cause"].as_str().unwrap_or("").is_empty());
    assert_eq!(fingerprint_at(site.nodes[1].smtps, &cert).await, new);
    assert_eq!(fingerprint_at(site.nodes[2].smtps, &cert).await, new);
}

#[tokio::test(flavor = "multi_thread")]
async fn abusive_clients_are_answered_bounded_and_timed_out() {
    let tuning = Tuning {
        mail: vec![
            "smtp_idle_timeout_secs = 2".into(),
            "handshake_timeout_secs = 1".into(),
        ],
        // The 1,000 idle connections below all come from the test's one address.
        limits: vec!["mail_max_connections_per_source = 2000".into()],
        ..Default::default()
    };
    let site = TestSite::start(1, tuning).await;
    site.wait_for_admin(0).await;
    let smtp = site.nodes[0].smtp;

    let mut long = mail::plain(smtp).await;
    long.line().await;
    let _ = long.send_raw(&vec![b'A'; 1024 * 1024]).await;
    let _ = long.send_raw(b"\r\n").await;
    assert_eq!(long.line().await.unwrap(), "500 5.5.6 Line too long");
    assert!(long.closes_within(Duration::from_secs(5)).await);

    let mut garbage = mail::plain(smtp).await;
    garbage.line().await;
    garbage
        .send_raw(b"\x00\xff\xfe\x01 binary\r\n")
        .await
        .unwrap();
    assert!(garbage.line().await.unwrap().starts_with("500 5.5.2"));
    garbage.send("AUTH PLAIN").await;
    assert!(
        garbage.line().await.unwrap().starts_with("503 5.5.1"),
        "AUTH before EHLO"
    );
    garbage.send("QUIT").await;
    assert!(garbage.line().await.unwrap().starts_with("221"));

    // A client that never finishes its TLS handshake is dropped.
    let mut silent = LineClient::new(TcpStream::connect(site.nodes[0].smtps).await.unwrap());
    assert!(silent.closes_within(Duration::from_secs(5)).await);

    // 1,000 idle unauthenticated connections: greeted, bounded in memory, then timed out.
    let pid = site.pid(0).unwrap();
    let rss = || {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .unwrap()
    };
    let before = rss();
    let mut idle = Vec::new();
    for _ in 0..1000 {
        let mut client = mail::plain(smtp).await;
        assert!(client.line().await.unwrap().starts_with("220 "));
        idle.push(client);
    }
    let grown_kib = rss().saturating_sub(before);
    assert!(
        grown_kib < 64 * 1024,
        "1,000 idle connections grew the node by {grown_kib} KiB"
    );
    for client in &mut idle {
        assert!(client.closes_within(Duration::from_secs(6)).await);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn imap_logins_select_idle_and_are_disconnected_from_another_node() {
    let site = TestSite::start(3, Tuning::default()).await;
    site.wait_for_admin(2).await;
    let api = Api::default();
    let b3 = site.api_url(2);
    let admin = api.admin_token(&b3).await;
    add_user(&api, &b3, &admin, "example.com", "alice", "alice-password").await;

    // STARTTLS on node 1, LOGIN with a literal password, SELECT, IDLE.
    let mut plain = mail::plain(site.nodes[0].imap).await;
    let greeting = plain.line().await.unwrap();
    assert!(
        greeting.contains("STARTTLS") && greeting.contains("LOGINDISABLED"),
        "{greeting}"
    );
    plain
        .send("a1 LOGIN alice@example.com alice-password")
        .await;
    assert!(plain
        .line()
        .await
        .unwrap()
        .starts_with("a1 NO [PRIVACYREQUIRED]"));
    plain.send("a2 STARTTLS").await;
    assert!(plain.line().await.unwrap().starts_with("a2 OK"));
    let mut on_n1 = mail::start_tls(plain, &ca(&site)).await;
    on_n1.send("a3 CAPABILITY").await;
    let caps = on_n1.until("a3 ").await.join("\n");
    assert!(
        caps.contains("AUTH=PLAIN") && !caps.contains("STARTTLS"),
        "{caps}"
    );
    on_n1.send("a4 LOGIN alice@example.com {14}").await;
    assert!(on_n1.line().await.unwrap().starts_with('+'));
    on_n1.send("alice-password").await;
    assert!(on_n1.line().await.unwrap().starts_with("a4 OK"));
    on_n1.send("a5 SELECT INBOX").await;
    let selected = on_n1.until("a5 ").await;
    assert!(selected.contains(&"* 0 EXISTS".to_string()), "{selected:?}");
    assert!(selected.last().unwrap().starts_with("a5 OK [READ-WRITE]"));
    on_n1.send("a6 IDLE").await;
    assert_eq!(on_n1.line().await.unwrap(), "+ idling");

    // Implicit TLS on node 2, AUTHENTICATE PLAIN with an initial response.
    let mut on_n2 = mail::tls(site.nodes[1].imaps, &ca(&site)).await;
    on_n2.line().await;
    on_n2
        .send(&format!(
            "b1 AUTHENTICATE PLAIN {}",
            plain_credentials("alice@example.com", "alice-password")
        ))
        .await;
    assert!(on_n2.line().await.unwrap().starts_with("b1 OK"));
    on_n2.send("b2 LIST \"\" \"*\"").await;
    let listed = on_n2.until("b2 ").await;
    assert_eq!(listed[0], "* LIST (\\HasNoChildren) \"/\" INBOX");

    let python = std::process::Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/python/mail_clients.py"
        ))
        .args(["--ca", site.nodes[2].cert_file.to_str().unwrap()])
        .args([
            "--user",
            "alice@example.com",
            "--password",
            "alice-password",
        ])
        .args(["--imap", &site.nodes[2].imap.to_string()])
        .args(["--imaps", &site.nodes[2].imaps.to_string()])
        .output()
        .expect("python3 is installed (.ci/run installs it)");
    assert!(
        python.status.success(),
        "imaplib: {}{}",
        String::from_utf8_lossy(&python.stdout),
        String::from_utf8_lossy(&python.stderr)
    );

    let listed = channels_of(&api, &b3, &admin, "alice@example.com").await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed
        .iter()
        .all(|c| c["protocol"] == "IMAP" && c["endpoint"] == "imapserver"));
    api.delete(format!("{b3}/servers/channels/alice@example.com"))
        .as_(&admin)
        .expect(204)
        .await;
    for client in [&mut on_n1, &mut on_n2] {
        assert_eq!(
            client.line().await.unwrap(),
            "* BYE Disconnected by an administrator"
        );
        assert!(client.closes_within(Duration::from_secs(5)).await);
    }

    // Abuse: a 2 GiB literal is refused unread; a 1 MiB line ends the connection.
    let mut abuse = mail::tls(site.nodes[0].imaps, &ca(&site)).await;
    abuse.line().await;
    abuse.send("c1 LOGIN {2147483648}").await;
    assert_eq!(abuse.line().await.unwrap(), "c1 BAD Literal too large");
    abuse.send("c2 NOOP").await;
    assert_eq!(abuse.line().await.unwrap(), "c2 OK NOOP completed");
    let _ = abuse.send_raw(&vec![b'x'; 1024 * 1024]).await;
    let _ = abuse.send_raw(b"\r\n").await;
    assert_eq!(abuse.line().await.unwrap(), "* BYE Line too long");
}

#[tokio::test(flavor = "multi_thread")]
async fn lettre_authenticates_over_starttls_and_implicit_tls() {
    use lettre::transport::smtp::authentication::Credentials;
    use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

    let site = TestSite::start(1, Tuning::default()).await;
    site.wait_for_admin(0).await;
    let api = Api::default();
    let base = site.api_url(0);
    let admin = api.admin_token(&base).await;
    add_user(&api, &base, &admin, "example.com", "erin", "erin-password").await;
    let certificate = Certificate::from_pem(ca(&site).as_bytes()).expect("certificate");
    let params = || {
        TlsParameters::builder("localhost".into())
            .add_root_certificate(certificate.clone())
            .build_rustls()
            .expect("tls parameters")
    };
    let transport = |addr: std::net::SocketAddr, tls: Tls, password: &str| {
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(addr.ip().to_string())
            .port(addr.port())
            .tls(tls)
            .credentials(Credentials::new("erin@example.com".into(), password.into()))
            .timeout(Some(Duration::from_secs(10)))
            .build()
    };
    let node = &site.nodes[0];
    let starttls = transport(node.smtp, Tls::Required(params()), "erin-password");
    assert!(starttls.test_connection().await.expect("STARTTLS and AUTH"));
    let implicit = transport(node.smtps, Tls::Wrapper(params()), "erin-password");
    assert!(implicit.test_connection().await.expect("TLS and AUTH"));

    let message = Message::builder()
        .from("erin@example.com".parse().unwrap())
        .to("someone@example.org".parse().unwrap())
        .subject("hello")
        .body(String::from("no delivery here"))
        .unwrap();
    let refused = implicit
        .send(message)
        .await
        .expect_err("this node delivers nothing");
    assert_eq!(
        refused.status().map(|code| code.to_string()),
        Some("554".into()),
        "{refused}"
    );
    let wrong = transport(node.smtps, Tls::Wrapper(params()), "wrong-password");
    let refused = wrong.test_connection().await.expect_err("a wrong password");
    assert_eq!(
        refused.status().map(|code| code.to_string()),
        Some("535".into()),
        "{refused}"
    );
}

/// PLAIN with an authorization identity other than the authentication identity (acting as
/// another user) is refused on IMAP and SMTP alike, with the same answer whether the password
/// was right or not; an authorization identity equal to the user's own is taken.
#[tokio::test(flavor = "multi_thread")]
async fn plain_refuses_to_act_as_another_user() {
    use base64::Engine;
    let plain = |authzid: &str, authcid: &str, password: &str| {
        base64::engine::general_purpose::STANDARD
            .encode(format!("{authzid}\0{authcid}\0{password}"))
    };
    let tuning = Tuning {
        mail: vec!["allow_plaintext_auth = true".into()],
        ..Default::default()
    };
    let (site, api, base, admin) = common::admin_node(tuning).await;
    add_user(
        &api,
        &base,
        &admin,
        "example.com",
        "alice",
        "alice-password",
    )
    .await;
    add_user(&api, &base, &admin, "example.com", "bob", "bob-password").await;
    let (alice, bob) = ("alice@example.com", "bob@example.com");

    let mut imap = mail::plain(site.nodes[0].imap).await;
    imap.line().await;
    let mut refusals = Vec::new();
    for (tag, password) in [("a1", "alice-password"), ("a2", "wrong-password")] {
        imap.send(&format!(
            "{tag} AUTHENTICATE PLAIN {}",
            plain(bob, alice, password)
        ))
        .await;
        let answer = imap.line().await.unwrap();
        refusals.push(answer.replacen(tag, "", 1));
        assert!(
            answer.starts_with(&format!("{tag} NO [AUTHORIZATIONFAILED]")),
            "{answer}"
        );
    }
    assert_eq!(
        refusals[0], refusals[1],
        "the refusal says nothing of the password"
    );
    imap.send(&format!(
        "a3 AUTHENTICATE PLAIN {}",
        plain(alice, alice, "alice-password")
    ))
    .await;
    let answer = imap.line().await.unwrap();
    assert!(answer.starts_with("a3 OK"), "{answer}");

    let mut smtp = mail::plain(site.nodes[0].smtp).await;
    smtp.line().await;
    smtp.send("EHLO test.client").await;
    smtp.until("250 ").await;
    let mut refusals = Vec::new();
    for password in ["alice-password", "wrong-password"] {
        smtp.send(&format!("AUTH PLAIN {}", plain(bob, alice, password)))
            .await;
        let answer = smtp.line().await.unwrap();
        assert!(answer.starts_with("535 5.7.8"), "{answer}");
        refusals.push(answer);
    }
    assert_eq!(
        refusals[0], refusals[1],
        "the refusal says nothing of the password"
    );
    smtp.send(&format!(
        "AUTH PLAIN {}",
        plain(alice, alice, "alice-password")
    ))
    .await;
    assert_eq!(
        smtp.line().await.unwrap(),
        "235 2.7.0 Authentication successful"
    );
}
