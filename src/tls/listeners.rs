//! The certificates of this node's TLS listeners, each reloadable on its own (by port) or all
//! together, and what a node answers when a peer asks it to reload or to show them.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{CertInfo, ReloadableCert};

/// One TLS listener's certificate.
pub struct TlsListener {
    /// `api`, `imap`, `imaps`, `smtp` or `smtps`.
    pub name: &'static str,
    pub port: u16,
    pub cert: Arc<ReloadableCert>,
}

/// What one node did with a reload request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadOutcome {
    /// Listeners that now serve the new pair.
    pub reloaded: Vec<String>,
    /// Listeners whose new pair did not load (they keep the old one), and why.
    pub failed: Vec<(String, String)>,
}

/// A listener's certificate as `GET /servers/certificates` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListenerCertificate {
    pub listener: String,
    pub port: u16,
    pub subject: String,
    pub sans: Vec<String>,
    pub not_after: String,
    pub sha256: String,
}

#[derive(Default)]
pub struct NodeCertificates {
    pub listeners: Vec<TlsListener>,
}

impl NodeCertificates {
    /// Re-reads the pairs of every listener, or of the one on `port`.
    pub fn reload(&self, port: Option<u16>) -> ReloadOutcome {
        let mut outcome = ReloadOutcome::default();
        for listener in self.selected(port) {
            match listener.cert.reload() {
                Ok(_) => outcome.reloaded.push(listener.name.to_string()),
                Err(e) => outcome
                    .failed
                    .push((listener.name.to_string(), e.to_string())),
            }
        }
        outcome
    }

    pub fn describe(&self) -> Vec<ListenerCertificate> {
        self.listeners
            .iter()
            .map(|l| {
                let CertInfo {
                    subject,
                    sans,
                    not_after,
                    sha256,
                    ..
                } = l.cert.info();
                ListenerCertificate {
                    listener: l.name.to_string(),
                    port: l.port,
                    subject,
                    sans,
                    not_after,
                    sha256,
                }
            })
            .collect()
    }

    /// Each listener's name and when its certificate expires (seconds since the epoch).
    pub fn expiries(&self) -> Vec<(&'static str, i64)> {
        self.listeners
            .iter()
            .map(|l| (l.name, l.cert.info().not_after_unix))
            .collect()
    }

    fn selected(&self, port: Option<u16>) -> impl Iterator<Item = &TlsListener> {
        self.listeners
            .iter()
            .filter(move |l| port.is_none_or(|p| l.port == p))
    }
}
