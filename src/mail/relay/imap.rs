//! IMAP's framing for the relay (RFC 3501 §4.3, RFC 7888): lines, and literals `{n}`, `{n+}`
//! or `~{n}` whose `n` bytes are data whatever they hold.
//!
//! The client's command lines are taken whole (bounded by the listener's line limit) so that
//! the relay can read each command's name: `COMPRESS` and `STARTTLS` are answered `NO` here
//! (the relay cannot follow a compressed stream, nor a second TLS layer), `IDLE` allows the
//! client a longer silence. Literals stream through as they come, bounded by the largest
//! message relayed. The server's stream is only followed, never held: a response ends at a
//! line end that announces no literal.

use std::time::Duration;

use super::{Dialect, Goodbye};
use crate::mail::upstream::imap::LOGOUT;

/// RFC 2177's advice: a client in IDLE re-issues it within 29 minutes.
const IDLE_LIMIT: Duration = Duration::from_secs(29 * 60);

/// The most digits a literal's size may have (`u64` has 20).
const MAX_SIZE_DIGITS: usize = 20;

pub struct ImapDialect {
    max_line: usize,
    max_literal: u64,
    /// The client's line being read.
    line: Vec<u8>,
    /// The bytes of the client's literal still to come.
    client_literal: u64,
    /// Whether the client's next line goes on with a command (it follows a literal).
    continuing: bool,
    idling: bool,
    logged_out: bool,
    server: Responses,
}

impl ImapDialect {
    pub fn new(max_line: usize, max_literal: u64) -> Self {
        Self {
            max_line,
            max_literal,
            line: Vec::new(),
            client_literal: 0,
            continuing: false,
            idling: false,
            logged_out: false,
            server: Responses::default(),
        }
    }

    /// A whole line from the client: relayed, or answered here.
    fn line_done(
        &mut self,
        to_server: &mut Vec<u8>,
        to_client: &mut Vec<u8>,
    ) -> Result<(), Goodbye> {
        let line = std::mem::take(&mut self.line);
        let literal = literal_at_end(&line);
        if !self.continuing {
            self.idling = false;
            let (tag, verb) = tag_and_verb(&line);
            match verb.as_str() {
                "COMPRESS" | "STARTTLS" if literal.is_none() => {
                    let answer =
                        format!("{tag} NO {verb} is not available through this server\r\n");
                    to_client.extend_from_slice(answer.as_bytes());
                    return Ok(());
                }
                "IDLE" => self.idling = true,
                "LOGOUT" => self.logged_out = true,
                _ => {}
            }
        }
        match literal {
            Some(size) if size > self.max_literal => return Err(Goodbye::LiteralTooLarge),
            Some(size) => {
                self.client_literal = size;
                self.continuing = true;
            }
            None => self.continuing = false,
        }
        to_server.extend_from_slice(&line);
        Ok(())
    }
}

impl Dialect for ImapDialect {
    fn client_sent(
        &mut self,
        mut bytes: &[u8],
        to_server: &mut Vec<u8>,
        to_client: &mut Vec<u8>,
    ) -> Result<(), Goodbye> {
        while !bytes.is_empty() {
            if self.client_literal > 0 {
                let n = bytes
                    .len()
                    .min(usize::try_from(self.client_literal).unwrap_or(usize::MAX));
                to_server.extend_from_slice(&bytes[..n]);
                self.client_literal -= n as u64;
                bytes = &bytes[n..];
                continue;
            }
            let (taken, done) = match bytes.iter().position(|b| *b == b'\n') {
                Some(end) => (end + 1, true),
                None => (bytes.len(), false),
            };
            if self.line.len() + taken > self.max_line + 2 {
                return Err(Goodbye::LineTooLong);
            }
            self.line.extend_from_slice(&bytes[..taken]);
            bytes = &bytes[taken..];
            if done {
                self.line_done(to_server, to_client)?;
            }
        }
        Ok(())
    }

    fn server_boundary(&mut self, bytes: &[u8]) -> Option<usize> {
        self.server.follow(bytes)
    }

    fn server_at_boundary(&self) -> bool {
        self.server.at_boundary()
    }

    fn client_between_commands(&self) -> bool {
        self.line.is_empty() && self.client_literal == 0 && !self.continuing
    }

    fn client_idle_limit(&self, normal: Duration) -> Duration {
        match self.idling {
            true => normal.max(IDLE_LIMIT),
            false => normal,
        }
    }

    fn goodbye(&self, why: Goodbye) -> Vec<u8> {
        let text = match why {
            Goodbye::Disconnected => "* BYE Disconnected by an administrator",
            Goodbye::ServerLeft => "* BYE The mail server closed the connection",
            Goodbye::Idle => "* BYE Autologout; idle for too long",
            Goodbye::LineTooLong => "* BYE Line too long",
            Goodbye::LiteralTooLarge => "* BYE Literal too large",
        };
        format!("{text}\r\n").into_bytes()
    }

    fn logout(&self) -> &'static [u8] {
        LOGOUT
    }

    fn client_logged_out(&self) -> bool {
        self.logged_out
    }
}

/// The server's stream, followed: where its responses end.
#[derive(Default)]
struct Responses {
    /// The last bytes of the line being read: enough to see a literal's announcement.
    tail: Vec<u8>,
    in_line: bool,
    literal: u64,
}

impl Responses {
    fn at_boundary(&self) -> bool {
        !self.in_line && self.literal == 0
    }

    fn follow(&mut self, bytes: &[u8]) -> Option<usize> {
        let mut at = 0;
        while at < bytes.len() {
            if self.literal > 0 {
                let n = (bytes.len() - at).min(usize::try_from(self.literal).unwrap_or(usize::MAX));
                self.literal -= n as u64;
                at += n;
                continue;
            }
            self.in_line = true;
            let rest = &bytes[at..];
            let Some(end) = rest.iter().position(|b| *b == b'\n') else {
                self.keep_tail(rest);
                return None;
            };
            self.keep_tail(&rest[..=end]);
            at += end + 1;
            match literal_at_end(&self.tail) {
                Some(size) => self.literal = size,
                None => {
                    self.in_line = false;
                    self.tail.clear();
                    return Some(at);
                }
            }
            self.tail.clear();
        }
        None
    }

    fn keep_tail(&mut self, bytes: &[u8]) {
        const KEEP: usize = MAX_SIZE_DIGITS + 8;
        self.tail
            .extend_from_slice(&bytes[bytes.len().saturating_sub(KEEP)..]);
        let excess = self.tail.len().saturating_sub(KEEP);
        self.tail.drain(..excess);
    }
}

/// The size of the literal a line announces at its end (`{n}`, `{n+}`, `~{n}`), if it does.
fn literal_at_end(line: &[u8]) -> Option<u64> {
    let line = line.strip_suffix(b"\n")?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|b| *b == b'{')?;
    let size = &inner[open + 1..];
    let size = size.strip_suffix(b"+").unwrap_or(size);
    if size.is_empty() || size.len() > MAX_SIZE_DIGITS || !size.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(size).ok()?.parse().ok()
}

/// A command line's tag and name (upper case; `UID FETCH` counts as `FETCH`).
fn tag_and_verb(line: &[u8]) -> (String, String) {
    let text = String::from_utf8_lossy(line);
    let mut words = text.split_ascii_whitespace();
    let tag = words.next().unwrap_or("*").to_string();
    let mut verb = words.next().unwrap_or("").to_ascii_uppercase();
    if verb == "UID" {
        verb = words.next().unwrap_or("").to_ascii_uppercase();
    }
    (tag, verb)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn relayed(dialect: &mut ImapDialect, input: &[u8]) -> (Vec<u8>, Vec<u8>, Result<(), Goodbye>) {
        let (mut up, mut back) = (Vec::new(), Vec::new());
        let result = dialect.client_sent(input, &mut up, &mut back);
        (up, back, result)
    }

    #[test]
    fn literals_are_read_from_line_ends() {
        assert_eq!(literal_at_end(b"a APPEND INBOX {310}\r\n"), Some(310));
        assert_eq!(literal_at_end(b"a APPEND INBOX {310+}\r\n"), Some(310));
        assert_eq!(literal_at_end(b"* 1 FETCH (BINARY[] ~{5}\r\n"), Some(5));
        assert_eq!(literal_at_end(b"a LOGIN {x}\r\n"), None);
        assert_eq!(literal_at_end(b"a NOOP {}\r\n"), None);
        assert_eq!(literal_at_end(b"a NOOP\r\n"), None);
        assert_eq!(literal_at_end(b"a {99999999999999999999999}\r\n"), None);
    }

    #[test]
    fn a_literal_passes_whatever_it_holds_and_the_command_goes_on() {
        let mut imap = ImapDialect::new(1024, 1 << 20);
        let input = b"a APPEND INBOX {12}\r\nb COMPRESS\r\n x\r\nc COMPRESS DEFLATE\r\n";
        let (up, back, result) = relayed(&mut imap, input);
        assert_eq!(result, Ok(()));
        // The literal's bytes (which look like a command) and the rest of its line went on;
        // the next command was answered here.
        assert_eq!(up, b"a APPEND INBOX {12}\r\nb COMPRESS\r\n x\r\n");
        assert_eq!(
            back,
            b"c NO COMPRESS is not available through this server\r\n"
        );
        assert!(imap.client_between_commands());
    }

    #[test]
    fn limits_end_the_channel() {
        let mut imap = ImapDialect::new(16, 100);
        let (_, _, result) = relayed(&mut imap, &[b'x'; 40]);
        assert_eq!(result, Err(Goodbye::LineTooLong));
        let mut imap = ImapDialect::new(1024, 100);
        let (up, _, result) = relayed(&mut imap, b"a APPEND INBOX {2147483648+}\r\n");
        assert_eq!(result, Err(Goodbye::LiteralTooLarge));
        assert!(up.is_empty(), "the announcement is not passed on");
    }

    #[test]
    fn a_logout_is_the_clients() {
        let mut imap = ImapDialect::new(1024, 100);
        assert_eq!(relayed(&mut imap, b"a NOOP\r\n").2, Ok(()));
        assert!(!imap.client_logged_out());
        assert_eq!(relayed(&mut imap, b"b LOGOUT\r\n").2, Ok(()));
        assert!(imap.client_logged_out());
    }

    #[test]
    fn idle_allows_a_longer_silence_until_done() {
        let mut imap = ImapDialect::new(1024, 100);
        let normal = Duration::from_secs(60);
        assert_eq!(relayed(&mut imap, b"a IDLE\r\n").2, Ok(()));
        assert_eq!(imap.client_idle_limit(normal), IDLE_LIMIT);
        assert_eq!(relayed(&mut imap, b"DONE\r\n").2, Ok(()));
        assert_eq!(imap.client_idle_limit(normal), normal);
    }

    /// The boundaries `follow` finds in `response` fed in two pieces, cut at `cut`.
    fn boundaries(response: &[u8], cut: usize) -> Vec<usize> {
        let mut server = Responses::default();
        let mut found = Vec::new();
        for (start, piece) in [(0, &response[..cut]), (cut, &response[cut..])] {
            let mut at = 0;
            while at < piece.len() {
                match server.follow(&piece[at..]) {
                    Some(n) => {
                        at += n;
                        found.push(start + at);
                    }
                    None => at = piece.len(),
                }
            }
        }
        found
    }

    #[test]
    fn a_response_ends_at_a_line_that_announces_no_literal() {
        // A literal of 8 bytes that holds line ends, then the rest of its line, then another
        // response.
        let response = b"* 1 FETCH (BODY[] {8}\r\nab\r\ncd\r\n)\r\n* 2 EXISTS\r\n";
        for cut in 0..=response.len() {
            assert_eq!(boundaries(response, cut), [34, 46], "cut at {cut}");
        }
        let mut server = Responses::default();
        server.follow(&response[..30]);
        assert!(!server.at_boundary(), "inside the literal");
    }

    proptest! {
        /// Whatever the client sends, what goes on to the server is what it sent, less the
        /// commands answered here, and no more is held than a line.
        #[test]
        fn the_client_stream_is_relayed_in_order(input in proptest::collection::vec(any::<u8>(), 0..2048), split in 0usize..2048) {
            let mut whole = ImapDialect::new(4096, 1 << 20);
            let (up, _, result) = relayed(&mut whole, &input);
            let split = split.min(input.len());
            let mut parts = ImapDialect::new(4096, 1 << 20);
            let (mut up2, _, first) = relayed(&mut parts, &input[..split]);
            let (more, _, second) = relayed(&mut parts, &input[split..]);
            up2.extend(more);
            if result.is_ok() && first.is_ok() && second.is_ok() {
                prop_assert_eq!(up, up2);
            }
            prop_assert!(whole.line.len() <= 4096 + 2);
        }
    }
}
