//! The integration tests, one binary: each module tests one area against real nodes (child
//! processes of the `sessionplane` binary) through their real listeners, with the helpers of
//! `common`. One binary links the crate once instead of once per area.
#![forbid(unsafe_code)]

mod common;

mod audit;
mod certificates;
mod channels;
mod chaos;
mod cli;
mod cluster_listener;
mod compose_chaos;
mod console;
mod containment;
mod disk_full;
mod events;
mod federation;
mod health;
mod identity;
mod limits;
mod mail;
mod mail_upstream;
mod metrics;
mod openapi;
mod proxy;
mod read_lease;
mod session_limits;
mod shipped_setups;
mod signals;
mod site_replication;
mod webhooks;
mod ws_sessions;
