//! What an applied site entry does on this node: the gateway closes its sockets of ended
//! sessions, the mail listeners their disconnected channels, and a containment closes both
//! and keeps this node's report.

use std::sync::Arc;

use uuid::Uuid;

use super::incidents::Containing;
use crate::gateway::LocalSockets;
use crate::mail::channels::LocalChannels;
use crate::model::CloseReason;
use crate::state::site::{ContainedHere, SiteEffects};

pub struct NodeEffects {
    pub sockets: Arc<LocalSockets>,
    pub channels: Arc<LocalChannels>,
    pub containing: Containing,
    /// The feed's last sequence, for the stream's readers.
    pub feed: tokio::sync::watch::Sender<u64>,
}

impl SiteEffects for NodeEffects {
    fn sessions_ended(&self, sessions: &[Uuid], reason: CloseReason) {
        self.sockets.sessions_ended(sessions, reason);
    }

    fn channels_disconnected(&self, channels: &[Uuid]) {
        self.channels.channels_disconnected(channels);
    }

    fn contained(&self, contained: ContainedHere) {
        self.containing.contained(contained);
    }

    fn feed_advanced(&self, last_seq: u64) {
        self.feed.send_replace(last_seq);
    }
}
