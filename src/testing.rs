//! For tests and benchmarks only: what they reach of the node's internals, and nothing the node
//! itself uses. The crate's modules are private to it (only `cli`, which the binary runs, and
//! this module are public), so this list is the whole of what code outside the crate may name.
//!
//! - starting a node in-process from a configuration: [`start`], [`Listeners`], [`RunningNode`]
//!   and the configuration's types;
//! - the records tests create and read: [`NewSession`], [`Session`], [`CloseReason`];
//! - a site group without the api: [`SiteCall`] (a site command: build one, propose it through a
//!   node's cluster listener, apply it to a bare [`SiteState`], or take its encoded bytes),
//!   [`SiteAnswer`] (what a site reply says), the read-only queries a peer may ask
//!   ([`SiteQuery`], [`DirectoryQuery`] and their replies) and the typed [`SiteStore`];
//! - tokens, to forge the expired, foreign-signed or federation tokens the tests refuse.

pub use crate::config::events::{DeliverySettings, Webhook};
pub use crate::config::{
    Config, DirectorySettings, IamSettings, Listen, MailConfig, RemoteSite, Secret, SiteNode,
};
pub use crate::iam::token::{federation_key, FederationClaims, SessionClaims, FEDERATION_AUDIENCE};
pub use crate::iam::TokenKeys;
pub use crate::model::{CloseReason, NewSession, Session};
pub use crate::node::{Listeners, RunningNode, StartError};
pub use crate::state::directory::{DirectoryQuery, DirectoryQueryReply};
pub use crate::state::site::peer::{SiteAnswer, SiteCall};
pub use crate::state::site::{SiteQuery, SiteQueryReply, SiteState};
pub use crate::state::{decode, encode, SiteStore};

/// Starts a node in this process, with the api it ships with.
pub async fn start(config: Config, listeners: Listeners) -> Result<RunningNode, StartError> {
    crate::node::start(config, listeners, crate::api::service()).await
}
