//! sessionplane: a multi-site session control plane.
//!
//! Inside a site, nodes form a Raft group (see the `sessionplane-cluster` crate) that tracks every
//! session; the `directory` group holds the identities every site reads. This crate is layered,
//! each layer importing only those below it:
//!
//! - `api` (the HTTP API) and `cli` (the command line), on top;
//! - `node`: the wiring of one node and its services (the session reaper, the task runner, the
//!   sweeper of stale records, membership, health);
//! - `node_ops`: the calls the api makes into its node (certificates, membership, health),
//!   which `node` implements;
//! - `gateway` (websockets), `mail` (IMAP and SMTP), `events` (the event stream, webhooks and
//!   Shared Signals out of the site's feed), `iam` (identity and access) and `federation`
//!   (calls to other sites);
//! - `state`: the replicated state machines, one folder per group (`state::site`,
//!   `state::directory`), each with its typed store, the only way in;
//! - `model`: the records, plain data.
//!
//! Beside them: `net` (the listeners' limits against slow and abusive clients), `tls`,
//! `config`, `telemetry`, and `testing` (for tests and benchmarks only). The cluster crate
//! imports nothing of this one.
#![forbid(unsafe_code)]
// A panic on a request, network or storage path is a crash waiting for bad input; tests may.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub(crate) mod api;
pub mod cli;
pub(crate) mod config;
pub(crate) mod events;
pub(crate) mod federation;
pub(crate) mod gateway;
pub(crate) mod iam;
pub(crate) mod mail;
pub(crate) mod model;
pub(crate) mod net;
pub(crate) mod node;
pub(crate) mod node_ops;
pub(crate) mod state;
pub(crate) mod telemetry;
pub mod testing;
pub(crate) mod tls;

/// Every binary that links this crate (the server, tests, benchmarks) allocates through
/// jemalloc, so benchmarks measure what ships.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
