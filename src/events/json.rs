//! Events as they leave the node: an audit event as the audit api shows it, and a feed entry
//! (audit or lifecycle) as the stream and the webhooks carry it, with its place in its site's
//! feed (`id`: `site:seq`).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::model::audit::{Actor, AuditEvent};
use crate::model::event::{FeedEvent, FeedKind};
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
/// `site`, `seq` and `kind` (`audit` or `lifecycle`).
pub fn entry_json(site: &str, entry: &Entry) -> Value {
    let mut object = match &entry.event {
        Resolved::Audit(audit) => {
            let mut view = serde_json::to_value(AuditEventView::from(&**audit)).unwrap_or_default();
            view["kind"] = json!("audit");
            view
        }
        Resolved::Lifecycle(event) => lifecycle_json(event),
    };
    object["id"] = json!(format!("{site}:{}", entry.seq));
    object["site"] = json!(site);
    object["seq"] = json!(entry.seq);
    object
}

fn lifecycle_json(event: &FeedEvent) -> Value {
    let details = match &event.kind {
        FeedKind::Audit { .. } => Value::Null,
        FeedKind::SessionCreated {
            session,
            client_addr,
        } => json!({"session_id": session.session_id, "user_id": session.user_id,
            "client_addr": client_addr.map(|a| a.to_string())}),
        FeedKind::SessionEnded { session, reason } => json!({"session_id": session.session_id,
            "user_id": session.user_id, "reason": reason.as_str()}),
        FeedKind::ConnectionOpened(c) | FeedKind::ConnectionClosed(c) => json!({
            "conn_id": c.conn_id, "session_id": c.session.session_id,
            "user_id": c.session.user_id, "node": &*c.node}),
        FeedKind::ChannelOpened(c) | FeedKind::ChannelClosed(c) => json!({
            "channel_id": c.channel_id, "user_id": c.user_id, "protocol": c.protocol,
            "node": &*c.node}),
    };
    json!({
        "kind": "lifecycle",
        "time": rfc3339_millis(event.time_ms),
        "action": event.kind.action().unwrap_or_default(),
        "target": event.kind.user_address().unwrap_or_default(),
        "actor": Value::Null,
        "outcome": "ok",
        "details": details,
    })
}
