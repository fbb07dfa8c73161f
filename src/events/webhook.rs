//! `[[webhook]]` receivers: each batch a POST of a JSON array of events (as the stream shows
//! them), signed with the receiver's secret.
//!
//! Headers: `X-Sessionplane-Signature: sha256=<hex HMAC-SHA256 of the body>`,
//! `X-Sessionplane-Timestamp: <unix seconds of the attempt>`, and `X-Sessionplane-Delivery:
//! <site>:<first seq>-<last seq>`. Any 2xx takes the batch.

use std::time::Duration;

use ring::hmac;

use super::deliver::{action_wanted, Sink};
use super::json::write_entry;
use crate::config::events::{DeliverySettings, Webhook};
use crate::config::Secret;
use crate::model::delivery::{SinkKind, SinkName};
use crate::state::site::feed::{Entry, Resolved};

pub const SIGNATURE_HEADER: &str = "x-sessionplane-signature";
pub const TIMESTAMP_HEADER: &str = "x-sessionplane-timestamp";
pub const DELIVERY_HEADER: &str = "x-sessionplane-delivery";

pub struct WebhookSink {
    name: SinkName,
    url: reqwest::Url,
    key: hmac::Key,
    events: Vec<String>,
    settings: DeliverySettings,
    http: reqwest::Client,
}

impl WebhookSink {
    pub fn new(hook: &Webhook, secret: &Secret) -> Result<Self, String> {
        let at = |e: String| format!("webhook {:?}: {e}", hook.name);
        let url = reqwest::Url::parse(&hook.url).map_err(|e| at(e.to_string()))?;
        Ok(Self {
            name: SinkName {
                kind: SinkKind::Webhook,
                name: hook.name.clone(),
            },
            url,
            key: hmac::Key::new(hmac::HMAC_SHA256, secret.0.as_bytes()),
            events: hook.events.clone(),
            settings: hook.delivery.clone(),
            http: receiver_client(&hook.delivery).map_err(at)?,
        })
    }
}

/// The HTTP client of one receiver: its own trust store when it has one.
pub fn receiver_client(settings: &DeliverySettings) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(Duration::from_millis(settings.timeout_ms))
        .timeout(Duration::from_millis(settings.timeout_ms))
        .tcp_nodelay(true);
    if let Some(path) = &settings.ca_file {
        let pem = std::fs::read(path).map_err(|e| format!("ca_file {}: {e}", path.display()))?;
        for certificate in reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("ca_file {}: {e}", path.display()))?
        {
            builder = builder.add_root_certificate(certificate);
        }
    }
    builder.build().map_err(|e| e.to_string())
}

/// `sha256=<hex>` of `body` under `key`.
pub fn signature(key: &hmac::Key, body: &[u8]) -> String {
    let tag = hmac::sign(key, body);
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// An event's action, as the receivers' patterns name it.
pub fn action_of(entry: &Entry) -> &str {
    match &entry.event {
        Resolved::Audit(audit) => &audit.action,
        Resolved::Lifecycle(event) => event.kind.action().unwrap_or_default(),
    }
}

impl Sink for WebhookSink {
    fn name(&self) -> &SinkName {
        &self.name
    }

    fn settings(&self) -> &DeliverySettings {
        &self.settings
    }

    fn wants(&self, entry: &Entry) -> bool {
        action_wanted(&self.events, action_of(entry))
    }

    async fn send(&self, site: &str, batch: &[Entry]) -> Result<(), String> {
        let mut body = Vec::with_capacity(batch.len() * 360 + 2);
        body.push(b'[');
        for (k, entry) in batch.iter().enumerate() {
            if k > 0 {
                body.push(b',');
            }
            write_entry(&mut body, site, entry);
        }
        body.push(b']');
        let (first, last) = match (batch.first(), batch.last()) {
            (Some(first), Some(last)) => (first.seq, last.seq),
            _ => return Ok(()),
        };
        let timestamp = sessionplane_cluster::now_ms() / 1000;
        let response = self
            .http
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature(&self.key, &body))
            .header(TIMESTAMP_HEADER, timestamp.to_string())
            .header(DELIVERY_HEADER, format!("{site}:{first}-{last}"))
            .body(body)
            .send()
            .await
            .map_err(brief_error)?;
        match response.status().is_success() {
            true => Ok(()),
            false => Err(format!("answered {}", response.status().as_u16())),
        }
    }
}

/// Why a call failed, without its URL (which may carry a token of the receiver's).
pub fn brief_error(e: reqwest::Error) -> String {
    let e = e.without_url();
    match (e.is_connect(), e.is_timeout()) {
        (true, _) => "connection failed".into(),
        (_, true) => "timed out".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_hex_hmac_sha256_of_the_body() {
        // RFC 4231, test case 2.
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"Jefe");
        assert_eq!(
            signature(&key, b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
