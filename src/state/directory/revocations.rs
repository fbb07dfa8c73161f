//! Access revocations: accounts whose access ended (deleted, disabled, new password), in order,
//! so that every site ends their sessions and channels when the entry reaches it (`site`
//! applies them). Kept a week for sites that have yet to apply them.
//!
//! Owns the revocation log of [`DirectoryState`]; must not touch any other record.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::DirectoryState;
use crate::model::{CloseReason, User};

/// How long the directory remembers an access revocation for sites that have yet to apply it.
pub const KEEP_REVOCATIONS_MS: u64 = 7 * 24 * 3600 * 1000;

/// A user's access ended: every site closes its sessions (but `except`) and its channels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRevocation {
    pub seq: u64,
    pub user_id: Uuid,
    pub domain: String,
    /// `login@domain`, as channels name their user.
    pub username: String,
    pub except: Option<Uuid>,
    pub reason: crate::model::CloseReason,
    pub at_ms: u64,
}

impl DirectoryState {
    /// The access revocations after `seq`, in order.
    pub fn revocations_after(&self, seq: u64) -> Vec<AccessRevocation> {
        self.revocations
            .range(seq.saturating_add(1)..)
            .map(|(_, r)| r.clone())
            .collect()
    }

    /// Records that `user`'s access ended, and forgets records older than a week.
    pub(super) fn revoke_access(
        &mut self,
        user: &User,
        except: Option<Uuid>,
        reason: CloseReason,
        at_ms: u64,
    ) {
        self.next_revocation += 1;
        let revocation = AccessRevocation {
            seq: self.next_revocation,
            user_id: user.user_id,
            domain: user.domain.to_string(),
            username: user.address().to_string(),
            except,
            reason,
            at_ms,
        };
        self.revocations.insert(revocation.seq, revocation);
        while let Some((seq, oldest)) = self.revocations.get_min().map(|(k, v)| (*k, v.at_ms)) {
            if oldest.saturating_add(KEEP_REVOCATIONS_MS) > at_ms {
                break;
            }
            self.revocations.remove(&seq);
        }
    }
}
