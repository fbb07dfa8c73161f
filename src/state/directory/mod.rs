//! The state machine of the `directory` group: domains, users and groups, and the access
//! revocations every site applies.
//!
//! Few writes, read everywhere: every node holds the whole directory and logins read it locally.
//! Maps are persistent (cheap to copy), so a snapshot is taken while apply goes on. Every rule
//! that keeps the directory consistent (unique logins, members of the group's own domain, no
//! domain deleted while it holds users) is checked here, at apply, so that two racing requests
//! on two nodes cannot both win.
//!
//! This module owns the group's protocol (its command and reply enums, which never leave
//! `state`), [`DirectoryState`], the dispatch of each command to its record's module
//! ([`domains`], [`users`], [`groups`], [`revocations`], [`audit_outbox`]) and the snapshot; [`store`] is the typed
//! [`DirectoryStore`] the rest of the node goes through. It imports only `crate::model`.

pub mod audit_outbox;
pub mod domains;
pub mod groups;
pub mod revocations;
pub mod store;
#[cfg(test)]
mod tests;
pub mod users;

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::model::audit::NewAuditEvent;
use crate::model::{CloseReason, SessionLimit};
use sessionplane_cluster::{Applying, SnapshotWriter, StateMachine};
use uuid::Uuid;

use crate::model::{
    Domain, DomainName, Group, GroupName, Login, PropertyChanges, User, ADMINS_GROUP,
};
use crate::state::{decode, encode};

pub use audit_outbox::OutboxEvent;
pub use groups::AdminScope;
pub use revocations::AccessRevocation;
#[cfg(test)]
use revocations::KEEP_REVOCATIONS_MS;
pub use store::{DirectoryStore, Rejection};
pub use users::NewUser;

pub(crate) use protocol::{DirectoryCommand, DirectoryReply};

/// The group's protocol: what is on its log and on the wire, so a change here must keep every
/// existing entry decoding. Public types in a private module: the cluster crate's
/// `StateMachine` names them, nothing outside `state::directory` can.
mod protocol {
    use super::*;

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub enum DirectoryCommand {
        /// The deployment's first start: the master domain, its `admins` group and its first
        /// administrator, unless the master domain exists already.
        Bootstrap {
            master_domain: DomainName,
            admin: NewUser,
        },
        CreateDomain(DomainName),
        DeleteDomain(DomainName),
        CreateUser(NewUser),
        UpdateUser {
            user_id: Uuid,
            properties: PropertyChanges,
            disabled: Option<bool>,
        },
        SetPassword {
            user_id: Uuid,
            password_hash: String,
            /// The session that asked for the change, which stays open.
            #[serde(default)]
            keep_session: Option<Uuid>,
        },
        /// Deletes all of them or, if one is unknown, none.
        DeleteUsers(Vec<Uuid>),
        CreateGroup {
            domain: DomainName,
            name: GroupName,
            members: BTreeSet<Uuid>,
            properties: BTreeMap<String, String>,
        },
        UpdateGroup {
            domain: DomainName,
            name: GroupName,
            add: BTreeSet<Uuid>,
            remove: BTreeSet<Uuid>,
            properties: PropertyChanges,
        },
        DeleteGroup {
            domain: DomainName,
            name: GroupName,
        },
        /// Applies `command`, then keeps `event` (with the outcome of its reply) in the audit
        /// outbox for the site that served the call, in this one entry.
        Audited {
            event: Box<NewAuditEvent>,
            command: Box<DirectoryCommand>,
        },
        /// Sets (or, with none, lifts) a domain's cap on each user's open sessions.
        SetSessionLimit {
            domain: DomainName,
            limit: Option<SessionLimit>,
        },
    }

    #[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
    pub enum DirectoryReply {
        Bootstrapped {
            created: bool,
        },
        Domain(Domain),
        User(User),
        Group(Group),
        /// The users a delete removed.
        Deleted(Vec<User>),
        Done,
        NotFound(String),
        Conflict(String),
        Invalid(String),
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DirectoryQuery {
    Counts,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DirectoryQueryReply {
    Counts {
        domains: u64,
        users: u64,
        groups: u64,
    },
    Invalid(String),
}

#[derive(Clone, Default)]
pub struct DirectoryState {
    domains: imbl::OrdMap<DomainName, Domain>,
    users: imbl::OrdMap<Uuid, User>,
    logins: imbl::OrdMap<(DomainName, Login), Uuid>,
    groups: imbl::OrdMap<(DomainName, GroupName), Group>,
    /// Accounts whose access ended (deleted, disabled, new password), in order: every site
    /// ends their sessions and channels when the entry reaches it.
    revocations: imbl::OrdMap<u64, AccessRevocation>,
    next_revocation: u64,
    /// Audit events of directory changes, in order, until their site copies them.
    audit_outbox: imbl::OrdMap<u64, OutboxEvent>,
    next_audit: u64,
}

#[derive(Serialize, Deserialize)]
struct Snapshot {
    domains: Vec<Domain>,
    users: Vec<User>,
    groups: Vec<Group>,
    #[serde(default)]
    revocations: Vec<AccessRevocation>,
    #[serde(default)]
    next_revocation: u64,
    #[serde(default)]
    audit_outbox: Vec<OutboxEvent>,
    #[serde(default)]
    next_audit: u64,
}

impl DirectoryState {
    fn execute(&mut self, at_ms: u64, command: DirectoryCommand) -> DirectoryReply {
        use DirectoryCommand as C;
        match command {
            C::Bootstrap {
                master_domain,
                admin,
            } => self.bootstrap(at_ms, master_domain, admin),
            C::CreateDomain(name) => self.create_domain(at_ms, name),
            C::DeleteDomain(name) => self.delete_domain(&name),
            C::SetSessionLimit { domain, limit } => self.set_session_limit(&domain, limit),
            C::CreateUser(new) => self.create_user(at_ms, new),
            C::UpdateUser {
                user_id,
                properties,
                disabled,
            } => {
                let reply = self.update_user(user_id, &properties, disabled);
                if let (DirectoryReply::User(user), Some(true)) = (&reply, disabled) {
                    self.revoke_access(user, None, CloseReason::UserDisabled, at_ms);
                }
                reply
            }
            C::SetPassword {
                user_id,
                password_hash,
                keep_session,
            } => {
                let reply = self.set_password(user_id, password_hash);
                if let DirectoryReply::User(user) = &reply {
                    self.revoke_access(user, keep_session, CloseReason::Revoked, at_ms);
                }
                reply
            }
            C::DeleteUsers(ids) => {
                let reply = self.delete_users(&ids);
                if let DirectoryReply::Deleted(users) = &reply {
                    for user in users {
                        self.revoke_access(user, None, CloseReason::UserDisabled, at_ms);
                    }
                }
                reply
            }
            C::CreateGroup {
                domain,
                name,
                members,
                properties,
            } => self.create_group(domain, name, members, properties),
            C::UpdateGroup {
                domain,
                name,
                add,
                remove,
                properties,
            } => self.update_group(&domain, &name, &add, &remove, &properties),
            C::DeleteGroup { domain, name } => match self.groups.remove(&(domain, name.clone())) {
                Some(_) => DirectoryReply::Done,
                None => DirectoryReply::NotFound(format!("no group {name}")),
            },
            C::Audited { event, command } => self.audited(at_ms, *event, *command),
        }
    }

    fn bootstrap(&mut self, at_ms: u64, master: DomainName, admin: NewUser) -> DirectoryReply {
        if self.domains.contains_key(&master) {
            return DirectoryReply::Bootstrapped { created: false };
        }
        let (Ok(admins), true) = (ADMINS_GROUP.parse::<GroupName>(), admin.domain == master) else {
            return DirectoryReply::Invalid(
                "the first administrator belongs to the master domain".into(),
            );
        };
        let admin_id = admin.user_id;
        self.create_domain(at_ms, master.clone());
        self.create_user(at_ms, admin);
        self.create_group(master, admins, BTreeSet::from([admin_id]), BTreeMap::new());
        DirectoryReply::Bootstrapped { created: true }
    }

    fn counts(&self) -> DirectoryQueryReply {
        DirectoryQueryReply::Counts {
            domains: self.domains.len() as u64,
            users: self.users.len() as u64,
            groups: self.groups.len() as u64,
        }
    }
}

pub(super) fn apply_changes(properties: &mut BTreeMap<String, String>, changes: &PropertyChanges) {
    for (key, value) in changes {
        match value {
            Some(value) => properties.insert(key.clone(), value.clone()),
            None => properties.remove(key),
        };
    }
}

impl StateMachine for DirectoryState {
    type Command = DirectoryCommand;
    type Reply = DirectoryReply;
    type Query = DirectoryQuery;
    type QueryReply = DirectoryQueryReply;

    fn apply(&mut self, entry: Applying, command: DirectoryCommand) -> DirectoryReply {
        self.execute(entry.at_ms, command)
    }

    fn undecodable_command(error: String) -> DirectoryReply {
        DirectoryReply::Invalid(format!("undecodable directory command: {error}"))
    }

    fn snapshot(&self) -> SnapshotWriter {
        let copy = self.clone();
        Box::new(move || {
            let snapshot = Snapshot {
                domains: copy.domains.values().cloned().collect(),
                users: copy.users.values().cloned().collect(),
                groups: copy.groups.values().cloned().collect(),
                revocations: copy.revocations.values().cloned().collect(),
                next_revocation: copy.next_revocation,
                audit_outbox: copy.audit_outbox.values().cloned().collect(),
                next_audit: copy.next_audit,
            };
            encode(&snapshot).unwrap_or_default()
        })
    }

    fn restore(&self, bytes: &[u8]) -> Result<Self, String> {
        let snapshot: Snapshot =
            decode(bytes).map_err(|e| format!("directory snapshot does not decode: {e}"))?;
        let mut state = Self::default();
        for domain in snapshot.domains {
            state.domains.insert(domain.name.clone(), domain);
        }
        for user in snapshot.users {
            state
                .logins
                .insert((user.domain.clone(), user.login.clone()), user.user_id);
            state.users.insert(user.user_id, user);
        }
        for group in snapshot.groups {
            state
                .groups
                .insert((group.domain.clone(), group.name.clone()), group);
        }
        state.revocations = snapshot
            .revocations
            .into_iter()
            .map(|r| (r.seq, r))
            .collect();
        state.next_revocation = snapshot.next_revocation;
        state.audit_outbox = snapshot
            .audit_outbox
            .into_iter()
            .map(|e| (e.seq, e))
            .collect();
        state.next_audit = snapshot.next_audit;
        Ok(state)
    }

    fn query(&self, query: DirectoryQuery) -> DirectoryQueryReply {
        match query {
            DirectoryQuery::Counts => self.counts(),
        }
    }

    fn undecodable_query(error: String) -> DirectoryQueryReply {
        DirectoryQueryReply::Invalid(format!("undecodable directory query: {error}"))
    }
}
