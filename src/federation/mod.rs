//! Sites: which ones a request selects (the `sites` parameter) and, later, the calls that fan a
//! request out to them. Owns nothing of a site's state.

pub mod selector;

pub use selector::{SelectorError, SiteSelector, Sites};
