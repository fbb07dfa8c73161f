//! Raw line clients for IMAP and SMTP over TCP or TLS (tokio-rustls), trusting a test CA, and
//! the SHA-256 fingerprint of the certificate a server presented.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use tokio_rustls::TlsConnector;

const WAIT: Duration = Duration::from_secs(10);

pub fn connector(ca_pem: &str) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("a certificate")).expect("a root");
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

/// A line-oriented client over any stream.
pub struct LineClient<S> {
    stream: BufReader<S>,
}

impl<S: AsyncRead + AsyncWrite + Unpin> LineClient<S> {
    pub fn new(stream: S) -> Self {
        Self {
            stream: BufReader::new(stream),
        }
    }

    pub async fn send(&mut self, line: &str) {
        let stream = self.stream.get_mut();
        stream
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .expect("send");
        stream.flush().await.expect("flush");
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let stream = self.stream.get_mut();
        stream.write_all(bytes).await?;
        stream.flush().await
    }

    /// The next line without its CRLF; `None` at end of stream.
    pub async fn line(&mut self) -> Option<String> {
        let mut line = String::new();
        match tokio::time::timeout(WAIT, self.stream.read_line(&mut line)).await {
            Ok(Ok(0)) | Ok(Err(_)) => None,
            Ok(Ok(_)) => Some(line.trim_end_matches(['\r', '\n']).to_string()),
            Err(_) => panic!("no line within {WAIT:?}"),
        }
    }

    /// Lines up to and including the first that starts with `prefix`.
    pub async fn until(&mut self, prefix: &str) -> Vec<String> {
        let mut lines = Vec::new();
        loop {
            let line = self
                .line()
                .await
                .unwrap_or_else(|| panic!("closed before {prefix:?}; got {lines:?}"));
            let done = line.starts_with(prefix);
            lines.push(line);
            if done {
                return lines;
            }
        }
    }

    /// Whether the server closes the stream within `within` (reading whatever comes first).
    pub async fn closes_within(&mut self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let mut line = String::new();
            match tokio::time::timeout_at(deadline, self.stream.read_line(&mut line)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return true,
                Ok(Ok(_)) => continue,
                Err(_) => return false,
            }
        }
    }

    pub fn into_inner(self) -> S {
        self.stream.into_inner()
    }
}

pub async fn plain(addr: SocketAddr) -> LineClient<TcpStream> {
    LineClient::new(TcpStream::connect(addr).await.expect("connect"))
}

pub async fn tls(addr: SocketAddr, ca_pem: &str) -> LineClient<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    LineClient::new(handshake(tcp, ca_pem).await)
}

pub async fn handshake(tcp: TcpStream, ca_pem: &str) -> TlsStream<TcpStream> {
    let name = ServerName::try_from("localhost").expect("name");
    tokio::time::timeout(WAIT, connector(ca_pem).connect(name, tcp))
        .await
        .expect("handshake in time")
        .expect("handshake")
}

/// Upgrades a plain client after the server accepted STARTTLS.
pub async fn start_tls(
    client: LineClient<TcpStream>,
    ca_pem: &str,
) -> LineClient<TlsStream<TcpStream>> {
    LineClient::new(handshake(client.into_inner(), ca_pem).await)
}

/// SHA-256 of the leaf certificate the server presented, as `AB:CD:…`.
pub fn fingerprint(client: &LineClient<TlsStream<TcpStream>>) -> String {
    let (_, connection) = client.stream.get_ref().get_ref();
    let leaf = connection
        .peer_certificates()
        .and_then(|chain| chain.first())
        .expect("a peer certificate");
    let digest = ring::digest::digest(&ring::digest::SHA256, leaf.as_ref());
    digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

pub fn plain_credentials(user: &str, password: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}"))
}
