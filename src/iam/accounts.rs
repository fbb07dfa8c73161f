//! Changes to users that reach beyond the directory: a new password is hashed first; deleting
//! or disabling a user, or changing its password, closes its sessions (all but the caller's own
//! for a password change).

use std::collections::BTreeMap;

use uuid::Uuid;

use super::{Caller, Iam, IamError};
use crate::model::audit::NewAuditEvent;
use crate::model::{
    ChannelTarget, CloseReason, Closed, Containment, DomainName, Login, PropertyChanges, User,
    UserAddress,
};
use crate::state::directory::NewUser;
use crate::state::site::{Authority, Ended, Refusal};
use crate::state::StoreError;

/// The audit event a change records in its own entry; none for the system's own changes.
pub type Audit = Option<NewAuditEvent>;

/// The longest password taken: argon2 would hash more, but nobody types it.
pub const MAX_PASSWORD_CHARS: usize = 1024;

pub fn check_password(password: &str) -> Result<(), IamError> {
    if password.is_empty() {
        return Err(IamError::Invalid("the password is empty".into()));
    }
    if password.chars().count() > MAX_PASSWORD_CHARS {
        return Err(IamError::Invalid(format!(
            "the password is longer than {MAX_PASSWORD_CHARS} characters"
        )));
    }
    Ok(())
}

impl Iam {
    pub async fn create_user(
        &self,
        address: &UserAddress,
        password: &str,
        properties: BTreeMap<String, String>,
        audit: Audit,
    ) -> Result<User, IamError> {
        check_password(password)?;
        let new = NewUser {
            user_id: Uuid::now_v7(),
            domain: address.domain.clone(),
            login: address.login.clone(),
            password_hash: self.hasher.hash(password).await?,
            properties,
        };
        Ok(self.directory.audited(audit).create_user(new).await??)
    }

    /// A user by address, read after a barrier.
    pub async fn find_user(&self, address: &UserAddress) -> Result<User, IamError> {
        self.directory
            .read(|d| d.user_by_login(&address.domain, &address.login).cloned())
            .await?
            .ok_or_else(|| IamError::NotFound(format!("no user {address}")))
    }

    /// A user of `domain` named by id or by login, from this node's copy of the directory (after
    /// a barrier only when the copy does not know it); 404 when the domain or the user does not
    /// exist.
    /// A user named by id or by `login@domain`.
    pub async fn find_user_named(&self, user: &str) -> Result<User, IamError> {
        if let Ok(id) = user.parse::<Uuid>() {
            return self
                .directory
                .read_fresh_or_local(|d| d.user(&id).cloned())
                .await
                .ok_or_else(|| IamError::NotFound(format!("no user {id}")));
        }
        let address: UserAddress = user.parse().map_err(|e: crate::model::NameError| {
            IamError::Invalid(format!(
                "{user:?} is neither a user id nor login@domain: {e}"
            ))
        })?;
        self.find_user_in(&address.domain, address.login.as_str())
            .await
    }

    pub async fn find_user_in(&self, domain: &DomainName, user: &str) -> Result<User, IamError> {
        let by_id = user.parse::<Uuid>().ok();
        let login = match by_id {
            Some(_) => None,
            None => Some(
                user.parse::<Login>()
                    .map_err(|e| IamError::Invalid(e.to_string()))?,
            ),
        };
        // This node's copy first (no directory leader needed: a site cut off from it must still
        // end a user's sessions); a barrier only when the copy does not know the user yet.
        let found = self
            .directory
            .read_fresh_or_local(|d| match (&by_id, &login) {
                (Some(id), _) => d.user(id).filter(|u| u.domain == *domain).cloned(),
                (_, Some(login)) => d.user_by_login(domain, login).cloned(),
                (None, None) => None,
            })
            .await;
        if found.is_none() {
            let domain_known = self
                .directory
                .read_fresh_or_local(|d| d.domain(domain).map(|_| ()))
                .await
                .is_some();
            if !domain_known {
                return Err(IamError::NotFound(format!("no domain {domain}")));
            }
        }
        found.ok_or_else(|| IamError::NotFound(format!("no user {user} in domain {domain}")))
    }

    pub async fn update_user(
        &self,
        user: &User,
        properties: PropertyChanges,
        disabled: Option<bool>,
        audit: Audit,
    ) -> Result<User, IamError> {
        let updated = self
            .directory
            .audited(audit)
            .update_user(user.user_id, properties, disabled)
            .await??;
        if disabled == Some(true) {
            self.end_user_access(&updated, None, CloseReason::UserDisabled)
                .await?;
        }
        Ok(updated)
    }

    /// The user itself must give its old password; an administrator of the user's domain
    /// acting on someone else need not.
    pub async fn change_password(
        &self,
        caller: &Caller,
        user: &User,
        old: Option<&str>,
        new: &str,
        source: Option<std::net::IpAddr>,
        audit: Audit,
    ) -> Result<(), IamError> {
        let is_self = caller.user().is_some_and(|u| u.user_id == user.user_id);
        if !is_self {
            caller.require_admin_of(&user.domain)?;
        } else {
            let old = old.ok_or_else(|| IamError::Invalid("oldPwd is required".into()))?;
            // Under the login ban like every password check: a stolen token guesses no faster.
            let checked = self
                .check_password(user.domain.as_str(), user.login.as_str(), old, source)
                .await;
            match checked {
                Err(IamError::BadCredentials) => {
                    return Err(IamError::Forbidden(
                        "the old password does not match".into(),
                    ))
                }
                checked => checked.map(|_| ())?,
            }
        }
        check_password(new)?;
        let keep = caller.session().map(|s| s.session_id);
        let password_hash = self.hasher.hash(new).await?;
        self.directory
            .audited(audit)
            .set_password(user.user_id, password_hash, keep)
            .await??;
        self.end_user_access(user, keep, CloseReason::Revoked)
            .await?;
        Ok(())
    }

    pub async fn delete_users(&self, users: &[User], audit: Audit) -> Result<(), IamError> {
        let ids = users.iter().map(|u| u.user_id).collect();
        self.directory.audited(audit).delete_users(ids).await??;
        for user in users {
            self.end_user_access(user, None, CloseReason::UserDisabled)
                .await?;
        }
        Ok(())
    }

    /// Closes the user's sessions at this site, but `except`; how many were closed.
    pub async fn close_user_sessions(
        &self,
        user: &User,
        except: Option<Uuid>,
        reason: CloseReason,
        authority: Authority,
        audit: Audit,
    ) -> Result<usize, IamError> {
        let ended = self
            .site
            .audited(audit)
            .end_user_sessions(
                user.domain.to_string(),
                user.user_id,
                except,
                reason,
                authority,
            )
            .await;
        Ok(revoked(ended)?.sessions.len())
    }

    /// Ends one session at this site: whether there was one.
    pub async fn end_session(
        &self,
        session_id: Uuid,
        reason: CloseReason,
        authority: Authority,
        audit: Audit,
    ) -> Result<bool, IamError> {
        let ended = self
            .site
            .audited(audit)
            .end_session(session_id, reason, authority)
            .await;
        Ok(!revoked(ended)?.sessions.is_empty())
    }

    /// Ends what a user has open at this site when its account changes (deleted, disabled, new
    /// password): its sessions but `except`, and all its mail channels.
    async fn end_user_access(
        &self,
        user: &User,
        except: Option<Uuid>,
        reason: CloseReason,
    ) -> Result<(), IamError> {
        self.close_user_sessions(user, except, reason, Authority::system(), None)
            .await?;
        let target = ChannelTarget::Users(vec![user.address().to_string()]);
        self.site.disconnect_channels(target).await?;
        Ok(())
    }
}

impl Iam {
    /// Contains a user at this site in one entry, if `authority` still may when it applies:
    /// what the group ended, and the entry's log index.
    pub async fn contain(
        &self,
        containment: Containment,
        authority: Authority,
        event: NewAuditEvent,
    ) -> Result<(Closed, u64), IamError> {
        match self
            .site
            .audited(event)
            .contain(containment, authority)
            .await?
        {
            Ok(contained) => Ok(contained),
            Err(refusal) => Err(refused(refusal)),
        }
    }
}

fn refused(refusal: Refusal) -> IamError {
    match refusal {
        Refusal::CallerSessionEnded => IamError::SessionClosed,
        Refusal::OutsideDomain(domain) => {
            IamError::Forbidden(format!("you do not administer domain {domain}"))
        }
    }
}

/// The sessions a revocation ended, or why the site group refused it (see [`Authority`]).
fn revoked(ended: Result<Result<Ended, Refusal>, StoreError>) -> Result<Ended, IamError> {
    ended?.map_err(refused)
}
