//! The details of a certificate chain an operator sees: subject, names, expiry, fingerprint.

use std::net::IpAddr;
use std::path::Path;

use ring::digest::{digest, SHA256};
use rustls::pki_types::CertificateDer;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;
use x509_parser::time::ASN1Time;

use super::{CertInfo, TlsError};

/// Parses every certificate of the chain (a broken intermediate would only surface in clients)
/// and describes the leaf.
pub(super) fn of_chain(path: &Path, chain: &[CertificateDer<'_>]) -> Result<CertInfo, TlsError> {
    let mut leaf = None;
    for (index, der) in chain.iter().enumerate() {
        let cert = parse(path, index, der)?;
        if index == 0 {
            leaf = Some(describe(path, &cert, der)?);
        }
    }
    leaf.ok_or_else(|| TlsError::NoCertificate {
        path: path.to_path_buf(),
    })
}

fn parse<'a>(
    path: &Path,
    index: usize,
    der: &'a CertificateDer<'_>,
) -> Result<X509Certificate<'a>, TlsError> {
    match X509Certificate::from_der(der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err(parse_error(
            path,
            index,
            "trailing bytes after the certificate",
        )),
        Err(e) => Err(parse_error(path, index, &e.to_string())),
    }
}

fn parse_error(path: &Path, index: usize, reason: &str) -> TlsError {
    TlsError::Parse {
        path: path.to_path_buf(),
        reason: format!("certificate #{} is not valid X.509: {reason}", index + 1),
    }
}

fn describe(path: &Path, cert: &X509Certificate<'_>, der: &[u8]) -> Result<CertInfo, TlsError> {
    let sans = match cert.subject_alternative_name() {
        Ok(Some(ext)) => ext.value.general_names.iter().map(san).collect(),
        Ok(None) => Vec::new(),
        Err(e) => return Err(parse_error(path, 0, &e.to_string())),
    };
    Ok(CertInfo {
        subject: cert.subject().to_string(),
        sans,
        not_after: rfc3339(&cert.validity().not_after),
        not_after_unix: cert.validity().not_after.timestamp(),
        sha256: fingerprint(der),
    })
}

fn san(name: &GeneralName<'_>) -> String {
    match name {
        GeneralName::DNSName(dns) => (*dns).to_string(),
        GeneralName::IPAddress(bytes) => ip(bytes).unwrap_or_else(|| name.to_string()),
        GeneralName::RFC822Name(email) => (*email).to_string(),
        GeneralName::URI(uri) => (*uri).to_string(),
        other => other.to_string(),
    }
}

fn ip(bytes: &[u8]) -> Option<String> {
    let addr = match bytes.len() {
        4 => IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?),
        16 => IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?),
        _ => return None,
    };
    Some(addr.to_string())
}

/// `YYYY-MM-DDTHH:MM:SSZ`.
pub(super) fn rfc3339(time: &ASN1Time) -> String {
    // Going through the Unix timestamp normalises any offset to UTC.
    let t = ASN1Time::from_timestamp(time.timestamp())
        .unwrap_or(*time)
        .to_datetime();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// SHA-256 of the DER, as `AB:CD:...` (the form browsers and `openssl x509 -fingerprint` show).
pub(super) fn fingerprint(der: &[u8]) -> String {
    let hash = digest(&SHA256, der);
    let pairs: Vec<String> = hash.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    pairs.join(":")
}
