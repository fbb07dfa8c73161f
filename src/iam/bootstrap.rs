//! The deployment's first start: the master domain, its `admins` group and its user `admin`.
//!
//! Run by the directory's seed node until the master domain exists. A generated password is
//! handed back once, for the command line to print; it is never logged.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use uuid::Uuid;

use super::password::random_hex;
use super::{Iam, IamError};
use crate::config::Secret;
use crate::state::directory::NewUser;

pub const FIRST_ADMIN: &str = "admin";

/// Tries until the master domain exists (made here or elsewhere) or the node stops.
pub async fn run(
    iam: Arc<Iam>,
    password: Option<Secret>,
    generated: oneshot::Sender<String>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        if iam
            .directory
            .read_local(|d| d.domain(&iam.master_domain).is_some())
        {
            return;
        }
        match attempt(&iam, password.clone()).await {
            Ok(Some(fresh)) => {
                let _ = generated.send(fresh);
                return;
            }
            Ok(None) => return,
            Err(e) => tracing::debug!(error = %e, "directory bootstrap not done yet"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// `Some(password)` when this call created the administrator with a generated password.
async fn attempt(iam: &Iam, password: Option<Secret>) -> Result<Option<String>, IamError> {
    let (password, is_generated) = match password {
        Some(given) => (given.0, false),
        None => (
            random_hex(16).map_err(|e| IamError::Bootstrap(e.to_string()))?,
            true,
        ),
    };
    let admin = NewUser {
        user_id: Uuid::now_v7(),
        domain: iam.master_domain.clone(),
        login: FIRST_ADMIN
            .parse()
            .map_err(|e: crate::model::NameError| IamError::Bootstrap(e.to_string()))?,
        password_hash: iam.hasher.hash(&password).await?,
        properties: Default::default(),
    };
    let created = iam
        .directory
        .bootstrap(iam.master_domain.clone(), admin)
        .await?;
    match created {
        Ok(true) => {
            tracing::info!(domain = %iam.master_domain, "created the master domain and its administrator");
            Ok(is_generated.then_some(password))
        }
        _ => Ok(None),
    }
}
