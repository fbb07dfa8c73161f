//! The data directory is the node's alone: the log database holds password hashes, and beside
//! it lie generated secrets and TLS keys. Its directories are created 0700 and its files 0600,
//! and a data directory found with looser modes is tightened when the node opens it.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

pub const DIR_MODE: u32 = 0o700;
pub const FILE_MODE: u32 = 0o600;

/// Creates `dir` and its missing parents, each 0700 (those that exist keep their mode).
pub fn create_dir(dir: &Path) -> io::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
}

/// Creates `dir` 0700, or tightens it and what it holds if it was readable by others (and
/// says so in the log).
pub fn keep_private(dir: &Path) -> io::Result<()> {
    create_dir(dir)?;
    let tightened = tighten(dir)?;
    if tightened > 0 {
        tracing::warn!(
            dir = %dir.display(),
            "the data directory was readable by others: {tightened} entries tightened (directories 0700, files 0600)"
        );
    }
    Ok(())
}

/// Options that create a file 0600, set at creation so it is never readable by others, not
/// even for a moment.
pub fn file_options() -> fs::OpenOptions {
    let mut options = fs::OpenOptions::new();
    options.mode(FILE_MODE);
    options
}

/// Takes group and other permissions away from `dir` and everything under it (symbolic links
/// are left alone, and not followed); how many entries it changed.
pub fn tighten(dir: &Path) -> io::Result<usize> {
    let mut changed = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        changed += usize::from(restrict(&dir, DIR_MODE)?);
        for entry in fs::read_dir(&dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                changed += usize::from(restrict(&entry.path(), FILE_MODE)?);
            }
        }
    }
    Ok(changed)
}

/// Sets `mode` on `path` if others or its group may use it; whether it did.
fn restrict(path: &Path, mode: u32) -> io::Result<bool> {
    let current = fs::symlink_metadata(path)?.permissions().mode() & 0o777;
    if current & 0o077 == 0 {
        return Ok(false);
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn what_is_created_is_private_and_what_is_loose_is_tightened() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a/b");
        create_dir(&dir).unwrap();
        assert_eq!(mode(&root.path().join("a")), DIR_MODE);
        assert_eq!(mode(&dir), DIR_MODE);
        let file = dir.join("f");
        file_options().write(true).create(true).open(&file).unwrap();
        assert_eq!(mode(&file), FILE_MODE);
        assert_eq!(tighten(&root.path().join("a")).unwrap(), 0);

        let loose = |p: &Path, m: u32| fs::set_permissions(p, fs::Permissions::from_mode(m));
        loose(&dir, 0o755).unwrap();
        loose(&file, 0o644).unwrap();
        let tight = dir.join("tight");
        file_options()
            .write(true)
            .create(true)
            .open(&tight)
            .unwrap();
        loose(&tight, 0o400).unwrap();
        assert_eq!(tighten(&root.path().join("a")).unwrap(), 2);
        assert_eq!((mode(&dir), mode(&file)), (DIR_MODE, FILE_MODE));
        assert_eq!(mode(&tight), 0o400, "a tighter mode is kept");
    }
}
