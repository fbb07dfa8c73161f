//! Snapshot files: one current snapshot per group, `<dir>/current.snap`, replaced atomically
//! (written to a temporary file, fsynced, renamed over the old one, directory fsynced), so the
//! previous snapshot is deleted by the same step that makes the new one durable.
//!
//! File format: a 4-byte big-endian length, the snapshot meta (MessagePack), then the state
//! machine's bytes.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::types::SnapshotMeta;
use crate::wire::{decode, encode};

const CURRENT: &str = "current.snap";
const PARTIAL: &str = "current.snap.partial";

#[derive(Clone, Debug)]
pub struct SnapshotStore {
    dir: PathBuf,
}

impl SnapshotStore {
    pub fn open(dir: PathBuf) -> io::Result<Self> {
        crate::private_fs::create_dir(&dir)?;
        let _ = fs::remove_file(dir.join(PARTIAL));
        Ok(Self { dir })
    }

    pub fn save(&self, meta: &SnapshotMeta, data: &[u8]) -> io::Result<()> {
        let meta = encode(meta).map_err(io::Error::other)?;
        let meta_len = u32::try_from(meta.len()).map_err(io::Error::other)?;
        let partial = self.dir.join(PARTIAL);
        let mut file = crate::private_fs::file_options()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&partial)?;
        file.write_all(&meta_len.to_be_bytes())?;
        file.write_all(&meta)?;
        file.write_all(data)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&partial, self.dir.join(CURRENT))?;
        sync_dir(&self.dir)
    }

    pub fn load(&self) -> io::Result<Option<(SnapshotMeta, Vec<u8>)>> {
        let mut file = match File::open(self.dir.join(CURRENT)) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut len = [0u8; 4];
        file.read_exact(&mut len)?;
        let mut meta = vec![0u8; u32::from_be_bytes(len) as usize];
        file.read_exact(&mut meta)?;
        let meta: SnapshotMeta =
            decode(&meta).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        let size = file.metadata().map(|m| m.len() as usize).unwrap_or(0);
        let mut data = Vec::with_capacity(size);
        file.read_to_end(&mut data)?;
        Ok(Some((meta, data)))
    }
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::impls::leader_id_adv::LeaderId;
    use openraft::LogId;

    #[test]
    fn save_replaces_the_previous_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let store = SnapshotStore::open(dir.path().join("g")).unwrap();
        assert!(store.load().unwrap().is_none());
        for index in [5u64, 9] {
            let meta = SnapshotMeta {
                last_log_id: Some(LogId::new(
                    LeaderId {
                        term: 1,
                        node_id: 0,
                    },
                    index,
                )),
                ..Default::default()
            };
            store
                .save(&meta, format!("data{index}").as_bytes())
                .unwrap();
        }
        let (meta, data) = store.load().unwrap().unwrap();
        assert_eq!(meta.last_log_id.map(|id| id.index), Some(9));
        assert_eq!(data, b"data9");
        let files: Vec<_> = fs::read_dir(dir.path().join("g")).unwrap().collect();
        assert_eq!(files.len(), 1, "only the current snapshot is kept");
    }
}
