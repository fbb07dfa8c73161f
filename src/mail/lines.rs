//! Bounded line reads for the mail protocols: a client never makes the server buffer more than
//! the configured line length, whatever it sends.

use tokio::io::{AsyncBufRead, AsyncBufReadExt};

/// One line read from the client.
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    Line(String),
    TooLong,
    Closed,
    Idle,
}

/// Reads one line (LF or CRLF) of at most `max` bytes. A longer one is refused as soon as it
/// is: the rest of it is left unread, so the connection cannot go on after [`Read::TooLong`].
pub async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    max: usize,
) -> std::io::Result<Read> {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::collection::vec;
    use proptest::prelude::*;
    use tokio::io::{AsyncReadExt, BufReader};

    use super::*;
    use crate::mail::testing::block_on;

    /// What the reads of `input` must give, up to the first that ends the connection.
    fn model(input: &[u8], max: usize) -> Vec<Read> {
        let mut reads = Vec::new();
        let mut rest = input;
        loop {
            let Some(end) = rest.iter().position(|b| *b == b'\n') else {
                reads.push(match rest.len() > max + 2 {
                    true => Read::TooLong,
                    false => Read::Closed,
                });
                return reads;
            };
            let (line, after) = rest.split_at(end + 1);
            if line.len() > max + 2 {
                reads.push(Read::TooLong);
                return reads;
            }
            let text = line.strip_suffix(b"\n").unwrap_or(line);
            let mut text = text.to_vec();
            while matches!(text.last(), Some(b'\n' | b'\r')) {
                text.pop();
            }
            reads.push(Read::Line(String::from_utf8_lossy(&text).into_owned()));
            rest = after;
        }
    }

    fn read_all(input: &[u8], capacity: usize, max: usize) -> Vec<Read> {
        block_on(async {
            let mut reader = BufReader::with_capacity(capacity, input);
            let mut reads = Vec::new();
            loop {
                let read = read_line(&mut reader, max).await.unwrap();
                let last = !matches!(read, Read::Line(_));
                reads.push(read);
                if last {
                    return reads;
                }
            }
        })
    }

    fn client_bytes() -> impl Strategy<Value = Vec<u8>> {
        let piece = prop_oneof![
            vec(any::<u8>(), 0..24),
            Just(b"\r\n".to_vec()),
            Just(b"\n".to_vec()),
            Just(b"\r".to_vec()),
            vec(Just(b'x'), 0..80),
        ];
        vec(piece, 0..24).prop_map(|pieces| pieces.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// However the bytes arrive, the reads are the model's, and no line is longer than the
        /// limit (three bytes a byte at most, where an invalid byte becomes U+FFFD).
        #[test]
        fn reads_do_not_depend_on_how_the_bytes_arrive(
            input in client_bytes(),
            capacity in 1usize..64,
            max in 0usize..64,
        ) {
            let reads = read_all(&input, capacity, max);
            prop_assert_eq!(&reads, &model(&input, max));
            for read in &reads {
                if let Read::Line(line) = read {
                    prop_assert!(line.len() <= 3 * (max + 2));
                }
            }
        }

        /// A client that never ends its line is refused once it passes the limit: the read
        /// does not wait for a line end that never comes.
        #[test]
        fn a_line_that_never_ends_stops_at_the_limit(
            max in 0usize..20_000,
            capacity in 1usize..9_000,
            byte in any::<u8>().prop_filter("not a line end", |b| *b != b'\n'),
        ) {
            let read = block_on(async {
                let endless = tokio::io::repeat(byte);
                let mut reader = BufReader::with_capacity(capacity, endless);
                tokio::time::timeout(Duration::from_secs(10), read_line(&mut reader, max)).await
            });
            prop_assert!(matches!(read, Ok(Ok(Read::TooLong))), "{:?}", read);
        }

        /// Nothing more than the line and the chunk that overflows it is read.
        #[test]
        fn a_refused_line_is_not_read_past_its_chunk(max in 0usize..512, capacity in 1usize..512) {
            let input = vec![b'y'; 4 * (max + capacity + 2)];
            let left = block_on(async {
                let mut reader = BufReader::with_capacity(capacity, &input[..]);
                let read = read_line(&mut reader, max).await.unwrap();
                assert_eq!(read, Read::TooLong);
                let mut rest = Vec::new();
                reader.read_to_end(&mut rest).await.unwrap();
                rest.len()
            });
            prop_assert!(input.len() - left <= max + 2 + capacity);
        }
    }
}
