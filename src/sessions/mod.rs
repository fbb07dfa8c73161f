//! Sessions at this node's site: the typed store over the site group, and the leader's reaper
//! that purges expired sessions.

pub mod reaper;
pub mod store;

pub use store::{SiteStore, StoreError};
