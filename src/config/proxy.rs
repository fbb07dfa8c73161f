//! `[[proxy]]`: the applications a node serves behind its sessions, as the operator writes
//! them, and the checks that refuse a route at load rather than at its first request.
//!
//! Owns the routes' shape and their validation only; forwarding is the gateway's.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Paths the node's own api and pages answer; no route may cover them or lie under them.
pub const RESERVED_PREFIXES: &[&str] = &[
    "/rest/",
    "/users",
    "/domains",
    "/groups",
    "/servers",
    "/tasks",
    "/healthcheck",
    "/metrics",
    "/cluster",
    "/jmap",
    "/openapi.json",
    "/login",
    "/logout",
    "/console",
];

/// What a request under a route gets when it carries no live session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Unauthenticated {
    /// A `GET` or `HEAD` is sent to `/login?next=…`; any other method gets a 401.
    #[default]
    #[serde(rename = "login")]
    Login,
    /// Every request gets a 401 (for APIs and scripts).
    #[serde(rename = "401")]
    Refuse,
}

/// One application behind the node: requests under `prefix` go to `upstream`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyRoute {
    /// `/app/`: a path, without `..`, `//`, `%` escapes, `?` or `#`.
    pub prefix: String,
    /// `http://10.0.0.5:9000` or `https://…`, optionally with a base path.
    pub upstream: String,
    /// Forward `/app/x` as `/x` rather than `/app/x`.
    #[serde(default)]
    pub strip_prefix: bool,
    #[serde(default)]
    pub unauthenticated: Unauthenticated,
    /// When given, only users of these domains get through (others: 403).
    #[serde(default)]
    pub domains: Vec<String>,
    /// When given, only members of one of these groups (`name@domain`) get through.
    #[serde(default)]
    pub groups: Vec<String>,
    /// Giving up on connecting to the upstream: 502.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Giving up on the upstream's response head: 504.
    #[serde(default = "default_response_timeout_ms")]
    pub response_timeout_ms: u64,
    /// The CA (PEM) an `https` upstream's certificate chains to; unset: the web's roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The largest websocket message relayed either way (a larger one closes with 1009).
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: usize,
}

fn default_max_message_bytes() -> usize {
    1 << 20
}

fn default_connect_timeout_ms() -> u64 {
    2_000
}

fn default_response_timeout_ms() -> u64 {
    30_000
}

impl ProxyRoute {
    /// Whether `path` is under this route: the prefix itself (with or without its final
    /// `/`) or anything below it.
    pub fn covers(&self, path: &str) -> bool {
        let bare = self.prefix.trim_end_matches('/');
        path == bare || path.starts_with(&format!("{bare}/"))
    }
}

/// Every route checked, and the routes against each other.
pub fn validate(routes: &[ProxyRoute]) -> Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    for route in routes {
        validate_prefix(&route.prefix)?;
        validate_upstream(&route.upstream)?;
        if !seen.insert(route.prefix.trim_end_matches('/')) {
            return Err(format!("proxy: prefix {:?} is given twice", route.prefix));
        }
        if route.connect_timeout_ms == 0 || route.response_timeout_ms == 0 {
            return Err(format!(
                "proxy {:?}: connect_timeout_ms and response_timeout_ms must be above 0",
                route.prefix
            ));
        }
        if let Some(group) = route.groups.iter().find(|g| !g.contains('@')) {
            return Err(format!(
                "proxy {:?}: group {group:?} is not name@domain",
                route.prefix
            ));
        }
    }
    Ok(())
}

fn validate_prefix(prefix: &str) -> Result<(), String> {
    let refuse = |why: &str| Err(format!("proxy: prefix {prefix:?} {why}"));
    if !prefix.starts_with('/') || prefix.trim_end_matches('/').is_empty() {
        return refuse("must be a path below / (such as \"/app/\")");
    }
    if prefix.contains(['%', '?', '#', '\\', ' ']) || prefix.chars().any(char::is_control) {
        return refuse("must not hold %, ?, #, \\, spaces or control characters");
    }
    let bare = prefix.trim_end_matches('/');
    if bare.contains("//") || bare.split('/').any(|s| s == ".." || s == ".") {
        return refuse("must not hold //, . or .. segments");
    }
    let reserved = RESERVED_PREFIXES.iter().find(|r| {
        let r = r.trim_end_matches('/');
        bare == r || bare.starts_with(&format!("{r}/")) || r.starts_with(&format!("{bare}/"))
    });
    match reserved {
        Some(r) => refuse(&format!("overlaps the node's own {r}")),
        None => Ok(()),
    }
}

fn validate_upstream(upstream: &str) -> Result<(), String> {
    let refuse = |why: String| Err(format!("proxy: upstream {upstream:?}: {why}"));
    let uri: axum::http::Uri = match upstream.parse() {
        Ok(uri) => uri,
        Err(e) => return refuse(e.to_string()),
    };
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return refuse("must be an http:// or https:// URL".into());
    }
    if uri.host().is_none_or(str::is_empty) {
        return refuse("names no host".into());
    }
    if uri.query().is_some() {
        return refuse("must not hold a query".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(prefix: &str, upstream: &str) -> ProxyRoute {
        ProxyRoute {
            prefix: prefix.into(),
            upstream: upstream.into(),
            strip_prefix: false,
            unauthenticated: Unauthenticated::Login,
            domains: Vec::new(),
            groups: Vec::new(),
            connect_timeout_ms: 1,
            response_timeout_ms: 1,
            ca_file: None,
            max_message_bytes: 1024,
        }
    }

    #[test]
    fn good_routes_pass_and_nest() {
        let routes = [
            route("/app/", "http://127.0.0.1:9000"),
            route("/app/ws", "https://app.internal/base"),
            route("/restful", "http://[::1]:80"),
        ];
        assert_eq!(validate(&routes), Ok(()));
    }

    #[test]
    fn bad_prefixes_are_refused_with_the_reason() {
        for (prefix, why) in [
            ("app/", "below /"),
            ("/", "below /"),
            ("/a/../rest/", ".."),
            ("/a//b/", "//"),
            ("/a%2fb/", "%"),
            ("/a?b", "?"),
            ("/rest/", "overlaps"),
            ("/rest/app/", "overlaps"),
            ("/users", "overlaps"),
            ("/login/", "overlaps"),
            ("/console", "overlaps"),
        ] {
            let refused = validate(&[route(prefix, "http://a")]).expect_err(prefix);
            assert!(refused.contains(why), "{prefix}: {refused}");
        }
        let twice = [route("/a/", "http://a"), route("/a", "http://b")];
        assert!(validate(&twice).expect_err("twice").contains("twice"));
    }

    #[test]
    fn bad_upstreams_are_refused() {
        for upstream in ["ftp://a", "a:80", "http://", "not a url", "http://a/?q=1"] {
            assert!(
                validate(&[route("/a/", upstream)]).is_err(),
                "{upstream} passed"
            );
        }
    }

    #[test]
    fn a_route_covers_its_prefix_and_below_only() {
        let app = route("/app/", "http://a");
        assert!(app.covers("/app"));
        assert!(app.covers("/app/"));
        assert!(app.covers("/app/x/y"));
        assert!(!app.covers("/apps"));
        assert!(!app.covers("/ap"));
    }
}
