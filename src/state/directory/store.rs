//! Typed access to the `directory` group: one method per operation, replies matched here.
//! Logins and token checks read the local copy (they must work while the WAN is cut); the admin
//! API reads after a barrier, so it sees its own writes wherever it lands.
//!
//! Each write proposes its own command and turns that command's reply into its own result: a
//! rule the directory enforces at apply is a [`Rejection`], and a reply of another kind (only a
//! replica of another version could send one) is handled once, in
//! [`DirectoryStore::unexpected`]. A store made with [`DirectoryStore::audited`] carries an
//! audit event its next write keeps in the same entry (`DirectoryCommand::Audited`). Owns
//! [`DirectoryStore`]; must not keep any state of its own.

use std::collections::{BTreeMap, BTreeSet};

use sessionplane_cluster::Group;
use uuid::Uuid;

use super::{DirectoryCommand, DirectoryReply, DirectoryState, NewUser};
use crate::model::audit::NewAuditEvent;
use crate::model::{Domain, DomainName, GroupName, PropertyChanges, SessionLimit, User};
use crate::state::StoreError;

/// A write the directory refused at apply, by one of its rules.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    /// What the write names does not exist (a domain, a user, a group, a member).
    #[error("{0}")]
    NotFound(String),
    /// What the write creates exists, or what it deletes is still in use.
    #[error("{0}")]
    Conflict(String),
}

/// A write's outcome: done, or refused by a rule of the directory.
pub type Outcome<T> = Result<Result<T, Rejection>, StoreError>;

#[derive(Clone)]
pub struct DirectoryStore {
    group: Group<DirectoryState>,
    /// The event the next write keeps (see [`Self::audited`]).
    event: Option<Box<NewAuditEvent>>,
}

impl DirectoryStore {
    pub fn new(group: Group<DirectoryState>) -> Self {
        Self { group, event: None }
    }

    pub fn group(&self) -> &Group<DirectoryState> {
        &self.group
    }

    /// This store, its writes keeping `event` in their own entry (none: as it is).
    pub fn audited(&self, event: impl Into<Option<NewAuditEvent>>) -> Self {
        Self {
            group: self.group.clone(),
            event: event.into().map(Box::new),
        }
    }

    async fn execute(&self, command: DirectoryCommand) -> Result<DirectoryReply, StoreError> {
        let command = match &self.event {
            Some(event) => DirectoryCommand::Audited {
                event: event.clone(),
                command: Box::new(command),
            },
            None => command,
        };
        let reply = self
            .group
            .propose(command)
            .await
            .map_err(StoreError::of_directory)?;
        match reply {
            DirectoryReply::Invalid(reason) => Err(StoreError::Invalid(reason)),
            reply => Ok(reply),
        }
    }

    /// A reply that is not its command's: the one place such a reply is handled.
    fn unexpected(&self, reply: DirectoryReply) -> StoreError {
        StoreError::of_directory(
            self.group
                .codec_error(format!("a directory reply of another kind: {reply:?}")),
        )
    }

    /// Proposes `command` and picks its own kind of answer with `expected`; rejections apart.
    async fn write<T>(
        &self,
        command: DirectoryCommand,
        expected: impl FnOnce(DirectoryReply) -> Result<T, Box<DirectoryReply>>,
    ) -> Outcome<T> {
        match self.execute(command).await? {
            DirectoryReply::NotFound(message) => Ok(Err(Rejection::NotFound(message))),
            DirectoryReply::Conflict(message) => Ok(Err(Rejection::Conflict(message))),
            reply => expected(reply)
                .map(Ok)
                .map_err(|other| self.unexpected(*other)),
        }
    }

    /// The deployment's first start: the master domain, its `admins` group and its first
    /// administrator, unless the master domain exists already (`false`).
    pub async fn bootstrap(&self, master_domain: DomainName, admin: NewUser) -> Outcome<bool> {
        let command = DirectoryCommand::Bootstrap {
            master_domain,
            admin,
        };
        self.write(command, |reply| match reply {
            DirectoryReply::Bootstrapped { created } => Ok(created),
            other => Err(Box::new(other)),
        })
        .await
    }

    pub async fn create_domain(&self, name: DomainName) -> Outcome<Domain> {
        self.write(DirectoryCommand::CreateDomain(name), |reply| match reply {
            DirectoryReply::Domain(domain) => Ok(domain),
            other => Err(Box::new(other)),
        })
        .await
    }

    pub async fn set_session_limit(
        &self,
        domain: DomainName,
        limit: Option<SessionLimit>,
    ) -> Outcome<Domain> {
        let command = DirectoryCommand::SetSessionLimit { domain, limit };
        self.write(command, |reply| match reply {
            DirectoryReply::Domain(domain) => Ok(domain),
            other => Err(Box::new(other)),
        })
        .await
    }

    /// Deletes a domain that holds no user and no group.
    pub async fn delete_domain(&self, name: DomainName) -> Outcome<()> {
        self.write(DirectoryCommand::DeleteDomain(name), done).await
    }

    pub async fn create_user(&self, new: NewUser) -> Outcome<User> {
        self.write(DirectoryCommand::CreateUser(new), user).await
    }

    pub async fn update_user(
        &self,
        user_id: Uuid,
        properties: PropertyChanges,
        disabled: Option<bool>,
    ) -> Outcome<User> {
        let command = DirectoryCommand::UpdateUser {
            user_id,
            properties,
            disabled,
        };
        self.write(command, user).await
    }

    /// Sets a user's password hash; `keep_session` is the session that asked, which stays open.
    pub async fn set_password(
        &self,
        user_id: Uuid,
        password_hash: String,
        keep_session: Option<Uuid>,
    ) -> Outcome<User> {
        let command = DirectoryCommand::SetPassword {
            user_id,
            password_hash,
            keep_session,
        };
        self.write(command, user).await
    }

    /// Deletes all of them or, if one is unknown, none; the users deleted.
    pub async fn delete_users(&self, ids: Vec<Uuid>) -> Outcome<Vec<User>> {
        self.write(DirectoryCommand::DeleteUsers(ids), |reply| match reply {
            DirectoryReply::Deleted(users) => Ok(users),
            other => Err(Box::new(other)),
        })
        .await
    }

    pub async fn create_group(
        &self,
        domain: DomainName,
        name: GroupName,
        members: BTreeSet<Uuid>,
        properties: BTreeMap<String, String>,
    ) -> Outcome<crate::model::Group> {
        let command = DirectoryCommand::CreateGroup {
            domain,
            name,
            members,
            properties,
        };
        self.write(command, group).await
    }

    pub async fn update_group(
        &self,
        domain: DomainName,
        name: GroupName,
        add: BTreeSet<Uuid>,
        remove: BTreeSet<Uuid>,
        properties: PropertyChanges,
    ) -> Outcome<crate::model::Group> {
        let command = DirectoryCommand::UpdateGroup {
            domain,
            name,
            add,
            remove,
            properties,
        };
        self.write(command, group).await
    }

    pub async fn delete_group(&self, domain: DomainName, name: GroupName) -> Outcome<()> {
        self.write(DirectoryCommand::DeleteGroup { domain, name }, done)
            .await
    }

    /// Reads this node's copy as it is.
    pub fn read_local<T>(&self, read: impl FnOnce(&DirectoryState) -> T) -> T {
        self.group.state().read(read)
    }

    /// Reads after every write committed before the call has been applied here.
    pub async fn read<T>(&self, read: impl FnOnce(&DirectoryState) -> T) -> Result<T, StoreError> {
        self.group.read_barrier().await?;
        Ok(self.group.state().read(read))
    }

    /// Reads locally; when that finds nothing, once more after a barrier (a record created on
    /// another node a moment ago may not have been applied here yet).
    pub async fn read_fresh<T>(
        &self,
        read: impl Fn(&DirectoryState) -> Option<T>,
    ) -> Result<Option<T>, StoreError> {
        if let Some(found) = self.read_local(&read) {
            return Ok(Some(found));
        }
        self.read(read).await
    }

    /// As [`Self::read_fresh`], but a barrier that cannot complete (no directory leader in
    /// reach: the WAN is cut) answers with the local copy's "nothing", so that logins at a cut
    /// off site keep working for every user it knows.
    pub async fn read_fresh_or_local<T>(
        &self,
        read: impl Fn(&DirectoryState) -> Option<T>,
    ) -> Option<T> {
        match self.read_fresh(read).await {
            Ok(found) => found,
            Err(e) => {
                tracing::debug!(error = %e, "directory barrier failed; answering from the local copy");
                None
            }
        }
    }
}

fn done(reply: DirectoryReply) -> Result<(), Box<DirectoryReply>> {
    match reply {
        DirectoryReply::Done => Ok(()),
        other => Err(Box::new(other)),
    }
}

fn user(reply: DirectoryReply) -> Result<User, Box<DirectoryReply>> {
    match reply {
        DirectoryReply::User(user) => Ok(user),
        other => Err(Box::new(other)),
    }
}

fn group(reply: DirectoryReply) -> Result<crate::model::Group, Box<DirectoryReply>> {
    match reply {
        DirectoryReply::Group(group) => Ok(group),
        other => Err(Box::new(other)),
    }
}
