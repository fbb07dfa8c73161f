//! Carries account revocations (a user deleted, disabled, or given a new password) from the
//! directory into this site: the site's leader applies each one the directory records, in
//! order, and the site's log remembers how far it got, so that every site ends the user's
//! sessions and channels exactly once, as soon as the directory entry reaches it, whether the
//! WAN was cut when the change was made or a node restarted since.
//!
//! The directory's audit outbox travels the same way: the events of this site's directory
//! changes (users, groups, domains) are copied into the site's audit chain, in order, once.

use std::time::Duration;

use tokio::sync::watch;

use crate::state::{DirectoryStore, SiteStore};

const ROUND: Duration = Duration::from_millis(100);

pub async fn run(
    site: SiteStore,
    directory: DirectoryStore,
    site_name: String,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(ROUND) => {}
        }
        if !site.group().is_leader() {
            continue;
        }
        let done = site.group().state().read(|s| s.access_revocations_done());
        let pending = directory.read_local(|d| d.revocations_after(done));
        for revocation in pending {
            let (seq, user) = (revocation.seq, revocation.username.clone());
            match site.apply_access_revocation(revocation).await {
                Ok(_) => tracing::info!(seq, %user, "applied an access revocation at this site"),
                Err(e) => {
                    tracing::warn!(seq, %user, error = %e, "could not apply an access revocation");
                    break;
                }
            }
        }
        copy_audit_events(&site, &directory, &site_name).await;
    }
}

/// Copies the directory's audit outbox events of this site into its chain, in order.
async fn copy_audit_events(site: &SiteStore, directory: &DirectoryStore, name: &str) {
    let done = site.group().state().read(|s| s.directory_audit_done());
    let pending = directory.read_local(|d| d.audit_outbox_after(done, name));
    for outbox in pending {
        let (seq, action) = (outbox.seq, outbox.event.action.clone());
        if let Err(e) = site.copy_directory_audit(seq, outbox.event).await {
            tracing::warn!(seq, %action, error = %e, "could not copy a directory audit event");
            return;
        }
    }
}
