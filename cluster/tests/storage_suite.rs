//! openraft's own storage test suite, run against the redb log store and the snapshot store.

use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageError;
use sessionplane_cluster::{
    GroupId, GroupLog, LogDb, SnapshotStore, SnapshotWriter, StateMachine, StateMachineStore,
    TypeConfig,
};

/// A state machine that counts the commands it applied.
#[derive(Default)]
struct Counter(u64);

impl StateMachine for Counter {
    fn apply(&mut self, _at_ms: u64, _command: &[u8]) -> Vec<u8> {
        self.0 += 1;
        self.0.to_be_bytes().to_vec()
    }
    fn snapshot(&self) -> SnapshotWriter {
        let value = self.0;
        Box::new(move || value.to_be_bytes().to_vec())
    }
    fn restore(&self, bytes: &[u8]) -> Result<Self, String> {
        let bytes: [u8; 8] = bytes
            .try_into()
            .map_err(|_| "bad counter snapshot".to_string())?;
        Ok(Counter(u64::from_be_bytes(bytes)))
    }
    fn query(&self, _query: &[u8]) -> Vec<u8> {
        self.0.to_be_bytes().to_vec()
    }
}

struct RedbBuilder;

impl StoreBuilder<TypeConfig, GroupLog, StateMachineStore<Counter>, tempfile::TempDir>
    for RedbBuilder
{
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, GroupLog, StateMachineStore<Counter>), StorageError<u64>> {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = LogDb::open(&dir.path().join("raft.redb")).expect("open redb");
        let log = db.group_log(&GroupId::new("site:test").expect("group id"))?;
        let snapshots = SnapshotStore::open(dir.path().join("snapshots")).expect("snapshot dir");
        let sm = StateMachineStore::open(Counter::default(), snapshots)?;
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite() -> Result<(), StorageError<u64>> {
    Suite::test_all(RedbBuilder)
}
