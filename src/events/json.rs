//! Events as they leave the node: an audit event as the audit api shows it, and a feed entry
//! (audit or lifecycle) as the stream and the webhooks carry it, with its place in its site's
//! feed (`id`: `site:seq`).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::model::audit::{Actor, AuditEvent};
use crate::model::event::FeedKind;
use crate::model::Protocol;
use crate::state::site::feed::{Entry, Resolved};

/// An audit event as the api shows it.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = AuditEvent)]
pub struct AuditEventView {
    pub event_id: Uuid,
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    pub site: String,
    pub node: String,
    /// `{"user_id","login","domain","session_id"}`, `{"service"}`, `{"federated","from_site"}`
    /// or null.
    #[schema(value_type = Option<Object>)]
    pub actor: Value,
    pub remote_address: Option<String>,
    pub action: String,
    pub target: String,
    /// `ok`, `refused` or `failed`.
    pub outcome: String,
    #[schema(value_type = Object)]
    pub details: Value,
    pub hash: String,
    pub prev_hash: String,
}

fn actor_view(actor: &Actor) -> Value {
    match actor {
        Actor::User {
            user_id,
            login,
            domain,
            session_id,
        } => {
            json!({"user_id": user_id, "login": login, "domain": domain, "session_id": session_id})
        }
        Actor::Service { sub } => json!({ "service": sub }),
        Actor::Federated {
            on_behalf_of,
            from_site,
        } => json!({"federated": on_behalf_of, "from_site": from_site}),
        Actor::None => Value::Null,
    }
}

impl From<&AuditEvent> for AuditEventView {
    fn from(event: &AuditEvent) -> Self {
        Self {
            event_id: event.event_id,
            time: rfc3339_millis(event.time_ms),
            site: event.site.clone(),
            node: event.node.clone(),
            actor: actor_view(&event.actor),
            remote_address: event.remote_address.map(|ip| ip.to_string()),
            action: event.action.clone(),
            target: event.target.clone(),
            outcome: event.outcome.name().to_string(),
            details: event.details.clone(),
            hash: event.hash.clone(),
            prev_hash: event.prev_hash.clone(),
        }
    }
}

/// `2026-12-02T10:00:00.009Z`: fixed width, so the text sorts as the time.
pub fn rfc3339_millis(ms: u64) -> String {
    let nanos = i128::from(ms) * 1_000_000;
    match time::OffsetDateTime::from_unix_timestamp_nanos(nanos) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second(),
            t.millisecond()
        ),
        Err(_) => String::new(),
    }
}

/// A feed entry of `site` as the stream and the webhooks carry it: an audit event has the
/// audit api's fields, a lifecycle event the same names (`time`, `action`, `target`, `actor`
/// null, `outcome` ok) with what it is about in `details`; both have `id` (`site:seq`),
/// `site`, `seq` and `kind` (`audit` or `lifecycle`). Written straight to `out` (no JSON tree
/// is built: the stream writes one per event per reader).
pub fn write_entry(out: &mut Vec<u8>, site: &str, entry: &Entry) {
    let id = format!("{site}:{}", entry.seq);
    let written = match &entry.event {
        Resolved::Audit(audit) => serde_json::to_writer(
            &mut *out,
            &AuditOut {
                id,
                site,
                seq: entry.seq,
                kind: "audit",
                event: AuditEventView::from(&**audit),
            },
        ),
        Resolved::Lifecycle(event) => serde_json::to_writer(
            &mut *out,
            &LifecycleOut {
                id,
                site,
                seq: entry.seq,
                kind: "lifecycle",
                time: rfc3339_millis(event.time_ms),
                action: event.kind.action().unwrap_or_default(),
                target: event.kind.user_address().unwrap_or_default(),
                actor: None,
                outcome: "ok",
                details: Details::of(&event.kind),
            },
        ),
    };
    // Serializing these plain structs into a Vec cannot fail; were it to, the event is empty.
    if written.is_err() {
        out.extend_from_slice(b"{}");
    }
}

/// [`write_entry`] as text.
pub fn entry_text(site: &str, entry: &Entry) -> String {
    let mut out = Vec::with_capacity(320);
    write_entry(&mut out, site, entry);
    String::from_utf8(out).unwrap_or_default()
}

#[derive(Serialize)]
struct AuditOut<'a> {
    id: String,
    site: &'a str,
    seq: u64,
    kind: &'static str,
    #[serde(flatten)]
    event: AuditEventView,
}

#[derive(Serialize)]
struct LifecycleOut<'a> {
    id: String,
    site: &'a str,
    seq: u64,
    kind: &'static str,
    time: String,
    action: &'static str,
    target: String,
    actor: Option<()>,
    outcome: &'static str,
    details: Details<'a>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Details<'a> {
    SessionCreated {
        session_id: Uuid,
        user_id: Uuid,
        client_addr: Option<String>,
    },
    SessionEnded {
        session_id: Uuid,
        user_id: Uuid,
        reason: &'static str,
    },
    Connection {
        conn_id: Uuid,
        session_id: Uuid,
        user_id: Uuid,
        node: &'a str,
    },
    Channel {
        channel_id: Uuid,
        user_id: Uuid,
        protocol: Protocol,
        node: &'a str,
    },
    None {},
}

impl<'a> Details<'a> {
    fn of(kind: &'a FeedKind) -> Self {
        match kind {
            FeedKind::Audit { .. } => Self::None {},
            FeedKind::SessionCreated {
                session,
                client_addr,
            } => Self::SessionCreated {
                session_id: session.session_id,
                user_id: session.user_id,
                client_addr: client_addr.map(|a| a.to_string()),
            },
            FeedKind::SessionEnded { session, reason } => Self::SessionEnded {
                session_id: session.session_id,
                user_id: session.user_id,
                reason: reason.as_str(),
            },
            FeedKind::ConnectionOpened(c) | FeedKind::ConnectionClosed(c) => Self::Connection {
                conn_id: c.conn_id,
                session_id: c.session.session_id,
                user_id: c.session.user_id,
                node: &c.node,
            },
            FeedKind::ChannelOpened(c) | FeedKind::ChannelClosed(c) => Self::Channel {
                channel_id: c.channel_id,
                user_id: c.user_id,
                protocol: c.protocol,
                node: &c.node,
            },
        }
    }
}
