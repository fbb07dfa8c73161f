//! `[events]`, `[[webhook]]` and `[signals]`: how long the site's feed is kept, and the
//! receivers the site leader delivers it to, as the operator writes them; checked at load.
//!
//! Owns the shapes and their validation only; delivering is `events`'.

use std::collections::BTreeSet;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Secret;

/// `[events]`: the feed's retention. The leader trims what is older than `retention_secs`, or
/// beyond the newest `max_kept`, but never an event a configured receiver has not had yet
/// unless the feed is over `max_kept`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventSettings {
    pub retention_secs: u64,
    pub max_kept: u64,
    /// How often the leader trims.
    pub trim_interval_ms: u64,
}

impl Default for EventSettings {
    fn default() -> Self {
        Self {
            retention_secs: 24 * 3600,
            max_kept: 2_000_000,
            trim_interval_ms: 10_000,
        }
    }
}

/// One `[[webhook]]`: a receiver of batched, signed JSON POSTs.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    /// Names its delivery (in `/tasks`, the metrics and the logs): 1 to 48 of a-z 0-9 - _.
    pub name: String,
    /// `https://…` (or `http://` on a trusted network).
    pub url: String,
    /// Signs each delivery (HMAC-SHA256); or `secret_file`, whose first line it is.
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// The actions wanted (`session.ended`, `incident.*`, `*`); empty: every event.
    #[serde(default)]
    pub events: Vec<String>,
    #[serde(flatten)]
    pub delivery: DeliverySettings,
}

/// How a receiver is called.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeliverySettings {
    /// At most this many events in one POST.
    pub batch_max: usize,
    /// A receiver that has not answered within this time has failed the attempt.
    pub timeout_ms: u64,
    /// The first and the longest wait after a failed attempt (doubling in between).
    pub retry_initial_ms: u64,
    pub retry_max_ms: u64,
    /// PEM certificates trusted for the receiver besides the system's.
    pub ca_file: Option<PathBuf>,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            batch_max: 500,
            timeout_ms: 5_000,
            retry_initial_ms: 1_000,
            retry_max_ms: 60_000,
            ca_file: None,
        }
    }
}

/// `[signals]`: Shared Signals receivers of CAEP `session-revoked` events (RFC 8935 push).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SignalsSettings {
    /// The PEM private key (EC P-256, PKCS#8) every node of the deployment signs its Security
    /// Event Tokens with (ES256); its public half is at `/rest/v1/signals/jwks`.
    pub signing_key_file: Option<PathBuf>,
    /// The tokens' `iss` (default: `urn:sessionplane`).
    pub issuer: Option<String>,
    pub receiver: Vec<SignalsReceiver>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalsReceiver {
    pub name: String,
    pub url: String,
    /// The tokens' `aud` (default: the url).
    #[serde(default)]
    pub audience: Option<String>,
    #[serde(flatten)]
    pub delivery: DeliverySettings,
}

impl Webhook {
    /// The signing secret, from the config or its file.
    pub fn secret(&self) -> Result<Secret, String> {
        let at = |e: String| format!("webhook {:?}: {e}", self.name);
        match (&self.secret, &self.secret_file) {
            (Some(secret), _) => Ok(Secret(secret.clone())),
            (None, Some(file)) => {
                Secret::first_line_of(file).map_err(|e| at(format!("secret_file {e}")))
            }
            (None, None) => Err(at("no secret".into())),
        }
    }
}

pub fn validate(
    events: &EventSettings,
    webhooks: &[Webhook],
    signals: &SignalsSettings,
) -> Result<(), String> {
    if events.retention_secs == 0 || events.max_kept == 0 || events.trim_interval_ms == 0 {
        return Err(
            "events: retention_secs, max_kept and trim_interval_ms must be positive".into(),
        );
    }
    let mut names = BTreeSet::new();
    for hook in webhooks {
        let at = format!("webhook {:?}", hook.name);
        check_receiver(&hook.name, &hook.url, &hook.delivery, &at, &mut names)?;
        if hook.secret.is_some() == hook.secret_file.is_some() {
            return Err(format!("{at}: give secret or secret_file (one of them)"));
        }
        if hook.secret.as_deref().is_some_and(|s| s.len() < 16) {
            return Err(format!("{at}: the secret needs at least 16 characters"));
        }
        if let Some(bad) = hook.events.iter().find(|p| !valid_pattern(p)) {
            return Err(format!(
                "{at}: events: {bad:?} is not an action (session.ended) or a prefix (incident.*)"
            ));
        }
    }
    let mut names = BTreeSet::new();
    for receiver in &signals.receiver {
        let at = format!("signals.receiver {:?}", receiver.name);
        check_receiver(
            &receiver.name,
            &receiver.url,
            &receiver.delivery,
            &at,
            &mut names,
        )?;
    }
    if !signals.receiver.is_empty() && signals.signing_key_file.is_none() {
        return Err("signals: receivers need signing_key_file".into());
    }
    Ok(())
}

fn check_receiver<'a>(
    name: &'a str,
    url: &str,
    delivery: &DeliverySettings,
    at: &str,
    names: &mut BTreeSet<&'a str>,
) -> Result<(), String> {
    let name_ok = (1..=48).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
    if !name_ok {
        return Err(format!("{at}: name: use 1 to 48 of a-z 0-9 - _"));
    }
    if !names.insert(name) {
        return Err(format!("{at}: the name is used twice"));
    }
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
        _ => return Err(format!("{at}: url {url:?} is not an http(s) URL")),
    }
    if delivery.batch_max == 0 || delivery.batch_max > 10_000 {
        return Err(format!("{at}: batch_max from 1 to 10000"));
    }
    if delivery.timeout_ms == 0
        || delivery.retry_initial_ms == 0
        || delivery.retry_max_ms < delivery.retry_initial_ms
    {
        return Err(format!(
            "{at}: timeout_ms and retry_initial_ms positive, retry_max_ms >= retry_initial_ms"
        ));
    }
    Ok(())
}

/// `*`, an action (`session.ended`), or a prefix ending in `.*`.
fn valid_pattern(pattern: &str) -> bool {
    let body = pattern.strip_suffix(".*").unwrap_or(pattern);
    pattern == "*"
        || (!body.is_empty()
            && body.split('.').all(|part| {
                !part.is_empty() && part.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
            }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(name: &str, url: &str) -> Webhook {
        Webhook {
            name: name.into(),
            url: url.into(),
            secret: Some("a-secret-of-some-length".into()),
            secret_file: None,
            events: vec!["session.ended".into(), "incident.*".into(), "*".into()],
            delivery: DeliverySettings::default(),
        }
    }

    #[test]
    fn receivers_are_checked_at_load() {
        let events = EventSettings::default();
        let signals = SignalsSettings::default();
        assert_eq!(
            validate(
                &events,
                &[hook("siem", "https://siem.example/in")],
                &signals
            ),
            Ok(())
        );
        let twice = [
            hook("siem", "https://a.example/"),
            hook("siem", "https://b.example/"),
        ];
        assert!(validate(&events, &twice, &signals)
            .unwrap_err()
            .contains("twice"));
        assert!(validate(&events, &[hook("Bad Name", "https://a.example/")], &signals).is_err());
        assert!(validate(&events, &[hook("siem", "ftp://a.example/")], &signals).is_err());
        let mut no_secret = hook("siem", "https://a.example/");
        no_secret.secret = None;
        assert!(validate(&events, &[no_secret], &signals).is_err());
        let mut short = hook("siem", "https://a.example/");
        short.secret = Some("short".into());
        assert!(validate(&events, &[short], &signals).is_err());
        let mut pattern = hook("siem", "https://a.example/");
        pattern.events = vec!["session.*.x".into()];
        assert!(validate(&events, &[pattern], &signals).is_err());
        let unsigned = SignalsSettings {
            receiver: vec![SignalsReceiver {
                name: "rp".into(),
                url: "https://rp.example/ssf".into(),
                audience: None,
                delivery: DeliverySettings::default(),
            }],
            ..SignalsSettings::default()
        };
        assert!(validate(&events, &[], &unsigned)
            .unwrap_err()
            .contains("signing_key_file"));
    }
}
