//! Cross-site request forgery: a state-changing request authenticated by the `RSession` cookie
//! must come from a page of this origin. Browsers say where a request comes from
//! (`Sec-Fetch-Site`, else `Origin`); a request that says neither comes from no browser, which
//! cannot be made to send someone else's cookie, and passes. Bearer calls never need this.

use axum::http::header::{HOST, ORIGIN};
use axum::http::{HeaderMap, Method};

use super::ApiError;

/// Whether a cookie-authenticated `method` request with `headers` may change state.
pub fn same_origin_parts(method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    let refused = |why: &str| {
        Err(ApiError::Forbidden(format!(
            "a request authenticated by the session cookie must come from this site's own pages ({why})"
        )))
    };
    if let Some(site) = headers.get("sec-fetch-site") {
        return match site.as_bytes() {
            b"same-origin" | b"none" => Ok(()),
            _ => refused("Sec-Fetch-Site is not same-origin"),
        };
    }
    let Some(origin) = headers.get(ORIGIN) else {
        return Ok(());
    };
    let host = headers.get(HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, rest)| rest.trim_end_matches('/'));
    match (origin_host, host) {
        (Some(origin), Some(host)) if origin.eq_ignore_ascii_case(host) => Ok(()),
        _ => refused("its Origin is not this host"),
    }
}

pub fn same_origin(request: &axum::extract::Request) -> Result<(), ApiError> {
    same_origin_parts(request.method(), request.headers())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn same_origin_passes_and_cross_site_is_refused() {
        let post = Method::POST;
        let host = ("host", "app.example.org:8080");
        for ok in [
            headers(&[host, ("sec-fetch-site", "same-origin")]),
            headers(&[host, ("sec-fetch-site", "none")]),
            headers(&[host, ("origin", "https://app.example.org:8080")]),
            headers(&[host]),
        ] {
            assert!(same_origin_parts(&post, &ok).is_ok(), "{ok:?}");
        }
        for bad in [
            headers(&[host, ("sec-fetch-site", "cross-site")]),
            headers(&[host, ("sec-fetch-site", "same-site")]),
            headers(&[host, ("origin", "https://evil.example")]),
            headers(&[host, ("origin", "null")]),
            headers(&[("origin", "https://app.example.org:8080")]),
        ] {
            assert!(same_origin_parts(&post, &bad).is_err(), "{bad:?}");
        }
        let cross = headers(&[host, ("sec-fetch-site", "cross-site")]);
        assert!(same_origin_parts(&Method::GET, &cross).is_ok());
    }
}
