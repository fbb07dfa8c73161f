//! The directory's users: reads by id and by login, creation (unique login per domain), property
//! and password changes, and all-or-nothing deletes.
//!
//! Owns the user and login maps of [`DirectoryState`]; a delete also drops the users from their
//! groups. Recording the access a change revokes is the dispatch's (`revocations`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{apply_changes, DirectoryReply, DirectoryState};
use crate::model::{DomainName, Login, PropertyChanges, User};

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

impl DirectoryState {
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

    pub(super) fn create_user(&mut self, at_ms: u64, new: NewUser) -> DirectoryReply {
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

    pub(super) fn update_user(
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

    pub(super) fn set_password(&mut self, user_id: Uuid, password_hash: String) -> DirectoryReply {
        match self.users.get_mut(&user_id) {
            Some(user) => {
                user.password_hash = password_hash;
                DirectoryReply::User(user.clone())
            }
            None => DirectoryReply::NotFound(format!("no user {user_id}")),
        }
    }

    pub(super) fn delete_users(&mut self, ids: &[Uuid]) -> DirectoryReply {
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
}
