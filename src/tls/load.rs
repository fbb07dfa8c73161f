//! Reading a certificate chain and its key from PEM files and proving they belong together.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WantsServerCert;
use rustls::sign::{CertifiedKey, SigningKey};
use rustls::{ConfigBuilder, ServerConfig};

use super::{info, CertificateFiles, Loaded, TlsError};

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The server side up to the certificate: ring, TLS 1.3 and 1.2, no client authentication.
pub(super) fn protocols() -> Result<ConfigBuilder<ServerConfig, WantsServerCert>, TlsError> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?;
    Ok(builder.with_no_client_auth())
}

/// Reads and validates both files; nothing is returned unless the key signs for the leaf.
pub(super) fn pair(files: &CertificateFiles) -> Result<Loaded, TlsError> {
    let chain = read_chain(&files.cert)?;
    let key = read_key(&files.key)?;
    let info = info::of_chain(&files.cert, &chain)?;
    let certified = CertifiedKey::new(chain, key);
    check_keys_match(&certified, files)?;
    Ok(Loaded {
        key: Arc::new(certified),
        info,
    })
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

pub(super) fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, &e))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(chain)
}

fn read_key(path: &Path) -> Result<Arc<dyn SigningKey>, TlsError> {
    let pem = read(path)?;
    let der = match PrivateKeyDer::from_pem_slice(&pem) {
        Ok(der) => der,
        Err(pem::Error::NoItemsFound) => {
            return Err(TlsError::NoPrivateKey {
                path: path.to_path_buf(),
            })
        }
        Err(e) => return Err(pem_error(path, &e)),
    };
    provider()
        .key_provider
        .load_private_key(der)
        .map_err(|_| TlsError::UnsupportedKey {
            path: path.to_path_buf(),
        })
}

/// Compares the key's SubjectPublicKeyInfo with the leaf's, byte for byte.
fn check_keys_match(certified: &CertifiedKey, files: &CertificateFiles) -> Result<(), TlsError> {
    match certified.keys_match() {
        Ok(()) => Ok(()),
        // The ring keys this module loads all report their public key, so "unknown" cannot be
        // proven a match: refuse it like a mismatch.
        Err(rustls::Error::InconsistentKeys(_)) => Err(TlsError::KeyMismatch {
            cert: files.cert.clone(),
            key: files.key.clone(),
        }),
        Err(e) => Err(TlsError::Parse {
            path: files.cert.clone(),
            reason: format!("the leaf certificate is not usable: {e}"),
        }),
    }
}

/// Describes a PEM error without quoting the file: a key file's lines are secret.
fn pem_error(path: &Path, error: &pem::Error) -> TlsError {
    let reason = match error {
        pem::Error::MissingSectionEnd { .. } => "malformed PEM: a section has no END line",
        pem::Error::IllegalSectionStart { .. } => "malformed PEM: a BEGIN line is invalid",
        pem::Error::Base64Decode(_) => "malformed PEM: a section is not valid base64",
        pem::Error::SectionTooLarge => "malformed PEM: a section is too large",
        _ => "malformed PEM",
    };
    TlsError::Parse {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}
