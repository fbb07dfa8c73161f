//! The sockets some node holds for a user: websocket connections (keyed by session, so that a
//! session's end removes them) and mail-protocol channels (keyed by user). Both are indexed by
//! the (node, incarnation) that holds them, so that a node lost or restarted has its holds
//! forgotten at once ([`SiteState::connection_holders`], `ReapNode`).
//!
//! Owns the connection and channel maps of [`SiteState`]; reads sessions (a connection needs a
//! live one) but must not change them, nor any other record.

use std::collections::BTreeSet;
use std::ops::Bound;
use std::sync::Arc;

use uuid::Uuid;

use super::{SiteReply, SiteState};
use crate::model::lock::client_ip;
use crate::model::{Channel, ChannelTarget, Connection, Entrant, NewChannel, NewConnection};

impl SiteState {
    /// The (node, incarnation) pairs that hold registered connections or channels.
    pub fn connection_holders(&self) -> BTreeSet<(u64, u64)> {
        let mut holders = BTreeSet::new();
        for index in [&self.conns_by_node, &self.channels_by_node] {
            let mut from = Bound::Unbounded;
            while let Some((node, incarnation, _)) =
                index.range((from, Bound::Unbounded)).next().copied()
            {
                holders.insert((node, incarnation));
                from = Bound::Excluded((node, incarnation, Uuid::max()));
            }
        }
        holders
    }

    /// The channels registered by one node in one incarnation: (channel, registered at).
    pub fn channels_held_by(&self, node_id: u64, incarnation: u64) -> Vec<(Uuid, u64)> {
        self.channels_by_node
            .range((node_id, incarnation, Uuid::nil())..=(node_id, incarnation, Uuid::max()))
            .filter_map(|(_, _, id)| Some((*id, self.channels.get(id)?.connection_date_ms)))
            .collect()
    }

    /// Every channel, in id order (registration order).
    pub fn channels(&self) -> imbl::OrdMap<Uuid, Arc<Channel>> {
        self.channels.clone()
    }

    /// The channels of one user (`login@domain`).
    pub fn user_channels(&self, username: &str) -> Vec<Arc<Channel>> {
        let user: Arc<str> = username.into();
        self.channels_by_user
            .range((user.clone(), Uuid::nil())..=(user, Uuid::max()))
            .filter_map(|(_, id)| self.channels.get(id).cloned())
            .collect()
    }

    /// The connections registered by one node in one incarnation: (connection, session,
    /// registered at).
    pub fn connections_held_by(&self, node_id: u64, incarnation: u64) -> Vec<(Uuid, Uuid, u64)> {
        self.conns_by_node
            .range((node_id, incarnation, Uuid::nil())..=(node_id, incarnation, Uuid::max()))
            .filter_map(|(_, _, conn)| {
                let session = self.conn_session.get(conn)?;
                let c = self.connections.get(&(*session, *conn))?;
                Some((*conn, *session, c.opened_at_ms))
            })
            .collect()
    }

    pub fn connection_count(&self) -> usize {
        self.connections.len()
    }

    /// Forgets the connections and channels `node_id` registered in any incarnation but
    /// `keep_incarnation`.
    pub(super) fn reap_node(&mut self, node_id: u64, keep_incarnation: Option<u64>) -> SiteReply {
        let stale = |index: &BTreeSet<(u64, u64, Uuid)>| -> Vec<Uuid> {
            index
                .range((node_id, 0, Uuid::nil())..=(node_id, u64::MAX, Uuid::max()))
                .filter(|(_, incarnation, _)| Some(*incarnation) != keep_incarnation)
                .map(|(_, _, id)| *id)
                .collect()
        };
        let (conns, channels) = (stale(&self.conns_by_node), stale(&self.channels_by_node));
        self.remove_channels(channels);
        SiteReply::ConnectionsClosed(self.remove_connections(conns))
    }

    pub(super) fn disconnect_channels(&mut self, target: ChannelTarget) -> SiteReply {
        let doomed: Vec<Uuid> = match target {
            ChannelTarget::All => self.channels.keys().copied().collect(),
            ChannelTarget::Users(users) => users
                .iter()
                .flat_map(|u| self.user_channels(u))
                .map(|c| c.channel_id)
                .collect(),
        };
        let removed = self.remove_channels(doomed);
        if let (Some(effects), false) = (&self.effects, removed.is_empty()) {
            effects.channels_disconnected(&removed);
        }
        SiteReply::ChannelsClosed(removed.len() as u32)
    }

    pub(super) fn open_channel(&mut self, at_ms: u64, new: NewChannel) -> SiteReply {
        if let Some(existing) = self.channels.get(&new.channel_id) {
            return SiteReply::Channel(Channel::clone(existing));
        }
        if new.username.is_empty() {
            return SiteReply::Invalid("a channel needs a username".into());
        }
        let entrant = Entrant {
            user_id: new.user_id,
            domain: new.username.rsplit_once('@').map_or("", |(_, d)| d),
            client: client_ip(&new.remote_address),
            session_id: None,
        };
        if let Some(lock) = self.lock_against(&entrant, at_ms) {
            return SiteReply::locked(lock);
        }
        let channel = Channel {
            channel_id: new.channel_id,
            protocol: new.protocol,
            endpoint: new.endpoint,
            username: self.intern(&new.username),
            user_id: new.user_id,
            remote_address: new.remote_address,
            connection_date_ms: at_ms,
            encrypted: new.encrypted,
            info: new.info,
            node: self.intern(&new.node),
            pid: new.pid,
        };
        self.insert_channel(channel.clone());
        self.feed_channel(&channel, true);
        SiteReply::Channel(channel)
    }

    pub(super) fn insert_channel(&mut self, channel: Channel) {
        let id = channel.channel_id;
        self.channels_by_user.insert((channel.username.clone(), id));
        self.channels_by_node
            .insert((channel.pid.node_id, channel.pid.incarnation, id));
        self.channels.insert(id, Arc::new(channel));
    }

    pub(super) fn remove_channels(&mut self, ids: impl IntoIterator<Item = Uuid>) -> Vec<Uuid> {
        let mut removed = Vec::new();
        for id in ids {
            if let Some(c) = self.channels.remove(&id) {
                self.channels_by_user.remove(&(c.username.clone(), id));
                self.channels_by_node
                    .remove(&(c.pid.node_id, c.pid.incarnation, id));
                self.feed_channel(&c, false);
                removed.push(id);
            }
        }
        removed
    }

    pub(super) fn open_connection(&mut self, at_ms: u64, new: NewConnection) -> SiteReply {
        if let Some(connection) = self
            .conn_session
            .get(&new.conn_id)
            .and_then(|session| self.connections.get(&(*session, new.conn_id)))
        {
            return SiteReply::Connection(Connection::clone(connection));
        }
        let Some(session) = self.get(&new.session_id, at_ms) else {
            return SiteReply::NotFound;
        };
        if let Some(lock) = self.lock_against_session(session, at_ms) {
            return SiteReply::locked(lock);
        }
        let connection = Connection {
            conn_id: new.conn_id,
            session_id: new.session_id,
            node: self.intern(&new.node),
            pid: new.pid,
            opened_at_ms: at_ms,
        };
        self.insert_connection(connection.clone());
        self.feed_connection(&connection, true);
        SiteReply::Connection(connection)
    }

    pub(super) fn insert_connection(&mut self, connection: Connection) {
        let (conn, session, pid) = (connection.conn_id, connection.session_id, connection.pid);
        self.conn_session.insert(conn, session);
        self.conns_by_node
            .insert((pid.node_id, pid.incarnation, conn));
        self.connections
            .insert((session, conn), Arc::new(connection));
    }

    pub(super) fn remove_connections(&mut self, ids: impl IntoIterator<Item = Uuid>) -> u32 {
        let mut removed = 0;
        for conn in ids {
            let Some(session) = self.conn_session.remove(&conn) else {
                continue;
            };
            if let Some(c) = self.connections.remove(&(session, conn)) {
                self.conns_by_node
                    .remove(&(c.pid.node_id, c.pid.incarnation, conn));
                self.feed_connection(&c, false);
                removed += 1;
            }
        }
        removed
    }
}
