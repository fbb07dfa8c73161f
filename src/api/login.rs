//! The browser's way in: `GET /login` (a plain HTML page, no script, no external asset), its
//! form posted to `POST /login` (the session cookie, then back to `next`), and `POST /logout`.
//!
//! `next` is a path of this origin only, so the page can never send a browser elsewhere.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::header::{ACCEPT, CONTENT_TYPE, LOCATION, USER_AGENT};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use axum_extra::extract::CookieJar;
use serde::Deserialize;

use super::extract::{presented_token, Query};
use super::iam_sessions::{forgotten_cookie, log_out, session_cookie};
use super::{csrf, ApiError, ApiState};
use crate::iam::login::LoginAttempt;
use crate::iam::Caller;

/// Where a browser goes after logging in when it was not sent from somewhere.
const DEFAULT_NEXT: &str = "/login";
const MAX_NEXT_BYTES: usize = 2048;

pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/login", get(page).post(submit))
        .route("/logout", post(logout))
}

#[derive(Deserialize)]
struct PageParams {
    next: Option<String>,
}

#[derive(Deserialize)]
struct LoginForm {
    domain: String,
    login: String,
    password: String,
    next: Option<String>,
}

/// `next` when it is a path of this origin (`/…`, not `//…` or `/\…`), else a 400.
fn same_origin_path(next: Option<&str>) -> Result<String, ApiError> {
    let Some(next) = next.filter(|n| !n.is_empty()) else {
        return Ok(DEFAULT_NEXT.to_string());
    };
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.contains(['\\', '\r', '\n'])
        && !next.chars().any(char::is_control)
        && next.len() <= MAX_NEXT_BYTES;
    match local {
        true => Ok(next.to_string()),
        false => Err(ApiError::InvalidArgument(
            "next must be a path on this site (starting with a single /)".into(),
        )),
    }
}

/// `text` percent-encoded for a query value.
pub fn escape_query(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                escaped.push(byte as char)
            }
            _ => escaped.push_str(&format!("%{byte:02X}")),
        }
    }
    escaped
}

fn escape_html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

async fn page(
    State(state): State<ApiState>,
    Query(params): Query<PageParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let next = same_origin_path(params.next.as_deref())?;
    let signed_in = match presented_token(&headers) {
        Some((token, _)) if !token.is_empty() => match state.iam.authenticate(&token).await {
            Ok(Caller::User { user, .. }) => Some(user.address().to_string()),
            _ => None,
        },
        _ => None,
    };
    Ok(html(
        StatusCode::OK,
        &render(&next, signed_in.as_deref(), None),
    ))
}

async fn submit(
    State(state): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    jar: CookieJar,
    form: Result<axum::Form<LoginForm>, axum::extract::rejection::FormRejection>,
) -> Result<Response, ApiError> {
    csrf::same_origin_parts(&Method::POST, &headers)?;
    let axum::Form(form) = form.map_err(|e| ApiError::InvalidArgument(e.body_text()))?;
    let next = same_origin_path(form.next.as_deref())?;
    let attempt = LoginAttempt {
        domain: &form.domain,
        login: &form.login,
        password: &form.password,
        client_addr: Some(peer.ip()),
        user_agent: headers
            .get(USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(512).collect()),
    };
    let logged_in = match super::session_limit::log_in(&state, attempt).await {
        Ok(logged_in) => logged_in,
        Err(e) => return Ok(refused(&headers, &next, e)),
    };
    let session = &logged_in.session;
    tracing::info!(user = %session.user_id, session = %session.session_id, "login (form)");
    let cookie = session_cookie(&state, logged_in.token.clone(), session);
    let location = HeaderValue::from_str(&next)
        .map_err(|_| ApiError::InvalidArgument("next must be a path on this site".into()))?;
    Ok((
        StatusCode::SEE_OTHER,
        jar.add(cookie),
        [(LOCATION, location)],
    )
        .into_response())
}

/// A login refused (by the directory, a lock or a session limit): the page again with the reason (a JSON error for a client
/// that asks for JSON).
fn refused(headers: &HeaderMap, next: &str, error: ApiError) -> Response {
    let wants_json = headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json"));
    if wants_json {
        return error.into_response();
    }
    let status = error.status();
    let mut response = html(status, &render(next, None, Some(&error.to_string())));
    if let Some(retry) = error.into_response().headers().get("retry-after").cloned() {
        response.headers_mut().insert("retry-after", retry);
    }
    response
}

async fn logout(
    State(state): State<ApiState>,
    headers: HeaderMap,
    jar: CookieJar,
) -> Result<Response, ApiError> {
    csrf::same_origin_parts(&Method::POST, &headers)?;
    if let Some((token, _)) = presented_token(&headers).filter(|(t, _)| !t.is_empty()) {
        if let Ok(Caller::User { session, .. }) = state.iam.authenticate(&token).await {
            log_out(&state, &session).await?;
        }
    }
    let location = HeaderValue::from_static("/login");
    Ok((
        StatusCode::SEE_OTHER,
        jar.add(forgotten_cookie()),
        [(LOCATION, location)],
    )
        .into_response())
}

fn html(status: StatusCode, body: &str) -> Response {
    let mut response = (status, body.to_string()).into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert("cache-control", HeaderValue::from_static("no-store"));
    headers.insert("x-frame-options", HeaderValue::from_static("DENY"));
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; frame-ancestors 'none'"),
    );
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    response
}

fn render(next: &str, signed_in: Option<&str>, error: Option<&str>) -> String {
    let next = escape_html(next);
    let error = error
        .map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", escape_html(e)))
        .unwrap_or_default();
    let signed_in = signed_in
        .map(|who| {
            format!(
                "<p>Signed in as <strong>{}</strong>.</p>\
                 <form method=\"post\" action=\"/logout\"><button type=\"submit\">Sign out</button></form>",
                escape_html(who)
            )
        })
        .unwrap_or_default();
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <link rel=\"icon\" href=\"data:,\">\
         <title>Sign in</title><style>\
         body{{font-family:system-ui,sans-serif;max-width:24rem;margin:4rem auto;padding:0 1rem}}\
         label{{display:block;margin-top:.75rem}}input{{width:100%;padding:.4rem;box-sizing:border-box}}\
         button{{margin-top:1rem;padding:.5rem 1rem}}.error{{color:#a00}}</style></head><body>\
         <h1>Sign in</h1>{signed_in}{error}\
         <form method=\"post\" action=\"/login\">\
         <input type=\"hidden\" name=\"next\" value=\"{next}\">\
         <label for=\"domain\">Domain</label><input id=\"domain\" name=\"domain\" autocomplete=\"organization\" required>\
         <label for=\"login\">Login</label><input id=\"login\" name=\"login\" autocomplete=\"username\" required>\
         <label for=\"password\">Password</label><input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required>\
         <button type=\"submit\">Sign in</button></form></body></html>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(same_origin_path(None).expect("default"), "/login");
        assert_eq!(
            same_origin_path(Some("/app/x?y=1")).expect("ok"),
            "/app/x?y=1"
        );
        for bad in [
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example",
            "evil",
            "/a\r\nSet-Cookie: x=1",
            "javascript:alert(1)",
        ] {
            assert!(same_origin_path(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_page_escapes_what_it_echoes() {
        let page = render("/a\"><script>", None, Some("<b>no</b>"));
        assert!(!page.contains("<script>"));
        assert!(page.contains("&lt;b&gt;no&lt;/b&gt;"));
        assert_eq!(escape_query("/a b?c=d&e"), "/a%20b%3Fc%3Dd%26e");
    }
}
