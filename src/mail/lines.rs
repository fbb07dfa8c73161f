//! Bounded line reads for the mail protocols: a client never makes the server buffer more than
//! the configured line length, whatever it sends.

use tokio::io::{AsyncBufReadExt, BufReader};

use super::MailStream;

/// One line read from the client.
pub enum Read {
    Line(String),
    TooLong,
    Closed,
    Idle,
}

/// Reads one line (LF or CRLF) of at most `max` bytes; a longer one is consumed and refused.
pub async fn read_line(reader: &mut BufReader<MailStream>, max: usize) -> std::io::Result<Read> {
    let mut line = Vec::new();
    loop {
        let buffer = reader.fill_buf().await?;
        if buffer.is_empty() {
            return Ok(Read::Closed);
        }
        let (take, complete) = match buffer.iter().position(|b| *b == b'\n') {
            Some(end) => (end + 1, true),
            None => (buffer.len(), false),
        };
        if line.len() + take > max + 2 {
            reader.consume(take);
            return Ok(Read::TooLong);
        }
        line.extend_from_slice(&buffer[..take]);
        reader.consume(take);
        if complete {
            while matches!(line.last(), Some(b'\n' | b'\r')) {
                line.pop();
            }
            return Ok(Read::Line(String::from_utf8_lossy(&line).into_owned()));
        }
    }
}
