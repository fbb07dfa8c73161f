//! `/cluster/sites`: each selected site at a glance, as one of its own nodes sees it: the node
//! that answered, the site group's leader and members (whether each answers), and how many
//! live sessions, websockets and mail channels the site holds. What the console's overview
//! shows; a site that does not answer is named as such, never counted as empty. Global
//! administrators only.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::cluster::{answers, last_contact};
use super::extract::Query;
use super::openapi::AdminErrors;
use super::scatter::{self, Gathered, SitesParam};
use super::{ApiError, ApiState};
use crate::iam::Caller;

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new().routes(routes!(list))
}

/// One site as the node that answered for it sees it.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = SiteSummary)]
struct SiteSummary {
    site: String,
    /// The node that answered (`node_name@host`).
    node: String,
    /// The site group's leader as that node knows it.
    leader: Option<u64>,
    members: Vec<SiteMember>,
    /// Live sessions, websocket connections and mail channels (IMAP, SMTP, JMAP).
    sessions: u64,
    websockets: u64,
    channels: u64,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = SiteMember)]
struct SiteMember {
    id: u64,
    address: String,
    /// Heard within the last 3 s; `null` when the answering node cannot tell.
    answers: Option<bool>,
}

/// Every selected site at a glance: nodes, leader, counts.
#[utoipa::path(get, path = "/cluster/sites", tag = "operations", params(SitesParam),
    responses((status = 200, description = "One summary per site reached, in site order", body = [SiteSummary], headers(("x-unavailable-sites" = String, description = "With allow_partial: the sites not reached"))), AdminErrors))]
async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    Query(params): Query<SitesParam>,
) -> Result<Response, ApiError> {
    caller.require_global_admin()?;
    let sites = (params.sites.as_deref(), params.allow_partial);
    let local = async { Ok(vec![this_site(&state).await?]) };
    let Gathered { mut items, missing } =
        scatter::gather_get(&state, &caller, sites, "/cluster/sites", local).await?;
    items.sort_by(|a: &SiteSummary, b| a.site.cmp(&b.site));
    Ok(missing.mark(axum::Json(items).into_response()))
}

async fn this_site(state: &ApiState) -> Result<SiteSummary, ApiError> {
    let (sessions, websockets, channels) = state
        .site
        .read(|s, now| {
            (
                s.live_count(now),
                s.connection_count() as u64,
                s.channels().len() as u64,
            )
        })
        .await?;
    let status = state.site.group().status().await;
    let members = status
        .members
        .iter()
        .map(|(id, address)| {
            let contact = last_contact(&status, &state.liveness, *id);
            SiteMember {
                id: *id,
                address: address.clone(),
                answers: answers(&status, &state.liveness, *id, contact),
            }
        })
        .collect();
    Ok(SiteSummary {
        site: state.federation.sites.current.clone(),
        node: state.node_label.clone(),
        leader: status.leader,
        members,
        sessions,
        websockets,
        channels,
    })
}
