use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    PublicKeyData, SignatureAlgorithm,
};
use rustls::client::Resumption;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{
    ClientConfig, ProtocolVersion, RootCertStore, ServerConfig, SupportedProtocolVersion,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};
use x509_parser::prelude::FromDer;
use x509_parser::time::ASN1Time;

use super::*;

// Test-only keys in the forms other tools write: `openssl genrsa -traditional 2048` (PKCS#1)
// and `openssl ecparam -name prime256v1 -genkey -noout` (SEC1, with the curve parameters).
const RSA_PKCS1_KEY: &str = include_str!("testdata/rsa2048-pkcs1.pem");
const EC_SEC1_KEY: &str = include_str!("testdata/p256-sec1.pem");

struct Generated {
    cert_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
}

fn names(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

fn leaf_params(sans: &[&str]) -> CertificateParams {
    let mut params = CertificateParams::new(names(sans)).unwrap();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, sans[0]);
    params.not_after = rcgen::date_time_ymd(2031, 2, 3);
    params
}

/// A self-signed certificate (PKCS#8 key) for `sans`, the first also being the common name.
fn generate(alg: &'static SignatureAlgorithm, sans: &[&str]) -> Generated {
    let key = KeyPair::generate_for(alg).unwrap();
    let cert = leaf_params(sans).self_signed(&key).unwrap();
    Generated {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        der: cert.der().clone(),
    }
}

fn localhost() -> Generated {
    generate(&rcgen::PKCS_ECDSA_P256_SHA256, &["localhost"])
}

fn write_files(dir: &Path, cert_pem: &str, key_pem: &str) -> CertificateFiles {
    let files = CertificateFiles {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
    };
    std::fs::write(&files.cert, cert_pem).unwrap();
    std::fs::write(&files.key, key_pem).unwrap();
    files
}

/// A public key known only through its SubjectPublicKeyInfo, for rcgen to certify.
struct ForeignKey {
    raw: Vec<u8>,
    alg: &'static SignatureAlgorithm,
}

impl PublicKeyData for ForeignKey {
    fn der_bytes(&self) -> &[u8] {
        &self.raw
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.alg
    }
}

fn foreign_key(key_pem: &str, alg: &'static SignatureAlgorithm) -> ForeignKey {
    let der = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
    let signing = rustls::crypto::ring::sign::any_supported_type(&der).unwrap();
    let spki = signing.public_key().unwrap();
    let (_, parsed) = x509_parser::x509::SubjectPublicKeyInfo::from_der(&spki).unwrap();
    ForeignKey {
        raw: parsed.subject_public_key.data.to_vec(),
        alg,
    }
}

/// A leaf for `key_pem`'s public key issued by a new CA: (chain PEM leaf first, leaf, CA).
fn issued_by_ca(
    key_pem: &str,
    alg: &'static SignatureAlgorithm,
) -> (String, CertificateDer<'static>, CertificateDer<'static>) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf = leaf_params(&["localhost"])
        .signed_by(&foreign_key(key_pem, alg), &issuer)
        .unwrap();
    let chain = format!("{}{}", leaf.pem(), ca.pem());
    (chain, leaf.der().clone(), ca.der().clone())
}

/// Accepts TLS on 127.0.0.1 with `config`; every connection echoes what it reads.
async fn echo_server(config: Arc<ServerConfig>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = TlsAcceptor::from(config);
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = [0u8; 1024];
                while let Ok(n @ 1..) = tls.read(&mut buf).await {
                    if tls.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

struct Client<'a> {
    roots: &'a [&'a CertificateDer<'static>],
    versions: &'a [&'static SupportedProtocolVersion],
    alpn: &'a [&'a [u8]],
}

impl<'a> Client<'a> {
    fn trusting(roots: &'a [&'a CertificateDer<'static>]) -> Self {
        Client {
            roots,
            versions: rustls::DEFAULT_VERSIONS,
            alpn: &[],
        }
    }

    fn config(&self) -> Arc<ClientConfig> {
        let mut store = RootCertStore::empty();
        for root in self.roots {
            store.add((*root).clone()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(self.versions)
            .unwrap()
            .with_root_certificates(store)
            .with_no_client_auth();
        // A resumed session shows the certificate of the session it resumes, not the served one.
        config.resumption = Resumption::disabled();
        config.alpn_protocols = self.alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }

    async fn connect(&self, addr: SocketAddr, name: &str) -> TlsStream<TcpStream> {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = ServerName::try_from(name.to_string()).unwrap();
        TlsConnector::from(self.config())
            .connect(name, tcp)
            .await
            .unwrap()
    }
}

fn peer_fingerprint(stream: &TlsStream<TcpStream>) -> String {
    let chain = stream.get_ref().1.peer_certificates().unwrap();
    info::fingerprint(&chain[0])
}

async fn assert_echoes(stream: &mut TlsStream<TcpStream>, message: &[u8]) {
    stream.write_all(message).await.unwrap();
    let mut back = vec![0u8; message.len()];
    stream.read_exact(&mut back).await.unwrap();
    assert_eq!(back, message);
}

#[test]
fn fingerprint_is_uppercase_hex_pairs_of_sha256() {
    // SHA-256("abc"), FIPS 180-2 appendix B.1.
    assert_eq!(
        info::fingerprint(b"abc"),
        "BA:78:16:BF:8F:01:CF:EA:41:41:40:DE:5D:AE:22:23:\
         B0:03:61:A3:96:17:7A:9C:B4:10:FF:61:F2:00:15:AD"
    );
}

#[test]
fn load_describes_the_leaf() {
    let dir = tempfile::tempdir().unwrap();
    let pair = generate(
        &rcgen::PKCS_ECDSA_P256_SHA256,
        &["test.example", "127.0.0.1", "::1"],
    );
    let files = write_files(dir.path(), &pair.cert_pem, &pair.key_pem);

    let cert = ReloadableCert::load(files.clone()).unwrap();
    let info = cert.info();

    assert_eq!(info.subject, "CN=test.example");
    assert_eq!(info.sans, names(&["test.example", "127.0.0.1", "::1"]));
    assert_eq!(info.not_after, "2031-02-03T00:00:00Z");
    let groups: Vec<&str> = info.sha256.split(':').collect();
    assert_eq!(groups.len(), 32);
    assert!(groups.iter().all(|g| g.len() == 2
        && g.chars()
            .all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c))));
    assert_eq!(info.sha256, info::fingerprint(&pair.der));
    assert_eq!(cert.files(), &files);
}

#[test]
fn reload_swaps_to_the_new_pair() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (localhost(), localhost());
    let files = write_files(dir.path(), &old.cert_pem, &old.key_pem);
    let cert = ReloadableCert::load(files).unwrap();

    write_files(dir.path(), &new.cert_pem, &new.key_pem);
    let reloaded = cert.reload().unwrap();

    assert_eq!(reloaded.sha256, info::fingerprint(&new.der));
    assert_ne!(reloaded.sha256, info::fingerprint(&old.der));
    assert_eq!(cert.info(), reloaded);
}

/// Each broken state of the files, with what must be reported.
fn broken_states(good: &Generated, other: &Generated) -> Vec<(&'static str, String, String)> {
    let corrupted = good.cert_pem.replacen('M', "!", 2);
    let truncated = good.cert_pem.replace("-----END CERTIFICATE-----", "");
    vec![
        ("corrupted base64", corrupted, good.key_pem.clone()),
        ("no END line", truncated, good.key_pem.clone()),
        (
            "empty certificate file",
            String::new(),
            good.key_pem.clone(),
        ),
        ("empty key file", good.cert_pem.clone(), String::new()),
        (
            "key of another pair",
            good.cert_pem.clone(),
            other.key_pem.clone(),
        ),
        (
            "key where the certificate goes",
            good.key_pem.clone(),
            good.key_pem.clone(),
        ),
        (
            "a key ring cannot use",
            good.cert_pem.clone(),
            "-----BEGIN PRIVATE KEY-----\nAAECAwQF\n-----END PRIVATE KEY-----\n".into(),
        ),
    ]
}

fn assert_reported(case: &str, error: &TlsError) {
    let ok = match case {
        "corrupted base64" | "no END line" => matches!(error, TlsError::Parse { .. }),
        "empty certificate file" | "key where the certificate goes" => {
            matches!(error, TlsError::NoCertificate { .. })
        }
        "empty key file" => matches!(error, TlsError::NoPrivateKey { .. }),
        "key of another pair" => matches!(error, TlsError::KeyMismatch { .. }),
        "a key ring cannot use" => matches!(error, TlsError::UnsupportedKey { .. }),
        _ => false,
    };
    assert!(ok, "{case}: unexpected error {error:?}");
}

#[tokio::test]
async fn failed_reload_keeps_serving_the_old_pair() {
    let dir = tempfile::tempdir().unwrap();
    let (good, other) = (localhost(), localhost());
    let files = write_files(dir.path(), &good.cert_pem, &good.key_pem);
    let cert = ReloadableCert::load(files.clone()).unwrap();
    let before = cert.info();
    let addr = echo_server(server_config(Arc::clone(&cert), &[])).await;

    for (case, cert_pem, key_pem) in broken_states(&good, &other) {
        write_files(dir.path(), &cert_pem, &key_pem);
        let error = cert.reload().unwrap_err();
        assert_reported(case, &error);
        assert_eq!(cert.info(), before, "{case}");
        let roots = [&good.der];
        let stream = Client::trusting(&roots).connect(addr, "localhost").await;
        assert_eq!(peer_fingerprint(&stream), before.sha256, "{case}");
    }

    std::fs::remove_file(&files.key).unwrap();
    assert!(matches!(cert.reload(), Err(TlsError::Read { .. })));
    assert_eq!(cert.info(), before);
}

#[test]
fn errors_name_the_files_but_never_quote_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let (good, other) = (localhost(), localhost());
    let files = write_files(dir.path(), &good.cert_pem, &other.key_pem);
    let mismatch = ReloadableCert::load(files.clone()).unwrap_err().to_string();
    assert!(
        mismatch.contains(&files.cert.display().to_string()),
        "{mismatch}"
    );
    assert!(
        mismatch.contains(&files.key.display().to_string()),
        "{mismatch}"
    );

    let broken_key = good.key_pem.replacen('M', "!", 1);
    write_files(dir.path(), &good.cert_pem, &broken_key);
    let message = ReloadableCert::load(files.clone()).unwrap_err().to_string();
    assert!(
        message.contains(&files.key.display().to_string()),
        "{message}"
    );
    for line in broken_key.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!message.contains(line), "{message}");
    }
}

#[tokio::test]
async fn pkcs1_rsa_and_sec1_ec_keys_serve_a_chain() {
    let fixtures = [
        (RSA_PKCS1_KEY, &rcgen::PKCS_RSA_SHA256),
        (EC_SEC1_KEY, &rcgen::PKCS_ECDSA_P256_SHA256),
    ];
    for (key_pem, alg) in fixtures {
        let dir = tempfile::tempdir().unwrap();
        let (chain, leaf, ca) = issued_by_ca(key_pem, alg);
        let files = write_files(dir.path(), &chain, key_pem);

        let cert = ReloadableCert::load(files).unwrap();
        assert_eq!(cert.info().sha256, info::fingerprint(&leaf));
        let addr = echo_server(server_config(cert, &[])).await;

        let roots = [&ca];
        let mut stream = Client::trusting(&roots).connect(addr, "localhost").await;
        let served = stream.get_ref().1.peer_certificates().unwrap().to_vec();
        assert_eq!(served, vec![leaf, ca.clone()]);
        assert_echoes(&mut stream, b"signed by the loaded key").await;
    }
}

#[tokio::test]
async fn pkcs8_ecdsa_and_ed25519_keys_serve() {
    let algorithms = [
        &rcgen::PKCS_ECDSA_P256_SHA256,
        &rcgen::PKCS_ECDSA_P384_SHA384,
        &rcgen::PKCS_ED25519,
    ];
    for alg in algorithms {
        let dir = tempfile::tempdir().unwrap();
        let pair = generate(alg, &["localhost"]);
        let files = write_files(dir.path(), &pair.cert_pem, &pair.key_pem);

        let cert = ReloadableCert::load(files).unwrap();
        let addr = echo_server(server_config(cert, &[])).await;

        let roots = [&pair.der];
        let mut stream = Client::trusting(&roots).connect(addr, "localhost").await;
        assert_eq!(peer_fingerprint(&stream), info::fingerprint(&pair.der));
        assert_echoes(&mut stream, b"hello").await;
    }
}

#[tokio::test]
async fn reload_reaches_new_connections_while_old_ones_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (localhost(), localhost());
    let files = write_files(dir.path(), &old.cert_pem, &old.key_pem);
    let cert = ReloadableCert::load(files).unwrap();
    let addr = echo_server(server_config(Arc::clone(&cert), &[])).await;
    let roots = [&old.der, &new.der];
    let client = Client::trusting(&roots);

    let mut established = client.connect(addr, "localhost").await;
    assert_echoes(&mut established, b"before").await;
    assert_eq!(peer_fingerprint(&established), info::fingerprint(&old.der));

    write_files(dir.path(), &new.cert_pem, &new.key_pem);
    cert.reload().unwrap();

    assert_echoes(&mut established, b"after the reload").await;
    let fresh = client.connect(addr, "localhost").await;
    assert_eq!(peer_fingerprint(&fresh), info::fingerprint(&new.der));
}

#[tokio::test]
async fn server_config_speaks_tls12_and_tls13_with_alpn() {
    let dir = tempfile::tempdir().unwrap();
    let pair = localhost();
    let files = write_files(dir.path(), &pair.cert_pem, &pair.key_pem);
    let cert = ReloadableCert::load(files).unwrap();
    let addr = echo_server(server_config(cert, &[b"h2", b"http/1.1"])).await;
    let roots = [&pair.der];

    for (version, expected) in [
        (&rustls::version::TLS12, ProtocolVersion::TLSv1_2),
        (&rustls::version::TLS13, ProtocolVersion::TLSv1_3),
    ] {
        let client = Client {
            versions: &[version],
            alpn: &[b"http/1.1"],
            ..Client::trusting(&roots)
        };
        let mut stream = client.connect(addr, "localhost").await;
        let session = stream.get_ref().1;
        assert_eq!(session.protocol_version(), Some(expected));
        assert_eq!(session.alpn_protocol(), Some(&b"http/1.1"[..]));
        assert_echoes(&mut stream, b"ping").await;
    }
}

#[tokio::test]
async fn acceptor_serves_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pair = localhost();
    let files = write_files(dir.path(), &pair.cert_pem, &pair.key_pem);
    let cert = ReloadableCert::load(files).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let acceptor = acceptor(cert);
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = acceptor.accept(tcp).await.unwrap();
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await.unwrap();
        tls.write_all(&buf).await.unwrap();
        tls.flush().await.unwrap();
    });

    let roots = [&pair.der];
    let mut stream = Client::trusting(&roots).connect(addr, "localhost").await;
    assert_eq!(peer_fingerprint(&stream), info::fingerprint(&pair.der));
    assert_echoes(&mut stream, b"ping").await;
    server.await.unwrap();
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn ensure_self_signed_creates_the_pair_once() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("tls");
    let sans = names(&["node1.example", "10.0.0.1"]);

    let files = ensure_self_signed(&dir, &sans).unwrap();
    assert_eq!(files.cert, dir.join("cert.pem"));
    assert_eq!(files.key, dir.join("key.pem"));
    #[cfg(unix)]
    assert_eq!(mode(&files.key), 0o600);
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    entries.sort();
    assert_eq!(entries, ["cert.pem", "key.pem"]);

    let first = ReloadableCert::load(files.clone()).unwrap().info();
    assert_eq!(first.subject, "CN=node1.example");
    assert_eq!(first.sans, sans);
    assert!(first.not_after > info::rfc3339(&ASN1Time::now()));

    let again = ensure_self_signed(&dir, &names(&["other.example"])).unwrap();
    assert_eq!(again, files);
    assert_eq!(ReloadableCert::load(again).unwrap().info(), first);
}

#[test]
fn ensure_self_signed_replaces_a_half_pair() {
    let dir = tempfile::tempdir().unwrap();
    let files = ensure_self_signed(dir.path(), &names(&["localhost"])).unwrap();
    let first = ReloadableCert::load(files.clone()).unwrap().info();

    std::fs::remove_file(&files.cert).unwrap();
    let files = ensure_self_signed(dir.path(), &names(&["localhost"])).unwrap();

    let second = ReloadableCert::load(files).unwrap().info();
    assert_ne!(second.sha256, first.sha256);
}

#[tokio::test]
async fn self_signed_certificate_passes_client_verification() {
    let dir = tempfile::tempdir().unwrap();
    let files = ensure_self_signed(dir.path(), &names(&["node1.example", "127.0.0.1"])).unwrap();
    let pem = std::fs::read(&files.cert).unwrap();
    let der = CertificateDer::from_pem_slice(&pem).unwrap();
    let cert = ReloadableCert::load(files).unwrap();
    let addr = echo_server(server_config(cert, &[])).await;

    let roots = [&der];
    for name in ["node1.example", "127.0.0.1"] {
        let mut stream = Client::trusting(&roots).connect(addr, name).await;
        assert_echoes(&mut stream, b"hello").await;
    }
}

/// A pair in the generated files' place, self-signed for `localhost`, expiring `days` from now.
fn write_pair_expiring_in(dir: &Path, days: i64) -> CertInfo {
    let mut params = leaf_params(&["localhost"]);
    let end = ASN1Time::now().timestamp() + days * 24 * 60 * 60;
    params.not_before = ASN1Time::from_timestamp(end - 400 * 24 * 60 * 60)
        .unwrap()
        .to_datetime();
    params.not_after = ASN1Time::from_timestamp(end).unwrap().to_datetime();
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let files = write_files(dir, &cert.pem(), &key.serialize_pem());
    ReloadableCert::load(files).unwrap().info()
}

#[test]
fn ensure_self_signed_keeps_a_pair_with_time_left_and_replaces_one_near_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let localhost = names(&["localhost"]);

    let kept = write_pair_expiring_in(dir.path(), 31);
    let files = ensure_self_signed(dir.path(), &localhost).unwrap();
    assert_eq!(ReloadableCert::load(files).unwrap().info(), kept);

    for days in [29, -1] {
        let old = write_pair_expiring_in(dir.path(), days);
        let files = ensure_self_signed(dir.path(), &localhost).unwrap();
        let new = ReloadableCert::load(files.clone()).unwrap().info();
        assert_ne!(new.sha256, old.sha256, "{days} days left");
        let years_left = (new.not_after_unix - ASN1Time::now().timestamp()) / (365 * 24 * 3600);
        assert_eq!(years_left, 2, "{days} days left: a full validity");
        #[cfg(unix)]
        assert_eq!(mode(&files.key), 0o600);
    }
}
