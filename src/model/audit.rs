//! The audit trail's record: one [`AuditEvent`] per admin write, refused admin call, failed
//! login and ban, kept in the site group of the node that served it, each one linked to the one
//! before it by a SHA-256 hash.
//!
//! Owns the event's fields, its canonical form and its hash; knows nothing of where events are
//! kept or how they are listed.
//!
//! # The canonical form (how to re-verify a chain by hand)
//!
//! An event's `hash` is the lowercase hex SHA-256 of the UTF-8 bytes of this JSON text, with no
//! whitespace, its keys in exactly this order:
//!
//! ```text
//! {"event_id":"<uuid>","time_ms":<u64>,"site":"…","node":"…","actor":<actor>,
//!  "remote_address":"<ip>"|null,"action":"…","target":"…","outcome":"ok"|"refused"|"failed",
//!  "details":<details>,"prev_hash":"<hex>"}
//! ```
//!
//! where `<actor>` is `null`, `{"service":"<sub>"}`,
//! `{"user_id":"…","login":"…","domain":"…","session_id":"…"|null}` or
//! `{"federated":"<who the origin said>","from_site":"…"}` (keys in that order), and `<details>`
//! is the details object with the keys of every object in it sorted (byte order), as
//! `serde_json` writes it. `prev_hash` is the previous event's `hash`; the first event of a site
//! has 64 zeros ([`GENESIS_HASH`]). Strings are escaped as `serde_json` escapes them.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The `prev_hash` of a site's first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The largest event the site group records (its encoded size): over it, the change it records
/// is refused, not made without its event.
pub const MAX_EVENT_BYTES: usize = 16 * 1024;

/// Who made the call an event records.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Actor {
    /// A user, through one of its sessions.
    User {
        user_id: Uuid,
        login: String,
        domain: String,
        session_id: Option<Uuid>,
    },
    /// Automation with a service token.
    Service { sub: String },
    /// Another site forwarding its caller's request: who that site said the caller was.
    Federated {
        on_behalf_of: String,
        from_site: String,
    },
    /// Nobody known (a refused call without valid credentials, a failed login).
    None,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    Refused,
    Failed,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Refused => "refused",
            Self::Failed => "failed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "ok" => Some(Self::Ok),
            "refused" => Some(Self::Refused),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// An event as the proposing node makes it: everything the hash covers but the chain's link,
/// so that every replica computes the same hash at apply. `outcome` is what the proposer
/// expects; an event attached to a change takes the outcome of the change instead.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewAuditEvent {
    pub event_id: Uuid,
    pub time_ms: u64,
    pub site: String,
    pub node: String,
    pub actor: Actor,
    pub remote_address: Option<IpAddr>,
    pub action: String,
    pub target: String,
    pub outcome: Outcome,
    /// A JSON object; never a secret (no password, hash, token or key).
    pub details: serde_json::Value,
}

/// Why an event cannot be recorded (and the change it records is then refused).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("the audit event's details are not a JSON object")]
    DetailsNotObject,
    #[error("the audit event has no action")]
    NoAction,
    #[error("the audit event takes {size} bytes, over the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
}

impl NewAuditEvent {
    /// An event of `action` on `target` made now, with empty details.
    pub fn new(site: &str, node: &str, actor: Actor, action: &str, target: &str) -> Self {
        Self {
            event_id: Uuid::now_v7(),
            time_ms: now_ms(),
            site: site.to_string(),
            node: node.to_string(),
            actor,
            remote_address: None,
            action: action.to_string(),
            target: target.to_string(),
            outcome: Outcome::Ok,
            details: serde_json::Value::Object(serde_json::Map::new()),
        }
    }

    pub fn with_outcome(mut self, outcome: Outcome) -> Self {
        self.outcome = outcome;
        self
    }

    pub fn with_remote(mut self, remote_address: Option<IpAddr>) -> Self {
        self.remote_address = remote_address;
        self
    }

    /// Sets one key of the details.
    pub fn detail(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.set_detail(key, value.into());
        self
    }

    pub fn set_detail(&mut self, key: &str, value: serde_json::Value) {
        if let serde_json::Value::Object(map) = &mut self.details {
            map.insert(key.to_string(), value);
        }
    }

    /// Whether the event can be recorded: an action, details that are an object, and no more
    /// than [`MAX_EVENT_BYTES`] encoded.
    pub fn check(&self) -> Result<(), EventError> {
        if self.action.is_empty() {
            return Err(EventError::NoAction);
        }
        if !self.details.is_object() {
            return Err(EventError::DetailsNotObject);
        }
        let size = serde_json::to_vec(self)
            .map(|b| b.len())
            .unwrap_or(usize::MAX);
        if size > MAX_EVENT_BYTES {
            return Err(EventError::TooLarge {
                size,
                limit: MAX_EVENT_BYTES,
            });
        }
        Ok(())
    }

    /// The event linked after `prev_hash`, its hash computed.
    pub fn chained(self, prev_hash: &str) -> AuditEvent {
        let mut event = AuditEvent {
            event_id: self.event_id,
            time_ms: self.time_ms,
            site: self.site,
            node: self.node,
            actor: self.actor,
            remote_address: self.remote_address,
            action: self.action,
            target: self.target,
            outcome: self.outcome,
            details: self.details,
            prev_hash: prev_hash.to_string(),
            hash: String::new(),
        };
        event.hash = event.computed_hash();
        event
    }
}

/// A recorded event, linked into its site's chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub event_id: Uuid,
    pub time_ms: u64,
    pub site: String,
    pub node: String,
    pub actor: Actor,
    pub remote_address: Option<IpAddr>,
    pub action: String,
    pub target: String,
    pub outcome: Outcome,
    pub details: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

/// The actor in the canonical form (see the module's documentation).
#[derive(Serialize)]
#[serde(untagged)]
enum CanonicalActor<'a> {
    User {
        user_id: &'a Uuid,
        login: &'a str,
        domain: &'a str,
        session_id: &'a Option<Uuid>,
    },
    Service {
        service: &'a str,
    },
    Federated {
        federated: &'a str,
        from_site: &'a str,
    },
}

impl<'a> From<&'a Actor> for Option<CanonicalActor<'a>> {
    fn from(actor: &'a Actor) -> Self {
        match actor {
            Actor::User {
                user_id,
                login,
                domain,
                session_id,
            } => Some(CanonicalActor::User {
                user_id,
                login,
                domain,
                session_id,
            }),
            Actor::Service { sub } => Some(CanonicalActor::Service { service: sub }),
            Actor::Federated {
                on_behalf_of,
                from_site,
            } => Some(CanonicalActor::Federated {
                federated: on_behalf_of,
                from_site,
            }),
            Actor::None => None,
        }
    }
}

/// The fields the hash covers, in their fixed order.
#[derive(Serialize)]
struct Canonical<'a> {
    event_id: &'a Uuid,
    time_ms: u64,
    site: &'a str,
    node: &'a str,
    actor: Option<CanonicalActor<'a>>,
    remote_address: &'a Option<IpAddr>,
    action: &'a str,
    target: &'a str,
    outcome: Outcome,
    details: serde_json::Value,
    prev_hash: &'a str,
}

impl AuditEvent {
    /// The canonical JSON text the hash is computed over.
    pub fn canonical(&self) -> Vec<u8> {
        let canonical = Canonical {
            event_id: &self.event_id,
            time_ms: self.time_ms,
            site: &self.site,
            node: &self.node,
            actor: (&self.actor).into(),
            remote_address: &self.remote_address,
            action: &self.action,
            target: &self.target,
            outcome: self.outcome,
            details: sorted(&self.details),
            prev_hash: &self.prev_hash,
        };
        serde_json::to_vec(&canonical).unwrap_or_default()
    }

    /// The hash this event's content and link give (which a true event holds in `hash`).
    pub fn computed_hash(&self) -> String {
        hex_sha256(&self.canonical())
    }
}

/// `value` with the keys of each of its objects in sorted order, whatever order the map type
/// keeps.
fn sorted(value: &serde_json::Value) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let ordered: BTreeMap<&String, Value> =
                map.iter().map(|(k, v)| (k, sorted(v))).collect();
            Value::Object(ordered.into_iter().map(|(k, v)| (k.clone(), v)).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
        other => other.clone(),
    }
}

fn hex_sha256(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> NewAuditEvent {
        NewAuditEvent::new("central", "c1@host", Actor::None, "login.failed", "bob@d")
            .detail("b", 1)
            .detail("a", serde_json::json!({"z": 1, "y": 2}))
    }

    #[test]
    fn the_hash_covers_the_content_and_the_link() {
        let first = event().chained(GENESIS_HASH);
        assert_eq!(first.hash, first.computed_hash());
        assert_eq!(first.hash.len(), 64);
        let mut tampered = first.clone();
        tampered.target = "eve@d".into();
        assert_ne!(tampered.computed_hash(), first.hash);
        let relinked = event().chained(&first.hash);
        assert_ne!(relinked.hash, first.hash);
    }

    #[test]
    fn the_canonical_form_has_its_fields_in_order_and_sorted_details() {
        let text = String::from_utf8(event().chained(GENESIS_HASH).canonical()).unwrap();
        assert!(text.starts_with("{\"event_id\":"), "{text}");
        assert!(
            text.contains("\"actor\":null,\"remote_address\":null,\"action\":\"login.failed\""),
            "{text}"
        );
        assert!(
            text.contains("\"details\":{\"a\":{\"y\":2,\"z\":1},\"b\":1},\"prev_hash\""),
            "{text}"
        );
    }

    #[test]
    fn an_event_that_cannot_be_recorded_is_named() {
        let mut bad = event();
        bad.details = serde_json::json!([1]);
        assert_eq!(bad.check(), Err(EventError::DetailsNotObject));
        let big = event().detail("x", "y".repeat(MAX_EVENT_BYTES));
        assert!(matches!(big.check(), Err(EventError::TooLarge { .. })));
        assert_eq!(event().check(), Ok(()));
    }
}
