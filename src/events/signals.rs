//! Shared Signals: a CAEP `session-revoked` Security Event Token (RFC 8417) for each session
//! a revocation, a lock, a containment, a disabled account or a session limit ends, pushed to
//! each `[[signals.receiver]]` as RFC 8935 says (a POST of the token, `application/secevent+jwt`,
//! answered 202). Signed ES256 with the `[signals]` key, whose public half the api publishes
//! (`/rest/v1/signals/jwks`) so that a receiver can verify them.
//!
//! A receiver's 5xx, 429 or silence is retried; any other 4xx refuses that one token for good
//! (RFC 8935 §2.3: resending it changes nothing), which is logged and not retried.

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};

use super::deliver::Sink;
use super::webhook::{brief_error, receiver_client};
use crate::config::events::{DeliverySettings, SignalsReceiver, SignalsSettings};
use crate::model::delivery::{SinkKind, SinkName};
use crate::model::event::FeedKind;
use crate::model::CloseReason;
use crate::state::site::feed::{Entry, Resolved};

pub const SESSION_REVOKED: &str =
    "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
pub const CONTENT_TYPE: &str = "application/secevent+jwt";
const DEFAULT_ISSUER: &str = "urn:sessionplane";

/// The deployment's signing key for Security Event Tokens.
pub struct SigningKey {
    encoding: EncodingKey,
    kid: String,
    jwk: Value,
    issuer: String,
}

impl SigningKey {
    /// The key of `[signals]`, when there is one.
    pub fn load(settings: &SignalsSettings) -> Result<Option<Self>, String> {
        let Some(path) = &settings.signing_key_file else {
            return Ok(None);
        };
        let at = |e: String| format!("signals.signing_key_file {}: {e}", path.display());
        let pem = std::fs::read(path).map_err(|e| at(e.to_string()))?;
        let encoding = EncodingKey::from_ec_pem(&pem).map_err(|e| at(e.to_string()))?;
        let der = pem_body(&pem).ok_or_else(|| at("no PRIVATE KEY block".into()))?;
        let rng = ring::rand::SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &rng)
            .map_err(|_| at("not an EC P-256 key in PKCS#8".into()))?;
        let point = pair.public_key().as_ref();
        if point.len() != 65 || point[0] != 4 {
            return Err(at("an unexpected public key form".into()));
        }
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
        let (x, y) = (b64(&point[1..33]), b64(&point[33..]));
        // RFC 7638 thumbprint: the required members, in lexical order, no spaces.
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let kid = b64(ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes()).as_ref());
        let jwk = json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid,
            "use": "sig", "alg": "ES256"});
        Ok(Some(Self {
            encoding,
            kid,
            jwk,
            issuer: settings
                .issuer
                .clone()
                .unwrap_or_else(|| DEFAULT_ISSUER.into()),
        }))
    }

    /// `{"keys":[…]}`: what a receiver verifies the tokens with.
    pub fn jwks(&self) -> Value {
        json!({ "keys": [self.jwk] })
    }

    fn sign(&self, claims: &Value) -> Result<String, String> {
        let mut header = Header::new(Algorithm::ES256);
        header.typ = Some("secevent+jwt".into());
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding).map_err(|e| e.to_string())
    }
}

/// The DER inside the first PEM block of `pem`.
fn pem_body(pem: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(pem).ok()?;
    let start = text.find("-----BEGIN PRIVATE KEY-----")?;
    let body = &text[start + "-----BEGIN PRIVATE KEY-----".len()..];
    let end = body.find("-----END PRIVATE KEY-----")?;
    let b64: String = body[..end].chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(b64).ok()
}

/// Why a session ended, if it is one a receiver hears of, and who ended it (CAEP's
/// `initiating_entity`).
fn revocation(reason: CloseReason) -> Option<&'static str> {
    match reason {
        CloseReason::Revoked | CloseReason::Locked | CloseReason::UserDisabled => Some("admin"),
        CloseReason::Limit => Some("policy"),
        CloseReason::Expired | CloseReason::Logout => None,
    }
}

/// The claims of the token for one ended session.
pub fn claims(issuer: &str, audience: &str, site: &str, entry: &Entry) -> Option<Value> {
    let Resolved::Lifecycle(event) = &entry.event else {
        return None;
    };
    let FeedKind::SessionEnded { session, reason } = &event.kind else {
        return None;
    };
    let initiating = revocation(*reason)?;
    Some(json!({
        "iss": issuer,
        "aud": audience,
        "iat": sessionplane_cluster::now_ms() / 1000,
        "jti": format!("{site}:{}", entry.seq),
        "sub_id": {
            "format": "complex",
            "user": {"format": "email", "email": session.address()},
            "session": {"format": "opaque", "id": session.session_id.to_string()},
        },
        "events": {
            SESSION_REVOKED: {
                "event_timestamp": event.time_ms / 1000,
                "initiating_entity": initiating,
                "reason_admin": {"en": reason.as_str()},
            }
        }
    }))
}

pub struct SignalsSink {
    name: SinkName,
    url: reqwest::Url,
    audience: String,
    key: std::sync::Arc<SigningKey>,
    settings: DeliverySettings,
    http: reqwest::Client,
}

impl SignalsSink {
    pub fn new(
        receiver: &SignalsReceiver,
        key: std::sync::Arc<SigningKey>,
    ) -> Result<Self, String> {
        let at = |e: String| format!("signals.receiver {:?}: {e}", receiver.name);
        Ok(Self {
            name: SinkName {
                kind: SinkKind::Signals,
                name: receiver.name.clone(),
            },
            url: reqwest::Url::parse(&receiver.url).map_err(|e| at(e.to_string()))?,
            audience: receiver
                .audience
                .clone()
                .unwrap_or_else(|| receiver.url.clone()),
            key,
            settings: receiver.delivery.clone(),
            http: receiver_client(&receiver.delivery).map_err(at)?,
        })
    }

    async fn push(&self, token: String) -> Result<(), String> {
        let response = self
            .http
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .header(reqwest::header::ACCEPT, "application/json")
            .body(token)
            .send()
            .await
            .map_err(brief_error)?;
        let status = response.status().as_u16();
        match status {
            200..=299 => Ok(()),
            429 | 500.. => Err(format!("answered {status}")),
            _ => {
                let said = response.text().await.unwrap_or_default();
                tracing::warn!(receiver = %self.name.name, status, answer = %said.chars().take(200).collect::<String>(),
                    "a signals receiver refused a security event token; it is not sent again");
                Ok(())
            }
        }
    }
}

impl Sink for SignalsSink {
    fn name(&self) -> &SinkName {
        &self.name
    }

    fn settings(&self) -> &DeliverySettings {
        &self.settings
    }

    fn wants(&self, entry: &Entry) -> bool {
        match &entry.event {
            Resolved::Lifecycle(event) => matches!(
                &event.kind,
                FeedKind::SessionEnded { reason, .. } if revocation(*reason).is_some()
            ),
            Resolved::Audit(_) => false,
        }
    }

    async fn send(&self, site: &str, batch: &[Entry]) -> Result<(), String> {
        for entry in batch {
            let Some(claims) = claims(&self.key.issuer, &self.audience, site, entry) else {
                continue;
            };
            self.push(self.key.sign(&claims)?).await?;
        }
        Ok(())
    }
}
