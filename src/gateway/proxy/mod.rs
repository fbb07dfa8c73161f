//! The reverse proxy: a request under a `[[proxy]]` route is forwarded to the route's upstream
//! with the caller's identity, its body streamed both ways (never a whole body in memory), over
//! a pool of kept-alive upstream connections per route.
//!
//! Owns routing by prefix, the rewrite of the request for the upstream and the upstream's
//! answer back. Who the caller is and whether the route lets them in is decided before
//! [`Route::forward`] is called (the api's proxy handler does it); sessions are not its
//! business.

pub mod headers;
mod upstream;
pub mod websocket;

use std::time::Duration;

use axum::body::Body;
use axum::http::uri::PathAndQuery;
use axum::http::{Request, Response, Uri, Version};

pub use headers::{Forwarded, Identity};

use crate::config::proxy::{ProxyRoute, Unauthenticated};
use upstream::Upstream;

/// Why a request did not reach its upstream, or the upstream did not answer.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The request's path could reach outside its route once decoded upstream.
    #[error("{0}")]
    BadPath(String),
    /// The upstream could not be reached, or broke off its answer: 502.
    #[error("{0}")]
    BadGateway(String),
    /// The upstream did not answer in time: 504.
    #[error("{0}")]
    GatewayTimeout(String),
}

/// The node's routes, longest prefix first.
pub struct Proxy {
    routes: Vec<Route>,
}

/// One route and its upstream's kept-alive connections.
pub struct Route {
    pub config: ProxyRoute,
    base: Uri,
    upstream: std::sync::Arc<Upstream>,
}

impl Proxy {
    /// The routes of a validated configuration; an unreadable `ca_file` is an error.
    pub fn new(routes: &[ProxyRoute]) -> Result<Self, String> {
        let mut built = routes
            .iter()
            .map(Route::new)
            .collect::<Result<Vec<_>, _>>()?;
        built.sort_by_key(|r| std::cmp::Reverse(r.bare_prefix().len()));
        Ok(Self { routes: built })
    }

    /// The route with the longest prefix covering `path`.
    pub fn route_for(&self, path: &str) -> Option<&Route> {
        self.routes.iter().find(|r| r.config.covers(path))
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

impl Route {
    fn new(config: &ProxyRoute) -> Result<Self, String> {
        let base: Uri = config
            .upstream
            .parse()
            .map_err(|e| format!("proxy {:?}: upstream: {e}", config.prefix))?;
        let tls = std::sync::Arc::new(upstream::tls_config(config)?);
        let upstream = Upstream::new(config, &base, tls)?;
        Ok(Self {
            config: config.clone(),
            base,
            upstream: std::sync::Arc::new(upstream),
        })
    }

    fn bare_prefix(&self) -> &str {
        self.config.prefix.trim_end_matches('/')
    }

    /// Whether a caller without a session is sent to the login page (else: 401).
    pub fn sends_to_login(&self) -> bool {
        self.config.unauthenticated == Unauthenticated::Login
    }

    /// Forwards `request` (already let in) and streams the upstream's answer back.
    pub async fn forward(
        &self,
        mut request: Request<Body>,
        identity: &Identity,
        forwarded: &Forwarded,
    ) -> Result<Response<Body>, ProxyError> {
        *request.uri_mut() = self.upstream_uri(request.uri())?;
        *request.version_mut() = Version::HTTP_11;
        headers::to_upstream(request.headers_mut(), identity, forwarded);
        let within = Duration::from_millis(self.config.response_timeout_ms);
        let mut answer = match tokio::time::timeout(within, self.upstream.send(request)).await {
            Err(_) => {
                return Err(ProxyError::GatewayTimeout(format!(
                    "the upstream of {} did not answer within {within:?}",
                    self.config.prefix
                )))
            }
            Ok(answer) => answer?,
        };
        headers::drop_hop_by_hop(answer.headers_mut());
        Ok(answer)
    }

    /// The upstream's URI for a request's: its base path, then the request's path (without
    /// the prefix when the route strips it), then the query.
    fn upstream_uri(&self, asked: &Uri) -> Result<Uri, ProxyError> {
        let path = asked.path();
        refuse_escapes(path)?;
        let rest = match self.config.strip_prefix {
            true => &path[self.bare_prefix().len()..],
            false => path,
        };
        let rest = match rest.is_empty() {
            true => "/",
            false => rest,
        };
        let base = self.base.path().trim_end_matches('/');
        let joined = match asked.query() {
            Some(query) => format!("{base}{rest}?{query}"),
            None => format!("{base}{rest}"),
        };
        let path_and_query: PathAndQuery = joined
            .parse()
            .map_err(|_| ProxyError::BadPath("the request's path cannot be forwarded".into()))?;
        let mut parts = self.base.clone().into_parts();
        parts.path_and_query = Some(path_and_query);
        Uri::from_parts(parts)
            .map_err(|_| ProxyError::BadPath("the request's path cannot be forwarded".into()))
    }
}

/// Refuses a path that an upstream decoding it could read as another route's or the node's:
/// `.` and `..` segments, and escaped slashes, backslashes and dots.
fn refuse_escapes(path: &str) -> Result<(), ProxyError> {
    let lower = path.to_ascii_lowercase();
    let escaped = ["%2f", "%5c", "%2e", "%00"]
        .iter()
        .any(|e| lower.contains(e));
    let dotted = path.split('/').any(|s| s == "." || s == "..");
    match escaped || dotted || path.contains('\\') {
        true => Err(ProxyError::BadPath(
            "a proxied path must not hold . or .. segments or escaped /, \\, . or NUL".into(),
        )),
        false => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(prefix: &str, upstream: &str, strip_prefix: bool) -> ProxyRoute {
        ProxyRoute {
            prefix: prefix.into(),
            upstream: upstream.into(),
            strip_prefix,
            unauthenticated: Unauthenticated::Login,
            domains: Vec::new(),
            groups: Vec::new(),
            connect_timeout_ms: 1000,
            response_timeout_ms: 1000,
            ca_file: None,
            max_message_bytes: 1024,
        }
    }

    fn proxy() -> Proxy {
        Proxy::new(&[
            route("/app/", "http://127.0.0.1:9000", false),
            route("/app/ws/", "http://127.0.0.1:9001/base/", true),
        ])
        .expect("routes")
    }

    fn rewritten(path: &str) -> Result<String, ProxyError> {
        let proxy = proxy();
        let route = proxy.route_for(path).expect("a route");
        route
            .upstream_uri(&path.parse().expect("uri"))
            .map(|u| u.to_string())
    }

    #[tokio::test]
    async fn the_longest_prefix_wins_and_paths_are_rewritten() {
        assert_eq!(
            rewritten("/app/x?q=1").expect("ok"),
            "http://127.0.0.1:9000/app/x?q=1"
        );
        assert_eq!(
            rewritten("/app/ws/chat").expect("ok"),
            "http://127.0.0.1:9001/base/chat"
        );
        assert_eq!(
            rewritten("/app/ws").expect("ok"),
            "http://127.0.0.1:9001/base/"
        );
        assert!(proxy().route_for("/apps").is_none());
    }

    #[tokio::test]
    async fn escapes_out_of_a_route_are_refused() {
        for path in [
            "/app/../rest/v1/locks",
            "/app/./x",
            "/app/..%2frest",
            "/app/%2E%2E/x",
            "/app/a%5cb",
        ] {
            assert!(
                matches!(rewritten(path), Err(ProxyError::BadPath(_))),
                "{path}"
            );
        }
    }
}
