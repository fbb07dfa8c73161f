//! The cluster secret: from the config, from a file, or generated once for a lone node.

use std::fs;
use std::io::Write;
use std::path::Path;

use crate::config::Config;

const GENERATED: &str = "cluster_secret";

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read the cluster secret file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the cluster secret file {0} is empty")]
    Empty(String),
    #[error("cannot store a generated cluster secret in {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

pub fn cluster_secret(config: &Config) -> Result<String, SecretError> {
    if !config.cluster_secret.is_empty() {
        return Ok(config.cluster_secret.clone());
    }
    let path = match &config.cluster_secret_file {
        Some(path) => return read(path),
        None => config.data_dir.join(GENERATED),
    };
    if path.exists() {
        return read(&path);
    }
    let secret = random_hex(32).map_err(|source| SecretError::Write {
        path: path.display().to_string(),
        source,
    })?;
    write_private(&path, &secret).map_err(|source| SecretError::Write {
        path: path.display().to_string(),
        source,
    })?;
    Ok(secret)
}

/// `bytes` random bytes from the OS, hex-encoded.
pub fn random_hex(bytes: usize) -> std::io::Result<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

fn read(path: &Path) -> Result<String, SecretError> {
    let text = fs::read_to_string(path).map_err(|source| SecretError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let secret = text.trim().to_string();
    if secret.is_empty() {
        return Err(SecretError::Empty(path.display().to_string()));
    }
    Ok(secret)
}

/// Writes a file readable by its owner only.
pub fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}
