//! The node's configuration: a TOML file where every field has a default, so `serve` with no file
//! at all runs one node of site `local`. Unknown keys are refused, so a typo never goes unnoticed.

pub mod events;
pub mod mail;
pub mod proxy;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sessionplane_cluster::{PeerRoutes, RaftTuning};

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// This node's id, unique in the deployment.
    pub node_id: u64,
    /// This node's name, shown as `name@host` in listings.
    pub node_name: String,
    /// The site (data center) this node belongs to.
    pub site: String,
    /// Where the Raft log, snapshots and generated secrets live.
    pub data_dir: PathBuf,
    /// Shared by every node of the deployment; peers present it on every cluster call.
    /// Empty: read `cluster_secret_file`, or (single node only) generate one into the data dir.
    pub cluster_secret: String,
    pub cluster_secret_file: Option<PathBuf>,
    pub listen: Listen,
    /// The nodes of this site, this one included. Empty: this node alone.
    /// The first one initializes the site's group on its very first start.
    pub site_nodes: Vec<SiteNode>,
    /// The deployment's other sites and their nodes. Empty: this site is the whole deployment.
    pub sites: Vec<RemoteSite>,
    /// The `directory` group (domains, users, groups), which spans every site.
    pub directory: DirectorySettings,
    /// Calls to the other sites' api listeners, and the retries of writes that missed a site.
    pub federation: FederationSettings,
    pub raft: RaftSettings,
    pub sessions: SessionSettings,
    /// The domain of the deployment's administrators (group `admins` in it).
    pub master_domain: String,
    pub iam: IamSettings,
    pub gateway: GatewayConfig,
    pub mail: MailConfig,
    pub tls: TlsConfig,
    /// Connection caps, timeouts and the open files kept in reserve.
    pub limits: LimitsConfig,
    /// The audit trail of the site group.
    pub audit: AuditSettings,
    /// The applications behind this node (`[[proxy]]`), longest prefix first at a request.
    pub proxy: Vec<proxy::ProxyRoute>,
    /// The site's event feed (`[events]`), and who it is delivered to.
    pub events: events::EventSettings,
    pub webhook: Vec<events::Webhook>,
    pub signals: events::SignalsSettings,
    /// The first administrator's password, taken once on the deployment's first start (from
    /// `SESSIONPLANE_ADMIN_PASSWORD`; never from a file). Unset: one is generated and printed.
    #[serde(skip)]
    pub initial_admin_password: Option<Secret>,
}

/// A secret held in memory: its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl Secret {
    /// The first line of `file`, trimmed; refused when there is none.
    pub fn first_line_of(file: &std::path::Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
        let secret = text.lines().next().unwrap_or("").trim().to_string();
        match secret.is_empty() {
            true => Err(format!("{} is empty", file.display())),
            false => Ok(Self(secret)),
        }
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<secret>")
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IamSettings {
    /// Signs session tokens (HS256). Every node of a site needs the same key: set it here or in
    /// `token_key_file`. Both empty on a lone node: one is generated into <data_dir>/token_key.
    pub token_key: String,
    pub token_key_file: Option<PathBuf>,
    /// Verifies service tokens (`sub`, `admin: true`): an HS256 secret, or a PEM public key for
    /// RS256 / EdDSA. Unset: service tokens are refused.
    pub service_key_file: Option<PathBuf>,
    pub service_key_algorithm: ServiceKeyAlgorithm,
    /// Failed logins of one login@domain, site-wide, that ban it for the rest of the window.
    pub max_login_failures: u32,
    pub login_failure_window_secs: u64,
    /// Networks (CIDR) whose password checks are counted apart from everyone else's: a ban
    /// that logins from elsewhere earned does not lock these sources out, and they have a
    /// ban of their own. Empty: every source counts together.
    pub trusted_networks: Vec<ipnet::IpNet>,
    pub argon2: Argon2Settings,
    /// Password hashes computed at once; 0: one per core.
    pub hash_threads: usize,
}

/// The IMAP and SMTP listeners.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailConfig {
    /// Off: no IMAP or SMTP listener at all.
    pub enabled: bool,
    /// The name the listeners greet with; empty: the node's name.
    pub hostname: String,
    /// Whether LOGIN / AUTH are taken before TLS on the STARTTLS ports.
    pub allow_plaintext_auth: bool,
    /// A connection silent this long is closed (IMAP's IDLE has its own 29-minute limit).
    pub imap_idle_timeout_secs: u64,
    pub smtp_idle_timeout_secs: u64,
    /// The longest command line taken.
    pub max_line_bytes: usize,
    /// The largest IMAP literal or SMTP AUTH payload taken.
    pub max_literal_bytes: usize,
    /// A TLS handshake that does not finish in this time is dropped.
    pub handshake_timeout_secs: u64,
    /// Connections at once on the mail listeners together; more are refused.
    pub max_connections: usize,
    /// The largest IMAP literal (an APPEND's message) relayed to the IMAP server upstream; a
    /// larger one ends the connection.
    pub max_message_bytes: u64,
    /// The mail servers authenticated channels are relayed to. Unset: none, the listeners
    /// serve on their own.
    pub upstream: mail::MailUpstreamConfig,
}

/// What slow and abusive clients may hold: the listeners' connection caps (in all, and from one
/// source address), the api and cluster listeners' HTTP timeouts and head limits, and the open
/// files kept back from the listeners.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Open files the listeners' caps leave for storage, peers and outgoing calls; the caps are
    /// scaled down to fit in the open-file limit less this (at most half the limit).
    pub reserved_fds: u64,
    /// A request's head (from its first byte, or from the connection's start) must be in
    /// within this time.
    pub header_read_timeout_ms: u64,
    /// The longest wait for the next piece of a request's body.
    pub body_read_timeout_ms: u64,
    /// A kept-alive connection with no new request for this long is closed.
    pub keep_alive_timeout_ms: u64,
    pub max_uri_bytes: usize,
    /// The request line and every header, together.
    pub max_header_bytes: usize,
    pub max_headers: usize,
    pub api_max_connections: usize,
    pub api_max_connections_per_source: usize,
    pub cluster_max_connections: usize,
    pub cluster_max_connections_per_source: usize,
    /// On the mail listeners together (their cap in all is `[mail] max_connections`).
    pub mail_max_connections_per_source: usize,
}

/// Certificates: one pair for every TLS listener, and optionally a pair per listener
/// (`api`, `imap`, `imaps`, `smtp`, `smtps`). No pair at all: a self-signed one is generated
/// into `<data_dir>/tls/` on first start.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    pub listeners: std::collections::BTreeMap<String, CertFiles>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// The listeners that may have a certificate of their own.
pub const TLS_LISTENERS: [&str; 5] = ["api", "imap", "imaps", "smtp", "smtps"];

/// The websocket gateway (`GET /rest/v1/ws`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// The server pings every socket this often.
    pub ping_interval_ms: u64,
    /// A socket silent (not even a pong) for this long is closed.
    pub idle_timeout_ms: u64,
    /// A message a client does not take within this time drops its socket.
    pub send_timeout_ms: u64,
    /// The largest message a client may send.
    pub max_message_bytes: usize,
    /// The connections of a node unreachable for this long are forgotten.
    pub reap_dead_node_after_ms: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServiceKeyAlgorithm {
    HS256,
    RS256,
    EdDSA,
}

/// argon2id cost; the defaults are OWASP's (19 MiB, 2 passes, 1 lane).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Argon2Settings {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Listen {
    pub api: SocketAddr,
    /// Whether the api listener speaks TLS (HTTPS and WSS), with the `api` certificate.
    pub api_tls: bool,
    pub cluster: SocketAddr,
    /// IMAP with STARTTLS, and with implicit TLS.
    pub imap: SocketAddr,
    pub imaps: SocketAddr,
    /// SMTP submission with STARTTLS, and with implicit TLS.
    pub smtp: SocketAddr,
    pub smtps: SocketAddr,
    /// The `host:port` peers dial for this node's cluster listener (default: `cluster`).
    pub advertise_cluster: Option<String>,
    /// The local address this node's outgoing cluster and federation connections come from
    /// (default: the system's choice), for hosts with several addresses and firewalls by source.
    pub source_address: Option<std::net::IpAddr>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteNode {
    pub id: u64,
    pub name: String,
    /// The node's cluster listener, `host:port`.
    pub cluster: String,
    /// The node's api listener as a base URL (`http://host:port` or `https://…`); needed for
    /// the nodes of other sites, which federated requests call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api: Option<String>,
}

/// Another site of the deployment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteSite {
    pub name: String,
    pub nodes: Vec<SiteNode>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DirectorySettings {
    /// The node ids that vote in the directory group, spread over the sites; the first one
    /// creates the group on the deployment's first start. Every other node is a learner that
    /// keeps a local copy. Empty: this site's nodes (a one-site deployment only).
    pub voters: Vec<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FederationSettings {
    /// How long one remote site may take to answer, all its nodes tried.
    pub timeout_ms: u64,
    /// The first and the longest wait between two attempts of a write that missed a site.
    pub retry_initial_ms: u64,
    pub retry_max_ms: u64,
    /// PEM certificates trusted for the other sites' api listeners over https, besides the
    /// system's roots.
    pub ca_file: Option<PathBuf>,
}

impl Default for FederationSettings {
    fn default() -> Self {
        Self {
            timeout_ms: 2_000,
            retry_initial_ms: 500,
            retry_max_ms: 10_000,
            ca_file: None,
        }
    }
}

/// A shorter lease renews too often to be worth it; a longer one holds revocations back for too
/// long while a node is down.
const MIN_READ_LEASE_MS: u64 = 40;
const MAX_READ_LEASE_MS: u64 = 10_000;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RaftSettings {
    pub heartbeat_ms: u64,
    pub election_timeout_min_ms: u64,
    pub election_timeout_max_ms: u64,
    pub snapshot_every: u64,
    pub logs_kept_after_snapshot: u64,
    pub operation_timeout_ms: u64,
    /// How long after a read barrier a node checks tokens from its own copy of the site (see
    /// docs/DECISIONS.md, "The token check without a round trip"); a revocation waits up to a
    /// quarter more than this for a node that does not confirm it.
    pub read_lease_ms: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionSettings {
    /// Lifetime of a new or renewed session.
    pub lifetime_secs: u64,
    /// How often the site leader looks for expired sessions to purge.
    pub purge_interval_ms: u64,
    /// Most sessions one purge entry removes.
    pub purge_batch: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            node_id: 1,
            node_name: "node1".into(),
            site: "local".into(),
            data_dir: PathBuf::from("./data"),
            cluster_secret: String::new(),
            cluster_secret_file: None,
            listen: Listen::default(),
            site_nodes: Vec::new(),
            sites: Vec::new(),
            directory: DirectorySettings::default(),
            federation: FederationSettings::default(),
            raft: RaftSettings::default(),
            sessions: SessionSettings::default(),
            master_domain: "master.domain".into(),
            iam: IamSettings::default(),
            gateway: GatewayConfig::default(),
            mail: MailConfig::default(),
            tls: TlsConfig::default(),
            limits: LimitsConfig::default(),
            audit: AuditSettings::default(),
            proxy: Vec::new(),
            events: events::EventSettings::default(),
            webhook: Vec::new(),
            signals: events::SignalsSettings::default(),
            initial_admin_password: None,
        }
    }
}

impl Default for IamSettings {
    fn default() -> Self {
        Self {
            token_key: String::new(),
            token_key_file: None,
            service_key_file: None,
            service_key_algorithm: ServiceKeyAlgorithm::HS256,
            max_login_failures: 5,
            trusted_networks: Vec::new(),
            login_failure_window_secs: 180,
            argon2: Argon2Settings::default(),
            hash_threads: 0,
        }
    }
}

impl Default for MailConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            hostname: String::new(),
            allow_plaintext_auth: false,
            imap_idle_timeout_secs: 30 * 60,
            smtp_idle_timeout_secs: 5 * 60,
            max_line_bytes: 16 * 1024,
            max_literal_bytes: 64 * 1024,
            handshake_timeout_secs: 10,
            max_connections: 10_000,
            max_message_bytes: 64 * 1024 * 1024,
            upstream: mail::MailUpstreamConfig::default(),
        }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            reserved_fds: 512,
            header_read_timeout_ms: 10_000,
            body_read_timeout_ms: 30_000,
            keep_alive_timeout_ms: 75_000,
            max_uri_bytes: 8 * 1024,
            max_header_bytes: 64 * 1024,
            max_headers: 100,
            api_max_connections: 16_384,
            api_max_connections_per_source: 256,
            cluster_max_connections: 1_024,
            cluster_max_connections_per_source: 128,
            mail_max_connections_per_source: 64,
        }
    }
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            ping_interval_ms: 30_000,
            idle_timeout_ms: 75_000,
            send_timeout_ms: 10_000,
            max_message_bytes: 64 * 1024,
            reap_dead_node_after_ms: 10_000,
        }
    }
}

impl Default for Argon2Settings {
    fn default() -> Self {
        Self {
            memory_kib: 19 * 1024,
            iterations: 2,
            parallelism: 1,
        }
    }
}

impl Default for Listen {
    fn default() -> Self {
        Self {
            api: SocketAddr::from(([127, 0, 0, 1], 8080)),
            api_tls: false,
            cluster: SocketAddr::from(([127, 0, 0, 1], 7000)),
            imap: SocketAddr::from(([127, 0, 0, 1], 1143)),
            imaps: SocketAddr::from(([127, 0, 0, 1], 1993)),
            smtp: SocketAddr::from(([127, 0, 0, 1], 1587)),
            smtps: SocketAddr::from(([127, 0, 0, 1], 1465)),
            advertise_cluster: None,
            source_address: None,
        }
    }
}

impl Default for RaftSettings {
    fn default() -> Self {
        let t = RaftTuning::default();
        Self {
            heartbeat_ms: t.heartbeat.as_millis() as u64,
            election_timeout_min_ms: t.election_timeout_min.as_millis() as u64,
            election_timeout_max_ms: t.election_timeout_max.as_millis() as u64,
            snapshot_every: t.snapshot_every,
            logs_kept_after_snapshot: t.logs_kept_after_snapshot,
            operation_timeout_ms: t.operation_timeout.as_millis() as u64,
            read_lease_ms: t.read_lease.as_millis() as u64,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditSettings {
    /// How long the site keeps an audit event; the leader forgets older ones in batches.
    pub retention_secs: u64,
}

impl Default for AuditSettings {
    fn default() -> Self {
        Self {
            retention_secs: 90 * 24 * 3600,
        }
    }
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            lifetime_secs: 12 * 3600,
            purge_interval_ms: 250,
            purge_batch: 5_000,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.into(),
            source,
        })?;
        let config: Config = toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.into(),
            source: Box::new(source),
        })?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if !valid_name(&self.site) {
            return invalid(format!("site {:?}: use 1 to 48 of a-z 0-9 - _", self.site));
        }
        if self.node_name.is_empty() || self.node_name.contains(['@', '/', ' ']) {
            return invalid(format!(
                "node_name {:?}: non-empty, no '@', '/' or space",
                self.node_name
            ));
        }
        if !self.site_nodes.is_empty() {
            if !self.site_nodes.iter().any(|n| n.id == self.node_id) {
                return invalid(format!(
                    "site_nodes does not list this node (node_id {})",
                    self.node_id
                ));
            }
            let mut ids: Vec<u64> = self.site_nodes.iter().map(|n| n.id).collect();
            ids.sort_unstable();
            ids.dedup();
            if ids.len() != self.site_nodes.len() {
                return invalid("site_nodes lists a node id twice".into());
            }
            if self.site_nodes.len() > 1
                && self.cluster_secret.is_empty()
                && self.cluster_secret_file.is_none()
            {
                return invalid(
                    "a site of several nodes needs cluster_secret or cluster_secret_file".into(),
                );
            }
            if self.site_nodes.len() > 1
                && self.iam.token_key.is_empty()
                && self.iam.token_key_file.is_none()
            {
                return invalid(
                    "a site of several nodes needs iam.token_key or iam.token_key_file (one key shared by its nodes)"
                        .into(),
                );
            }
        }
        self.validate_sites()?;
        proxy::validate(&self.proxy).map_err(ConfigError::Invalid)?;
        events::validate(&self.events, &self.webhook, &self.signals)
            .map_err(ConfigError::Invalid)?;
        if self.mail.upstream.is_configured() {
            self.mail.upstream.validate()?;
        }
        let r = &self.raft;
        if r.heartbeat_ms == 0
            || r.election_timeout_min_ms <= r.heartbeat_ms
            || r.election_timeout_max_ms <= r.election_timeout_min_ms
        {
            return invalid(
                "raft: need 0 < heartbeat_ms < election_timeout_min_ms < election_timeout_max_ms"
                    .into(),
            );
        }
        if !(MIN_READ_LEASE_MS..=MAX_READ_LEASE_MS).contains(&r.read_lease_ms) {
            return invalid(format!(
                "raft: read_lease_ms must be between {MIN_READ_LEASE_MS} and {MAX_READ_LEASE_MS}"
            ));
        }
        if self.sessions.lifetime_secs == 0
            || self.sessions.purge_batch == 0
            || self.sessions.purge_interval_ms == 0
        {
            return invalid(
                "sessions: lifetime_secs, purge_batch and purge_interval_ms must be positive"
                    .into(),
            );
        }
        if self.audit.retention_secs == 0 {
            return invalid("audit: retention_secs must be positive".into());
        }
        if let Err(e) = self.master_domain.parse::<crate::model::DomainName>() {
            return invalid(format!("master_domain: {e}"));
        }
        let iam = &self.iam;
        if iam.max_login_failures == 0 || iam.login_failure_window_secs == 0 {
            return invalid(
                "iam: max_login_failures and login_failure_window_secs must be positive".into(),
            );
        }
        let tls = &self.tls;
        if tls.cert_file.is_some() != tls.key_file.is_some() {
            return invalid("tls: give both cert_file and key_file, or neither".into());
        }
        if let Some(name) = tls
            .listeners
            .keys()
            .find(|n| !TLS_LISTENERS.contains(&n.as_str()))
        {
            return invalid(format!(
                "tls.listeners.{name}: one of {}",
                TLS_LISTENERS.join(", ")
            ));
        }
        let m = &self.mail;
        if m.max_line_bytes < 1024 || m.max_connections == 0 || m.handshake_timeout_secs == 0 {
            return invalid(
                "mail: max_line_bytes >= 1024, max_connections and handshake_timeout_secs > 0"
                    .into(),
            );
        }
        if m.imap_idle_timeout_secs == 0 || m.smtp_idle_timeout_secs == 0 {
            return invalid("mail: idle timeouts must be positive".into());
        }
        self.limits.validate()?;
        let g = &self.gateway;
        if g.ping_interval_ms == 0 || g.idle_timeout_ms <= g.ping_interval_ms {
            return invalid(
                "gateway: ping_interval_ms must be positive and below idle_timeout_ms".into(),
            );
        }
        if g.send_timeout_ms == 0 || g.max_message_bytes < 64 {
            return invalid(
                "gateway: send_timeout_ms must be positive, max_message_bytes at least 64".into(),
            );
        }
        let a = &iam.argon2;
        if a.memory_kib < 8 * a.parallelism.max(1) || a.iterations == 0 || a.parallelism == 0 {
            return invalid(
                "iam.argon2: need iterations >= 1, parallelism >= 1, memory_kib >= 8 * parallelism"
                    .into(),
            );
        }
        Ok(())
    }

    /// Other sites: distinct valid names, nodes with an api URL, node ids unique in the
    /// deployment, directory voters among its nodes.
    fn validate_sites(&self) -> Result<(), ConfigError> {
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        let mut names = std::collections::BTreeSet::from([self.site.as_str()]);
        for site in &self.sites {
            if !valid_name(&site.name) {
                return invalid(format!(
                    "sites: {:?}: use 1 to 48 of a-z 0-9 - _",
                    site.name
                ));
            }
            if !names.insert(&site.name) {
                return invalid(format!("sites: site {:?} is listed twice", site.name));
            }
            if site.nodes.is_empty() {
                return invalid(format!("sites: site {:?} lists no node", site.name));
            }
            if let Some(node) = site
                .nodes
                .iter()
                .find(|n| !n.api.as_deref().is_some_and(is_base_url))
            {
                return invalid(format!(
                    "sites: node {:?} of site {:?} needs api = \"http://host:port\" (or https)",
                    node.name, site.name
                ));
            }
        }
        let all = self.deployment_nodes();
        let mut ids: Vec<u64> = all.iter().map(|(_, n)| n.id).collect();
        ids.sort_unstable();
        ids.dedup();
        if ids.len() != all.len() {
            return invalid("a node id is listed twice across site_nodes and sites".into());
        }
        if let Some(voter) = self.directory.voters.iter().find(|v| !ids.contains(v)) {
            return invalid(format!("directory.voters: no node has id {voter}"));
        }
        if !self.sites.is_empty() {
            if self.directory.voters.is_empty() {
                return invalid(
                    "directory.voters: a deployment of several sites lists the directory's voters (spread them over the sites)".into(),
                );
            }
            if self.site_nodes.is_empty() {
                return invalid(
                    "site_nodes: a deployment of several sites lists this site's nodes".into(),
                );
            }
            if self.cluster_secret.is_empty() && self.cluster_secret_file.is_none() {
                return invalid("a deployment of several sites needs cluster_secret or cluster_secret_file (the same on every node)".into());
            }
        }
        let f = &self.federation;
        if f.timeout_ms == 0 || f.retry_initial_ms == 0 || f.retry_max_ms < f.retry_initial_ms {
            return invalid("federation: timeout_ms and retry_initial_ms positive, retry_max_ms >= retry_initial_ms".into());
        }
        Ok(())
    }

    /// Every node of the deployment with its site: this site's first, then the others'.
    pub fn deployment_nodes(&self) -> Vec<(String, SiteNode)> {
        let local = self
            .site_members()
            .into_iter()
            .map(|n| (self.site.clone(), n));
        let remote = self
            .sites
            .iter()
            .flat_map(|s| s.nodes.iter().map(|n| (s.name.clone(), n.clone())));
        local.chain(remote).collect()
    }

    /// How this node dials each node it is configured with: its site's nodes on the site's
    /// addresses, other sites' nodes on the addresses their `[[sites.nodes]]` give. A group's
    /// membership records one node's view; this is ours.
    pub fn peer_routes(&self) -> PeerRoutes {
        self.deployment_nodes()
            .into_iter()
            .map(|(_, n)| (n.id, n.cluster))
            .collect()
    }

    /// The directory's voters: as configured, or this site's nodes.
    pub fn directory_voters(&self) -> Vec<u64> {
        match self.directory.voters.is_empty() {
            true => self.site_members().iter().map(|n| n.id).collect(),
            false => self.directory.voters.clone(),
        }
    }

    /// The site's group members: `site_nodes`, or this node alone.
    pub fn site_members(&self) -> Vec<SiteNode> {
        if self.site_nodes.is_empty() {
            vec![SiteNode {
                id: self.node_id,
                name: self.node_name.clone(),
                cluster: self.advertised_cluster(),
                api: None,
            }]
        } else {
            self.site_nodes.clone()
        }
    }

    /// How listings name this node: `name@host`, the host peers dial.
    pub fn node_label(&self) -> String {
        let advertised = self.advertised_cluster();
        let host = advertised
            .rsplit_once(':')
            .map_or(advertised.as_str(), |(host, _)| host)
            .trim_start_matches('[')
            .trim_end_matches(']');
        format!("{}@{}", self.node_name, host)
    }

    pub fn advertised_cluster(&self) -> String {
        self.listen
            .advertise_cluster
            .clone()
            .unwrap_or_else(|| self.listen.cluster.to_string())
    }

    pub fn tuning(&self) -> RaftTuning {
        let r = &self.raft;
        RaftTuning {
            heartbeat: Duration::from_millis(r.heartbeat_ms),
            election_timeout_min: Duration::from_millis(r.election_timeout_min_ms),
            election_timeout_max: Duration::from_millis(r.election_timeout_max_ms),
            snapshot_every: r.snapshot_every.max(1),
            logs_kept_after_snapshot: r.logs_kept_after_snapshot,
            operation_timeout: Duration::from_millis(r.operation_timeout_ms.max(1)),
            read_lease: Duration::from_millis(r.read_lease_ms),
        }
    }
}

impl LimitsConfig {
    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |m: &str| Err(ConfigError::Invalid(format!("limits: {m}")));
        if self.header_read_timeout_ms == 0
            || self.body_read_timeout_ms == 0
            || self.keep_alive_timeout_ms == 0
        {
            return invalid("the timeouts must be positive");
        }
        if [
            self.api_max_connections,
            self.api_max_connections_per_source,
            self.cluster_max_connections,
            self.cluster_max_connections_per_source,
            self.mail_max_connections_per_source,
        ]
        .contains(&0)
        {
            return invalid("the connection caps must be positive");
        }
        if self.max_uri_bytes < 1024
            || self.max_header_bytes < self.max_uri_bytes + 1024
            || self.max_headers < 16
        {
            return invalid(
                "need max_uri_bytes >= 1024, max_header_bytes >= max_uri_bytes + 1024, max_headers >= 16",
            );
        }
        Ok(())
    }

    pub fn http(&self) -> crate::net::http::HttpSettings {
        crate::net::http::HttpSettings {
            header_read_timeout: Duration::from_millis(self.header_read_timeout_ms),
            body_read_timeout: Duration::from_millis(self.body_read_timeout_ms),
            keep_alive_timeout: Duration::from_millis(self.keep_alive_timeout_ms),
            max_uri_bytes: self.max_uri_bytes,
            max_header_bytes: self.max_header_bytes,
            max_headers: self.max_headers,
        }
    }
}

fn is_base_url(text: &str) -> bool {
    reqwest::Url::parse(text)
        .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 48
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_file_is_the_single_node_default() {
        let config: Config = toml::from_str("").unwrap();
        config.validate().unwrap();
        assert_eq!(config.site, "local");
        assert_eq!(config.listen.api.to_string(), "127.0.0.1:8080");
        assert_eq!(config.listen.cluster.to_string(), "127.0.0.1:7000");
        assert_eq!(config.site_members().len(), 1);
    }

    #[test]
    fn typos_and_bad_values_are_refused() {
        assert!(toml::from_str::<Config>("nod_id = 3").is_err());
        let bad_site: Config = toml::from_str("site = \"East Coast\"").unwrap();
        assert!(bad_site.validate().is_err());
        let no_secret: Config = toml::from_str(
            "node_id = 1\n[[site_nodes]]\nid = 1\nname = \"a\"\ncluster = \"x:1\"\n[[site_nodes]]\nid = 2\nname = \"b\"\ncluster = \"x:2\"\n",
        )
        .unwrap();
        assert!(no_secret
            .validate()
            .unwrap_err()
            .to_string()
            .contains("cluster_secret"));
        let not_listed: Config = toml::from_str(
            "node_id = 9\n[[site_nodes]]\nid = 1\nname = \"a\"\ncluster = \"x:1\"\n",
        )
        .unwrap();
        assert!(not_listed.validate().is_err());
    }

    #[test]
    fn peers_are_dialed_at_this_nodes_view_of_the_network() {
        let config = Config::load(Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/deploy/compose/e1.toml"
        )))
        .unwrap();
        let routes = config.peer_routes();
        assert_eq!(routes.get(&5).map(String::as_str), Some("172.28.2.12:7000"));
        assert_eq!(routes.get(&1).map(String::as_str), Some("172.28.0.11:7000"));
        assert_eq!(routes.len(), 6);
    }
}
