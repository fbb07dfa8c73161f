//! The api listener over TLS: TCP connections are accepted at once and their handshakes run
//! apart (bounded in time), so a slow or silent client never holds up the others; axum is
//! handed only connections whose handshake finished.

use std::net::SocketAddr;
use std::time::Duration;

use axum::serve::Listener;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// Finished handshakes waiting for axum to take them.
const READY_QUEUE: usize = 1024;

pub struct TlsApiListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsApiListener {
    pub fn new(
        tcp: TcpListener,
        acceptor: TlsAcceptor,
        handshake_timeout: Duration,
    ) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let (ready_tx, ready) = mpsc::channel(READY_QUEUE);
        tokio::spawn(async move {
            while !ready_tx.is_closed() {
                let (stream, remote) = match tcp.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        tracing::debug!(error = %e, "api accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let (acceptor, ready_tx) = (acceptor.clone(), ready_tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = ready_tx.send((tls, remote)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%remote, error = %e, "api TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%remote, "api TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self { ready, local })
    }
}

impl Listener for TlsApiListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(ready) => ready,
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
