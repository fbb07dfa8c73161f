//! TLS for the node's listeners: certificates loaded from PEM files, served through a resolver
//! that a reload swaps atomically (new handshakes get the new pair, established connections keep
//! theirs), validation before any swap, a self-signed pair for a node given none, and the
//! details `GET /servers/certificates` shows.
