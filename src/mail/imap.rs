//! IMAP: LOGIN and AUTHENTICATE PLAIN check the directory under the login ban and the locks;
//! STARTTLS discards what the client pipelined; lines and literals are bounded; a silent
//! client is logged out. With an IMAP server upstream (`[mail.upstream]`), a user who logged
//! in is logged in there too and the channel is relayed to it (`relay`) for its life. Without
//! one, an RFC 3501/9051 subset: an empty INBOX and IDLE, so that the connection is a channel
//! an administrator can see and end.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, BufReader};

use super::lines::{read_line, Read};
use super::relay::imap::ImapDialect;
use super::relay::{self, Sides};
use super::sasl::{self, SaslError};
use super::upstream::imap::ImapBackend;
use super::{one_line, AuthError, ChannelHandle, ChannelOpen, MailBackend, MailStream, OpenError};
use super::{Endpoint, Protocol, ProtocolSettings};

/// RFC 2177: clients re-issue IDLE at least every 29 minutes.
const IDLE_LIMIT: Duration = Duration::from_secs(29 * 60);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Atom(String),
    Text(String),
    Open,
    Close,
}

impl Token {
    fn text(&self) -> Option<&str> {
        match self {
            Token::Atom(s) | Token::Text(s) => Some(s),
            _ => None,
        }
    }
}

/// A literal announced at the end of a line: its size, and whether it is `{n+}`.
struct Literal {
    size: u64,
    non_sync: bool,
}

/// Splits a line into tokens; a trailing `{n}` is returned apart.
fn tokenize(line: &str) -> Result<(Vec<Token>, Option<Literal>), &'static str> {
    let mut tokens = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            ' ' => {
                chars.next();
            }
            '(' | ')' => {
                chars.next();
                tokens.push(if c == '(' { Token::Open } else { Token::Close });
            }
            '"' => {
                chars.next();
                let mut text = String::new();
                loop {
                    match chars.next() {
                        Some('\\') => text.push(chars.next().ok_or("unterminated quoted string")?),
                        Some('"') => break,
                        Some(c) => text.push(c),
                        None => return Err("unterminated quoted string"),
                    }
                }
                tokens.push(Token::Text(text));
            }
            '{' => {
                let rest: String = chars.collect();
                let inner = rest
                    .strip_prefix('{')
                    .and_then(|r| r.strip_suffix('}'))
                    .ok_or("a literal must end the line")?;
                let (digits, non_sync) = match inner.strip_suffix('+') {
                    Some(d) => (d, true),
                    None => (inner, false),
                };
                let size = digits.parse().map_err(|_| "bad literal size")?;
                return Ok((tokens, Some(Literal { size, non_sync })));
            }
            _ => {
                let mut atom = String::new();
                while let Some(&c) = chars.peek() {
                    if matches!(c, ' ' | '(' | ')' | '"' | '{') {
                        break;
                    }
                    atom.push(c);
                    chars.next();
                }
                tokens.push(Token::Atom(atom));
            }
        }
    }
    Ok((tokens, None))
}

enum State {
    NotAuthenticated,
    Authenticated {
        channel: ChannelHandle,
        selected: Option<bool>,
    },
}

struct Session {
    remote: SocketAddr,
    settings: Arc<ProtocolSettings>,
    backend: Arc<dyn MailBackend>,
    state: State,
    client_id: BTreeMap<String, String>,
    /// The IMAP server's connection, logged in for the user, once there is one.
    upstream: Option<ImapBackend>,
}

enum Next {
    Continue,
    StartTls,
    Close,
    Relay,
}

/// Serves one IMAP connection until the client logs out, the connection fails or times out, or
/// an administrator disconnects the channel.
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
        state: State::NotAuthenticated,
        client_id: BTreeMap::new(),
        upstream: None,
    };
    let mut reader = BufReader::new(stream);
    let greeting = format!(
        "* OK [CAPABILITY {}] {} IMAP4rev1 ready",
        session.capabilities(&reader),
        session.settings.hostname
    );
    if send(&mut reader, &greeting).await.is_err() {
        return;
    }
    loop {
        let next = match session.command(&mut reader).await {
            Ok(next) => next,
            Err(_) => return,
        };
        match next {
            Next::Continue => {}
            Next::Close => return,
            Next::Relay => return session.relay(reader).await,
            Next::StartTls => {
                let Some(acceptor) = session.settings.tls.clone() else {
                    return;
                };
                let plain = reader.into_inner();
                match plain
                    .start_tls(&acceptor, session.settings.handshake_timeout)
                    .await
                {
                    Ok(tls) => reader = BufReader::new(tls),
                    Err(_) => return,
                }
            }
        }
    }
}

async fn send(reader: &mut BufReader<MailStream>, line: &str) -> std::io::Result<()> {
    super::stream::write_line(reader.get_mut(), line).await
}

impl Session {
    /// Relays the logged-in channel to the IMAP server until it ends.
    async fn relay(mut self, reader: BufReader<MailStream>) {
        let (Some(upstream), State::Authenticated { channel, .. }) =
            (self.upstream.take(), &mut self.state)
        else {
            return;
        };
        let sides = Sides {
            client_pending: reader.buffer().to_vec(),
            client: reader.into_inner(),
            server_pending: upstream.stream.buffer().to_vec(),
            server: upstream.stream.into_inner(),
        };
        let dialect = ImapDialect::new(
            self.settings.max_line_bytes,
            self.settings.max_message_bytes,
        );
        let ended = relay::relay(sides, channel, dialect, self.settings.idle_timeout).await;
        tracing::debug!(channel_id = %channel.channel_id, ?ended, "IMAP relay ended");
    }

    fn encrypted(reader: &BufReader<MailStream>) -> bool {
        reader.get_ref().is_encrypted()
    }

    fn login_allowed(&self, reader: &BufReader<MailStream>) -> bool {
        Self::encrypted(reader) || self.settings.allow_plaintext_auth
    }

    fn capabilities(&self, reader: &BufReader<MailStream>) -> String {
        let mut caps = vec!["IMAP4rev1", "SASL-IR", "ID", "IDLE", "LITERAL+"];
        if !Self::encrypted(reader) && self.settings.tls.is_some() {
            caps.push("STARTTLS");
        }
        match self.login_allowed(reader) {
            true => caps.push("AUTH=PLAIN"),
            false => caps.push("LOGINDISABLED"),
        }
        caps.join(" ")
    }

    /// Waits for the next line, watching for an administrator's disconnect.
    async fn next_line(
        &mut self,
        reader: &mut BufReader<MailStream>,
        wait: Duration,
    ) -> std::io::Result<Option<String>> {
        let read = tokio::time::timeout(wait, read_line(reader, self.settings.max_line_bytes));
        let disconnected = async {
            match &mut self.state {
                State::Authenticated { channel, .. } => channel.disconnected().await,
                State::NotAuthenticated => std::future::pending().await,
            }
        };
        let outcome = tokio::select! {
            read = read => read,
            _ = disconnected => {
                send(reader, "* BYE Disconnected by an administrator").await?;
                return Ok(None);
            }
        };
        match outcome {
            Ok(Ok(Read::Line(line))) => Ok(Some(line)),
            Ok(Ok(Read::TooLong)) => {
                send(reader, "* BYE Line too long").await?;
                Ok(None)
            }
            Err(_) => {
                send(reader, "* BYE Autologout; idle for too long").await?;
                Ok(None)
            }
            Ok(Ok(Read::Closed | Read::Idle)) => Ok(None),
            Ok(Err(e)) => Err(e),
        }
    }

    /// Reads a whole command: a line, and the literals it announces.
    async fn read_command(
        &mut self,
        reader: &mut BufReader<MailStream>,
    ) -> std::io::Result<Option<Result<Vec<Token>, (String, String)>>> {
        let Some(mut line) = self.next_line(reader, self.settings.idle_timeout).await? else {
            return Ok(None);
        };
        let tag = line.split(' ').next().unwrap_or("*").to_string();
        let mut tokens = Vec::new();
        // A command holds at most a line's and a literal's worth, however many literals it
        // announces: each is bounded, their number is not.
        let budget = (self.settings.max_line_bytes + self.settings.max_literal_bytes) as u64;
        let mut used = line.len() as u64;
        loop {
            let (mut more, literal) = match tokenize(&line) {
                Ok(parsed) => parsed,
                Err(why) => return Ok(Some(Err((tag, why.to_string())))),
            };
            tokens.append(&mut more);
            let Some(literal) = literal else {
                return Ok(Some(Ok(tokens)));
            };
            used = used.saturating_add(literal.size);
            if literal.size > self.settings.max_literal_bytes as u64 || used > budget {
                if literal.non_sync {
                    send(reader, "* BYE Literal too large").await?;
                    return Ok(None);
                }
                return Ok(Some(Err((tag, "Literal too large".into()))));
            }
            if !literal.non_sync {
                send(reader, "+ Ready for literal data").await?;
            }
            let mut bytes = vec![0; literal.size as usize];
            let read =
                tokio::time::timeout(self.settings.idle_timeout, reader.read_exact(&mut bytes))
                    .await;
            if !matches!(read, Ok(Ok(_))) {
                return Ok(None);
            }
            tokens.push(Token::Text(String::from_utf8_lossy(&bytes).into_owned()));
            line = match self.next_line(reader, self.settings.idle_timeout).await? {
                Some(rest) => rest,
                None => return Ok(None),
            };
            used = used.saturating_add(line.len() as u64);
        }
    }

    async fn command(&mut self, reader: &mut BufReader<MailStream>) -> std::io::Result<Next> {
        let tokens = match self.read_command(reader).await? {
            None => return Ok(Next::Close),
            Some(Err((tag, why))) => {
                send(reader, &format!("{tag} BAD {why}")).await?;
                return Ok(Next::Continue);
            }
            Some(Ok(tokens)) => tokens,
        };
        let (tag, verb, args) = match tokens.as_slice() {
            [Token::Atom(tag), Token::Atom(verb), args @ ..] => {
                (tag.clone(), verb.to_ascii_uppercase(), args.to_vec())
            }
            [Token::Atom(tag), ..] => {
                send(reader, &format!("{tag} BAD Missing command")).await?;
                return Ok(Next::Continue);
            }
            _ => {
                send(reader, "* BAD Expected a tag and a command").await?;
                return Ok(Next::Continue);
            }
        };
        let next = self.dispatch(reader, &tag, &verb, &args).await?;
        Ok(match self.upstream.is_some() {
            true => Next::Relay,
            false => next,
        })
    }

    async fn dispatch(
        &mut self,
        reader: &mut BufReader<MailStream>,
        tag: &str,
        verb: &str,
        args: &[Token],
    ) -> std::io::Result<Next> {
        let authenticated = matches!(self.state, State::Authenticated { .. });
        let answer = match verb {
            "CAPABILITY" => {
                send(
                    reader,
                    &format!("* CAPABILITY {}", self.capabilities(reader)),
                )
                .await?;
                format!("{tag} OK CAPABILITY completed")
            }
            "NOOP" => format!("{tag} OK NOOP completed"),
            "LOGOUT" => {
                send(reader, "* BYE Logging out").await?;
                send(reader, &format!("{tag} OK LOGOUT completed")).await?;
                return Ok(Next::Close);
            }
            "ID" => {
                self.remember_id(args);
                send(reader, "* ID (\"name\" \"sessionplane\")").await?;
                format!("{tag} OK ID completed")
            }
            "STARTTLS" if Self::encrypted(reader) || self.settings.tls.is_none() => {
                format!("{tag} BAD TLS is not available here")
            }
            "STARTTLS" if authenticated => format!("{tag} BAD Already authenticated"),
            "STARTTLS" => {
                send(reader, &format!("{tag} OK Begin TLS negotiation now")).await?;
                return Ok(Next::StartTls);
            }
            "LOGIN" | "AUTHENTICATE" if authenticated => format!("{tag} BAD Already authenticated"),
            "LOGIN" | "AUTHENTICATE" if !self.login_allowed(reader) => {
                format!("{tag} NO [PRIVACYREQUIRED] Use STARTTLS first")
            }
            "LOGIN" => match (
                args.first().and_then(Token::text),
                args.get(1).and_then(Token::text),
            ) {
                (Some(user), Some(password)) => {
                    self.login(reader, tag, user.to_string(), password.to_string())
                        .await
                }
                _ => format!("{tag} BAD LOGIN needs a user and a password"),
            },
            "AUTHENTICATE" => self.authenticate(reader, tag, args).await?,
            "SELECT" | "EXAMINE" if !authenticated => format!("{tag} NO Log in first"),
            "SELECT" | "EXAMINE" => self.select(reader, tag, verb == "EXAMINE", args).await?,
            "LIST" if !authenticated => format!("{tag} NO Log in first"),
            "LIST" => {
                match args.get(1).and_then(Token::text) {
                    Some("") => send(reader, "* LIST (\\Noselect) \"/\" \"\"").await?,
                    Some(_) => send(reader, "* LIST (\\HasNoChildren) \"/\" INBOX").await?,
                    None => {
                        send(
                            reader,
                            &format!("{tag} BAD LIST needs a reference and a pattern"),
                        )
                        .await?;
                        return Ok(Next::Continue);
                    }
                }
                format!("{tag} OK LIST completed")
            }
            "CLOSE" | "UNSELECT" => match &mut self.state {
                State::Authenticated {
                    selected: selected @ Some(_),
                    ..
                } => {
                    *selected = None;
                    format!("{tag} OK {verb} completed")
                }
                _ => format!("{tag} NO No mailbox selected"),
            },
            "IDLE" if !authenticated => format!("{tag} NO Log in first"),
            "IDLE" => return self.idle(reader, tag).await,
            "FETCH" | "STORE" | "SEARCH" | "COPY" | "EXPUNGE" | "APPEND" | "CREATE" | "DELETE"
            | "RENAME" | "STATUS" | "UID" => {
                format!("{tag} NO {verb} is not supported here")
            }
            _ => format!("{tag} BAD Unknown command"),
        };
        send(reader, &answer).await?;
        Ok(Next::Continue)
    }

    fn remember_id(&mut self, args: &[Token]) {
        let fields: Vec<&str> = args.iter().filter_map(Token::text).collect();
        for pair in fields.chunks(2) {
            if let [key, value] = pair {
                self.client_id
                    .insert(format!("id.{key}"), (*value).to_string());
            }
        }
    }

    async fn login(
        &mut self,
        reader: &BufReader<MailStream>,
        tag: &str,
        user: String,
        password: String,
    ) -> String {
        let user = match self
            .backend
            .authenticate(&user, &password, self.remote)
            .await
        {
            Ok(user) => user,
            Err(AuthError::Rejected) => {
                return format!("{tag} NO [AUTHENTICATIONFAILED] Invalid credentials")
            }
            Err(AuthError::Banned { .. }) => {
                return format!(
                    "{tag} NO [AUTHENTICATIONFAILED] Too many failed logins, retry later"
                )
            }
            Err(AuthError::Unavailable(_)) => {
                return format!("{tag} NO [UNAVAILABLE] Try again later")
            }
        };
        let username = user.username.clone();
        let mut info = self.client_id.clone();
        let server = self
            .settings
            .upstream
            .as_ref()
            .and_then(|u| u.imap.as_ref());
        if let Some(server) = server {
            info.insert("upstream".into(), server.address.clone());
        }
        let open = ChannelOpen {
            protocol: Protocol::Imap,
            endpoint: Endpoint::ImapServer,
            user,
            remote: self.remote,
            encrypted: Self::encrypted(reader),
            info,
        };
        match self.backend.open_channel(open).await {
            Ok(channel) => {
                let capabilities = match self.log_in_upstream(&username, &password).await {
                    Ok(Some(upstream)) => upstream,
                    Ok(None) => self.capabilities(reader),
                    Err(()) => {
                        return format!(
                        "{tag} NO [UNAVAILABLE] The mail server is unavailable, try again later"
                    )
                    }
                };
                self.state = State::Authenticated {
                    channel,
                    selected: None,
                };
                format!("{tag} OK [CAPABILITY {capabilities}] Logged in")
            }
            Err(OpenError::Locked(message)) => {
                format!("{tag} NO [AUTHORIZATIONFAILED] {}", one_line(&message))
            }
            Err(OpenError::Unavailable(_)) => format!("{tag} NO [UNAVAILABLE] Try again later"),
        }
    }

    /// Logs in to the IMAP server upstream, if there is one: its capabilities for the user
    /// then. A server that cannot be reached or refuses is logged; the user is told only that
    /// it is unavailable.
    async fn log_in_upstream(&mut self, user: &str, password: &str) -> Result<Option<String>, ()> {
        let Some(upstream) = self.settings.upstream.clone() else {
            return Ok(None);
        };
        let Some(server) = upstream.imap.as_ref() else {
            return Ok(None);
        };
        match upstream.imap_login(server, user, password).await {
            Ok(logged_in) => {
                let capabilities = logged_in.capabilities.clone();
                self.upstream = Some(logged_in);
                Ok(Some(capabilities))
            }
            Err(error) => {
                tracing::warn!(user, %error, "the IMAP server did not take the user's login");
                Err(())
            }
        }
    }

    async fn authenticate(
        &mut self,
        reader: &mut BufReader<MailStream>,
        tag: &str,
        args: &[Token],
    ) -> std::io::Result<String> {
        if !args
            .first()
            .and_then(Token::text)
            .is_some_and(|m| m.eq_ignore_ascii_case("PLAIN"))
        {
            return Ok(format!("{tag} NO Only PLAIN is supported"));
        }
        let response = match args.get(1).and_then(Token::text) {
            Some(initial) => initial.to_string(),
            None => {
                send(reader, "+ ").await?;
                match self.next_line(reader, self.settings.idle_timeout).await? {
                    Some(line) => line,
                    None => return Ok(format!("{tag} BAD No response")),
                }
            }
        };
        let (user, password) = match sasl::plain_credentials(&response) {
            Ok(credentials) => credentials,
            Err(SaslError::Canceled) => return Ok(format!("{tag} BAD Authentication canceled")),
            Err(SaslError::NotBase64) => {
                return Ok(format!("{tag} BAD Cannot decode the response"))
            }
            Err(SaslError::Malformed) => return Ok(format!("{tag} BAD Malformed PLAIN response")),
            Err(SaslError::ForeignAuthorization) => {
                return Ok(format!(
                    "{tag} NO [AUTHORIZATIONFAILED] Acting as another user is not allowed"
                ))
            }
        };
        Ok(self.login(reader, tag, user, password).await)
    }

    async fn select(
        &mut self,
        reader: &mut BufReader<MailStream>,
        tag: &str,
        read_only: bool,
        args: &[Token],
    ) -> std::io::Result<String> {
        let mailbox = args.first().and_then(Token::text).unwrap_or("");
        if !mailbox.eq_ignore_ascii_case("INBOX") {
            return Ok(format!("{tag} NO [NONEXISTENT] No such mailbox"));
        }
        for line in [
            "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)",
            "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)] Flags permitted",
            "* 0 EXISTS",
            "* 0 RECENT",
            "* OK [UIDVALIDITY 1] UIDs valid",
            "* OK [UIDNEXT 1] Predicted next UID",
        ] {
            send(reader, line).await?;
        }
        if let State::Authenticated { selected, .. } = &mut self.state {
            *selected = Some(read_only);
        }
        Ok(match read_only {
            true => format!("{tag} OK [READ-ONLY] EXAMINE completed"),
            false => format!("{tag} OK [READ-WRITE] SELECT completed"),
        })
    }

    async fn idle(
        &mut self,
        reader: &mut BufReader<MailStream>,
        tag: &str,
    ) -> std::io::Result<Next> {
        send(reader, "+ idling").await?;
        match self.next_line(reader, IDLE_LIMIT).await? {
            Some(line) if line.trim().eq_ignore_ascii_case("DONE") => {
                send(reader, &format!("{tag} OK IDLE terminated")).await?;
                Ok(Next::Continue)
            }
            Some(_) => {
                send(reader, &format!("{tag} BAD Expected DONE")).await?;
                Ok(Next::Continue)
            }
            None => Ok(Next::Close),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::collection::vec;
    use proptest::prelude::*;

    use super::*;
    use crate::mail::testing::{
        self, block_on, converse, lines, recase, Conversation, PASSWORD, USER,
    };
    use crate::mail::BoxFuture;

    fn serve_imap(
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
        block_on(converse(serve_imap, settings, input, false, WITHIN))
    }

    fn token() -> impl Strategy<Value = Token> {
        prop_oneof![
            "[A-Za-z0-9.!#&'*+,/:;<=>?@^_|~%$\\[\\]-]{1,12}".prop_map(Token::Atom),
            "[^\r\n]{0,12}".prop_map(Token::Text),
            Just(Token::Open),
            Just(Token::Close),
        ]
    }

    /// Writes tokens as a client would, `gaps[i]` spaces before the i-th.
    fn print(tokens: &[Token], gaps: &[usize], literal: Option<(u32, bool)>) -> String {
        let mut line = String::new();
        for (token, gap) in tokens.iter().zip(gaps) {
            line.push_str(&" ".repeat(*gap));
            match token {
                Token::Atom(atom) => line.push_str(atom),
                Token::Text(text) => {
                    let escaped = text.replace('\\', "\\\\").replace('"', "\\\"");
                    line.push_str(&format!("\"{escaped}\""));
                }
                Token::Open => line.push('('),
                Token::Close => line.push(')'),
            }
        }
        if let Some((size, non_sync)) = literal {
            line.push_str(&format!(" {{{size}{}}}", if non_sync { "+" } else { "" }));
        }
        line
    }

    /// Bytes a client might send: noise, and pieces of IMAP.
    fn client_bytes() -> impl Strategy<Value = Vec<u8>> {
        let words = [
            "a1 ",
            "LOGIN ",
            "AUTHENTICATE PLAIN",
            "AUTHENTICATE PLAIN =",
            "SELECT INBOX",
            "EXAMINE inbox",
            "LIST \"\" *",
            "IDLE",
            "DONE",
            "ID (\"name\" \"x\")",
            "CAPABILITY",
            "NOOP",
            "CLOSE",
            "STARTTLS",
            "LOGOUT",
            "\"",
            "\\",
            "(",
            ")",
            "{5}",
            "{3+}",
            "{0}",
            "{999999999999}",
            "{18446744073709551616}",
            "*",
            " ",
            "\r\n",
            "\n",
        ];
        let piece = prop_oneof![
            vec(any::<u8>(), 0..32),
            proptest::sample::select(words.to_vec()).prop_map(|w| w.as_bytes().to_vec()),
            Just(b"\r\n".to_vec()),
            Just(format!("a2 LOGIN {USER} {PASSWORD}").into_bytes()),
            vec(Just(b'x'), 200..400),
        ];
        vec(piece, 0..24).prop_map(|pieces| pieces.concat())
    }

    /// A command after its tag: (verb, arguments).
    fn command() -> impl Strategy<Value = (&'static str, String)> {
        proptest::sample::select(vec![
            ("CAPABILITY", String::new()),
            ("NOOP", String::new()),
            ("LOGIN", format!("{USER} {PASSWORD}")),
            ("LOGIN", format!("\"{USER}\" \"wrong\"")),
            ("SELECT", "INBOX".to_string()),
            ("EXAMINE", "inbox".to_string()),
            ("SELECT", "Archive".to_string()),
            ("LIST", "\"\" *".to_string()),
            ("ID", "(\"name\" \"client\")".to_string()),
            ("CLOSE", String::new()),
            ("UNSELECT", String::new()),
            ("FETCH", "1:* ALL".to_string()),
            ("BOGUS", String::new()),
        ])
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any line tokenizes or is refused, into no more than it holds.
        #[test]
        fn tokenize_takes_any_line(line in any::<String>()) {
            if let Ok((tokens, _)) = tokenize(&line) {
                prop_assert!(tokens.len() <= line.len());
                let text: usize = tokens.iter().filter_map(Token::text).map(str::len).sum();
                prop_assert!(text <= line.len());
            }
        }

        /// What a client prints (atoms, quoted strings with escapes, lists, any spacing, a
        /// literal at the end) tokenizes back to what it meant.
        #[test]
        fn tokenize_reads_back_what_a_client_prints(
            tokens in vec(token(), 0..12),
            gaps in vec(1usize..4, 12),
            literal in proptest::option::of((any::<u32>(), any::<bool>())),
        ) {
            let line = print(&tokens, &gaps, literal);
            let (parsed, announced) = tokenize(&line).unwrap();
            prop_assert_eq!(parsed, tokens);
            prop_assert_eq!(
                announced.map(|l| (l.size, l.non_sync)),
                literal.map(|(size, non_sync)| (u64::from(size), non_sync))
            );
        }

        /// Whatever a client sends, the server answers in bounded lines, a bounded amount per
        /// line it was sent, and ends once the client has gone.
        #[test]
        fn arbitrary_bytes_get_bounded_answers_and_an_end(input in client_bytes()) {
            let conversation = talk(&input);
            prop_assert!(conversation.ended, "the server did not end");
            let said = lines(&conversation.said);
            for line in &said {
                prop_assert!(line.len() <= 256 + 200, "{}", line);
            }
            let sent = input.iter().filter(|b| **b == b'\n').count();
            prop_assert!(said.len() <= 8 * (sent + 1), "{} lines for {}", said.len(), sent);
        }

        /// A script answers the same whatever the case of its verbs and the spaces between
        /// tag, verb and arguments.
        #[test]
        fn verb_case_and_spacing_do_not_change_the_answers(
            script in vec((command(), vec(any::<bool>(), 10), 1usize..4, 1usize..4), 0..12),
        ) {
            let mut canonical = String::new();
            let mut mutated = String::new();
            for (i, ((verb, arguments), flips, before, after)) in script.iter().enumerate() {
                canonical.push_str(&format!("t{i} {verb} {arguments}\r\n"));
                let (before, after) = (" ".repeat(*before), " ".repeat(*after));
                mutated.push_str(&format!("t{i}{before}{}{after}{arguments}\r\n", recase(verb, flips)));
            }
            canonical.push_str("z LOGOUT\r\n");
            mutated.push_str("z logout\r\n");
            let expected = lines(&talk(canonical.as_bytes()).said);
            prop_assert_eq!(expected.last().map(String::as_str), Some("z OK LOGOUT completed"));
            prop_assert_eq!(lines(&talk(mutated.as_bytes()).said), expected);
        }
    }

    /// One command cannot hold more than a line and a literal's worth, however many literals
    /// it announces.
    #[test]
    fn a_command_cannot_pile_up_literals() {
        let mut input = b"a1 LOGIN".to_vec();
        for _ in 0..8 {
            input.extend(b" {60+}\r\n");
            input.extend(vec![b'x'; 60]);
        }
        input.extend(b"\r\nb1 NOOP\r\n");
        let said = lines(&talk(&input).said);
        assert!(
            said.contains(&"* BYE Literal too large".to_string()),
            "{said:?}"
        );
        assert!(!said.iter().any(|l| l.starts_with("b1 ")), "{said:?}");
    }

    #[test]
    fn tokens_quotes_lists_and_literals() {
        let (tokens, literal) = tokenize(r#"a1 LOGIN "al\"ice" pw"#).unwrap();
        assert_eq!(tokens[2], Token::Text("al\"ice".into()));
        assert!(literal.is_none());
        let (tokens, literal) = tokenize("a2 ID (\"name\" \"x\")").unwrap();
        assert_eq!(tokens[2], Token::Open);
        assert_eq!(tokens.last(), Some(&Token::Close));
        assert!(literal.is_none());
        let (_, literal) = tokenize("a3 LOGIN {5}").unwrap();
        assert!(matches!(
            literal,
            Some(Literal {
                size: 5,
                non_sync: false
            })
        ));
        let (_, literal) = tokenize("a4 LOGIN {2147483648+}").unwrap();
        assert!(matches!(
            literal,
            Some(Literal {
                size: 2147483648,
                non_sync: true
            })
        ));
        assert!(tokenize("a5 LOGIN \"open").is_err());
        assert!(tokenize("a6 LOGIN {x}").is_err());
    }
}
