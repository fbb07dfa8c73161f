//! `/servers?reload-certificate` and `/servers/certificates`: the TLS certificates of every
//! node of the site, reloaded without dropping a connection, and shown per node and listener.
//! Global administrators only. Each node of this site is asked over the cluster listener, each
//! other selected site over its api; the answer says which nodes or sites failed and why.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::extract::Query;
use super::openapi::{AdminErrors, ErrorSchema};
use super::{fanout, ApiError, ApiState};
use crate::federation::{SiteRequest, Verb};
use crate::iam::Caller;
use crate::model::task::{answer, TaskKind};
use crate::state::{decode, encode};
use crate::tls::listeners::{ListenerCertificate, ReloadOutcome};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The node call that reloads a node's certificates (body: the port, if any).
pub const RELOAD_CALL: &str = "reload-certificates";
/// The node call that describes a node's certificates.
pub const DESCRIBE_CALL: &str = "certificates";
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(reload))
        .routes(routes!(certificates))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ReloadParams {
    /// Required (no value): what to do.
    #[serde(rename = "reload-certificate")]
    #[param(rename = "reload-certificate")]
    reload_certificate: Option<String>,
    /// Only the TLS listener on this port.
    port: Option<String>,
    /// `current` (default), `all`, or a JSON list of site names.
    sites: Option<String>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct SitesParam {
    /// `current` (default), `all`, or a JSON list of site names.
    sites: Option<String>,
    /// Answer with the sites reached when some cannot be (named in `X-Unavailable-Sites`).
    #[serde(default)]
    allow_partial: bool,
}

/// What a node answered, or why it could not.
type Answers<T> = Vec<(String, Result<T, String>)>;

async fn ask_every_node<T: serde::de::DeserializeOwned>(
    state: &ApiState,
    call: &str,
    body: Vec<u8>,
) -> Answers<T> {
    let asks = state.site_nodes.iter().map(|node| {
        let (peers, body) = (state.peers.clone(), body.clone());
        async move {
            let answer = match peers
                .call_node(&node.cluster, call, body, CALL_TIMEOUT)
                .await
            {
                Ok(Ok(bytes)) => decode::<T>(&bytes).map_err(|e| e.to_string()),
                Ok(Err(refusal)) => Err(refusal),
                Err(e) => Err(e.to_string()),
            };
            (node.name.clone(), answer)
        }
    });
    futures_util::future::join_all(asks).await
}

fn parse_port(raw: Option<&str>) -> Result<Option<u16>, ApiError> {
    match raw {
        None => Ok(None),
        Some(raw) => match raw.parse::<u16>() {
            Ok(port) if port > 0 => Ok(Some(port)),
            _ => Err(ApiError::InvalidArgument(format!(
                "port {raw:?}: a port number, 1 to 65535"
            ))),
        },
    }
}

/// Every TLS listener of every node of the selected sites (or the one on `port`) re-reads its
/// certificate and key; open connections keep working.
#[utoipa::path(post, path = "/servers", tag = "certificates", params(ReloadParams),
    responses((status = 204, description = "Reloaded"),
        (status = 400, description = "Bad input; no such TLS listener (`notFound`); a pair that does not load (nodes named, they keep the old one)", body = ErrorSchema),
        (status = 503, description = "A site (or node) was not reached; a task keeps trying a write there (`taskId`)", body = ErrorSchema), AdminErrors))]
async fn reload(
    State(state): State<ApiState>,
    caller: Caller,
    Query(params): Query<ReloadParams>,
) -> Result<StatusCode, ApiError> {
    caller.require_global_admin()?;
    if params.reload_certificate.is_none() {
        return Err(ApiError::InvalidArgument(
            "say what to do: POST /servers?reload-certificate[&port=N]".into(),
        ));
    }
    let port = parse_port(params.port.as_deref())?;
    let selector = state
        .federation
        .sites
        .parse_query(params.sites.as_deref())?;
    let plan = fanout::plan(&state, &caller, &selector)?;
    let mut request = SiteRequest::new(Verb::Post, "/servers").query("reload-certificate", "");
    if let Some(port) = port {
        request = request.query("port", port.to_string());
    }
    let local = async {
        if !plan.local {
            return None;
        }
        let body = match encode(&port) {
            Ok(body) => body,
            Err(e) => return Some(Err(ApiError::Server(e.to_string()))),
        };
        let answers: Answers<ReloadOutcome> = ask_every_node(&state, RELOAD_CALL, body).await;
        Some(judge(answers, port))
    };
    let (local, answers) =
        tokio::join!(local, fanout::call_remote(&state, &caller, &plan, &request));
    tracing::info!(caller = %caller.describe(), ?port, "certificate reload");
    let mut done = BTreeMap::new();
    let mut without_listener = Vec::new();
    let current = state.federation.sites.current.clone();
    match local {
        Some(Ok(_)) => {
            done.insert(current, answer::reloaded());
        }
        Some(Err(ApiError::NoTlsListener(_))) => without_listener.push(current),
        Some(Err(e)) => return Err(e),
        None => {}
    }
    let (answered, missed) = fanout::split(answers?);
    for (site, answer) in &answered {
        match (answer.status, answer.error_type().as_deref()) {
            (204, _) => {
                done.insert(site.clone(), answer::reloaded());
            }
            (400, Some("notFound")) => without_listener.push(site.clone()),
            _ => return Err(fanout::refusal(site, answer)),
        }
    }
    if !missed.is_empty() {
        return Err(fanout::keep_trying(
            &state,
            &caller,
            TaskKind::CertificatesReload,
            request,
            done,
            missed,
        )
        .await);
    }
    if done.is_empty() {
        let what = port.map_or("no TLS listener".to_string(), |p| {
            format!("no TLS listener on port {p}")
        });
        return Err(ApiError::NoTlsListener(format!(
            "{what} in site {}",
            without_listener.join(", ")
        )));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// 204 when every node reloaded something and nothing failed; otherwise the contract's error.
fn judge(answers: Answers<ReloadOutcome>, port: Option<u16>) -> Result<StatusCode, ApiError> {
    let unreachable: Vec<String> = answers
        .iter()
        .filter_map(|(node, a)| a.as_ref().err().map(|e| format!("{node}: {e}")))
        .collect();
    let failed: Vec<String> = answers
        .iter()
        .filter_map(|(node, a)| a.as_ref().ok().map(|o| (node, o)))
        .filter(|(_, o)| !o.failed.is_empty())
        .map(|(node, o)| {
            let why: Vec<String> = o.failed.iter().map(|(l, e)| format!("{l}: {e}")).collect();
            format!("{node} ({})", why.join("; "))
        })
        .collect();
    let matched = answers
        .iter()
        .filter_map(|(_, a)| a.as_ref().ok())
        .any(|o| !o.reloaded.is_empty() || !o.failed.is_empty());
    if !failed.is_empty() {
        return Err(ApiError::InvalidArgumentWithCause {
            message: format!(
                "the new certificate did not load on {}; those nodes keep serving the old one",
                failed
                    .iter()
                    .map(|f| f.split(' ').next().unwrap_or(""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            cause: failed.join(" | "),
        });
    }
    if !unreachable.is_empty() {
        return Err(ApiError::Unavailable(format!(
            "could not reach every node: {}",
            unreachable.join(" | ")
        )));
    }
    if !matched {
        let what = port.map_or("no TLS listener".to_string(), |p| {
            format!("no TLS listener on port {p}")
        });
        return Err(ApiError::NoTlsListener(what));
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Serialize, Deserialize, ToSchema)]
#[schema(as = NodeCertificate)]
struct NodeCertificate {
    node: String,
    site: String,
    #[serde(flatten)]
    certificate: ListenerCertificate,
}

/// Each node's certificates, per listener: subject, names, expiry, fingerprint.
#[utoipa::path(get, path = "/servers/certificates", tag = "certificates", params(SitesParam),
    responses((status = 200, description = "The certificates", body = [NodeCertificate], headers(("x-unavailable-sites" = String, description = "With allow_partial: the sites not reached"))), AdminErrors))]
async fn certificates(
    State(state): State<ApiState>,
    caller: Caller,
    Query(params): Query<SitesParam>,
) -> Result<Response, ApiError> {
    caller.require_global_admin()?;
    let selector = state
        .federation
        .sites
        .parse_query(params.sites.as_deref())?;
    let plan = fanout::plan(&state, &caller, &selector)?;
    let request = SiteRequest::new(Verb::Get, "/servers/certificates");
    let local = async {
        match plan.local {
            true => Some(site_certificates(&state).await),
            false => None,
        }
    };
    let (local, answers) =
        tokio::join!(local, fanout::call_remote(&state, &caller, &plan, &request));
    let mut listed = local.transpose()?.unwrap_or_default();
    let (answered, missed) = fanout::split(answers?);
    let mut reached: Vec<String> = answered.keys().cloned().collect();
    if plan.local {
        reached.push(state.federation.sites.current.clone());
    }
    let missing = fanout::judge_listing(&reached, &missed, params.allow_partial)?;
    for (site, answer) in &answered {
        listed.extend(fanout::decoded::<Vec<NodeCertificate>>(site, answer)?);
    }
    Ok(fanout::mark_partial(
        axum::Json(listed).into_response(),
        &missing,
    ))
}

/// Every node of this site's certificates; every node must answer.
async fn site_certificates(state: &ApiState) -> Result<Vec<NodeCertificate>, ApiError> {
    let answers: Answers<Vec<ListenerCertificate>> =
        ask_every_node(state, DESCRIBE_CALL, Vec::new()).await;
    let mut listed = Vec::new();
    let mut unreachable = Vec::new();
    for (node, answer) in answers {
        match answer {
            Ok(certificates) => {
                listed.extend(certificates.into_iter().map(|certificate| NodeCertificate {
                    node: node.clone(),
                    site: state.federation.sites.current.clone(),
                    certificate,
                }))
            }
            Err(e) => unreachable.push(format!("{node}: {e}")),
        }
    }
    if !unreachable.is_empty() {
        return Err(ApiError::Unavailable(format!(
            "could not reach every node: {}",
            unreachable.join(" | ")
        )));
    }
    Ok(listed)
}
