//! sessionplane, reached the way its users reach it. Sessions are created through the site
//! group's propose endpoint on the cluster listener (what a login does after the password check;
//! the password hash would otherwise be all that is measured, and etcd and Redis check none);
//! everything else goes through the public REST API with an administrator's token: revoke one
//! (`DELETE …/ws/sessions/{id}`), revoke a user (`POST …/ws/sessions` logout), list a user's
//! sessions and list them all.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sessionplane::testing::NewSession;
use sessionplane::testing::{SiteAnswer, SiteCall};
use sessionplane_cluster::{GroupId, PeerClient};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::dataset::{login, session_id, Dataset, Record, DIRECTORY_USERS, DOMAIN};

const SESSIONS: &str = "/rest/v1/master/logicalroles/ws/sessions";
const TIMEOUT: Duration = Duration::from_secs(30);
/// The password of the benchmark's directory users.
const USER_PASSWORD: &str = "bench-user-password";
/// The directory user that logs in to open the websockets of the socket-close rounds.
pub const SOCKET_USER: u64 = DIRECTORY_USERS;

#[derive(Clone)]
pub struct Sessionplane {
    api: Vec<String>,
    cluster: Vec<String>,
    group: GroupId,
    peers: PeerClient,
    http: reqwest::Client,
    admin: String,
    pub data: Dataset,
}

pub struct Endpoints {
    pub api: Vec<String>,
    pub cluster: Vec<String>,
    pub site: String,
    pub secret: String,
    pub admin_password: String,
}

impl Sessionplane {
    pub async fn connect(endpoints: Endpoints) -> Result<Self> {
        ensure!(
            !endpoints.api.is_empty() && !endpoints.cluster.is_empty(),
            "no node given"
        );
        let http = reqwest::Client::builder().timeout(TIMEOUT).build()?;
        let admin = token(
            &http,
            &endpoints.api[0],
            "master.domain",
            "admin",
            &endpoints.admin_password,
        )
        .await
        .context("administrator login")?;
        let mut node = Self {
            group: GroupId::new(format!("site:{}", endpoints.site))?,
            peers: PeerClient::new(&endpoints.secret, None, Default::default())?,
            api: endpoints.api,
            cluster: endpoints.cluster,
            http,
            admin,
            data: Dataset::default(),
        };
        node.data.directory_ids = node.directory_ids().await?;
        Ok(node)
    }

    /// The ids of the benchmark's directory users, as far as they exist.
    async fn directory_ids(&self) -> Result<Vec<uuid::Uuid>> {
        let mut ids = Vec::new();
        for user in 0..DIRECTORY_USERS {
            let url = format!("{}/users/{}@{DOMAIN}", self.api[0], login(user));
            let answer = self.call(Method::GET, url, None).await?;
            if answer.0 != StatusCode::OK {
                break;
            }
            let id = answer.1["user_id"].as_str().context("user_id")?;
            ids.push(id.parse()?);
        }
        Ok(ids)
    }

    /// Creates the benchmark's domain and directory users (once; later runs find them).
    pub async fn prepare(&mut self) -> Result<()> {
        let url = format!("{}/domains/{DOMAIN}", self.api[0]);
        let (status, body) = self.call(Method::PUT, url, None).await?;
        ensure!(
            status.is_success() || status == StatusCode::CONFLICT,
            "domain: {status} {body}"
        );
        for user in 0..=SOCKET_USER {
            let url = format!("{}/users/{}@{DOMAIN}", self.api[0], login(user));
            let body = json!({ "password": USER_PASSWORD });
            let (status, answer) = self.call(Method::PUT, url, Some(body)).await?;
            ensure!(
                status.is_success() || status == StatusCode::CONFLICT,
                "user {user}: {status} {answer}"
            );
        }
        self.data.directory_ids = self.directory_ids().await?;
        Ok(())
    }

    async fn call(
        &self,
        method: Method,
        url: String,
        body: Option<Value>,
    ) -> Result<(StatusCode, Value)> {
        let mut request = self.http.request(method, url).bearer_auth(&self.admin);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let bytes = response.bytes().await?;
        Ok((
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        ))
    }

    pub async fn create(&self, n: u64, record: &Record) -> Result<()> {
        let command = SiteCall::create_session(NewSession {
            session_id: record.session_id,
            user_id: record.user_id,
            login: record.login.clone(),
            domain: record.domain.to_string(),
            lifetime_ms: record.ttl * 1000,
            client_addr: record.client_addr.parse().ok(),
            user_agent: Some(record.user_agent.clone()),
        });
        let node = &self.cluster[n as usize % self.cluster.len()];
        let reply = command
            .propose(&self.peers, node, &self.group, TIMEOUT)
            .await?
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        match reply {
            SiteAnswer::Session(_) => Ok(()),
            other => bail!("create answered {other:?}"),
        }
    }

    fn node(&self, round: u64) -> &str {
        &self.api[round as usize % self.api.len()]
    }

    pub async fn revoke_one(&self, n: u64) -> Result<()> {
        let url = format!("{}{SESSIONS}/{}", self.node(n), session_id(n));
        let (status, body) = self.call(Method::DELETE, url, None).await?;
        ensure!(status == StatusCode::NO_CONTENT, "revoke: {status} {body}");
        Ok(())
    }

    pub async fn revoke_user(&self, user: u64) -> Result<usize> {
        let url = format!("{}{SESSIONS}", self.node(user));
        let body = json!({"action": "logout", "domain": DOMAIN, "user": self.data.user_id(user)});
        let (status, answer) = self.call(Method::POST, url, Some(body)).await?;
        ensure!(status == StatusCode::OK, "logout: {status} {answer}");
        Ok(answer["closed"].as_u64().unwrap_or(0) as usize)
    }

    pub async fn list_user(&self, user: u64) -> Result<usize> {
        let url = format!(
            "{}{SESSIONS}?domain={DOMAIN}&user={}",
            self.node(user),
            self.data.user_id(user)
        );
        let (status, answer) = self.call(Method::GET, url, None).await?;
        ensure!(status == StatusCode::OK, "list: {status} {answer}");
        Ok(answer.as_array().map_or(0, Vec::len))
    }

    pub async fn list_all(&self) -> Result<usize> {
        let url = format!("{}{SESSIONS}", self.api[0]);
        let response = self.http.get(url).bearer_auth(&self.admin).send().await?;
        ensure!(
            response.status() == StatusCode::OK,
            "list all: {}",
            response.status()
        );
        let bytes = response.bytes().await?;
        let items: Vec<serde::de::IgnoredAny> = serde_json::from_slice(&bytes)?;
        Ok(items.len())
    }

    pub async fn exists(&self, n: u64) -> Result<bool> {
        let url = format!(
            "{}{SESSIONS}?domain={DOMAIN}&user={}",
            self.api[0],
            self.data.session(n).user_id
        );
        let (status, answer) = self.call(Method::GET, url, None).await?;
        ensure!(status == StatusCode::OK, "list: {status} {answer}");
        let id = session_id(n).to_string();
        Ok(answer
            .as_array()
            .is_some_and(|items| items.iter().any(|i| i["session_id"] == id.as_str())))
    }

    /// One round of revocation-to-socket-close: a websocket opened on one node for a fresh
    /// session, the session revoked through another, timed until the socket's close frame.
    pub async fn socket_close(&self, round: u64) -> Result<Duration> {
        let answer = login_answer(
            &self.http,
            self.node(round),
            DOMAIN,
            &login(SOCKET_USER),
            USER_PASSWORD,
        )
        .await?;
        let token = answer["token"].as_str().context("login token")?;
        let id = answer["session_id"].as_str().context("login session")?;
        let socket_node = self.node(round + 1).replacen("http://", "ws://", 1);
        let request = format!("{socket_node}/rest/v1/ws?token={token}").into_client_request()?;
        let (mut socket, _) = tokio_tungstenite::connect_async(request).await?;
        let url = format!("{}{SESSIONS}/{id}", self.node(round + 2));
        let started = Instant::now();
        let (status, body) = self.call(Method::DELETE, url, None).await?;
        ensure!(status == StatusCode::NO_CONTENT, "revoke: {status} {body}");
        loop {
            match tokio::time::timeout(TIMEOUT, socket.next()).await? {
                Some(Ok(Message::Close(frame))) => {
                    let code = frame.map(|f| u16::from(f.code));
                    ensure!(code == Some(4001), "closed with {code:?}");
                    return Ok(started.elapsed());
                }
                Some(Ok(_)) => continue,
                other => bail!("socket ended without a close frame: {other:?}"),
            }
        }
    }
}

async fn token(
    http: &reqwest::Client,
    base: &str,
    domain: &str,
    login: &str,
    pwd: &str,
) -> Result<String> {
    let body = login_answer(http, base, domain, login, pwd).await?;
    Ok(body["token"].as_str().context("token")?.to_string())
}

/// `POST /rest/v1/iam/sessions` for a token session; the answer's body.
async fn login_answer(
    http: &reqwest::Client,
    base: &str,
    domain: &str,
    login: &str,
    pwd: &str,
) -> Result<Value> {
    let answer = http
        .post(format!("{base}/rest/v1/iam/sessions"))
        .json(&json!({"domain": domain, "login": login, "pwd": pwd, "session_type": "token"}))
        .send()
        .await?;
    let status = answer.status();
    let body: Value = answer.json().await.unwrap_or(Value::Null);
    ensure!(status == StatusCode::OK, "login: {status} {body}");
    Ok(body)
}
