//! `/healthcheck` (Apache James conventions), public: every check, the list of checks, one
//! check by name. 200 while the node can serve (healthy or degraded), 503 when a check is
//! unhealthy; an unknown check is a 404.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use super::extract::Path;
use super::openapi::ErrorSchema;
use super::{ApiError, ApiState};
use crate::node_ops::{Check, Status};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(all))
        .routes(routes!(names))
        .routes(routes!(one))
}

fn status_name(status: Status) -> &'static str {
    match status {
        Status::Healthy => "healthy",
        Status::Degraded => "degraded",
        Status::Unhealthy => "unhealthy",
    }
}

fn code(status: Status) -> StatusCode {
    match status {
        Status::Unhealthy => StatusCode::SERVICE_UNAVAILABLE,
        Status::Healthy | Status::Degraded => StatusCode::OK,
    }
}

/// The name as it appears in a URL path.
fn escaped(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = HealthCheck)]
struct CheckView {
    component_name: String,
    escaped_component_name: String,
    status: &'static str,
    cause: Option<String>,
}

impl CheckView {
    fn of(check: Check) -> Self {
        Self {
            escaped_component_name: escaped(&check.component),
            component_name: check.component,
            status: status_name(check.status),
            cause: check.cause,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[schema(as = HealthReport)]
struct Report {
    status: &'static str,
    checks: Vec<CheckView>,
}

/// Every health check.
#[utoipa::path(get, path = "/healthcheck", tag = "operations", security(()),
    responses((status = 200, description = "Healthy or degraded: the node serves", body = Report),
        (status = 503, description = "A check is unhealthy", body = Report)))]
async fn all(State(state): State<ApiState>) -> Response {
    let checks = state.node.health_check_all().await;
    let worst = checks
        .iter()
        .map(|c| c.status)
        .max()
        .unwrap_or(Status::Healthy);
    let report = Report {
        status: status_name(worst),
        checks: checks.into_iter().map(CheckView::of).collect(),
    };
    (code(worst), axum::Json(report)).into_response()
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = HealthCheckName)]
struct Name {
    component_name: String,
    escaped_component_name: String,
}

/// The checks' names.
#[utoipa::path(get, path = "/healthcheck/checks", tag = "operations", security(()),
    responses((status = 200, description = "The checks", body = [Name])))]
async fn names(State(state): State<ApiState>) -> axum::Json<Vec<Name>> {
    let names = state
        .node
        .health_components()
        .into_iter()
        .map(|name| Name {
            escaped_component_name: escaped(&name),
            component_name: name,
        })
        .collect();
    axum::Json(names)
}

/// One check by name.
#[utoipa::path(get, path = "/healthcheck/checks/{name}", tag = "operations", security(()),
    params(("name" = String, Path, description = "A check's name")),
    responses((status = 200, description = "Healthy or degraded", body = CheckView),
        (status = 503, description = "Unhealthy", body = CheckView),
        (status = 404, description = "No such check", body = ErrorSchema)))]
async fn one(
    State(state): State<ApiState>,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let check = state
        .node
        .health_check(&name)
        .await
        .ok_or_else(|| ApiError::NotFound(format!("no health check named {name:?}")))?;
    let status = check.status;
    Ok((code(status), axum::Json(CheckView::of(check))).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_escape_like_a_url_path() {
        assert_eq!(escaped("Raft site group"), "Raft%20site%20group");
        assert_eq!(escaped("Site east"), "Site%20east");
        assert_eq!(escaped("a/b:c"), "a%2Fb%3Ac");
    }
}
