//! `/console`: the responder's web console, served by every node from assets built into the
//! binary (`src/api/console/`: one page, one stylesheet, plain JavaScript modules; no external
//! asset, no build step). The page is for administrators behind the browser login: without a
//! session a browser is sent to `/login?next=/console`, a user who is not an administrator
//! gets a 403. The console itself speaks only the public REST API, with the session cookie.
//!
//! Owns the page, its assets and their headers; what the console shows is the API's.

use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::extract::presented_token;
use super::{ApiError, ApiState};
use crate::iam::Caller;
use crate::state::directory::AdminScope;

const PAGE: &str = include_str!("console/index.html");

const SCRIPT: &str = "text/javascript; charset=utf-8";

/// The assets by path under `/console/assets/`: their bytes and `Content-Type`.
const ASSETS: &[(&str, &str, &str)] = &[
    ("console.js", include_str!("console/console.js"), SCRIPT),
    ("api.js", include_str!("console/api.js"), SCRIPT),
    ("dom.js", include_str!("console/dom.js"), SCRIPT),
    (
        "views/overview.js",
        include_str!("console/views/overview.js"),
        SCRIPT,
    ),
    (
        "views/sessions.js",
        include_str!("console/views/sessions.js"),
        SCRIPT,
    ),
    (
        "views/user.js",
        include_str!("console/views/user.js"),
        SCRIPT,
    ),
    (
        "views/locks.js",
        include_str!("console/views/locks.js"),
        SCRIPT,
    ),
    (
        "views/audit.js",
        include_str!("console/views/audit.js"),
        SCRIPT,
    ),
    (
        "views/channels.js",
        include_str!("console/views/channels.js"),
        SCRIPT,
    ),
    (
        "views/certificates.js",
        include_str!("console/views/certificates.js"),
        SCRIPT,
    ),
    (
        "views/tasks.js",
        include_str!("console/views/tasks.js"),
        SCRIPT,
    ),
    (
        "console.css",
        include_str!("console/console.css"),
        "text/css; charset=utf-8",
    ),
];

/// Scripts and styles of this origin only; the API is all it connects to.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/console", get(page))
        .route("/console/assets/{*name}", get(asset))
}

async fn page(State(state): State<ApiState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let caller = match presented_token(&headers) {
        Some((token, _)) if !token.is_empty() => state.iam.authenticate(&token).await.ok(),
        _ => None,
    };
    let Some(caller) = caller else {
        let mut response = StatusCode::SEE_OTHER.into_response();
        response
            .headers_mut()
            .insert(LOCATION, HeaderValue::from_static("/login?next=%2Fconsole"));
        return Ok(response);
    };
    if !is_admin(&caller) {
        return Err(ApiError::Forbidden(
            "the console is for administrators".into(),
        ));
    }
    let mut response = page_for(&caller).into_response();
    set_headers(&mut response, "text/html; charset=utf-8", "no-store");
    Ok(response)
}

/// The page as `caller` gets it: its scope (which views it may open), and every module
/// preloaded so that the browser fetches them at once rather than import by import.
fn page_for(caller: &Caller) -> String {
    let scope = match caller.scope() {
        Some(AdminScope::Domain(domain)) => format!("domain:{domain}"),
        _ => "global".to_string(),
    };
    let preloads: String = ASSETS
        .iter()
        .filter(|(name, _, _)| name.ends_with(".js") && *name != "console.js")
        .map(|(name, _, _)| {
            format!("<link rel=\"modulepreload\" href=\"/console/assets/{name}\">\n")
        })
        .collect();
    PAGE.replace("{scope}", &escaped(&scope))
        .replace("{preloads}\n", &preloads)
}

/// A value safe inside an HTML attribute (a domain name has nothing to escape; this holds
/// whatever the name allows).
fn escaped(value: &str) -> String {
    value
        .replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn is_admin(caller: &Caller) -> bool {
    caller.scope().is_some()
}

async fn asset(Path(name): Path<String>) -> Result<Response, ApiError> {
    let (_, body, kind) = ASSETS
        .iter()
        .find(|(known, _, _)| *known == name)
        .ok_or_else(|| ApiError::NotFound(format!("no console asset {name:?}")))?;
    let mut response = (*body).into_response();
    // Built into the binary: a new version comes with a restart, so a short cache is enough.
    set_headers(&mut response, kind, "private, max-age=300");
    Ok(response)
}

fn set_headers(response: &mut Response, kind: &'static str, cache: &'static str) {
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert("content-security-policy", HeaderValue::from_static(POLICY));
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
}
