//! Keeps the registered websocket connections and mail channels true to the sockets that exist.
//!
//! On every node, every second: sockets whose session has expired are closed (4002) without
//! waiting for the purge, sockets whose session vanished without this node seeing it end (it
//! installed a snapshot) are closed (4001), and this node's records that no socket or channel
//! backs any more (a failed deregistration) are removed. On the site leader, also: the records
//! of a node that restarted (another incarnation) or has been unreachable for
//! `reap_dead_node_after` are removed.

use std::sync::Arc;
use std::time::Duration;

use sessionplane_cluster::{now_ms, PeerState};

use crate::gateway::Gateway;
use crate::mail::channels::LocalChannels;
use crate::model::CloseReason;
use crate::state::SiteStore;
use uuid::Uuid;

const EVERY: Duration = Duration::from_secs(1);
/// A socket or record this young may be waiting for its entry to be applied here.
const GRACE: Duration = Duration::from_secs(5);

pub async fn run(gateway: Arc<Gateway>, channels: Arc<LocalChannels>) {
    let mut stop = gateway.stop.clone();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = stop.changed() => return,
        }
        close_orphaned_sockets(&gateway);
        for stale in stale_records(&gateway, &channels) {
            if let Err(e) = stale.forget(&gateway.site).await {
                tracing::debug!(error = %e, "removing stale connection records failed; will retry");
                break;
            }
        }
    }
}

fn close_orphaned_sockets(gateway: &Gateway) {
    let now = now_ms();
    let held = gateway.sockets.sessions();
    let verdicts: Vec<_> = gateway.site.group().state().read(|state| {
        held.iter()
            .filter_map(
                |(session_id, since)| match state.session_stored(session_id) {
                    Some(session) if !session.is_live(now) => {
                        Some((*session_id, CloseReason::Expired))
                    }
                    Some(_) => None,
                    None if since.elapsed() > GRACE => Some((*session_id, CloseReason::Revoked)),
                    None => None,
                },
            )
            .collect()
    });
    for (session_id, reason) in verdicts {
        gateway.sockets.close(session_id, reason);
    }
}

/// A record of the site group that outlived what it stands for.
enum Stale {
    /// A connection this node registered but holds no socket for.
    Connection(Uuid),
    /// A channel this node registered but holds no client for.
    Channel(Uuid),
    /// What a lost node holds, in every incarnation but `keep_incarnation`.
    Node {
        node_id: u64,
        keep_incarnation: Option<u64>,
    },
}

impl Stale {
    async fn forget(self, site: &SiteStore) -> Result<u32, crate::state::StoreError> {
        match self {
            Self::Connection(conn_id) => site.close_connection(conn_id).await,
            Self::Channel(channel_id) => site.close_channel(channel_id).await,
            Self::Node {
                node_id,
                keep_incarnation,
            } => site.reap_node(node_id, keep_incarnation).await,
        }
    }
}

fn stale_records(gateway: &Gateway, channels: &LocalChannels) -> Vec<Stale> {
    let me = gateway.liveness.me();
    let grace_ms = GRACE.as_millis() as u64;
    let now = now_ms();
    let state = gateway.site.group().state();
    let mine = state.read(|s| s.connections_held_by(me.node_id, me.incarnation));
    let mut commands: Vec<Stale> = mine
        .into_iter()
        .filter(|(conn, session, opened_at)| {
            now.saturating_sub(*opened_at) > grace_ms && !gateway.sockets.holds(*session, *conn)
        })
        .map(|(conn_id, _, _)| Stale::Connection(conn_id))
        .collect();
    let my_channels = state.read(|s| s.channels_held_by(me.node_id, me.incarnation));
    commands.extend(
        my_channels
            .into_iter()
            .filter(|(id, opened_at)| {
                now.saturating_sub(*opened_at) > grace_ms && !channels.holds(*id)
            })
            .map(|(channel_id, _)| Stale::Channel(channel_id)),
    );
    if !gateway.site.group().is_leader() {
        return commands;
    }
    for (node_id, incarnation) in state.read(|s| s.connection_holders()) {
        let keep_incarnation = match gateway.liveness.state(node_id) {
            PeerState::Up {
                incarnation: now_up,
            } if now_up != incarnation => Some(now_up),
            PeerState::Down { for_at_least }
                if for_at_least >= gateway.settings.reap_dead_node_after =>
            {
                None
            }
            _ => continue,
        };
        tracing::info!(
            node_id,
            incarnation,
            "forgetting the connections of a lost node"
        );
        commands.push(Stale::Node {
            node_id,
            keep_incarnation,
        });
    }
    commands
}
