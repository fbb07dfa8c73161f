//! openraft's own storage test suite, run against the redb log store and the snapshot store.

mod common;

use common::Counter;
use openraft::testing::{StoreBuilder, Suite};
use openraft::StorageError;
use sessionplane_cluster::{
    GroupId, GroupLog, LogDb, SnapshotStore, StateMachineStore, TypeConfig,
};

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
fn openraft_storage_suite() {
    if let Err(e) = Suite::test_all(RedbBuilder) {
        panic!("openraft's storage suite failed: {e}");
    }
}
