//! The leader's purge of expired sessions, and of audit events older than the retention. Reads
//! already hide expired sessions; purging frees memory and, being a log entry, lets every node
//! act on the sessions that ended.
//!
//! A service of the node: it only proposes purges through `SiteStore` and owns no state.

use std::time::Duration;

use sessionplane_cluster::now_ms;
use tokio::sync::watch;

use crate::state::SiteStore;

/// How long audit events are kept, and how many one purge entry forgets.
#[derive(Clone, Copy, Debug)]
pub struct AuditRetention {
    pub keep_ms: u64,
    pub batch: u32,
}

pub async fn run(
    store: SiteStore,
    interval: Duration,
    batch: u32,
    audit: AuditRetention,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = stop.changed() => return,
        }
        while store.group().is_leader() && store.group().state().read(|s| s.has_expired(now_ms())) {
            if let Err(e) = store.purge_expired(batch).await {
                tracing::warn!(error = %e, "purging expired sessions failed; will retry");
                break;
            }
        }
        purge_audit(&store, audit).await;
    }
}

async fn purge_audit(store: &SiteStore, audit: AuditRetention) {
    let due = |s: &crate::state::site::SiteState| s.has_expired_audit(now_ms(), audit.keep_ms);
    while store.group().is_leader() && store.group().state().read(due) {
        match store.purge_audit(audit.keep_ms, audit.batch).await {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(error = %e, "purging old audit events failed; will retry");
                return;
            }
        }
    }
}
