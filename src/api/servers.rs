//! `/servers?reload-certificate` and `/servers/certificates`: the TLS certificates of every
//! node of the site, reloaded without dropping a connection, and shown per node and listener.
//! Global administrators only. Each node of this site is asked through the node's named calls,
//! each other selected site over its api; the answer says which nodes or sites failed and why.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::extract::Query;
use super::openapi::{AdminErrors, ErrorSchema};
use super::scatter::{self, refusal, Gathered, Scatter, SitesParam, Write};
use super::{ApiError, ApiState};
use crate::federation::{SiteRequest, Verb};
use crate::iam::Caller;
use crate::model::task::{answer, TaskKind};
use crate::node_ops::NodeAnswers;
use crate::tls::listeners::{ListenerCertificate, ReloadOutcome};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

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
    trail: super::audit_trail::Trail,
    Query(params): Query<ReloadParams>,
) -> Result<StatusCode, ApiError> {
    caller.require_global_admin()?;
    if params.reload_certificate.is_none() {
        return Err(ApiError::InvalidArgument(
            "say what to do: POST /servers?reload-certificate[&port=N]".into(),
        ));
    }
    let port = parse_port(params.port.as_deref())?;
    let plan = scatter::plan_query(&state, &caller, params.sites.as_deref())?;
    let mut request = SiteRequest::new(Verb::Post, "/servers").query("reload-certificate", "");
    if let Some(port) = port {
        request = request.query("port", port.to_string());
    }
    let event = trail
        .event(
            &state,
            &caller,
            "certificate.reload",
            port.map_or("all".to_string(), |p| p.to_string()).as_str(),
        )
        .detail("port", port)
        .detail("sites", plan.sites(&state.federation.sites.current));
    let reload_here = async {
        let answers = state
            .node
            .reload_certificates(port)
            .await
            .map_err(|e| ApiError::Server(e.to_string()))?;
        match judge(answers, port) {
            Ok(_) => Ok(true),
            Err(ApiError::NoTlsListener(_)) => Ok(false),
            Err(e) => Err(e),
        }
    };
    let local = super::audit_trail::recorded_after(&state, event, reload_here);
    let write = Write {
        kind: TaskKind::CertificatesReload,
        record_wide: false,
    };
    let scatter = Scatter::new(&state, &caller, &plan, request, write);
    tracing::info!(caller = %caller.describe(), ?port, "certificate reload");
    let parts = scatter.run(local).await?;
    let mut done = BTreeMap::new();
    let mut without_listener = Vec::new();
    let current = state.federation.sites.current.clone();
    match parts.local {
        Some(true) => {
            done.insert(current, answer::reloaded());
        }
        Some(false) => without_listener.push(current),
        None => {}
    }
    for (site, answer) in &parts.answered {
        match (answer.status, answer.error_type().as_deref()) {
            (204, _) => {
                done.insert(site.clone(), answer::reloaded());
            }
            (400, Some("notFound")) => without_listener.push(site.clone()),
            _ => return Err(refusal(site, answer)),
        }
    }
    let reloaded_any = !done.is_empty();
    scatter.settle(done, parts.missed).await?;
    if !reloaded_any {
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
fn judge(answers: NodeAnswers<ReloadOutcome>, port: Option<u16>) -> Result<StatusCode, ApiError> {
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
    let sites = (params.sites.as_deref(), params.allow_partial);
    let local = site_certificates(&state);
    let Gathered { items, missing } =
        scatter::gather_get(&state, &caller, sites, "/servers/certificates", local).await?;
    Ok(missing.mark(axum::Json(items).into_response()))
}

/// Every node of this site's certificates; every node must answer.
async fn site_certificates(state: &ApiState) -> Result<Vec<NodeCertificate>, ApiError> {
    let answers = state.node.describe_certificates().await;
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
