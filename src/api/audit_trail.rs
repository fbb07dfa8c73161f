//! How the api's handlers make audit events, and the one place refused admin calls are
//! recorded.
//!
//! A handler that changes something makes its event with [`Trail::event`] (actor from the
//! caller, the client's address, the serving site and node) and hands it to the store call that
//! makes the change, so the two share one entry. The [`record_refusals`] layer, around every
//! matched admin route, then records one `auth.refused` event (`RecordAudit`) for an answer of
//! 401 or 403 whose handler recorded none itself (a refusal at apply is recorded by its change's
//! own event), and counts every event by action and outcome for `/metrics`.
//!
//! Refusals of calls without valid credentials are bounded: at most [`REFUSALS_PER_SECOND`]
//! events a second per node; the refusals over the bound are counted and the next event
//! recorded carries their number (`details.coalesced`), so a flood of bad tokens cannot fill
//! the site's log while none of it goes unseen.
//!
//! Owns no state but that bound; the events' content rules (no secret) are the handlers'.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;

use super::ApiState;
use crate::iam::Caller;
use crate::model::audit::{Actor, NewAuditEvent, Outcome};

/// At most this many `auth.refused` events a second on one node; the others are coalesced.
pub const REFUSALS_PER_SECOND: u32 = 20;

/// The longest a refusal's answer waits for its event to commit (it changes nothing, so a site
/// group that cannot commit now does not hold the refusal back further).
const REFUSAL_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// The largest error body read to name a refusal's reason.
const MAX_REFUSAL_BODY: usize = 16 * 1024;

/// Routes that are not admin routes: public ones, and a user's own session and sockets.
const NOT_ADMIN: &[&str] = &[
    "/healthcheck",
    "/metrics",
    "/openapi.json",
    "/rest/v1/iam/sessions",
    "/rest/v1/ws",
    "/jmap",
];

/// What one request's handler did about the trail, shared with the layer around it.
#[derive(Clone, Default)]
pub struct RequestTrail(Arc<Mutex<TrailState>>);

#[derive(Default)]
struct TrailState {
    /// The caller, once authenticated.
    actor: Option<Actor>,
    /// The action of the event the handler made, if it made one.
    action: Option<String>,
}

impl RequestTrail {
    /// Notes the authenticated caller (for the event of a later refusal).
    pub fn caller(&self, caller: &Caller) {
        if let Ok(mut state) = self.0.lock() {
            state.actor = Some(caller.actor());
        }
    }

    fn made(&self, action: &str) {
        if let Ok(mut state) = self.0.lock() {
            state.action = Some(action.to_string());
        }
    }

    fn taken(&self) -> (Option<Actor>, Option<String>) {
        match self.0.lock() {
            Ok(mut state) => (state.actor.take(), state.action.take()),
            Err(_) => (None, None),
        }
    }
}

/// A handler's way to make its audit events: the client's address and the request's trail.
pub struct Trail {
    remote: Option<IpAddr>,
    request: Option<RequestTrail>,
}

impl<S: Send + Sync> FromRequestParts<S> for Trail {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self {
            remote: remote_of(parts),
            request: parts.extensions.get::<RequestTrail>().cloned(),
        })
    }
}

fn remote_of(parts: &Parts) -> Option<IpAddr> {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_canonical())
}

impl Trail {
    /// The event of `action` on `target` by `caller`, served here now. A call another site
    /// forwarded is marked with that site in `details.federated_from`.
    pub fn event(
        &self,
        state: &ApiState,
        caller: &Caller,
        action: &str,
        target: &str,
    ) -> NewAuditEvent {
        if let Some(request) = &self.request {
            request.made(action);
        }
        let event = NewAuditEvent::new(
            &state.federation.sites.current,
            &state.node_label,
            caller.actor(),
            action,
            target,
        )
        .with_remote(self.remote);
        match caller {
            Caller::Federated { from_site, .. } => {
                event.detail("federated_from", from_site.as_str())
            }
            _ => event,
        }
    }
}

/// Makes a change that is no site entry (a certificate reload on every node, a membership
/// change), then records `event` with the change's outcome. The site group must be able to
/// commit before the change is made (a read barrier), so a node cut off from its site refuses
/// it; an event that cannot be recorded afterwards is answered 503, naming the change made.
pub async fn recorded_after<T>(
    state: &ApiState,
    event: NewAuditEvent,
    change: impl std::future::Future<Output = Result<T, super::ApiError>>,
) -> Result<T, super::ApiError> {
    state.site.read(|_, _| ()).await?;
    let result = change.await;
    let event = match &result {
        Ok(_) => event.with_outcome(Outcome::Ok),
        Err(e) => {
            let outcome = outcome_of(e.status().as_u16());
            event.with_outcome(outcome).detail("error", e.to_string())
        }
    };
    let action = event.action.clone();
    if let Err(e) = state.site.record_audit(event).await {
        return Err(super::ApiError::Unavailable(format!(
            "the change ({action}) was made, but its audit event could not be recorded: {e}"
        )));
    }
    result
}

/// The bound on refusal events: this second's count, and the refusals not recorded since the
/// last one that was.
#[derive(Default)]
pub struct RefusalBound(Mutex<Bound>);

#[derive(Default)]
struct Bound {
    second: Option<Instant>,
    recorded: u32,
    coalesced: u64,
}

impl RefusalBound {
    /// `Some(n)`: record this refusal, with the `n` refusals coalesced before it; `None`: over
    /// the bound, counted for the next one.
    fn admit(&self) -> Option<u64> {
        let Ok(mut bound) = self.0.lock() else {
            return Some(0);
        };
        let now = Instant::now();
        if bound
            .second
            .is_none_or(|s| now.duration_since(s).as_secs() >= 1)
        {
            bound.second = Some(now);
            bound.recorded = 0;
        }
        if bound.recorded >= REFUSALS_PER_SECOND {
            bound.coalesced += 1;
            return None;
        }
        bound.recorded += 1;
        Some(std::mem::take(&mut bound.coalesced))
    }
}

/// The layer's state: the api's, and the node's bound on refusal events.
#[derive(Clone)]
pub struct RefusalLayer {
    pub api: ApiState,
    pub bound: Arc<RefusalBound>,
}

fn is_admin_route(path: &str) -> bool {
    !NOT_ADMIN.iter().any(|prefix| {
        path == *prefix
            || path
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/'))
    })
}

/// Around every matched route: gives the handler its [`RequestTrail`], counts the event it
/// made, and records `auth.refused` for a 401 or 403 of an admin route it did not record.
pub async fn record_refusals(
    State(layer): State<RefusalLayer>,
    mut request: Request,
    next: Next,
) -> Response {
    let trail = RequestTrail::default();
    request.extensions_mut().insert(trail.clone());
    let method = request.method().to_string();
    let path = request.uri().path().to_string();
    let remote = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_canonical());
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let (actor, action) = trail.taken();
    if let Some(action) = action {
        layer
            .api
            .telemetry
            .audit_event(&action, outcome_of(status).name());
        return response;
    }
    if !matches!(status, 401 | 403) || !is_admin_route(&path) {
        return response;
    }
    let Some(coalesced) = layer.bound.admit() else {
        return response;
    };
    let (response, message) = with_message(response).await;
    let mut event = NewAuditEvent::new(
        &layer.api.federation.sites.current,
        &layer.api.node_label,
        actor.unwrap_or(Actor::None),
        "auth.refused",
        &format!("{method} {path}"),
    )
    .with_remote(remote)
    .with_outcome(Outcome::Refused)
    .detail("status", status)
    .detail("message", message);
    if coalesced > 0 {
        event = event.detail("coalesced", coalesced);
    }
    let recorded = tokio::time::timeout(REFUSAL_WAIT, layer.api.site.record_audit(event)).await;
    match recorded {
        Ok(Ok(_)) => layer.api.telemetry.audit_event("auth.refused", "refused"),
        Ok(Err(e)) => tracing::warn!(error = %e, "could not record a refused call's audit event"),
        Err(_) => tracing::warn!("a refused call's audit event is not committed yet; answering"),
    }
    response
}

/// The outcome an answer's status shows.
fn outcome_of(status: u16) -> Outcome {
    match status {
        200..=399 => Outcome::Ok,
        401 | 403 => Outcome::Refused,
        _ => Outcome::Failed,
    }
}

/// The error answer's `message` (the contract's body), and the answer rebuilt.
async fn with_message(response: Response) -> (Response, String) {
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_REFUSAL_BODY)
        .await
        .unwrap_or_default();
    let message = serde_json::from_slice::<serde_json::Value>(&bytes)
        .ok()
        .and_then(|v| {
            v.get("message")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_default();
    (Response::from_parts(parts, Body::from(bytes)), message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_and_own_session_routes_are_not_admin_routes() {
        for path in [
            "/healthcheck",
            "/healthcheck/checks/x",
            "/metrics",
            "/rest/v1/iam/sessions/current",
            "/jmap/ws",
        ] {
            assert!(!is_admin_route(path), "{path}");
        }
        for path in [
            "/users/a@b",
            "/rest/v1/audit",
            "/servers/channels",
            "/healthchecker",
        ] {
            assert!(is_admin_route(path), "{path}");
        }
    }

    #[test]
    fn refusals_over_the_bound_are_coalesced_into_the_next_event() {
        let bound = RefusalBound::default();
        for _ in 0..REFUSALS_PER_SECOND {
            assert_eq!(bound.admit(), Some(0));
        }
        assert_eq!(bound.admit(), None);
        assert_eq!(bound.admit(), None);
        if let Ok(mut b) = bound.0.lock() {
            b.second = Instant::now().checked_sub(std::time::Duration::from_secs(2));
        }
        assert_eq!(bound.admit(), Some(2));
    }
}
