//! A small application to put behind sessionplane's reverse proxy: every path answers with the
//! identity the proxy told it (the `X-Sessionplane-*` headers) as JSON, and `/ws` is a
//! websocket that echoes each message. The compose deployment runs it behind `/app/`.
//!
//! Usage: `cargo run --example whoami [-- 0.0.0.0:8000]`

use std::collections::BTreeMap;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, Uri};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

async fn whoami(uri: Uri, headers: HeaderMap) -> Json<serde_json::Value> {
    let identity: BTreeMap<&str, &str> = headers
        .iter()
        .filter(|(name, _)| {
            let name = name.as_str();
            name.starts_with("x-sessionplane-") || name.starts_with("x-forwarded-")
        })
        .map(|(name, value)| (name.as_str(), value.to_str().unwrap_or("?")))
        .collect();
    Json(serde_json::json!({ "path": uri.path(), "identity": identity }))
}

async fn echo(upgrade: WebSocketUpgrade) -> impl IntoResponse {
    upgrade.on_upgrade(|mut socket: WebSocket| async move {
        while let Some(Ok(message)) = socket.recv().await {
            let data = matches!(message, Message::Text(_) | Message::Binary(_));
            if matches!(message, Message::Close(_)) || (data && socket.send(message).await.is_err())
            {
                return;
            }
        }
    })
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listen = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "0.0.0.0:8000".into());
    let app = Router::new().route("/ws", get(echo)).fallback(get(whoami));
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    println!("whoami listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await
}
