//! Who is calling, and what it may administer.
//!
//! A session token is honoured only while its session is live in this site's store and its
//! user exists and is enabled: revoking the session (logout, kill, user deleted or disabled)
//! stops the token on a node as soon as that node has applied the revocation. A lock in force
//! on the session, its user, its domain or the network it was opened from stops it too.

use uuid::Uuid;

use super::token::{FederationClaims, Verified};
use super::{Iam, IamError};
use crate::model::audit::Actor;
use crate::model::{DomainName, Session, User};
use crate::state::directory::AdminScope;
use crate::state::site::Authority;

/// How a user caller's session was checked when its request came in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionCheck {
    /// Read under this node's read lease or after a read barrier of the site group: no
    /// revocation acknowledged before the request has been missed.
    Confirmed,
    /// Read from this node's copy, which may lag behind a revocation: whatever the request
    /// does must go through a site command carrying the caller's [`Authority`], which the group
    /// checks when it applies (see [`Iam::authenticate_deferred`]).
    Deferred,
}

pub enum Caller {
    /// A user, through one of its sessions (the request's "current session").
    User {
        session: Box<Session>,
        user: Box<User>,
        scope: Option<AdminScope>,
        check: SessionCheck,
    },
    /// Automation holding a service token: administers everything, has no session.
    Service { subject: String },
    /// A node of another site forwarding its caller's request: the caller's reach, no session.
    Federated {
        from_site: String,
        on_behalf_of: String,
        scope: AdminScope,
    },
}

impl Caller {
    pub fn scope(&self) -> Option<AdminScope> {
        match self {
            Self::User { scope, .. } => scope.clone(),
            Self::Service { .. } => Some(AdminScope::Global),
            Self::Federated { scope, .. } => Some(scope.clone()),
        }
    }

    pub fn session(&self) -> Option<&Session> {
        match self {
            Self::User { session, .. } => Some(session),
            Self::Service { .. } | Self::Federated { .. } => None,
        }
    }

    /// What a revocation made for this caller may end, checked when it applies: its session
    /// must still be live, and an administrator of one domain ends that domain's sessions only.
    pub fn authority(&self) -> Result<Authority, IamError> {
        let domain = match self.scope() {
            Some(AdminScope::Global) => None,
            Some(AdminScope::Domain(own)) => Some(own.to_string()),
            None => return Err(IamError::Forbidden("administrators only".into())),
        };
        Ok(Authority {
            session: self.session().map(|s| s.session_id),
            domain,
        })
    }

    /// Whether another site forwarded this request (which then must not fan out again).
    pub fn is_federated(&self) -> bool {
        matches!(self, Self::Federated { .. })
    }

    pub fn user(&self) -> Option<&User> {
        match self {
            Self::User { user, .. } => Some(user),
            Self::Service { .. } | Self::Federated { .. } => None,
        }
    }

    pub fn require_admin_of(&self, domain: &DomainName) -> Result<(), IamError> {
        match self.scope() {
            Some(scope) if scope.covers(domain) => Ok(()),
            Some(AdminScope::Domain(own)) => Err(IamError::Forbidden(format!(
                "you administer domain {own} only, not {domain}"
            ))),
            _ => Err(IamError::Forbidden("administrators only".into())),
        }
    }

    pub fn require_global_admin(&self) -> Result<(), IamError> {
        match self.scope() {
            Some(AdminScope::Global) => Ok(()),
            Some(AdminScope::Domain(own)) => Err(IamError::Forbidden(format!(
                "this needs an administrator of the master domain; you administer {own} only"
            ))),
            None => Err(IamError::Forbidden("administrators only".into())),
        }
    }

    /// The caller as an audit event names it: never a token (a session by its id).
    pub fn actor(&self) -> Actor {
        match self {
            Self::User { session, user, .. } => Actor::User {
                user_id: user.user_id,
                login: user.login.to_string(),
                domain: user.domain.to_string(),
                session_id: Some(session.session_id),
            },
            Self::Service { subject } => Actor::Service {
                sub: subject.clone(),
            },
            Self::Federated {
                from_site,
                on_behalf_of,
                ..
            } => Actor::Federated {
                on_behalf_of: on_behalf_of.clone(),
                from_site: from_site.clone(),
            },
        }
    }

    /// Names the caller in logs: never a token.
    pub fn describe(&self) -> String {
        match self {
            Self::User { user, .. } => user.address().to_string(),
            Self::Service { subject } => format!("service:{subject}"),
            Self::Federated {
                from_site,
                on_behalf_of,
                ..
            } => format!("{on_behalf_of} via site {from_site}"),
        }
    }
}

impl Iam {
    /// Who calls with `token`; a session token's session is read under the read lease (or
    /// after a barrier when the lease has lapsed).
    pub async fn authenticate(&self, token: &str) -> Result<Caller, IamError> {
        self.authenticate_with(token, SessionCheck::Confirmed).await
    }

    /// As [`Self::authenticate`], but a session found in this node's copy is taken without a
    /// barrier ([`SessionCheck::Deferred`]); one not found there is looked up after a barrier
    /// (it may be too new for this copy). For revocations, whose command checks the caller
    /// when it applies: a barrier first would only add a round trip to the leader.
    pub async fn authenticate_deferred(&self, token: &str) -> Result<Caller, IamError> {
        self.authenticate_with(token, SessionCheck::Deferred).await
    }

    /// Confirms a caller taken with [`Self::authenticate_deferred`] as [`Self::authenticate`]
    /// would have, before it acts where its authority does not travel (another site).
    pub async fn confirm(&self, caller: &Caller) -> Result<(), IamError> {
        match caller {
            Caller::User {
                session,
                check: SessionCheck::Deferred,
                ..
            } => self.live_session(session.session_id).await.map(|_| ()),
            _ => Ok(()),
        }
    }

    async fn authenticate_with(
        &self,
        token: &str,
        check: SessionCheck,
    ) -> Result<Caller, IamError> {
        let claims = match self.tokens.verify(token) {
            Ok(Verified::Service(claims)) => {
                return Ok(Caller::Service {
                    subject: claims.sub,
                })
            }
            Ok(Verified::Federated(claims)) => return self.federated_caller(claims),
            Ok(Verified::Session(claims)) => claims,
            Err(e) => {
                return Err(match super::token::unverified_site(token) {
                    Some(site) if site != self.site_name => IamError::OtherSite(site),
                    _ => IamError::BadToken(e.to_string()),
                })
            }
        };
        if claims.site != self.site_name {
            return Err(IamError::OtherSite(claims.site));
        }
        let local = match check {
            SessionCheck::Deferred => self.site.get_local(claims.sid),
            SessionCheck::Confirmed => None,
        };
        let (session, check) = match local {
            Some(session) => (session, SessionCheck::Deferred),
            None => (
                self.live_session(claims.sid).await?,
                SessionCheck::Confirmed,
            ),
        };
        if session.user_id != claims.sub {
            return Err(IamError::SessionClosed);
        }
        let user = self
            .directory
            .read_fresh_or_local(|d| d.user(&claims.sub).cloned())
            .await
            .filter(|u| !u.disabled)
            .ok_or(IamError::SessionClosed)?;
        if self.site.lock_against_local(&session).is_some() {
            return Err(IamError::SessionClosed);
        }
        let scope = self
            .directory
            .read_local(|d| d.admin_scope(&user, &self.master_domain));
        Ok(Caller::User {
            session: Box::new(session),
            user: Box::new(user),
            scope,
            check,
        })
    }

    fn federated_caller(&self, claims: FederationClaims) -> Result<Caller, IamError> {
        let scope =
            match claims.domain {
                None => AdminScope::Global,
                Some(domain) => AdminScope::Domain(domain.parse().map_err(|_| {
                    IamError::BadToken("a federation token names a bad domain".into())
                })?),
            };
        Ok(Caller::Federated {
            from_site: claims.from,
            on_behalf_of: claims.on_behalf_of,
            scope,
        })
    }

    /// The session as the site's group has it now: from this node's copy while its read lease
    /// holds, since every revocation acknowledged anywhere in the site has then been applied
    /// here; else after a read barrier, which a lagging or cut-off node cannot pass (503).
    async fn live_session(&self, session_id: Uuid) -> Result<Session, IamError> {
        self.site
            .get_leased(session_id)
            .await?
            .ok_or(IamError::SessionClosed)
    }
}

/// How long a federation token is good for: one call, with room for clock skew.
const FEDERATION_TOKEN_SECS: u64 = 60;

impl Iam {
    /// A token for another site's api carrying `caller`'s reach (its session stays here).
    pub fn federation_token_for(&self, caller: &Caller) -> Result<String, IamError> {
        let domain = match caller.scope() {
            Some(AdminScope::Global) => None,
            Some(AdminScope::Domain(domain)) => Some(domain.to_string()),
            None => return Err(IamError::Forbidden("administrators only".into())),
        };
        self.federation_token(&caller.describe(), domain)
    }

    /// A token for another site's api, acting for `on_behalf_of` within `domain` (none: all).
    pub fn federation_token(
        &self,
        on_behalf_of: &str,
        domain: Option<String>,
    ) -> Result<String, IamError> {
        let now = sessionplane_cluster::now_ms() / 1000;
        let claims = FederationClaims {
            sub: format!("site:{}", self.site_name),
            aud: super::token::FEDERATION_AUDIENCE.into(),
            from: self.site_name.clone(),
            on_behalf_of: on_behalf_of.to_string(),
            domain,
            iat: now,
            exp: now + FEDERATION_TOKEN_SECS,
        };
        self.tokens
            .sign_federation(&claims)
            .map_err(|e| IamError::Token(e.to_string()))
    }
}
