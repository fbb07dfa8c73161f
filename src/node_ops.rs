//! What a running node and its api share: the state the node wires for the api ([`ApiState`]),
//! the api it is started with ([`ApiService`]), and the named calls the api makes into it
//! ([`NodeOps`]: reload or describe the certificates of every node of the site, change a
//! group's members, read the health checks).
//!
//! Defined here, below both `api` and `node`, so that neither imports the other's internals:
//! `node` implements [`NodeOps`] and fills [`ApiState`]; `api` builds its router over them. This
//! module owns only the calls' names and the types they carry; how a call travels (the cluster
//! listener's node calls, their wire form, their timeouts) is `node`'s, and how an answer becomes
//! an HTTP answer is `api`'s. It must not import either.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sessionplane_cluster::{GroupStatus, Liveness};
use uuid::Uuid;

use crate::config::SiteNode;
use crate::federation::Federation;
use crate::gateway::Gateway;
use crate::iam::Iam;
use crate::mail::MailBackend;
use crate::model::NodePart;
use crate::net::settings::ErrorBody;
use crate::state::{DirectoryStore, SiteStore};
use crate::tls::listeners::{ListenerCertificate, ReloadOutcome};

/// What the node hands its api, behind one `Arc`: every request clones it (each `State`
/// extractor, each layer), and a clone is then one increment.
#[derive(Clone)]
pub struct ApiState(Arc<ApiWiring>);

impl ApiState {
    pub fn new(wiring: ApiWiring) -> Self {
        Self(Arc::new(wiring))
    }
}

impl std::ops::Deref for ApiState {
    type Target = ApiWiring;

    fn deref(&self) -> &ApiWiring {
        &self.0
    }
}

/// The stores and services the node wired for its api, and its named calls.
pub struct ApiWiring {
    pub iam: Arc<Iam>,
    /// This site's group: sessions, channels, tasks.
    pub site: SiteStore,
    /// The deployment's directory group.
    pub directory: DirectoryStore,
    pub gateway: Arc<Gateway>,
    /// The deployment's sites, and the client that calls the others.
    pub federation: Arc<Federation>,
    /// This node, `name@host`, as tasks record where they were submitted.
    pub node_label: String,
    pub mail: Arc<dyn MailBackend>,
    /// The nodes of this site, as configured.
    pub site_nodes: Arc<Vec<SiteNode>>,
    /// Which nodes of the site answer, and since when (which node incarnation holds a channel).
    pub liveness: Liveness,
    /// The calls into the running node: certificates, membership, health checks.
    pub node: Arc<dyn NodeOps>,
    /// The node's counters, and what `/metrics` reads.
    pub telemetry: Arc<crate::telemetry::Telemetry>,
    /// Whether the api listener speaks TLS (cookies are then `Secure`).
    pub tls: bool,
    /// The applications behind this node (`[[proxy]]`).
    pub proxy: Arc<crate::gateway::proxy::Proxy>,
    /// Signs the Shared Signals tokens; its public half is served to their receivers.
    pub signing_key: Option<Arc<crate::events::signals::SigningKey>>,
    /// The JSON of the site's recent events, shared by the stream's readers.
    pub rendered_events: Arc<crate::events::stream::Rendered>,
    /// Moves on each time this node applies an entry that adds to the site's feed.
    pub feed_advanced: tokio::sync::watch::Receiver<u64>,
}

/// What a node serves on its api listener: the routes over the state it wired, and the JSON
/// body of the listener's own refusals (a header too large, a body too slow).
#[derive(Clone, Copy)]
pub struct ApiService {
    pub router: fn(ApiState) -> axum::Router,
    pub error_body: ErrorBody,
}

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

    /// Every node of the site's part of an incident it applied here: its report, waited for
    /// at most `bound`, or that it is down or silent.
    fn incident_parts(
        &self,
        incident_id: Uuid,
        bound: Duration,
    ) -> OpFuture<'_, BTreeMap<String, NodePart>>;

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
