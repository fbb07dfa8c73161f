//! Secrets a node needs: the cluster secret and the session token key. Each comes from the
//! config, from a file, or (on a lone node) is generated once into the data dir, readable by its
//! owner only.

use std::fs;
use std::io::Write;
use std::path::Path;

use sessionplane_cluster::private_fs;

use crate::config::Config;
use crate::iam::password::random_hex;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read the {what} file {path}: {source}")]
    Read {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("the {what} file {path} is empty")]
    Empty { what: &'static str, path: String },
    #[error("cannot store a generated {what} in {path}: {source}")]
    Write {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
}

pub fn cluster_secret(config: &Config) -> Result<String, SecretError> {
    resolve(
        "cluster secret",
        &config.cluster_secret,
        config.cluster_secret_file.as_deref(),
        &config.data_dir.join("cluster_secret"),
    )
}

pub fn token_key(config: &Config) -> Result<String, SecretError> {
    resolve(
        "token key",
        &config.iam.token_key,
        config.iam.token_key_file.as_deref(),
        &config.data_dir.join("token_key"),
    )
}

fn resolve(
    what: &'static str,
    inline: &str,
    file: Option<&Path>,
    generated: &Path,
) -> Result<String, SecretError> {
    if !inline.is_empty() {
        return Ok(inline.to_string());
    }
    if let Some(path) = file {
        return read(what, path);
    }
    if generated.exists() {
        return read(what, generated);
    }
    let write_error = |source| SecretError::Write {
        what,
        path: generated.display().to_string(),
        source,
    };
    let secret = random_hex(32).map_err(write_error)?;
    write_private(generated, &secret).map_err(write_error)?;
    Ok(secret)
}

/// Reads a secret file whole (a PEM key keeps its lines; surrounding whitespace is dropped).
pub fn read(what: &'static str, path: &Path) -> Result<String, SecretError> {
    let text = fs::read_to_string(path).map_err(|source| SecretError::Read {
        what,
        path: path.display().to_string(),
        source,
    })?;
    let secret = text.trim().to_string();
    if secret.is_empty() {
        return Err(SecretError::Empty {
            what,
            path: path.display().to_string(),
        });
    }
    Ok(secret)
}

/// Writes a file readable by its owner only, in a directory only its owner may enter.
pub fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        private_fs::create_dir(dir)?;
    }
    let mut file = private_fs::file_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}
