//! Logging in to the submission server for a user: the greeting, `EHLO`, STARTTLS when
//! configured (and `EHLO` again), then `AUTH PLAIN`; what the server's `EHLO` offered is kept
//! for the client.

use tokio::io::BufReader;

use super::{MailUpstream, Server, UpstreamError, UpstreamStream};

/// A logged-in connection to the submission server, ready to be relayed.
pub struct SmtpBackend {
    pub stream: BufReader<UpstreamStream>,
}

/// `QUIT`, sent when the channel ends.
pub const QUIT: &[u8] = b"QUIT\r\n";

/// The extensions of a server's `EHLO` that the relay passes on to clients: they change how
/// the envelope and the message travel, which the relay carries byte for byte. `AUTH` and
/// `STARTTLS` are the listener's own.
pub const RELAYED_EXTENSIONS: &[&str] = &[
    "PIPELINING",
    "8BITMIME",
    "SMTPUTF8",
    "SIZE",
    "ENHANCEDSTATUSCODES",
    "DSN",
    "CHUNKING",
    "BINARYMIME",
];

/// A server's reply: its code and its lines' texts.
struct Reply {
    code: u16,
    lines: Vec<String>,
}

impl Reply {
    fn text(&self) -> String {
        format!("{} {}", self.code, self.lines.join(" / "))
    }
}

impl MailUpstream {
    /// Connects to the submission server and logs in as `user` (`login@domain`; `password`
    /// is only sent for a passthrough login). `helo` is the name sessionplane greets with.
    pub async fn smtp_login(
        &self,
        server: &Server,
        helo: &str,
        user: &str,
        password: &str,
    ) -> Result<SmtpBackend, UpstreamError> {
        let mut stream = self.smtp_hello(server, helo).await?;
        let response = self.login.plain(user, password);
        server
            .send(&mut stream, &format!("AUTH PLAIN {response}\r\n"))
            .await?;
        let accepted = reply(server, &mut stream).await?;
        if accepted.code != 235 {
            return Err(server.refused(&accepted.text()));
        }
        Ok(SmtpBackend { stream })
    }

    /// Asks the submission server what it offers (greeting, `EHLO`, STARTTLS, `EHLO`, `QUIT`),
    /// without logging in: for the listener's own `EHLO` answer before anyone has.
    pub async fn probe_smtp(&self, helo: &str) -> Result<(), UpstreamError> {
        let Some(server) = self.smtp.as_ref() else {
            return Ok(());
        };
        let mut stream = self.smtp_hello(server, helo).await?;
        server.send(&mut stream, "QUIT\r\n").await
    }

    /// The extensions a client is offered: the server's last `EHLO`, as far as the relay
    /// carries them; before any, the ones every submission server has.
    pub fn smtp_extensions(&self) -> Vec<String> {
        match self.smtp_extensions.lock() {
            Ok(known) if !known.is_empty() => known.clone(),
            _ => ["ENHANCEDSTATUSCODES", "8BITMIME", "PIPELINING"]
                .map(String::from)
                .to_vec(),
        }
    }

    /// A greeted connection to the submission server, under TLS when configured; what its
    /// `EHLO` offers is kept for [`MailUpstream::smtp_extensions`].
    async fn smtp_hello(
        &self,
        server: &Server,
        helo: &str,
    ) -> Result<BufReader<UpstreamStream>, UpstreamError> {
        let mut stream = BufReader::new(server.connect().await?);
        let greeting = reply(server, &mut stream).await?;
        if greeting.code != 220 {
            return Err(server.refused(&greeting.text()));
        }
        let mut extensions = ehlo(server, &mut stream, helo).await?;
        if server.wants_starttls() {
            server.send(&mut stream, "STARTTLS\r\n").await?;
            let ready = reply(server, &mut stream).await?;
            if ready.code != 220 {
                return Err(server.refused(&ready.text()));
            }
            if !stream.buffer().is_empty() {
                return Err(server.broken("data after the STARTTLS answer"));
            }
            stream = BufReader::new(server.start_tls(stream.into_inner()).await?);
            extensions = ehlo(server, &mut stream, helo).await?;
        }
        if let Ok(mut known) = self.smtp_extensions.lock() {
            *known = relayed(&extensions);
        }
        Ok(stream)
    }
}

async fn ehlo(
    server: &Server,
    stream: &mut BufReader<UpstreamStream>,
    helo: &str,
) -> Result<Vec<String>, UpstreamError> {
    server.send(stream, &format!("EHLO {helo}\r\n")).await?;
    let hello = reply(server, stream).await?;
    if hello.code != 250 {
        return Err(server.refused(&hello.text()));
    }
    Ok(hello.lines.into_iter().skip(1).collect())
}

/// Reads one reply, its continuation lines (`250-…`) to its last (`250 …`).
async fn reply(
    server: &Server,
    stream: &mut BufReader<UpstreamStream>,
) -> Result<Reply, UpstreamError> {
    let mut lines = Vec::new();
    loop {
        let line = server.line(stream).await?;
        let code = line
            .get(..3)
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(|| {
                server.broken(format!("not a reply: {:?}", crate::mail::one_line(&line)))
            })?;
        let last = line.as_bytes().get(3) != Some(&b'-');
        lines.push(line.get(4..).unwrap_or("").to_string());
        if last {
            return Ok(Reply { code, lines });
        }
    }
}

/// The extensions (with their parameters) a client is offered, from a server's `EHLO` lines.
fn relayed(extensions: &[String]) -> Vec<String> {
    extensions
        .iter()
        .filter(|line| {
            let keyword = line.split_ascii_whitespace().next().unwrap_or("");
            RELAYED_EXTENSIONS
                .iter()
                .any(|e| e.eq_ignore_ascii_case(keyword))
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_the_relay_carries_is_offered() {
        let said: Vec<String> = [
            "PIPELINING",
            "SIZE 10240000",
            "STARTTLS",
            "AUTH PLAIN LOGIN",
            "8BITMIME",
            "SMTPUTF8",
            "VRFY",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            relayed(&said),
            ["PIPELINING", "SIZE 10240000", "8BITMIME", "SMTPUTF8"]
        );
    }
}
