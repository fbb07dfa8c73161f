//! The listing of this site's sessions, streamed page by page from a frozen view of the site
//! group. The site group's records and typed store are `state::site`'s; the leader's reaper is
//! `node::reaper`.

pub mod listing;
