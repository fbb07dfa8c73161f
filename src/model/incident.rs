//! An incident: one call that contains an account at every selected site, and its receipt.
//!
//! This module owns what a site is asked to do ([`Containment`]), what its group counts when
//! it applies it ([`Closed`]), what each node reports of its own part ([`NodeReport`]) and the
//! receipt that gathers them ([`Receipt`]). The site state machine applies a containment and
//! stores receipts; the node collects reports; the api renders the receipt as the contract's
//! JSON. Times are milliseconds since the Unix epoch.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Lock;

/// How long a receipt is kept before the site's purge forgets it.
pub const KEEP_RECEIPTS_MS: u64 = 90 * 24 * 3600 * 1000;

/// What one site is asked to do for one incident, in one entry of its log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Containment {
    pub incident_id: Uuid,
    pub user_id: Uuid,
    /// `login@domain`: names the user's mail channels.
    pub address: String,
    pub domain: String,
    /// The lock placed with it, if any.
    pub lock: Option<Lock>,
    /// The caller's own session, which is never ended by its own call.
    pub except: Option<Uuid>,
}

/// What a site's group ended when it applied a containment (or would end: a preview).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Closed {
    pub sessions: u64,
    pub websockets: u64,
    pub channels: u64,
}

/// What one node did with a containment entry: when it applied it, and how many of the
/// sockets it held itself it closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeReport {
    pub applied_at_ms: u64,
    pub websockets_closed: u64,
    pub channels_closed: u64,
}

/// One node's part of a site's receipt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodePart {
    Reported(NodeReport),
    /// The site's view had the node down: its connections are ended by the reaper.
    Down,
    /// The node is up but gave no report within the bound.
    NoAnswer(String),
    /// A preview: what this node holds that the containment would close.
    Holds {
        websockets: u64,
        channels: u64,
    },
}

/// Where a site stands in a receipt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SiteStatus {
    /// The entry is committed and every node of the site reported, or is down.
    Contained,
    /// The entry is committed, but some node that is up did not report in time.
    Unconfirmed,
    /// The site was not reached: a durable task keeps trying.
    Pending,
    /// The site refused (the caller may not act there).
    Refused,
    /// A dry run: what would be ended, nothing changed.
    Preview,
}

impl SiteStatus {
    pub fn name(self) -> &'static str {
        match self {
            Self::Contained => "contained",
            Self::Unconfirmed => "unconfirmed",
            Self::Pending => "pending",
            Self::Refused => "refused",
            Self::Preview => "preview",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Contained,
            Self::Unconfirmed,
            Self::Pending,
            Self::Refused,
            Self::Preview,
        ]
        .into_iter()
        .find(|s| s.name() == text)
    }
}

/// One site's part of a receipt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteReceipt {
    pub status: SiteStatus,
    pub log_index: Option<u64>,
    pub closed: Closed,
    pub nodes: BTreeMap<String, NodePart>,
    pub task_id: Option<Uuid>,
    pub cause: Option<String>,
}

impl SiteReceipt {
    /// The part of a site the call did not reach.
    pub fn pending(task_id: Option<Uuid>, cause: String) -> Self {
        Self {
            status: SiteStatus::Pending,
            log_index: None,
            closed: Closed::default(),
            nodes: BTreeMap::new(),
            task_id,
            cause: Some(cause),
        }
    }

    /// A committed containment's part, judged from its nodes' parts.
    pub fn committed(log_index: u64, closed: Closed, nodes: BTreeMap<String, NodePart>) -> Self {
        let silent = nodes.values().any(|n| matches!(n, NodePart::NoAnswer(_)));
        Self {
            status: match silent {
                true => SiteStatus::Unconfirmed,
                false => SiteStatus::Contained,
            },
            log_index: Some(log_index),
            closed,
            nodes,
            task_id: None,
            cause: None,
        }
    }
}

/// The receipt of one incident, as stored at the site that took the call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub incident_id: Uuid,
    /// `login@domain`.
    pub user: String,
    pub user_id: Uuid,
    pub reason: Option<String>,
    pub lock_id: Option<Uuid>,
    pub dry_run: bool,
    pub requested_by: String,
    pub started_at_ms: u64,
    pub completed_at_ms: u64,
    pub elapsed_us: u64,
    pub sites: BTreeMap<String, SiteReceipt>,
}

impl Receipt {
    /// Whether every selected site is contained (a preview is never complete).
    pub fn complete(&self) -> bool {
        !self.dry_run
            && self
                .sites
                .values()
                .all(|s| s.status == SiteStatus::Contained)
    }

    /// The sites a durable task still has to reach.
    pub fn pending_sites(&self) -> impl Iterator<Item = (&String, &SiteReceipt)> {
        self.sites
            .iter()
            .filter(|(_, s)| s.status == SiteStatus::Pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_site_is_contained_once_every_node_reported_or_is_down() {
        let report = NodePart::Reported(NodeReport {
            applied_at_ms: 1,
            websockets_closed: 1,
            channels_closed: 0,
        });
        let nodes = |third: NodePart| {
            BTreeMap::from([
                ("c1".to_string(), report.clone()),
                ("c2".to_string(), report.clone()),
                ("c3".to_string(), third),
            ])
        };
        let closed = Closed::default();
        assert_eq!(
            SiteReceipt::committed(9, closed, nodes(NodePart::Down)).status,
            SiteStatus::Contained
        );
        assert_eq!(
            SiteReceipt::committed(9, closed, nodes(NodePart::NoAnswer("timed out".into()))).status,
            SiteStatus::Unconfirmed
        );
        let mut receipt = Receipt {
            incident_id: Uuid::nil(),
            user: "bob@acme.test".into(),
            user_id: Uuid::nil(),
            reason: None,
            lock_id: None,
            dry_run: false,
            requested_by: "admin".into(),
            started_at_ms: 0,
            completed_at_ms: 0,
            elapsed_us: 0,
            sites: BTreeMap::from([(
                "central".to_string(),
                SiteReceipt::committed(9, closed, nodes(report.clone())),
            )]),
        };
        assert!(receipt.complete());
        receipt
            .sites
            .insert("east".into(), SiteReceipt::pending(None, "cut".into()));
        assert!(!receipt.complete());
        assert_eq!(receipt.pending_sites().count(), 1);
    }

    #[test]
    fn statuses_read_back_from_their_names() {
        for status in [
            SiteStatus::Contained,
            SiteStatus::Unconfirmed,
            SiteStatus::Pending,
            SiteStatus::Refused,
            SiteStatus::Preview,
        ] {
            assert_eq!(SiteStatus::parse(status.name()), Some(status));
        }
        assert_eq!(SiteStatus::parse("done"), None);
    }
}
