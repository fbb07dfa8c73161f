//! Containing a user at this site in one entry — its lock placed, every session but the
//! caller's ended with their websockets, every mail channel disconnected — what that would
//! end (a preview), and the receipts of the incidents this site took.
//!
//! Owns the receipt map of [`SiteState`]; places the lock through `locks` and ends sessions
//! and channels through `sessions` and `holds`. Tells this node's effects what it ended in one
//! call ([`super::SiteEffects::contained`]), so that the node can report its own part.

use std::collections::BTreeMap;
use std::sync::Arc;

use sessionplane_cluster::Applying;
use uuid::Uuid;

use super::{Authority, ContainedHere, SiteReply, SiteState};
use crate::model::incident::KEEP_RECEIPTS_MS;
use crate::model::task::TaskKind;
use crate::model::{CloseReason, Closed, Containment, Receipt};

/// What a containment would end at this site, and what each node (by `name@host`) holds of it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Preview {
    pub closed: Closed,
    /// (websockets, channels) per holding node.
    pub by_node: BTreeMap<String, (u64, u64)>,
}

impl SiteState {
    /// What containing `user_id` (`address`) would end now, sparing `except`.
    pub fn preview_containment(
        &self,
        user_id: Uuid,
        address: &str,
        except: Option<Uuid>,
        now_ms: u64,
    ) -> Preview {
        let mut preview = Preview::default();
        for session in self.user_sessions(&user_id, now_ms) {
            if Some(session.session_id) == except {
                continue;
            }
            preview.closed.sessions += 1;
            let sid = session.session_id;
            for (_, conn) in self
                .connections
                .range((sid, Uuid::nil())..=(sid, Uuid::max()))
            {
                preview.closed.websockets += 1;
                preview.by_node.entry(conn.node.to_string()).or_default().0 += 1;
            }
        }
        for channel in self.user_channels(address) {
            preview.closed.channels += 1;
            preview
                .by_node
                .entry(channel.node.to_string())
                .or_default()
                .1 += 1;
        }
        preview
    }

    pub(super) fn contain(
        &mut self,
        entry: Applying,
        containment: Containment,
        authority: &Authority,
    ) -> SiteReply {
        if let Some(refused) = self.refusal(authority, Some(&containment.domain), entry.at_ms) {
            return refused;
        }
        let reason = match &containment.lock {
            Some(_) => CloseReason::Locked,
            None => CloseReason::Revoked,
        };
        if let Some(lock) = containment.lock.clone() {
            if !lock.in_force(entry.at_ms) {
                return SiteReply::Invalid("the lock has expired already".into());
            }
            self.locks
                .entry(lock.lock_id)
                .or_insert_with(|| Arc::new(lock));
        }
        let doomed: Vec<Uuid> = self
            .user_sessions(&containment.user_id, entry.at_ms)
            .into_iter()
            .filter(|s| Some(s.session_id) != containment.except)
            .map(|s| s.session_id)
            .collect();
        let (sessions, websockets) = self.forget_sessions(doomed, reason);
        let channels: Vec<Uuid> = self
            .user_channels(&containment.address)
            .iter()
            .map(|c| c.channel_id)
            .collect();
        let channels = self.remove_channels(channels);
        let closed = Closed {
            sessions: sessions.len() as u64,
            websockets: u64::from(websockets),
            channels: channels.len() as u64,
        };
        if let Some(effects) = &self.effects {
            effects.contained(ContainedHere {
                incident_id: containment.incident_id,
                log_index: entry.log_index,
                sessions,
                channels,
                reason,
            });
        }
        SiteReply::Contained {
            closed,
            log_index: entry.log_index,
        }
    }

    pub fn receipts(&self) -> imbl::OrdMap<Uuid, Arc<Receipt>> {
        self.receipts.clone()
    }

    pub fn receipt(&self, incident_id: &Uuid) -> Option<&Receipt> {
        self.receipts.get(incident_id).map(|r| &**r)
    }

    pub(super) fn record_receipt(&mut self, receipt: Receipt) -> SiteReply {
        self.receipts
            .insert(receipt.incident_id, Arc::new(receipt.clone()));
        SiteReply::Receipt(Box::new(receipt))
    }

    /// A containment's task reached `site`: the receipts waiting for that site's part get it.
    pub(super) fn fill_in_receipts(&mut self, task_id: Uuid, site: &str, part: &serde_json::Value) {
        let is_containment = self
            .tasks
            .get(&task_id)
            .is_some_and(|t| t.kind == TaskKind::IncidentContain && !t.status.is_finished());
        if !is_containment {
            return;
        }
        let waiting: Vec<Uuid> = self
            .receipts
            .values()
            .filter(|r| {
                r.sites
                    .get(site)
                    .is_some_and(|p| p.task_id == Some(task_id))
            })
            .map(|r| r.incident_id)
            .collect();
        for id in waiting {
            if let Some(receipt) = self.receipts.get_mut(&id) {
                Arc::make_mut(receipt).fill_in(site, task_id, part);
            }
        }
    }

    pub(super) fn forget_old_receipts(&mut self, at_ms: u64) {
        let stale: Vec<Uuid> = self
            .receipts
            .values()
            .filter(|r| r.started_at_ms + KEEP_RECEIPTS_MS <= at_ms)
            .map(|r| r.incident_id)
            .collect();
        for id in stale {
            self.receipts.remove(&id);
        }
    }

    pub(super) fn has_old_receipts(&self, now_ms: u64) -> bool {
        self.receipts
            .values()
            .next()
            .is_some_and(|r| r.started_at_ms + KEEP_RECEIPTS_MS <= now_ms)
    }
}
