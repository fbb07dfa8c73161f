//! Whether each other site answers: a probe of its site group's health every few seconds, kept
//! for the health checks and the metrics. Probes never fan out (a site's own health check is
//! local), so two sites probing each other never loop.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::sync::watch;

use super::{Federation, SiteRequest, Verb};

/// How often each other site is probed.
pub const PROBE_EVERY: Duration = Duration::from_secs(5);

/// The component a probe asks a site about: its own site group.
pub const PROBED_COMPONENT: &str = "Raft site group";

/// What the last probe of a site found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reach {
    /// Not probed yet.
    Unknown,
    /// It answered; its site group is healthy (or degraded, but serving).
    Up,
    /// It answered, but its site group is unhealthy; why.
    Ailing(String),
    /// No node of it answered; why.
    Down(String),
}

#[derive(Default)]
pub struct SiteReachability {
    sites: RwLock<BTreeMap<String, Reach>>,
}

impl SiteReachability {
    pub fn get(&self, site: &str) -> Reach {
        self.sites
            .read()
            .ok()
            .and_then(|s| s.get(site).cloned())
            .unwrap_or(Reach::Unknown)
    }

    fn set(&self, site: &str, reach: Reach) {
        if let Ok(mut sites) = self.sites.write() {
            sites.insert(site.to_string(), reach);
        }
    }
}

/// Probes every other site until `stop`; `token` signs each round's requests.
pub async fn run(
    federation: Arc<Federation>,
    reach: Arc<SiteReachability>,
    token: impl Fn() -> Option<String> + Send + 'static,
    mut stop: watch::Receiver<bool>,
) {
    let others: Vec<String> = federation
        .sites
        .known
        .iter()
        .filter(|s| **s != federation.sites.current)
        .cloned()
        .collect();
    if others.is_empty() {
        return;
    }
    let path = format!(
        "/healthcheck/checks/{}",
        PROBED_COMPONENT.replace(' ', "%20")
    );
    let request = SiteRequest::new(Verb::Get, path);
    loop {
        if let Some(token) = token() {
            let probes = others.iter().map(|site| {
                let (federation, request, token) = (&federation, &request, &token);
                async move { (site, federation.call(site, request, token).await) }
            });
            for (site, answer) in futures_util::future::join_all(probes).await {
                let found = match answer {
                    Ok(answer) if answer.is_success() => Reach::Up,
                    Ok(answer) => Reach::Ailing(answer.message()),
                    Err(failure) => Reach::Down(failure.to_string()),
                };
                reach.set(site, found);
            }
        }
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(PROBE_EVERY) => {}
        }
    }
}
