//! `[mail.upstream]`: the mail servers the IMAP and SMTP listeners relay to once a user has
//! authenticated, how sessionplane reaches them (TLS, its verification) and how it logs in
//! there on the user's behalf.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ConfigError;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailUpstreamConfig {
    /// The IMAP server, `host:port`. Unset: the IMAP listener serves as without an upstream.
    pub imap: Option<String>,
    pub imap_tls: UpstreamTls,
    /// The SMTP submission server, `host:port`. Unset: SMTP as without an upstream.
    pub smtp: Option<String>,
    pub smtp_tls: UpstreamTls,
    /// The CAs the servers' certificates are checked against (PEM). Unset: the web's roots.
    pub ca_file: Option<PathBuf>,
    /// Off only when set so: a server whose certificate does not verify is refused.
    pub verify_certificates: bool,
    /// The name the certificates must carry; unset: the host of `imap` / `smtp`.
    pub server_name: Option<String>,
    /// How sessionplane logs in to the servers for a user it authenticated.
    pub auth: UpstreamAuth,
    /// The servers' master user (`auth = "master"`): Dovecot's `user*master`, SASL PLAIN's
    /// authorization identity.
    pub master_user: Option<String>,
    /// The file holding the master user's password (its first line).
    pub master_secret_file: Option<PathBuf>,
    /// A server that does not take the connection and answer within this time is unavailable.
    pub connect_timeout_ms: u64,
}

/// TLS to a mail server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamTls {
    /// STARTTLS after the greeting, before the login (IMAP 143, submission 587).
    #[default]
    Starttls,
    /// TLS from the first byte (IMAPS 993, submissions 465).
    Implicit,
    /// None: for a server on the same host or a private link only.
    None,
}

/// How sessionplane logs in to the servers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamAuth {
    /// As the servers' master user, on behalf of the user (their password is never passed on).
    #[default]
    Master,
    /// With the user's own credentials, once sessionplane has checked them.
    Passthrough,
}

impl Default for MailUpstreamConfig {
    fn default() -> Self {
        Self {
            imap: None,
            imap_tls: UpstreamTls::default(),
            smtp: None,
            smtp_tls: UpstreamTls::default(),
            ca_file: None,
            verify_certificates: true,
            server_name: None,
            auth: UpstreamAuth::default(),
            master_user: None,
            master_secret_file: None,
            connect_timeout_ms: 5_000,
        }
    }
}

impl MailUpstreamConfig {
    pub fn is_configured(&self) -> bool {
        self.imap.is_some() || self.smtp.is_some()
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(format!("mail.upstream: {m}")));
        for (name, address) in [("imap", &self.imap), ("smtp", &self.smtp)] {
            if let Some(address) = address {
                if split_host_port(address).is_none() {
                    return invalid(format!("{name} {address:?}: use host:port"));
                }
            }
        }
        if self.connect_timeout_ms == 0 {
            return invalid("connect_timeout_ms must be above 0".into());
        }
        if self.auth == UpstreamAuth::Master {
            if self
                .master_user
                .as_deref()
                .is_none_or(|u| u.trim().is_empty())
            {
                return invalid("auth = \"master\" needs master_user".into());
            }
            if self.master_secret_file.is_none() {
                return invalid("auth = \"master\" needs master_secret_file".into());
            }
        }
        Ok(())
    }
}

/// `host:port` (an IPv6 host in brackets) as its two parts.
pub fn split_host_port(address: &str) -> Option<(&str, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = port.parse().ok()?;
    (!host.is_empty() && port != 0).then_some((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master() -> MailUpstreamConfig {
        MailUpstreamConfig {
            imap: Some("127.0.0.1:143".into()),
            master_user: Some("proxy".into()),
            master_secret_file: Some("/dev/null".into()),
            connect_timeout_ms: 1000,
            ..Default::default()
        }
    }

    #[test]
    fn a_master_login_needs_its_user_and_secret() {
        assert!(master().validate().is_ok());
        let no_user = MailUpstreamConfig {
            master_user: None,
            ..master()
        };
        assert!(no_user.validate().is_err());
        let no_secret = MailUpstreamConfig {
            master_secret_file: None,
            ..master()
        };
        assert!(no_secret.validate().is_err());
        let passthrough = MailUpstreamConfig {
            auth: UpstreamAuth::Passthrough,
            master_user: None,
            master_secret_file: None,
            ..master()
        };
        assert!(passthrough.validate().is_ok());
    }

    #[test]
    fn addresses_are_host_and_port() {
        assert_eq!(
            split_host_port("mail.internal:143"),
            Some(("mail.internal", 143))
        );
        assert_eq!(split_host_port("[::1]:993"), Some(("::1", 993)));
        for bad in ["mail.internal", ":143", "host:0", "host:x"] {
            assert_eq!(split_host_port(bad), None, "{bad}");
            let config = MailUpstreamConfig {
                imap: Some(bad.into()),
                ..master()
            };
            assert!(config.validate().is_err(), "{bad}");
        }
    }
}
