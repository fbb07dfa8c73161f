//! The command line's side of the REST API: where the api is, who the caller is, and errors in
//! the contract's format turned into one readable line.

use clap::Args;
use reqwest::Method;
use serde_json::Value;

#[derive(Args, Debug, Clone)]
pub struct ApiArgs {
    /// The api of any node.
    #[arg(
        long,
        visible_alias = "server",
        global = true,
        env = "SESSIONPLANE_API",
        default_value = "http://127.0.0.1:8080"
    )]
    pub api: String,
    /// A bearer token: an administrator's session token or a service token.
    #[arg(
        long,
        global = true,
        env = "SESSIONPLANE_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
    /// The global `--json`, set by the command line's entry point.
    #[arg(skip)]
    pub json: bool,
}

pub struct ApiClient {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl ApiClient {
    pub fn new(args: &ApiArgs) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()?;
        Ok(Self {
            http,
            base: args.api.trim_end_matches('/').to_string(),
            token: args.token.clone().filter(|t| !t.is_empty()),
        })
    }

    /// Sends a request; the answer's JSON (`Null` when empty), or the contract's error as text.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("cannot reach {}: {e}", self.base))?;
        let status = response.status();
        let unreached = response
            .headers()
            .get("x-unavailable-sites")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = response.text().await.unwrap_or_default();
        let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() {
            if let Some(sites) = unreached {
                eprintln!("warning: a partial answer; not reached: {sites}");
            }
            return Ok(json);
        }
        let message = json["message"].as_str().unwrap_or(text.as_str());
        let kind = json["type"].as_str().unwrap_or("error");
        match json["cause"].as_str() {
            Some(cause) => anyhow::bail!("{} {kind}: {message}\n  {cause}", status.as_u16()),
            None => anyhow::bail!("{} {kind}: {message}", status.as_u16()),
        }
    }
}

impl ApiClient {
    /// Sends a request and returns its status and JSON whatever the status (a containment
    /// answers 503 with its receipt).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("cannot reach {}: {e}", self.base))?;
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    /// Sends a GET and returns its status and JSON whatever the status (health answers 503
    /// with a report).
    pub async fn call_any(&self, method: Method, path: &str) -> anyhow::Result<(u16, Value)> {
        self.send(method, path, None).await
    }
}

/// A query string (`?a=1&b=2`) of the pairs that have a value; empty when none has.
pub fn query(pairs: &[(&str, Option<&str>)]) -> String {
    let parts: Vec<String> = pairs
        .iter()
        .filter_map(|(key, value)| value.map(|v| format!("{key}={}", segment(v))))
        .collect();
    match parts.is_empty() {
        true => String::new(),
        false => format!("?{}", parts.join("&")),
    }
}

/// Percent-encodes one path segment.
pub fn segment(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for byte in raw.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'@' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// A table for people, or pretty JSON for scripts.
pub fn print(json: bool, value: &Value, header: &[&str], rows: Vec<Vec<String>>) {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        );
        return;
    }
    let mut table = comfy_table::Table::new();
    table
        .load_preset(comfy_table::presets::NOTHING)
        .set_header(header.to_vec());
    for row in rows {
        table.add_row(row);
    }
    println!("{table}");
}

/// A password from standard input (one line), or a fresh one that is printed once.
pub fn password(from_stdin: bool) -> anyhow::Result<(String, bool)> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        let password = line.trim_end_matches(['\r', '\n']).to_string();
        anyhow::ensure!(!password.is_empty(), "no password on standard input");
        return Ok((password, false));
    }
    Ok((crate::iam::password::random_hex(12)?, true))
}
