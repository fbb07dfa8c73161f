//! TLS for the node's listeners: certificates loaded from PEM files, served through a resolver
//! that a reload swaps atomically (new handshakes get the new pair, established connections keep
//! theirs), validation before any swap, a self-signed pair for a node given none, and the
//! details `GET /servers/certificates` shows.

pub mod api_listener;
pub mod client;
mod info;
pub mod listeners;
mod load;
mod self_signed;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use rustls::server::{ClientHello, ResolvesServerCert, WantsServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ConfigBuilder, ServerConfig};
use serde::{Deserialize, Serialize};

pub use self_signed::ensure_self_signed;

/// Where a certificate (chain, leaf first) and its private key live, both PEM.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Why a certificate or key could not be loaded or made. Messages name the file; they never
/// carry key material.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: no PEM certificate found", path.display())]
    NoCertificate { path: PathBuf },
    #[error(
        "{}: no PEM private key found (expected PKCS#8, PKCS#1 RSA or SEC1 EC, unencrypted)",
        path.display()
    )]
    NoPrivateKey { path: PathBuf },
    #[error(
        "{}: unsupported private key (supported: RSA of 2048 to 8192 bits, ECDSA P-256/P-384, Ed25519)",
        path.display()
    )]
    UnsupportedKey { path: PathBuf },
    #[error("{}: {reason}", path.display())]
    Parse { path: PathBuf, reason: String },
    #[error("the key in {} does not belong to the certificate in {}", key.display(), cert.display())]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(String),
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// What GET /servers/certificates shows of a certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertInfo {
    /// The leaf's subject, e.g. `CN=mail.example.com`.
    pub subject: String,
    /// DNS names and IP addresses as written; other kinds of names in x509-parser's notation.
    pub sans: Vec<String>,
    /// RFC 3339 UTC, e.g. `2027-01-01T00:00:00Z`.
    pub not_after: String,
    /// The same, in seconds since the epoch.
    pub not_after_unix: i64,
    /// SHA-256 of the leaf's DER, uppercase hex pairs joined by `:`.
    pub sha256: String,
}

/// A validated pair: what handshakes are served and what it looks like.
struct Loaded {
    key: Arc<CertifiedKey>,
    info: CertInfo,
}

/// A certificate and key from PEM files, reloadable. Implements
/// [`rustls::server::ResolvesServerCert`].
pub struct ReloadableCert {
    files: CertificateFiles,
    // Readers clone the inner `Arc` under the lock, so a handshake holds one whole pair even if
    // a reload swaps it a moment later.
    current: RwLock<Arc<Loaded>>,
    // The provider and protocol versions, checked once here so that building a server config
    // later cannot fail.
    protocols: ConfigBuilder<ServerConfig, WantsServerCert>,
}

impl ReloadableCert {
    /// Reads and validates both files, as [`reload`](Self::reload) does.
    pub fn load(files: CertificateFiles) -> Result<Arc<Self>, TlsError> {
        let protocols = load::protocols()?;
        let loaded = load::pair(&files)?;
        Ok(Arc::new(Self {
            files,
            current: RwLock::new(Arc::new(loaded)),
            protocols,
        }))
    }

    /// Re-reads both files, validates (parses; the key matches the leaf certificate), and only
    /// then swaps; on error the old pair keeps being served.
    pub fn reload(&self) -> Result<CertInfo, TlsError> {
        let loaded = Arc::new(load::pair(&self.files)?);
        let info = loaded.info.clone();
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = loaded;
        Ok(info)
    }

    pub fn info(&self) -> CertInfo {
        self.current().info.clone()
    }

    #[cfg(test)]
    pub fn files(&self) -> &CertificateFiles {
        &self.files
    }

    fn current(&self) -> Arc<Loaded> {
        // A writer only ever stores a whole validated pair, so a poisoned lock still holds one.
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.current().key))
    }
}

impl fmt::Debug for ReloadableCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadableCert")
            .field("files", &self.files)
            .field("info", &self.info())
            .finish()
    }
}

/// A server config (ring provider, TLS 1.2+1.3, no client auth) resolving through `cert`, with
/// the given ALPN protocols.
pub fn server_config(cert: Arc<ReloadableCert>, alpn: &[&[u8]]) -> Arc<ServerConfig> {
    let mut config = cert.protocols.clone().with_cert_resolver(cert);
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

pub fn acceptor(cert: Arc<ReloadableCert>) -> tokio_rustls::TlsAcceptor {
    tokio_rustls::TlsAcceptor::from(server_config(cert, &[]))
}
