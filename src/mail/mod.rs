//! Mail protocol listeners: IMAP (`imap`) and SMTP submission (`smtp`), plain with STARTTLS or
//! implicit TLS. They authenticate users against the directory and register each authenticated
//! connection as a channel in the site group, through [`MailBackend`]; they know nothing of
//! Raft or HTTP. A channel ends when its client leaves or when an administrator disconnects it
//! ([`ChannelHandle::disconnected`]): IMAP says `* BYE`, SMTP `421 4.7.0`, then the socket closes.
//! With mail servers upstream (`[mail.upstream]`), an authenticated channel is logged in there
//! too (`upstream`) and relayed to them for its life (`relay`); a disconnect then also logs
//! out of the server and closes its connection.

pub mod backend;
pub mod channels;
pub mod imap;
pub mod lines;
pub mod listener;
pub mod relay;
pub mod sasl;
pub mod smtp;
pub mod stream;
#[cfg(test)]
pub(crate) mod testing;
pub mod upstream;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use uuid::Uuid;

pub use channels::Disconnect;
pub use stream::MailStream;

pub use crate::model::{Endpoint, Protocol};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A user who proved who they are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MailUser {
    /// `login@domain`.
    pub username: String,
    pub user_id: Uuid,
}

/// `text` fit for one protocol line: control characters (a line break above all) become spaces.
pub fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Why an authenticated connection could not become a channel.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// A lock in force keeps the user (its domain, its network) out; the lock's message.
    #[error("{0}")]
    Locked(String),
    /// The site cannot register it now.
    #[error("the channel cannot be registered now: {0}")]
    Unavailable(String),
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// Unknown user or domain, disabled user, wrong password: one answer for all.
    #[error("invalid credentials")]
    Rejected,
    /// Too many failed logins for this user, site-wide.
    #[error("too many failed logins; retry in {retry_after_secs} s")]
    Banned { retry_after_secs: u64 },
    /// The node cannot check right now (no quorum, ...).
    #[error("authentication is unavailable: {0}")]
    Unavailable(String),
}

/// What a protocol session registers once its user has authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelOpen {
    pub protocol: Protocol,
    pub endpoint: Endpoint,
    pub user: MailUser,
    pub remote: SocketAddr,
    pub encrypted: bool,
    /// James's `protocolSpecificInformation` (IMAP: the ID the client sent, the selected
    /// mailbox; SMTP: the EHLO name; ...).
    pub info: BTreeMap<String, String>,
}

/// An open channel's registration: dropping it deregisters the channel.
pub struct ChannelHandle {
    pub channel_id: Uuid,
    disconnect: mpsc::Receiver<Disconnect>,
    /// Kept from the disconnect until the handle drops, after the protocol said goodbye and
    /// the socket closed: whoever waits for this channel to close hears it then.
    _done: Option<mpsc::Sender<()>>,
    _registration: Box<dyn Send + Sync>,
}

impl ChannelHandle {
    /// `disconnect` receives once when the channel must end; `registration` is dropped (and so
    /// deregisters) with the handle.
    pub fn new(
        channel_id: Uuid,
        disconnect: mpsc::Receiver<Disconnect>,
        registration: Box<dyn Send + Sync>,
    ) -> Self {
        Self {
            channel_id,
            disconnect,
            _done: None,
            _registration: registration,
        }
    }

    /// Resolves when an administrator (or the end of the user) disconnects this channel.
    /// Cancel-safe: use it in `select!` next to the client's reads.
    pub async fn disconnected(&mut self) {
        match self.disconnect.recv().await {
            Some(order) => self._done = order.done,
            None => std::future::pending::<()>().await,
        }
    }
}

/// What a protocol session needs from the node.
pub trait MailBackend: Send + Sync + 'static {
    /// Checks `username` (`login@domain`) and `password` off the async runtime; failures count
    /// toward the login ban.
    fn authenticate<'a>(
        &'a self,
        username: &'a str,
        password: &'a str,
        remote: SocketAddr,
    ) -> BoxFuture<'a, Result<MailUser, AuthError>>;

    /// Registers an authenticated channel in the site group.
    fn open_channel(&self, channel: ChannelOpen)
        -> BoxFuture<'_, Result<ChannelHandle, OpenError>>;
}

/// How one mail listener behaves.
#[derive(Clone)]
pub struct ProtocolSettings {
    /// The name the server greets with.
    pub hostname: String,
    /// For STARTTLS on a plain listener; `None`: STARTTLS is not offered.
    pub tls: Option<TlsAcceptor>,
    /// Whether LOGIN / AUTH are taken before TLS on a plain listener.
    pub allow_plaintext_auth: bool,
    /// A connection that sends nothing for this long is closed (IDLE excepted, which has its
    /// own limit of 29 minutes as RFC 2177 suggests).
    pub idle_timeout: Duration,
    /// The longest command line taken; a longer one is refused and the connection closed.
    pub max_line_bytes: usize,
    /// The largest literal (IMAP) or AUTH payload taken.
    pub max_literal_bytes: usize,
    /// A TLS handshake (implicit or STARTTLS) that does not finish in this time is dropped.
    pub handshake_timeout: Duration,
    /// The mail servers an authenticated channel is relayed to (`[mail.upstream]`).
    pub upstream: Option<Arc<upstream::MailUpstream>>,
    /// The largest literal relayed to the IMAP server (an APPEND's message).
    pub max_message_bytes: u64,
}
