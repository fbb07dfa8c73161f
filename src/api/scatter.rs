//! One request over the sites a `sites` parameter selects, for every resource that takes it:
//! this site's part and the calls to the other selected sites run at once, then the request's
//! strategy judges the sites that gave no answer, as the contract asks: a [`Read`] answers 503
//! naming every site's outcome, or with `allow_partial` the sites reached and the others named
//! in `X-Unavailable-Sites`; a [`Write`] leaves a durable task that keeps trying the sites it
//! missed (and, when asked, keeps a write that reached several sites as a completed task).
//!
//! In `api`, not `federation`: it answers with `ApiError`s and response headers, confirms the
//! caller through `iam` and submits tasks to the site store. It owns neither a resource's local
//! part nor the shape of its answer: what each site said is the handler's to read.

use std::collections::BTreeMap;
use std::future::Future;

use axum::body::Bytes;
use axum::http::{HeaderName, HeaderValue};
use axum::response::Response;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use super::{ApiError, ApiState};
use crate::federation::splice::Part;
use crate::federation::{
    Answers, Plan, Received, SiteAnswer, SiteFailure, SiteRequest, SiteSelector, Verb,
};
use crate::iam::Caller;
use crate::model::task::{answer, NewTask, TaskKind};
use crate::model::DomainName;
use crate::state::directory::AdminScope;

/// Names the selected sites a partial listing could not reach.
pub const UNAVAILABLE_SITES_HEADER: &str = "x-unavailable-sites";

/// Where a request runs. A request another site forwarded names this site alone.
pub fn plan(state: &ApiState, caller: &Caller, selector: &SiteSelector) -> Result<Plan, ApiError> {
    Ok(state
        .federation
        .sites
        .plan(selector, caller.is_federated())?)
}

/// Where a request runs, from its `sites` query parameter.
pub fn plan_query(
    state: &ApiState,
    caller: &Caller,
    sites: Option<&str>,
) -> Result<Plan, ApiError> {
    let selector = state.federation.sites.parse_query(sites)?;
    plan(state, caller, &selector)
}

/// The domain a caller may act on at the selected sites: what it asked (everything when it
/// asked nothing) for a global administrator, its own domain for a domain administrator.
pub fn visible_domain(
    caller: &Caller,
    requested: Option<DomainName>,
) -> Result<Option<DomainName>, ApiError> {
    match (caller.scope(), requested) {
        (Some(AdminScope::Global), requested) => Ok(requested),
        (Some(AdminScope::Domain(own)), None) => Ok(Some(own)),
        (Some(_), Some(requested)) => {
            caller.require_admin_of(&requested)?;
            Ok(Some(requested))
        }
        (None, _) => Err(ApiError::Forbidden("administrators only".into())),
    }
}

/// The query of a read that takes only the site selection.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SitesParam {
    /// `current` (default), `all`, or a JSON list of site names.
    pub sites: Option<String>,
    /// Answer with the sites reached when some cannot be (named in `X-Unavailable-Sites`).
    #[serde(default)]
    pub allow_partial: bool,
}

/// A listing over the sites `sites` selects, for a route whose other sites answer `GET path`
/// with their own part: `local` gives this site's items, the others' follow.
pub async fn gather_get<T: DeserializeOwned>(
    state: &ApiState,
    caller: &Caller,
    (sites, allow_partial): (Option<&str>, bool),
    path: impl Into<String>,
    local: impl Future<Output = Result<Vec<T>, ApiError>>,
) -> Result<Gathered<T>, ApiError> {
    let plan = plan_query(state, caller, sites)?;
    let request = SiteRequest::new(Verb::Get, path);
    Scatter::new(state, caller, &plan, request, Read { allow_partial })
        .gather(local)
        .await
}

/// A read: a site not reached is a 503, unless the caller allows a partial answer.
#[derive(Clone, Copy, Debug)]
pub struct Read {
    pub allow_partial: bool,
}

/// A write: a site not reached gets a task of `kind` that keeps trying there.
#[derive(Clone, Copy, Debug)]
pub struct Write {
    pub kind: TaskKind,
    /// Whether a write that reached several sites is kept as a completed task, the record of
    /// what each site did.
    pub record_wide: bool,
}

/// One request over the sites of a plan, with its strategy.
pub struct Scatter<'a, S> {
    state: &'a ApiState,
    caller: &'a Caller,
    plan: &'a Plan,
    request: SiteRequest,
    strategy: S,
}

/// What the sites did with one request.
pub struct Scattered<L> {
    /// This site's part, when the plan runs here.
    pub local: Option<L>,
    /// The remote sites that answered (whatever they answered), by name.
    pub answered: BTreeMap<String, SiteAnswer>,
    /// The remote sites that gave no answer, and why.
    pub missed: BTreeMap<String, SiteFailure>,
}

/// The selected sites a partial read left out.
#[derive(Debug, Default)]
pub struct Missing(Vec<String>);

impl Missing {
    /// Names the sites left out in the answer's `X-Unavailable-Sites` header.
    pub fn mark(&self, mut response: Response) -> Response {
        if self.0.is_empty() {
            return response;
        }
        if let Ok(value) = HeaderValue::from_str(&self.0.join(", ")) {
            response
                .headers_mut()
                .insert(HeaderName::from_static(UNAVAILABLE_SITES_HEADER), value);
        }
        response
    }

    /// Adds a site left out.
    pub fn push(&mut self, site: String) {
        self.0.push(site);
    }

    /// The sites left out.
    pub fn names(&self) -> &[String] {
        &self.0
    }
}

/// A read's items, this site's first, and the sites it left out.
pub struct Gathered<T> {
    pub items: Vec<T>,
    pub missing: Missing,
}

impl<'a, S> Scatter<'a, S> {
    /// `request` is what the other sites of `plan` are sent (made for each site alone).
    pub fn new(
        state: &'a ApiState,
        caller: &'a Caller,
        plan: &'a Plan,
        request: SiteRequest,
        strategy: S,
    ) -> Self {
        Self {
            state,
            caller,
            plan,
            request,
            strategy,
        }
    }

    /// Runs `local` here when the plan says so, and sends the request to the other sites at
    /// the same time. A failure of this site's part comes first, then one of the calls' own.
    pub async fn run<L>(
        &self,
        local: impl Future<Output = Result<L, ApiError>>,
    ) -> Result<Scattered<L>, ApiError> {
        let local = async {
            match self.plan.local {
                true => Some(local.await),
                false => None,
            }
        };
        // Boxed: both parts are deep futures, and each handler's own future would nest them
        // past the compiler's depth limit.
        let (local, answers) = tokio::join!(Box::pin(local), Box::pin(self.call_remote()));
        let local = local.transpose()?;
        let (answered, missed) = split(answers?);
        Ok(Scattered {
            local,
            answered,
            missed,
        })
    }

    fn current(&self) -> &str {
        &self.state.federation.sites.current
    }

    /// Sends the request to each remote site of the plan at once, with the caller's reach (a
    /// caller whose session check was deferred is confirmed first: its authority does not
    /// travel).
    async fn call_remote(&self) -> Result<Answers, ApiError> {
        if self.plan.remote.is_empty() {
            return Ok(Answers::new());
        }
        self.state.iam.confirm(self.caller).await?;
        let token = self.state.iam.federation_token_for(self.caller)?;
        Ok(self
            .state
            .federation
            .call_each(&self.plan.remote, &self.request, &token)
            .await)
    }

    /// As [`Self::call_remote`], with each successful answer's body still arriving.
    async fn call_remote_streaming(
        &self,
    ) -> Result<BTreeMap<String, Result<Received, SiteFailure>>, ApiError> {
        if self.plan.remote.is_empty() {
            return Ok(BTreeMap::new());
        }
        self.state.iam.confirm(self.caller).await?;
        let token = self.state.iam.federation_token_for(self.caller)?;
        Ok(self
            .state
            .federation
            .call_each_streaming(&self.plan.remote, &self.request, &token)
            .await)
    }
}

impl Scatter<'_, Read> {
    /// A listing over the selected sites: this site's items from `local`, the others' from
    /// their answers, in that order.
    pub async fn gather<T: DeserializeOwned>(
        &self,
        local: impl Future<Output = Result<Vec<T>, ApiError>>,
    ) -> Result<Gathered<T>, ApiError> {
        let parts = self.run(local).await?;
        let mut reached: Vec<String> = parts.answered.keys().cloned().collect();
        if self.plan.local {
            reached.push(self.current().to_string());
        }
        let missing = self.judge(&reached, &parts.missed)?;
        let mut items = parts.local.unwrap_or_default();
        for (site, answer) in &parts.answered {
            items.extend(decoded::<Vec<T>>(site, answer)?);
        }
        Ok(Gathered { items, missing })
    }

    /// Each reached site's answer, decoded as one `T` (this site's from `local`), by site name,
    /// and the sites left out.
    pub async fn collect<T: DeserializeOwned>(
        &self,
        local: impl Future<Output = Result<T, ApiError>>,
    ) -> Result<(BTreeMap<String, T>, Missing), ApiError> {
        let parts = self.run(local).await?;
        let mut reached: Vec<String> = parts.answered.keys().cloned().collect();
        if self.plan.local {
            reached.push(self.current().to_string());
        }
        let missing = self.judge(&reached, &parts.missed)?;
        let mut answers = BTreeMap::new();
        if let Some(local) = parts.local {
            answers.insert(self.current().to_string(), local);
        }
        for (site, answer) in &parts.answered {
            answers.insert(site.clone(), decoded::<T>(site, answer)?);
        }
        Ok((answers, missing))
    }

    /// As [`Self::gather`], with each other site's JSON array still arriving: the parts of one
    /// array in site name order (`local` gives this site's items, comma-separated without
    /// brackets). A site that refuses fails the whole listing.
    pub async fn stream(
        &self,
        local: impl Future<Output = Result<Bytes, ApiError>>,
    ) -> Result<(Vec<Part>, Missing), ApiError> {
        let local = async {
            match self.plan.local {
                true => Some(local.await),
                false => None,
            }
        };
        let (local, answers) = tokio::join!(local, Box::pin(self.call_remote_streaming()));
        let mut arriving = BTreeMap::new();
        let mut missed = BTreeMap::new();
        for (site, received) in answers? {
            match received {
                Ok(Received::Streaming(answer)) => {
                    arriving.insert(site, answer);
                }
                Ok(Received::Whole(answer)) => return Err(refusal(&site, &answer)),
                Err(failure) => {
                    missed.insert(site, failure);
                }
            }
        }
        let mut reached: Vec<String> = arriving.keys().cloned().collect();
        if self.plan.local {
            reached.push(self.current().to_string());
        }
        let missing = self.judge(&reached, &missed)?;
        let mut parts: BTreeMap<String, Part> = BTreeMap::new();
        if let Some(items) = local.transpose()? {
            parts.insert(self.current().to_string(), Part::Ready(items));
        }
        for (site, answer) in arriving {
            parts.insert(site.clone(), Part::Arriving { site, answer });
        }
        Ok((parts.into_values().collect(), missing))
    }

    /// The request at the plan's one remote site, as the next part of a page this site has
    /// begun (so this site is named as reached): its answer, or `None` when it was not reached
    /// and the caller allows a partial answer.
    pub async fn ask_the_one_site(&self) -> Result<Option<SiteAnswer>, ApiError> {
        let parts = self.run(std::future::ready(Ok(()))).await?;
        self.judge(
            std::slice::from_ref(&self.current().to_string()),
            &parts.missed,
        )?;
        Ok(parts.answered.into_values().next())
    }

    /// A read's verdict on the sites it missed: 503 naming each site's outcome, or, when the
    /// caller allows a partial answer, the sites left out.
    fn judge(
        &self,
        answered: &[String],
        missed: &BTreeMap<String, SiteFailure>,
    ) -> Result<Missing, ApiError> {
        if missed.is_empty() || self.strategy.allow_partial {
            return Ok(Missing(missed.keys().cloned().collect()));
        }
        Err(ApiError::SitesUnavailable {
            message: format!(
                "could not reach site {}; no partial list is given unless asked with allow_partial=true",
                names(missed)
            ),
            sites: outcomes(answered, missed),
            task_id: None,
        })
    }
}

impl Scatter<'_, Write> {
    /// Keeps a task that goes on trying the sites a write missed, for a write whose answer
    /// names its pending sites itself (a lock, a containment): the task's id, none when no
    /// site was missed.
    pub async fn keep_trying_missed(
        &self,
        done: BTreeMap<String, serde_json::Value>,
        missed: &BTreeMap<String, SiteFailure>,
    ) -> Result<Option<Uuid>, ApiError> {
        if missed.is_empty() {
            return Ok(None);
        }
        let (state, caller, kind) = (self.state, self.caller, self.strategy.kind);
        let task = new_task(state, caller, kind, self.request.clone(), done, missed);
        let task_id = task.task_id;
        state.site.submit_task(task).await?;
        tracing::warn!(caller = %caller.describe(), kind = kind.name(), %task_id, sites = %names(missed), "a write missed sites; a task keeps trying");
        Ok(Some(task_id))
    }

    /// A write's verdict once what each reached site did is in `done` (shaped by [`answer`],
    /// like a task's later answers): a site missed is a 503 with each site's outcome, and a
    /// task that keeps trying there; a write that reached several sites, when the strategy
    /// records them, the id of its record.
    pub async fn settle(
        &self,
        done: BTreeMap<String, serde_json::Value>,
        missed: BTreeMap<String, SiteFailure>,
    ) -> Result<Option<Uuid>, ApiError> {
        let (state, caller, kind) = (self.state, self.caller, self.strategy.kind);
        if !missed.is_empty() {
            let request = self.request.clone();
            return Err(keep_trying(state, caller, kind, request, done, missed).await);
        }
        if self.strategy.record_wide && done.len() > 1 {
            let request = self.request.clone();
            return Ok(Some(record_done(state, caller, kind, request, done).await?));
        }
        Ok(None)
    }
}

/// Splits remote answers into those given and the sites that gave none.
fn split(answers: Answers) -> (BTreeMap<String, SiteAnswer>, BTreeMap<String, SiteFailure>) {
    let mut answered = BTreeMap::new();
    let mut missed = BTreeMap::new();
    for (site, answer) in answers {
        match answer {
            Ok(answer) => {
                answered.insert(site, answer);
            }
            Err(failure) => {
                missed.insert(site, failure);
            }
        }
    }
    (answered, missed)
}

/// A remote site's refusal, as this node's own answer (its status, its message, the site named).
pub fn refusal(site: &str, answer: &SiteAnswer) -> ApiError {
    let message = format!("site {site}: {}", answer.message());
    match answer.status {
        400 => ApiError::InvalidArgument(message),
        401 => ApiError::Unauthorized(message),
        403 => ApiError::Forbidden(message),
        404 => ApiError::NotFound(message),
        409 => ApiError::WrongState(message),
        _ => ApiError::Server(format!("{message} (HTTP {})", answer.status)),
    }
}

/// A successful remote answer's body, or the site's refusal as an error.
pub fn decoded<T: DeserializeOwned>(site: &str, answer: &SiteAnswer) -> Result<T, ApiError> {
    if !answer.is_success() {
        return Err(refusal(site, answer));
    }
    serde_json::from_slice(&answer.body).map_err(|e| {
        ApiError::Server(format!(
            "site {site} sent an answer that does not decode: {e}"
        ))
    })
}

/// Keeps the record of a write that reached every site (a completed task), for the audit of
/// wide operations; its id.
async fn record_done(
    state: &ApiState,
    caller: &Caller,
    kind: TaskKind,
    request: SiteRequest,
    done: BTreeMap<String, serde_json::Value>,
) -> Result<Uuid, ApiError> {
    let task = new_task(state, caller, kind, request, done, &BTreeMap::new());
    let task_id = task.task_id;
    state.site.submit_task(task).await?;
    Ok(task_id)
}

fn new_task(
    state: &ApiState,
    caller: &Caller,
    kind: TaskKind,
    request: SiteRequest,
    done: BTreeMap<String, serde_json::Value>,
    missed: &BTreeMap<String, SiteFailure>,
) -> NewTask {
    NewTask {
        task_id: Uuid::now_v7(),
        kind,
        request,
        submitted_from: state.node_label.clone(),
        on_behalf_of: caller.describe(),
        scope_domain: match caller.scope() {
            Some(AdminScope::Domain(domain)) => Some(domain.to_string()),
            _ => None,
        },
        done,
        pending: missed
            .iter()
            .map(|(s, f)| (s.clone(), f.to_string()))
            .collect(),
    }
}

/// A write that missed some sites: a task keeps trying there, and the caller gets a 503 with
/// each site's outcome and the task's id. `done` holds what the reached sites did (shaped by
/// [`answer`], like the task's later answers).
async fn keep_trying(
    state: &ApiState,
    caller: &Caller,
    kind: TaskKind,
    request: SiteRequest,
    done: BTreeMap<String, serde_json::Value>,
    missed: BTreeMap<String, SiteFailure>,
) -> ApiError {
    let reached: Vec<String> = done.keys().cloned().collect();
    let mut sites = outcomes(&reached, &missed);
    for (site, done) in &done {
        sites.insert(site.clone(), format!("done: {}", answer::summary(done)));
    }
    let task = new_task(state, caller, kind, request, done, &missed);
    let task_id = task.task_id;
    let submitted = state.site.submit_task(task).await;
    let missed_names = names(&missed);
    match submitted {
        Ok(_) => {
            tracing::warn!(caller = %caller.describe(), kind = kind.name(), %task_id, sites = %missed_names, "a write missed sites; a task keeps trying");
            ApiError::SitesUnavailable {
                message: format!(
                    "could not reach site {missed_names}; the sites reached are done, and task {task_id} keeps trying the others (GET /tasks/{task_id})"
                ),
                sites,
                task_id: Some(task_id),
            }
        }
        Err(e) => {
            let why = e.to_string();
            tracing::error!(kind = kind.name(), sites = %missed_names, error = %why, "a write missed sites and no task could be kept");
            ApiError::SitesUnavailable {
                message: format!(
                    "could not reach site {missed_names}, and no task could be kept to retry there ({why}); send the request again"
                ),
                sites,
                task_id: None,
            }
        }
    }
}

fn names(missed: &BTreeMap<String, SiteFailure>) -> String {
    missed.keys().cloned().collect::<Vec<_>>().join(", ")
}

fn outcomes(
    answered: &[String],
    missed: &BTreeMap<String, SiteFailure>,
) -> BTreeMap<String, String> {
    let mut sites: BTreeMap<String, String> = answered
        .iter()
        .map(|s| (s.clone(), "ok".to_string()))
        .collect();
    for (site, failure) in missed {
        sites.insert(site.clone(), failure.to_string());
    }
    sites
}
