//! SMTP submission (RFC 5321 with STARTTLS, AUTH PLAIN/LOGIN and enhanced status codes): a user
//! authenticates and is registered as a channel; this node delivers no mail, so `MAIL FROM`
//! answers `554 5.3.2`. Lines are read with a bound; a silent or abusive client is closed.

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine;
use tokio::io::{AsyncWriteExt, BufReader};

use super::lines::{read_line, Read};
use super::{AuthError, ChannelHandle, ChannelOpen, MailBackend, MailStream, MailUser};
use super::{Endpoint, Protocol, ProtocolSettings};

struct Session {
    remote: SocketAddr,
    settings: Arc<ProtocolSettings>,
    backend: Arc<dyn MailBackend>,
    helo: Option<String>,
    user: Option<(MailUser, ChannelHandle)>,
}

enum Next {
    Continue,
    StartTls,
    Close,
}

/// Serves one SMTP submission connection until QUIT, failure, timeout, or an administrator's
/// disconnect.
pub async fn serve(
    stream: MailStream,
    remote: SocketAddr,
    settings: Arc<ProtocolSettings>,
    backend: Arc<dyn MailBackend>,
) {
    let mut session = Session {
        remote,
        settings,
        backend,
        helo: None,
        user: None,
    };
    let mut reader = BufReader::new(stream);
    let greeting = format!("220 {} ESMTP sessionplane", session.settings.hostname);
    if reply(&mut reader, &greeting).await.is_err() {
        return;
    }
    loop {
        match session.next_line(&mut reader).await {
            Ok(Read::Line(line)) => match session.handle(&mut reader, &line).await {
                Ok(Next::Continue) => {}
                Ok(Next::StartTls) => match session.start_tls(reader).await {
                    Some(upgraded) => reader = upgraded,
                    None => return,
                },
                Ok(Next::Close) | Err(_) => return,
            },
            Ok(Read::TooLong) => {
                let _ = reply(&mut reader, "500 5.5.6 Line too long").await;
                return;
            }
            Ok(Read::Idle) => {
                let host = &session.settings.hostname;
                let _ = reply(&mut reader, &format!("421 4.4.2 {host} Timeout, closing")).await;
                return;
            }
            Ok(Read::Closed) | Err(_) => return,
        }
    }
}

async fn reply(reader: &mut BufReader<MailStream>, line: &str) -> std::io::Result<()> {
    let stream = reader.get_mut();
    stream.write_all(line.as_bytes()).await?;
    stream.write_all(b"\r\n").await?;
    stream.flush().await
}

impl Session {
    /// The next client line, or why there is none: idle, or disconnected by an administrator
    /// (answered here with 421 and reported as closed).
    async fn next_line(&mut self, reader: &mut BufReader<MailStream>) -> std::io::Result<Read> {
        let max = self.settings.max_line_bytes;
        let idle = self.settings.idle_timeout;
        let read = tokio::time::timeout(idle, read_line(reader, max));
        let disconnected = async {
            match self.user.as_mut() {
                Some((_, channel)) => channel.disconnected().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            read = read => read.unwrap_or(Ok(Read::Idle)),
            _ = disconnected => {
                let host = &self.settings.hostname;
                reply(reader, &format!("421 4.7.0 {host} Disconnected by an administrator")).await?;
                Ok(Read::Closed)
            }
        }
    }

    fn encrypted(reader: &BufReader<MailStream>) -> bool {
        reader.get_ref().is_encrypted()
    }

    async fn handle(
        &mut self,
        reader: &mut BufReader<MailStream>,
        line: &str,
    ) -> std::io::Result<Next> {
        let (verb, argument) = match line.split_once(' ') {
            Some((verb, rest)) => (verb.to_ascii_uppercase(), rest.trim()),
            None => (line.trim().to_ascii_uppercase(), ""),
        };
        let answer = match verb.as_str() {
            "EHLO" | "HELO" if argument.is_empty() => "501 5.5.4 Give your host name".to_string(),
            "EHLO" => {
                self.helo = Some(argument.to_string());
                self.ehlo_lines(reader)
            }
            "HELO" => {
                self.helo = Some(argument.to_string());
                format!("250 {}", self.settings.hostname)
            }
            "STARTTLS" => match self.may_start_tls(reader) {
                Ok(()) => {
                    reply(reader, "220 2.0.0 Ready to start TLS").await?;
                    return Ok(Next::StartTls);
                }
                Err(refusal) => refusal.to_string(),
            },
            "AUTH" => self.auth(reader, argument).await?,
            "MAIL" if self.user.is_none() => "530 5.7.0 Authentication required".into(),
            "MAIL" => "554 5.3.2 No delivery on this node".into(),
            "RCPT" | "DATA" | "BDAT" => "503 5.5.1 Bad sequence of commands".into(),
            "NOOP" | "RSET" => "250 2.0.0 OK".into(),
            "VRFY" => "252 2.5.0 Cannot verify users here".into(),
            "QUIT" => {
                reply(reader, "221 2.0.0 Bye").await?;
                return Ok(Next::Close);
            }
            _ => "500 5.5.2 Command not recognized".into(),
        };
        reply(reader, &answer).await?;
        Ok(Next::Continue)
    }

    fn auth_allowed(&self, reader: &BufReader<MailStream>) -> bool {
        Self::encrypted(reader) || self.settings.allow_plaintext_auth
    }

    fn ehlo_lines(&self, reader: &BufReader<MailStream>) -> String {
        let mut lines = vec![
            self.settings.hostname.clone(),
            "ENHANCEDSTATUSCODES".into(),
            "8BITMIME".into(),
            "PIPELINING".into(),
        ];
        if !Self::encrypted(reader) && self.settings.tls.is_some() {
            lines.push("STARTTLS".into());
        }
        if self.auth_allowed(reader) {
            lines.push("AUTH PLAIN LOGIN".into());
        }
        let last = lines.len() - 1;
        lines
            .iter()
            .enumerate()
            .map(|(i, l)| format!("250{}{l}", if i == last { ' ' } else { '-' }))
            .collect::<Vec<_>>()
            .join("\r\n")
    }

    fn may_start_tls(&self, reader: &BufReader<MailStream>) -> Result<(), &'static str> {
        if Self::encrypted(reader) {
            return Err("503 5.5.1 Already encrypted");
        }
        if self.settings.tls.is_none() {
            return Err("454 4.7.0 TLS not available");
        }
        if self.helo.is_none() {
            return Err("503 5.5.1 Send EHLO first");
        }
        Ok(())
    }

    /// Upgrades to TLS. Bytes the client pipelined after STARTTLS are discarded with the
    /// buffered reader, and the session starts over, as RFC 3207 requires.
    async fn start_tls(&mut self, reader: BufReader<MailStream>) -> Option<BufReader<MailStream>> {
        let acceptor = self.settings.tls.clone()?;
        let stream = reader.into_inner();
        let upgraded = stream
            .start_tls(&acceptor, self.settings.handshake_timeout)
            .await
            .ok()?;
        self.helo = None;
        self.user = None;
        Some(BufReader::new(upgraded))
    }

    async fn auth(
        &mut self,
        reader: &mut BufReader<MailStream>,
        argument: &str,
    ) -> std::io::Result<String> {
        if self.helo.is_none() || self.user.is_some() {
            return Ok("503 5.5.1 Bad sequence of commands".into());
        }
        if !self.auth_allowed(reader) {
            return Ok("530 5.7.0 Must issue a STARTTLS command first".into());
        }
        let (mechanism, initial) = match argument.split_once(' ') {
            Some((m, rest)) => (m.to_ascii_uppercase(), Some(rest.trim().to_string())),
            None => (argument.to_ascii_uppercase(), None),
        };
        let credentials = match mechanism.as_str() {
            "PLAIN" => self.plain(reader, initial).await?,
            "LOGIN" => self.login(reader, initial).await?,
            _ => return Ok("504 5.5.4 Unrecognized authentication type".into()),
        };
        let (username, password) = match credentials {
            Ok(pair) => pair,
            Err(refusal) => return Ok(refusal),
        };
        Ok(self.authenticate(reader, &username, &password).await)
    }

    async fn authenticate(
        &mut self,
        reader: &BufReader<MailStream>,
        username: &str,
        password: &str,
    ) -> String {
        let user = match self
            .backend
            .authenticate(username, password, self.remote)
            .await
        {
            Ok(user) => user,
            Err(AuthError::Rejected) => {
                return "535 5.7.8 Authentication credentials invalid".into()
            }
            Err(AuthError::Banned { .. }) => {
                return "454 4.7.0 Too many failed logins, retry later".into()
            }
            Err(AuthError::Unavailable(_)) => {
                return "454 4.7.0 Temporary authentication failure".into()
            }
        };
        let mut info = std::collections::BTreeMap::new();
        if let Some(helo) = &self.helo {
            info.insert("ehlo".to_string(), helo.clone());
        }
        let open = ChannelOpen {
            protocol: Protocol::Smtp,
            endpoint: Endpoint::SmtpServer,
            user: user.clone(),
            remote: self.remote,
            encrypted: Self::encrypted(reader),
            info,
        };
        match self.backend.open_channel(open).await {
            Ok(channel) => {
                self.user = Some((user, channel));
                "235 2.7.0 Authentication successful".into()
            }
            Err(_) => "454 4.7.0 Temporary authentication failure".into(),
        }
    }

    /// A SASL response: the initial one, or the next line after a `334` challenge.
    async fn response(
        &mut self,
        reader: &mut BufReader<MailStream>,
        initial: Option<String>,
        challenge: &str,
    ) -> std::io::Result<Result<Vec<u8>, String>> {
        let raw = match initial {
            Some(raw) => raw,
            None => {
                reply(reader, &format!("334 {challenge}")).await?;
                match read_line(reader, self.settings.max_literal_bytes).await? {
                    Read::Line(line) => line,
                    Read::TooLong => return Ok(Err("501 5.5.2 Response too long".into())),
                    Read::Closed | Read::Idle => return Ok(Err("501 5.5.2 No response".into())),
                }
            }
        };
        if raw.trim() == "*" {
            return Ok(Err("501 5.0.0 Authentication canceled".into()));
        }
        Ok(base64::engine::general_purpose::STANDARD
            .decode(raw.trim())
            .map_err(|_| "501 5.5.2 Cannot decode the response".to_string()))
    }

    async fn plain(
        &mut self,
        reader: &mut BufReader<MailStream>,
        initial: Option<String>,
    ) -> std::io::Result<Result<(String, String), String>> {
        let decoded = match self.response(reader, initial, "").await? {
            Ok(decoded) => decoded,
            Err(refusal) => return Ok(Err(refusal)),
        };
        let parts: Vec<&[u8]> = decoded.split(|b| *b == 0).collect();
        Ok(match parts.as_slice() {
            [_, user, password] => Ok((
                String::from_utf8_lossy(user).into_owned(),
                String::from_utf8_lossy(password).into_owned(),
            )),
            _ => Err("501 5.5.2 Malformed PLAIN response".into()),
        })
    }

    async fn login(
        &mut self,
        reader: &mut BufReader<MailStream>,
        initial: Option<String>,
    ) -> std::io::Result<Result<(String, String), String>> {
        let user = match self.response(reader, initial, "VXNlcm5hbWU6").await? {
            Ok(user) => String::from_utf8_lossy(&user).into_owned(),
            Err(refusal) => return Ok(Err(refusal)),
        };
        let password = match self.response(reader, None, "UGFzc3dvcmQ6").await? {
            Ok(password) => String::from_utf8_lossy(&password).into_owned(),
            Err(refusal) => return Ok(Err(refusal)),
        };
        Ok(Ok((user, password)))
    }
}
