//! The node's listeners against slow and abusive clients, domain-free: connection caps per
//! listener and per source address (`limits`), the open-file budget the caps fit in (`fds`),
//! and HTTP/1.1 serving with header, body and keep-alive timeouts whose own refusals carry the
//! contract's JSON body (`http`, `conn`, `answers`).

pub mod answers;
pub mod conn;
pub mod fds;
pub mod http;
pub mod limits;
pub mod settings;
