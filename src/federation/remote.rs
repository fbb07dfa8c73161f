//! Calls to the api listeners of the other sites: one site at a time, its nodes tried in turn
//! (the one that answered last first), the whole attempt bounded by the federation timeout.
//!
//! A node that cannot be reached, times out, answers 5xx or refuses the federation token is
//! skipped for the next one; any other answer, success or refusal, is the site's answer.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use axum::body::Bytes;
use futures_util::StreamExt;
use tokio::time::Instant;

use crate::config::{Config, ConfigError};
pub use crate::model::site_request::{SiteRequest, Verb};

/// The header carrying the next page token of a listing.
const NEXT_PAGE_HEADER: &str = "x-next-page-token";
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// The longest reason given for one node in a site's outcome.
const BRIEF_CHARS: usize = 120;

/// What a site answered.
#[derive(Clone, Debug)]
pub struct SiteAnswer {
    pub status: u16,
    pub next_page: Option<String>,
    pub body: Bytes,
}

impl SiteAnswer {
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The contract's `type` of an error answer.
    pub fn error_type(&self) -> Option<String> {
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v.get("type").and_then(|t| t.as_str()).map(str::to_owned))
    }

    /// The `message` of an error answer, or its first bytes.
    pub fn message(&self) -> String {
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
            .unwrap_or_else(|| {
                String::from_utf8_lossy(&self.body[..self.body.len().min(200)]).into()
            })
    }
}

/// A successful answer whose body is still arriving, chunk by chunk.
pub struct SiteStream {
    pub status: u16,
    pub body: std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Bytes, String>> + Send>>,
}

/// What a streaming call got: an answer read whole (a refusal), or a success still arriving.
pub enum Received {
    Whole(SiteAnswer),
    Streaming(SiteStream),
}

/// Why a site gave no answer: every node's reason.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unreachable ({})", .attempts.join("; "))]
pub struct SiteFailure {
    pub attempts: Vec<String>,
}

struct RemoteNode {
    name: String,
    base: reqwest::Url,
}

pub struct RemoteSites {
    http: reqwest::Client,
    sites: BTreeMap<String, Vec<RemoteNode>>,
    /// Per site, the node that answered last.
    preferred: Mutex<BTreeMap<String, usize>>,
    timeout: Duration,
    telemetry: std::sync::Arc<crate::telemetry::Telemetry>,
}

impl RemoteSites {
    pub fn new(
        config: &Config,
        telemetry: std::sync::Arc<crate::telemetry::Telemetry>,
    ) -> Result<Self, ConfigError> {
        let invalid = |m: String| ConfigError::Invalid(m);
        let mut builder = reqwest::Client::builder()
            .local_address(config.listen.source_address)
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(Duration::from_millis(config.federation.timeout_ms))
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(30));
        if let Some(path) = &config.federation.ca_file {
            let pem = std::fs::read(path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            for certificate in reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| invalid(format!("federation.ca_file: {e}")))?
            {
                builder = builder.add_root_certificate(certificate);
            }
        }
        let http = builder
            .build()
            .map_err(|e| invalid(format!("federation client: {e}")))?;
        let mut sites = BTreeMap::new();
        for site in &config.sites {
            let nodes = site
                .nodes
                .iter()
                .map(|n| {
                    let api = n.api.as_deref().unwrap_or_default();
                    reqwest::Url::parse(api)
                        .map(|base| RemoteNode {
                            name: n.name.clone(),
                            base,
                        })
                        .map_err(|e| invalid(format!("sites: node {}: api {api:?}: {e}", n.name)))
                })
                .collect::<Result<Vec<_>, _>>()?;
            sites.insert(site.name.clone(), nodes);
        }
        Ok(Self {
            http,
            sites,
            preferred: Mutex::new(BTreeMap::new()),
            timeout: Duration::from_millis(config.federation.timeout_ms),
            telemetry,
        })
    }

    /// Sends `request` to one node of `site`, presenting `token`; the whole answer.
    pub async fn call(
        &self,
        site: &str,
        request: &SiteRequest,
        token: &str,
    ) -> Result<SiteAnswer, SiteFailure> {
        let (response, deadline) = self.reach(site, request, token).await?;
        read_whole(response, deadline)
            .await
            .map_err(|reason| SiteFailure {
                attempts: vec![reason],
            })
    }

    /// As [`Self::call`], but a successful answer's body is handed on as it arrives.
    pub async fn call_streaming(
        &self,
        site: &str,
        request: &SiteRequest,
        token: &str,
    ) -> Result<Received, SiteFailure> {
        let (response, deadline) = self.reach(site, request, token).await?;
        if !response.status().is_success() {
            return read_whole(response, deadline)
                .await
                .map(Received::Whole)
                .map_err(|reason| SiteFailure {
                    attempts: vec![reason],
                });
        }
        let status = response.status().as_u16();
        let idle = self.timeout;
        let body = response
            .bytes_stream()
            .map(move |chunk| chunk.map_err(|e| describe(&e, idle)));
        Ok(Received::Streaming(SiteStream {
            status,
            body: Box::pin(body),
        }))
    }

    /// The first node of `site` that answers with its headers, by the deadline: not a 5xx, not
    /// a refusal of the federation token.
    async fn reach(
        &self,
        site: &str,
        request: &SiteRequest,
        token: &str,
    ) -> Result<(reqwest::Response, Instant), SiteFailure> {
        let reached = self.try_nodes(site, request, token).await;
        let outcome = match &reached {
            Ok((response, _)) if response.status().is_success() => "answered",
            Ok(_) => "refused",
            Err(_) => "unreachable",
        };
        self.telemetry.federation_call(site, outcome);
        reached
    }

    async fn try_nodes(
        &self,
        site: &str,
        request: &SiteRequest,
        token: &str,
    ) -> Result<(reqwest::Response, Instant), SiteFailure> {
        let Some(nodes) = self.sites.get(site) else {
            return Err(SiteFailure {
                attempts: vec![format!("site {site} has no configured node")],
            });
        };
        let deadline = Instant::now() + self.timeout;
        let first = self.preferred_node(site);
        let mut attempts = Vec::new();
        for k in 0..nodes.len() {
            let index = (first + k) % nodes.len();
            let node = &nodes[index];
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                attempts.push(format!("{}: not tried, out of time", node.name));
                continue;
            }
            let response = match self.send(node, request, token, left).await {
                Ok(response) => response,
                Err(reason) => {
                    attempts.push(format!("{}: {reason}", node.name));
                    continue;
                }
            };
            let status = response.status().as_u16();
            if status != 401 && status < 500 {
                self.prefer(site, index);
                return Ok((response, deadline));
            }
            let message = read_whole(response, deadline)
                .await
                .map(|a| brief(&a.message()))
                .unwrap_or_else(|reason| reason);
            attempts.push(match status {
                401 => format!(
                    "{}: refused this site's federation token ({message}); is the cluster secret the same at every site?",
                    node.name
                ),
                _ => format!("{}: answered {status}: {message}", node.name),
            });
        }
        Err(SiteFailure { attempts })
    }

    async fn send(
        &self,
        node: &RemoteNode,
        request: &SiteRequest,
        token: &str,
        timeout: Duration,
    ) -> Result<reqwest::Response, String> {
        let mut url = node.base.clone();
        url.set_path(&request.path);
        if !request.query.is_empty() {
            url.query_pairs_mut().extend_pairs(&request.query);
        }
        let method = match request.verb {
            Verb::Get => reqwest::Method::GET,
            Verb::Post => reqwest::Method::POST,
            Verb::Delete => reqwest::Method::DELETE,
        };
        let mut builder = self.http.request(method, url).bearer_auth(token);
        if let Some(body) = &request.body {
            builder = builder
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        match tokio::time::timeout(timeout, builder.send()).await {
            Ok(sent) => sent.map_err(|e| describe(&e, timeout)),
            Err(_) => Err(format!("no answer within {} ms", timeout.as_millis())),
        }
    }

    fn preferred_node(&self, site: &str) -> usize {
        self.preferred
            .lock()
            .map(|p| p.get(site).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    fn prefer(&self, site: &str, index: usize) {
        if let Ok(mut preferred) = self.preferred.lock() {
            preferred.insert(site.to_string(), index);
        }
    }
}

/// The rest of an answer, by the deadline.
async fn read_whole(response: reqwest::Response, deadline: Instant) -> Result<SiteAnswer, String> {
    let status = response.status().as_u16();
    let next_page = response
        .headers()
        .get(NEXT_PAGE_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let left = deadline.saturating_duration_since(Instant::now());
    let body = match tokio::time::timeout(left, response.bytes()).await {
        Ok(body) => body.map_err(|e| describe(&e, left))?,
        Err(_) => {
            return Err(format!(
                "the answer did not arrive within {} ms",
                left.as_millis()
            ))
        }
    };
    Ok(SiteAnswer {
        status,
        next_page,
        body,
    })
}

/// Why a call failed, in a few words (`connection refused`): the innermost cause, not the
/// whole chain, which repeats the URL at every level and made a 503's cause kilobytes long.
/// The whole chain goes to the debug log.
fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    if e.is_timeout() {
        return format!("no answer within {} ms", timeout.as_millis());
    }
    let mut root: &dyn std::error::Error = e;
    let mut chain = e.to_string();
    while let Some(cause) = root.source() {
        chain = format!("{chain}: {cause}");
        root = cause;
    }
    tracing::debug!(error = %chain, "a call to another site failed");
    match root
        .downcast_ref::<std::io::Error>()
        .map(std::io::Error::kind)
    {
        Some(std::io::ErrorKind::ConnectionRefused) => "connection refused".into(),
        Some(std::io::ErrorKind::ConnectionReset) => "connection reset".into(),
        Some(std::io::ErrorKind::TimedOut) => "timed out".into(),
        _ => brief(&root.to_string()),
    }
}

/// At most [`BRIEF_CHARS`] characters of `text`.
fn brief(text: &str) -> String {
    match text.chars().count() > BRIEF_CHARS {
        true => text.chars().take(BRIEF_CHARS).collect::<String>() + "…",
        false => text.to_string(),
    }
}
