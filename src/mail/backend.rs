//! The node's side of [`MailBackend`]: passwords checked by `iam` under the login ban, channels
//! registered in the site group and held in [`LocalChannels`].

use std::net::SocketAddr;
use std::sync::Arc;

use sessionplane_cluster::Liveness;
use tokio::sync::watch;
use uuid::Uuid;

use super::channels::LocalChannels;
use super::{AuthError, BoxFuture, ChannelHandle, ChannelOpen, MailBackend, MailUser, OpenError};
use crate::iam::{Iam, IamError};
use crate::model::{NewChannel, Pid};
use crate::state::{SiteStore, StoreError};

pub struct NodeMailBackend {
    pub iam: Arc<Iam>,
    pub site: SiteStore,
    pub channels: Arc<LocalChannels>,
    pub liveness: Liveness,
    /// `name@host`.
    pub node_label: String,
    pub stop: watch::Receiver<bool>,
}

fn auth_error(error: IamError) -> AuthError {
    match error {
        IamError::Banned { retry_after_secs } => AuthError::Banned { retry_after_secs },
        IamError::BadCredentials => AuthError::Rejected,
        other => AuthError::Unavailable(other.to_string()),
    }
}

impl NodeMailBackend {
    async fn check(
        &self,
        username: &str,
        password: &str,
        remote: SocketAddr,
    ) -> Result<MailUser, AuthError> {
        // Without a domain no user can match: the empty domain is refused like any unknown
        // one, after the same hashing work.
        let (login, domain) = username.rsplit_once('@').unwrap_or((username, ""));
        let user = self
            .iam
            .check_password(domain, login, password, Some(remote.ip()))
            .await
            .map_err(auth_error)?;
        Ok(MailUser {
            username: user.address().to_string(),
            user_id: user.user_id,
        })
    }

    async fn register(&self, open: ChannelOpen) -> Result<ChannelHandle, OpenError> {
        let (address, open_remote) = (open.user.username.clone(), open.remote);
        let me = self.liveness.me();
        let channel_id = Uuid::now_v7();
        let disconnect = self.channels.hold(channel_id);
        let registration = Registration {
            channels: self.channels.clone(),
            site: self.site.clone(),
            stop: self.stop.clone(),
            channel_id,
        };
        let new = NewChannel {
            channel_id,
            protocol: open.protocol,
            endpoint: open.endpoint,
            username: open.user.username,
            user_id: open.user.user_id,
            remote_address: open.remote.ip().to_string(),
            encrypted: open.encrypted,
            info: open.info,
            node: self.node_label.clone(),
            pid: Pid {
                node_id: me.node_id,
                sequence: self.channels.next_sequence(),
                incarnation: me.incarnation,
            },
        };
        match self.site.open_channel(new).await {
            Ok(_) => Ok(ChannelHandle::new(
                channel_id,
                disconnect,
                Box::new(registration),
            )),
            Err(StoreError::Locked { message, lock_id }) => {
                self.channels.release(channel_id);
                self.iam
                    .record_locked_login(&address, Some(open_remote.ip()), lock_id)
                    .await;
                Err(OpenError::Locked(message))
            }
            Err(e) => Err(OpenError::Unavailable(e.to_string())),
        }
    }
}

impl MailBackend for NodeMailBackend {
    fn authenticate<'a>(
        &'a self,
        username: &'a str,
        password: &'a str,
        remote: SocketAddr,
    ) -> BoxFuture<'a, Result<MailUser, AuthError>> {
        Box::pin(self.check(username, password, remote))
    }

    fn open_channel(
        &self,
        channel: ChannelOpen,
    ) -> BoxFuture<'_, Result<ChannelHandle, OpenError>> {
        Box::pin(self.register(channel))
    }
}

/// Deregisters a channel when its handle is dropped, unless a disconnect already removed it.
struct Registration {
    channels: Arc<LocalChannels>,
    site: SiteStore,
    stop: watch::Receiver<bool>,
    channel_id: Uuid,
}

impl Drop for Registration {
    fn drop(&mut self) {
        let still_held = self.channels.release(self.channel_id);
        // A stopping node leaves its records to the leader's reaper.
        if !still_held || *self.stop.borrow() {
            return;
        }
        let (site, channel_id) = (self.site.clone(), self.channel_id);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = site.close_channel(channel_id).await {
                    tracing::debug!(%channel_id, error = %e, "deregistration failed; the sweeper retries");
                }
            });
        }
    }
}
