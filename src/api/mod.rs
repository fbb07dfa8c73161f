//! The api listener's HTTP routes, one file per resource, and the error contract in one place.
//!
//! Handlers parse and authorize, then call `iam`, the stores, or the node through its named
//! calls ([`crate::node_ops::NodeOps`]); they hold no state of their own. The api stands above
//! the node: [`service`] is what a node is started with, and the node hands the router it builds
//! the state it wired ([`ApiState`]).

pub mod audit;
pub mod audit_trail;
pub mod auth_verify;
pub mod channels;
pub mod cluster;
pub mod console;
pub mod csrf;
pub mod domains;
pub mod error;
pub mod events;
pub mod extract;
pub mod groups;
pub mod health;
pub mod iam_sessions;
pub mod incidents;
pub mod jmap;
pub mod listing;
pub mod locks;
pub mod login;
pub mod metrics;
pub mod openapi;
pub mod proxy;
pub mod scatter;
pub mod servers;
pub mod session_limit;
pub mod signals;
pub mod sites;
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

pub(crate) use crate::node_ops::{ApiService, ApiState};

pub use error::ApiError;

/// The largest request body the api reads.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

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
        .merge(locks::routes())
        .merge(incidents::routes())
        .merge(audit::routes())
        .merge(events::routes())
        .merge(signals::routes())
        .merge(sites::routes())
        .merge(auth_verify::routes())
}

/// The OpenAPI document of every route (the served one is built with the router).
#[cfg(test)]
pub fn openapi() -> utoipa::openapi::OpenApi {
    documented().split_for_parts().1
}

/// The api a node is started with.
pub fn service() -> ApiService {
    ApiService {
        router,
        error_body: error::framework_error_body,
    }
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
        .merge(login::routes())
        .merge(console::routes())
        .fallback(proxy::fallback)
        .method_not_allowed_fallback(|| async {
            ApiError::MethodNotAllowed("this route does not take that method".into())
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::map_response(with_charset))
        .route_layer(axum::middleware::from_fn_with_state(
            audit_trail::RefusalLayer {
                api: state.clone(),
                bound: Arc::default(),
            },
            audit_trail::record_refusals,
        ))
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
