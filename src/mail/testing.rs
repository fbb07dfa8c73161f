//! For the protocols' tests: a backend that knows one user, settings without TLS, and a
//! conversation over a real loopback connection that ends when the server does.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::listener::Serve;
use super::OpenError;
use super::ProtocolSettings;
use super::{AuthError, BoxFuture, ChannelHandle, ChannelOpen, MailBackend, MailStream, MailUser};

pub const USER: &str = "alice@example.com";
pub const PASSWORD: &str = "alice-password";

/// Knows [`USER`] with [`PASSWORD`]; channels open and are never disconnected.
pub struct OneUser;

impl MailBackend for OneUser {
    fn authenticate<'a>(
        &'a self,
        username: &'a str,
        password: &'a str,
        _remote: SocketAddr,
    ) -> BoxFuture<'a, Result<MailUser, AuthError>> {
        let known = username == USER && password == PASSWORD;
        Box::pin(async move {
            match known {
                true => Ok(MailUser {
                    username: USER.into(),
                    user_id: Uuid::nil(),
                }),
                false => Err(AuthError::Rejected),
            }
        })
    }

    fn open_channel(
        &self,
        _channel: ChannelOpen,
    ) -> BoxFuture<'_, Result<ChannelHandle, OpenError>> {
        let (keep, disconnect) = mpsc::channel(1);
        Box::pin(async move { Ok(ChannelHandle::new(Uuid::nil(), disconnect, Box::new(keep))) })
    }
}

/// Plaintext logins allowed, short bounds so that properties reach them.
pub fn settings(idle_timeout: Duration) -> Arc<ProtocolSettings> {
    Arc::new(ProtocolSettings {
        hostname: "test.host".into(),
        tls: None,
        allow_plaintext_auth: true,
        idle_timeout,
        max_line_bytes: 256,
        max_literal_bytes: 64,
        handshake_timeout: Duration::from_secs(1),
        upstream: None,
        max_message_bytes: 1024,
    })
}

/// How a conversation went: what the server said, and whether it ended within the time given.
pub struct Conversation {
    pub said: Vec<u8>,
    pub ended: bool,
}

/// Sends `input` (then closes the client's side unless `hold_open`) to a server running
/// `serve`, and collects what it says until it ends or `within` passes. A panic in the server
/// is a panic here.
pub async fn converse(
    serve: Serve,
    settings: Arc<ProtocolSettings>,
    input: &[u8],
    hold_open: bool,
    within: Duration,
) -> Conversation {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut client = TcpStream::connect(addr).await.unwrap();
    let (tcp, remote) = listener.accept().await.unwrap();
    let server = tokio::spawn(serve(
        MailStream::Plain(tcp),
        remote,
        settings,
        Arc::new(OneUser),
    ));
    let (mut read, mut write) = client.split();
    let talk = async {
        // The server may close first (a line too long): what it did not read is its business.
        let _ = write.write_all(input).await;
        if !hold_open {
            let _ = write.shutdown().await;
        }
        std::future::pending::<()>().await;
    };
    let mut said = Vec::new();
    let listen = async {
        let mut chunk = [0u8; 4096];
        loop {
            match read.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => said.extend_from_slice(&chunk[..n]),
            }
        }
    };
    let ended = tokio::time::timeout(within, async {
        tokio::select! {
            _ = talk => {}
            _ = listen => {}
        }
    })
    .await
    .is_ok();
    drop(client);
    let outcome = tokio::time::timeout(Duration::from_secs(5), server).await;
    if let Ok(Err(e)) = &outcome {
        std::panic::resume_unwind(Box::new(format!("the server panicked: {e}")));
    }
    Conversation {
        said,
        ended: ended && outcome.is_ok(),
    }
}

/// The server's lines, without their CRLF.
pub fn lines(said: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(said)
        .split("\r\n")
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// One runtime for every property of the mail modules (one a case would dominate their time).
static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
});

pub fn block_on<F: Future>(future: F) -> F::Output {
    RUNTIME.block_on(future)
}

/// A verb with its letters' case flipped where `flips` says.
pub fn recase(verb: &str, flips: &[bool]) -> String {
    verb.chars()
        .zip(flips.iter().chain(std::iter::repeat(&false)))
        .map(|(c, flip)| match flip {
            true => c.to_ascii_lowercase(),
            false => c,
        })
        .collect()
}
