//! SMTP submission (RFC 5321 with STARTTLS, AUTH PLAIN/LOGIN and enhanced status codes): a user
//! authenticates and is registered as a channel. With a submission server upstream
//! (`[mail.upstream]`), the user is logged in there too and the rest of the session (envelope,
//! message, replies) is relayed to it (`relay`); without one this node delivers no mail, so
//! `MAIL FROM` answers `554 5.3.2`. Lines are read with a bound; a silent or abusive client is
//! closed.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::BufReader;

use super::lines::{read_line, Read};
use super::relay::smtp::SmtpDialect;
use super::relay::{self, Sides};
use super::sasl::{self, SaslError};
use super::upstream::smtp::SmtpBackend;
use super::OpenError;
use super::{one_line, AuthError, ChannelHandle, ChannelOpen, MailBackend, MailStream, MailUser};
use super::{Endpoint, Protocol, ProtocolSettings};

struct Session {
    remote: SocketAddr,
    settings: Arc<ProtocolSettings>,
    backend: Arc<dyn MailBackend>,
    helo: Option<String>,
    user: Option<(MailUser, ChannelHandle)>,
    /// The submission server's connection, logged in for the user, once there is one.
    upstream: Option<SmtpBackend>,
}

enum Next {
    Continue,
    StartTls,
    Close,
    Relay,
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
        upstream: None,
    };
    let mut reader = BufReader::new(stream);
    let greeting = format!("220 {} ESMTP sessionplane", session.settings.hostname);
    if reply(&mut reader, &greeting).await.is_err() {
        return;
    }
    loop {
        let max = session.settings.max_line_bytes;
        let line = match session.next_line(&mut reader, max).await {
            Ok(Some(line)) => line,
            Ok(None) | Err(_) => return,
        };
        match session.handle(&mut reader, &line).await {
            Ok(Next::Continue) => {}
            Ok(Next::StartTls) => match session.start_tls(reader).await {
                Some(upgraded) => reader = upgraded,
                None => return,
            },
            Ok(Next::Relay) => return session.relay(reader).await,
            Ok(Next::Close) | Err(_) => return,
        }
    }
}

/// A command line's verb, in upper case, and its argument, trimmed.
fn parse(line: &str) -> (String, &str) {
    match line.split_once(' ') {
        Some((verb, rest)) => (verb.to_ascii_uppercase(), rest.trim()),
        None => (line.trim().to_ascii_uppercase(), ""),
    }
}

async fn reply(reader: &mut BufReader<MailStream>, line: &str) -> std::io::Result<()> {
    super::stream::write_line(reader.get_mut(), line).await
}

impl Session {
    /// Relays the authenticated channel to the submission server until it ends.
    async fn relay(mut self, reader: BufReader<MailStream>) {
        let (Some(upstream), Some((_, channel))) = (self.upstream.take(), self.user.as_mut())
        else {
            return;
        };
        let sides = Sides {
            client_pending: reader.buffer().to_vec(),
            client: reader.into_inner(),
            server_pending: upstream.stream.buffer().to_vec(),
            server: upstream.stream.into_inner(),
        };
        let dialect = SmtpDialect::new(self.settings.max_line_bytes, &self.settings.hostname);
        let ended = relay::relay(sides, channel, dialect, self.settings.idle_timeout).await;
        tracing::debug!(channel_id = %channel.channel_id, ?ended, "SMTP relay ended");
    }

    /// The next client line of at most `max` bytes, or `None` when the session ends: the client
    /// left, or was told why it ends (a line too long, idle, disconnected by an administrator).
    async fn next_line(
        &mut self,
        reader: &mut BufReader<MailStream>,
        max: usize,
    ) -> std::io::Result<Option<String>> {
        let idle = self.settings.idle_timeout;
        let read = tokio::time::timeout(idle, read_line(reader, max));
        let disconnected = async {
            match self.user.as_mut() {
                Some((_, channel)) => channel.disconnected().await,
                None => std::future::pending().await,
            }
        };
        let read = tokio::select! {
            read = read => Some(read.unwrap_or(Ok(Read::Idle))?),
            _ = disconnected => None,
        };
        let host = &self.settings.hostname;
        let farewell = match read {
            Some(Read::Line(line)) => return Ok(Some(line)),
            Some(Read::Closed) => return Ok(None),
            Some(Read::TooLong) => "500 5.5.6 Line too long".to_string(),
            Some(Read::Idle) => format!("421 4.4.2 {host} Timeout, closing"),
            None => format!("421 4.7.0 {host} Disconnected by an administrator"),
        };
        reply(reader, &farewell).await?;
        Ok(None)
    }

    fn encrypted(reader: &BufReader<MailStream>) -> bool {
        reader.get_ref().is_encrypted()
    }

    async fn handle(
        &mut self,
        reader: &mut BufReader<MailStream>,
        line: &str,
    ) -> std::io::Result<Next> {
        let (verb, argument) = parse(line);
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
            "AUTH" => match self.auth(reader, argument).await? {
                Some(answer) if self.upstream.is_some() => {
                    reply(reader, &answer).await?;
                    return Ok(Next::Relay);
                }
                Some(answer) => answer,
                None => return Ok(Next::Close),
            },
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
        // What the submission server offers, as far as the relay carries it.
        if let Some(upstream) = self.settings.upstream.as_ref().filter(|u| u.smtp.is_some()) {
            lines.truncate(1);
            lines.extend(upstream.smtp_extensions());
        }
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

    /// Runs an AUTH exchange: the answer to give, or `None` when the session ended during it.
    async fn auth(
        &mut self,
        reader: &mut BufReader<MailStream>,
        argument: &str,
    ) -> std::io::Result<Option<String>> {
        if self.helo.is_none() || self.user.is_some() {
            return Ok(Some("503 5.5.1 Bad sequence of commands".into()));
        }
        if !self.auth_allowed(reader) {
            return Ok(Some("530 5.7.0 Must issue a STARTTLS command first".into()));
        }
        let (mechanism, initial) = match argument.split_once(' ') {
            Some((m, rest)) => (m.to_ascii_uppercase(), Some(rest.trim().to_string())),
            None => (argument.to_ascii_uppercase(), None),
        };
        let credentials = match mechanism.as_str() {
            "PLAIN" => self.plain(reader, initial).await?,
            "LOGIN" => self.login(reader, initial).await?,
            _ => return Ok(Some("504 5.5.4 Unrecognized authentication type".into())),
        };
        Ok(Some(match credentials {
            Exchange::Credentials(username, password) => {
                self.authenticate(reader, &username, &password).await
            }
            Exchange::Refused(error) => refusal(&error).into(),
            Exchange::Ended => return Ok(None),
        }))
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
        let upstream = self.settings.upstream.clone();
        let server = upstream
            .as_ref()
            .and_then(|u| u.smtp.as_ref().map(|s| (u, s)));
        if let Some((_, server)) = server {
            info.insert("upstream".to_string(), server.address.clone());
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
                if let Some((upstream, server)) = server {
                    let helo = &self.settings.hostname;
                    match upstream
                        .smtp_login(server, helo, &user.username, password)
                        .await
                    {
                        Ok(logged_in) => self.upstream = Some(logged_in),
                        Err(error) => {
                            tracing::warn!(user = %user.username, %error, "the submission server did not take the user's login");
                            return "451 4.4.1 The mail server is unavailable, try again later"
                                .into();
                        }
                    }
                }
                self.user = Some((user, channel));
                "235 2.7.0 Authentication successful".into()
            }
            Err(OpenError::Locked(message)) => format!("535 5.7.8 {}", one_line(&message)),
            Err(OpenError::Unavailable(_)) => "454 4.7.0 Temporary authentication failure".into(),
        }
    }

    /// A SASL response: the initial one, or the next line after a `334` challenge (bounded by
    /// `max_literal_bytes`, and by the idle timeout like any line). `None`: the session ended.
    async fn response(
        &mut self,
        reader: &mut BufReader<MailStream>,
        initial: Option<String>,
        challenge: &str,
    ) -> std::io::Result<Option<String>> {
        if initial.is_some() {
            return Ok(initial);
        }
        reply(reader, &format!("334 {challenge}")).await?;
        self.next_line(reader, self.settings.max_literal_bytes)
            .await
    }

    async fn plain(
        &mut self,
        reader: &mut BufReader<MailStream>,
        initial: Option<String>,
    ) -> std::io::Result<Exchange> {
        let Some(raw) = self.response(reader, initial, "").await? else {
            return Ok(Exchange::Ended);
        };
        Ok(sasl::plain_credentials(&raw).into())
    }

    async fn login(
        &mut self,
        reader: &mut BufReader<MailStream>,
        initial: Option<String>,
    ) -> std::io::Result<Exchange> {
        let Some(raw) = self.response(reader, initial, "VXNlcm5hbWU6").await? else {
            return Ok(Exchange::Ended);
        };
        let user = match sasl::decode_text(&raw) {
            Ok(user) => user,
            Err(error) => return Ok(Exchange::Refused(error)),
        };
        let Some(raw) = self.response(reader, None, "UGFzc3dvcmQ6").await? else {
            return Ok(Exchange::Ended);
        };
        Ok(sasl::decode_text(&raw)
            .map(|password| (user, password))
            .into())
    }
}

/// How an AUTH exchange ended.
enum Exchange {
    Credentials(String, String),
    Refused(SaslError),
    /// The session ended during it.
    Ended,
}

impl From<Result<(String, String), SaslError>> for Exchange {
    fn from(result: Result<(String, String), SaslError>) -> Self {
        match result {
            Ok((user, password)) => Self::Credentials(user, password),
            Err(error) => Self::Refused(error),
        }
    }
}

fn refusal(error: &SaslError) -> &'static str {
    match error {
        SaslError::Canceled => "501 5.0.0 Authentication canceled",
        SaslError::NotBase64 => "501 5.5.2 Cannot decode the response",
        SaslError::Malformed => "501 5.5.2 Malformed response",
        SaslError::ForeignAuthorization => "535 5.7.8 Acting as another user is not allowed",
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use base64::Engine;
    use proptest::collection::vec;
    use proptest::prelude::*;

    use super::*;
    use crate::mail::testing::{
        self, block_on, converse, lines, recase, Conversation, PASSWORD, USER,
    };
    use crate::mail::BoxFuture;

    fn serve_smtp(
        stream: MailStream,
        remote: SocketAddr,
        settings: Arc<ProtocolSettings>,
        backend: Arc<dyn MailBackend>,
    ) -> BoxFuture<'static, ()> {
        Box::pin(serve(stream, remote, settings, backend))
    }

    const WITHIN: Duration = Duration::from_secs(10);

    fn talk(input: &[u8]) -> Conversation {
        let settings = testing::settings(Duration::from_secs(5));
        block_on(converse(serve_smtp, settings, input, false, WITHIN))
    }

    fn b64(text: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(text)
    }

    /// Bytes a client might send: noise, and pieces of SMTP.
    fn client_bytes() -> impl Strategy<Value = Vec<u8>> {
        let words = [
            "EHLO x",
            "HELO x",
            "AUTH PLAIN",
            "AUTH LOGIN",
            "AUTH PLAIN AGFAYg==",
            "AUTH CRAM-MD5",
            "MAIL FROM:<a@b>",
            "RCPT TO:<b@c>",
            "DATA",
            "NOOP",
            "RSET",
            "VRFY bob",
            "STARTTLS",
            "QUIT",
            "*",
            "=",
            " ",
            "\r\n",
            "\n",
        ];
        let piece = prop_oneof![
            vec(any::<u8>(), 0..32),
            proptest::sample::select(words.to_vec()).prop_map(|w| w.as_bytes().to_vec()),
            Just(b"\r\n".to_vec()),
            Just(format!("AUTH PLAIN {}", b64(&format!("\0{USER}\0{PASSWORD}"))).into_bytes()),
            vec(Just(b'x'), 200..400),
        ];
        vec(piece, 0..24).prop_map(|pieces| pieces.concat())
    }

    /// A command, its verb apart: (verb, argument).
    fn command() -> impl Strategy<Value = (&'static str, String)> {
        let credentials = b64(&format!("\0{USER}\0{PASSWORD}"));
        proptest::sample::select(vec![
            ("EHLO", "client.example".to_string()),
            ("HELO", "client.example".to_string()),
            ("NOOP", String::new()),
            ("RSET", String::new()),
            ("VRFY", "bob".to_string()),
            ("MAIL", "FROM:<a@example.com>".to_string()),
            ("RCPT", "TO:<b@example.com>".to_string()),
            ("AUTH", format!("PLAIN {credentials}")),
            ("AUTH", "PLAIN bm90IHBsYWlu".to_string()),
            ("AUTH", "PLAIN !!".to_string()),
            ("AUTH", "KERBEROS_V4".to_string()),
            ("HELP", String::new()),
        ])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn parse_takes_any_line(line in any::<String>()) {
            let (verb, argument) = parse(&line);
            prop_assert!(verb.len() <= line.len());
            prop_assert!(argument.len() <= line.len());
            prop_assert_eq!(argument, argument.trim());
            prop_assert_eq!(verb.clone(), verb.to_ascii_uppercase());
        }

        /// Verbs are case-insensitive, and spaces around the argument do not count.
        #[test]
        fn parse_ignores_verb_case_and_spacing(
            (verb, argument) in command(),
            flips in vec(any::<bool>(), 8),
            gap in 1usize..4,
            trailing in 0usize..3,
        ) {
            let canonical = format!("{verb} {argument}");
            let mutated = format!("{}{}{argument}{}", recase(verb, &flips), " ".repeat(gap), " ".repeat(trailing));
            let (canonical_verb, canonical_argument) = parse(&canonical);
            let (mutated_verb, mutated_argument) = parse(&mutated);
            prop_assert_eq!(canonical_verb, mutated_verb);
            prop_assert_eq!(canonical_argument, mutated_argument);
        }

        /// Whatever a client sends, the server answers in bounded lines, a bounded amount per
        /// line it was sent, and ends once the client has gone.
        #[test]
        fn arbitrary_bytes_get_bounded_answers_and_an_end(input in client_bytes()) {
            let conversation = talk(&input);
            prop_assert!(conversation.ended, "the server did not end");
            let said = lines(&conversation.said);
            for line in &said {
                prop_assert!(line.len() <= 256, "{}", line);
            }
            let sent = input.iter().filter(|b| **b == b'\n').count();
            prop_assert!(said.len() <= 8 * (sent + 1), "{} lines for {}", said.len(), sent);
        }

        /// A script answers the same whatever the case of its verbs and the spaces before
        /// their arguments.
        #[test]
        fn verb_case_and_spacing_do_not_change_the_answers(
            script in vec((command(), vec(any::<bool>(), 8), 1usize..4), 0..12),
        ) {
            let mut canonical = String::new();
            let mut mutated = String::new();
            for ((verb, argument), flips, gap) in &script {
                canonical.push_str(&format!("{verb} {argument}\r\n"));
                mutated.push_str(&format!("{}{}{argument}\r\n", recase(verb, flips), " ".repeat(*gap)));
            }
            canonical.push_str("QUIT\r\n");
            mutated.push_str("quit\r\n");
            let expected = lines(&talk(canonical.as_bytes()).said);
            prop_assert_eq!(expected.last().map(String::as_str), Some("221 2.0.0 Bye"));
            prop_assert_eq!(lines(&talk(mutated.as_bytes()).said), expected);
        }
    }

    #[test]
    fn a_client_silent_in_the_middle_of_auth_is_timed_out() {
        let settings = testing::settings(Duration::from_millis(300));
        let conversation = block_on(converse(
            serve_smtp,
            settings,
            b"EHLO x\r\nAUTH PLAIN\r\n",
            true,
            WITHIN,
        ));
        assert!(conversation.ended, "the server waited on a silent client");
        let said = lines(&conversation.said);
        assert!(said.last().unwrap().starts_with("421 4.4.2"), "{said:?}");
    }

    /// A refused line is never read on: neither its rest nor what follows it is taken as a
    /// command. (Short enough that the server has read it all when it closes, so that the
    /// client is sent no reset.)
    #[test]
    fn an_auth_response_too_long_ends_the_session() {
        let mut input = b"EHLO x\r\nAUTH PLAIN\r\n".to_vec();
        input.extend(vec![b'A'; 200]);
        input.extend(b"\r\nNOOP\r\n");
        let conversation = talk(&input);
        let said = lines(&conversation.said);
        let after = said.iter().position(|l| l == "334 ").unwrap();
        assert_eq!(said[after + 1..], ["500 5.5.6 Line too long".to_string()]);
        assert!(conversation.ended);
    }
}
