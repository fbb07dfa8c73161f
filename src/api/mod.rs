//! The api listener's HTTP routes, one file per resource, and the error contract in one place.
//!
//! Handlers parse and authorize, then call `iam`, the stores, or the node through its named
//! calls ([`NodeOps`]); they hold no state of their own. The api never imports `node`: the node
//! builds the router and hands it its state.

pub mod channels;
pub mod cluster;
pub mod domains;
pub mod error;
pub mod extract;
pub mod groups;
pub mod health;
pub mod iam_sessions;
pub mod jmap;
pub mod listing;
pub mod metrics;
pub mod openapi;
pub mod scatter;
pub mod servers;
pub mod tasks;
pub mod users;
pub mod websocket;
pub mod ws_sessions;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderValue;
use axum::response::Response;
use axum::Router;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

pub use error::ApiError;

use crate::config::SiteNode;
use crate::federation::Federation;
use crate::gateway::Gateway;
use crate::iam::Iam;
use crate::mail::MailBackend;
use crate::node_ops::NodeOps;
use crate::state::DirectoryStore;
use crate::state::SiteStore;

/// The largest request body the api reads.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

#[derive(Clone)]
pub struct ApiState {
    pub iam: Arc<Iam>,
    /// This site's group: sessions, channels, tasks.
    pub site: SiteStore,
    /// The deployment's directory group.
    pub directory: DirectoryStore,
    pub gateway: Arc<Gateway>,
    /// The deployment's sites, and the client that calls the others.
    pub federation: Arc<Federation>,
    /// This node, `name@host`, as tasks record where they were submitted.
    pub node_label: String,
    pub mail: Arc<dyn MailBackend>,
    /// The nodes of this site, as configured.
    pub site_nodes: Arc<Vec<SiteNode>>,
    /// The calls into the running node: certificates, membership, health checks.
    pub node: Arc<dyn NodeOps>,
    /// The node's counters, and what `/metrics` reads.
    pub telemetry: Arc<crate::telemetry::Telemetry>,
    /// Whether the api listener speaks TLS (cookies are then `Secure`).
    pub tls: bool,
}

/// Every documented route, with its documentation.
fn documented() -> OpenApiRouter<ApiState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(iam_sessions::routes())
        .merge(domains::routes())
        .merge(users::routes())
        .merge(groups::routes())
        .merge(ws_sessions::routes())
        .merge(channels::routes())
        .merge(servers::routes())
        .merge(tasks::routes())
        .merge(health::routes())
        .merge(metrics::routes())
        .merge(cluster::routes())
        .merge(websocket::routes())
        .merge(jmap::routes())
}

/// The OpenAPI document of every route (the served one is built with the router).
#[cfg(test)]
pub fn openapi() -> utoipa::openapi::OpenApi {
    documented().split_for_parts().1
}

pub fn router(state: ApiState) -> Router {
    let (routes, spec) = documented().split_for_parts();
    let spec = Arc::new(spec.to_json().unwrap_or_default());
    routes
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let spec = spec.clone();
                async move {
                    (
                        [(CONTENT_TYPE, "application/json")],
                        spec.as_str().to_owned(),
                    )
                }
            }),
        )
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async {
            ApiError::MethodNotAllowed("this route does not take that method".into())
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::map_response(with_charset))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            metrics::timed,
        ))
        .with_state(state)
}

/// Every JSON answer says its charset, as the contract asks.
async fn with_charset(mut response: Response) -> Response {
    let headers = response.headers_mut();
    if headers
        .get(CONTENT_TYPE)
        .is_some_and(|v| v == "application/json")
    {
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
    }
    response
}
