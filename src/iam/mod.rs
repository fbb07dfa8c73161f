//! Identity and access: logins, tokens, who the caller is and what it may administer.
//!
//! Owns password hashing and token keys, and goes to the `directory` and site groups through
//! their typed stores (`state::DirectoryStore`, `state::SiteStore`). Knows nothing of HTTP: `api` turns requests into calls here and [`IamError`]s into the contract's answers.

pub mod accounts;
pub mod auth;
pub mod bootstrap;
pub mod login;
pub mod password;
pub mod propagation;
pub mod token;

use crate::model::DomainName;
use crate::state::directory::Rejection;
use crate::state::{DirectoryStore, SiteStore, StoreError};

pub use auth::Caller;
pub use password::{HashError, PasswordHasher};
pub use token::TokenKeys;

#[derive(Debug, thiserror::Error)]
pub enum IamError {
    /// The one answer for an unknown domain, an unknown user, a disabled user and a wrong
    /// password.
    #[error("invalid credentials")]
    BadCredentials,
    #[error("too many failed logins for this user; retry in {retry_after_secs} s")]
    Banned { retry_after_secs: u64 },
    #[error("authentication required: a bearer token or the RSession cookie")]
    MissingCredentials,
    #[error("{0}")]
    BadToken(String),
    #[error("the token's session is closed")]
    SessionClosed,
    #[error("this session belongs to site {0}; use it there")]
    OtherSite(String),
    #[error("{0}")]
    Forbidden(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Hash(#[from] HashError),
    #[error("cannot issue a token: {0}")]
    Token(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Invalid(String),
    /// The first start could not make its administrator's credentials.
    #[error("{0}")]
    Bootstrap(String),
}

/// A directory write's refusal, as the caller's error.
impl From<Rejection> for IamError {
    fn from(rejection: Rejection) -> Self {
        match rejection {
            Rejection::NotFound(message) => Self::NotFound(message),
            Rejection::Conflict(message) => Self::Conflict(message),
        }
    }
}

/// Everything identity needs on one node.
pub struct Iam {
    pub site_name: String,
    /// This node, `name@host`, as audit events name it.
    pub node_label: String,
    pub master_domain: DomainName,
    pub site: SiteStore,
    pub directory: DirectoryStore,
    pub hasher: PasswordHasher,
    pub tokens: TokenKeys,
    pub session_lifetime_ms: u64,
    pub max_login_failures: u32,
    pub login_failure_window_ms: u64,
    /// Sources whose password checks are counted apart from everyone else's.
    pub trusted_networks: Vec<ipnet::IpNet>,
    pub telemetry: std::sync::Arc<crate::telemetry::Telemetry>,
}
