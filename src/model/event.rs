//! The site's event feed: every audit event and every session lifecycle change, numbered in
//! log order. The number is the same on every node of the site (it is given by apply), so a
//! reader that knows the last one it saw resumes at any node without a loss or a repeat.

use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{CloseReason, Protocol};

/// One entry of the feed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedEvent {
    /// The event's place in its site's feed, from 1.
    pub seq: u64,
    /// The time of the entry that made it.
    pub time_ms: u64,
    pub kind: FeedKind,
}

/// What happened. An audit event is named by its sequence in the site's audit trail (the trail
/// keeps the event itself, so a snapshot does not carry it twice).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FeedKind {
    Audit {
        audit_seq: u64,
    },
    SessionCreated {
        session: SessionRef,
        client_addr: Option<IpAddr>,
    },
    SessionEnded {
        session: SessionRef,
        reason: CloseReason,
    },
    ConnectionOpened(ConnectionRef),
    ConnectionClosed(ConnectionRef),
    ChannelOpened(ChannelRef),
    ChannelClosed(ChannelRef),
}

/// The session an event is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRef {
    pub session_id: Uuid,
    pub user_id: Uuid,
    pub login: Arc<str>,
    pub domain: Arc<str>,
}

impl SessionRef {
    pub fn address(&self) -> String {
        format!("{}@{}", self.login, self.domain)
    }
}

/// The websocket connection an event is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionRef {
    pub conn_id: Uuid,
    pub session: SessionRef,
    pub node: Arc<str>,
}

/// The mail channel an event is about.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelRef {
    pub channel_id: Uuid,
    pub user_id: Uuid,
    /// `login@domain`.
    pub username: Arc<str>,
    pub protocol: Protocol,
    pub node: Arc<str>,
}

impl FeedKind {
    /// The event's dotted action name (an audit event's is its own).
    pub fn action(&self) -> Option<&'static str> {
        Some(match self {
            Self::Audit { .. } => return None,
            Self::SessionCreated { .. } => "session.created",
            Self::SessionEnded { .. } => "session.ended",
            Self::ConnectionOpened(_) => "connection.opened",
            Self::ConnectionClosed(_) => "connection.closed",
            Self::ChannelOpened(_) => "channel.opened",
            Self::ChannelClosed(_) => "channel.closed",
        })
    }

    /// The `login@domain` of the user a lifecycle event is about.
    pub fn user_address(&self) -> Option<String> {
        match self {
            Self::Audit { .. } => None,
            Self::SessionCreated { session, .. } | Self::SessionEnded { session, .. } => {
                Some(session.address())
            }
            Self::ConnectionOpened(c) | Self::ConnectionClosed(c) => Some(c.session.address()),
            Self::ChannelOpened(c) | Self::ChannelClosed(c) => Some(c.username.to_string()),
        }
    }
}
