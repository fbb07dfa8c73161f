//! `/rest/v1/audit`: the audit trail of the selected sites, newest first, with filters and
//! pages, and `/rest/v1/audit/verify`: each site's hash chain re-checked.
//!
//! Administrators only. A global administrator sees every event; a domain administrator sees
//! the events whose actor is a user of its domain or whose target is its domain or one of its
//! addresses (or a session of it). The chain check is for global administrators.
//!
//! Owns the answers' shapes and the parsing of the filters; the events and the check are the
//! site state's (`state::site::audit`).

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::extract::Query;
use super::openapi::AdminErrors;
use super::scatter::{self, visible_domain, Read, Scatter};
use super::{ApiError, ApiState};
use crate::events::json::AuditEventView as EventView;
use crate::federation::{SiteRequest, Verb};
use crate::iam::Caller;
use crate::model::audit::Outcome;
use crate::state::site::audit::{AuditCursor, AuditFilter};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

const PATH: &str = "/rest/v1/audit";
/// A page without `limit` holds at most this many events.
const DEFAULT_LIMIT: usize = 1000;
const MAX_LIMIT: usize = 10_000;
/// The header that carries the next page's token.
const NEXT_PAGE_HEADER: &str = "x-next-page-token";

pub fn routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(verify))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListParams {
    /// `current` (default), `all`, or a JSON list of site names.
    sites: Option<String>,
    /// Events at or after this time (RFC 3339).
    since: Option<String>,
    /// Events at or before this time (RFC 3339).
    until: Option<String>,
    /// `login@domain`, a user id, or a service token's `sub`.
    actor: Option<String>,
    /// An action (`user.create`), or a prefix ending in `.*` (`user.*`).
    action: Option<String>,
    target: Option<String>,
    /// `ok`, `refused` or `failed`.
    outcome: Option<String>,
    /// At most this many events (1 to 10,000; default 1,000).
    #[param(minimum = 1, maximum = 10000)]
    limit: Option<usize>,
    /// The `X-Next-Page-Token` of the previous page.
    page_token: Option<String>,
    /// Answer with the sites reached when some cannot be (named in `X-Unavailable-Sites`).
    #[serde(default)]
    allow_partial: bool,
}

fn parse_time(name: &str, raw: &str) -> Result<u64, ApiError> {
    let bad = || {
        ApiError::InvalidArgument(format!(
            "{name} {raw:?} is not an RFC 3339 time (like 2026-12-02T10:00:00Z)"
        ))
    };
    let time = time::OffsetDateTime::parse(raw, &time::format_description::well_known::Rfc3339)
        .map_err(|_| bad())?;
    u64::try_from(time.unix_timestamp_nanos() / 1_000_000).map_err(|_| bad())
}

/// The filters the audit listing and the event stream share, as the query gives them.
pub(super) struct FilterFields<'a> {
    pub since: Option<&'a str>,
    pub until: Option<&'a str>,
    pub actor: Option<&'a str>,
    pub action: Option<&'a str>,
    pub target: Option<&'a str>,
    pub outcome: Option<&'a str>,
}

impl FilterFields<'_> {
    /// The filter, for a caller who sees `domain` only (none: every domain).
    pub fn filter(&self, domain: Option<String>) -> Result<AuditFilter, ApiError> {
        let outcome = match self.outcome {
            None => None,
            Some(raw) => Some(Outcome::parse(raw).ok_or_else(|| {
                ApiError::InvalidArgument(format!(
                    "outcome {raw:?}: one of \"ok\", \"refused\", \"failed\""
                ))
            })?),
        };
        Ok(AuditFilter {
            since_ms: self.since.map(|t| parse_time("since", t)).transpose()?,
            until_ms: self.until.map(|t| parse_time("until", t)).transpose()?,
            actor: self.actor.map(str::to_owned),
            action: self.action.map(str::to_owned),
            target: self.target.map(str::to_owned),
            outcome,
            domain,
            after: None,
        })
    }
}

impl ListParams {
    fn filter(&self, domain: Option<String>) -> Result<AuditFilter, ApiError> {
        let after = self
            .page_token
            .as_deref()
            .map(str::parse::<AuditCursor>)
            .transpose()
            .map_err(ApiError::InvalidArgument)?;
        let fields = FilterFields {
            since: self.since.as_deref(),
            until: self.until.as_deref(),
            actor: self.actor.as_deref(),
            action: self.action.as_deref(),
            target: self.target.as_deref(),
            outcome: self.outcome.as_deref(),
        };
        Ok(AuditFilter {
            after,
            ..fields.filter(domain)?
        })
    }

    fn limit(&self) -> Result<usize, ApiError> {
        match self.limit {
            None => Ok(DEFAULT_LIMIT),
            Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
            Some(n) => Err(ApiError::InvalidArgument(format!(
                "limit {n}: from 1 to {MAX_LIMIT}"
            ))),
        }
    }

    /// The same page for another site (which applies the caller's domain itself).
    fn for_remote(&self, limit: usize) -> SiteRequest {
        let mut request = SiteRequest::new(Verb::Get, PATH).query("limit", limit.to_string());
        let pairs = [
            ("since", &self.since),
            ("until", &self.until),
            ("actor", &self.actor),
            ("action", &self.action),
            ("target", &self.target),
            ("outcome", &self.outcome),
            ("page_token", &self.page_token),
        ];
        for (name, value) in pairs {
            if let Some(value) = value {
                request = request.query(name, value.clone());
            }
        }
        request
    }
}

/// The audit events of the selected sites, newest first.
#[utoipa::path(get, path = "/rest/v1/audit", tag = "audit", params(ListParams),
    responses(
        (status = 200, description = "The events, newest first", body = [EventView],
            headers(
                ("x-next-page-token" = String, description = "The next page's token, when there may be one"),
                ("x-unavailable-sites" = String, description = "With allow_partial: the sites not reached")
            )),
        AdminErrors
    ))]
async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    Query(params): Query<ListParams>,
) -> Result<Response, ApiError> {
    let domain = visible_domain(&caller, None)?.map(|d| d.to_string());
    let filter = params.filter(domain)?;
    let limit = params.limit()?;
    let plan = scatter::plan_query(&state, &caller, params.sites.as_deref())?;
    let local = async {
        let events = state
            .site
            .read(|s, _| s.audit_events(&filter, limit))
            .await?;
        Ok(events.iter().map(|e| EventView::from(&**e)).collect())
    };
    let read = Read {
        allow_partial: params.allow_partial,
    };
    let request = params.for_remote(limit);
    let gathered = Scatter::new(&state, &caller, &plan, request, read)
        .gather::<EventView>(local)
        .await?;
    let mut events = gathered.items;
    let more = events.len() >= limit;
    events.sort_by(|a, b| (&b.time, b.event_id).cmp(&(&a.time, a.event_id)));
    events.truncate(limit);
    let next = match (more, events.last()) {
        (true, Some(last)) => Some(AuditCursor {
            time_ms: parse_time("time", &last.time)?,
            event_id: last.event_id,
        }),
        _ => None,
    };
    let mut response = axum::Json(events).into_response();
    if let Some(value) = next.and_then(|c| HeaderValue::from_str(&c.to_string()).ok()) {
        response.headers_mut().insert(NEXT_PAGE_HEADER, value);
    }
    Ok(gathered.missing.mark(response))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct VerifyParams {
    /// `current` (default), `all`, or a JSON list of site names.
    sites: Option<String>,
    /// Answer with the sites reached when some cannot be (named in `X-Unavailable-Sites`).
    #[serde(default)]
    allow_partial: bool,
}

/// One site's chain, re-checked.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
#[schema(as = AuditChainCheck)]
struct SiteCheck {
    /// The events kept and checked.
    events: u64,
    ok: bool,
    /// The first event whose content or link does not match its hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    first_bad_event_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

#[derive(Serialize, Deserialize, ToSchema)]
#[schema(as = AuditVerification)]
struct Verification {
    sites: BTreeMap<String, SiteCheck>,
}

/// Re-checks the hash chain of each selected site's audit trail.
#[utoipa::path(get, path = "/rest/v1/audit/verify", tag = "audit", params(VerifyParams),
    responses(
        (status = 200, description = "Each site's chain (a tampered one names its first bad event)", body = Verification),
        AdminErrors
    ))]
async fn verify(
    State(state): State<ApiState>,
    caller: Caller,
    Query(params): Query<VerifyParams>,
) -> Result<Response, ApiError> {
    caller.require_global_admin()?;
    let plan = scatter::plan_query(&state, &caller, params.sites.as_deref())?;
    let current = state.federation.sites.current.clone();
    let local = async {
        let chain = state.site.read(|s, _| s.audit_chain()).await?;
        // Apart from the state and off the runtime: 90 days of events take a while to rehash.
        let check = tokio::task::spawn_blocking(move || chain.verify_after(None))
            .await
            .map_err(|e| ApiError::Server(format!("the chain check stopped: {e}")))?;
        let site = SiteCheck {
            events: check.events,
            ok: check.ok(),
            first_bad_event_id: check.first_bad,
            reason: check.reason,
        };
        Ok(Verification {
            sites: BTreeMap::from([(current.clone(), site)]),
        })
    };
    let read = Read {
        allow_partial: params.allow_partial,
    };
    let request = SiteRequest::new(Verb::Get, format!("{PATH}/verify"));
    let (answers, missing) = Scatter::new(&state, &caller, &plan, request, read)
        .collect::<Verification>(local)
        .await?;
    let sites = answers.into_values().flat_map(|v| v.sites).collect();
    let response = axum::Json(Verification { sites }).into_response();
    Ok(missing.mark(response))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::json::rfc3339_millis;

    #[test]
    fn times_have_milliseconds_and_parse_back() {
        assert_eq!(
            rfc3339_millis(1_796_205_600_009),
            "2026-12-02T10:00:00.009Z"
        );
        assert_eq!(
            parse_time("since", "2026-12-02T10:00:00.009Z").unwrap(),
            1_796_205_600_009
        );
        assert!(parse_time("since", "yesterday").is_err());
    }
}
