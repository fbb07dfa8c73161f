//! The node calls behind certificate reloads: each node of a site serves `reload-certificates`
//! and `certificates` on its cluster listener, and the node taking an api request asks every
//! node of its site, itself included. Owns the calls' names, wire form and timeout; what the
//! answers mean to a client is the api's.

use std::sync::Arc;
use std::time::Duration;

use sessionplane_cluster::{ClusterNode, PeerClient};

use crate::config::SiteNode;
use crate::node_ops::NodeAnswers;
use crate::state::{decode, encode};
use crate::tls::listeners::NodeCertificates;

/// The node call that reloads a node's certificates (body: the port, if any).
pub const RELOAD_CALL: &str = "reload-certificates";
/// The node call that describes a node's certificates.
pub const DESCRIBE_CALL: &str = "certificates";
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Lets peers ask this node to reload or describe its listeners' certificates.
pub fn serve(cluster: &ClusterNode, certificates: Arc<NodeCertificates>) {
    let reloads = certificates.clone();
    cluster.calls().serve(RELOAD_CALL, move |body| {
        let reloads = reloads.clone();
        Box::pin(async move {
            let port: Option<u16> = decode(&body).map_err(|e| e.to_string())?;
            let outcome = tokio::task::spawn_blocking(move || reloads.reload(port))
                .await
                .map_err(|e| e.to_string())?;
            encode(&outcome).map_err(|e| e.to_string())
        })
    });
    cluster.calls().serve(DESCRIBE_CALL, move |_| {
        let described = certificates.describe();
        Box::pin(async move { encode(&described).map_err(|e| e.to_string()) })
    });
}

/// Sends `call` with `body` to every node of the site at once: what each answered, or why not.
pub async fn ask_every_node<T: serde::de::DeserializeOwned>(
    peers: &PeerClient,
    site_nodes: &[SiteNode],
    call: &str,
    body: Vec<u8>,
) -> NodeAnswers<T> {
    let asks = site_nodes.iter().map(|node| {
        let (peers, body) = (peers.clone(), body.clone());
        async move {
            let answer = match peers
                .call_node(&node.cluster, call, body, CALL_TIMEOUT)
                .await
            {
                Ok(Ok(bytes)) => decode::<T>(&bytes).map_err(|e| e.to_string()),
                Ok(Err(refusal)) => Err(refusal),
                Err(e) => Err(e.to_string()),
            };
            (node.name.clone(), answer)
        }
    });
    futures_util::future::join_all(asks).await
}
