//! `GET /metrics` (public, Prometheus text), and the layer that times every api request by
//! route (the matched route's pattern, never the raw path: no ids or names in labels).

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::{ApiError, ApiState};

pub fn routes() -> Router<ApiState> {
    Router::new().route("/metrics", get(metrics))
}

async fn metrics(State(state): State<ApiState>) -> Result<Response, ApiError> {
    let text = state
        .telemetry
        .render()
        .map_err(|e| ApiError::Server(format!("cannot render the metrics: {e}")))?;
    Ok(([(CONTENT_TYPE, crate::telemetry::CONTENT_TYPE)], text).into_response())
}

/// A route pattern as a label: `/users/{user}` becomes `/users/:user` (braces trip up some
/// parsers of the text format).
fn route_label(pattern: &str) -> String {
    pattern.replace('{', ":").replace('}', "")
}

/// Records each request's latency by method, route pattern and status.
pub async fn timed(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched".to_string(), |p| route_label(p.as_str()));
    let response = next.run(request).await;
    state.telemetry.http_request(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

#[cfg(test)]
mod tests {
    #[test]
    fn route_labels_have_no_braces() {
        assert_eq!(super::route_label("/tasks/{id}/await"), "/tasks/:id/await");
        assert_eq!(super::route_label("/metrics"), "/metrics");
    }
}
