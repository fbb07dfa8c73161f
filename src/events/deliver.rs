//! Delivering the site's feed to a receiver, on the site leader only: batches in feed order,
//! each recorded in the site's group once the receiver took it, so that the next leader (or
//! this one after a restart) goes on after the last batch recorded. At least once: a batch
//! whose record was lost to a leader change is sent again. A failed attempt is recorded too,
//! and retried after a wait that doubles up to the receiver's longest.
//!
//! Owns the delivery loop; what a batch looks like on the wire is each [`Sink`]'s.

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use uuid::Uuid;

use crate::config::events::DeliverySettings;
use crate::model::delivery::{DeliveryOutcome, SinkName};
use crate::state::site::feed::Entry;
use crate::state::site::SiteStore;

/// How often a follower looks whether it leads now.
const LEADER_POLL: Duration = Duration::from_millis(250);
/// The longest a receiver waits for an event it wants that is already in the feed.
const IDLE_WAIT: Duration = Duration::from_secs(1);
/// Events a receiver does not want are passed over in one record at most this often (or
/// when this many have gone by), rather than one record per batch looked at.
const SKIP_RECORD_EVERY: Duration = Duration::from_secs(2);
const SKIP_RECORD_AFTER: u64 = 10_000;
/// The longest stretch of the feed looked at for one batch.
const SCAN_MAX: usize = 100_000;

/// A receiver of the feed.
pub trait Sink: Send + Sync {
    fn name(&self) -> &SinkName;
    fn settings(&self) -> &DeliverySettings;
    /// Whether the receiver wants this event.
    fn wants(&self, entry: &Entry) -> bool;
    /// Sends one batch (in feed order); `Ok` once the receiver took it.
    fn send(&self, site: &str, batch: &[Entry]) -> impl Future<Output = Result<(), String>> + Send;
}

/// What a delivery loop reads and writes through.
pub struct Deliverer<S> {
    pub site_name: String,
    pub site: SiteStore,
    pub advanced: watch::Receiver<u64>,
    pub sink: S,
    pub telemetry: std::sync::Arc<crate::telemetry::Telemetry>,
    pub stop: watch::Receiver<bool>,
}

impl<S: Sink> Deliverer<S> {
    pub async fn run(mut self) {
        let mut failures = 0u32;
        let mut last_skip_record = tokio::time::Instant::now();
        loop {
            if *self.stop.borrow() {
                return;
            }
            if !self.site.group().is_leader() {
                failures = 0;
                self.pause(LEADER_POLL).await;
                continue;
            }
            let wait = match self.round(&mut last_skip_record).await {
                Ok(Round::Sent) => {
                    failures = 0;
                    Duration::ZERO
                }
                Ok(Round::Idle) => {
                    failures = 0;
                    self.wait_for_events().await;
                    Duration::ZERO
                }
                Err(Attempt::Failed(error)) => {
                    failures = failures.saturating_add(1);
                    self.telemetry.delivery(&self.sink.name().name, "failed", 1);
                    tracing::warn!(receiver = %self.sink.name().name, error = %error, "a delivery failed; will retry");
                    let outcome = DeliveryOutcome::Failed { error };
                    let _ = self
                        .site
                        .record_delivery(self.sink.name().clone(), outcome)
                        .await;
                    backoff(self.sink.settings(), failures)
                }
                // Not the leader any more, or the group busy: look again shortly.
                Err(Attempt::NotRecorded) => LEADER_POLL,
            };
            if !wait.is_zero() {
                self.pause(wait).await;
            }
        }
    }

    /// One batch: read where the delivery stands (after a barrier: what the last leader
    /// recorded is seen), send what follows, record it.
    async fn round(
        &mut self,
        last_skip_record: &mut tokio::time::Instant,
    ) -> Result<Round, Attempt> {
        let name = self.sink.name().clone();
        let (delivery, view) = self
            .site
            .read(|state, _| (state.delivery(&name), state.feed_view()))
            .await
            .map_err(|_| Attempt::NotRecorded)?;
        let Some(delivery) = delivery else {
            // First configured: from the feed's end on.
            let outcome = DeliveryOutcome::Started {
                delivery_id: Uuid::now_v7(),
                from_seq: view.last_seq(),
            };
            self.site
                .record_delivery(name, outcome)
                .await
                .map_err(|_| Attempt::NotRecorded)?;
            return Ok(Round::Sent);
        };
        let settings = self.sink.settings();
        let mut batch = Vec::new();
        let mut upto = delivery.delivered_seq;
        for entry in view.after(delivery.delivered_seq).take(SCAN_MAX) {
            let seq = entry.seq;
            if self.sink.wants(&entry) {
                if batch.len() == settings.batch_max {
                    break;
                }
                batch.push(entry);
            }
            upto = seq;
        }
        if batch.is_empty() {
            let passed = upto - delivery.delivered_seq;
            let due =
                last_skip_record.elapsed() >= SKIP_RECORD_EVERY || passed >= SKIP_RECORD_AFTER;
            if passed > 0 && due {
                *last_skip_record = tokio::time::Instant::now();
                self.record(upto, 0).await?;
            }
            return Ok(Round::Idle);
        }
        let timeout = Duration::from_millis(settings.timeout_ms);
        match tokio::time::timeout(timeout, self.sink.send(&self.site_name, &batch)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Err(Attempt::Failed(error)),
            Err(_) => {
                return Err(Attempt::Failed(format!(
                    "no answer within {} ms",
                    settings.timeout_ms
                )))
            }
        }
        let sent = batch.len() as u32;
        self.record(upto, sent).await?;
        self.telemetry
            .delivery(&self.sink.name().name, "delivered", u64::from(sent));
        Ok(Round::Sent)
    }

    async fn record(&self, upto_seq: u64, events: u32) -> Result<(), Attempt> {
        let outcome = DeliveryOutcome::Delivered { upto_seq, events };
        self.site
            .record_delivery(self.sink.name().clone(), outcome)
            .await
            .map(|_| ())
            .map_err(|_| Attempt::NotRecorded)
    }

    async fn wait_for_events(&mut self) {
        self.advanced.borrow_and_update();
        tokio::select! {
            _ = self.advanced.changed() => {}
            _ = tokio::time::sleep(IDLE_WAIT) => {}
            _ = self.stop.changed() => {}
        }
    }

    async fn pause(&mut self, wait: Duration) {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = self.stop.changed() => {}
        }
    }
}

enum Round {
    Sent,
    Idle,
}

enum Attempt {
    Failed(String),
    NotRecorded,
}

/// The wait after the `failures`-th failed attempt in a row.
fn backoff(settings: &DeliverySettings, failures: u32) -> Duration {
    let doubled = settings
        .retry_initial_ms
        .saturating_mul(1u64 << failures.saturating_sub(1).min(20));
    Duration::from_millis(doubled.min(settings.retry_max_ms))
}

/// Whether `action` is among `patterns` (`*`, an action, or a prefix ending in `.*`); no
/// pattern at all wants everything.
pub fn action_wanted(patterns: &[String], action: &str) -> bool {
    patterns.is_empty()
        || patterns.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => action.starts_with(prefix),
            None => p == action,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_doubles_up_to_the_longest() {
        let settings = DeliverySettings {
            retry_initial_ms: 100,
            retry_max_ms: 1_000,
            ..DeliverySettings::default()
        };
        let waits: Vec<u128> = (1..=6).map(|n| backoff(&settings, n).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1_000, 1_000]);
        assert_eq!(backoff(&settings, u32::MAX).as_millis(), 1_000);
    }

    #[test]
    fn patterns_choose_the_actions() {
        let patterns = vec!["incident.*".to_string(), "session.ended".to_string()];
        assert!(action_wanted(&patterns, "incident.contain"));
        assert!(action_wanted(&patterns, "session.ended"));
        assert!(!action_wanted(&patterns, "session.created"));
        assert!(action_wanted(&[], "session.created"));
        assert!(action_wanted(&["*".to_string()], "user.create"));
    }
}
