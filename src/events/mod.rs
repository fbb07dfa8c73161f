//! Events out of the site's feed: the resumable stream of the selected sites
//! ([`stream`]), where a reader stands in it ([`cursor`]), the events' JSON ([`json`]), and
//! the site leader's delivery of the feed ([`deliver`]) to webhooks ([`webhook`]) and Shared
//! Signals receivers ([`signals`]).
//!
//! Reads the feed through the site store and the other sites through the federation; writes
//! nothing to the site's state but what it delivered.

pub mod cursor;
pub mod deliver;
pub mod json;
pub mod signals;
pub mod stream;
pub mod webhook;
