//! Typed access to the site group: commands in, replies out, reads after a barrier.

use sessionplane_cluster::{now_ms, ClusterError, Group};
use uuid::Uuid;

use crate::model::{NewSession, Session};
use crate::state::site::{LoginFailures, SiteCommand, SiteReply, SiteState};
use crate::state::{decode, encode};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Cluster(ClusterError),
    /// The request would make a command larger than a log entry may hold: the client's
    /// request is too big, whatever the cluster's health.
    #[error("the request is too large: it makes a command of {size} bytes, over the limit of {limit} bytes; split it into smaller requests")]
    TooLarge { size: usize, limit: usize },
    #[error("the site store answered something unexpected: {0}")]
    Protocol(String),
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The directory could not commit a write: from here, its leader or a quorum of its voters
    /// is out of reach (the WAN is cut, or too many voters are down).
    #[error("the directory cannot take writes now: its leader or a quorum of its voters is out of reach from this node; logins keep working from the local copy ({0})")]
    DirectoryUnavailable(ClusterError),
}

impl From<ClusterError> for StoreError {
    fn from(error: ClusterError) -> Self {
        match error {
            ClusterError::CommandTooLarge { size, limit } => Self::TooLarge { size, limit },
            other => Self::Cluster(other),
        }
    }
}

impl StoreError {
    /// A directory write that failed: too large, or the directory out of reach.
    pub fn of_directory(error: ClusterError) -> Self {
        match Self::from(error) {
            Self::Cluster(e) => Self::DirectoryUnavailable(e),
            other => other,
        }
    }
}

#[derive(Clone)]
pub struct SiteStore {
    group: Group<SiteState>,
}

impl SiteStore {
    pub fn new(group: Group<SiteState>) -> Self {
        Self { group }
    }

    pub fn group(&self) -> &Group<SiteState> {
        &self.group
    }

    pub async fn execute(&self, command: &SiteCommand) -> Result<SiteReply, StoreError> {
        let bytes = encode(command).map_err(|e| StoreError::Protocol(e.to_string()))?;
        let reply = self.group.propose(bytes).await?;
        match decode(&reply) {
            Ok(SiteReply::Invalid(reason)) => Err(StoreError::Invalid(reason)),
            Ok(reply) => Ok(reply),
            Err(e) => Err(StoreError::Protocol(e.to_string())),
        }
    }

    pub async fn create_session(&self, new: NewSession) -> Result<Session, StoreError> {
        match self.execute(&SiteCommand::CreateSession(new)).await? {
            SiteReply::Session(session) => Ok(session),
            other => Err(StoreError::Protocol(format!("{other:?}"))),
        }
    }

    /// Reads the site's state linearizably: every write committed before the call is seen.
    pub async fn read<T>(&self, read: impl FnOnce(&SiteState, u64) -> T) -> Result<T, StoreError> {
        self.group.read_barrier().await?;
        Ok(self.group.state().read(|state| read(state, now_ms())))
    }

    /// A live session as this node has it, without a barrier: possibly behind the group (see
    /// `SessionCheck::Deferred` for the one use that can afford it).
    pub fn get_local(&self, session_id: Uuid) -> Option<Session> {
        self.group
            .state()
            .read(|state| state.get(&session_id, now_ms()).cloned())
    }

    /// Reserves one password check for `key` (`Ok`: the failures counted, this one included),
    /// or answers the failures that already use up `limit` (`Err`).
    pub async fn reserve_login_attempt(
        &self,
        key: String,
        window_ms: u64,
        limit: u32,
    ) -> Result<Result<LoginFailures, LoginFailures>, StoreError> {
        let command = SiteCommand::ReserveLoginAttempt {
            key,
            window_ms,
            limit,
        };
        match self.execute(&command).await? {
            SiteReply::LoginFailures(counted) => Ok(Ok(counted)),
            SiteReply::LoginBanned(counted) => Ok(Err(counted)),
            other => Err(StoreError::Protocol(format!("{other:?}"))),
        }
    }

    pub async fn get(&self, session_id: Uuid) -> Result<Option<Session>, StoreError> {
        self.read(|state, now| state.get(&session_id, now).cloned())
            .await
    }
}
