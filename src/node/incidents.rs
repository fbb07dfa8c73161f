//! This node's part of an incident: when it applies a containment entry it closes the
//! websockets and mail channels it holds of it, waits until each has said goodbye and closed,
//! and only then keeps its report ([`NodeReport`]: when it applied the entry, what it closed).
//! Peers ask for the report on the cluster listener (`incident-report`), waiting a bounded
//! time for it; the node that took the call asks every node of its site and names those that
//! are down (the site's view has them down, or they cannot be reached) or answered without a
//! report in time.
//!
//! Owns the reports this node keeps (for [`KEEP_REPORTS`]), the call's name and wire form, and
//! the collection over the site's nodes; what a receipt says to a client is the api's.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sessionplane_cluster::{now_ms, ClusterNode, Liveness, PeerClient, PeerState};
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use crate::config::SiteNode;
use crate::gateway::LocalSockets;
use crate::mail::channels::LocalChannels;
use crate::model::{NodePart, NodeReport};
use crate::state::site::ContainedHere;
use crate::state::{decode, encode};

/// The node call that answers this node's report of an incident (body: incident id and how
/// long to wait for it, in ms).
pub const REPORT_CALL: &str = "incident-report";
/// How long a report is kept for callers that ask late.
const KEEP_REPORTS: Duration = Duration::from_secs(15 * 60);
/// The longest this node waits for its sockets to close before it reports anyway (a client
/// that does not read its close is dropped by the send timeout meanwhile).
const CLOSE_BOUND: Duration = Duration::from_secs(5);
/// Slack over the asked wait for the call itself.
const CALL_SLACK: Duration = Duration::from_millis(500);

/// The reports of the containments this node applied, by incident.
#[derive(Default)]
pub struct IncidentReports {
    kept: Mutex<HashMap<Uuid, (Instant, NodeReport)>>,
    /// Bumped at each new report: waiters look again.
    changed: watch::Sender<u64>,
}

impl IncidentReports {
    pub fn record(&self, incident_id: Uuid, report: NodeReport) {
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.retain(|_, (at, _)| at.elapsed() < KEEP_REPORTS);
        kept.entry(incident_id).or_insert((Instant::now(), report));
        drop(kept);
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub fn get(&self, incident_id: &Uuid) -> Option<NodeReport> {
        let kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.get(incident_id).map(|(_, report)| *report)
    }

    /// This node's report of `incident_id`, waiting up to `wait` for it.
    pub async fn wait(&self, incident_id: Uuid, wait: Duration) -> Option<NodeReport> {
        let mut changed = self.changed.subscribe();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(report) = self.get(&incident_id) {
                return Some(report);
            }
            match tokio::time::timeout_at(deadline, changed.changed()).await {
                Ok(Ok(())) => continue,
                _ => return self.get(&incident_id),
            }
        }
    }
}

/// Closes this node's sockets of a containment entry, then keeps its report.
pub struct Containing {
    pub sockets: Arc<LocalSockets>,
    pub channels: Arc<LocalChannels>,
    pub reports: Arc<IncidentReports>,
}

impl Containing {
    /// Called under the site state's write lock: tells the sockets, and leaves the waiting to
    /// a task of its own.
    pub fn contained(&self, here: ContainedHere) {
        let applied_at_ms = now_ms();
        let (done, mut all_closed) = mpsc::channel::<()>(1);
        let websockets: u64 = here
            .sessions
            .iter()
            .map(|s| self.sockets.close_reporting(*s, here.reason, Some(&done)))
            .sum();
        let channels = self
            .channels
            .disconnect_reporting(&here.channels, Some(&done));
        drop(done);
        let report = NodeReport {
            applied_at_ms,
            websockets_closed: websockets,
            channels_closed: channels,
        };
        let reports = self.reports.clone();
        let incident_id = here.incident_id;
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    // Every clone of `done` dropped: every socket told has closed.
                    let _ = tokio::time::timeout(CLOSE_BOUND, all_closed.recv()).await;
                    reports.record(incident_id, report);
                });
            }
            Err(_) => reports.record(incident_id, report),
        }
    }
}

/// Lets peers ask for this node's report of an incident.
pub fn serve(cluster: &ClusterNode, reports: Arc<IncidentReports>) {
    cluster.calls().serve(REPORT_CALL, move |body| {
        let reports = reports.clone();
        Box::pin(async move {
            let (incident_id, wait_ms): (Uuid, u64) = decode(&body).map_err(|e| e.to_string())?;
            let wait = Duration::from_millis(wait_ms).min(CLOSE_BOUND);
            let report = reports.wait(incident_id, wait).await;
            encode(&report).map_err(|e| e.to_string())
        })
    });
}

/// Where the collection asks.
pub struct SiteReporters<'a> {
    pub peers: &'a PeerClient,
    pub liveness: &'a Liveness,
    pub site_nodes: &'a [SiteNode],
    pub reports: &'a IncidentReports,
}

impl SiteReporters<'_> {
    /// Every node's part of `incident_id` at this site, by node name, each waited for at most
    /// `bound`: a node the site's view has down is named so at once.
    pub async fn collect(&self, incident_id: Uuid, bound: Duration) -> BTreeMap<String, NodePart> {
        let me = self.liveness.me().node_id;
        let asks = self.site_nodes.iter().map(|node| async move {
            let part = if node.id == me {
                match self.reports.wait(incident_id, bound).await {
                    Some(report) => NodePart::Reported(report),
                    None => NodePart::NoAnswer("no report within the bound".into()),
                }
            } else if self.is_down(node.id) {
                NodePart::Down
            } else {
                self.ask(node, incident_id, bound).await
            };
            (node.name.clone(), part)
        });
        futures_util::future::join_all(asks)
            .await
            .into_iter()
            .collect()
    }

    fn is_down(&self, node: u64) -> bool {
        matches!(self.liveness.state(node), PeerState::Down { .. })
    }

    async fn ask(&self, node: &SiteNode, incident_id: Uuid, bound: Duration) -> NodePart {
        let body = match encode(&(incident_id, bound.as_millis() as u64)) {
            Ok(body) => body,
            Err(e) => return NodePart::NoAnswer(e.to_string()),
        };
        let answer = self
            .peers
            .call_node(&node.cluster, REPORT_CALL, body, bound + CALL_SLACK)
            .await;
        match answer {
            Ok(Ok(bytes)) => match decode::<Option<NodeReport>>(&bytes) {
                Ok(Some(report)) => NodePart::Reported(report),
                Ok(None) => NodePart::NoAnswer("no report within the bound".into()),
                Err(e) => NodePart::NoAnswer(e.to_string()),
            },
            Ok(Err(refusal)) => NodePart::NoAnswer(refusal),
            // Not reachable from here (refused, reset, timed out): down, as this node sees it;
            // if it lives on, it applies the entry when it catches up, before serving again.
            Err(_) => NodePart::Down,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::CloseReason;

    #[tokio::test]
    async fn a_node_reports_only_once_every_socket_it_told_has_closed() {
        let sockets = Arc::new(LocalSockets::default());
        let channels = Arc::new(LocalChannels::default());
        let reports = Arc::new(IncidentReports::default());
        let containing = Containing {
            sockets: sockets.clone(),
            channels: channels.clone(),
            reports: reports.clone(),
        };
        let (session, channel) = (Uuid::now_v7(), Uuid::now_v7());
        let mut socket = sockets.hold(session, Uuid::now_v7());
        let _other = sockets.hold(Uuid::now_v7(), Uuid::now_v7());
        let mut mail = channels.hold(channel);
        let incident = Uuid::now_v7();
        containing.contained(ContainedHere {
            incident_id: incident,
            log_index: 5,
            sessions: vec![session, Uuid::now_v7()],
            channels: vec![channel],
            reason: CloseReason::Locked,
        });
        let closing = socket.recv().await.unwrap();
        assert_eq!(closing.reason, CloseReason::Locked);
        let disconnect = mail.recv().await.unwrap();
        assert_eq!(
            reports.wait(incident, Duration::from_millis(100)).await,
            None,
            "no report while a socket is still closing"
        );
        drop(closing);
        drop(disconnect);
        let report = reports
            .wait(incident, Duration::from_secs(2))
            .await
            .unwrap();
        assert_eq!((report.websockets_closed, report.channels_closed), (1, 1));
        assert!(reports
            .wait(Uuid::now_v7(), Duration::from_millis(10))
            .await
            .is_none());
    }
}
