//! The named calls the api makes into its running node: reload or describe the certificates of
//! every node of the site, change a group's members, read the health checks.
//!
//! Defined here, below both `api` and `node`, so that the api holds a [`NodeOps`] without
//! importing `node`, and `node` implements it and hands it to the api state at wiring time. This
//! module owns only the calls' names and the types they carry; how a call travels (the cluster
//! listener's node calls, their wire form, their timeouts) is `node`'s, and how an answer becomes
//! an HTTP answer is `api`'s. It must not import either.

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};
use sessionplane_cluster::GroupStatus;

use crate::tls::listeners::{ListenerCertificate, ReloadOutcome};

/// A call's future; boxed, so that the api can hold the node behind a trait object.
pub type OpFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What each node of the site answered, by node name, or why it could not.
pub type NodeAnswers<T> = Vec<(String, Result<T, String>)>;

/// The calls the api makes into the node.
pub trait NodeOps: Send + Sync {
    /// Every node of the site re-reads its TLS listeners' pairs (only the one on `port`, if
    /// given).
    fn reload_certificates(
        &self,
        port: Option<u16>,
    ) -> OpFuture<'_, Result<NodeAnswers<ReloadOutcome>, EncodeError>>;

    /// Every node of the site's certificates, per listener.
    fn describe_certificates(&self) -> OpFuture<'_, NodeAnswers<Vec<ListenerCertificate>>>;

    /// Asks the leader of the group `status` describes to make `change`.
    fn change_membership<'a>(
        &'a self,
        status: &'a GroupStatus,
        change: Change,
    ) -> OpFuture<'a, Result<(), MembershipError>>;

    /// Every health check's name.
    fn health_components(&self) -> Vec<String>;

    /// Every health check.
    fn health_check_all(&self) -> OpFuture<'_, Vec<Check>>;

    /// One health check by name; `None` for a name that is no check.
    fn health_check<'a>(&'a self, name: &'a str) -> OpFuture<'a, Option<Check>>;
}

/// A call's request did not encode.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct EncodeError(pub String);

/// A change to a group's members.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// Adds a member (a learner, promoted when `voter`).
    Add {
        id: u64,
        addr: String,
        voter: bool,
    },
    Remove {
        id: u64,
    },
}

/// Why a membership change was not made.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    #[error("group {group} has no leader now")]
    NoLeader { group: String },
    #[error("the leader of {group} is not a known member")]
    UnknownLeader { group: String },
    #[error("the leader of {group} (node {leader}) refused: {why}; ask again")]
    Refused {
        group: String,
        leader: u64,
        why: String,
    },
    #[error("the leader of {group} (node {leader}) cannot be reached: {why}")]
    Unreachable {
        group: String,
        leader: u64,
        why: String,
    },
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Healthy,
    Degraded,
    Unhealthy,
}

/// One health check's verdict.
#[derive(Clone, Debug)]
pub struct Check {
    pub component: String,
    pub status: Status,
    pub cause: Option<String>,
}

impl Check {
    pub fn new(component: &str, status: Status, cause: Option<String>) -> Self {
        Self {
            component: component.to_string(),
            status,
            cause,
        }
    }
}
