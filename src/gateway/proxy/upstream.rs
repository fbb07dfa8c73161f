//! The upstream connections of one route: HTTP/1.1 over TCP, with rustls for `https`
//! upstreams, opened on demand within the connect timeout and kept alive across requests.
//!
//! A connection is driven in the task of the request that uses it (hyper's
//! `client::conn::http1`, its connection polled next to the request and then inside the
//! answer's body), not in a task of its own: a proxied request then costs no hand-off between
//! tasks on the way out nor on the way back. When the answer's body has been read to its end
//! the connection goes back to the route's idle list; one that broke, or whose answer was not
//! read to the end, is closed.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, Request, Response, Uri};
use hyper::body::{Body as _, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, Connection, SendRequest};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

use super::websocket::Io;
use super::ProxyError;
use crate::config::proxy::ProxyRoute;

/// Idle upstream connections are closed after this long.
const POOL_IDLE: Duration = Duration::from_secs(60);

/// At most this many idle connections are kept per route; more are closed as they come back.
const MAX_IDLE: usize = 256;

type UpstreamIo = TokioIo<Box<dyn Io>>;

/// One route's upstream: where it is, how to reach it, and its idle connections.
pub struct Upstream {
    prefix: String,
    host: String,
    port: u16,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    /// The `Host` header every request carries: the upstream's authority.
    authority: HeaderValue,
    connect_timeout: Duration,
    idle: Mutex<Vec<(Conn, Instant)>>,
}

/// An open HTTP/1.1 connection: the half requests are sent on, and the half that does the IO.
struct Conn {
    sender: SendRequest<Body>,
    driver: Connection<UpstreamIo, Body>,
}

/// How one attempt at an exchange failed.
enum Failure {
    /// The request never left: it may go again on another connection.
    NotSent(Box<Request<Body>>, String),
    Broke(String),
}

impl Upstream {
    pub fn new(
        route: &ProxyRoute,
        base: &Uri,
        tls: Arc<rustls::ClientConfig>,
    ) -> Result<Self, String> {
        let refuse = |why: &str| format!("proxy {:?}: upstream: {why}", route.prefix);
        let host = base
            .host()
            .ok_or_else(|| refuse("names no host"))?
            .trim_matches(['[', ']'])
            .to_string();
        let secure = base.scheme_str() == Some("https");
        let port = base.port_u16().unwrap_or(if secure { 443 } else { 80 });
        let authority = base
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
            .ok_or_else(|| refuse("names no host"))?;
        let tls = match secure {
            false => None,
            true => {
                let name =
                    ServerName::try_from(host.clone()).map_err(|e| refuse(&e.to_string()))?;
                Some((tokio_rustls::TlsConnector::from(tls), name))
            }
        };
        Ok(Self {
            prefix: route.prefix.clone(),
            host,
            port,
            tls,
            authority,
            connect_timeout: Duration::from_millis(route.connect_timeout_ms),
            idle: Mutex::new(Vec::new()),
        })
    }

    /// Sends `request` (its URI the upstream's, in any form) and returns the answer, its body
    /// streamed from the connection. A request that a kept-alive connection could not take
    /// (the upstream had closed it) goes again on a new one.
    pub async fn send(
        self: &Arc<Self>,
        mut request: Request<Body>,
    ) -> Result<Response<Body>, ProxyError> {
        let path = request
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        *request.uri_mut() = path.parse().unwrap_or_else(|_| Uri::from_static("/"));
        request
            .headers_mut()
            .insert(header::HOST, self.authority.clone());
        loop {
            let (conn, reused) = match self.take_idle() {
                Some(conn) => (conn, true),
                None => (self.open().await?, false),
            };
            match exchange(conn, request).await {
                Ok((answer, conn)) => return Ok(self.clone().answer(answer, conn)),
                Err(Failure::NotSent(again, _)) if reused => request = *again,
                Err(Failure::NotSent(_, why) | Failure::Broke(why)) => {
                    return Err(ProxyError::BadGateway(format!(
                        "the upstream of {} broke off the exchange: {why}",
                        self.prefix
                    )))
                }
            }
        }
    }

    fn answer(self: Arc<Self>, answer: Response<Incoming>, conn: Option<Conn>) -> Response<Body> {
        answer.map(|body| {
            let ended = body.is_end_stream();
            Body::new(PooledBody {
                body,
                conn,
                ended,
                home: self,
            })
        })
    }

    /// The most recently used idle connection that is still open.
    fn take_idle(&self) -> Option<Conn> {
        let mut idle = self.idle.lock().ok()?;
        while let Some((mut conn, since)) = idle.pop() {
            if since.elapsed() < POOL_IDLE && still_open(&mut conn) {
                return Some(conn);
            }
        }
        None
    }

    fn give_back(&self, conn: Conn) {
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < MAX_IDLE {
                idle.push((conn, Instant::now()));
            }
        }
    }

    async fn open(&self) -> Result<Conn, ProxyError> {
        let io = self.connect().await?;
        let (sender, driver) = http1::handshake(TokioIo::new(io))
            .await
            .map_err(|e| ProxyError::BadGateway(self.unreachable(&e.to_string())))?;
        Ok(Conn { sender, driver })
    }

    /// A TCP connection within the connect timeout, and TLS over it for an `https` upstream.
    pub async fn connect(&self) -> Result<Box<dyn Io>, ProxyError> {
        let within = self.connect_timeout;
        let connecting = TcpStream::connect((self.host.as_str(), self.port));
        let tcp = match tokio::time::timeout(within, connecting).await {
            Err(_) => return Err(self.gone(&format!("no connection within {within:?}"))),
            Ok(Err(e)) => return Err(self.gone(&e.to_string())),
            Ok(Ok(tcp)) => tcp,
        };
        let _ = tcp.set_nodelay(true);
        let Some((connector, name)) = &self.tls else {
            return Ok(Box::new(tcp));
        };
        let stream = connector
            .connect(name.clone(), tcp)
            .await
            .map_err(|e| self.gone(&e.to_string()))?;
        Ok(Box::new(stream))
    }

    fn gone(&self, why: &str) -> ProxyError {
        ProxyError::BadGateway(self.unreachable(why))
    }

    fn unreachable(&self, why: &str) -> String {
        format!(
            "the upstream of {} could not be reached: {why}",
            self.prefix
        )
    }
}

/// A failed exchange's innermost cause, in one line for the 502's message (no upstream answer
/// body is quoted).
fn cause(error: &hyper::Error) -> String {
    use std::error::Error;
    let mut cause = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        cause = e.to_string();
        source = e.source();
    }
    cause
}

/// Whether an idle connection is still usable: polled once, a connection whose upstream has
/// closed it (or sent something unasked) finishes, and is dropped.
fn still_open(conn: &mut Conn) -> bool {
    let mut cx = Context::from_waker(Waker::noop());
    Pin::new(&mut conn.driver).poll(&mut cx).is_pending() && !conn.sender.is_closed()
}

/// Sends `request` on `conn`, driving the connection until the answer's head is in.
async fn exchange(
    conn: Conn,
    request: Request<Body>,
) -> Result<(Response<Incoming>, Option<Conn>), Failure> {
    let Conn {
        mut sender,
        mut driver,
    } = conn;
    let ready = std::future::poll_fn(|cx| {
        if let Poll::Ready(ready) = sender.poll_ready(cx) {
            return Poll::Ready(ready.err().map(|e| cause(&e)));
        }
        Pin::new(&mut driver).poll(cx).map(|ended| match ended {
            Ok(()) => Some("the connection was closed".to_string()),
            Err(e) => Some(cause(&e)),
        })
    })
    .await;
    if let Some(error) = ready {
        return Err(Failure::NotSent(Box::new(request), error));
    }
    let mut driver = Some(driver);
    let mut answer = std::pin::pin!(sender.try_send_request(request));
    let answered = std::future::poll_fn(|cx| {
        if let Some(open) = driver.as_mut() {
            // A connection that ends drops here; the answer then fails, with the request if
            // it was never written.
            if Pin::new(open).poll(cx).is_ready() {
                driver = None;
            }
        }
        answer.as_mut().poll(cx)
    })
    .await;
    match answered {
        Ok(answer) => Ok((answer, driver.map(|driver| Conn { sender, driver }))),
        Err(mut error) => match error.take_message() {
            Some(request) => Err(Failure::NotSent(Box::new(request), cause(error.error()))),
            None => Err(Failure::Broke(cause(error.error()))),
        },
    }
}

/// An answer's body as it streams from its connection, which it drives; read to its end, it
/// hands the connection back to its route.
struct PooledBody {
    body: Incoming,
    conn: Option<Conn>,
    ended: bool,
    home: Arc<Upstream>,
}

impl hyper::body::Body for PooledBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        if let Some(conn) = this.conn.as_mut() {
            if Pin::new(&mut conn.driver).poll(cx).is_ready() {
                this.conn = None;
            }
        }
        let frame = Pin::new(&mut this.body).poll_frame(cx);
        if let Poll::Ready(None) = frame {
            this.ended = true;
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for PooledBody {
    fn drop(&mut self) {
        // A server writing a body of known length stops polling once it has it all, before
        // the body would say it ended.
        if let Some(conn) = self.conn.take() {
            if self.is_end_stream() {
                self.home.give_back(conn);
            }
        }
    }
}

pub fn tls_config(route: &ProxyRoute) -> Result<rustls::ClientConfig, String> {
    let roots = crate::tls::client::trusted_roots(route.ca_file.as_deref())
        .map_err(|e| format!("proxy {:?}: {e}", route.prefix))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;
    use crate::config::proxy::Unauthenticated;

    /// An upstream answering `hello` to every request; after `answers_per_connection` answers
    /// it closes the connection. Counts the connections it took.
    async fn upstream(answers_per_connection: usize) -> (Arc<Upstream>, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(answer(socket, answers_per_connection));
            }
        });
        let base: Uri = format!("http://{address}").parse().expect("uri");
        let tls = Arc::new(tls_config(&route(&base)).expect("tls"));
        let upstream = Upstream::new(&route(&base), &base, tls).expect("upstream");
        (Arc::new(upstream), accepted)
    }

    async fn answer<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
        mut socket: S,
        answers: usize,
    ) {
        let mut seen = Vec::new();
        let mut buf = [0u8; 1024];
        for _ in 0..answers {
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            seen.clear();
            let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello";
            if socket.write_all(reply).await.is_err() {
                return;
            }
        }
    }

    fn route(base: &Uri) -> ProxyRoute {
        ProxyRoute {
            prefix: "/app/".into(),
            upstream: base.to_string(),
            strip_prefix: false,
            unauthenticated: Unauthenticated::Refuse,
            domains: Vec::new(),
            groups: Vec::new(),
            connect_timeout_ms: 1000,
            response_timeout_ms: 1000,
            ca_file: None,
            max_message_bytes: 1024,
        }
    }

    /// The answer's body, read the way hyper's server reads it: until the body says it has
    /// ended, not until it yields nothing more.
    async fn get(upstream: &Arc<Upstream>) -> Result<String, ProxyError> {
        let request = Request::get("http://upstream/x")
            .body(Body::empty())
            .expect("request");
        let mut body = upstream.send(request).await?.into_body();
        let mut read = Vec::new();
        while !body.is_end_stream() {
            match std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
                Some(frame) => read.extend(frame.expect("frame").into_data().unwrap_or_default()),
                None => break,
            }
        }
        Ok(String::from_utf8_lossy(&read).into_owned())
    }

    #[tokio::test]
    async fn a_connection_read_to_the_end_is_used_again() {
        let (upstream, accepted) = upstream(usize::MAX).await;
        for _ in 0..5 {
            assert_eq!(get(&upstream).await.expect("answer"), "hello");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_connection_the_upstream_closed_is_replaced_without_a_failure() {
        let (upstream, accepted) = upstream(1).await;
        for _ in 0..5 {
            assert_eq!(get(&upstream).await.expect("answer"), "hello");
            // The upstream's close reaches the idle connection before it is taken again.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 5);
    }

    #[tokio::test]
    async fn an_answer_not_read_to_the_end_closes_its_connection() {
        let (upstream, accepted) = upstream(usize::MAX).await;
        let request = Request::get("/x").body(Body::empty()).expect("request");
        let answer = upstream.send(request).await.expect("answer");
        drop(answer);
        assert_eq!(get(&upstream).await.expect("answer"), "hello");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_https_upstream_is_verified_against_the_routes_ca() {
        let dir = tempfile::tempdir().expect("temp dir");
        let names = vec!["localhost".to_string()];
        let files = crate::tls::ensure_self_signed(dir.path(), &names).expect("a pair");
        let acceptor = crate::tls::acceptor(
            crate::tls::ReloadableCert::load(files.clone()).expect("the pair loads"),
        );
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                if let Ok(tls) = acceptor.accept(socket).await {
                    tokio::spawn(answer(tls, usize::MAX));
                }
            }
        });
        let base: Uri = format!("https://localhost:{port}").parse().expect("uri");
        let trusting = ProxyRoute {
            ca_file: Some(files.cert.clone()),
            ..route(&base)
        };
        let tls = Arc::new(tls_config(&trusting).expect("tls"));
        let upstream = Arc::new(Upstream::new(&trusting, &base, tls).expect("upstream"));
        assert_eq!(get(&upstream).await.expect("answer"), "hello");
        // The web's roots do not vouch for the upstream's own certificate.
        let tls = Arc::new(tls_config(&route(&base)).expect("tls"));
        let untrusting = Arc::new(Upstream::new(&route(&base), &base, tls).expect("upstream"));
        match get(&untrusting).await {
            Err(ProxyError::BadGateway(why)) => {
                assert!(why.contains("could not be reached"), "{why}")
            }
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn an_unreachable_upstream_is_a_bad_gateway() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let base: Uri = format!("http://127.0.0.1:{port}").parse().expect("uri");
        let tls = Arc::new(tls_config(&route(&base)).expect("tls"));
        let upstream = Arc::new(Upstream::new(&route(&base), &base, tls).expect("upstream"));
        match get(&upstream).await {
            Err(ProxyError::BadGateway(why)) => {
                assert!(why.contains("could not be reached"), "{why}")
            }
            other => panic!("{other:?}"),
        }
    }
}
