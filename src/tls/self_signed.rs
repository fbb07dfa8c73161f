//! A self-signed pair for a node that was given no certificate, made once and kept until it
//! nears its end; then the next start makes a new one.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose,
};
use x509_parser::time::ASN1Time;

use super::{CertificateFiles, TlsError};

const CERT_FILE: &str = "cert.pem";
const KEY_FILE: &str = "key.pem";
/// The name a certificate gets when the node was given none.
const DEFAULT_NAME: &str = "localhost";
/// 825 days: the longest validity Apple platforms accept for a TLS server certificate.
const VALIDITY_SECS: i64 = 825 * 24 * 60 * 60;
/// A kept pair is made anew at start once it has less than this left: before the health check
/// starts warning (14 days), so a node restarted now and then never serves an expired one.
const RENEW_WITHIN_SECS: i64 = 30 * 24 * 60 * 60;
/// Backdated an hour so peers whose clocks lag a little accept it at once.
const BACKDATE_SECS: i64 = 60 * 60;

/// Generates a self-signed pair into `dir/cert.pem` and `dir/key.pem` (mode 0600 in a 0700
/// directory, each written to a temp file then renamed) unless both already exist and the certificate has more
/// than 30 days left; returns their paths. `names`
/// become the SANs (IP addresses as IP SANs, others as DNS names); the first is also the
/// common name. No names means `localhost`.
pub fn ensure_self_signed(dir: &Path, names: &[String]) -> Result<CertificateFiles, TlsError> {
    let files = CertificateFiles {
        cert: dir.join(CERT_FILE),
        key: dir.join(KEY_FILE),
    };
    if exists(&files.cert)? && exists(&files.key)? {
        let left = secs_left(&files.cert)?;
        if left >= RENEW_WITHIN_SECS {
            return Ok(files);
        }
        tracing::warn!(
            cert = %files.cert.display(),
            days_left = left / (24 * 60 * 60),
            "the generated certificate is near its end: generating a new pair"
        );
    }
    sessionplane_cluster::private_fs::create_dir(dir).map_err(|source| TlsError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let (cert_pem, key_pem) = generate(names)?;
    // Key first: with only one of the two files present, the next call makes a new pair.
    write_atomically(&files.key, key_pem.as_bytes(), 0o600)?;
    // The certificate is no secret, but it lives in the data directory, which is the node's.
    write_atomically(&files.cert, cert_pem.as_bytes(), 0o600)?;
    Ok(files)
}

/// Seconds until the certificate in `path` expires (negative once it has).
fn secs_left(path: &Path) -> Result<i64, TlsError> {
    let chain = super::load::read_chain(path)?;
    let info = super::info::of_chain(path, &chain)?;
    Ok(info.not_after_unix - ASN1Time::now().timestamp())
}

fn exists(path: &Path) -> Result<bool, TlsError> {
    // An unreadable directory must not look like a missing pair, or a real one would be replaced.
    path.try_exists().map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// An ECDSA P-256 certificate and its PKCS#8 key, both PEM.
fn generate(names: &[String]) -> Result<(String, String), TlsError> {
    let names = match names {
        [] => vec![DEFAULT_NAME.to_string()],
        names => names.to_vec(),
    };
    let common_name = names.first().cloned().unwrap_or_default();
    let mut params = CertificateParams::new(names).map_err(generation_failed)?;
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let now = ASN1Time::now().timestamp();
    params.not_before = timestamp(now - BACKDATE_SECS)?.to_datetime();
    params.not_after = timestamp(now + VALIDITY_SECS)?.to_datetime();
    let key = KeyPair::generate().map_err(generation_failed)?;
    let cert = params.self_signed(&key).map_err(generation_failed)?;
    Ok((cert.pem(), key.serialize_pem()))
}

fn timestamp(secs: i64) -> Result<ASN1Time, TlsError> {
    ASN1Time::from_timestamp(secs).map_err(generation_failed)
}

fn generation_failed(error: impl std::fmt::Display) -> TlsError {
    TlsError::Generate(error.to_string())
}

/// Readers see either no file or the whole of it, never a partly written one.
fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> Result<(), TlsError> {
    let tmp = temp_path(path);
    let result = write_new(&tmp, contents, mode)
        .and_then(|()| std::fs::rename(&tmp, path))
        .and_then(|()| sync_parent(path));
    if result.is_err() {
        // Best effort: the write error is what matters.
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|source| TlsError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// `.key.pem.tmp.<pid>` beside the target, so the rename stays on one filesystem.
fn temp_path(path: &Path) -> PathBuf {
    let mut name = OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(format!(".tmp.{}", std::process::id()));
    path.with_file_name(name)
}

fn write_new(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    // A leftover from an interrupted run could carry a looser mode; start from a new file.
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    set_mode(&mut options, mode);
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

#[cfg(unix)]
fn set_mode(options: &mut OpenOptions, mode: u32) {
    use std::os::unix::fs::OpenOptionsExt;
    // Set at creation, so the key is never readable by others, not even for a moment.
    options.mode(mode);
}

#[cfg(not(unix))]
fn set_mode(_options: &mut OpenOptions, _mode: u32) {}

/// Makes the rename itself durable.
#[cfg(unix)]
fn sync_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::File::open(dir)?.sync_all(),
        _ => Ok(()),
    }
}

#[cfg(not(unix))]
fn sync_parent(_path: &Path) -> io::Result<()> {
    Ok(())
}
