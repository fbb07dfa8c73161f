//! The mail servers behind the listeners (`[mail.upstream]`): reaching one (TCP within the
//! connect timeout, then TLS from the first byte or after STARTTLS, its certificate verified
//! unless the configuration turns that off) and logging in there for a user the listener has
//! already authenticated. What is relayed afterwards is `relay`'s; the client is not this
//! module's business.

pub mod imap;
pub mod smtp;

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, BufReader};
use tokio::net::TcpStream;

use crate::config::mail::{split_host_port, MailUpstreamConfig, UpstreamAuth, UpstreamTls};
use crate::config::Secret;

/// A connection to a mail server, plain or TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Io for T {}

pub type UpstreamStream = Box<dyn Io>;

/// The longest line read from a server while logging in.
const MAX_LOGIN_LINE: usize = 64 * 1024;

/// Why a mail server could not take a user's connection.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("{server} could not be reached: {why}")]
    Unreachable { server: String, why: String },
    #[error("{server}: TLS failed: {why}")]
    Tls { server: String, why: String },
    #[error("{server} refused the login: {answer}")]
    Refused { server: String, answer: String },
    #[error("{server} broke the protocol: {why}")]
    Protocol { server: String, why: String },
}

/// How sessionplane logs in to the servers.
#[derive(Clone, Debug)]
pub enum UpstreamLogin {
    Master { user: String, secret: Secret },
    Passthrough,
}

impl UpstreamLogin {
    /// The SASL PLAIN response for `user`, whose password (for a passthrough) is `password`.
    pub fn plain(&self, user: &str, password: &str) -> String {
        let message = match self {
            Self::Master {
                user: master,
                secret,
            } => format!("{user}\0{master}\0{}", secret.0),
            Self::Passthrough => format!("\0{user}\0{password}"),
        };
        base64::engine::general_purpose::STANDARD.encode(message)
    }
}

/// One mail server and how to reach it.
pub struct Server {
    /// `host:port`, for messages and `protocolSpecificInformation`.
    pub address: String,
    host: String,
    port: u16,
    tls: UpstreamTls,
    connector: tokio_rustls::TlsConnector,
    name: ServerName<'static>,
    pub timeout: Duration,
}

/// The configured servers, and the login sessionplane uses there.
pub struct MailUpstream {
    pub imap: Option<Server>,
    pub smtp: Option<Server>,
    pub login: UpstreamLogin,
    /// What the submission server's `EHLO` offered last (see `smtp`).
    smtp_extensions: std::sync::Mutex<Vec<String>>,
}

impl MailUpstream {
    /// The servers of a validated `[mail.upstream]`; a CA or secret file that does not read is
    /// an error.
    pub fn new(config: &MailUpstreamConfig) -> Result<Self, String> {
        let tls = Arc::new(client_config(config)?);
        let server = |address: &Option<String>, mode| {
            address
                .as_deref()
                .map(|a| Server::new(a, mode, config, tls.clone()))
                .transpose()
        };
        let login = match config.auth {
            UpstreamAuth::Passthrough => UpstreamLogin::Passthrough,
            UpstreamAuth::Master => UpstreamLogin::Master {
                user: config.master_user.clone().unwrap_or_default(),
                secret: read_secret(config.master_secret_file.as_deref())?,
            },
        };
        Ok(Self {
            imap: server(&config.imap, config.imap_tls)?,
            smtp: server(&config.smtp, config.smtp_tls)?,
            login,
            smtp_extensions: Default::default(),
        })
    }
}

fn read_secret(file: Option<&Path>) -> Result<Secret, String> {
    let file = file.ok_or("mail.upstream: auth = \"master\" needs master_secret_file")?;
    Secret::first_line_of(file).map_err(|e| format!("mail.upstream: master_secret_file {e}"))
}

impl Server {
    fn new(
        address: &str,
        tls: UpstreamTls,
        config: &MailUpstreamConfig,
        client: Arc<rustls::ClientConfig>,
    ) -> Result<Self, String> {
        let (host, port) = split_host_port(address)
            .ok_or_else(|| format!("mail.upstream: {address:?}: use host:port"))?;
        let name = config.server_name.as_deref().unwrap_or(host).to_string();
        let name = ServerName::try_from(name)
            .map_err(|e| format!("mail.upstream: server name of {address}: {e}"))?;
        Ok(Self {
            address: address.to_string(),
            host: host.to_string(),
            port,
            tls,
            connector: tokio_rustls::TlsConnector::from(client),
            name,
            timeout: Duration::from_millis(config.connect_timeout_ms),
        })
    }

    fn unreachable(&self, why: impl ToString) -> UpstreamError {
        UpstreamError::Unreachable {
            server: self.address.clone(),
            why: why.to_string(),
        }
    }

    pub(crate) fn broken(&self, why: impl ToString) -> UpstreamError {
        UpstreamError::Protocol {
            server: self.address.clone(),
            why: why.to_string(),
        }
    }

    pub(crate) fn refused(&self, answer: &str) -> UpstreamError {
        UpstreamError::Refused {
            server: self.address.clone(),
            answer: crate::mail::one_line(answer.trim_end()),
        }
    }

    /// TCP within the timeout, with TLS from the first byte for an implicit-TLS server.
    pub async fn connect(&self) -> Result<UpstreamStream, UpstreamError> {
        let connecting = TcpStream::connect((self.host.as_str(), self.port));
        let tcp = match tokio::time::timeout(self.timeout, connecting).await {
            Err(_) => {
                return Err(self.unreachable(format!("no connection within {:?}", self.timeout)))
            }
            Ok(Err(e)) => return Err(self.unreachable(e)),
            Ok(Ok(tcp)) => tcp,
        };
        let _ = tcp.set_nodelay(true);
        match self.tls {
            UpstreamTls::Implicit => self.start_tls(Box::new(tcp)).await,
            UpstreamTls::Starttls | UpstreamTls::None => Ok(Box::new(tcp)),
        }
    }

    /// Whether the protocol's STARTTLS comes after the greeting.
    pub fn wants_starttls(&self) -> bool {
        self.tls == UpstreamTls::Starttls
    }

    pub async fn start_tls(&self, plain: UpstreamStream) -> Result<UpstreamStream, UpstreamError> {
        let handshake = self.connector.connect(self.name.clone(), plain);
        match tokio::time::timeout(self.timeout, handshake).await {
            Err(_) => Err(UpstreamError::Tls {
                server: self.address.clone(),
                why: format!("no handshake within {:?}", self.timeout),
            }),
            Ok(Err(e)) => Err(UpstreamError::Tls {
                server: self.address.clone(),
                why: e.to_string(),
            }),
            Ok(Ok(tls)) => Ok(Box::new(tls)),
        }
    }

    /// The next line from the server within the timeout, without its line break.
    pub(crate) async fn line(
        &self,
        reader: &mut BufReader<UpstreamStream>,
    ) -> Result<String, UpstreamError> {
        let mut line = Vec::new();
        let reading = read_line(reader, &mut line);
        match tokio::time::timeout(self.timeout, reading).await {
            Err(_) => Err(self.broken(format!("no answer within {:?}", self.timeout))),
            Ok(Err(e)) => Err(self.broken(e)),
            Ok(Ok(())) => Ok(String::from_utf8_lossy(&line).trim_end().to_string()),
        }
    }

    /// Writes `text` within the timeout.
    pub(crate) async fn send(
        &self,
        reader: &mut BufReader<UpstreamStream>,
        text: &str,
    ) -> Result<(), UpstreamError> {
        use tokio::io::AsyncWriteExt;
        let stream = reader.get_mut();
        let writing = async {
            stream.write_all(text.as_bytes()).await?;
            stream.flush().await
        };
        match tokio::time::timeout(self.timeout, writing).await {
            Err(_) => Err(self.broken(format!("not writable within {:?}", self.timeout))),
            Ok(Err(e)) => Err(self.broken(e)),
            Ok(Ok(())) => Ok(()),
        }
    }
}

/// Reads one line, at most [`MAX_LOGIN_LINE`] long; the end of the stream is an error.
async fn read_line(reader: &mut BufReader<UpstreamStream>, line: &mut Vec<u8>) -> io::Result<()> {
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            ));
        }
        let (taken, done) = match available.iter().position(|b| *b == b'\n') {
            Some(at) => (at + 1, true),
            None => (available.len(), false),
        };
        line.extend_from_slice(&available[..taken]);
        reader.consume(taken);
        if line.len() > MAX_LOGIN_LINE {
            return Err(io::Error::other("a line too long"));
        }
        if done {
            return Ok(());
        }
    }
}

/// The TLS client of the mail servers: the configured CAs (else the web's roots), or no
/// verification at all when `verify_certificates = false`.
fn client_config(config: &MailUpstreamConfig) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    if !config.verify_certificates {
        return Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(unverified::AnyCertificate(provider)))
            .with_no_client_auth());
    }
    let roots = crate::tls::client::trusted_roots(config.ca_file.as_deref())
        .map_err(|e| format!("mail.upstream: {e}"))?;
    Ok(builder.with_root_certificates(roots).with_no_client_auth())
}

/// The verifier of `verify_certificates = false`: any certificate is taken, its handshake
/// signatures still checked.
mod unverified {
    use std::sync::Arc;

    use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
    use rustls::crypto::CryptoProvider;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use rustls::{DigitallySignedStruct, SignatureScheme};

    #[derive(Debug)]
    pub struct AnyCertificate(pub Arc<CryptoProvider>);

    impl ServerCertVerifier for AnyCertificate {
        fn verify_server_cert(
            &self,
            _end_entity: &CertificateDer<'_>,
            _intermediates: &[CertificateDer<'_>],
            _server_name: &ServerName<'_>,
            _ocsp_response: &[u8],
            _now: UnixTime,
        ) -> Result<ServerCertVerified, rustls::Error> {
            Ok(ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &CertificateDer<'_>,
            dss: &DigitallySignedStruct,
        ) -> Result<HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }

        fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
}
