//! Why a group's store could not answer: the one error type of `SiteStore` and
//! `DirectoryStore`, which the node's services and the api turn into their own answers.
//!
//! Owns [`StoreError`] and its conversion from the cluster crate's errors; must not know any
//! command or reply.

use sessionplane_cluster::ClusterError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Cluster(ClusterError),
    /// The request would make a command larger than a log entry may hold: the client's
    /// request is too big, whatever the cluster's health.
    #[error("the request is too large: it makes a command of {size} bytes, over the limit of {limit} bytes; split it into smaller requests")]
    TooLarge { size: usize, limit: usize },
    #[error("invalid request: {0}")]
    Invalid(String),
    /// A lock in force keeps the session, connection or channel from opening; `message` is
    /// the lock's, for the locked user to read.
    #[error("locked: {message}")]
    Locked {
        lock_id: uuid::Uuid,
        message: String,
    },
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
