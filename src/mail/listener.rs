//! A mail listener's accept loop: at most its caps' connections at once (shared by the node's
//! mail listeners), in all and from one source address (the next is closed at once), the TLS
//! handshake of an implicit-TLS port bounded in time, then one task per connection running the
//! protocol.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use super::{BoxFuture, MailBackend, MailStream, ProtocolSettings};
use crate::net::limits::ConnectionLimiter;

/// A protocol's entry point: serves one connection to its end.
pub type Serve = fn(
    MailStream,
    SocketAddr,
    Arc<ProtocolSettings>,
    Arc<dyn MailBackend>,
) -> BoxFuture<'static, ()>;

pub struct MailListener {
    pub name: &'static str,
    pub listener: TcpListener,
    /// `Some` on an implicit-TLS port: every connection starts with a handshake.
    pub implicit_tls: Option<TlsAcceptor>,
    pub settings: Arc<ProtocolSettings>,
    pub backend: Arc<dyn MailBackend>,
    pub serve: Serve,
    pub limiter: ConnectionLimiter,
}

impl MailListener {
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                _ = stop.changed() => return,
            };
            let (tcp, remote) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::debug!(listener = self.name, error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Some(slot) = self.limiter.try_acquire(remote.ip()) else {
                continue;
            };
            let _ = tcp.set_nodelay(true);
            let (tls, settings, backend, serve) = (
                self.implicit_tls.clone(),
                self.settings.clone(),
                self.backend.clone(),
                self.serve,
            );
            let name = self.name;
            tokio::spawn(async move {
                let _slot = slot;
                let stream = match tls {
                    None => MailStream::Plain(tcp),
                    Some(acceptor) => {
                        match MailStream::Plain(tcp)
                            .start_tls(&acceptor, settings.handshake_timeout)
                            .await
                        {
                            Ok(stream) => stream,
                            Err(e) => {
                                tracing::debug!(listener = name, %remote, error = %e, "TLS handshake failed");
                                return;
                            }
                        }
                    }
                };
                serve(stream, remote, settings, backend).await;
            });
        }
    }
}
