//! sessionplane: a multi-site session control plane.
//!
//! Inside a site, nodes form a Raft group (see the `sessionplane-cluster` crate) that tracks every
//! session; this crate holds the domain (`model`, `state`, `sessions`, `iam`), the websocket
//! gateway (`gateway`), the calls to other sites (`federation`) and the retries of writes that missed one (`tasks`), the node's wiring (`node`) and the calls the api makes into it (`node_ops`), its
//! listeners' limits against slow and abusive clients (`net`), its HTTP API (`api`) and its command line (`cli`).
#![forbid(unsafe_code)]
// A panic on a request, network or storage path is a crash waiting for bad input; tests may.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod api;
pub mod cli;
pub mod config;
pub mod federation;
pub mod gateway;
pub mod iam;
pub mod mail;
pub mod model;
pub mod net;
pub mod node;
pub mod node_ops;
pub mod sessions;
pub mod state;
pub mod tasks;
pub mod telemetry;
pub mod tls;

/// Every binary that links this crate (the server, tests, benchmarks) allocates through
/// jemalloc, so benchmarks measure what ships.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
