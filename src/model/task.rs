//! Durable tasks: writes that could not reach every selected site, kept in the site's group
//! (so they survive any node's restart) and retried by the site leader until each site answers.
//!
//! This module owns the task record and its life cycle (James's statuses) and the shape of a
//! site's answer in a report ([`answer`]); the site state machine stores the records
//! (`state::site::tasks`), the node's task runner drives them, and the api only reads and
//! cancels. It must not touch anything but other records.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::model::SiteRequest;

/// How long a finished task is kept for its report before the site's purge forgets it.
pub const KEEP_FINISHED_MS: u64 = 7 * 24 * 3600 * 1000;

/// The longest a site's answer is kept in a task's report.
const MAX_ANSWER_CHARS: usize = 1_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TaskKind {
    SessionsLogout,
    SessionKill,
    ChannelsDisconnect,
    CertificatesReload,
    LockPlace,
    LockLift,
    IncidentContain,
}

impl TaskKind {
    pub fn name(self) -> &'static str {
        match self {
            Self::SessionsLogout => "sessions-logout",
            Self::SessionKill => "session-kill",
            Self::ChannelsDisconnect => "channels-disconnect",
            Self::CertificatesReload => "certificates-reload",
            Self::LockPlace => "lock-place",
            Self::LockLift => "lock-lift",
            Self::IncidentContain => "incident-contain",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TaskStatus {
    Waiting,
    InProgress,
    Completed,
    Failed,
    Canceled,
}

impl TaskStatus {
    pub fn name(self) -> &'static str {
        match self {
            Self::Waiting => "waiting",
            Self::InProgress => "inProgress",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Canceled => "canceled",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Waiting,
            Self::InProgress,
            Self::Completed,
            Self::Failed,
            Self::Canceled,
        ]
        .into_iter()
        .find(|s| s.name() == text)
    }

    pub fn is_finished(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Canceled)
    }
}

/// Where a task stands at one site.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SiteProgress {
    /// Still to reach; `attempts` made so far.
    Pending {
        attempts: u32,
        last_error: Option<String>,
    },
    /// The site answered; what it did, as [`answer`] shapes it.
    Done { answer: Value },
    /// The site refused the request; it will not be tried again.
    Refused { reason: String },
}

/// What one attempt at one site came to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Attempt {
    Answered(Value),
    Refused(String),
    Unreachable(String),
}

/// A task as submitted: the request to deliver to each site still pending.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTask {
    pub task_id: Uuid,
    pub kind: TaskKind,
    pub request: SiteRequest,
    /// The node that took the request, `name@host`.
    pub submitted_from: String,
    /// Who asked, and the domain a domain administrator is limited to.
    pub on_behalf_of: String,
    pub scope_domain: Option<String>,
    /// Sites that already answered when the request was taken, with what they did.
    pub done: BTreeMap<String, Value>,
    /// Sites the request did not reach, with why.
    pub pending: BTreeMap<String, String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    pub task_id: Uuid,
    pub kind: TaskKind,
    pub status: TaskStatus,
    pub request: SiteRequest,
    pub submitted_from: String,
    pub executed_on: Option<String>,
    pub on_behalf_of: String,
    pub scope_domain: Option<String>,
    pub sites: BTreeMap<String, SiteProgress>,
    pub submitted_at_ms: u64,
    pub started_at_ms: Option<u64>,
    pub completed_at_ms: Option<u64>,
    pub failed_at_ms: Option<u64>,
    pub canceled_at_ms: Option<u64>,
}

impl Task {
    pub fn submitted(new: NewTask, at_ms: u64) -> Self {
        let done = new
            .done
            .into_iter()
            .map(|(site, answer)| (site, SiteProgress::Done { answer }));
        let pending = new.pending.into_iter().map(|(site, error)| {
            let progress = SiteProgress::Pending {
                attempts: 1,
                last_error: Some(error),
            };
            (site, progress)
        });
        let mut task = Self {
            task_id: new.task_id,
            kind: new.kind,
            status: TaskStatus::Waiting,
            request: new.request,
            submitted_from: new.submitted_from,
            executed_on: None,
            on_behalf_of: new.on_behalf_of,
            scope_domain: new.scope_domain,
            sites: done.chain(pending).collect(),
            submitted_at_ms: at_ms,
            started_at_ms: None,
            completed_at_ms: None,
            failed_at_ms: None,
            canceled_at_ms: None,
        };
        task.settle(at_ms);
        task
    }

    /// The sites still to reach.
    pub fn pending_sites(&self) -> Vec<String> {
        self.sites
            .iter()
            .filter(|(_, p)| matches!(p, SiteProgress::Pending { .. }))
            .map(|(site, _)| site.clone())
            .collect()
    }

    /// Records an attempt at `site` made by `node`; ignored once the task is finished.
    pub fn record(&mut self, site: &str, attempt: Attempt, node: &str, at_ms: u64) {
        if self.status.is_finished() {
            return;
        }
        let Some(progress) = self.sites.get_mut(site) else {
            return;
        };
        let SiteProgress::Pending { attempts, .. } = progress else {
            return;
        };
        let attempts = *attempts + 1;
        *progress = match attempt {
            Attempt::Answered(answer) => SiteProgress::Done { answer },
            Attempt::Refused(reason) => SiteProgress::Refused {
                reason: truncate(reason),
            },
            Attempt::Unreachable(error) => SiteProgress::Pending {
                attempts,
                last_error: Some(truncate(error)),
            },
        };
        self.started_at_ms.get_or_insert(at_ms);
        self.executed_on = Some(node.to_string());
        self.status = TaskStatus::InProgress;
        self.settle(at_ms);
    }

    /// When the task finished, if it has.
    pub fn finished_at_ms(&self) -> Option<u64> {
        self.completed_at_ms
            .or(self.failed_at_ms)
            .or(self.canceled_at_ms)
    }

    /// Whether the site's purge may forget it at `now_ms`.
    pub fn is_stale(&self, now_ms: u64) -> bool {
        self.finished_at_ms()
            .is_some_and(|at| at.saturating_add(KEEP_FINISHED_MS) <= now_ms)
    }

    pub fn cancel(&mut self, at_ms: u64) {
        if !self.status.is_finished() {
            self.status = TaskStatus::Canceled;
            self.canceled_at_ms = Some(at_ms);
        }
    }

    /// Finishes the task once no site is pending: completed, or failed if a site refused.
    fn settle(&mut self, at_ms: u64) {
        if !self.pending_sites().is_empty() {
            return;
        }
        let refused = self
            .sites
            .values()
            .any(|p| matches!(p, SiteProgress::Refused { .. }));
        match refused {
            true => {
                self.status = TaskStatus::Failed;
                self.failed_at_ms = Some(at_ms);
            }
            false => {
                self.status = TaskStatus::Completed;
                self.completed_at_ms = Some(at_ms);
            }
        }
    }
}

/// What a site did with a task's request, in one shape per kind of task, whether the request
/// reached the site at once or later through the task: a report reads the same for every site.
pub mod answer {
    use super::{json, Value};

    /// Sessions or channels closed there; `None` when the site's answer does not count them
    /// (a channel disconnection answers 204 with no body).
    pub fn closed(count: Option<u64>) -> Value {
        json!({ "closed": count })
    }

    /// Whether the site held the session (and so ended it).
    pub fn killed(found: bool) -> Value {
        json!({ "killed": found })
    }

    pub fn reloaded() -> Value {
        json!({ "reloaded": true })
    }

    pub fn placed() -> Value {
        json!({ "placed": true })
    }

    /// Whether the site held the lock (and so lifted it).
    pub fn lifted(found: bool) -> Value {
        json!({ "lifted": found })
    }

    /// The answer as one short line, for a 503's outcome per site (`closed 1`).
    pub fn summary(answer: &Value) -> String {
        let Some(fields) = answer.as_object() else {
            return answer.to_string();
        };
        let shown = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
        let parts: Vec<String> = fields
            .iter()
            .map(|(key, value)| format!("{key} {}", shown(value)))
            .collect();
        parts.join(", ")
    }
}

fn truncate(mut text: String) -> String {
    if text.chars().count() > MAX_ANSWER_CHARS {
        text = text.chars().take(MAX_ANSWER_CHARS).collect::<String>() + "…";
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::site_request::Verb;

    fn new_task() -> NewTask {
        NewTask {
            task_id: Uuid::now_v7(),
            kind: TaskKind::SessionsLogout,
            request: SiteRequest::new(Verb::Post, "/x"),
            submitted_from: "c1@h".into(),
            on_behalf_of: "admin@master.domain".into(),
            scope_domain: None,
            done: BTreeMap::from([("central".into(), answer::closed(Some(2)))]),
            pending: BTreeMap::from([
                ("east".into(), "refused".into()),
                ("west".into(), "refused".into()),
            ]),
        }
    }

    #[test]
    fn a_task_completes_when_every_site_answered() {
        let mut task = Task::submitted(new_task(), 10);
        assert_eq!(task.status, TaskStatus::Waiting);
        assert_eq!(task.pending_sites(), vec!["east", "west"]);
        task.record("east", Attempt::Unreachable("timeout".into()), "c2@h", 20);
        assert_eq!(task.status, TaskStatus::InProgress);
        assert_eq!(task.started_at_ms, Some(20));
        assert!(matches!(
            task.sites["east"],
            SiteProgress::Pending { attempts: 2, .. }
        ));
        task.record(
            "east",
            Attempt::Answered(answer::closed(Some(1))),
            "c2@h",
            30,
        );
        task.record(
            "west",
            Attempt::Answered(answer::closed(Some(0))),
            "c3@h",
            40,
        );
        assert_eq!(task.status, TaskStatus::Completed);
        assert_eq!(task.completed_at_ms, Some(40));
        assert_eq!(task.executed_on.as_deref(), Some("c3@h"));
        task.record("west", Attempt::Refused("late".into()), "c3@h", 50);
        assert_eq!(
            task.status,
            TaskStatus::Completed,
            "a finished task stays finished"
        );
    }

    #[test]
    fn a_refusal_fails_the_task_and_a_cancel_stops_it() {
        let mut task = Task::submitted(new_task(), 10);
        task.record("east", Attempt::Refused("no such user".into()), "c1@h", 20);
        assert_eq!(task.status, TaskStatus::InProgress);
        task.record("west", Attempt::Answered(answer::reloaded()), "c1@h", 30);
        assert_eq!(task.status, TaskStatus::Failed);
        let mut other = Task::submitted(new_task(), 10);
        other.cancel(15);
        assert_eq!(other.status, TaskStatus::Canceled);
        other.record("east", Attempt::Answered(answer::reloaded()), "c1@h", 20);
        assert_eq!(
            other.pending_sites().len(),
            2,
            "a canceled task is not advanced"
        );
        assert_eq!(
            TaskStatus::parse("inProgress"),
            Some(TaskStatus::InProgress)
        );
        assert_eq!(TaskStatus::parse("running"), None);
    }
}
