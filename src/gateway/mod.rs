//! The websocket gateway: client sockets of a session, registered in the site group while open
//! and closed on every node as soon as that node applies the end of their session.
//!
//! Owns this node's sockets ([`LocalSockets`]) and their registration; reads sessions, never
//! writes them. The directory is not its business: a user's end reaches it as session ends.

pub mod jmap;
pub mod proxy;
pub mod sockets;
pub mod websocket;

use std::sync::Arc;
use std::time::Duration;

use sessionplane_cluster::Liveness;
use tokio::sync::watch;
use uuid::Uuid;

pub use sockets::LocalSockets;

use crate::model::{CloseReason, Connection, NewConnection, Pid, Session};
use crate::state::{SiteStore, StoreError};

/// Close code for a message over `max_message_bytes` (RFC 6455 §7.4.1, Message Too Big).
pub const MESSAGE_TOO_BIG: u16 = 1009;

/// Whether a websocket read failed on a message (or a frame) over the size limit: the socket
/// is then closed with [`MESSAGE_TOO_BIG`] rather than dropped.
pub fn too_big(error: &axum::Error) -> bool {
    use std::error::Error;
    use tungstenite::error::{CapacityError, Error as WsError};
    matches!(
        error.source().and_then(|e| e.downcast_ref::<WsError>()),
        Some(WsError::Capacity(CapacityError::MessageTooLong { .. }))
    )
}

/// How the gateway treats its sockets.
#[derive(Clone, Debug)]
pub struct GatewaySettings {
    /// The server pings every socket this often.
    pub ping_interval: Duration,
    /// A socket that sent nothing (not even a pong) for this long is dropped.
    pub idle_timeout: Duration,
    /// A send that does not complete in this time drops the socket (a client that stopped
    /// reading cannot make the server buffer for it).
    pub send_timeout: Duration,
    /// The largest message a client may send.
    pub max_message_bytes: usize,
    /// Connections of a node unreachable for this long are forgotten.
    pub reap_dead_node_after: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("the session is closed")]
    SessionClosed,
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub struct Gateway {
    pub site: SiteStore,
    pub sockets: Arc<LocalSockets>,
    pub liveness: Liveness,
    /// `name@host`, as listings show the node.
    pub node_label: String,
    pub settings: GatewaySettings,
    pub stop: watch::Receiver<bool>,
}

impl Gateway {
    /// Whether the connection's holder is up, in the incarnation that registered it, and (when
    /// it is this node) still holds it.
    pub fn is_pid_alive(&self, connection: &Connection) -> bool {
        let me = self.liveness.me();
        let pid = connection.pid;
        if pid.node_id == me.node_id {
            return pid.incarnation == me.incarnation
                && self
                    .sockets
                    .holds(connection.session_id, connection.conn_id);
        }
        self.liveness.is_up_as(pid.node_id, pid.incarnation)
    }

    /// Registers a new socket of `session` in the site group. It is held here first, so that
    /// an end of the session applied meanwhile reaches it.
    pub async fn register(
        self: &Arc<Self>,
        session: &Session,
    ) -> Result<Registration, GatewayError> {
        let me = self.liveness.me();
        let conn_id = Uuid::now_v7();
        let closed = self.sockets.hold(session.session_id, conn_id);
        let mut registration = Registration {
            gateway: self.clone(),
            session_id: session.session_id,
            conn_id,
            closed,
            recorded: false,
        };
        let new = NewConnection {
            conn_id,
            session_id: session.session_id,
            node: self.node_label.clone(),
            pid: Pid {
                node_id: me.node_id,
                sequence: self.sockets.next_sequence(),
                incarnation: me.incarnation,
            },
        };
        match self.site.open_connection(new).await? {
            Some(_) => {
                registration.recorded = true;
                Ok(registration)
            }
            None => Err(GatewayError::SessionClosed),
        }
    }
}

/// One open socket's registration: released here and in the site group when dropped.
pub struct Registration {
    gateway: Arc<Gateway>,
    pub session_id: Uuid,
    pub conn_id: Uuid,
    pub closed: sockets::Closed,
    recorded: bool,
}

impl Registration {
    /// Marks the registration as already removed with its session.
    pub fn session_ended(&mut self, _reason: CloseReason) {
        self.recorded = false;
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.gateway.sockets.release(self.session_id, self.conn_id);
        // A stopping node leaves its records to the leader's reaper: its groups are going away.
        if !self.recorded || *self.gateway.stop.borrow() {
            return;
        }
        let (site, conn_id) = (self.gateway.site.clone(), self.conn_id);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = site.close_connection(conn_id).await {
                    tracing::debug!(%conn_id, error = %e, "deregistration failed; the sweeper retries");
                }
            });
        }
    }
}
