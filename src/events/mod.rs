//! Events out of the site's feed: the resumable stream of the selected sites
//! ([`stream`]), where a reader stands in it ([`cursor`]), and the events' JSON ([`json`]).
//!
//! Reads the feed through the site store and the other sites through the federation; writes
//! nothing to the site's state but what it delivered.

pub mod cursor;
pub mod json;
pub mod stream;
