//! The node's part of the feed's life: a deliverer per configured receiver (each acts while
//! this node leads the site), and, on the leader, the trim of what the feed no longer keeps
//! (older than `[events] retention_secs`, or beyond `max_kept`, but not what a receiver has not
//! had yet while the feed is within `max_kept`) and of the deliveries of receivers no longer
//! configured.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::events::deliver::{Deliverer, Sink};
use crate::events::signals::{SignalsSink, SigningKey};
use crate::events::webhook::WebhookSink;
use crate::model::delivery::{SinkKind, SinkName};
use crate::state::SiteStore;
use crate::telemetry::Telemetry;

/// At most this many events leave the feed in one entry.
const TRIM_BATCH: u32 = 20_000;

/// The receivers of `config`, as their deliveries are named.
pub fn configured_sinks(config: &Config) -> BTreeSet<SinkName> {
    let hooks = config.webhook.iter().map(|h| SinkName {
        kind: SinkKind::Webhook,
        name: h.name.clone(),
    });
    let receivers = config.signals.receiver.iter().map(|r| SinkName {
        kind: SinkKind::Signals,
        name: r.name.clone(),
    });
    hooks.chain(receivers).collect()
}

/// What the deliverers read and write through.
pub struct Wiring<'a> {
    pub config: &'a Config,
    pub site: &'a SiteStore,
    pub advanced: &'a watch::Receiver<u64>,
    pub telemetry: &'a Arc<Telemetry>,
    pub signing_key: Option<Arc<SigningKey>>,
    pub stop: &'a watch::Receiver<bool>,
}

impl Wiring<'_> {
    fn deliverer<S: Sink + 'static>(&self, sink: S) -> JoinHandle<()> {
        let deliverer = Deliverer {
            site_name: self.config.site.clone(),
            site: self.site.clone(),
            advanced: self.advanced.clone(),
            sink,
            telemetry: self.telemetry.clone(),
            stop: self.stop.clone(),
        };
        tokio::spawn(deliverer.run())
    }
}

/// Starts the deliverers and the trim.
pub fn start(wiring: Wiring<'_>) -> Result<Vec<JoinHandle<()>>, String> {
    let (config, site, stop) = (wiring.config, wiring.site, wiring.stop);
    let mut tasks = Vec::new();
    for hook in &config.webhook {
        tasks.push(wiring.deliverer(WebhookSink::new(hook, &hook.secret()?)?));
    }
    if let Some(key) = &wiring.signing_key {
        for receiver in &config.signals.receiver {
            tasks.push(wiring.deliverer(SignalsSink::new(receiver, key.clone())?));
        }
    }
    let trim = Trim {
        site: site.clone(),
        retention_ms: config.events.retention_secs.saturating_mul(1000),
        max_kept: config.events.max_kept,
        sinks: configured_sinks(config),
    };
    let every = Duration::from_millis(config.events.trim_interval_ms);
    tasks.push(tokio::spawn(trim.run(every, stop.clone())));
    Ok(tasks)
}

struct Trim {
    site: SiteStore,
    retention_ms: u64,
    max_kept: u64,
    sinks: BTreeSet<SinkName>,
}

impl Trim {
    async fn run(self, every: Duration, mut stop: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.changed() => return,
            }
            if !self.site.group().is_leader() {
                continue;
            }
            if let Err(e) = self.once().await {
                tracing::debug!(error = %e, "trimming the event feed failed; will retry");
            }
        }
    }

    async fn once(&self) -> Result<(), crate::state::StoreError> {
        let now = sessionplane_cluster::now_ms();
        let (view, deliveries) = self
            .site
            .read(|state, _| (state.feed_view(), state.deliveries()))
            .await?;
        for gone in deliveries.keys().filter(|sink| !self.sinks.contains(*sink)) {
            self.site.forget_delivery(gone.clone()).await?;
        }
        let least_delivered = deliveries
            .iter()
            .filter(|(sink, _)| self.sinks.contains(*sink))
            .map(|(_, d)| d.delivered_seq)
            .min()
            .unwrap_or(u64::MAX);
        let by_time = view.before_time(now.saturating_sub(self.retention_ms));
        let by_count = view.last_seq().saturating_sub(self.max_kept);
        let upto = by_time.min(least_delivered).max(by_count);
        let Some(first) = view.first_seq() else {
            return Ok(());
        };
        if upto < first {
            return Ok(());
        }
        while self.site.trim_feed(upto, TRIM_BATCH).await? == TRIM_BATCH {}
        Ok(())
    }
}
