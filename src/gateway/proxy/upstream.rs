//! The pooled HTTP/1.1 client of one route: hyper's own (hyper-util), with rustls for `https`
//! upstreams, a connect timeout, kept-alive connections reused across requests.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;

use crate::config::proxy::ProxyRoute;

pub type UpstreamClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Body>;

/// Idle upstream connections are closed after this long.
const POOL_IDLE: Duration = Duration::from_secs(60);

pub fn client(route: &ProxyRoute, tls: rustls::ClientConfig) -> UpstreamClient {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(Duration::from_millis(route.connect_timeout_ms)));
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(POOL_IDLE)
        .build(connector)
}

pub fn tls_config(route: &ProxyRoute) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    match &route.ca_file {
        Some(file) => {
            let refuse =
                |e: String| format!("proxy {:?}: ca_file {}: {e}", route.prefix, file.display());
            let pem = std::fs::read(file).map_err(|e| refuse(e.to_string()))?;
            for cert in CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| refuse(e.to_string()))?;
                roots.add(cert).map_err(|e| refuse(e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(refuse("holds no certificate".into()));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// A failed exchange, in one line for the 502's message (no upstream answer body is quoted).
pub fn describe(error: &hyper_util::client::legacy::Error, route: &ProxyRoute) -> String {
    use std::error::Error;
    let mut cause = String::new();
    let mut source = error.source();
    while let Some(e) = source {
        cause = e.to_string();
        source = e.source();
    }
    let what = match error.is_connect() {
        true => "could not be reached",
        false => "broke off the exchange",
    };
    match cause.is_empty() {
        true => format!("the upstream of {} {what}", route.prefix),
        false => format!("the upstream of {} {what}: {cause}", route.prefix),
    }
}
