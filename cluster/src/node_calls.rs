//! Calls from one node to another that are not Raft: a domain registers a named handler
//! (`reload-certificates`, ...) and peers call it on `/node/call/{name}` over the cluster
//! listener, behind the cluster secret. Bodies are opaque bytes; the handler decides their form.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

pub type CallFuture = Pin<Box<dyn Future<Output = Result<Vec<u8>, String>> + Send>>;
type Handler = Arc<dyn Fn(Vec<u8>) -> CallFuture + Send + Sync>;

/// The handlers this node serves, by name. Cheap to clone.
#[derive(Clone, Default)]
pub struct NodeCalls(Arc<RwLock<HashMap<String, Handler>>>);

impl NodeCalls {
    /// Serves `name` with `handler` (replacing any earlier one).
    pub fn serve(
        &self,
        name: &str,
        handler: impl Fn(Vec<u8>) -> CallFuture + Send + Sync + 'static,
    ) {
        self.0
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), Arc::new(handler));
    }

    pub(crate) fn get(&self, name: &str) -> Option<Handler> {
        self.0
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }
}
