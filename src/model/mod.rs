//! The domain's records, as the state machines store them and the API shows them.
//!
//! The bottom of the node: plain data and its rules, with no I/O. It imports nothing of the
//! crate but itself; every other module may import it.

pub mod audit;
pub mod channel;
pub mod connection;
pub mod delivery;
pub mod event;
pub mod identity;
pub mod incident;
pub mod lock;
pub mod session;
pub mod site_request;
pub mod task;
pub mod time;

pub use channel::{Channel, ChannelTarget, Endpoint, NewChannel, Protocol};
pub use connection::{Connection, NewConnection, Pid};
pub use identity::{
    Domain, DomainName, Group, GroupAddress, GroupName, Login, NameError, OnLimit, PropertyChanges,
    SessionLimit, User, UserAddress, ADMINS_GROUP,
};
pub use incident::{Closed, Containment, NodePart, NodeReport, Receipt, SiteReceipt, SiteStatus};
pub use lock::{Entrant, Lock, LockTarget};
pub use session::{CloseReason, NewSession, Session};
pub use site_request::SiteRequest;
