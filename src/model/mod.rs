//! The domain's records, as the state machines store them and the API shows them.

pub mod session;

pub use session::{CloseReason, NewSession, Session};
