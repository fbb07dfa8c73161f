//! Websockets through the proxy: the client's socket ends here and a second one goes to the
//! upstream; frames are relayed one for one both ways (text, binary, ping, pong, close with its
//! code). The client's socket is registered as a connection of its session, like a gateway
//! socket, and when the session ends (kill, logout, expiry, user disabled, lock) both sides are
//! closed: the client with the reason's close code, the upstream with 1001 going away.

use std::time::Duration;

use axum::extract::ws::{self, WebSocket};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::Uri;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::headers::{self as proxy_headers, Forwarded, Identity};
use super::{ProxyError, Route};
use crate::gateway::Registration;
use crate::model::CloseReason;

/// Close code for the side the proxy closes for its own reasons (RFC 6455 §7.4.1).
const GOING_AWAY: u16 = 1001;

/// The handshake headers each side makes for itself, never relayed.
const HANDSHAKE: &[&str] = &[
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
    "sec-websocket-accept",
];

pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The upstream's side of a proxied websocket.
pub struct UpstreamSocket {
    socket: WebSocketStream<Box<dyn Io>>,
    /// The subprotocol the upstream chose, for the client's `101`.
    pub protocol: Option<HeaderValue>,
}

impl Route {
    /// Opens the upstream's websocket for a client's upgrade request (its URI and headers),
    /// with the caller's identity: before the client gets its `101`, so that an upstream that
    /// refuses or cannot be reached is a 502 to the client.
    pub async fn connect_websocket(
        &self,
        uri: &Uri,
        mut headers: HeaderMap,
        identity: &Identity,
        forwarded: &Forwarded,
    ) -> Result<UpstreamSocket, ProxyError> {
        let target = self.upstream_uri(uri)?;
        proxy_headers::to_upstream(&mut headers, identity, forwarded);
        for name in HANDSHAKE {
            headers.remove(*name);
        }
        let ws_uri = websocket_uri(&target)?;
        let mut request = ws_uri
            .into_client_request()
            .map_err(|e| ProxyError::BadGateway(format!("the upstream's websocket URI: {e}")))?;
        for (name, value) in headers.iter() {
            request.headers_mut().append(name.clone(), value.clone());
        }
        let io = self.upstream.connect().await?;
        let largest = self.config.max_message_bytes;
        // The upstream's half of a proxied socket, as small as the client's half.
        let config = WebSocketConfig::default()
            .max_message_size(Some(largest))
            .max_frame_size(Some(largest))
            .read_buffer_size(4 * 1024)
            .write_buffer_size(0)
            .max_write_buffer_size(largest.saturating_mul(2));
        let within = Duration::from_millis(self.config.response_timeout_ms);
        let handshake = tokio_tungstenite::client_async_with_config(request, io, Some(config));
        let (socket, answer) = match tokio::time::timeout(within, handshake).await {
            Err(_) => {
                return Err(ProxyError::GatewayTimeout(format!(
                    "the upstream of {} did not take the websocket within {within:?}",
                    self.config.prefix
                )))
            }
            Ok(Err(e)) => {
                return Err(ProxyError::BadGateway(format!(
                    "the upstream of {} refused the websocket: {e}",
                    self.config.prefix
                )))
            }
            Ok(Ok(opened)) => opened,
        };
        Ok(UpstreamSocket {
            socket,
            protocol: answer
                .headers()
                .get(header::SEC_WEBSOCKET_PROTOCOL)
                .cloned(),
        })
    }
}

fn websocket_uri(target: &Uri) -> Result<Uri, ProxyError> {
    let scheme = match target.scheme_str() {
        Some("https") => "wss",
        _ => "ws",
    };
    let authority = target.authority().map_or("", |a| a.as_str());
    let path = target.path_and_query().map_or("/", |p| p.as_str());
    format!("{scheme}://{authority}{path}")
        .parse()
        .map_err(|_| ProxyError::BadPath("the request's path cannot be forwarded".into()))
}

/// Relays frames between the client and the upstream until one side closes, the session
/// ends, or the node stops.
pub async fn relay(
    mut client: WebSocket,
    upstream: UpstreamSocket,
    mut registration: Registration,
    send_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut upstream = upstream.socket;
    loop {
        tokio::select! {
            closing = registration.closed.recv() => {
                let reason = closing.as_ref().map_or(CloseReason::Revoked, |c| c.reason);
                registration.session_ended(reason);
                let to_client = ws::CloseFrame { code: reason.close_code(), reason: reason.as_str().into() };
                let _ = within(send_timeout, client.send(ws::Message::Close(Some(to_client)))).await;
                close_upstream(&mut upstream, "session ended", send_timeout).await;
                // Only now: whoever waits for this socket to close hears that it has.
                drop(closing);
                return;
            }
            from_client = client.recv() => {
                let Some(Ok(message)) = from_client else {
                    close_upstream(&mut upstream, "client gone", send_timeout).await;
                    return;
                };
                let closing = matches!(message, ws::Message::Close(_));
                let sent = within(send_timeout, upstream.send(to_upstream(message))).await;
                if closing || !sent {
                    return;
                }
            }
            from_upstream = upstream.next() => {
                let Some(Ok(message)) = from_upstream else {
                    let frame = ws::CloseFrame { code: GOING_AWAY, reason: "upstream gone".into() };
                    let _ = within(send_timeout, client.send(ws::Message::Close(Some(frame)))).await;
                    return;
                };
                let Some(message) = to_client(message) else { continue };
                let closing = matches!(message, ws::Message::Close(_));
                let sent = within(send_timeout, client.send(message)).await;
                if closing || !sent {
                    return;
                }
            }
            _ = stop.changed() => {
                let frame = ws::CloseFrame { code: GOING_AWAY, reason: "node shutting down".into() };
                let _ = within(send_timeout, client.send(ws::Message::Close(Some(frame)))).await;
                close_upstream(&mut upstream, "node shutting down", send_timeout).await;
                return;
            }
        }
    }
}

/// Whether `sending` finished, without error, in time.
async fn within<E>(
    timeout: Duration,
    sending: impl std::future::Future<Output = Result<(), E>>,
) -> bool {
    matches!(tokio::time::timeout(timeout, sending).await, Ok(Ok(())))
}

async fn close_upstream(upstream: &mut WebSocketStream<Box<dyn Io>>, why: &str, timeout: Duration) {
    let frame = CloseFrame {
        code: CloseCode::from(GOING_AWAY),
        reason: why.into(),
    };
    let _ = within(timeout, upstream.send(Message::Close(Some(frame)))).await;
}

fn to_upstream(message: ws::Message) -> Message {
    match message {
        ws::Message::Text(text) => Message::Text(text.as_str().into()),
        ws::Message::Binary(bytes) => Message::Binary(bytes),
        ws::Message::Ping(bytes) => Message::Ping(bytes),
        ws::Message::Pong(bytes) => Message::Pong(bytes),
        ws::Message::Close(frame) => Message::Close(frame.map(|f| CloseFrame {
            code: CloseCode::from(f.code),
            reason: f.reason.as_str().into(),
        })),
    }
}

fn to_client(message: Message) -> Option<ws::Message> {
    Some(match message {
        Message::Text(text) => ws::Message::Text(text.as_str().into()),
        Message::Binary(bytes) => ws::Message::Binary(bytes),
        Message::Ping(bytes) => ws::Message::Ping(bytes),
        Message::Pong(bytes) => ws::Message::Pong(bytes),
        Message::Close(frame) => ws::Message::Close(frame.map(|f| ws::CloseFrame {
            code: u16::from(f.code),
            reason: f.reason.as_str().into(),
        })),
        Message::Frame(_) => return None,
    })
}
