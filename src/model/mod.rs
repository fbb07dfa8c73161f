//! The domain's records, as the state machines store them and the API shows them.

pub mod channel;
pub mod connection;
pub mod identity;
pub mod session;

pub use channel::{Channel, ChannelTarget, Endpoint, NewChannel, Protocol};
pub use connection::{Connection, NewConnection, Pid};
pub use identity::{
    Domain, DomainName, Group, GroupAddress, GroupName, Login, NameError, PropertyChanges, User,
    UserAddress, ADMINS_GROUP,
};
pub use session::{CloseReason, NewSession, Session};
