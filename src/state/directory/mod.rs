//! The state machine of the `directory` group: domains, users and groups.
//!
//! Few writes, read everywhere: every node holds the whole directory and logins read it locally.
//! Maps are persistent (cheap to copy), so a snapshot is taken while apply goes on. Every rule
//! that keeps the directory consistent (unique logins, members of the group's own domain, no
//! domain deleted while it holds users) is checked here, at apply, so that two racing requests
//! on two nodes cannot both win.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::model::CloseReason;
use sessionplane_cluster::{SnapshotWriter, StateMachine};
use uuid::Uuid;

use crate::model::{
    Domain, DomainName, Group, GroupName, Login, PropertyChanges, User, ADMINS_GROUP,
};
use crate::state::{decode, encode};

/// What a new user is made of; the leader's clock adds `created_at_ms`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewUser {
    pub user_id: Uuid,
    pub domain: DomainName,
    pub login: Login,
    pub password_hash: String,
    pub properties: BTreeMap<String, String>,
}

impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("user_id", &self.user_id)
            .field("domain", &self.domain)
            .field("login", &self.login)
            .finish_non_exhaustive()
    }
}

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

/// What a user administers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminScope {
    /// A member of `admins` in the master domain: every domain.
    Global,
    /// A member of `admins` in this domain: this domain only.
    Domain(DomainName),
}

impl AdminScope {
    pub fn covers(&self, domain: &DomainName) -> bool {
        match self {
            Self::Global => true,
            Self::Domain(own) => own == domain,
        }
    }
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
}

/// How long the directory remembers an access revocation for sites that have yet to apply it.
pub const KEEP_REVOCATIONS_MS: u64 = 7 * 24 * 3600 * 1000;

/// A user's access ended: every site closes its sessions (but `except`) and its channels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRevocation {
    pub seq: u64,
    pub user_id: Uuid,
    pub domain: String,
    /// `login@domain`, as channels name their user.
    pub username: String,
    pub except: Option<Uuid>,
    pub reason: crate::model::CloseReason,
    pub at_ms: u64,
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
}

impl DirectoryState {
    pub fn domain(&self, name: &DomainName) -> Option<&Domain> {
        self.domains.get(name)
    }

    pub fn domains(&self) -> impl Iterator<Item = &Domain> {
        self.domains.values()
    }

    pub fn user(&self, user_id: &Uuid) -> Option<&User> {
        self.users.get(user_id)
    }

    pub fn user_by_login(&self, domain: &DomainName, login: &Login) -> Option<&User> {
        self.logins
            .get(&(domain.clone(), login.clone()))
            .and_then(|id| self.users.get(id))
    }

    /// The users of a domain, by login.
    pub fn users_in(&self, domain: &DomainName) -> Vec<&User> {
        let mut users: Vec<&User> = self
            .users
            .values()
            .filter(|u| &u.domain == domain)
            .collect();
        users.sort_by(|a, b| a.login.cmp(&b.login));
        users
    }

    pub fn group(&self, domain: &DomainName, name: &GroupName) -> Option<&Group> {
        self.groups.get(&(domain.clone(), name.clone()))
    }

    pub fn groups_in(&self, domain: &DomainName) -> impl Iterator<Item = &Group> {
        let domain = domain.clone();
        self.groups.values().filter(move |g| g.domain == domain)
    }

    /// What `user` administers, if anything: membership of `admins` in the master domain, or
    /// else in the user's own domain.
    pub fn admin_scope(&self, user: &User, master: &DomainName) -> Option<AdminScope> {
        let admins: GroupName = ADMINS_GROUP.parse().ok()?;
        let member_of = |domain: &DomainName| {
            self.group(domain, &admins)
                .is_some_and(|g| g.members.contains(&user.user_id))
        };
        if &user.domain == master && member_of(master) {
            Some(AdminScope::Global)
        } else if member_of(&user.domain) {
            Some(AdminScope::Domain(user.domain.clone()))
        } else {
            None
        }
    }

    fn execute(&mut self, at_ms: u64, command: DirectoryCommand) -> DirectoryReply {
        use DirectoryCommand as C;
        match command {
            C::Bootstrap {
                master_domain,
                admin,
            } => self.bootstrap(at_ms, master_domain, admin),
            C::CreateDomain(name) => self.create_domain(at_ms, name),
            C::DeleteDomain(name) => self.delete_domain(&name),
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

    fn create_domain(&mut self, at_ms: u64, name: DomainName) -> DirectoryReply {
        if self.domains.contains_key(&name) {
            return DirectoryReply::Conflict(format!("domain {name} exists"));
        }
        let domain = Domain {
            name: name.clone(),
            created_at_ms: at_ms,
        };
        self.domains.insert(name, domain.clone());
        DirectoryReply::Domain(domain)
    }

    fn delete_domain(&mut self, name: &DomainName) -> DirectoryReply {
        if !self.domains.contains_key(name) {
            return DirectoryReply::NotFound(format!("no domain {name}"));
        }
        let users = self.users.values().filter(|u| &u.domain == name).count();
        let groups = self.groups_in(name).count();
        if users + groups > 0 {
            return DirectoryReply::Conflict(format!(
                "domain {name} still holds {users} user(s) and {groups} group(s)"
            ));
        }
        self.domains.remove(name);
        DirectoryReply::Done
    }

    fn create_user(&mut self, at_ms: u64, new: NewUser) -> DirectoryReply {
        if !self.domains.contains_key(&new.domain) {
            return DirectoryReply::NotFound(format!("no domain {}", new.domain));
        }
        let key = (new.domain.clone(), new.login.clone());
        if self.logins.contains_key(&key) {
            return DirectoryReply::Conflict(format!("user {}@{} exists", new.login, new.domain));
        }
        if self.users.contains_key(&new.user_id) {
            return DirectoryReply::Conflict(format!("user id {} is taken", new.user_id));
        }
        let user = User {
            user_id: new.user_id,
            domain: new.domain,
            login: new.login,
            password_hash: new.password_hash,
            properties: new.properties,
            disabled: false,
            created_at_ms: at_ms,
        };
        self.logins.insert(key, user.user_id);
        self.users.insert(user.user_id, user.clone());
        DirectoryReply::User(user)
    }

    /// Records that `user`'s access ended, and forgets records older than a week.
    fn revoke_access(
        &mut self,
        user: &User,
        except: Option<Uuid>,
        reason: CloseReason,
        at_ms: u64,
    ) {
        self.next_revocation += 1;
        let revocation = AccessRevocation {
            seq: self.next_revocation,
            user_id: user.user_id,
            domain: user.domain.to_string(),
            username: user.address().to_string(),
            except,
            reason,
            at_ms,
        };
        self.revocations.insert(revocation.seq, revocation);
        while let Some((seq, oldest)) = self.revocations.get_min().map(|(k, v)| (*k, v.at_ms)) {
            if oldest.saturating_add(KEEP_REVOCATIONS_MS) > at_ms {
                break;
            }
            self.revocations.remove(&seq);
        }
    }

    /// The access revocations after `seq`, in order.
    pub fn revocations_after(&self, seq: u64) -> Vec<AccessRevocation> {
        self.revocations
            .range(seq.saturating_add(1)..)
            .map(|(_, r)| r.clone())
            .collect()
    }

    fn update_user(
        &mut self,
        user_id: Uuid,
        changes: &PropertyChanges,
        disabled: Option<bool>,
    ) -> DirectoryReply {
        let Some(user) = self.users.get_mut(&user_id) else {
            return DirectoryReply::NotFound(format!("no user {user_id}"));
        };
        apply_changes(&mut user.properties, changes);
        if let Some(disabled) = disabled {
            user.disabled = disabled;
        }
        DirectoryReply::User(user.clone())
    }

    fn set_password(&mut self, user_id: Uuid, password_hash: String) -> DirectoryReply {
        match self.users.get_mut(&user_id) {
            Some(user) => {
                user.password_hash = password_hash;
                DirectoryReply::User(user.clone())
            }
            None => DirectoryReply::NotFound(format!("no user {user_id}")),
        }
    }

    fn delete_users(&mut self, ids: &[Uuid]) -> DirectoryReply {
        if let Some(unknown) = ids.iter().find(|id| !self.users.contains_key(id)) {
            return DirectoryReply::NotFound(format!("no user {unknown}"));
        }
        let mut deleted = Vec::new();
        for id in ids {
            if let Some(user) = self.users.remove(id) {
                self.logins
                    .remove(&(user.domain.clone(), user.login.clone()));
                deleted.push(user);
            }
        }
        let keys: Vec<_> = self.groups.keys().cloned().collect();
        for key in keys {
            if let Some(group) = self.groups.get_mut(&key) {
                for id in ids {
                    group.members.remove(id);
                }
            }
        }
        DirectoryReply::Deleted(deleted)
    }

    /// `None` when every member is a user of `domain`, else the reason.
    fn foreign_member(&self, domain: &DomainName, members: &BTreeSet<Uuid>) -> Option<String> {
        members.iter().find_map(|id| match self.users.get(id) {
            None => Some(format!("no user {id}")),
            Some(user) if &user.domain != domain => Some(format!(
                "user {}@{} is not of domain {domain}",
                user.login, user.domain
            )),
            Some(_) => None,
        })
    }

    fn create_group(
        &mut self,
        domain: DomainName,
        name: GroupName,
        members: BTreeSet<Uuid>,
        properties: BTreeMap<String, String>,
    ) -> DirectoryReply {
        if !self.domains.contains_key(&domain) {
            return DirectoryReply::NotFound(format!("no domain {domain}"));
        }
        let key = (domain.clone(), name.clone());
        if self.groups.contains_key(&key) {
            return DirectoryReply::Conflict(format!("group {name}@{domain} exists"));
        }
        if let Some(reason) = self.foreign_member(&domain, &members) {
            return DirectoryReply::NotFound(reason);
        }
        let group = Group {
            name,
            domain,
            members,
            properties,
        };
        self.groups.insert(key, group.clone());
        DirectoryReply::Group(group)
    }

    fn update_group(
        &mut self,
        domain: &DomainName,
        name: &GroupName,
        add: &BTreeSet<Uuid>,
        remove: &BTreeSet<Uuid>,
        changes: &PropertyChanges,
    ) -> DirectoryReply {
        if let Some(reason) = self.foreign_member(domain, add) {
            return DirectoryReply::NotFound(reason);
        }
        let Some(group) = self.groups.get_mut(&(domain.clone(), name.clone())) else {
            return DirectoryReply::NotFound(format!("no group {name}@{domain}"));
        };
        group.members.extend(add.iter().copied());
        group.members.retain(|m| !remove.contains(m));
        apply_changes(&mut group.properties, changes);
        DirectoryReply::Group(group.clone())
    }

    fn counts(&self) -> DirectoryQueryReply {
        DirectoryQueryReply::Counts {
            domains: self.domains.len() as u64,
            users: self.users.len() as u64,
            groups: self.groups.len() as u64,
        }
    }
}

fn apply_changes(properties: &mut BTreeMap<String, String>, changes: &PropertyChanges) {
    for (key, value) in changes {
        match value {
            Some(value) => properties.insert(key.clone(), value.clone()),
            None => properties.remove(key),
        };
    }
}

impl StateMachine for DirectoryState {
    fn apply(&mut self, at_ms: u64, command: &[u8]) -> Vec<u8> {
        let reply = match decode::<DirectoryCommand>(command) {
            Ok(command) => self.execute(at_ms, command),
            Err(e) => DirectoryReply::Invalid(format!("undecodable directory command: {e}")),
        };
        encode(&reply).unwrap_or_default()
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
        Ok(state)
    }

    fn query(&self, query: &[u8]) -> Vec<u8> {
        let reply = match decode::<DirectoryQuery>(query) {
            Ok(DirectoryQuery::Counts) => self.counts(),
            Err(e) => DirectoryQueryReply::Invalid(format!("undecodable directory query: {e}")),
        };
        encode(&reply).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(state: &mut DirectoryState, command: DirectoryCommand) -> DirectoryReply {
        decode(&state.apply(7, &encode(&command).unwrap())).unwrap()
    }

    fn new_user(domain: &str, login: &str) -> NewUser {
        NewUser {
            user_id: Uuid::now_v7(),
            domain: domain.parse().unwrap(),
            login: login.parse().unwrap(),
            password_hash: "$argon2id$stub".into(),
            properties: BTreeMap::new(),
        }
    }

    fn master() -> DomainName {
        "master.domain".parse().unwrap()
    }

    #[test]
    fn ended_access_is_recorded_in_order_kept_a_week_and_snapshotted() {
        let mut state = DirectoryState::default();
        run(
            &mut state,
            DirectoryCommand::CreateDomain("d.example".parse().unwrap()),
        );
        let (a, b) = (new_user("d.example", "a"), new_user("d.example", "b"));
        run(&mut state, DirectoryCommand::CreateUser(a.clone()));
        run(&mut state, DirectoryCommand::CreateUser(b.clone()));
        let keep = Uuid::now_v7();
        let at = |state: &mut DirectoryState, ms: u64, command: DirectoryCommand| {
            decode::<DirectoryReply>(&state.apply(ms, &encode(&command).unwrap())).unwrap()
        };
        let enable = |id, disabled| DirectoryCommand::UpdateUser {
            user_id: id,
            properties: Default::default(),
            disabled: Some(disabled),
        };
        at(&mut state, 10, enable(a.user_id, false));
        assert!(
            state.revocations_after(0).is_empty(),
            "enabling ends nothing"
        );
        at(&mut state, 20, enable(a.user_id, true));
        let password = DirectoryCommand::SetPassword {
            user_id: b.user_id,
            password_hash: "$argon2id$other".into(),
            keep_session: Some(keep),
        };
        at(&mut state, 30, password);
        at(
            &mut state,
            40,
            DirectoryCommand::DeleteUsers(vec![a.user_id]),
        );
        let all = state.revocations_after(0);
        let seen: Vec<(u64, Uuid, Option<Uuid>, CloseReason)> = all
            .iter()
            .map(|r| (r.seq, r.user_id, r.except, r.reason))
            .collect();
        assert_eq!(
            seen,
            vec![
                (1, a.user_id, None, CloseReason::UserDisabled),
                (2, b.user_id, Some(keep), CloseReason::Revoked),
                (3, a.user_id, None, CloseReason::UserDisabled),
            ]
        );
        assert_eq!(all[1].username, "b@d.example");
        assert_eq!(state.revocations_after(2).len(), 1);
        let restored = state.restore(&state.snapshot()()).unwrap();
        assert_eq!(restored.revocations_after(0), all);
        // A week later the old ones are forgotten as a new one is recorded.
        at(
            &mut state,
            40 + KEEP_REVOCATIONS_MS,
            enable(b.user_id, true),
        );
        let left: Vec<u64> = state.revocations_after(0).iter().map(|r| r.seq).collect();
        assert_eq!(left, vec![4]);
    }

    #[test]
    fn bootstrap_happens_once_and_makes_a_global_admin() {
        let mut state = DirectoryState::default();
        let admin = new_user("master.domain", "admin");
        let bootstrap = DirectoryCommand::Bootstrap {
            master_domain: master(),
            admin: admin.clone(),
        };
        assert_eq!(
            run(&mut state, bootstrap.clone()),
            DirectoryReply::Bootstrapped { created: true }
        );
        let again = DirectoryCommand::Bootstrap {
            master_domain: master(),
            admin: new_user("master.domain", "admin"),
        };
        assert_eq!(
            run(&mut state, again),
            DirectoryReply::Bootstrapped { created: false }
        );
        let user = state.user(&admin.user_id).unwrap();
        assert_eq!(user.created_at_ms, 7);
        assert_eq!(state.admin_scope(user, &master()), Some(AdminScope::Global));
    }

    #[test]
    fn domain_admins_administer_their_domain_only() {
        let mut state = DirectoryState::default();
        run(
            &mut state,
            DirectoryCommand::CreateDomain("d.org".parse().unwrap()),
        );
        let alice = new_user("d.org", "alice");
        run(&mut state, DirectoryCommand::CreateUser(alice.clone()));
        let bob = new_user("d.org", "bob");
        run(&mut state, DirectoryCommand::CreateUser(bob.clone()));
        run(
            &mut state,
            DirectoryCommand::CreateGroup {
                domain: "d.org".parse().unwrap(),
                name: "admins".parse().unwrap(),
                members: BTreeSet::from([alice.user_id]),
                properties: BTreeMap::new(),
            },
        );
        let alice = state.user(&alice.user_id).unwrap();
        let scope = state.admin_scope(alice, &master()).unwrap();
        assert!(scope.covers(&"d.org".parse().unwrap()));
        assert!(!scope.covers(&master()));
        assert_eq!(
            state.admin_scope(state.user(&bob.user_id).unwrap(), &master()),
            None
        );
    }

    #[test]
    fn logins_are_unique_per_domain_and_domains_must_exist() {
        let mut state = DirectoryState::default();
        let orphan = run(
            &mut state,
            DirectoryCommand::CreateUser(new_user("nope", "a")),
        );
        assert!(matches!(orphan, DirectoryReply::NotFound(_)));
        run(
            &mut state,
            DirectoryCommand::CreateDomain("d".parse().unwrap()),
        );
        run(
            &mut state,
            DirectoryCommand::CreateDomain("e".parse().unwrap()),
        );
        assert!(matches!(
            run(
                &mut state,
                DirectoryCommand::CreateDomain("D".parse().unwrap())
            ),
            DirectoryReply::Conflict(_)
        ));
        run(&mut state, DirectoryCommand::CreateUser(new_user("d", "a")));
        assert!(matches!(
            run(&mut state, DirectoryCommand::CreateUser(new_user("d", "a"))),
            DirectoryReply::Conflict(_)
        ));
        assert!(matches!(
            run(&mut state, DirectoryCommand::CreateUser(new_user("e", "a"))),
            DirectoryReply::User(_)
        ));
        assert!(matches!(
            run(
                &mut state,
                DirectoryCommand::DeleteDomain("d".parse().unwrap())
            ),
            DirectoryReply::Conflict(_)
        ));
    }

    #[test]
    fn deleting_users_is_all_or_nothing_and_leaves_their_groups() {
        let mut state = DirectoryState::default();
        let d: DomainName = "d".parse().unwrap();
        run(&mut state, DirectoryCommand::CreateDomain(d.clone()));
        let a = new_user("d", "a");
        run(&mut state, DirectoryCommand::CreateUser(a.clone()));
        run(
            &mut state,
            DirectoryCommand::CreateGroup {
                domain: d.clone(),
                name: "g".parse().unwrap(),
                members: BTreeSet::from([a.user_id]),
                properties: BTreeMap::new(),
            },
        );
        let partial = DirectoryCommand::DeleteUsers(vec![a.user_id, Uuid::now_v7()]);
        assert!(matches!(
            run(&mut state, partial),
            DirectoryReply::NotFound(_)
        ));
        assert!(state.user(&a.user_id).is_some());
        let DirectoryReply::Deleted(gone) =
            run(&mut state, DirectoryCommand::DeleteUsers(vec![a.user_id]))
        else {
            panic!()
        };
        assert_eq!(gone.len(), 1);
        assert!(state.user_by_login(&d, &"a".parse().unwrap()).is_none());
        let group = state.group(&d, &"g".parse().unwrap()).unwrap();
        assert!(group.members.is_empty());
        assert!(matches!(
            run(&mut state, DirectoryCommand::DeleteDomain(d.clone())),
            DirectoryReply::Conflict(_)
        ));
    }

    #[test]
    fn groups_take_members_of_their_own_domain_only() {
        let mut state = DirectoryState::default();
        run(
            &mut state,
            DirectoryCommand::CreateDomain("d".parse().unwrap()),
        );
        run(
            &mut state,
            DirectoryCommand::CreateDomain("e".parse().unwrap()),
        );
        let stranger = new_user("e", "x");
        run(&mut state, DirectoryCommand::CreateUser(stranger.clone()));
        let reply = run(
            &mut state,
            DirectoryCommand::CreateGroup {
                domain: "d".parse().unwrap(),
                name: "g".parse().unwrap(),
                members: BTreeSet::from([stranger.user_id]),
                properties: BTreeMap::new(),
            },
        );
        assert!(matches!(reply, DirectoryReply::NotFound(m) if m.contains("not of domain")));
    }

    #[test]
    fn properties_set_and_delete_and_snapshot_round_trips() {
        let mut state = DirectoryState::default();
        run(
            &mut state,
            DirectoryCommand::CreateDomain("d".parse().unwrap()),
        );
        let a = new_user("d", "a");
        run(&mut state, DirectoryCommand::CreateUser(a.clone()));
        let set = PropertyChanges::from([
            ("k".to_string(), Some("v".to_string())),
            ("x".to_string(), Some("y".to_string())),
        ]);
        run(
            &mut state,
            DirectoryCommand::UpdateUser {
                user_id: a.user_id,
                properties: set,
                disabled: Some(true),
            },
        );
        let unset = PropertyChanges::from([("x".to_string(), None)]);
        run(
            &mut state,
            DirectoryCommand::UpdateUser {
                user_id: a.user_id,
                properties: unset,
                disabled: None,
            },
        );
        let user = state.user(&a.user_id).unwrap();
        assert_eq!(user.properties.len(), 1);
        assert!(user.disabled);
        let bytes = (state.snapshot())();
        let restored = state.restore(&bytes).unwrap();
        assert_eq!(restored.user(&a.user_id), state.user(&a.user_id));
        assert!(restored
            .user_by_login(&"d".parse().unwrap(), &"a".parse().unwrap())
            .is_some());
        assert!(state.restore(b"garbage").is_err());
        let garbage = state.apply(1, b"\xff\x00");
        assert!(matches!(
            decode::<DirectoryReply>(&garbage).unwrap(),
            DirectoryReply::Invalid(_)
        ));
    }
}
