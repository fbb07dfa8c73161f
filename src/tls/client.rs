//! What sessionplane trusts when it is the TLS client (a proxied application's upstream, a mail
//! server): the CAs of a PEM file, or the web's roots.

use std::path::Path;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

/// The certificates of `ca_file` (PEM, at least one), or the web's roots without one. The error
/// names what failed, for the caller to say which setting it was.
pub fn trusted_roots(ca_file: Option<&Path>) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    let Some(file) = ca_file else {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        return Ok(roots);
    };
    let refuse = |e: String| format!("ca_file {}: {e}", file.display());
    let pem = std::fs::read(file).map_err(|e| refuse(e.to_string()))?;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| refuse(e.to_string()))?;
        roots.add(cert).map_err(|e| refuse(e.to_string()))?;
    }
    match roots.is_empty() {
        true => Err(refuse("holds no certificate".into())),
        false => Ok(roots),
    }
}
