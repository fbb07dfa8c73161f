//! The directory's groups: reads, creation and changes (members of the group's own domain only),
//! and who administers what (membership of `admins`).
//!
//! Owns the group map of [`DirectoryState`]; reads users but must not change them.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::{apply_changes, DirectoryReply, DirectoryState};
use crate::model::{DomainName, Group, GroupName, PropertyChanges, User, ADMINS_GROUP};

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

impl DirectoryState {
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

    /// `None` when every member is a user of `domain`, else the reason.
    pub(super) fn foreign_member(
        &self,
        domain: &DomainName,
        members: &BTreeSet<Uuid>,
    ) -> Option<String> {
        members.iter().find_map(|id| match self.users.get(id) {
            None => Some(format!("no user {id}")),
            Some(user) if &user.domain != domain => Some(format!(
                "user {}@{} is not of domain {domain}",
                user.login, user.domain
            )),
            Some(_) => None,
        })
    }

    pub(super) fn create_group(
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

    pub(super) fn update_group(
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
}
