//! JMAP push channels: the websocket of RFC 8887 (subprotocol `jmap`; `Core/echo` answered)
//! and the event source of RFC 8620 §7.3 (state then pings). Each is registered as a channel
//! (protocol `JMAP`) once its user is known, and ends when an administrator disconnects it: a
//! close frame for the websocket, the end of the stream for the event source.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use axum::response::sse::Event;
use serde_json::{json, Value};

use crate::mail::ChannelHandle;

/// Close code for a channel an administrator disconnected (policy violation).
pub const DISCONNECTED: u16 = 1008;
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves a JMAP websocket until the client leaves or the channel is disconnected.
pub async fn serve_websocket(mut socket: WebSocket, mut channel: ChannelHandle, idle: Duration) {
    loop {
        tokio::select! {
            _ = channel.disconnected() => {
                let frame = CloseFrame { code: DISCONNECTED, reason: "disconnected by an administrator".into() };
                let _ = tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Close(Some(frame)))).await;
                return;
            }
            incoming = tokio::time::timeout(idle, socket.recv()) => {
                let message = match incoming {
                    Ok(Some(Ok(message))) => message,
                    Ok(Some(Err(e))) if super::too_big(&e) => {
                        let frame = CloseFrame { code: super::MESSAGE_TOO_BIG, reason: "message too big".into() };
                        let _ = tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Close(Some(frame)))).await;
                        return;
                    }
                    _ => return,
                };
                let reply = match message {
                    Message::Text(text) => answer(&text),
                    Message::Binary(_) => Some(request_error("notJSON", "binary messages are not JMAP")),
                    Message::Close(_) => return,
                    Message::Ping(_) | Message::Pong(_) => None,
                };
                if let Some(reply) = reply {
                    let sent = tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Text(reply.to_string().into()))).await;
                    if !matches!(sent, Ok(Ok(()))) {
                        return;
                    }
                }
            }
        }
    }
}

fn request_error(kind: &str, detail: &str) -> Value {
    json!({"@type": "RequestError", "type": format!("urn:ietf:params:jmap:error:{kind}"),
           "status": 400, "detail": detail})
}

/// The answer to one client message; `None` for messages that need none.
pub fn answer(text: &str) -> Option<Value> {
    let Ok(message) = serde_json::from_str::<Value>(text) else {
        return Some(request_error("notJSON", "the message is not JSON"));
    };
    match message.get("@type").and_then(Value::as_str) {
        Some("Request") => Some(respond(&message)),
        Some("WebSocketPushEnable") | Some("WebSocketPushDisable") => None,
        _ => Some(request_error("notRequest", "expected a Request object")),
    }
}

fn respond(request: &Value) -> Value {
    let Some(calls) = request.get("methodCalls").and_then(Value::as_array) else {
        return request_error("notRequest", "a Request needs methodCalls");
    };
    let responses: Vec<Value> = calls
        .iter()
        .map(|call| match call.as_array().map(Vec::as_slice) {
            Some([Value::String(name), arguments, Value::String(id)]) if name == "Core/echo" => {
                json!(["Core/echo", arguments, id])
            }
            Some([Value::String(_), _, Value::String(id)]) => {
                json!(["error", {"type": "unknownMethod"}, id])
            }
            _ => json!(["error", {"type": "invalidArguments"}, ""]),
        })
        .collect();
    let mut response =
        json!({"@type": "Response", "methodResponses": responses, "sessionState": "0"});
    if let Some(id) = request.get("id") {
        response["requestId"] = id.clone();
    }
    response
}

/// What an event source sends: the state first, then a ping every `ping` (if any).
pub struct EventSourceStream {
    pub channel: ChannelHandle,
    pub ping: Option<Duration>,
    pub close_after_state: bool,
    pub started: bool,
}

impl EventSourceStream {
    /// The next event, or `None` when the stream must end.
    pub async fn next_event(&mut self) -> Option<Event> {
        if !self.started {
            self.started = true;
            let state = json!({"@type": "StateChange", "changed": {}});
            return Some(Event::default().event("state").data(state.to_string()));
        }
        if self.close_after_state {
            return None;
        }
        let ping = async {
            match self.ping {
                Some(every) => tokio::time::sleep(every).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = self.channel.disconnected() => None,
            _ = ping => {
                let interval = self.ping.map_or(0, |p| p.as_secs());
                Some(Event::default().event("ping").data(json!({"interval": interval}).to_string()))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_unknown_methods_and_bad_requests() {
        let request = r#"{"@type":"Request","id":"r1","using":["urn:ietf:params:jmap:core"],
            "methodCalls":[["Core/echo",{"hello":true},"c1"],["Mailbox/get",{},"c2"]]}"#;
        let answer = answer(request).unwrap();
        assert_eq!(answer["@type"], "Response");
        assert_eq!(answer["requestId"], "r1");
        assert_eq!(
            answer["methodResponses"][0],
            json!(["Core/echo", {"hello": true}, "c1"])
        );
        assert_eq!(
            answer["methodResponses"][1],
            json!(["error", {"type": "unknownMethod"}, "c2"])
        );
        assert_eq!(
            super::answer("not json").unwrap()["type"],
            "urn:ietf:params:jmap:error:notJSON"
        );
        assert_eq!(
            super::answer(r#"{"@type":"Other"}"#).unwrap()["type"],
            "urn:ietf:params:jmap:error:notRequest"
        );
        assert!(super::answer(r#"{"@type":"WebSocketPushEnable"}"#).is_none());
    }
}
