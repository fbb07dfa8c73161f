//! One HTTP/1.1 connection's socket as hyper sees it. Reads are bounded in time while the
//! connection waits for a request: a new connection or a request begun must bring its whole
//! head within the header timeout, a kept-alive connection must begin its next request within
//! the keep-alive timeout (hyper's own header timer cannot tell the two apart). Writes are
//! followed (`answers`), and an answer hyper writes of its own is replaced by the contract's
//! body; such a connection then reads what the client still sends for a moment before it
//! closes, so that the client reads the answer rather than a reset. The connection's place in
//! its listener (`Permit`) lives as long as the socket, upgrades included.

use std::collections::VecDeque;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll, Waker};
use std::time::Duration;

use axum::http::{Method, StatusCode};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::answers::{status_of, Answers, Asked, Requests, Scan};
use super::limits::Permit;
use super::settings::{ErrorBody, HttpSettings};

/// What a connection reads and throws away after its own answer, at most.
const LINGER_BYTES: usize = 4 * 1024 * 1024;
const LINGER_TIME: Duration = Duration::from_secs(2);

/// The requests the service took on one connection, shared by the service and the socket.
#[derive(Default)]
pub struct Exchange {
    asked: Mutex<VecDeque<Asked>>,
}

impl Exchange {
    /// The service took a request: its answer is the next one owed.
    pub fn took(&self, method: &Method) {
        let asked = match *method {
            Method::HEAD => Asked::Head,
            Method::CONNECT => Asked::Connect,
            _ => Asked::Other,
        };
        self.lock().push_back(asked);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Asked>> {
        self.asked.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Requests for Exchange {
    fn waiting(&self) -> bool {
        !self.lock().is_empty()
    }

    fn take(&self) -> Option<Asked> {
        self.lock().pop_front()
    }
}

/// Waiting for a request: since when, and since when its first byte is here.
struct Waiting {
    since: Instant,
    limit: Duration,
    first_byte: Option<Instant>,
    /// Bytes of the request line so far, until its end is seen.
    line: Option<usize>,
}

/// Hyper's own answer, replaced.
struct Own {
    status_line: Vec<u8>,
    replacement: Vec<u8>,
    written: usize,
}

pub struct GuardedIo<IO: AsyncRead + AsyncWrite + Unpin + Send + 'static> {
    io: Option<IO>,
    exchange: Arc<Exchange>,
    settings: Arc<HttpSettings>,
    error_body: ErrorBody,
    answers: Answers,
    waiting: Option<Waiting>,
    sleep: Pin<Box<Sleep>>,
    /// Bytes at the start of the next write that were followed already (a short write).
    ahead: usize,
    own: Option<Own>,
    /// The request line being read was longer than any URI taken.
    uri_too_long: bool,
    permit: Option<Permit>,
    /// Who waits on a read that began while an answer was owed: woken once the answer is
    /// written, so that the keep-alive timer starts (hyper may not read again by itself until
    /// the client sends something).
    reader: Option<Waker>,
}

impl<IO: AsyncRead + AsyncWrite + Unpin + Send + 'static> GuardedIo<IO> {
    pub fn new(
        io: IO,
        exchange: Arc<Exchange>,
        settings: Arc<HttpSettings>,
        error_body: ErrorBody,
        permit: Permit,
    ) -> Self {
        let now = Instant::now();
        Self {
            io: Some(io),
            exchange,
            waiting: Some(Waiting {
                since: now,
                limit: settings.header_read_timeout,
                first_byte: None,
                line: Some(0),
            }),
            settings,
            error_body,
            answers: Answers::default(),
            sleep: Box::pin(tokio::time::sleep_until(now)),
            ahead: 0,
            own: None,
            uri_too_long: false,
            permit: Some(permit),
            reader: None,
        }
    }

    /// A read that waits without a timer (it began while an answer was owed) is woken once the
    /// connection is idle, so that its next poll starts the keep-alive timer.
    fn wake_reader_once_idle(&mut self) {
        if self.waiting.is_none() && self.idle() {
            if let Some(reader) = self.reader.take() {
                reader.wake();
            }
        }
    }

    fn io(&mut self) -> io::Result<Pin<&mut IO>> {
        match self.io.as_mut() {
            Some(io) => Ok(Pin::new(io)),
            None => Err(io::ErrorKind::NotConnected.into()),
        }
    }

    /// Whether the connection waits for a request (no request taken, no answer being written).
    fn idle(&self) -> bool {
        self.own.is_none()
            && !self.answers.through()
            && self.answers.between_answers()
            && !self.exchange.waiting()
    }

    fn deadline(&self) -> Option<Instant> {
        let waiting = self.waiting.as_ref()?;
        Some(match waiting.first_byte {
            Some(at) => at + self.settings.header_read_timeout,
            None => waiting.since + waiting.limit,
        })
    }

    fn on_read(&mut self, bytes: &[u8]) {
        let longest_line = self.settings.max_uri_bytes + 64;
        let Some(waiting) = self.waiting.as_mut() else {
            return;
        };
        waiting.first_byte.get_or_insert_with(Instant::now);
        if let Some(line) = waiting.line {
            match bytes.iter().position(|&b| b == b'\n') {
                Some(end) => {
                    self.uri_too_long |= line + end > longest_line;
                    waiting.line = None;
                }
                None => {
                    let line = line + bytes.len();
                    self.uri_too_long |= line > longest_line;
                    waiting.line = Some(line);
                }
            }
        }
    }

    /// Takes bytes of hyper's own answer; the replacement is made once its status line is in.
    fn take_own(&mut self, bytes: &[u8]) {
        let Some(own) = self.own.as_mut() else {
            return;
        };
        if !own.replacement.is_empty() {
            return;
        }
        let end = bytes.iter().position(|&b| b == b'\n');
        own.status_line
            .extend_from_slice(&bytes[..end.unwrap_or(bytes.len())]);
        if end.is_some() || own.status_line.len() > 1024 {
            let status = status_of(&own.status_line).unwrap_or(400);
            let replacement = self.replacement(status);
            if let Some(own) = self.own.as_mut() {
                own.replacement = replacement;
            }
        }
    }

    fn replacement(&self, status: u16) -> Vec<u8> {
        let s = &self.settings;
        let (status, message) = match status {
            414 => (
                414,
                format!("the request's URI is over {} bytes", s.max_uri_bytes),
            ),
            431 if self.uri_too_long => (
                414,
                format!("the request's URI is over {} bytes", s.max_uri_bytes),
            ),
            431 => (
                431,
                format!(
                    "the request's header fields are over {} bytes or {} fields",
                    s.max_header_bytes, s.max_headers
                ),
            ),
            other => (other, "the request is not valid HTTP/1.1".to_string()),
        };
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
        let body = (self.error_body)(status, &message);
        let mut answer = format!(
            "HTTP/1.1 {} {}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or(""),
            body.len()
        )
        .into_bytes();
        answer.extend_from_slice(&body);
        answer
    }

    /// Writes what is left of the replacement; ready once it is all written.
    fn poll_replacement(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let (Some(io), Some(own)) = (self.io.as_mut(), self.own.as_mut()) else {
            return Poll::Ready(Ok(()));
        };
        while own.written < own.replacement.len() {
            let n = ready!(Pin::new(&mut *io).poll_write(cx, &own.replacement[own.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            own.written += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin + Send + 'static> AsyncRead for GuardedIo<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.idle() {
            this.waiting = None;
        } else if this.waiting.is_none() {
            this.waiting = Some(Waiting {
                since: Instant::now(),
                limit: this.settings.keep_alive_timeout,
                first_byte: None,
                line: Some(0),
            });
        }
        let before = buf.filled().len();
        if let Poll::Ready(result) = this.io()?.poll_read(cx, buf) {
            this.on_read(&buf.filled()[before..]);
            return Poll::Ready(result);
        }
        if let Some(deadline) = this.deadline() {
            if this.sleep.deadline() != deadline {
                this.sleep.as_mut().reset(deadline);
            }
            if this.sleep.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no request in time",
                )));
            }
        } else {
            this.reader = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin + Send + 'static> AsyncWrite for GuardedIo<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.own.is_some() {
            this.take_own(buf);
            let _ = this.poll_replacement(cx)?;
            return Poll::Ready(Ok(buf.len()));
        }
        let from = this.ahead.min(buf.len());
        let end = match this.answers.scan(&buf[from..], this.exchange.as_ref()) {
            Scan::Passed => buf.len(),
            Scan::OwnAnswerAt(n) => from + n,
        };
        if end == 0 {
            this.ahead = 0;
            this.own = Some(Own {
                status_line: Vec::new(),
                replacement: Vec::new(),
                written: 0,
            });
            return Pin::new(this).poll_write(cx, buf);
        }
        match this.io()?.poll_write(cx, &buf[..end]) {
            Poll::Ready(Ok(n)) => {
                this.ahead = end - n.min(end);
                this.wake_reader_once_idle();
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                this.ahead = end;
                Poll::Pending
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_replacement(cx))?;
        this.io()?.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_replacement(cx))?;
        this.io()?.poll_shutdown(cx)
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin + Send + 'static> Drop for GuardedIo<IO> {
    /// After its own answer, a connection finishes writing it, then reads for a moment what
    /// the client still sends (a head too large, say): closing with unread bytes would reset
    /// the connection, and the client would lose the answer.
    fn drop(&mut self) {
        let Some(own) = self.own.take() else {
            return;
        };
        let (Some(io), Ok(runtime)) = (self.io.take(), tokio::runtime::Handle::try_current())
        else {
            return;
        };
        let permit = self.permit.take();
        runtime.spawn(async move {
            let _permit = permit;
            let mut io = io;
            let deadline = Instant::now() + LINGER_TIME;
            let rest = own.replacement.get(own.written..).unwrap_or_default();
            let written = tokio::time::timeout_at(deadline, async {
                io.write_all(rest).await?;
                io.shutdown().await
            });
            if !matches!(written.await, Ok(Ok(()))) {
                return;
            }
            let mut sink = vec![0u8; 16 * 1024];
            let mut read = 0;
            while read < LINGER_BYTES {
                match tokio::time::timeout_at(deadline, io.read(&mut sink)).await {
                    Ok(Ok(n)) if n > 0 => read += n,
                    _ => break,
                }
            }
        });
    }
}
