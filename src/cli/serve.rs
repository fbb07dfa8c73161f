//! `sessionplane serve`.

use std::path::Path;
use std::time::Duration;

use crate::config::Config;
use crate::node::{self, Listeners};

pub async fn run(config_path: Option<&Path>) -> anyhow::Result<()> {
    let config = match config_path {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    let mut stop = super::StopSignals::install()?;
    let listeners = Listeners::bind(&config).await?;
    let node = node::start(config, listeners).await?;
    let ready = node.wait_for_leader(Duration::from_secs(30));
    tokio::select! {
        elected = ready => {
            if elected {
                tracing::info!(api = %node.api_addr, "ready");
            } else {
                tracing::warn!("no site leader after 30 s; still trying (are the other site nodes up?)");
            }
        }
        _ = stop.recv() => {
            node.shutdown().await;
            return Ok(());
        }
    }
    stop.recv().await;
    tracing::info!("stopping");
    node.shutdown().await;
    Ok(())
}
