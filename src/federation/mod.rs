//! Sites: which ones a request selects (the `sites` parameter) and the calls that fan a request
//! out to the other sites' api listeners. Owns nothing of a site's state: the local part of a
//! request is the handler's, and what a site answered is the handler's to merge.

pub mod remote;
pub mod selector;
pub mod splice;
pub mod watch;

use std::collections::BTreeMap;

pub use remote::{Received, RemoteSites, SiteAnswer, SiteFailure, SiteRequest, SiteStream, Verb};
pub use selector::{Plan, SelectorError, SiteSelector, Sites};

use crate::config::{Config, ConfigError};

pub struct Federation {
    pub sites: Sites,
    remote: RemoteSites,
}

/// Each remote site's answer, or why it gave none, by site name.
pub type Answers = BTreeMap<String, Result<SiteAnswer, SiteFailure>>;

impl Federation {
    pub fn new(
        config: &Config,
        telemetry: std::sync::Arc<crate::telemetry::Telemetry>,
    ) -> Result<Self, ConfigError> {
        Ok(Self {
            sites: Sites::from_config(config),
            remote: RemoteSites::new(config, telemetry)?,
        })
    }

    /// Sends `request` (made for each site alone) to every site of `sites` at once.
    pub async fn call_each(&self, sites: &[String], request: &SiteRequest, token: &str) -> Answers {
        let calls = sites.iter().map(|site| {
            let request = request.for_site(site);
            async move { (site.clone(), self.remote.call(site, &request, token).await) }
        });
        futures_util::future::join_all(calls)
            .await
            .into_iter()
            .collect()
    }

    /// As [`Self::call_each`], with each successful answer's body still arriving.
    pub async fn call_each_streaming(
        &self,
        sites: &[String],
        request: &SiteRequest,
        token: &str,
    ) -> BTreeMap<String, Result<Received, SiteFailure>> {
        let calls = sites.iter().map(|site| {
            let request = request.for_site(site);
            async move {
                let received = self.remote.call_streaming(site, &request, token).await;
                (site.clone(), received)
            }
        });
        futures_util::future::join_all(calls)
            .await
            .into_iter()
            .collect()
    }

    /// As [`Self::call`], with a successful answer's body still arriving.
    pub async fn call_streaming(
        &self,
        site: &str,
        request: &SiteRequest,
        token: &str,
    ) -> Result<Received, SiteFailure> {
        self.remote.call_streaming(site, request, token).await
    }

    /// Sends `request` (already made for `site` alone) to that site.
    pub async fn call(
        &self,
        site: &str,
        request: &SiteRequest,
        token: &str,
    ) -> Result<SiteAnswer, SiteFailure> {
        self.remote.call(site, request, token).await
    }
}
