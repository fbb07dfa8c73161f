//! The audit outbox: the events of directory changes (users, groups, domains), each recorded in
//! the directory entry that makes its change (`DirectoryCommand::Audited`), tagged with the site
//! that served the call. Each site's leader copies its own site's events into the site's chain,
//! in order, and the site remembers how far it got (as with [`super::revocations`]), so an
//! event reaches its site's chain once, however long the site was cut off or down. Kept a week,
//! like revocations.
//!
//! Owns the outbox of [`DirectoryState`]; must not touch any other record.

use serde::{Deserialize, Serialize};

use super::{DirectoryCommand, DirectoryReply, DirectoryState};
use crate::model::audit::{NewAuditEvent, Outcome};

/// How long the directory keeps an outbox event for the site that has yet to copy it.
pub const KEEP_AUDIT_OUTBOX_MS: u64 = 7 * 24 * 3600 * 1000;

/// An event waiting for its site to copy it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboxEvent {
    pub seq: u64,
    pub at_ms: u64,
    /// Its `site` is the site that copies it.
    pub event: NewAuditEvent,
}

impl DirectoryState {
    /// Applies `command`, then keeps `event` with the outcome its reply gives; an event that
    /// cannot be recorded refuses the command (not applied).
    pub(super) fn audited(
        &mut self,
        at_ms: u64,
        event: NewAuditEvent,
        command: DirectoryCommand,
    ) -> DirectoryReply {
        if let Err(e) = event.check() {
            return DirectoryReply::Invalid(format!(
                "refused: its audit event cannot be recorded: {e}"
            ));
        }
        let reply = self.execute(at_ms, command);
        let mut event = event.with_outcome(match &reply {
            DirectoryReply::Invalid(_)
            | DirectoryReply::NotFound(_)
            | DirectoryReply::Conflict(_) => Outcome::Failed,
            _ => Outcome::Ok,
        });
        match &reply {
            DirectoryReply::NotFound(why)
            | DirectoryReply::Conflict(why)
            | DirectoryReply::Invalid(why) => event.set_detail("error", why.as_str().into()),
            DirectoryReply::Deleted(users) => event.set_detail("users_deleted", users.len().into()),
            _ => {}
        }
        self.keep_outbox_event(at_ms, event);
        reply
    }

    fn keep_outbox_event(&mut self, at_ms: u64, event: NewAuditEvent) {
        self.next_audit += 1;
        let seq = self.next_audit;
        self.audit_outbox
            .insert(seq, OutboxEvent { seq, at_ms, event });
        while let Some((seq, oldest)) = self.audit_outbox.get_min().map(|(k, v)| (*k, v.at_ms)) {
            if oldest.saturating_add(KEEP_AUDIT_OUTBOX_MS) > at_ms {
                break;
            }
            self.audit_outbox.remove(&seq);
        }
    }

    /// The outbox events of `site` after `seq`, in order.
    pub fn audit_outbox_after(&self, seq: u64, site: &str) -> Vec<OutboxEvent> {
        self.audit_outbox
            .range(seq.saturating_add(1)..)
            .map(|(_, e)| e)
            .filter(|e| e.event.site == site)
            .cloned()
            .collect()
    }
}
