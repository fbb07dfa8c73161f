//! What an applied site entry does on this node: the gateway closes its sockets of ended
//! sessions, the mail listeners their disconnected channels.

use std::sync::Arc;

use uuid::Uuid;

use crate::gateway::LocalSockets;
use crate::mail::channels::LocalChannels;
use crate::model::CloseReason;
use crate::state::site::SiteEffects;

pub struct NodeEffects {
    pub sockets: Arc<LocalSockets>,
    pub channels: Arc<LocalChannels>,
}

impl SiteEffects for NodeEffects {
    fn sessions_ended(&self, sessions: &[Uuid], reason: CloseReason) {
        self.sockets.sessions_ended(sessions, reason);
    }

    fn channels_disconnected(&self, channels: &[Uuid]) {
        self.channels.channels_disconnected(channels);
    }
}
