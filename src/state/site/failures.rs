//! Failed logins per `login@domain` and the login ban: each password check is reserved, in
//! log order, before it is made, and counts as a failure until a success clears it.
//!
//! Owns the failure maps of [`SiteState`]; must not touch any other record.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{SiteReply, SiteState};

/// The failed logins of one `login@domain` that still count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginFailures {
    pub count: u32,
    /// When the oldest of them stops counting (ms since the epoch); 0 when there is none.
    pub first_expires_at_ms: u64,
}

impl SiteState {
    /// The failed logins of `key` that still count at `now_ms`.
    pub fn login_failures(&self, key: &str, now_ms: u64) -> LoginFailures {
        let live: Vec<u64> = self
            .failures
            .get(key)
            .map(|times| times.iter().copied().filter(|t| *t > now_ms).collect())
            .unwrap_or_default();
        LoginFailures {
            count: live.len() as u32,
            first_expires_at_ms: live.first().copied().unwrap_or(0),
        }
    }

    pub(super) fn reserve_login_attempt(
        &mut self,
        key: &str,
        at_ms: u64,
        window_ms: u64,
        limit: u32,
    ) -> SiteReply {
        let counted = self.login_failures(key, at_ms);
        if counted.count >= limit {
            return SiteReply::LoginBanned(counted);
        }
        self.record_login_failure(key, at_ms, window_ms)
    }

    pub(super) fn clear_login_failures(&mut self, key: String) -> SiteReply {
        if let Some(times) = self.failures.remove(key.as_str()) {
            let key: Arc<str> = key.into();
            for until in times {
                self.failure_expiry.remove(&(until, key.clone()));
            }
        }
        SiteReply::LoginFailures(LoginFailures::default())
    }

    pub(super) fn record_login_failure(
        &mut self,
        key: &str,
        at_ms: u64,
        window_ms: u64,
    ) -> SiteReply {
        let key = self.intern(key);
        let until = at_ms.saturating_add(window_ms);
        self.failures.entry(key.clone()).or_default().push(until);
        self.failure_expiry.insert((until, key.clone()));
        SiteReply::LoginFailures(self.login_failures(&key, at_ms))
    }

    pub(super) fn forget_failures_until(&mut self, at_ms: u64, limit: usize) {
        let expired: Vec<(u64, Arc<str>)> = self
            .failure_expiry
            .iter()
            .take_while(|(until, _)| *until <= at_ms)
            .take(limit)
            .cloned()
            .collect();
        for (until, key) in expired {
            self.failure_expiry.remove(&(until, key.clone()));
            let emptied = match self.failures.get_mut(&key) {
                Some(times) => {
                    times.retain(|t| *t != until);
                    times.is_empty()
                }
                None => false,
            };
            if emptied {
                self.failures.remove(&key);
            }
        }
    }
}
