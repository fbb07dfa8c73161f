//! SASL payloads (RFC 4422) as the mail listeners take them: a base64 client response, or `*`
//! to cancel, and PLAIN's message `[authzid] NUL authcid NUL passwd` (RFC 4616). There is no
//! proxy authorization: an authorization identity other than the authentication identity is
//! refused before any password is checked.

use base64::Engine;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    #[error("authentication canceled")]
    Canceled,
    #[error("the response is not base64")]
    NotBase64,
    #[error("malformed PLAIN response")]
    Malformed,
    /// RFC 4616 §2: the server must refuse an authorization identity it does not allow.
    #[error("acting as another user is not allowed")]
    ForeignAuthorization,
}

/// Decodes one client response; surrounding whitespace is ignored.
pub fn decode_response(raw: &str) -> Result<Vec<u8>, SaslError> {
    let raw = raw.trim();
    if raw == "*" {
        return Err(SaslError::Canceled);
    }
    base64::engine::general_purpose::STANDARD
        .decode(raw)
        .map_err(|_| SaslError::NotBase64)
}

/// Decodes a response that must be UTF-8 text (AUTH LOGIN's user name and password).
pub fn decode_text(raw: &str) -> Result<String, SaslError> {
    String::from_utf8(decode_response(raw)?).map_err(|_| SaslError::Malformed)
}

/// A PLAIN message's parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plain {
    /// Empty when the client acts as itself.
    pub authzid: String,
    pub authcid: String,
    pub password: String,
}

impl Plain {
    /// Splits a decoded PLAIN message: exactly two NULs, UTF-8 parts.
    pub fn parse(message: &[u8]) -> Result<Self, SaslError> {
        let parts: Vec<&[u8]> = message.split(|b| *b == 0).collect();
        let [authzid, authcid, password] = parts.as_slice() else {
            return Err(SaslError::Malformed);
        };
        let text =
            |bytes: &[u8]| String::from_utf8(bytes.to_vec()).map_err(|_| SaslError::Malformed);
        Ok(Self {
            authzid: text(authzid)?,
            authcid: text(authcid)?,
            password: text(password)?,
        })
    }

    /// The user to authenticate and the password, unless the client asks to act as someone else.
    pub fn credentials(self) -> Result<(String, String), SaslError> {
        if !self.authzid.is_empty() && self.authzid != self.authcid {
            return Err(SaslError::ForeignAuthorization);
        }
        Ok((self.authcid, self.password))
    }
}

/// A PLAIN response line (base64) to the credentials it carries.
pub fn plain_credentials(raw: &str) -> Result<(String, String), SaslError> {
    Plain::parse(&decode_response(raw)?)?.credentials()
}

#[cfg(test)]
mod tests {
    use proptest::collection::vec;
    use proptest::prelude::*;

    use super::*;

    fn encode(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    /// RFC 4616's printer: `[authzid] NUL authcid NUL passwd`.
    fn message(plain: &Plain) -> Vec<u8> {
        format!("{}\0{}\0{}", plain.authzid, plain.authcid, plain.password).into_bytes()
    }

    fn part() -> impl Strategy<Value = String> {
        "[^\0]{0,24}"
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Any line decodes or is refused, to no more bytes than base64 can carry.
        #[test]
        fn any_response_decodes_or_is_refused(raw in any::<String>()) {
            if let Ok(bytes) = decode_response(&raw) {
                prop_assert!(bytes.len() <= raw.len() * 3 / 4);
            }
        }

        #[test]
        fn responses_round_trip(bytes in vec(any::<u8>(), 0..256), before in " {0,3}", after in "[ \t]{0,3}") {
            let raw = format!("{before}{}{after}", encode(&bytes));
            prop_assert_eq!(decode_response(&raw), Ok(bytes));
        }

        #[test]
        fn any_message_parses_or_is_refused(bytes in vec(any::<u8>(), 0..256)) {
            match Plain::parse(&bytes) {
                Ok(plain) => {
                    prop_assert_eq!(bytes.iter().filter(|b| **b == 0).count(), 2);
                    prop_assert_eq!(message(&plain), bytes);
                }
                Err(error) => prop_assert_eq!(error, SaslError::Malformed),
            }
        }

        /// What a client prints reads back, through base64 and the message alike.
        #[test]
        fn plain_messages_round_trip(authzid in part(), authcid in part(), password in part()) {
            let plain = Plain { authzid, authcid, password };
            prop_assert_eq!(Plain::parse(&message(&plain)), Ok(plain.clone()));
            let line = encode(&message(&plain));
            let expected = match plain.authzid.is_empty() || plain.authzid == plain.authcid {
                true => Ok((plain.authcid.clone(), plain.password.clone())),
                false => Err(SaslError::ForeignAuthorization),
            };
            prop_assert_eq!(plain_credentials(&line), expected);
        }

        /// One NUL too few or too many, or a part that is not UTF-8, is refused.
        #[test]
        fn malformed_messages_are_refused(
            parts in vec(part(), 0..6).prop_filter("not three parts", |p| p.len() != 3),
            authcid in part(),
            bad in vec(0x80u8..0xc0, 1..4),
        ) {
            let joined = parts.join("\0");
            prop_assert_eq!(Plain::parse(joined.as_bytes()), Err(SaslError::Malformed));
            let mut not_utf8 = format!("\0{authcid}\0").into_bytes();
            not_utf8.extend(&bad);
            prop_assert_eq!(Plain::parse(&not_utf8), Err(SaslError::Malformed));
        }
    }

    #[test]
    fn a_star_cancels() {
        assert_eq!(decode_response(" * "), Err(SaslError::Canceled));
        assert_eq!(plain_credentials("*"), Err(SaslError::Canceled));
    }

    #[test]
    fn an_authorization_identity_is_the_user_itself_or_none() {
        let plain = |authzid: &str| Plain {
            authzid: authzid.into(),
            authcid: "alice@example.com".into(),
            password: "pw".into(),
        };
        let own = Ok(("alice@example.com".to_string(), "pw".to_string()));
        assert_eq!(plain("").credentials(), own);
        assert_eq!(plain("alice@example.com").credentials(), own);
        assert_eq!(
            plain("bob@example.com").credentials(),
            Err(SaslError::ForeignAuthorization)
        );
    }
}
