//! Drives the site's tasks: on the site leader only, each pending site of each unfinished task
//! is tried again once its backoff has passed, and every attempt is recorded in the group, so
//! that whichever node leads next carries on where this one stopped.
//!
//! A service of the node: it reads and writes the site group only through `SiteStore`, and
//! reaches other sites only through the federation.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use uuid::Uuid;

use crate::federation::{Federation, SiteAnswer};
use crate::iam::Iam;
use crate::model::task::{answer, Attempt, Task, TaskKind};
use crate::state::SiteStore;

const ROUND: Duration = Duration::from_millis(200);

pub struct TaskRunner {
    pub site: SiteStore,
    pub federation: Arc<Federation>,
    pub iam: Arc<Iam>,
    pub node_label: String,
    pub retry_initial: Duration,
    pub retry_max: Duration,
}

/// When a pending site of a task is tried next, and the wait after that.
struct Backoff {
    next: Instant,
    wait: Duration,
}

impl TaskRunner {
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut backoff: HashMap<(Uuid, String), Backoff> = HashMap::new();
        loop {
            tokio::select! {
                _ = stop.changed() => return,
                _ = tokio::time::sleep(ROUND) => {}
            }
            if !self.site.group().is_leader() {
                backoff.clear();
                continue;
            }
            let due = self.due(&mut backoff);
            let attempts = due.iter().map(|(task, site)| self.attempt(task, site));
            for (task_id, site, attempt) in futures_util::future::join_all(attempts).await {
                let unreachable = matches!(attempt, Attempt::Unreachable(_));
                let recorded = self
                    .site
                    .record_task_attempt(task_id, site.clone(), attempt, self.node_label.clone())
                    .await;
                if let Err(e) = recorded {
                    tracing::warn!(%task_id, %site, error = %e, "could not record a task attempt");
                }
                let key = (task_id, site);
                match unreachable {
                    true => self.back_off(&mut backoff, key),
                    false => {
                        backoff.remove(&key);
                    }
                }
            }
        }
    }

    /// The (task, site) pairs whose next attempt is due.
    fn due(&self, backoff: &mut HashMap<(Uuid, String), Backoff>) -> Vec<(Arc<Task>, String)> {
        let now = Instant::now();
        let tasks = self.site.group().state().read(|s| s.tasks());
        let mut due = Vec::new();
        for task in tasks.values().filter(|t| !t.status.is_finished()) {
            for site in task.pending_sites() {
                let key = (task.task_id, site.clone());
                let entry = backoff.entry(key).or_insert_with(|| Backoff {
                    next: now,
                    wait: self.retry_initial,
                });
                if entry.next <= now {
                    due.push((task.clone(), site));
                }
            }
        }
        backoff.retain(|(id, _), _| tasks.get(id).is_some_and(|t| !t.status.is_finished()));
        due
    }

    fn back_off(&self, backoff: &mut HashMap<(Uuid, String), Backoff>, key: (Uuid, String)) {
        let entry = backoff.entry(key).or_insert_with(|| Backoff {
            next: Instant::now(),
            wait: self.retry_initial,
        });
        entry.next = Instant::now() + entry.wait;
        entry.wait = (entry.wait * 2).min(self.retry_max);
    }

    async fn attempt(&self, task: &Task, site: &str) -> (Uuid, String, Attempt) {
        let attempt = match self
            .iam
            .federation_token(&task.on_behalf_of, task.scope_domain.clone())
        {
            Err(e) => Attempt::Unreachable(format!("cannot sign the request: {e}")),
            Ok(token) => {
                let request = task.request.for_site(site);
                match self.federation.call(site, &request, &token).await {
                    Ok(answer) => judge(task.kind, &answer),
                    Err(failure) => Attempt::Unreachable(failure.to_string()),
                }
            }
        };
        if let Attempt::Answered(answer) = &attempt {
            tracing::info!(task = %task.task_id, kind = task.kind.name(), %site, %answer, "a task reached a site");
        }
        (task.task_id, site.to_string(), attempt)
    }
}

/// A site's answer to a task's request, shaped as the request's handler shapes a site it
/// reached at once: a session already gone from that site counts as done.
fn judge(kind: TaskKind, answer: &SiteAnswer) -> Attempt {
    match (answer.is_success(), kind, answer.status) {
        (true, TaskKind::SessionsLogout, _) => {
            let closed = serde_json::from_slice::<serde_json::Value>(&answer.body)
                .ok()
                .and_then(|body| body["closed"].as_u64());
            Attempt::Answered(answer::closed(closed))
        }
        (true, TaskKind::SessionKill, _) => Attempt::Answered(answer::killed(true)),
        (false, TaskKind::SessionKill, 404) => Attempt::Answered(answer::killed(false)),
        (true, TaskKind::ChannelsDisconnect, _) => Attempt::Answered(answer::closed(None)),
        (true, TaskKind::CertificatesReload, _) => Attempt::Answered(answer::reloaded()),
        (true, TaskKind::LockPlace, _) => Attempt::Answered(answer::placed()),
        (true, TaskKind::LockLift, _) => Attempt::Answered(answer::lifted(true)),
        (false, TaskKind::LockLift, 404) => Attempt::Answered(answer::lifted(false)),
        (true, TaskKind::IncidentContain, _) => {
            // The site's receipt names that site alone: its part is what the task keeps.
            let part = serde_json::from_slice::<serde_json::Value>(&answer.body)
                .ok()
                .and_then(|receipt| receipt["sites"].as_object()?.values().next().cloned());
            match part {
                Some(part) => Attempt::Answered(part),
                None => Attempt::Refused("the site's receipt names no site".into()),
            }
        }
        (false, _, _) => Attempt::Refused(format!("HTTP {}: {}", answer.status, answer.message())),
    }
}
