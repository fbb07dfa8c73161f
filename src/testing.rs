//! For tests and benchmarks only: what they need of the node's internals to drive a site group
//! without the api, and nothing the node itself uses.
//!
//! It offers [`SiteCall`] (a site command: build one, propose it through a node's cluster
//! listener, apply it to a bare `SiteState`, or take its encoded bytes) and [`SiteAnswer`] (what
//! a site reply says). Queries need nothing from here: `state::site::SiteQuery` and
//! `SiteQueryReply` are public, and `sessionplane_cluster::PeerClient::query_as` sends them.

pub use crate::state::site::peer::{SiteAnswer, SiteCall};
