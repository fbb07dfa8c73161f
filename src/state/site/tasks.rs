//! The storage of task records (`model::task`): submission, attempts, cancellation and the
//! purge of finished ones. The records' life cycle is the model's; this module only keeps them.
//!
//! Owns the task map of [`SiteState`]; must not touch any other record.

use std::sync::Arc;

use uuid::Uuid;

use super::{SiteReply, SiteState};
use crate::model::task::{NewTask, Task};

impl SiteState {
    /// Every task, in id order (submission order).
    pub fn tasks(&self) -> imbl::OrdMap<Uuid, Arc<Task>> {
        self.tasks.clone()
    }

    pub fn task(&self, task_id: &Uuid) -> Option<Arc<Task>> {
        self.tasks.get(task_id).cloned()
    }

    pub(super) fn submit_task(&mut self, at_ms: u64, new: NewTask) -> SiteReply {
        let task = self
            .tasks
            .entry(new.task_id)
            .or_insert_with(|| Arc::new(Task::submitted(new, at_ms)));
        SiteReply::Task(Box::new((**task).clone()))
    }

    /// Forgets the finished tasks kept long enough.
    pub(super) fn forget_stale_tasks(&mut self, at_ms: u64) {
        let stale: Vec<Uuid> = self
            .tasks
            .values()
            .filter(|task| task.is_stale(at_ms))
            .map(|task| task.task_id)
            .collect();
        for task_id in stale {
            self.tasks.remove(&task_id);
        }
    }

    pub(super) fn update_task(
        &mut self,
        task_id: Uuid,
        change: impl FnOnce(&mut Task),
    ) -> SiteReply {
        match self.tasks.get_mut(&task_id) {
            Some(task) => {
                change(Arc::make_mut(task));
                SiteReply::Task(Box::new((**task).clone()))
            }
            None => SiteReply::NotFound,
        }
    }
}
