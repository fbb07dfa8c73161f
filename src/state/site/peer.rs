//! Site commands for callers that speak to the group without a store: tests and benchmarks,
//! which propose through a node's cluster listener or apply to a bare [`SiteState`] (see
//! `crate::testing`). A [`SiteCall`] hides the command, a [`SiteAnswer`] shows what of a reply
//! such callers look at; the encoding stays the cluster crate's.
//!
//! Owns nothing of the state; the node itself never goes through here.

use std::time::Duration;

use sessionplane_cluster::{GroupId, PeerClient, PeerError, StateMachine};
use uuid::Uuid;

use super::{Authority, SiteCommand, SiteReply, SiteState};
use crate::model::{CloseReason, NewSession, Session};

/// One site command, built by its constructors.
#[derive(Clone, Debug)]
pub struct SiteCall(SiteCommand);

/// What a site reply says, as far as its callers here need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SiteAnswer {
    Session(Session),
    Deleted(Vec<Uuid>),
    Invalid(String),
    /// Any other reply, as text.
    Other(String),
}

impl SiteCall {
    /// Opens a session; idempotent by its id.
    pub fn create_session(new: NewSession) -> Self {
        Self(SiteCommand::CreateSession(new))
    }

    /// Ends every session of a user in a domain but `except`, with the system's authority.
    pub fn delete_user_sessions(
        domain: &str,
        user_id: Uuid,
        except: Option<Uuid>,
        reason: CloseReason,
    ) -> Self {
        Self(SiteCommand::DeleteUserSessions {
            domain: domain.into(),
            user_id,
            except,
            reason,
            authority: Authority::system(),
        })
    }

    /// The command's bytes, as the log and the wire carry them.
    pub fn encoded(&self) -> Result<Vec<u8>, String> {
        sessionplane_cluster::encode_command::<SiteState>(&self.0)
    }

    /// Applies the command to `state` as the log would at `at_ms`.
    pub fn apply_to(self, state: &mut SiteState, at_ms: u64) -> SiteAnswer {
        SiteAnswer::from(state.apply(
            sessionplane_cluster::Applying {
                at_ms,
                log_index: 0,
            },
            self.0,
        ))
    }

    /// Proposes the command through the node at `addr`, which routes it to the leader.
    pub async fn propose(
        &self,
        peers: &PeerClient,
        addr: &str,
        group: &GroupId,
        timeout: Duration,
    ) -> Result<Result<SiteAnswer, String>, PeerError> {
        let answer = peers
            .propose_as::<SiteState>(addr, group, &self.0, timeout)
            .await?;
        Ok(answer.map(SiteAnswer::from))
    }
}

impl SiteAnswer {
    /// A reply as a cluster listener answered it.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        sessionplane_cluster::decode_reply::<SiteState>(bytes).map(Self::from)
    }
}

impl From<SiteReply> for SiteAnswer {
    fn from(reply: SiteReply) -> Self {
        match reply {
            SiteReply::Session(session) => Self::Session(session),
            SiteReply::Deleted(ids) => Self::Deleted(ids),
            SiteReply::Invalid(reason) => Self::Invalid(reason),
            other => Self::Other(format!("{other:?}")),
        }
    }
}
