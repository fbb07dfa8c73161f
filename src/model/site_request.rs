//! A request for one site's api, kept as data: what the federation sends to another site, and
//! what a task record embeds to send again later.
//!
//! Owns the request's shape only; sending it is the federation's (`federation::remote`), and
//! this module must not reach the network or any other part of the node.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Verb {
    Get,
    Post,
    Delete,
}

/// A request for one site's api, as it is sent (and as a task keeps it to send again).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SiteRequest {
    pub verb: Verb,
    pub path: String,
    pub query: Vec<(String, String)>,
    /// JSON text.
    pub body: Option<String>,
}

impl SiteRequest {
    pub fn new(verb: Verb, path: impl Into<String>) -> Self {
        Self {
            verb,
            path: path.into(),
            query: Vec::new(),
            body: None,
        }
    }

    pub fn query(mut self, name: &str, value: impl Into<String>) -> Self {
        self.query.push((name.to_string(), value.into()));
        self
    }

    pub fn json(mut self, body: &serde_json::Value) -> Self {
        self.body = Some(body.to_string());
        self
    }

    /// The same request, for `site` alone.
    pub fn for_site(&self, site: &str) -> Self {
        let mut request = self.clone();
        request.query.retain(|(name, _)| name != "sites");
        request.query.push(("sites".into(), only(site)));
        if let Some(body) = &request.body {
            if let Ok(serde_json::Value::Object(mut fields)) = serde_json::from_str(body) {
                if fields.contains_key("sites") {
                    fields.insert("sites".into(), serde_json::json!([site]));
                    request.query.retain(|(name, _)| name != "sites");
                }
                request.body = Some(serde_json::Value::Object(fields).to_string());
            }
        }
        request
    }
}

/// The `sites` value that selects one site.
pub fn only(site: &str) -> String {
    serde_json::json!([site]).to_string()
}
