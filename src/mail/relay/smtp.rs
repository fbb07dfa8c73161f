//! SMTP's framing for the relay (RFC 5321, RFC 3030): command lines, the message after `DATA`
//! up to its `<CRLF>.<CRLF>`, the chunks after `BDAT n`; and the server's replies, whose last
//! line is `ddd ` (not `ddd-`).
//!
//! Everything the client sends goes on to the server unchanged: the server answers it. The
//! relay follows the client only to bound its command lines and to know when a `QUIT` would
//! land between two commands (never inside a message, where it would be taken as data).

use std::time::Duration;

use super::{Dialect, Goodbye};
use crate::mail::upstream::smtp::QUIT;

/// Where the client is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Client {
    /// In a command line, `length` bytes into it.
    Command { length: usize },
    /// In a message after `DATA`: how much of `<CRLF>.<CRLF>` was just seen.
    Message { matched: usize },
    /// In a `BDAT` chunk: its bytes still to come.
    Chunk { left: u64 },
}

/// `<CRLF>.<CRLF>`; the `DATA` line's own CRLF counts as the first.
const END_OF_DATA: &[u8] = b"\r\n.\r\n";

pub struct SmtpDialect {
    max_line: usize,
    client: Client,
    /// The start of the client's command line: enough to see `DATA` and `BDAT <n>`.
    command: Vec<u8>,
    /// The server's reply line being read: its first four bytes.
    reply_start: Vec<u8>,
    in_reply_line: bool,
    /// Whether the server's last full line was a reply's last.
    reply_done: bool,
    quit: bool,
    hostname: String,
}

impl SmtpDialect {
    pub fn new(max_line: usize, hostname: &str) -> Self {
        Self {
            max_line,
            client: Client::Command { length: 0 },
            command: Vec::new(),
            reply_start: Vec::new(),
            in_reply_line: false,
            reply_done: true,
            quit: false,
            hostname: hostname.to_string(),
        }
    }

    /// A command line ended: what comes next from the client.
    fn command_done(&mut self) -> Client {
        let text = String::from_utf8_lossy(&self.command).to_ascii_uppercase();
        self.command.clear();
        let mut words = text.split_ascii_whitespace();
        match (words.next(), words.next()) {
            (Some("DATA"), None) => Client::Message { matched: 2 },
            (Some("QUIT"), None) => {
                self.quit = true;
                Client::Command { length: 0 }
            }
            (Some("BDAT"), Some(size)) => match size.parse::<u64>() {
                Ok(left) if left > 0 => Client::Chunk { left },
                _ => Client::Command { length: 0 },
            },
            _ => Client::Command { length: 0 },
        }
    }
}

impl Dialect for SmtpDialect {
    fn client_sent(
        &mut self,
        bytes: &[u8],
        to_server: &mut Vec<u8>,
        _to_client: &mut Vec<u8>,
    ) -> Result<(), Goodbye> {
        let mut at = 0;
        while at < bytes.len() {
            match &mut self.client {
                Client::Chunk { left } => {
                    let n = (bytes.len() - at).min(usize::try_from(*left).unwrap_or(usize::MAX));
                    *left -= n as u64;
                    at += n;
                    if *left == 0 {
                        self.client = Client::Command { length: 0 };
                    }
                }
                Client::Message { matched } => {
                    let byte = bytes[at];
                    at += 1;
                    *matched = match byte == END_OF_DATA[*matched] {
                        true => *matched + 1,
                        false if byte == b'\r' => 1,
                        false => 0,
                    };
                    if *matched == END_OF_DATA.len() {
                        self.client = Client::Command { length: 0 };
                    }
                }
                Client::Command { length } => {
                    let byte = bytes[at];
                    at += 1;
                    *length += 1;
                    if *length > self.max_line + 2 {
                        to_server.extend_from_slice(&bytes[..at - 1]);
                        return Err(Goodbye::LineTooLong);
                    }
                    if byte == b'\n' {
                        self.client = self.command_done();
                    } else if self.command.len() < 32 {
                        self.command.push(byte);
                    }
                }
            }
        }
        to_server.extend_from_slice(bytes);
        Ok(())
    }

    fn server_boundary(&mut self, bytes: &[u8]) -> Option<usize> {
        for (i, byte) in bytes.iter().enumerate() {
            self.in_reply_line = true;
            self.reply_done = false;
            if *byte == b'\n' {
                let last = self.reply_start.get(3) != Some(&b'-');
                self.reply_start.clear();
                self.in_reply_line = false;
                if last {
                    self.reply_done = true;
                    return Some(i + 1);
                }
            } else if self.reply_start.len() < 4 {
                self.reply_start.push(*byte);
            }
        }
        None
    }

    fn server_at_boundary(&self) -> bool {
        !self.in_reply_line && self.reply_done
    }

    fn client_between_commands(&self) -> bool {
        self.client == Client::Command { length: 0 }
    }

    fn client_idle_limit(&self, normal: Duration) -> Duration {
        normal
    }

    fn goodbye(&self, why: Goodbye) -> Vec<u8> {
        let host = &self.hostname;
        let text = match why {
            Goodbye::Disconnected => format!("421 4.7.0 {host} Disconnected by an administrator"),
            Goodbye::ServerLeft => {
                format!("421 4.4.2 {host} The mail server closed the connection")
            }
            Goodbye::Idle => format!("421 4.4.2 {host} Timeout, closing"),
            Goodbye::LineTooLong | Goodbye::LiteralTooLarge => {
                format!("500 5.5.2 {host} Line too long, closing")
            }
        };
        format!("{text}\r\n").into_bytes()
    }

    fn logout(&self) -> &'static [u8] {
        QUIT
    }

    fn client_logged_out(&self) -> bool {
        self.quit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(smtp: &mut SmtpDialect, bytes: &[u8]) -> Result<Vec<u8>, Goodbye> {
        let mut up = Vec::new();
        smtp.client_sent(bytes, &mut up, &mut Vec::new())?;
        Ok(up)
    }

    #[test]
    fn a_quit_never_lands_inside_a_message() {
        let mut smtp = SmtpDialect::new(1000, "mx");
        let sent = b"MAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\nSubject: x\r\n\r\nQUIT\r\n";
        assert_eq!(send(&mut smtp, sent).expect("relayed"), sent);
        assert!(!smtp.client_between_commands(), "inside the message");
        send(&mut smtp, b"..dotted\r\n.\r\n").expect("relayed");
        assert!(smtp.client_between_commands(), "after <CRLF>.<CRLF>");
        send(&mut smtp, b"BDAT 10 LAST\r\n0123").expect("relayed");
        assert!(!smtp.client_between_commands(), "inside a chunk");
        send(&mut smtp, b"456789").expect("relayed");
        assert!(smtp.client_between_commands(), "after the chunk");
        assert!(!smtp.client_logged_out(), "QUIT inside a message is data");
        send(&mut smtp, b"QUIT\r\n").expect("relayed");
        assert!(smtp.client_logged_out());
    }

    #[test]
    fn a_command_line_is_bounded_but_message_lines_are_not() {
        let mut smtp = SmtpDialect::new(64, "mx");
        assert_eq!(send(&mut smtp, &[b'x'; 100]), Err(Goodbye::LineTooLong));
        let mut smtp = SmtpDialect::new(64, "mx");
        send(&mut smtp, b"DATA\r\n").expect("relayed");
        assert!(send(&mut smtp, &[b'y'; 4096]).is_ok());
    }

    #[test]
    fn a_reply_ends_at_its_last_line() {
        let mut smtp = SmtpDialect::new(64, "mx");
        let replies = b"250-mx\r\n250-PIPELINING\r\n250 8BITMIME\r\n354 go on\r\n";
        assert_eq!(smtp.server_boundary(replies), Some(38));
        assert!(smtp.server_at_boundary());
        assert_eq!(smtp.server_boundary(&replies[38..45]), None);
        assert!(!smtp.server_at_boundary());
        assert_eq!(smtp.server_boundary(&replies[45..]), Some(4));
        assert!(smtp.server_at_boundary());
    }
}
