//! Relaying an authenticated channel to its mail server, both ways, for the channel's life.
//!
//! Bytes travel as they come, through two buffers (4 KiB up, 16 KiB down), never a whole
//! message in memory. A
//! [`Dialect`] follows each direction's framing (IMAP's lines and literals, SMTP's replies and
//! message data) only as far as the relay needs: to refuse what it cannot carry, and to know
//! where it may speak to the client itself (between two of the server's responses) and to the
//! server (between two of the client's commands). The relay ends when either side leaves,
//! when the client is idle too long, or when the channel is disconnected: the client then
//! hears the dialect's goodbye (`* BYE`, `421 4.7.0`), the server its logout, and both sockets
//! close.

pub mod imap;
pub mod smtp;

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;

use super::ChannelHandle;

/// The buffer of the client's bytes: commands, and now and then a message's.
const BUFFER: usize = 4 * 1024;
/// The buffer of the server's bytes, which carry the messages: fewer reads and writes per
/// message, at 12 KiB more per channel.
const DOWN_BUFFER: usize = 16 * 1024;

/// How long the goodbye, the logout and the wait for a response to end may take at most.
const FAREWELL: Duration = Duration::from_secs(1);

/// Why the relay ends, as the dialect tells the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Goodbye {
    Disconnected,
    ServerLeft,
    Idle,
    LineTooLong,
    LiteralTooLarge,
}

/// One protocol's framing, as far as the relay follows it.
pub trait Dialect: Send {
    /// Takes bytes from the client: what goes on to the server is appended to `to_server`,
    /// the relay's own answers for the client to `to_client`. An error ends the channel.
    fn client_sent(
        &mut self,
        bytes: &[u8],
        to_server: &mut Vec<u8>,
        to_client: &mut Vec<u8>,
    ) -> Result<(), Goodbye>;

    /// Follows the server's bytes up to the first point where the relay may speak to the
    /// client: how many of them lead there, or `None` when none is in them.
    fn server_boundary(&mut self, bytes: &[u8]) -> Option<usize>;

    /// Whether the server's bytes so far end at such a point.
    fn server_at_boundary(&self) -> bool;

    /// Whether the client's bytes so far end between two commands.
    fn client_between_commands(&self) -> bool;

    /// How long the client may stay silent now (IMAP's IDLE is allowed longer).
    fn client_idle_limit(&self, normal: Duration) -> Duration;

    fn goodbye(&self, why: Goodbye) -> Vec<u8>;

    /// What ends the session with the server.
    fn logout(&self) -> &'static [u8];

    /// Whether the client asked the server to end the session (`LOGOUT`, `QUIT`): the server
    /// closing is then the end the client expects, with no goodbye of the relay's.
    fn client_logged_out(&self) -> bool;
}

/// How the relay ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    ClientLeft,
    ServerLeft,
    Disconnected,
    Idle,
    Refused(Goodbye),
    /// Disconnected in the middle of a write to one side: no goodbye can be said cleanly.
    Cut,
}

/// The two sides, and what each had sent that was read but not yet relayed.
pub struct Sides<C, S> {
    pub client: C,
    pub client_pending: Vec<u8>,
    pub server: S,
    pub server_pending: Vec<u8>,
}

/// Relays until the channel ends; then says goodbye to the client, logs out of the server and
/// closes both.
pub async fn relay<C, S, D>(
    sides: Sides<C, S>,
    channel: &mut ChannelHandle,
    mut dialect: D,
    idle: Duration,
) -> Ended
where
    C: AsyncRead + AsyncWrite + Send + Unpin,
    S: AsyncRead + AsyncWrite + Send + Unpin,
    D: Dialect,
{
    // Each side is read in the loop's select and written in a branch's body, never both at
    // once: the streams need no split (and its lock on every read and write).
    let (mut client, mut server) = (sides.client, sides.server);
    let mut link = Link {
        dialect: &mut dialect,
        for_client: Vec::new(),
        to_server: Vec::new(),
    };
    let ended = async {
        link.down(&mut client, &sides.server_pending).await?;
        link.up(&mut server, &mut client, &sides.client_pending)
            .await?;
        let mut up = vec![0u8; BUFFER];
        let mut down = vec![0u8; DOWN_BUFFER];
        // One timer for the channel's life, moved on when the client speaks: not one armed
        // and dropped for every chunk relayed.
        let quiet = tokio::time::sleep(link.dialect.client_idle_limit(idle));
        tokio::pin!(quiet);
        loop {
            tokio::select! {
                biased;
                _ = channel.disconnected() => return Err(Ended::Disconnected),
                read = server.read(&mut down) => match read {
                    Ok(0) | Err(_) => return Err(Ended::ServerLeft),
                    // A client that does not read holds this write: the disconnect still
                    // ends the channel.
                    Ok(n) => tokio::select! {
                        relayed = link.down(&mut client, &down[..n]) => relayed?,
                        _ = channel.disconnected() => return Err(Ended::Cut),
                    },
                },
                read = client.read(&mut up) => match read {
                    Ok(0) | Err(_) => return Err(Ended::ClientLeft),
                    Ok(n) => {
                        tokio::select! {
                            relayed = link.up(&mut server, &mut client, &up[..n]) => relayed?,
                            _ = channel.disconnected() => return Err(Ended::Cut),
                        }
                        let limit = link.dialect.client_idle_limit(idle);
                        quiet.as_mut().reset(Instant::now() + limit);
                    }
                },
                _ = &mut quiet => return Err(Ended::Idle),
            }
        }
    };
    let ended: Result<std::convert::Infallible, Ended> = ended.await;
    let ended = match ended {
        Ok(never) => match never {},
        Err(ended) => ended,
    };
    let goodbye = match &ended {
        Ended::Disconnected => Some(Goodbye::Disconnected),
        Ended::ServerLeft if link.dialect.client_logged_out() => None,
        Ended::ServerLeft => Some(Goodbye::ServerLeft),
        Ended::Idle => Some(Goodbye::Idle),
        Ended::Refused(why) => Some(*why),
        Ended::ClientLeft | Ended::Cut => None,
    };
    if let Some(why) = goodbye {
        if ended == Ended::Disconnected {
            finish_response(&mut server, &mut client, link.dialect).await;
        }
        if link.dialect.server_at_boundary() {
            let bye = link.dialect.goodbye(why);
            let _ = tokio::time::timeout(FAREWELL, write(&mut client, &bye)).await;
        }
    }
    // The client first: it is done once it has its goodbye, whatever the server takes to log
    // out.
    let _ = tokio::time::timeout(FAREWELL, client.shutdown()).await;
    drop(client);
    if ended != Ended::ServerLeft {
        log_out(&mut server, link.dialect).await;
    }
    ended
}

/// Relays what remains of the server's response in flight (a disconnect never cuts a
/// response in two), within [`FAREWELL`].
async fn finish_response<S, W, D>(server_rx: &mut S, client_tx: &mut W, dialect: &mut D)
where
    S: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
    D: Dialect + ?Sized,
{
    let finishing = async {
        let mut buf = vec![0u8; BUFFER];
        while !dialect.server_at_boundary() {
            let n = match server_rx.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            let upto = dialect.server_boundary(&buf[..n]).unwrap_or(n);
            if write(client_tx, &buf[..upto]).await.is_err() {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(FAREWELL, finishing).await;
}

/// Sends the server its logout when the client is between commands, and waits (briefly) for
/// the server to close, so that it has counted the session ended.
async fn log_out<S, D>(server: &mut S, dialect: &D)
where
    S: AsyncRead + AsyncWrite + Unpin,
    D: Dialect + ?Sized,
{
    if !dialect.client_between_commands() {
        return;
    }
    let logging_out = async {
        if write(server, dialect.logout()).await.is_err() {
            return;
        }
        let mut buf = vec![0u8; BUFFER];
        while matches!(server.read(&mut buf).await, Ok(n) if n > 0) {}
    };
    let _ = tokio::time::timeout(FAREWELL, logging_out).await;
    let _ = tokio::time::timeout(FAREWELL, server.shutdown()).await;
}

async fn write<W: AsyncWrite + Unpin>(to: &mut W, bytes: &[u8]) -> std::io::Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    to.write_all(bytes).await?;
    to.flush().await
}

/// The dialect and what it has for either side, between reads.
struct Link<'d, D: ?Sized> {
    dialect: &'d mut D,
    /// The relay's own answers, kept until the server's stream is at a boundary.
    for_client: Vec<u8>,
    to_server: Vec<u8>,
}

impl<D: Dialect + ?Sized> Link<'_, D> {
    /// The server's bytes to the client, the relay's own answers slipped in at a boundary.
    async fn down<W: AsyncWrite + Unpin>(
        &mut self,
        client_tx: &mut W,
        mut bytes: &[u8],
    ) -> Result<(), Ended> {
        while !bytes.is_empty() {
            let upto = match self.for_client.is_empty() {
                // Nothing to slip in: the framing is followed to the end, written at once.
                true => {
                    let mut seen = 0;
                    while seen < bytes.len() {
                        seen += self
                            .dialect
                            .server_boundary(&bytes[seen..])
                            .unwrap_or(bytes.len() - seen);
                    }
                    bytes.len()
                }
                false => self.dialect.server_boundary(bytes).unwrap_or(bytes.len()),
            };
            write(client_tx, &bytes[..upto])
                .await
                .map_err(|_| Ended::ClientLeft)?;
            bytes = &bytes[upto..];
            self.answer_at_boundary(client_tx).await?;
        }
        Ok(())
    }

    /// The client's bytes to the server, and the relay's own answers to the client.
    async fn up<S: AsyncWrite + Unpin, W: AsyncWrite + Unpin>(
        &mut self,
        server_tx: &mut S,
        client_tx: &mut W,
        bytes: &[u8],
    ) -> Result<(), Ended> {
        if bytes.is_empty() {
            return Ok(());
        }
        self.to_server.clear();
        let taken = self
            .dialect
            .client_sent(bytes, &mut self.to_server, &mut self.for_client);
        write(server_tx, &self.to_server)
            .await
            .map_err(|_| Ended::ServerLeft)?;
        taken.map_err(Ended::Refused)?;
        self.answer_at_boundary(client_tx).await
    }

    async fn answer_at_boundary<W: AsyncWrite + Unpin>(
        &mut self,
        client_tx: &mut W,
    ) -> Result<(), Ended> {
        if self.for_client.is_empty() || !self.dialect.server_at_boundary() {
            return Ok(());
        }
        write(client_tx, &self.for_client)
            .await
            .map_err(|_| Ended::ClientLeft)?;
        self.for_client.clear();
        Ok(())
    }
}
