//! A real websocket client (tokio-tungstenite) for the gateway, `GET /rest/v1/ws`.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How a client presents its token.
#[derive(Clone, Copy, Debug)]
pub enum Auth {
    Bearer,
    Cookie,
    Query,
}

fn ws_url(api: &str) -> String {
    format!("{}/rest/v1/ws", api.replacen("http://", "ws://", 1))
}

/// Opens a socket, or returns the HTTP status the server refused it with.
pub async fn try_open(api: &str, token: &str, auth: Auth) -> Result<Socket, u16> {
    let url = match auth {
        Auth::Query => format!("{}?token={token}", ws_url(api)),
        _ => ws_url(api),
    };
    let mut request = url.into_client_request().expect("ws request");
    let headers = request.headers_mut();
    match auth {
        Auth::Bearer => {
            headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        Auth::Cookie => {
            headers.insert("cookie", format!("RSession={token}").parse().unwrap());
        }
        Auth::Query => {}
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(e) => panic!("websocket connect failed: {e}"),
    }
}

pub async fn open(api: &str, token: &str, auth: Auth) -> Socket {
    match try_open(api, token, auth).await {
        Ok(socket) => socket,
        Err(status) => panic!("websocket refused with {status}"),
    }
}

/// The next text message as JSON, skipping control frames; `None` when the socket closed.
pub async fn next_json(socket: &mut Socket, within: Duration) -> Option<serde_json::Value> {
    loop {
        let message = tokio::time::timeout(within, socket.next())
            .await
            .expect("a message in time")?
            .ok()?;
        match message {
            Message::Text(text) => return Some(serde_json::from_str(&text).expect("JSON text")),
            Message::Close(_) => return None,
            _ => continue,
        }
    }
}

/// Sends `{"type":"ping"}` and expects `{"type":"pong"}`.
pub async fn ping(socket: &mut Socket) {
    socket
        .send(Message::Text(r#"{"type":"ping"}"#.into()))
        .await
        .expect("send ping");
    let answer = next_json(socket, Duration::from_secs(5)).await;
    assert_eq!(answer, Some(serde_json::json!({"type": "pong"})));
}

/// Reads until the server closes: the `session_closed` reason it gave and the close code.
pub async fn closed_by_server(
    socket: &mut Socket,
    within: Duration,
) -> (Option<String>, Option<u16>) {
    let mut reason = None;
    loop {
        let message = match tokio::time::timeout(within, socket.next()).await {
            Ok(Some(Ok(message))) => message,
            Ok(_) => return (reason, None),
            Err(_) => panic!("the server did not close the socket within {within:?}"),
        };
        match message {
            Message::Text(text) => {
                let value: serde_json::Value = serde_json::from_str(&text).expect("JSON text");
                if value["type"] == "session_closed" {
                    reason = value["reason"].as_str().map(str::to_string);
                }
            }
            Message::Close(frame) => return (reason, frame.map(|f| u16::from(f.code))),
            _ => {}
        }
    }
}
