//! The OpenAPI document of the api listener, built from the handlers' own annotations (every
//! route is registered through `utoipa-axum`, so a route without its documentation cannot
//! exist), and served at `/openapi.json`.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// The contract's error body (`api/error.rs` renders it).
#[derive(ToSchema)]
#[schema(as = Error)]
#[allow(dead_code)]
pub struct ErrorSchema {
    /// The HTTP status.
    #[schema(rename = "statusCode")]
    status_code: u16,
    /// `InvalidArgument`, `Unauthorized`, `Forbidden`, `notFound`, `WrongState`,
    /// `TooManyRequests`, `ServerError` or `Unavailable`.
    #[schema(rename = "type")]
    kind: String,
    message: String,
    cause: Option<String>,
    /// 503 over several sites: each selected site's outcome.
    sites: Option<std::collections::BTreeMap<String, String>>,
    /// 503 of a write that missed a site: the task that keeps trying there.
    #[schema(rename = "taskId")]
    task_id: Option<uuid::Uuid>,
}

/// The error answers every authenticated admin endpoint may give.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
pub enum AdminErrors {
    /// Bad input: the message says what.
    #[response(status = 400)]
    BadRequest(#[to_schema] ErrorSchema),
    /// No, or a bad, token.
    #[response(status = 401)]
    Unauthorized(#[to_schema] ErrorSchema),
    /// Not an administrator (of this domain).
    #[response(status = 403)]
    Forbidden(#[to_schema] ErrorSchema),
    /// The body is too large.
    #[response(status = 413)]
    TooLarge(#[to_schema] ErrorSchema),
    /// The body is not `application/json`.
    #[response(status = 415)]
    NotJson(#[to_schema] ErrorSchema),
    /// The cluster (or a selected site) cannot answer now.
    #[response(status = 503)]
    Unavailable(#[to_schema] ErrorSchema),
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "sessionplane",
        description = "A multi-site session control plane: sessions, websockets and mail channels, listed and ended across sites."
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "iam", description = "Logins and the caller's own session"),
        (name = "sessions", description = "Sessions of the selected sites"),
        (name = "channels", description = "Mail channels (James webadmin)"),
        (name = "certificates", description = "TLS certificates"),
        (name = "identity", description = "Domains, users and groups"),
        (name = "tasks", description = "Durable tasks (James)"),
        (name = "operations", description = "Health, metrics, cluster status"),
        (name = "gateway", description = "Websocket gateway and JMAP"),
        (name = "locks", description = "Locks that keep a user, domain, network or session out"),
        (name = "incidents", description = "Containing an account in one call, and its receipts"),
        (name = "audit", description = "The audit trail and its hash chain"),
        (name = "events", description = "The stream of audit and session lifecycle events")
    )
)]
pub struct ApiDoc;

#[cfg(test)]
mod tests {
    #[test]
    fn every_route_is_documented_with_its_answers() {
        let spec = crate::api::openapi();
        let paths: Vec<&String> = spec.paths.paths.keys().collect();
        let expected = [
            "/cluster/nodes",
            "/cluster/nodes/{id}",
            "/cluster/sites",
            "/cluster/status",
            "/domains",
            "/domains/{domain}",
            "/domains/{domain}/settings",
            "/groups",
            "/groups/{group}",
            "/healthcheck",
            "/healthcheck/checks",
            "/healthcheck/checks/{name}",
            "/jmap/eventsource",
            "/jmap/ws",
            "/metrics",
            "/rest/v1/audit",
            "/rest/v1/audit/verify",
            "/rest/v1/auth/verify",
            "/rest/v1/events",
            "/rest/v1/iam/sessions",
            "/rest/v1/iam/sessions/current",
            "/rest/v1/incidents",
            "/rest/v1/incidents/{incident_id}",
            "/rest/v1/locks",
            "/rest/v1/locks/{lock_id}",
            "/rest/v1/master/logicalroles/ws/sessions",
            "/rest/v1/master/logicalroles/ws/sessions/{session_id}",
            "/rest/v1/signals/jwks",
            "/rest/v1/ws",
            "/servers",
            "/servers/certificates",
            "/servers/channels",
            "/servers/channels/{user}",
            "/servers/connectedUsers",
            "/tasks",
            "/tasks/{id}",
            "/tasks/{id}/await",
            "/users",
            "/users/{user}",
            "/users/{user}/password",
        ];
        assert_eq!(paths, expected);
        let json = serde_json::to_value(&spec).unwrap();
        let mut operations = 0;
        for (path, item) in json["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                let responses = operation["responses"].as_object().unwrap();
                assert!(!responses.is_empty(), "{method} {path}");
                operations += 1;
            }
        }
        assert_eq!(operations, 59);
    }
}
