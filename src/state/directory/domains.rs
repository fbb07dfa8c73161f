//! The directory's domains: reads, creation, their session limit, and deletion of an empty
//! domain.
//!
//! Owns the domain map of [`DirectoryState`]; reads users and groups (a domain that holds some
//! is not deleted) but must not change them.

use super::{DirectoryReply, DirectoryState};
use crate::model::{Domain, DomainName, SessionLimit};

impl DirectoryState {
    pub fn domain(&self, name: &DomainName) -> Option<&Domain> {
        self.domains.get(name)
    }

    pub fn domains(&self) -> impl Iterator<Item = &Domain> {
        self.domains.values()
    }

    pub(super) fn create_domain(&mut self, at_ms: u64, name: DomainName) -> DirectoryReply {
        if self.domains.contains_key(&name) {
            return DirectoryReply::Conflict(format!("domain {name} exists"));
        }
        let domain = Domain {
            name: name.clone(),
            created_at_ms: at_ms,
            session_limit: None,
        };
        self.domains.insert(name, domain.clone());
        DirectoryReply::Domain(domain)
    }

    pub(super) fn set_session_limit(
        &mut self,
        name: &DomainName,
        limit: Option<SessionLimit>,
    ) -> DirectoryReply {
        if limit.is_some_and(|l| l.max_sessions_per_user == 0) {
            return DirectoryReply::Invalid("max_sessions_per_user must be at least 1".into());
        }
        match self.domains.get_mut(name) {
            Some(domain) => {
                domain.session_limit = limit;
                DirectoryReply::Domain(domain.clone())
            }
            None => DirectoryReply::NotFound(format!("no domain {name}")),
        }
    }

    pub(super) fn delete_domain(&mut self, name: &DomainName) -> DirectoryReply {
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
}
