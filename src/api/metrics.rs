//! `GET /metrics` (public, Prometheus text), and the layer that times every api request by
//! route (the matched route's pattern, never the raw path: no ids or names in labels).

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, ApiState};

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(routes!(metrics))
}

/// Prometheus text (0.0.4).
#[utoipa::path(get, path = "/metrics", tag = "operations", security(()),
    responses((status = 200, description = "The metrics", body = String, content_type = "text/plain; version=0.0.4; charset=utf-8")))]
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
