//! A mail-protocol channel (IMAP, SMTP, JMAP websocket or event source) held by one node for
//! one authenticated user, with Apache James's fields.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Pid;

#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
pub enum Protocol {
    #[serde(rename = "IMAP")]
    Imap,
    #[serde(rename = "SMTP")]
    Smtp,
    #[serde(rename = "JMAP")]
    Jmap,
}

/// James's `endpoint` names.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
pub enum Endpoint {
    #[serde(rename = "imapserver")]
    ImapServer,
    #[serde(rename = "smtpserver")]
    SmtpServer,
    WebSocket,
    EventSource,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Channel {
    pub channel_id: Uuid,
    pub protocol: Protocol,
    pub endpoint: Endpoint,
    /// `login@domain`.
    pub username: Arc<str>,
    pub user_id: Uuid,
    pub remote_address: String,
    /// The leader's clock when the channel was registered (ms since the epoch).
    pub connection_date_ms: u64,
    pub encrypted: bool,
    pub info: BTreeMap<String, String>,
    /// `name@host` of the holding node.
    pub node: Arc<str>,
    pub pid: Pid,
}

/// What a node asks to register; the leader adds the time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewChannel {
    pub channel_id: Uuid,
    pub protocol: Protocol,
    pub endpoint: Endpoint,
    pub username: String,
    pub user_id: Uuid,
    pub remote_address: String,
    pub encrypted: bool,
    pub info: BTreeMap<String, String>,
    pub node: String,
    pub pid: Pid,
}

/// Whose channels a disconnect ends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChannelTarget {
    All,
    /// `login@domain` names.
    Users(Vec<String>),
}
