//! Password login: the site-wide ban, the password check, the new session and its token.
//! Every failed check is an audit event (`login.failed`, recorded after the check), and every
//! check refused by the ban one too (`login.banned`, in the entry that refuses it), and every
//! right password a lock keeps out (`login.locked`).

use std::net::IpAddr;

use sessionplane_cluster::now_ms;
use uuid::Uuid;

use super::token::SessionClaims;
use super::{Iam, IamError};
use crate::model::audit::{Actor, NewAuditEvent, Outcome};
use crate::model::{DomainName, Login, NewSession, Session, User};
use crate::state::StoreError;

/// The longest `login@domain` an event names (a longer one is cut): whatever a client sends.
const MAX_TARGET_CHARS: usize = 320;

pub struct LoginAttempt<'a> {
    pub domain: &'a str,
    pub login: &'a str,
    pub password: &'a str,
    pub client_addr: Option<IpAddr>,
    pub user_agent: Option<String>,
}

pub struct LoggedIn {
    pub session: Session,
    pub token: String,
}

use crate::telemetry::LoginOutcome;

impl Iam {
    /// Checks a user's password under the site-wide ban: the user when it matches, the same
    /// refusal for every other case (unknown domain or user, disabled user, wrong password),
    /// each of which counts as a failure. Every password check there is comes through here.
    pub async fn check_password(
        &self,
        domain: &str,
        login: &str,
        password: &str,
        source: Option<IpAddr>,
    ) -> Result<User, IamError> {
        let checked = self.verify_password(domain, login, password, source).await;
        match &checked {
            Ok(_) => self.telemetry.login(LoginOutcome::Ok),
            Err(IamError::Banned { .. }) => {
                self.telemetry.login(LoginOutcome::Banned);
                self.telemetry
                    .audit_event("login.banned", Outcome::Refused.name());
            }
            Err(IamError::BadCredentials) => {
                self.telemetry.login(LoginOutcome::Failed);
                self.record_login_failure(domain, login, source).await;
            }
            Err(_) => {}
        }
        checked
    }

    /// A login event of `action` for `login@domain` from `source` (no password, ever).
    fn login_event(
        &self,
        action: &str,
        domain: &str,
        login: &str,
        source: Option<IpAddr>,
    ) -> NewAuditEvent {
        let target: String = format!("{login}@{domain}")
            .chars()
            .take(MAX_TARGET_CHARS)
            .collect();
        NewAuditEvent::new(
            &self.site_name,
            &self.node_label,
            Actor::None,
            action,
            &target,
        )
        .with_remote(source)
        .with_outcome(Outcome::Failed)
    }

    /// Records a failed password check; a failure to record it is logged (the login fails
    /// anyway).
    async fn record_login_failure(&self, domain: &str, login: &str, source: Option<IpAddr>) {
        let event = self.login_event("login.failed", domain, login, source);
        match self.site.record_audit(event).await {
            Ok(_) => self
                .telemetry
                .audit_event("login.failed", Outcome::Failed.name()),
            Err(e) => tracing::warn!(error = %e, "could not record a failed login's audit event"),
        }
    }

    /// Records a login a lock refused after the right password (`login.locked`); it does not
    /// count towards the ban. A failure to record it is logged (the login is refused anyway).
    pub async fn record_locked_login(&self, address: &str, source: Option<IpAddr>, lock_id: Uuid) {
        let (login, domain) = address.rsplit_once('@').unwrap_or((address, ""));
        let event = self
            .login_event("login.locked", domain, login, source)
            .with_outcome(Outcome::Refused)
            .detail("lock_id", lock_id.to_string());
        match self.site.record_audit(event).await {
            Ok(_) => self
                .telemetry
                .audit_event("login.locked", Outcome::Refused.name()),
            Err(e) => tracing::warn!(error = %e, "could not record a locked login's audit event"),
        }
    }

    /// The check is reserved in the site log before the hash is computed, so concurrent
    /// attempts, on any node, get no more checks between them than the ban allows.
    async fn verify_password(
        &self,
        domain: &str,
        login: &str,
        password: &str,
        source: Option<IpAddr>,
    ) -> Result<User, IamError> {
        let (Ok(domain), Ok(login)) = (domain.parse::<DomainName>(), login.parse::<Login>()) else {
            // No such user can exist; spend the same time as for one that does not.
            self.hasher.verify(password, None).await?;
            return Err(IamError::BadCredentials);
        };
        let key = self.failure_key(&domain, &login, source);
        let ban_event = self
            .login_event("login.banned", domain.as_str(), login.as_str(), source)
            .with_outcome(Outcome::Refused);
        self.reserve_password_check(&key, ban_event).await?;
        let user = self
            .directory
            .read_fresh_or_local(|d| d.user_by_login(&domain, &login).cloned())
            .await;
        let hash = user
            .as_ref()
            .filter(|u| !u.disabled)
            .map(|u| u.password_hash.as_str());
        let matches = self.hasher.verify(password, hash).await?;
        match user {
            Some(user) if matches => {
                self.site.clear_login_failures(key).await?;
                Ok(user)
            }
            _ => Err(IamError::BadCredentials),
        }
    }

    /// Where an attempt is counted: per `login@domain`, and apart for sources in the trusted
    /// networks, so that a ban earned from elsewhere does not lock those out too.
    fn failure_key(&self, domain: &DomainName, login: &Login, source: Option<IpAddr>) -> String {
        let trusted = source.is_some_and(|ip| {
            let ip = ip.to_canonical();
            self.trusted_networks.iter().any(|net| net.contains(&ip))
        });
        match trusted {
            // No domain holds a `/`, so no login@domain reads like this.
            true => format!("{login}@{domain}/trusted"),
            false => format!("{login}@{domain}"),
        }
    }

    /// Takes one of the key's password checks, or answers the ban when none is left.
    /// A refusal records `ban_event` in its entry.
    async fn reserve_password_check(
        &self,
        key: &str,
        ban_event: NewAuditEvent,
    ) -> Result<(), IamError> {
        let reserved = self
            .site
            .audited(ban_event)
            .reserve_login_attempt(
                key.to_string(),
                self.login_failure_window_ms,
                self.max_login_failures,
            )
            .await?;
        reserved.map(|_| ()).map_err(|counted| {
            let wait_ms = counted.first_expires_at_ms.saturating_sub(now_ms());
            IamError::Banned {
                retry_after_secs: wait_ms.div_ceil(1000).max(1),
            }
        })
    }

    pub async fn open_session(
        &self,
        user: &User,
        client_addr: Option<IpAddr>,
        user_agent: Option<String>,
    ) -> Result<LoggedIn, IamError> {
        let new = NewSession {
            session_id: Uuid::now_v7(),
            user_id: user.user_id,
            login: user.login.to_string(),
            domain: user.domain.to_string(),
            lifetime_ms: self.session_lifetime_ms,
            client_addr,
            user_agent,
        };
        let session = match self.site.create_session(new).await {
            Err(StoreError::Locked { lock_id, message }) => {
                let address = user.address().to_string();
                self.record_locked_login(&address, client_addr, lock_id)
                    .await;
                return Err(StoreError::Locked { lock_id, message }.into());
            }
            created => created?,
        };
        let token = self.token_for(&session)?;
        Ok(LoggedIn { session, token })
    }

    /// A token for `session`, valid until the session's expiry as it stands.
    pub fn token_for(&self, session: &Session) -> Result<String, IamError> {
        let claims = SessionClaims {
            sub: session.user_id,
            sid: session.session_id,
            dom: session.domain.to_string(),
            site: self.site_name.clone(),
            iat: session.last_seen_ms / 1000,
            exp: session.expires_at_ms / 1000,
        };
        self.tokens
            .sign_session(&claims)
            .map_err(|e| IamError::Token(e.to_string()))
    }

    /// Renews a session to the full lifetime.
    pub async fn renew(&self, session_id: Uuid) -> Result<Session, IamError> {
        self.site
            .renew_session(session_id, self.session_lifetime_ms)
            .await?
            .ok_or(IamError::SessionClosed)
    }
}
