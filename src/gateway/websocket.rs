//! One client socket, from its upgrade to its close.
//!
//! The client may send `{"type":"ping"}` (answered `{"type":"pong"}`); the server pings at the
//! protocol level and drops a socket that has been silent past the idle timeout or that does not
//! take a message within the send timeout, so a dead or stalled client never makes the server
//! buffer for it. When the session ends, the client is told why and the socket closes with the
//! reason's code; a message over the size limit closes it with 1009.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;

use super::{too_big, GatewaySettings, Registration, MESSAGE_TOO_BIG};
use crate::model::CloseReason;

/// Close code for a socket the server drops for its own reasons (idle, shutting down).
const GOING_AWAY: u16 = 1001;

enum Outcome {
    Continue,
    Stop,
}

pub async fn serve(
    mut socket: WebSocket,
    mut registration: Registration,
    settings: GatewaySettings,
    mut stop: watch::Receiver<bool>,
) {
    let timeout = settings.send_timeout;
    let mut ping = tokio::time::interval_at(
        Instant::now() + settings.ping_interval,
        settings.ping_interval,
    );
    let mut last_heard = Instant::now();
    loop {
        let idle_deadline = last_heard + settings.idle_timeout;
        tokio::select! {
            closing = registration.closed.recv() => {
                let reason = closing.as_ref().map_or(CloseReason::Revoked, |c| c.reason);
                registration.session_ended(reason);
                let closed = json!({"type": "session_closed", "reason": reason.as_str()});
                if send(&mut socket, Message::Text(closed.to_string().into()), timeout).await {
                    close(&mut socket, reason.close_code(), reason.as_str(), timeout).await;
                }
                // Only now: whoever waits for this socket to close hears that it has.
                drop(closing);
                return;
            }
            incoming = socket.recv() => {
                let message = match incoming {
                    Some(Ok(message)) => message,
                    Some(Err(e)) if too_big(&e) => {
                        close(&mut socket, MESSAGE_TOO_BIG, "message too big", timeout).await;
                        return;
                    }
                    _ => return,
                };
                last_heard = Instant::now();
                if let Outcome::Stop = answer(&mut socket, message, timeout).await {
                    return;
                }
            }
            _ = ping.tick() => {
                if !send(&mut socket, Message::Ping(Default::default()), timeout).await {
                    return;
                }
            }
            _ = tokio::time::sleep_until(idle_deadline) => {
                close(&mut socket, GOING_AWAY, "idle timeout", timeout).await;
                return;
            }
            _ = stop.changed() => {
                close(&mut socket, GOING_AWAY, "node shutting down", timeout).await;
                return;
            }
        }
    }
}

async fn answer(socket: &mut WebSocket, message: Message, timeout: Duration) -> Outcome {
    let reply = match message {
        Message::Text(text) => {
            let kind = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_owned));
            match kind.as_deref() {
                Some("ping") => json!({"type": "pong"}),
                _ => json!({"type": "error", "message": "expected {\"type\":\"ping\"}"}),
            }
        }
        Message::Binary(_) => json!({"type": "error", "message": "binary messages are not taken"}),
        Message::Close(_) => return Outcome::Stop,
        Message::Ping(_) | Message::Pong(_) => return Outcome::Continue,
    };
    match send(socket, Message::Text(reply.to_string().into()), timeout).await {
        true => Outcome::Continue,
        false => Outcome::Stop,
    }
}

/// Whether the message went out in time.
async fn send(socket: &mut WebSocket, message: Message, timeout: Duration) -> bool {
    matches!(
        tokio::time::timeout(timeout, socket.send(message)).await,
        Ok(Ok(()))
    )
}

async fn close(socket: &mut WebSocket, code: u16, reason: &str, timeout: Duration) {
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    send(socket, Message::Close(Some(frame)), timeout).await;
}
