//! `sessionplane serve`.

use std::path::Path;
use std::time::Duration;

use crate::config::{Config, Secret};
use crate::iam::bootstrap;
use crate::node::{self, Listeners};

pub async fn run(config_path: Option<&Path>) -> anyhow::Result<()> {
    let mut config = match config_path {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    config.initial_admin_password = std::env::var("SESSIONPLANE_ADMIN_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty())
        .map(Secret);
    let mut stop = super::StopSignals::install()?;
    let listeners = Listeners::bind(&config).await?;
    let mut node = node::start(config, listeners, crate::api::service()).await?;
    if let Some(generated) = node.generated_admin_password.take() {
        let admin = format!("{}@{}", bootstrap::FIRST_ADMIN, node.iam.master_domain);
        tokio::spawn(async move {
            if let Ok(password) = generated.await {
                crate::say!(
                    "First start: administrator {admin}, password {password}\n(shown once; \
                     set SESSIONPLANE_ADMIN_PASSWORD on a first start to choose it)"
                );
            }
        });
    }
    let ready = node.wait_until_ready(Duration::from_secs(30));
    tokio::select! {
        ready = ready => {
            if ready {
                tracing::info!(api = %node.api_addr, "ready");
            } else {
                tracing::warn!("no site leader or no directory after 30 s; still trying (are the other nodes up?)");
            }
        }
        _ = stop.recv() => {
            node.shutdown().await;
            return Ok(());
        }
    }
    tokio::select! {
        _ = stop.recv() => {}
        reason = node.failed() => {
            // Exit non-zero so that the supervisor (systemd, Docker, Kubernetes) restarts it.
            tracing::error!(%reason, "a Raft group stopped; exiting");
            node.shutdown().await;
            anyhow::bail!("a Raft group stopped: {reason}");
        }
    }
    tracing::info!("stopping");
    node.shutdown().await;
    Ok(())
}
