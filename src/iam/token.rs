//! Tokens: session tokens (HS256, signed by this site's nodes with the shared token key) and
//! service tokens (signed by whoever holds the configured service key; verified only here).
//!
//! A signature only says who issued a token; whether its session still exists is checked
//! against the site store by `iam::auth`.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::ServiceKeyAlgorithm;

/// What a session token says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionClaims {
    /// The user's id.
    pub sub: Uuid,
    pub sid: Uuid,
    pub dom: String,
    pub site: String,
    pub iat: u64,
    pub exp: u64,
}

/// What a service token says: a name for the automation, and that it administers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceClaims {
    pub sub: String,
    #[serde(default)]
    pub admin: bool,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<u64>,
    /// Not before: the token is refused until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
}

/// The audience of the tokens one site's node presents to another's.
pub const FEDERATION_AUDIENCE: &str = "sessionplane-federation";

/// The key of federation tokens, derived from the deployment's cluster secret (which every
/// node shares), apart from every other use of that secret.
pub fn federation_key(cluster_secret: &str) -> Vec<u8> {
    format!("sessionplane-federation\0{cluster_secret}").into_bytes()
}

/// Carried by a request that one site forwards to another: who forwards it, for whom, and with
/// what reach. A request with such a token is served by its site alone (it never fans out).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FederationClaims {
    /// The forwarding node, `name@host`.
    pub sub: String,
    pub aud: String,
    /// The site the request came in at.
    pub from: String,
    /// Who asked there (a user address or `service:…`), for the logs.
    pub on_behalf_of: String,
    /// The domain a domain administrator is limited to; none: a global administrator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    pub iat: u64,
    pub exp: u64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Verified {
    Session(SessionClaims),
    Service(ServiceClaims),
    Federated(FederationClaims),
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("the token is expired")]
    Expired,
    #[error("the token is not valid: {0}")]
    Invalid(String),
    #[error("the service key does not load: {0}")]
    Key(String),
    #[error("cannot sign a token: {0}")]
    Sign(String),
}

pub struct TokenKeys {
    session_sign: EncodingKey,
    session_verify: DecodingKey,
    service: Option<(DecodingKey, Algorithm)>,
    federation: Option<(EncodingKey, DecodingKey)>,
    verified_sessions: VerifiedSessions,
}

/// Session tokens whose signature and claims were checked once, by their exact text: a token
/// checked again skips the JWT's parsing and HMAC (its `exp` is still read every time). At most
/// [`VerifiedSessions::CAPACITY`] are kept; when full the map starts over, so that a flood of
/// distinct tokens costs what it cost without the map.
#[derive(Default)]
struct VerifiedSessions(std::sync::Mutex<std::collections::HashMap<Box<str>, SessionClaims>>);

impl VerifiedSessions {
    const CAPACITY: usize = 4096;

    fn get(&self, token: &str) -> Option<SessionClaims> {
        self.0.lock().ok()?.get(token).cloned()
    }

    fn keep(&self, token: &str, claims: &SessionClaims) {
        let Ok(mut map) = self.0.lock() else { return };
        if map.len() >= Self::CAPACITY {
            map.clear();
        }
        map.insert(token.into(), claims.clone());
    }

    fn forget(&self, token: &str) {
        if let Ok(mut map) = self.0.lock() {
            map.remove(token);
        }
    }
}

impl TokenKeys {
    /// `service_key` is the key file's text: a secret for HS256, a PEM public key otherwise.
    pub fn new(
        session_key: &str,
        service_key: Option<(&str, ServiceKeyAlgorithm)>,
    ) -> Result<Self, TokenError> {
        let service = match service_key {
            None => None,
            Some((key, algorithm)) => Some(service_decoding_key(key, algorithm)?),
        };
        Ok(Self {
            session_sign: EncodingKey::from_secret(session_key.as_bytes()),
            session_verify: DecodingKey::from_secret(session_key.as_bytes()),
            service,
            federation: None,
            verified_sessions: VerifiedSessions::default(),
        })
    }

    /// Signs and accepts federation tokens with `key`, the same on every node of the
    /// deployment. Without it, no request is forwarded or taken from another site.
    pub fn with_federation_key(mut self, key: &[u8]) -> Self {
        self.federation = Some((EncodingKey::from_secret(key), DecodingKey::from_secret(key)));
        self
    }

    pub fn sign_federation(&self, claims: &FederationClaims) -> Result<String, TokenError> {
        let (key, _) = self
            .federation
            .as_ref()
            .ok_or_else(|| TokenError::Sign("no federation key".into()))?;
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, key)
            .map_err(|e| TokenError::Sign(e.to_string()))
    }

    pub fn sign_session(&self, claims: &SessionClaims) -> Result<String, TokenError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.session_sign)
            .map_err(|e| TokenError::Sign(e.to_string()))
    }

    /// Checks a token with every key of its algorithm (a session token's, a federation
    /// token's, the service key): the first whose claims pass wins. Otherwise the refusal is
    /// that of the first key that did sign it, which names the claim at fault; a token no key
    /// signed has a bad signature, or an algorithm nothing here verifies.
    pub fn verify(&self, token: &str) -> Result<Verified, TokenError> {
        if let Some(claims) = self.verified_sessions.get(token) {
            if claims.exp < jsonwebtoken::get_current_timestamp() {
                self.verified_sessions.forget(token);
                return Err(TokenError::Expired);
            }
            return Ok(Verified::Session(claims));
        }
        let verified = self.verify_signed(token)?;
        if let Verified::Session(claims) = &verified {
            self.verified_sessions.keep(token, claims);
        }
        Ok(verified)
    }

    fn verify_signed(&self, token: &str) -> Result<Verified, TokenError> {
        let algorithm = jsonwebtoken::decode_header(token)
            .map_err(|_| TokenError::Invalid("malformed".into()))?
            .alg;
        let mut refusal = None;
        let mut tried = false;
        for verdict in self.verdicts(token, algorithm) {
            tried = true;
            match verdict {
                Verdict::Accepted(verified) => return Ok(verified),
                Verdict::Refused(error) => {
                    refusal.get_or_insert(error);
                }
                Verdict::NotSigned => {}
            }
        }
        Err(refusal.unwrap_or_else(|| match tried {
            true => TokenError::Invalid("bad signature".into()),
            false => TokenError::Invalid(format!("unexpected algorithm {algorithm:?}")),
        }))
    }

    /// What each key of `algorithm` makes of the token, in order, each checked only when the
    /// ones before did not accept it.
    fn verdicts<'a>(
        &'a self,
        token: &'a str,
        algorithm: Algorithm,
    ) -> impl Iterator<Item = Verdict> + 'a {
        let hs256 = algorithm == Algorithm::HS256;
        let session = hs256
            .then_some(&self.session_verify)
            .into_iter()
            .map(move |key| check::<SessionClaims>(token, key, strict(Algorithm::HS256)));
        let federation = self
            .federation
            .iter()
            .filter(move |_| hs256)
            .map(move |(_, key)| {
                let mut validation = strict(Algorithm::HS256);
                validation.set_audience(&[FEDERATION_AUDIENCE]);
                check::<FederationClaims>(token, key, validation)
            });
        let service = self
            .service
            .iter()
            .filter(move |(_, a)| *a == algorithm)
            .map(move |(key, a)| {
                check::<ServiceClaims>(token, key, strict(*a)).and_then(service_claims)
            });
        session.chain(federation).chain(service)
    }
}

/// What one key makes of a token.
enum Verdict {
    Accepted(Verified),
    /// This key signed it, but a claim is wrong (or it has expired).
    Refused(TokenError),
    /// This key did not sign it.
    NotSigned,
}

impl Verdict {
    fn and_then(self, f: impl FnOnce(Verified) -> Result<Verified, TokenError>) -> Self {
        match self {
            Self::Accepted(verified) => match f(verified) {
                Ok(verified) => Self::Accepted(verified),
                Err(error) => Self::Refused(error),
            },
            other => other,
        }
    }
}

/// The claims a service token must carry beyond their types: a subject, and `admin: true`.
fn service_claims(verified: Verified) -> Result<Verified, TokenError> {
    match &verified {
        Verified::Service(claims) if claims.sub.trim().is_empty() => Err(TokenError::Invalid(
            "the `sub` claim is empty: a service token names its holder".into(),
        )),
        Verified::Service(claims) if !claims.admin => Err(TokenError::Invalid(
            "the `admin` claim must be true for a service token".into(),
        )),
        _ => Ok(verified),
    }
}

/// Verifies `token` with `key`, then reads its claims as `T`, naming the claim that does not
/// fit (serde alone says only what type it wanted).
fn check<T: serde::de::DeserializeOwned + IntoVerified>(
    token: &str,
    key: &DecodingKey,
    validation: Validation,
) -> Verdict {
    use jsonwebtoken::errors::ErrorKind as K;
    let claims = match jsonwebtoken::decode::<serde_json::Value>(token, key, &validation) {
        Ok(data) => data.claims,
        Err(e) => {
            return match e.kind() {
                K::InvalidSignature | K::InvalidAlgorithm => Verdict::NotSigned,
                K::ExpiredSignature => Verdict::Refused(TokenError::Expired),
                _ => Verdict::Refused(TokenError::Invalid(reason(&e))),
            }
        }
    };
    match serde_path_to_error::deserialize::<_, T>(claims) {
        Ok(claims) => Verdict::Accepted(claims.into_verified()),
        Err(e) => Verdict::Refused(TokenError::Invalid(misfit(&e))),
    }
}

/// How claims that do not fit their type are told: the claim's name, never its value.
fn misfit(error: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let path = error.path().to_string();
    match path.as_str() {
        // At the top, serde says which field is missing ("missing field `exp`").
        "." => format!("the claims are incomplete: {}", error.inner()),
        claim => format!("the `{claim}` claim is of the wrong type"),
    }
}

/// Each kind of claims as what it verifies.
trait IntoVerified {
    fn into_verified(self) -> Verified;
}

impl IntoVerified for SessionClaims {
    fn into_verified(self) -> Verified {
        Verified::Session(self)
    }
}

impl IntoVerified for ServiceClaims {
    fn into_verified(self) -> Verified {
        Verified::Service(self)
    }
}

impl IntoVerified for FederationClaims {
    fn into_verified(self) -> Verified {
        Verified::Federated(self)
    }
}

/// Signs a service token; for `sessionplane token issue`, with the private side of the key.
/// The `site` a session token claims, read without checking its signature: only to tell a
/// caller which site a token signed elsewhere belongs to. Never trusted for anything else.
pub fn unverified_site(token: &str) -> Option<String> {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.insecure_disable_signature_validation();
    validation.validate_exp = false;
    validation.set_required_spec_claims::<&str>(&[]);
    let claims =
        jsonwebtoken::decode::<SessionClaims>(token, &DecodingKey::from_secret(&[]), &validation)
            .ok()?
            .claims;
    let plausible = !claims.site.is_empty()
        && claims.site.len() <= 48
        && claims
            .site
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    plausible.then_some(claims.site)
}

pub fn sign_service(
    claims: &ServiceClaims,
    key_text: &str,
    algorithm: ServiceKeyAlgorithm,
) -> Result<String, TokenError> {
    let (key, algorithm) = match algorithm {
        ServiceKeyAlgorithm::HS256 => (
            EncodingKey::from_secret(key_text.as_bytes()),
            Algorithm::HS256,
        ),
        ServiceKeyAlgorithm::RS256 => (
            EncodingKey::from_rsa_pem(key_text.as_bytes())
                .map_err(|e| TokenError::Key(e.to_string()))?,
            Algorithm::RS256,
        ),
        ServiceKeyAlgorithm::EdDSA => (
            EncodingKey::from_ed_pem(key_text.as_bytes())
                .map_err(|e| TokenError::Key(e.to_string()))?,
            Algorithm::EdDSA,
        ),
    };
    jsonwebtoken::encode(&Header::new(algorithm), claims, &key)
        .map_err(|e| TokenError::Sign(e.to_string()))
}

fn service_decoding_key(
    key_text: &str,
    algorithm: ServiceKeyAlgorithm,
) -> Result<(DecodingKey, Algorithm), TokenError> {
    let key_error = |e: jsonwebtoken::errors::Error| TokenError::Key(e.to_string());
    Ok(match algorithm {
        ServiceKeyAlgorithm::HS256 => (
            DecodingKey::from_secret(key_text.as_bytes()),
            Algorithm::HS256,
        ),
        ServiceKeyAlgorithm::RS256 => (
            DecodingKey::from_rsa_pem(key_text.as_bytes()).map_err(key_error)?,
            Algorithm::RS256,
        ),
        ServiceKeyAlgorithm::EdDSA => (
            DecodingKey::from_ed_pem(key_text.as_bytes()).map_err(key_error)?,
            Algorithm::EdDSA,
        ),
    })
}

/// One algorithm, `exp` and `sub` required, `nbf` honoured, no leeway: the token's own times
/// are exact.
fn strict(algorithm: Algorithm) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.leeway = 0;
    validation.validate_nbf = true;
    validation.set_required_spec_claims(&["exp", "sub"]);
    validation
}

fn reason(error: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind as K;
    match error.kind() {
        K::InvalidSignature => "bad signature".into(),
        K::InvalidAlgorithm => "unexpected algorithm".into(),
        K::InvalidToken | K::Base64(_) | K::Json(_) | K::Utf8(_) => "malformed".into(),
        K::MissingRequiredClaim(claim) => {
            format!("the `{claim}` claim is missing or of the wrong type")
        }
        K::ImmatureSignature => {
            "the token is not valid yet (its `nbf` claim is in the future)".into()
        }
        K::InvalidAudience => "the `aud` claim is not this deployment's".into(),
        _ => "refused".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: u64) -> SessionClaims {
        SessionClaims {
            sub: Uuid::now_v7(),
            sid: Uuid::now_v7(),
            dom: "d".into(),
            site: "local".into(),
            iat: 1,
            exp,
        }
    }

    fn now() -> u64 {
        sessionplane_cluster::now_ms() / 1000
    }

    #[test]
    fn a_verified_session_token_is_kept_and_still_expires() {
        let keys = TokenKeys::new("k", None).expect("keys");
        let exp = now();
        let token = keys.sign_session(&claims(exp)).expect("sign");
        assert!(matches!(keys.verify(&token), Ok(Verified::Session(_))));
        assert!(
            keys.verified_sessions.get(&token).is_some(),
            "kept once verified"
        );
        let tampered = format!("{token}x");
        assert!(
            keys.verify(&tampered).is_err(),
            "only the exact text is kept"
        );
        while now() <= exp {
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        assert!(matches!(keys.verify(&token), Err(TokenError::Expired)));
        assert!(keys.verified_sessions.get(&token).is_none());
    }

    #[test]
    fn the_kept_tokens_stay_bounded() {
        let keys = TokenKeys::new("k", None).expect("keys");
        for _ in 0..VerifiedSessions::CAPACITY + 10 {
            let token = keys.sign_session(&claims(now() + 60)).expect("sign");
            keys.verify(&token).expect("valid");
        }
        let kept = keys.verified_sessions.0.lock().expect("lock").len();
        assert!(kept <= VerifiedSessions::CAPACITY, "{kept}");
    }

    #[test]
    fn a_foreign_token_names_its_site_unverified() {
        let mut foreign = claims(now() + 60);
        foreign.site = "east".into();
        let token = TokenKeys::new("east-key", None)
            .unwrap()
            .sign_session(&foreign)
            .unwrap();
        assert_eq!(unverified_site(&token).as_deref(), Some("east"));
        foreign.site = "East Coast <script>".into();
        let odd = TokenKeys::new("k", None)
            .unwrap()
            .sign_session(&foreign)
            .unwrap();
        assert_eq!(unverified_site(&odd), None);
        assert_eq!(unverified_site("garbage"), None);
    }

    #[test]
    fn session_tokens_verify_with_their_key_only() {
        let keys = TokenKeys::new("k1", None).unwrap();
        let token = keys.sign_session(&claims(now() + 60)).unwrap();
        assert!(matches!(keys.verify(&token), Ok(Verified::Session(_))));
        let other = TokenKeys::new("k2", None).unwrap();
        assert!(matches!(other.verify(&token), Err(TokenError::Invalid(_))));
        let expired = keys.sign_session(&claims(now() - 1)).unwrap();
        assert!(matches!(keys.verify(&expired), Err(TokenError::Expired)));
        assert!(matches!(
            keys.verify("garbage"),
            Err(TokenError::Invalid(_))
        ));
        assert!(matches!(keys.verify(""), Err(TokenError::Invalid(_))));
    }

    #[test]
    fn service_tokens_need_admin_and_a_subject() {
        let keys =
            TokenKeys::new("session", Some(("service", ServiceKeyAlgorithm::HS256))).unwrap();
        let sign = |sub: &str, admin| {
            let claims = ServiceClaims {
                sub: sub.into(),
                admin,
                exp: now() + 60,
                iat: None,
                nbf: None,
            };
            sign_service(&claims, "service", ServiceKeyAlgorithm::HS256).unwrap()
        };
        assert!(
            matches!(keys.verify(&sign("robot", true)), Ok(Verified::Service(c)) if c.sub == "robot")
        );
        assert!(keys.verify(&sign("robot", false)).is_err());
        assert!(keys.verify(&sign(" ", true)).is_err());
        let without_service = TokenKeys::new("session", None).unwrap();
        assert!(without_service.verify(&sign("robot", true)).is_err());
    }

    #[test]
    fn a_bad_public_key_is_refused_at_load() {
        let result = TokenKeys::new("s", Some(("not a pem", ServiceKeyAlgorithm::RS256)));
        assert!(matches!(result, Err(TokenError::Key(_))));
    }

    /// An Ed25519 key pair as PEM: (private, public).
    fn ed25519() -> (String, String) {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
        (pair.serialize_pem(), pair.public_key_pem())
    }

    /// Signs any claims, well-formed or not, as the holder of the service key would.
    fn sign_claims(
        claims: &serde_json::Value,
        key: &str,
        algorithm: ServiceKeyAlgorithm,
    ) -> String {
        let (key, algorithm) = match algorithm {
            ServiceKeyAlgorithm::HS256 => {
                (EncodingKey::from_secret(key.as_bytes()), Algorithm::HS256)
            }
            ServiceKeyAlgorithm::EdDSA => (
                EncodingKey::from_ed_pem(key.as_bytes()).unwrap(),
                Algorithm::EdDSA,
            ),
            ServiceKeyAlgorithm::RS256 => unreachable!("not used here"),
        };
        jsonwebtoken::encode(&Header::new(algorithm), claims, &key).unwrap()
    }

    #[test]
    fn a_service_token_not_valid_yet_is_refused() {
        let keys =
            TokenKeys::new("session", Some(("service", ServiceKeyAlgorithm::HS256))).unwrap();
        let later = now() + 3600;
        let early = serde_json::json!({"sub": "bot", "admin": true, "exp": later, "nbf": later});
        let refused = keys.verify(&sign_claims(&early, "service", ServiceKeyAlgorithm::HS256));
        assert!(
            matches!(&refused, Err(TokenError::Invalid(why)) if why.contains("`nbf`")),
            "{refused:?}"
        );
        let due = serde_json::json!({"sub": "bot", "admin": true, "exp": later, "nbf": now() - 1});
        let accepted = keys.verify(&sign_claims(&due, "service", ServiceKeyAlgorithm::HS256));
        assert!(matches!(accepted, Ok(Verified::Service(_))), "{accepted:?}");
    }

    /// A token its key did sign, refused for a claim, is answered with that claim's name, not
    /// the algorithm or the signature, whatever the service key's algorithm.
    #[test]
    fn a_service_token_refused_for_a_claim_names_the_claim() {
        use serde_json::json;
        let (private, public) = ed25519();
        let later = now() + 3600;
        let cases = [
            (json!({"sub": "bot", "admin": true}), "exp"),
            (
                json!({"sub": "bot", "admin": true, "exp": "tomorrow"}),
                "exp",
            ),
            (json!({"admin": true, "exp": later}), "sub"),
            (json!({"sub": "", "admin": true, "exp": later}), "sub"),
            (json!({"sub": 7, "admin": true, "exp": later}), "sub"),
            (json!({"sub": "bot", "admin": "yes", "exp": later}), "admin"),
            (json!({"sub": "bot", "admin": false, "exp": later}), "admin"),
            (
                json!({"sub": "bot", "admin": true, "exp": later, "nbf": "soon"}),
                "nbf",
            ),
        ];
        for (signing, verifying, algorithm) in [
            (
                "hs-secret-for-tests",
                "hs-secret-for-tests",
                ServiceKeyAlgorithm::HS256,
            ),
            (
                private.as_str(),
                public.as_str(),
                ServiceKeyAlgorithm::EdDSA,
            ),
        ] {
            let keys = TokenKeys::new("session", Some((verifying, algorithm))).unwrap();
            for (claims, named) in &cases {
                let refused = keys.verify(&sign_claims(claims, signing, algorithm));
                let Err(TokenError::Invalid(why)) = &refused else {
                    panic!("{claims} with {algorithm:?}: {refused:?}");
                };
                assert!(
                    why.contains(&format!("`{named}`")),
                    "{claims} with {algorithm:?}: {why}"
                );
                assert!(
                    !why.contains("algorithm") && !why.contains("signature"),
                    "{claims} with {algorithm:?}: {why}"
                );
                assert!(
                    !why.contains("hs-secret") && !why.contains("PRIVATE"),
                    "{why}"
                );
            }
        }
    }

    mod properties {
        use base64::Engine;
        use proptest::collection::vec;
        use proptest::prelude::*;

        use super::*;

        fn keys() -> TokenKeys {
            TokenKeys::new(
                "session-key",
                Some(("service-key", ServiceKeyAlgorithm::HS256)),
            )
            .unwrap()
            .with_federation_key(b"federation-key")
        }

        fn b64url(bytes: &[u8]) -> String {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        }

        fn session_claims() -> impl Strategy<Value = SessionClaims> {
            (
                any::<u128>(),
                any::<u128>(),
                any::<String>(),
                "[a-z0-9_-]{1,48}",
                any::<u64>(),
                60u64..1_000_000,
            )
                .prop_map(|(sub, sid, dom, site, iat, ahead)| SessionClaims {
                    sub: Uuid::from_u128(sub),
                    sid: Uuid::from_u128(sid),
                    dom,
                    site,
                    iat,
                    exp: now() + ahead,
                })
        }

        /// Three dot-separated parts of anything, or a header naming any algorithm.
        fn jwt_shaped() -> impl Strategy<Value = String> {
            let algorithms = vec!["HS256", "HS512", "RS256", "EdDSA", "none", "", "hs256"];
            prop_oneof![
                (
                    vec(any::<u8>(), 0..64),
                    vec(any::<u8>(), 0..128),
                    vec(any::<u8>(), 0..64)
                )
                    .prop_map(|(h, p, s)| format!(
                        "{}.{}.{}",
                        b64url(&h),
                        b64url(&p),
                        b64url(&s)
                    )),
                (
                    proptest::sample::select(algorithms),
                    vec(any::<u8>(), 0..128),
                    vec(any::<u8>(), 0..64)
                )
                    .prop_map(|(alg, p, s)| {
                        let header = format!("{{\"alg\":\"{alg}\",\"typ\":\"JWT\"}}");
                        format!(
                            "{}.{}.{}",
                            b64url(header.as_bytes()),
                            b64url(&p),
                            b64url(&s)
                        )
                    }),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// Any text, JWT-shaped or not, is refused without a panic, in a bounded answer
            /// that quotes none of it.
            #[test]
            fn arbitrary_tokens_are_refused(raw in prop_oneof![any::<String>(), jwt_shaped()]) {
                let refused = keys().verify(&raw);
                prop_assert!(refused.is_err(), "{:?}", refused);
                let said = refused.unwrap_err().to_string();
                prop_assert!(said.len() <= 160, "{}", said);
                if let Some(site) = unverified_site(&raw) {
                    prop_assert!(!site.is_empty() && site.len() <= 48);
                }
            }

            /// A session token verifies to the claims it was signed with, and names its site
            /// unverified.
            #[test]
            fn session_tokens_round_trip(claims in session_claims()) {
                let keys = keys();
                let token = keys.sign_session(&claims).unwrap();
                prop_assert_eq!(unverified_site(&token), Some(claims.site.clone()));
                prop_assert_eq!(keys.verify(&token).unwrap(), Verified::Session(claims));
            }

            #[test]
            fn service_tokens_round_trip(
                sub in "[^\\s]{1,32}",
                ahead in 60u64..1_000_000,
                iat in proptest::option::of(any::<u64>()),
                nbf_ago in proptest::option::of(0u64..1_000_000),
            ) {
                let claims = ServiceClaims {
                    sub,
                    admin: true,
                    exp: now() + ahead,
                    iat,
                    nbf: nbf_ago.map(|ago| now().saturating_sub(ago)),
                };
                let token = sign_service(&claims, "service-key", ServiceKeyAlgorithm::HS256).unwrap();
                prop_assert_eq!(keys().verify(&token).unwrap(), Verified::Service(claims));
            }

            /// A signed token with one character changed is refused, or (where base64 leaves a
            /// bit unused) reads as the very same token.
            #[test]
            fn a_changed_character_is_refused(
                claims in session_claims(),
                at in any::<prop::sample::Index>(),
                c in proptest::char::range('+', 'z'),
            ) {
                let keys = keys();
                let token = keys.sign_session(&claims).unwrap();
                let mut chars: Vec<char> = token.chars().collect();
                let i = at.index(chars.len());
                chars[i] = c;
                let changed: String = chars.into_iter().collect();
                if let Ok(verified) = keys.verify(&changed) {
                    prop_assert_eq!(verified, Verified::Session(claims));
                }
            }
        }
    }
}
