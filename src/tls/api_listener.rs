//! The api listener over TLS: each accepted connection's handshake runs on that connection's
//! own task, bounded in time, so a slow or silent client never holds up the others; HTTP is
//! served only over connections whose handshake finished.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use crate::net::http::Handshake;

pub struct TlsHandshake {
    pub acceptor: TlsAcceptor,
    pub timeout: Duration,
}

impl Handshake for TlsHandshake {
    type Io = TlsStream<TcpStream>;

    async fn handshake(&self, tcp: TcpStream, remote: SocketAddr) -> Option<Self::Io> {
        match tokio::time::timeout(self.timeout, self.acceptor.accept(tcp)).await {
            Ok(Ok(tls)) => Some(tls),
            Ok(Err(e)) => {
                tracing::debug!(%remote, error = %e, "api TLS handshake failed");
                None
            }
            Err(_) => {
                tracing::debug!(%remote, "api TLS handshake timed out");
                None
            }
        }
    }
}
