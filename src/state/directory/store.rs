//! Typed access to the `directory` group. Logins and token checks read the local copy (they
//! must work while the WAN is cut); the admin API reads after a barrier, so it sees its own
//! writes wherever it lands.

use sessionplane_cluster::Group;

use crate::sessions::StoreError;
use crate::state::directory::{DirectoryCommand, DirectoryReply, DirectoryState};
use crate::state::{decode, encode};

#[derive(Clone)]
pub struct DirectoryStore {
    group: Group<DirectoryState>,
}

impl DirectoryStore {
    pub fn new(group: Group<DirectoryState>) -> Self {
        Self { group }
    }

    pub fn group(&self) -> &Group<DirectoryState> {
        &self.group
    }

    pub async fn execute(&self, command: &DirectoryCommand) -> Result<DirectoryReply, StoreError> {
        let bytes = encode(command).map_err(|e| StoreError::Protocol(e.to_string()))?;
        let reply = self
            .group
            .propose(bytes)
            .await
            .map_err(StoreError::of_directory)?;
        match decode(&reply) {
            Ok(DirectoryReply::Invalid(reason)) => Err(StoreError::Invalid(reason)),
            Ok(reply) => Ok(reply),
            Err(e) => Err(StoreError::Protocol(e.to_string())),
        }
    }

    /// Reads this node's copy as it is.
    pub fn read_local<T>(&self, read: impl FnOnce(&DirectoryState) -> T) -> T {
        self.group.state().read(read)
    }

    /// Reads after every write committed before the call has been applied here.
    pub async fn read<T>(&self, read: impl FnOnce(&DirectoryState) -> T) -> Result<T, StoreError> {
        self.group.read_barrier().await?;
        Ok(self.group.state().read(read))
    }

    /// Reads locally; when that finds nothing, once more after a barrier (a record created on
    /// another node a moment ago may not have been applied here yet).
    pub async fn read_fresh<T>(
        &self,
        read: impl Fn(&DirectoryState) -> Option<T>,
    ) -> Result<Option<T>, StoreError> {
        if let Some(found) = self.read_local(&read) {
            return Ok(Some(found));
        }
        self.read(read).await
    }

    /// As [`Self::read_fresh`], but a barrier that cannot complete (no directory leader in
    /// reach: the WAN is cut) answers with the local copy's "nothing", so that logins at a cut
    /// off site keep working for every user it knows.
    pub async fn read_fresh_or_local<T>(
        &self,
        read: impl Fn(&DirectoryState) -> Option<T>,
    ) -> Option<T> {
        match self.read_fresh(read).await {
            Ok(found) => found,
            Err(e) => {
                tracing::debug!(error = %e, "directory barrier failed; answering from the local copy");
                None
            }
        }
    }
}
