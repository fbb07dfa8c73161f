//! What the proxy changes in the headers on the way to the upstream and back: hop-by-hop
//! headers dropped both ways (RFC 9110 §7.6.1), the caller's own identity and forwarding
//! headers removed before ours are set, and sessionplane's credentials kept from the upstream.

use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Headers that describe one connection, never the message.
const HOP_BY_HOP: &[HeaderName] = &[
    header::CONNECTION,
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Who the upstream is told it serves.
#[derive(Clone, Debug)]
pub struct Identity {
    /// `login@domain`.
    pub user: String,
    pub user_id: String,
    pub session_id: String,
    pub site: String,
}

/// Where the request came from, for `X-Forwarded-*`.
#[derive(Clone, Debug)]
pub struct Forwarded {
    pub client_ip: std::net::IpAddr,
    /// `https` when the api listener speaks TLS.
    pub proto: &'static str,
    /// The `Host` the client asked for.
    pub host: Option<HeaderValue>,
}

/// Removes the hop-by-hop headers, and every header the `Connection` header names.
pub fn drop_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named.iter().chain(HOP_BY_HOP) {
        headers.remove(name);
    }
    headers.remove("keep-alive");
    headers.remove("proxy-connection");
}

/// Whether a header is one the proxy alone may set towards the upstream.
fn ours(name: &HeaderName) -> bool {
    let name = name.as_str();
    name.starts_with("x-sessionplane-") || name.starts_with("x-forwarded-") || name == "forwarded"
}

/// The request's headers as the upstream gets them.
pub fn to_upstream(headers: &mut HeaderMap, identity: &Identity, forwarded: &Forwarded) {
    drop_hop_by_hop(headers);
    let spoofed: Vec<HeaderName> = headers.keys().filter(|n| ours(n)).cloned().collect();
    for name in spoofed {
        headers.remove(name);
    }
    headers.remove(header::HOST);
    drop_credentials(headers);
    let mut set = |name: &'static str, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    };
    set("x-sessionplane-user", &identity.user);
    set("x-sessionplane-user-id", &identity.user_id);
    set("x-sessionplane-session", &identity.session_id);
    set("x-sessionplane-site", &identity.site);
    set("x-forwarded-for", &forwarded.client_ip.to_string());
    set("x-forwarded-proto", forwarded.proto);
    if let Some(host) = &forwarded.host {
        headers.insert(HeaderName::from_static("x-forwarded-host"), host.clone());
    }
}

/// The identity headers alone, as forward auth answers them.
pub fn identity_headers(identity: &Identity) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in [
        ("x-sessionplane-user", &identity.user),
        ("x-sessionplane-user-id", &identity.user_id),
        ("x-sessionplane-session", &identity.session_id),
        ("x-sessionplane-site", &identity.site),
    ] {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    headers
}

/// The session token never reaches the upstream: a bearer `Authorization` is dropped, and the
/// `RSession` cookie is taken out of `Cookie` (the application's own cookies stay).
fn drop_credentials(headers: &mut HeaderMap) {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.len() > 7 && v[..7].eq_ignore_ascii_case("bearer "));
    if bearer {
        headers.remove(header::AUTHORIZATION);
    }
    let kept: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|c| !c.is_empty() && !c.starts_with("RSession="))
        .map(str::to_string)
        .collect();
    headers.remove(header::COOKIE);
    if let Ok(value) = HeaderValue::from_str(&kept.join("; ")) {
        if !kept.is_empty() {
            headers.insert(header::COOKIE, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Identity {
        Identity {
            user: "bob@example.org".into(),
            user_id: "u-1".into(),
            session_id: "s-1".into(),
            site: "central".into(),
        }
    }

    fn forwarded() -> Forwarded {
        Forwarded {
            client_ip: [192, 0, 2, 7].into(),
            proto: "https",
            host: Some(HeaderValue::from_static("app.example.org")),
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).expect("name"),
                HeaderValue::from_str(value).expect("value"),
            );
        }
        map
    }

    #[test]
    fn spoofed_identity_and_forwarding_headers_are_replaced() {
        let mut sent = headers(&[
            ("x-sessionplane-user", "admin@master.domain"),
            ("X-Sessionplane-Site", "elsewhere"),
            ("x-forwarded-for", "10.0.0.1"),
            ("forwarded", "for=10.0.0.1"),
            ("x-forwarded-host", "evil.example"),
            ("host", "app.example.org"),
            ("accept", "text/html"),
        ]);
        to_upstream(&mut sent, &identity(), &forwarded());
        assert_eq!(sent["x-sessionplane-user"], "bob@example.org");
        assert_eq!(sent["x-sessionplane-site"], "central");
        assert_eq!(sent.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(sent["x-forwarded-for"], "192.0.2.7");
        assert_eq!(sent["x-forwarded-host"], "app.example.org");
        assert_eq!(sent["x-forwarded-proto"], "https");
        assert!(sent.get("forwarded").is_none());
        assert!(
            sent.get("host").is_none(),
            "the client picks the upstream's host"
        );
        assert_eq!(sent["accept"], "text/html");
    }

    #[test]
    fn hop_by_hop_headers_and_the_ones_connection_names_go() {
        let mut sent = headers(&[
            ("connection", "keep-alive, x-private"),
            ("keep-alive", "timeout=5"),
            ("x-private", "1"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "h2c"),
            ("proxy-authorization", "Basic eDp5"),
            ("x-kept", "yes"),
        ]);
        drop_hop_by_hop(&mut sent);
        let left: Vec<&str> = sent.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["x-kept"]);
    }

    #[test]
    fn the_session_token_stays_with_sessionplane() {
        let mut sent = headers(&[
            ("authorization", "Bearer eyJ.secret.token"),
            ("cookie", "theme=dark; RSession=eyJ.secret.token; lang=en"),
        ]);
        to_upstream(&mut sent, &identity(), &forwarded());
        assert!(sent.get("authorization").is_none());
        assert_eq!(sent["cookie"], "theme=dark; lang=en");
        let mut only = headers(&[("cookie", "RSession=t"), ("authorization", "Basic eDp5")]);
        to_upstream(&mut only, &identity(), &forwarded());
        assert!(only.get("cookie").is_none());
        assert_eq!(
            only["authorization"], "Basic eDp5",
            "the app's own scheme stays"
        );
    }
}
