//! Session limits per domain: a login whose password is right, for a user of a domain that
//! caps each user's sessions, first counts the user's sessions at every site that answers.
//! At the cap, the login is refused (`refuse`: 403) or the oldest sessions end, wherever they
//! are, with the reason `limit` (`end_oldest`), before the new one opens. A site that does not
//! answer is not counted; the audit event (`login.limited` or `session.limit`) says which.
//!
//! Every login that opens a session (`/rest/v1/iam/sessions`, `/login`) comes through here.
//! Owns the count and the verdict; ending a session is the stores', calling a site the
//! federation's.

use std::collections::BTreeMap;

use serde_json::json;
use uuid::Uuid;

use super::{ApiError, ApiState};
use crate::federation::{SiteRequest, Verb};
use crate::iam::login::{LoggedIn, LoginAttempt};
use crate::model::audit::{Actor, NewAuditEvent, Outcome};
use crate::model::{CloseReason, OnLimit, SessionLimit, User};
use crate::state::site::Authority;

const SESSIONS: &str = "/rest/v1/master/logicalroles/ws/sessions";
/// Who the calls to other sites are made for.
const ON_BEHALF_OF: &str = "sessionplane session limit";

/// Checks the password, makes room under the user's domain's limit, and opens the session.
pub(super) async fn log_in(
    state: &ApiState,
    attempt: LoginAttempt<'_>,
) -> Result<LoggedIn, ApiError> {
    let user = state
        .iam
        .check_password(
            attempt.domain,
            attempt.login,
            attempt.password,
            attempt.client_addr,
        )
        .await?;
    // This node's copy, as the password check reads it: a site cut off from the directory's
    // leader keeps its logins (and their limit).
    let limit = state
        .iam
        .directory
        .read_local(|d| d.domain(&user.domain).and_then(|d| d.session_limit));
    if let Some(limit) = limit {
        make_room(state, &user, limit, attempt.client_addr).await?;
    }
    Ok(state
        .iam
        .open_session(&user, attempt.client_addr, attempt.user_agent)
        .await?)
}

/// The user's sessions at the sites that answered (id and site, oldest first: the ids are
/// UUIDv7, in creation order), and why each other site was not counted.
struct Counted {
    sessions: Vec<(Uuid, String)>,
    not_counted: BTreeMap<String, String>,
}

async fn count(state: &ApiState, user: &User) -> Result<Counted, ApiError> {
    let current = state.federation.sites.current.clone();
    let mut sessions: Vec<(Uuid, String)> = state
        .site
        .read(|s, now| s.user_sessions(&user.user_id, now))
        .await?
        .into_iter()
        .map(|s| (s.session_id, current.clone()))
        .collect();
    let mut not_counted = BTreeMap::new();
    let others: Vec<String> = (state.federation.sites.known.iter())
        .filter(|site| **site != current)
        .cloned()
        .collect();
    if !others.is_empty() {
        let token = state.iam.federation_token(ON_BEHALF_OF, None)?;
        let request = SiteRequest::new(Verb::Get, SESSIONS)
            .query("user", user.user_id.to_string())
            .query("session_type", "http");
        for (site, answer) in state.federation.call_each(&others, &request, &token).await {
            let ids = answer
                .map_err(|failure| failure.to_string())
                .and_then(|answer| match answer.is_success() {
                    true => session_ids(&answer.body),
                    false => Err(format!("answered {}: {}", answer.status, answer.message())),
                });
            match ids {
                Ok(ids) => sessions.extend(ids.into_iter().map(|id| (id, site.clone()))),
                Err(why) => {
                    not_counted.insert(site, why);
                }
            }
        }
    }
    sessions.sort();
    Ok(Counted {
        sessions,
        not_counted,
    })
}

fn session_ids(body: &[u8]) -> Result<Vec<Uuid>, String> {
    let items: Vec<serde_json::Value> = serde_json::from_slice(body)
        .map_err(|e| format!("an answer that is not a listing: {e}"))?;
    Ok(items
        .iter()
        .filter_map(|item| item["session_id"].as_str())
        .filter_map(|id| Uuid::try_parse(id).ok())
        .collect())
}

async fn make_room(
    state: &ApiState,
    user: &User,
    limit: SessionLimit,
    client: Option<std::net::IpAddr>,
) -> Result<(), ApiError> {
    let counted = count(state, user).await?;
    let max = limit.max_sessions_per_user as usize;
    let open = counted.sessions.len();
    if open < max {
        return Ok(());
    }
    let address = user.address().to_string();
    let action = match limit.on_limit {
        OnLimit::Refuse => "login.limited",
        OnLimit::EndOldest => "session.limit",
    };
    let event = NewAuditEvent::new(
        &state.federation.sites.current,
        &state.node_label,
        Actor::None,
        action,
        &address,
    )
    .with_remote(client)
    .detail("max_sessions_per_user", max)
    .detail("open", open)
    .detail("not_counted", json!(counted.not_counted));
    if limit.on_limit == OnLimit::Refuse {
        record(state, event.with_outcome(Outcome::Refused)).await;
        return Err(ApiError::Forbidden(format!(
            "{address} has {open} sessions open, as many as its domain allows: end one to log in"
        )));
    }
    let doomed = &counted.sessions[..=open - max];
    let mut ended = Vec::new();
    for (session_id, site) in doomed {
        match end(state, *session_id, site).await {
            Ok(()) => ended.push(json!({"session_id": session_id, "site": site})),
            Err(why) => {
                let event = event
                    .detail("ended", json!(ended))
                    .detail("error", why.to_string());
                record(state, event.with_outcome(Outcome::Failed)).await;
                return Err(why);
            }
        }
    }
    record(
        state,
        event
            .detail("ended", json!(ended))
            .with_outcome(Outcome::Ok),
    )
    .await;
    Ok(())
}

/// Ends one of the user's sessions at its site, its sockets told `limit`.
async fn end(state: &ApiState, session_id: Uuid, site: &str) -> Result<(), ApiError> {
    if *site == state.federation.sites.current {
        state
            .iam
            .end_session(session_id, CloseReason::Limit, Authority::system(), None)
            .await?;
        return Ok(());
    }
    let token = state.iam.federation_token(ON_BEHALF_OF, None)?;
    let request = SiteRequest::new(Verb::Delete, format!("{SESSIONS}/{session_id}"))
        .query("reason", CloseReason::Limit.as_str())
        .for_site(site);
    match state.federation.call(site, &request, &token).await {
        Ok(answer) if answer.is_success() || answer.status == 404 => Ok(()),
        Ok(answer) => Err(ApiError::Unavailable(format!(
            "site {site} did not end the oldest session: {}",
            answer.message()
        ))),
        Err(failure) => Err(ApiError::Unavailable(format!(
            "site {site} did not end the oldest session: {failure}"
        ))),
    }
}

/// Records the limit's event; a failure to record it is logged (the verdict stands).
async fn record(state: &ApiState, event: NewAuditEvent) {
    if let Err(e) = state.site.record_audit(event).await {
        tracing::warn!(error = %e, "could not record a session limit's audit event");
    }
}
