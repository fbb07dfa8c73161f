//! Serves an axum `Router` over HTTP/1.1 on one listener, with the node's limits: a connection
//! over the listener's caps is closed at once; a request must bring its head within the header
//! timeout and each piece of its body within the body timeout; a kept-alive connection is
//! closed once idle for the keep-alive timeout; a URI, a header block or a header count over
//! its limit is refused. Every refusal the server makes itself (414, 431, a request that is not
//! HTTP) carries the body `error_body` gives, as `application/json; charset=utf-8`.
//! Handlers still see `ConnectInfo<SocketAddr>`, websockets still upgrade, and a stop signal
//! shuts every connection down gracefully.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request, Response, StatusCode};
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tower::ServiceExt;
use tower_http::timeout::TimeoutBody;

use super::conn::{Exchange, GuardedIo};
use super::limits::{ConnectionLimiter, Permit};

pub use super::settings::{ErrorBody, HttpSettings};

/// What a connection goes through before it speaks HTTP (nothing, or a TLS handshake).
pub trait Handshake: Send + Sync + 'static {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// The connection ready for HTTP, or `None` when it is to be dropped.
    fn handshake(
        &self,
        tcp: TcpStream,
        remote: SocketAddr,
    ) -> impl Future<Output = Option<Self::Io>> + Send;
}

/// Plain HTTP.
pub struct NoHandshake;

impl Handshake for NoHandshake {
    type Io = TcpStream;

    async fn handshake(&self, tcp: TcpStream, _: SocketAddr) -> Option<TcpStream> {
        Some(tcp)
    }
}

pub struct HttpListener<H> {
    pub name: &'static str,
    pub listener: TcpListener,
    pub handshake: H,
    pub router: Router,
    pub settings: HttpSettings,
    pub limiter: ConnectionLimiter,
    pub error_body: ErrorBody,
}

/// What every connection of a listener shares.
struct Shared<H> {
    handshake: H,
    router: Router,
    settings: Arc<HttpSettings>,
    error_body: ErrorBody,
}

impl<H: Handshake> HttpListener<H> {
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let shared = Arc::new(Shared {
            handshake: self.handshake,
            router: self.router,
            settings: Arc::new(self.settings),
            error_body: self.error_body,
        });
        loop {
            let accepted = tokio::select! {
                accepted = self.listener.accept() => accepted,
                _ = stop.changed() => return,
            };
            let (tcp, remote) = match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::debug!(listener = self.name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Some(permit) = self.limiter.try_acquire(remote.ip()) else {
                continue;
            };
            // Raft replies and api answers are small and latency-bound: no Nagle.
            let _ = tcp.set_nodelay(true);
            let (shared, stop) = (shared.clone(), stop.clone());
            tokio::spawn(async move {
                let Some(io) = shared.handshake.handshake(tcp, remote).await else {
                    return;
                };
                serve_connection(io, remote, permit, &shared, stop).await;
            });
        }
    }
}

async fn serve_connection<H: Handshake>(
    io: H::Io,
    remote: SocketAddr,
    permit: Permit,
    shared: &Shared<H>,
    mut stop: watch::Receiver<bool>,
) {
    let settings = shared.settings.clone();
    let exchange = Arc::new(Exchange::default());
    let io = GuardedIo::new(
        io,
        exchange.clone(),
        settings.clone(),
        shared.error_body,
        permit,
    );
    let (router, error_body) = (shared.router.clone(), shared.error_body);
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        exchange.took(request.method());
        respond(
            request,
            remote,
            router.clone(),
            settings.clone(),
            error_body,
        )
    });
    let mut builder = http1::Builder::new();
    builder
        .keep_alive(true)
        // Our own timers (`conn`) tell a slow head from an idle kept-alive connection.
        .header_read_timeout(None)
        .max_headers(shared.settings.max_headers)
        .max_header_size(shared.settings.max_header_bytes)
        // One buffer per write, which `conn` follows without copying.
        .writev(false);
    let connection = builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(connection);
    let mut stopping = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%remote, error = %e, "connection ended");
                }
                return;
            }
            _ = stop.changed(), if !stopping => {
                stopping = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

async fn respond(
    request: Request<Incoming>,
    remote: SocketAddr,
    router: Router,
    settings: Arc<HttpSettings>,
    error_body: ErrorBody,
) -> Result<Response<Body>, Infallible> {
    let uri_bytes = request
        .uri()
        .path_and_query()
        .map_or(0, |p| p.as_str().len());
    if uri_bytes > settings.max_uri_bytes {
        let message = format!("the request's URI is over {} bytes", settings.max_uri_bytes);
        return Ok(refusal(StatusCode::URI_TOO_LONG, &message, error_body));
    }
    let (mut parts, body) = request.into_parts();
    parts.extensions.insert(ConnectInfo(remote));
    let body = Body::new(TimeoutBody::new(settings.body_read_timeout, body));
    router.oneshot(Request::from_parts(parts, body)).await
}

fn refusal(status: StatusCode, message: &str, error_body: ErrorBody) -> Response<Body> {
    let mut response = Response::new(Body::from(error_body(status, message)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}
