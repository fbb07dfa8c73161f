//! How the HTTP listeners behave: their timeouts and limits, and the body of the errors the
//! server answers itself. Shared by the serving loop (`http`) and the socket wrapper (`conn`).

use std::time::Duration;

use axum::http::StatusCode;

/// The body of an error the server answers itself: the contract's JSON.
pub type ErrorBody = fn(StatusCode, &str) -> Vec<u8>;

#[derive(Clone, Debug)]
pub struct HttpSettings {
    pub header_read_timeout: Duration,
    /// The longest wait for the next piece of a request's body.
    pub body_read_timeout: Duration,
    pub keep_alive_timeout: Duration,
    pub max_uri_bytes: usize,
    /// The request line and every header, together.
    pub max_header_bytes: usize,
    pub max_headers: usize,
}
