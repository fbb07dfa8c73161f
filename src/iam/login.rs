//! Password login: the site-wide ban, the password check, the new session and its token.

use std::net::IpAddr;

use sessionplane_cluster::now_ms;
use uuid::Uuid;

use super::token::SessionClaims;
use super::{Iam, IamError};
use crate::model::{DomainName, Login, NewSession, Session, User};
use crate::state::site::{SiteCommand, SiteReply};

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
    pub async fn login(&self, attempt: LoginAttempt<'_>) -> Result<LoggedIn, IamError> {
        let user = self
            .check_password(attempt.domain, attempt.login, attempt.password)
            .await?;
        self.open_session(&user, attempt.client_addr, attempt.user_agent)
            .await
    }

    /// Checks a user's password under the site-wide ban: the user when it matches, the same
    /// refusal for every other case (unknown domain or user, disabled user, wrong password),
    /// each of which counts as a failure.
    pub async fn check_password(
        &self,
        domain: &str,
        login: &str,
        password: &str,
    ) -> Result<User, IamError> {
        let checked = self.verify_password(domain, login, password).await;
        match &checked {
            Ok(_) => self.telemetry.login(LoginOutcome::Ok),
            Err(IamError::Banned { .. }) => self.telemetry.login(LoginOutcome::Banned),
            Err(IamError::BadCredentials) => self.telemetry.login(LoginOutcome::Failed),
            Err(_) => {}
        }
        checked
    }

    async fn verify_password(
        &self,
        domain: &str,
        login: &str,
        password: &str,
    ) -> Result<User, IamError> {
        let (Ok(domain), Ok(login)) = (domain.parse::<DomainName>(), login.parse::<Login>()) else {
            // No such user can exist; spend the same time as for one that does not.
            self.hasher.verify(password, None).await?;
            return Err(IamError::BadCredentials);
        };
        let key = format!("{login}@{domain}");
        let failures = self.refuse_if_banned(&key).await?;
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
                if failures > 0 {
                    self.site
                        .execute(&SiteCommand::ClearLoginFailures { key })
                        .await?;
                }
                Ok(user)
            }
            _ => {
                let record = SiteCommand::RecordLoginFailure {
                    key,
                    window_ms: self.login_failure_window_ms,
                };
                self.site.execute(&record).await?;
                Err(IamError::BadCredentials)
            }
        }
    }

    /// The failures that count now; a ban when they reach the limit.
    async fn refuse_if_banned(&self, key: &str) -> Result<u32, IamError> {
        let failures = self
            .site
            .read(|state, now| state.login_failures(key, now))
            .await?;
        if failures.count < self.max_login_failures {
            return Ok(failures.count);
        }
        let wait_ms = failures.first_expires_at_ms.saturating_sub(now_ms());
        Err(IamError::Banned {
            retry_after_secs: wait_ms.div_ceil(1000).max(1),
        })
    }

    async fn open_session(
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
        let session = self.site.create_session(new).await?;
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
        let command = SiteCommand::RenewSession {
            session_id,
            lifetime_ms: self.session_lifetime_ms,
        };
        match self.site.execute(&command).await? {
            SiteReply::Session(session) => Ok(session),
            _ => Err(IamError::SessionClosed),
        }
    }
}
