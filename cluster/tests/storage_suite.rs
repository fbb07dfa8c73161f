//! openraft's own storage test suite, run against the redb log store and the snapshot store.

mod common;

use common::Counter;
use openraft::testing::log::{StoreBuilder, Suite};
use openraft::StorageError;
use sessionplane_cluster::{
    GroupId, GroupLog, LogDb, SnapshotStore, StateMachineStore, TypeConfig,
};

struct RedbBuilder;

impl StoreBuilder<TypeConfig, GroupLog, StateMachineStore, tempfile::TempDir> for RedbBuilder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, GroupLog, StateMachineStore), StorageError<TypeConfig>> {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = LogDb::open(&dir.path().join("raft.redb")).expect("open redb");
        let log = db
            .group_log(&GroupId::new("site:test").expect("group id"))
            .expect("group log");
        let snapshots = SnapshotStore::open(dir.path().join("snapshots")).expect("snapshot dir");
        let (sm, _) =
            StateMachineStore::open(Counter::default(), snapshots).expect("state machine");
        Ok((dir, log, sm))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openraft_storage_suite() {
    if let Err(e) = Suite::test_all(RedbBuilder).await {
        panic!("openraft's storage suite failed: {e}");
    }
}
