//! Follows the answers an HTTP/1.1 connection writes, without copying them: where each head
//! begins and ends, how its body is framed (a length, chunks, nothing, or until the close), and
//! so where the next answer begins. The connection uses it to know when an exchange is over
//! (its keep-alive timeout starts there) and to spot an answer with no request behind it: hyper
//! answers a request it could not parse on its own, with a bare status line, and that answer is
//! replaced by the contract's body. What it cannot follow (an upgrade, a body until the close,
//! a line it cannot read) it lets through untouched from then on.

/// The longest head line followed; a longer one (this server writes none) ends the following.
const MAX_LINE: usize = 16 * 1024;

/// What the request behind an answer asked, as far as the answer's framing goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Asked {
    Head,
    Connect,
    Other,
}

/// The requests of a connection that the service took and whose answers have not begun.
pub trait Requests {
    /// Whether one waits for its answer.
    fn waiting(&self) -> bool;
    /// The oldest, whose answer's head was just written.
    fn take(&self) -> Option<Asked>;
}

#[derive(Debug, PartialEq, Eq)]
pub enum Scan {
    /// Every byte belongs to answers to requests (or is let through).
    Passed,
    /// The first `n` bytes do; an answer with no request behind it starts after them.
    OwnAnswerAt(usize),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Between two answers.
    Start,
    StatusLine,
    Headers,
    Body(u64),
    ChunkSize,
    ChunkData(u64),
    /// The CRLF after a chunk's data: bytes left.
    ChunkEnd(u8),
    Trailers,
    Through,
}

#[derive(Default)]
struct Head {
    status: u16,
    length: Option<u64>,
    chunked: bool,
}

pub struct Answers {
    state: State,
    line: Vec<u8>,
    head: Head,
}

impl Default for Answers {
    fn default() -> Self {
        Self {
            state: State::Start,
            line: Vec::new(),
            head: Head::default(),
        }
    }
}

impl Answers {
    /// Between two answers: the last one is written whole and the next has not begun.
    pub fn between_answers(&self) -> bool {
        self.state == State::Start
    }

    /// Upgraded, or framed in a way not followed: bytes pass untouched from now on.
    pub fn through(&self) -> bool {
        self.state == State::Through
    }

    /// Follows `bytes`, the next ones written. Stops at an answer no request waits for.
    pub fn scan(&mut self, bytes: &[u8], requests: &impl Requests) -> Scan {
        let mut at = 0;
        while at < bytes.len() {
            let rest = &bytes[at..];
            match self.state {
                State::Through => return Scan::Passed,
                State::Start => {
                    if !requests.waiting() {
                        return Scan::OwnAnswerAt(at);
                    }
                    self.head = Head::default();
                    self.state = State::StatusLine;
                }
                State::StatusLine | State::Headers | State::ChunkSize | State::Trailers => {
                    match rest.iter().position(|&b| b == b'\n') {
                        Some(end) => {
                            self.line.extend_from_slice(&rest[..end]);
                            at += end + 1;
                            let line = std::mem::take(&mut self.line);
                            self.on_line(line.strip_suffix(b"\r").unwrap_or(&line), requests);
                        }
                        None => {
                            self.line.extend_from_slice(rest);
                            at = bytes.len();
                            if self.line.len() > MAX_LINE {
                                self.state = State::Through;
                            }
                        }
                    }
                }
                State::Body(left) => {
                    let n = left.min(rest.len() as u64);
                    at += n as usize;
                    self.state = match left - n {
                        0 => State::Start,
                        left => State::Body(left),
                    };
                }
                State::ChunkData(left) => {
                    let n = left.min(rest.len() as u64);
                    at += n as usize;
                    self.state = match left - n {
                        0 => State::ChunkEnd(2),
                        left => State::ChunkData(left),
                    };
                }
                State::ChunkEnd(left) => {
                    at += 1;
                    self.state = match left {
                        1 => State::ChunkSize,
                        _ => State::ChunkEnd(left - 1),
                    };
                }
            }
        }
        Scan::Passed
    }

    fn on_line(&mut self, line: &[u8], requests: &impl Requests) {
        self.state = match self.state {
            State::StatusLine => match status_of(line) {
                Some(status) => {
                    self.head.status = status;
                    State::Headers
                }
                None => State::Through,
            },
            State::Headers if line.is_empty() => self.head_done(requests),
            State::Headers => self.on_header(line),
            State::ChunkSize => match chunk_size(line) {
                Some(0) => State::Trailers,
                Some(size) => State::ChunkData(size),
                None => State::Through,
            },
            State::Trailers if line.is_empty() => State::Start,
            other => other,
        };
    }

    fn on_header(&mut self, line: &[u8]) -> State {
        let Some((name, value)) = std::str::from_utf8(line)
            .ok()
            .and_then(|l| l.split_once(':'))
        else {
            return State::Through;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("content-length") {
            match value.parse() {
                Ok(length) => self.head.length = Some(length),
                Err(_) => return State::Through,
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            self.head.chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"));
        }
        State::Headers
    }

    fn head_done(&mut self, requests: &impl Requests) -> State {
        let status = self.head.status;
        if (100..200).contains(&status) && status != 101 {
            // An interim answer (100 Continue): the final one follows for the same request.
            return State::Start;
        }
        let asked = requests.take().unwrap_or(Asked::Other);
        match self.head.length {
            _ if status == 101 => State::Through,
            _ if asked == Asked::Connect && (200..300).contains(&status) => State::Through,
            _ if asked == Asked::Head || status == 204 || status == 304 => State::Start,
            _ if self.head.chunked => State::ChunkSize,
            Some(0) => State::Start,
            Some(length) => State::Body(length),
            None => State::Through,
        }
    }
}

/// `HTTP/1.1 431 Request Header Fields Too Large` → 431.
pub fn status_of(line: &[u8]) -> Option<u16> {
    let line = std::str::from_utf8(line).ok()?;
    let rest = line.strip_prefix("HTTP/1.")?;
    let code = rest.get(2..5)?;
    code.parse().ok().filter(|c| (100..600).contains(c))
}

fn chunk_size(line: &[u8]) -> Option<u64> {
    let line = std::str::from_utf8(line).ok()?;
    let size = line.split(';').next()?.trim();
    u64::from_str_radix(size, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::collections::VecDeque;

    #[derive(Default)]
    struct Queue(RefCell<VecDeque<Asked>>);

    impl Requests for Queue {
        fn waiting(&self) -> bool {
            !self.0.borrow().is_empty()
        }
        fn take(&self) -> Option<Asked> {
            self.0.borrow_mut().pop_front()
        }
    }

    fn queue(asked: &[Asked]) -> Queue {
        Queue(RefCell::new(asked.iter().copied().collect()))
    }

    const OWN: &[u8] = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n";

    /// Scans `stream` cut into pieces of `step` bytes; where the own answer starts, if anywhere.
    fn own_answer_in(stream: &[u8], step: usize, requests: &Queue) -> Option<usize> {
        let mut answers = Answers::default();
        let mut offset = 0;
        for piece in stream.chunks(step) {
            if let Scan::OwnAnswerAt(n) = answers.scan(piece, requests) {
                return Some(offset + n);
            }
            offset += piece.len();
        }
        None
    }

    #[test]
    fn an_answer_without_a_request_is_found_after_any_framing_in_any_pieces() {
        let length = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello".to_vec();
        let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n10\r\n0123456789abcdef\r\n0\r\ntrailer: t\r\n\r\n".to_vec();
        let head = b"HTTP/1.1 200 OK\r\ncontent-length: 5000\r\n\r\n".to_vec();
        let interim =
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\ncontent-length: 9\r\n\r\n"
                .to_vec();
        let cases = [
            (length, vec![Asked::Other]),
            (chunked, vec![Asked::Other]),
            (head, vec![Asked::Head]),
            (interim, vec![Asked::Other]),
        ];
        for (answer, asked) in cases {
            let mut stream = answer.clone();
            stream.extend_from_slice(OWN);
            for step in [1, 2, 7, stream.len()] {
                assert_eq!(
                    own_answer_in(&stream, step, &queue(&asked)),
                    Some(answer.len()),
                    "{:?} in pieces of {step}",
                    String::from_utf8_lossy(&answer)
                );
            }
        }
    }

    #[test]
    fn answers_to_requests_pass_and_leave_it_between_answers() {
        let two = b"HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        let requests = queue(&[Asked::Other, Asked::Other]);
        let mut answers = Answers::default();
        assert_eq!(answers.scan(two, &requests), Scan::Passed);
        assert!(answers.between_answers());
        assert_eq!(answers.scan(OWN, &requests), Scan::OwnAnswerAt(0));
    }

    #[test]
    fn an_upgrade_or_a_body_until_the_close_lets_everything_through() {
        for answer in [
            &b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n"[..],
            &b"HTTP/1.1 200 OK\r\n\r\n"[..],
        ] {
            let mut answers = Answers::default();
            let mut stream = answer.to_vec();
            stream.extend_from_slice(OWN);
            assert_eq!(answers.scan(&stream, &queue(&[Asked::Other])), Scan::Passed);
            assert!(answers.through());
        }
    }
}
