//! Logging in to the IMAP server for a user: the greeting, STARTTLS when configured, then
//! `AUTHENTICATE PLAIN` (as the master user on the user's behalf, or with the user's own
//! credentials), and the capabilities the server has for the logged-in user.

use tokio::io::BufReader;

use super::{MailUpstream, Server, UpstreamError, UpstreamStream};

/// A logged-in connection to the IMAP server, ready to be relayed.
pub struct ImapBackend {
    pub stream: BufReader<UpstreamStream>,
    /// What the server can do for the user now, less what the relay does not pass on
    /// (`COMPRESS`, `STARTTLS`).
    pub capabilities: String,
}

/// The tags sessionplane's own commands carry on the server's connection.
const STARTTLS_TAG: &str = "sp1";
const LOGIN_TAG: &str = "sp2";
const CAPABILITY_TAG: &str = "sp3";
/// The tag of the `LOGOUT` sent when the channel ends.
pub const LOGOUT: &[u8] = b"sp9 LOGOUT\r\n";

impl MailUpstream {
    /// Connects to the IMAP server and logs in as `user` (`login@domain`; `password` is only
    /// sent for a passthrough login).
    pub async fn imap_login(
        &self,
        server: &Server,
        user: &str,
        password: &str,
    ) -> Result<ImapBackend, UpstreamError> {
        let mut stream = BufReader::new(server.connect().await?);
        let greeting = server.line(&mut stream).await?;
        if !greeting.starts_with("* OK") {
            return Err(server.refused(&greeting));
        }
        if server.wants_starttls() {
            stream = starttls(server, stream).await?;
        }
        let response = self.login.plain(user, password);
        // With SASL-IR (RFC 4959) the response goes with the command: one round trip less.
        match greeting.to_ascii_uppercase().contains("SASL-IR") {
            true => {
                let command = format!("{LOGIN_TAG} AUTHENTICATE PLAIN {response}\r\n");
                server.send(&mut stream, &command).await?;
            }
            false => {
                let command = format!("{LOGIN_TAG} AUTHENTICATE PLAIN\r\n");
                server.send(&mut stream, &command).await?;
                let go_on = server.line(&mut stream).await?;
                if !go_on.starts_with('+') {
                    return Err(server.refused(&go_on));
                }
                server.send(&mut stream, &format!("{response}\r\n")).await?;
            }
        }
        let (answer, mut capabilities) = tagged(server, &mut stream, LOGIN_TAG).await?;
        if !is_ok(&answer, LOGIN_TAG) {
            return Err(server.refused(&answer));
        }
        if capabilities.is_none() {
            server
                .send(&mut stream, &format!("{CAPABILITY_TAG} CAPABILITY\r\n"))
                .await?;
            capabilities = tagged(server, &mut stream, CAPABILITY_TAG).await?.1;
        }
        let capabilities = relayed(capabilities.as_deref().unwrap_or("IMAP4rev1"));
        Ok(ImapBackend {
            stream,
            capabilities,
        })
    }
}

async fn starttls(
    server: &Server,
    mut stream: BufReader<UpstreamStream>,
) -> Result<BufReader<UpstreamStream>, UpstreamError> {
    server
        .send(&mut stream, &format!("{STARTTLS_TAG} STARTTLS\r\n"))
        .await?;
    let (answer, _) = tagged(server, &mut stream, STARTTLS_TAG).await?;
    if !is_ok(&answer, STARTTLS_TAG) {
        return Err(server.refused(&answer));
    }
    // Anything the server sent past its answer would be taken as said under TLS.
    if !stream.buffer().is_empty() {
        return Err(server.broken("data after the STARTTLS answer"));
    }
    let tls = server.start_tls(stream.into_inner()).await?;
    Ok(BufReader::new(tls))
}

/// Reads to the answer tagged `tag`, noting the capabilities said on the way (an untagged
/// `CAPABILITY` or a `[CAPABILITY …]` code).
async fn tagged(
    server: &Server,
    stream: &mut BufReader<UpstreamStream>,
    tag: &str,
) -> Result<(String, Option<String>), UpstreamError> {
    let mut capabilities = None;
    loop {
        let line = server.line(stream).await?;
        if let Some(said) = capabilities_in(&line) {
            capabilities = Some(said.to_string());
        }
        if line.starts_with(&format!("{tag} ")) {
            return Ok((line, capabilities));
        }
        if line.starts_with("* BYE") {
            return Err(server.refused(&line));
        }
    }
}

fn is_ok(answer: &str, tag: &str) -> bool {
    answer
        .strip_prefix(tag)
        .is_some_and(|rest| rest.trim_start().to_ascii_uppercase().starts_with("OK"))
}

/// The capability list in `* CAPABILITY …` or in a `[CAPABILITY …]` response code.
fn capabilities_in(line: &str) -> Option<&str> {
    if let Some(list) = line.strip_prefix("* CAPABILITY ") {
        return Some(list.trim());
    }
    let start = line.find("[CAPABILITY ")? + "[CAPABILITY ".len();
    let end = line[start..].find(']')? + start;
    Some(line[start..end].trim())
}

/// The server's capabilities as the client is told them: what the relay refuses left out.
fn relayed(capabilities: &str) -> String {
    capabilities
        .split_ascii_whitespace()
        .filter(|c| {
            let c = c.to_ascii_uppercase();
            !c.starts_with("COMPRESS=") && c != "STARTTLS" && c != "LOGINDISABLED"
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_are_read_from_either_form_and_filtered() {
        assert_eq!(
            capabilities_in("sp2 OK [CAPABILITY IMAP4rev1 IDLE COMPRESS=DEFLATE] Logged in"),
            Some("IMAP4rev1 IDLE COMPRESS=DEFLATE")
        );
        assert_eq!(
            capabilities_in("* CAPABILITY IMAP4rev1 STARTTLS"),
            Some("IMAP4rev1 STARTTLS")
        );
        assert_eq!(capabilities_in("sp2 OK Logged in"), None);
        assert_eq!(
            relayed("IMAP4rev1 IDLE COMPRESS=DEFLATE STARTTLS LITERAL+"),
            "IMAP4rev1 IDLE LITERAL+"
        );
        assert!(is_ok("sp2 OK done", "sp2"));
        assert!(!is_ok("sp2 NO [AUTHENTICATIONFAILED] no", "sp2"));
        assert!(!is_ok("sp20 OK", "sp2"));
    }
}
