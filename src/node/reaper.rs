//! The leader's purge of expired sessions. Reads already hide them; purging frees memory and,
//! being a log entry, lets every node act on the sessions that ended.
//!
//! A service of the node: it only proposes purges through `SiteStore` and owns no state.

use std::time::Duration;

use sessionplane_cluster::now_ms;
use tokio::sync::watch;

use crate::state::SiteStore;

pub async fn run(
    store: SiteStore,
    interval: Duration,
    batch: u32,
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
    }
}
