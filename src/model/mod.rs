//! The domain's records, as the state machines store them and the API shows them.

pub mod identity;
pub mod session;

pub use identity::{
    Domain, DomainName, Group, GroupAddress, GroupName, Login, NameError, PropertyChanges, User,
    UserAddress, ADMINS_GROUP,
};
pub use session::{CloseReason, NewSession, Session};
