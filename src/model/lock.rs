//! A lock: what keeps one target (a user, a domain, a network, a session) out of every site
//! that holds it, until it is lifted or expires.
//!
//! This module owns the lock record and the one rule of what a lock matches; the site state
//! machine stores locks and applies that rule when a session, connection or channel opens,
//! and the api resolves a request's target into a [`LockTarget`]. Times are milliseconds
//! since the Unix epoch, fixed by the node that took the request, so every site agrees on
//! when a lock stops applying.

use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Exactly one thing a lock keeps out.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LockTarget {
    /// One user, by id; `address` (`login@domain`) names its mail channels.
    User { user_id: Uuid, address: String },
    /// Every user of a domain.
    Domain(String),
    /// Every client from this network (a single address is a /32 or /128).
    Network(IpNet),
    /// One session.
    Session(Uuid),
}

/// Someone or something trying to get in, as a lock sees it.
#[derive(Clone, Copy, Debug)]
pub struct Entrant<'a> {
    pub user_id: Uuid,
    pub domain: &'a str,
    pub client: Option<IpAddr>,
    pub session_id: Option<Uuid>,
}

impl LockTarget {
    /// Whether this target covers `entrant`.
    pub fn matches(&self, entrant: &Entrant<'_>) -> bool {
        match self {
            Self::User { user_id, .. } => *user_id == entrant.user_id,
            Self::Domain(domain) => domain.as_str() == entrant.domain,
            Self::Network(net) => entrant
                .client
                .is_some_and(|ip| net.contains(&ip.to_canonical())),
            Self::Session(id) => entrant.session_id == Some(*id),
        }
    }

    /// The domain this target lies in, when it lies in one (what a domain administrator may
    /// lock is checked against it).
    pub fn domain(&self) -> Option<&str> {
        match self {
            Self::User { address, .. } => address.rsplit_once('@').map(|(_, d)| d),
            Self::Domain(domain) => Some(domain),
            Self::Network(_) | Self::Session(_) => None,
        }
    }
}

/// A lock as a site stores it: the same at every site it was placed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    pub lock_id: Uuid,
    pub target: LockTarget,
    pub message: String,
    pub created_at_ms: u64,
    pub expires_at_ms: Option<u64>,
    /// Who placed it, as the caller is described in logs (never a token).
    pub created_by: String,
    /// The sites it was placed for.
    pub sites: Vec<String>,
    pub lifted_at_ms: Option<u64>,
    /// The session of whoever placed it, which it never ends nor keeps out.
    pub spares: Option<Uuid>,
}

impl Lock {
    /// Whether it keeps `entrant` out at `now_ms`.
    pub fn keeps_out(&self, entrant: &Entrant<'_>, now_ms: u64) -> bool {
        let spared = self.spares.is_some() && entrant.session_id == self.spares;
        !spared && self.in_force(now_ms) && self.target.matches(entrant)
    }

    pub fn in_force(&self, now_ms: u64) -> bool {
        self.lifted_at_ms.is_none() && !matches!(self.expires_at_ms, Some(at) if at <= now_ms)
    }

    /// When it stopped applying, if it has: lifted, or past its expiry.
    pub fn ended_at_ms(&self, now_ms: u64) -> Option<u64> {
        match (self.lifted_at_ms, self.expires_at_ms) {
            (Some(lifted), _) => Some(lifted),
            (None, Some(expires)) if expires <= now_ms => Some(expires),
            _ => None,
        }
    }
}

/// How long a lock that stopped applying is kept for `GET /locks?all=true` before the site's
/// purge forgets it.
pub const KEEP_ENDED_LOCKS_MS: u64 = 30 * 24 * 3600 * 1000;

/// The client address of a channel's `remote_address` (`ip:port`, or a bare ip).
pub fn client_ip(remote_address: &str) -> Option<IpAddr> {
    remote_address
        .parse::<SocketAddr>()
        .map(|addr| addr.ip())
        .or_else(|_| remote_address.parse::<IpAddr>())
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_target_matches_its_own_kind_of_entrant() {
        let (user_id, address) = (Uuid::from_u128(7), String::from("bob@acme.test"));
        let session = Uuid::from_u128(9);
        let entrant = Entrant {
            user_id,
            domain: "acme.test",
            client: Some("203.0.113.7".parse().unwrap()),
            session_id: Some(session),
        };
        let net = |s: &str| LockTarget::Network(s.parse().unwrap());
        assert!(LockTarget::User {
            user_id,
            address: address.clone()
        }
        .matches(&entrant));
        assert!(!LockTarget::User {
            user_id: Uuid::from_u128(8),
            address
        }
        .matches(&entrant));
        assert!(LockTarget::Domain("acme.test".into()).matches(&entrant));
        assert!(!LockTarget::Domain("acme.tes".into()).matches(&entrant));
        assert!(net("203.0.113.0/24").matches(&entrant));
        assert!(net("203.0.113.7/32").matches(&entrant));
        assert!(!net("203.0.114.0/24").matches(&entrant));
        assert!(!net("2001:db8::/32").matches(&entrant));
        assert!(LockTarget::Session(session).matches(&entrant));
        assert!(!LockTarget::Session(user_id).matches(&entrant));
        let mapped = Entrant {
            client: Some("::ffff:203.0.113.9".parse().unwrap()),
            ..entrant
        };
        assert!(net("203.0.113.0/24").matches(&mapped), "v4-mapped v6 is v4");
        let nowhere = Entrant {
            client: None,
            ..entrant
        };
        assert!(!net("0.0.0.0/0").matches(&nowhere));
    }

    #[test]
    fn a_lock_stops_applying_when_lifted_or_expired() {
        let mut lock = Lock {
            lock_id: Uuid::from_u128(1),
            target: LockTarget::Domain("acme.test".into()),
            message: "m".into(),
            created_at_ms: 1_000,
            expires_at_ms: Some(5_000),
            created_by: "admin@master.domain".into(),
            sites: vec!["central".into()],
            lifted_at_ms: None,
            spares: None,
        };
        assert!(lock.in_force(4_999));
        assert!(!lock.in_force(5_000));
        assert_eq!(lock.ended_at_ms(4_999), None);
        assert_eq!(lock.ended_at_ms(6_000), Some(5_000));
        lock.expires_at_ms = None;
        assert!(lock.in_force(u64::MAX));
        lock.lifted_at_ms = Some(2_000);
        assert!(!lock.in_force(1_500) && lock.ended_at_ms(1_500) == Some(2_000));
    }

    #[test]
    fn channel_addresses_give_their_ip() {
        assert_eq!(client_ip("127.0.0.9:4521"), "127.0.0.9".parse().ok());
        assert_eq!(client_ip("[::1]:993"), "::1".parse().ok());
        assert_eq!(client_ip("10.1.2.3"), "10.1.2.3".parse().ok());
        assert_eq!(client_ip("unknown"), None);
    }
}
