//! An authenticated session of a user at one site.

use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A session as stored in its site's group. Times are milliseconds since the Unix epoch;
/// `expires_at_ms` was fixed from the leader's clock when the command was accepted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub session_id: Uuid,
    pub user_id: Uuid,
    pub login: Arc<str>,
    pub domain: Arc<str>,
    pub created_at_ms: u64,
    pub expires_at_ms: u64,
    pub last_seen_ms: u64,
    pub client_addr: Option<IpAddr>,
    pub user_agent: Option<Arc<str>>,
}

impl Session {
    pub fn is_live(&self, now_ms: u64) -> bool {
        self.expires_at_ms > now_ms
    }

    /// Remaining lifetime in whole seconds, never negative.
    pub fn ttl_secs(&self, now_ms: u64) -> u64 {
        self.expires_at_ms.saturating_sub(now_ms) / 1000
    }
}

/// What a caller asks for when it opens a session; the leader adds the times.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewSession {
    pub session_id: Uuid,
    pub user_id: Uuid,
    pub login: String,
    pub domain: String,
    pub lifetime_ms: u64,
    pub client_addr: Option<IpAddr>,
    pub user_agent: Option<String>,
}

/// Why a session ended; its sockets are told.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CloseReason {
    Revoked,
    Expired,
    Logout,
    UserDisabled,
    /// A lock on the user, its domain, its network or the session.
    Locked,
    /// The user's domain allows so many sessions per user, and a newer one took its place.
    Limit,
}

impl CloseReason {
    /// The `reason` of the `session_closed` message.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Revoked => "revoked",
            Self::Expired => "expired",
            Self::Logout => "logout",
            Self::UserDisabled => "user_disabled",
            Self::Locked => "locked",
            Self::Limit => "limit",
        }
    }

    /// The websocket close code.
    pub fn close_code(self) -> u16 {
        match self {
            Self::Revoked => 4001,
            Self::Expired => 4002,
            Self::Logout => 4003,
            Self::UserDisabled => 4004,
            Self::Locked => 4005,
            // Ended by someone else's doing, as a revocation is.
            Self::Limit => 4001,
        }
    }
}
