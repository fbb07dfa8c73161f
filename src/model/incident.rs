//! An incident: one call that contains an account at every selected site, and its receipt.
//!
//! This module owns what a site is asked to do ([`Containment`]), what its group counts when
//! it applies it ([`Closed`]), what each node reports of its own part ([`NodeReport`]) and the
//! receipt that gathers them ([`Receipt`]). The site state machine applies a containment and
//! stores receipts; the node collects reports; the api renders the receipt as the contract's
//! JSON. Times are milliseconds since the Unix epoch.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::time::{parse_rfc3339_ms, rfc3339_ms};
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
    /// A dry run that did not reach the site (nothing is retried: nothing was to change).
    Unreachable,
}

impl SiteStatus {
    pub fn name(self) -> &'static str {
        match self {
            Self::Contained => "contained",
            Self::Unconfirmed => "unconfirmed",
            Self::Pending => "pending",
            Self::Refused => "refused",
            Self::Preview => "preview",
            Self::Unreachable => "unreachable",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Contained,
            Self::Unconfirmed,
            Self::Pending,
            Self::Refused,
            Self::Preview,
            Self::Unreachable,
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

impl NodePart {
    /// The part as the receipt's JSON shows it.
    pub fn to_json(&self) -> Value {
        match self {
            Self::Reported(report) => json!({
                "applied_at": rfc3339_ms(report.applied_at_ms),
                "websockets_closed": report.websockets_closed,
                "channels_closed": report.channels_closed,
            }),
            Self::Down => json!({ "status": "down" }),
            Self::NoAnswer(cause) => json!({ "status": "no_answer", "cause": cause }),
            Self::Holds {
                websockets,
                channels,
            } => json!({ "websockets_closed": websockets, "channels_closed": channels }),
        }
    }

    /// A part from its JSON (another site's answer); `None` when it is not one.
    pub fn from_json(value: &Value, preview: bool) -> Option<Self> {
        let count = |key: &str| value.get(key).and_then(Value::as_u64);
        match value.get("status").and_then(Value::as_str) {
            Some("down") => return Some(Self::Down),
            Some("no_answer") => {
                let cause = value
                    .get("cause")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                return Some(Self::NoAnswer(cause.to_string()));
            }
            Some(_) => return None,
            None => {}
        }
        let (websockets, channels) = (count("websockets_closed")?, count("channels_closed")?);
        if preview {
            return Some(Self::Holds {
                websockets,
                channels,
            });
        }
        let applied_at_ms = parse_rfc3339_ms(value.get("applied_at")?.as_str()?)?;
        Some(Self::Reported(NodeReport {
            applied_at_ms,
            websockets_closed: websockets,
            channels_closed: channels,
        }))
    }
}

impl SiteReceipt {
    /// The site's part as the receipt's JSON shows it: counts only where the site was reached.
    pub fn to_json(&self) -> Value {
        let mut part = Map::new();
        part.insert("status".into(), json!(self.status.name()));
        if let Some(index) = self.log_index {
            part.insert("log_index".into(), json!(index));
        }
        if !matches!(self.status, SiteStatus::Pending | SiteStatus::Unreachable) {
            part.insert("sessions_ended".into(), json!(self.closed.sessions));
            part.insert("websockets_closed".into(), json!(self.closed.websockets));
            part.insert("channels_closed".into(), json!(self.closed.channels));
            let nodes: Map<String, Value> = self
                .nodes
                .iter()
                .map(|(name, node)| (name.clone(), node.to_json()))
                .collect();
            part.insert("nodes".into(), Value::Object(nodes));
        }
        if let Some(task_id) = self.task_id {
            part.insert("task_id".into(), json!(task_id));
        }
        if let Some(cause) = &self.cause {
            part.insert("cause".into(), json!(cause));
        }
        Value::Object(part)
    }

    /// A site's part from its JSON (another site's answer, a task's); `None` when it is not one.
    pub fn from_json(value: &Value) -> Option<Self> {
        let status = SiteStatus::parse(value.get("status")?.as_str()?)?;
        let count = |key: &str| value.get(key).and_then(Value::as_u64).unwrap_or(0);
        let preview = status == SiteStatus::Preview;
        let nodes = match value.get("nodes") {
            None => BTreeMap::new(),
            Some(nodes) => nodes
                .as_object()?
                .iter()
                .map(|(name, node)| Some((name.clone(), NodePart::from_json(node, preview)?)))
                .collect::<Option<_>>()?,
        };
        Some(Self {
            status,
            log_index: value.get("log_index").and_then(Value::as_u64),
            closed: Closed {
                sessions: count("sessions_ended"),
                websockets: count("websockets_closed"),
                channels: count("channels_closed"),
            },
            nodes,
            task_id: value
                .get("task_id")
                .and_then(Value::as_str)
                .and_then(|id| Uuid::try_parse(id).ok()),
            cause: value
                .get("cause")
                .and_then(Value::as_str)
                .map(str::to_owned),
        })
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
    /// Whether every selected site is contained (a dry run: previewed).
    pub fn complete(&self) -> bool {
        let done = match self.dry_run {
            true => SiteStatus::Preview,
            false => SiteStatus::Contained,
        };
        self.sites.values().all(|s| s.status == done)
    }

    /// The receipt as the api answers it.
    pub fn to_json(&self) -> Value {
        let sites: Map<String, Value> = self
            .sites
            .iter()
            .map(|(site, part)| (site.clone(), part.to_json()))
            .collect();
        json!({
            "incident_id": self.incident_id,
            "user": self.user,
            "user_id": self.user_id,
            "reason": self.reason,
            "lock_id": self.lock_id,
            "dry_run": self.dry_run,
            "requested_by": self.requested_by,
            "started_at": rfc3339_ms(self.started_at_ms),
            "completed_at": rfc3339_ms(self.completed_at_ms),
            "elapsed_ms": self.elapsed_us as f64 / 1000.0,
            "complete": self.complete(),
            "sites": sites,
        })
    }

    /// Fills in a pending site's part with what its task brought back, once it has.
    pub fn fill_in(&mut self, site: &str, task_id: Uuid, part: &Value) -> bool {
        let pending = self
            .sites
            .get(site)
            .is_some_and(|p| p.status == SiteStatus::Pending && p.task_id == Some(task_id));
        match (pending, SiteReceipt::from_json(part)) {
            (true, Some(mut part)) => {
                part.task_id = Some(task_id);
                self.sites.insert(site.to_string(), part);
                true
            }
            _ => false,
        }
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

    #[test]
    fn a_site_part_reads_back_from_its_json_and_fills_in_a_pending_site() {
        let nodes = BTreeMap::from([
            (
                "e1".to_string(),
                NodePart::Reported(NodeReport {
                    applied_at_ms: 1_796_205_600_009,
                    websockets_closed: 2,
                    channels_closed: 1,
                }),
            ),
            ("e2".to_string(), NodePart::Down),
            ("e3".to_string(), NodePart::NoAnswer("timed out".into())),
        ]);
        let closed = Closed {
            sessions: 3,
            websockets: 2,
            channels: 1,
        };
        let part = SiteReceipt::committed(42, closed, nodes);
        assert_eq!(SiteReceipt::from_json(&part.to_json()), Some(part.clone()));
        let task = Uuid::now_v7();
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
            elapsed_us: 8_600,
            sites: BTreeMap::from([(
                "east".to_string(),
                SiteReceipt::pending(Some(task), "cut".into()),
            )]),
        };
        assert_eq!(receipt.to_json()["elapsed_ms"], 8.6);
        assert_eq!(receipt.to_json()["sites"]["east"]["status"], "pending");
        assert!(receipt.to_json()["sites"]["east"]
            .get("sessions_ended")
            .is_none());
        assert!(
            !receipt.fill_in("east", Uuid::now_v7(), &part.to_json()),
            "another task"
        );
        assert!(receipt.fill_in("east", task, &part.to_json()));
        assert_eq!(receipt.sites["east"].log_index, Some(42));
        assert!(
            !receipt.fill_in("east", task, &part.to_json()),
            "filled once"
        );
        assert_eq!(SiteReceipt::from_json(&json!({"status": "done"})), None);
    }
}
