//! The api listener's HTTP routes, one file per resource, and the error contract in one place.

pub mod error;

use axum::Router;

pub use error::ApiError;

pub fn router() -> Router {
    Router::new().fallback(|| async { ApiError::NotFound("no such route".into()) })
}
