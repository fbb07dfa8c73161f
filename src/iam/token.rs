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

    fn verify_federation(&self, token: &str) -> Option<Result<Verified, TokenError>> {
        let (_, key) = self.federation.as_ref()?;
        let mut validation = strict(Algorithm::HS256);
        validation.set_audience(&[FEDERATION_AUDIENCE]);
        match jsonwebtoken::decode::<FederationClaims>(token, key, &validation) {
            Ok(data) => Some(Ok(Verified::Federated(data.claims))),
            Err(e) if is_expiry(&e) => Some(Err(TokenError::Expired)),
            Err(_) => None,
        }
    }

    pub fn sign_session(&self, claims: &SessionClaims) -> Result<String, TokenError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.session_sign)
            .map_err(|e| TokenError::Sign(e.to_string()))
    }

    /// Checks the signature and expiry: a session token first, then a service token.
    pub fn verify(&self, token: &str) -> Result<Verified, TokenError> {
        let session = jsonwebtoken::decode::<SessionClaims>(
            token,
            &self.session_verify,
            &strict(Algorithm::HS256),
        );
        let session_error = match session {
            Ok(data) => return Ok(Verified::Session(data.claims)),
            Err(e) => e,
        };
        if let Some(verified) = self.verify_federation(token) {
            return verified;
        }
        if let Some((key, algorithm)) = &self.service {
            match jsonwebtoken::decode::<ServiceClaims>(token, key, &strict(*algorithm)) {
                Ok(data) if data.claims.admin && !data.claims.sub.trim().is_empty() => {
                    return Ok(Verified::Service(data.claims));
                }
                Ok(_) => {
                    return Err(TokenError::Invalid(
                        "a service token needs a subject and admin: true".into(),
                    ))
                }
                Err(e) if is_expiry(&e) => return Err(TokenError::Expired),
                Err(_) => {}
            }
        }
        Err(match is_expiry(&session_error) {
            true => TokenError::Expired,
            false => TokenError::Invalid(reason(&session_error)),
        })
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

/// One algorithm, `exp` and `sub` required, no leeway: the token's own expiry is exact.
fn strict(algorithm: Algorithm) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.leeway = 0;
    validation.set_required_spec_claims(&["exp", "sub"]);
    validation
}

fn is_expiry(error: &jsonwebtoken::errors::Error) -> bool {
    matches!(
        error.kind(),
        jsonwebtoken::errors::ErrorKind::ExpiredSignature
    )
}

fn reason(error: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind as K;
    match error.kind() {
        K::InvalidSignature => "bad signature".into(),
        K::InvalidAlgorithm => "unexpected algorithm".into(),
        K::InvalidToken | K::Base64(_) | K::Json(_) | K::Utf8(_) => "malformed".into(),
        K::MissingRequiredClaim(claim) => format!("no `{claim}` claim"),
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
}
