//! This node's side of [`NodeOps`]: the api's named calls, carried out with the cluster
//! listener's node calls and the node's health checks. Wiring only; what an answer means to a
//! client is the api's.

use std::sync::Arc;

use std::collections::BTreeMap;
use std::time::Duration;

use sessionplane_cluster::{GroupStatus, Liveness, PeerClient};
use uuid::Uuid;

use super::health::HealthChecks;
use super::incidents::{IncidentReports, SiteReporters};
use super::{certificates, membership};
use crate::config::SiteNode;
use crate::model::NodePart;
use crate::node_ops::{
    Change, Check, EncodeError, MembershipError, NodeAnswers, NodeOps, OpFuture,
};
use crate::state::encode;
use crate::tls::listeners::{ListenerCertificate, ReloadOutcome};

pub struct RunningOps {
    pub peers: PeerClient,
    pub liveness: Liveness,
    /// The nodes of this site, which certificate and incident calls ask.
    pub site_nodes: Arc<Vec<SiteNode>>,
    pub health: HealthChecks,
    pub reports: Arc<IncidentReports>,
}

impl NodeOps for RunningOps {
    fn reload_certificates(
        &self,
        port: Option<u16>,
    ) -> OpFuture<'_, Result<NodeAnswers<ReloadOutcome>, EncodeError>> {
        Box::pin(async move {
            let body = encode(&port).map_err(|e| EncodeError(e.to_string()))?;
            Ok(certificates::ask_every_node(
                &self.peers,
                &self.site_nodes,
                certificates::RELOAD_CALL,
                body,
            )
            .await)
        })
    }

    fn describe_certificates(&self) -> OpFuture<'_, NodeAnswers<Vec<ListenerCertificate>>> {
        Box::pin(certificates::ask_every_node(
            &self.peers,
            &self.site_nodes,
            certificates::DESCRIBE_CALL,
            Vec::new(),
        ))
    }

    fn change_membership<'a>(
        &'a self,
        status: &'a GroupStatus,
        change: Change,
    ) -> OpFuture<'a, Result<(), MembershipError>> {
        Box::pin(membership::ask_leader(&self.peers, status, change))
    }

    fn incident_parts(
        &self,
        incident_id: Uuid,
        bound: Duration,
    ) -> OpFuture<'_, BTreeMap<String, NodePart>> {
        Box::pin(async move {
            let reporters = SiteReporters {
                peers: &self.peers,
                liveness: &self.liveness,
                site_nodes: &self.site_nodes,
                reports: &self.reports,
            };
            reporters.collect(incident_id, bound).await
        })
    }

    fn health_components(&self) -> Vec<String> {
        self.health.components()
    }

    fn health_check_all(&self) -> OpFuture<'_, Vec<Check>> {
        Box::pin(self.health.check_all())
    }

    fn health_check<'a>(&'a self, name: &'a str) -> OpFuture<'a, Option<Check>> {
        Box::pin(self.health.check(name))
    }
}
