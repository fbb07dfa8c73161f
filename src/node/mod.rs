//! A running node: its listeners, its groups, and the background work that keeps them healthy.
//!
//! Wiring only: what a request does lives in `api`, what a command does lives in `state`.

pub mod certificates;
pub mod effects;
pub mod events;
pub mod health;
pub mod incidents;
pub mod mail;
pub mod membership;
pub mod ops;
pub mod reaper;
pub mod scrape;
pub mod secrets;
pub mod sweeper;
pub mod task_runner;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sessionplane_cluster::{
    keep_membership, watch_peers, ClusterNode, ClusterOptions, GroupId, Member, MemberList,
    SetupError,
};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{Config, ConfigError};
use crate::federation::watch::SiteReachability;
use crate::federation::Federation;
use crate::gateway::proxy::Proxy;
use crate::gateway::{Gateway, GatewaySettings, LocalSockets};
use crate::iam::{self, Iam, PasswordHasher, TokenKeys};
use crate::mail::backend::NodeMailBackend;
use crate::mail::channels::LocalChannels;
use crate::model::DomainName;
use crate::net::fds;
use crate::net::http::{HttpListener, NoHandshake};
use crate::net::limits::{Caps, ConnectionLimiter};
use crate::net::settings::ErrorBody;
use crate::node_ops::{ApiService, ApiState, ApiWiring};
use crate::state::directory::DirectoryState;
use crate::state::site::SiteState;
use crate::state::{DirectoryStore, SiteStore};
use crate::telemetry::Telemetry;
use crate::tls::api_listener::TlsHandshake;
use crate::tls::listeners::TlsListener;
use crate::tls::ReloadableCert;
use health::HealthChecks;
use task_runner::TaskRunner;
use tokio::sync::oneshot;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Secret(#[from] secrets::SecretError),
    #[error(transparent)]
    Cluster(#[from] SetupError),
    #[error("tls: {0}")]
    Tls(String),
    #[error("identity: {0}")]
    Iam(String),
    /// A `[[proxy]]` route that cannot be served (an unreadable `ca_file`).
    #[error("{0}")]
    Proxy(String),
    /// `[mail.upstream]` cannot be used (an unreadable CA or secret file).
    #[error("{0}")]
    Mail(String),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The node's sockets, bound before start so that callers may use port 0.
pub struct Listeners {
    pub api: TcpListener,
    pub cluster: TcpListener,
    /// The mail listeners this node runs, by name (`imap`, `imaps`, `smtp`, `smtps`).
    pub mail: mail::MailSockets,
}

impl Listeners {
    pub async fn bind(config: &Config) -> Result<Self, StartError> {
        let mut mail = mail::MailSockets::new();
        if config.mail.enabled {
            mail.insert("imap", bind(config.listen.imap).await?);
            mail.insert("imaps", bind(config.listen.imaps).await?);
            mail.insert("smtp", bind(config.listen.smtp).await?);
            mail.insert("smtps", bind(config.listen.smtps).await?);
        }
        Ok(Self {
            api: bind(config.listen.api).await?,
            cluster: bind(config.listen.cluster).await?,
            mail,
        })
    }
}

fn local_addr(listener: &TcpListener, configured: SocketAddr) -> Result<SocketAddr, StartError> {
    listener.local_addr().map_err(|source| StartError::Bind {
        addr: configured,
        source,
    })
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })
}

pub struct RunningNode {
    pub config: Arc<Config>,
    pub site: SiteStore,
    pub directory: DirectoryStore,
    pub iam: Arc<Iam>,
    pub gateway: Arc<Gateway>,
    /// Answers once if this node created the first administrator with a generated password.
    pub generated_admin_password: Option<oneshot::Receiver<String>>,
    pub api_addr: SocketAddr,
    pub cluster_addr: SocketAddr,
    /// The mail listeners' addresses, by name.
    pub mail_addrs: std::collections::BTreeMap<&'static str, SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

/// Starts a node on `listeners`, serving `api` on the api listener.
pub async fn start(
    config: Config,
    listeners: Listeners,
    api: ApiService,
) -> Result<RunningNode, StartError> {
    config.validate()?;
    let proxy = Arc::new(Proxy::new(&config.proxy).map_err(StartError::Proxy)?);
    let config = Arc::new(config);
    let secret = secrets::cluster_secret(&config)?;
    let cluster = ClusterNode::open(ClusterOptions {
        node_id: config.node_id,
        advertise: config.advertised_cluster(),
        data_dir: config.data_dir.clone(),
        secret: secret.clone(),
        tuning: config.tuning(),
        source_address: config.listen.source_address,
        routes: config.peer_routes(),
    })?;
    let site_group_id = GroupId::new(format!("site:{}", config.site))
        .map_err(|e| ConfigError::Invalid(e.to_string()))?;
    let sockets = Arc::new(LocalSockets::default());
    let channels = Arc::new(LocalChannels::default());
    let reports = Arc::new(incidents::IncidentReports::default());
    let (feed, feed_advanced) = watch::channel(0);
    let effects = Arc::new(effects::NodeEffects {
        feed,
        sockets: sockets.clone(),
        channels: channels.clone(),
        containing: incidents::Containing {
            sockets: sockets.clone(),
            channels: channels.clone(),
            reports: reports.clone(),
        },
    });
    let site_group = cluster
        .open_group(site_group_id, SiteState::with_effects(effects))
        .await?;
    let site = SiteStore::new(site_group.clone());
    let directory_group_id =
        GroupId::new("directory").map_err(|e| ConfigError::Invalid(e.to_string()))?;
    let directory_group = cluster
        .open_group(directory_group_id, DirectoryState::default())
        .await?;
    let directory = DirectoryStore::new(directory_group.clone());
    let telemetry = Arc::new(Telemetry::new(vec![Box::new(scrape::StateCollector {
        site_name: config.site.clone(),
        site: site_group.clone(),
        directory: directory_group.clone(),
    })]));
    let iam = Arc::new(identity(
        &config,
        &secret,
        site.clone(),
        directory.clone(),
        telemetry.clone(),
    )?);
    let (stop, stopped) = watch::channel(false);
    let gateway = Arc::new(Gateway {
        site: site.clone(),
        sockets,
        liveness: cluster.liveness().clone(),
        node_label: config.node_label(),
        settings: gateway_settings(&config),
        stop: stopped.clone(),
    });
    let api_addr = local_addr(&listeners.api, config.listen.api)?;
    let cluster_addr = local_addr(&listeners.cluster, config.listen.cluster)?;
    let mail = Arc::new(NodeMailBackend {
        iam: iam.clone(),
        site: site.clone(),
        channels: channels.clone(),
        liveness: cluster.liveness().clone(),
        node_label: config.node_label(),
        stop: stopped.clone(),
    });
    let federation = Arc::new(Federation::new(&config, telemetry.clone())?);
    let reach = Arc::new(SiteReachability::default());
    let caps = connection_caps(&config, !listeners.mail.is_empty());
    let mut wired = mail::wire(&config, listeners.mail, mail.clone(), caps.mail)?;
    let api_cert = match config.listen.api_tls {
        true => Some(
            ReloadableCert::load(mail::files_for(&config, "api")?)
                .map_err(|e| StartError::Tls(format!("api: {e}")))?,
        ),
        false => None,
    };
    if let Some(cert) = &api_cert {
        wired.certificates.listeners.push(TlsListener {
            name: "api",
            port: api_addr.port(),
            cert: cert.clone(),
        });
    }
    let certificates = Arc::new(std::mem::take(&mut wired.certificates));
    certificates::serve(&cluster, certificates.clone());
    membership::serve(&cluster, site_group.clone(), directory_group.clone());
    incidents::serve(&cluster, reports.clone());
    let health = HealthChecks {
        site: site_group.clone(),
        directory: directory_group.clone(),
        data_dir: config.data_dir.clone(),
        other_sites: config.sites.iter().map(|s| s.name.clone()).collect(),
        reach: reach.clone(),
        certificates,
        audit_checked: std::sync::Mutex::default(),
    };
    let site_nodes = Arc::new(config.site_members());
    let node_ops = Arc::new(ops::RunningOps {
        peers: cluster.peers().clone(),
        liveness: cluster.liveness().clone(),
        site_nodes: site_nodes.clone(),
        health,
        reports,
    });
    let signing_key = crate::events::signals::SigningKey::load(&config.signals)
        .map_err(|e| StartError::Config(ConfigError::Invalid(e)))?
        .map(Arc::new);
    let api_state = ApiState::new(ApiWiring {
        signing_key: signing_key.clone(),
        iam: iam.clone(),
        site: site.clone(),
        directory: directory.clone(),
        gateway: gateway.clone(),
        federation: federation.clone(),
        node_label: config.node_label(),
        mail: mail.clone(),
        site_nodes,
        liveness: cluster.liveness().clone(),
        node: node_ops,
        telemetry: telemetry.clone(),
        tls: config.listen.api_tls,
        proxy,
        feed_advanced: feed_advanced.clone(),
        rendered_events: Arc::default(),
    });
    let api_router = (api.router)(api_state);
    let api_task = match api_cert {
        Some(cert) => {
            let handshake = TlsHandshake {
                acceptor: crate::tls::acceptor(cert),
                timeout: Duration::from_secs(config.mail.handshake_timeout_secs),
            };
            let api = http_listener(
                "api",
                listeners.api,
                handshake,
                api_router,
                &config,
                caps.api,
                api.error_body,
            );
            tokio::spawn(api.run(stopped.clone()))
        }
        None => {
            let api = http_listener(
                "api",
                listeners.api,
                NoHandshake,
                api_router,
                &config,
                caps.api,
                api.error_body,
            );
            tokio::spawn(api.run(stopped.clone()))
        }
    };
    let cluster_listener = http_listener(
        "cluster",
        listeners.cluster,
        NoHandshake,
        cluster.router(),
        &config,
        caps.cluster,
        api.error_body,
    );
    let peers = config
        .site_members()
        .into_iter()
        .map(|n| (n.id, n.cluster))
        .collect();
    let directory_members = directory_members(&config);
    let (generated_tx, generated_rx) = oneshot::channel();
    let is_directory_seed = directory_members.seed == config.node_id;

    let mut tasks = vec![
        tokio::spawn(cluster_listener.run(stopped.clone())),
        api_task,
        tokio::spawn(keep_membership(site_group, site_members(&config))),
        tokio::spawn(keep_membership(directory_group, directory_members)),
        tokio::spawn(watch_peers(
            cluster.liveness().clone(),
            cluster.peers().clone(),
            peers,
        )),
        tokio::spawn(sweeper::run(gateway.clone(), channels.clone())),
        tokio::spawn(
            TaskRunner {
                site: site.clone(),
                federation: federation.clone(),
                iam: iam.clone(),
                node_label: config.node_label(),
                retry_initial: Duration::from_millis(config.federation.retry_initial_ms),
                retry_max: Duration::from_millis(config.federation.retry_max_ms),
            }
            .run(stopped.clone()),
        ),
        tokio::spawn(crate::federation::watch::run(
            federation.clone(),
            reach,
            {
                let iam = iam.clone();
                move || iam.federation_token("sessionplane health probe", None).ok()
            },
            stopped.clone(),
        )),
        tokio::spawn({
            let (group, stop) = (site.group().clone(), stopped.clone());
            async move { group.keep_read_lease(stop).await }
        }),
        tokio::spawn(iam::propagation::run(
            site.clone(),
            directory.clone(),
            config.site.clone(),
            stopped.clone(),
        )),
        tokio::spawn(reaper::run(
            site.clone(),
            Duration::from_millis(config.sessions.purge_interval_ms),
            config.sessions.purge_batch,
            reaper::AuditRetention {
                keep_ms: config.audit.retention_secs.saturating_mul(1000),
                batch: config.sessions.purge_batch,
            },
            stopped.clone(),
        )),
    ];
    tasks.extend(
        events::start(events::Wiring {
            config: &config,
            site: &site,
            advanced: &feed_advanced,
            telemetry: &telemetry,
            signing_key: signing_key.clone(),
            stop: &stopped,
        })
        .map_err(|e| StartError::Config(ConfigError::Invalid(e)))?,
    );
    for listener in wired.listeners {
        tasks.push(tokio::spawn(listener.run(stopped.clone())));
    }
    if is_directory_seed {
        tasks.push(tokio::spawn(iam::bootstrap::run(
            iam.clone(),
            config.initial_admin_password.clone(),
            generated_tx,
            stopped,
        )));
    }
    tracing::info!(node = config.node_id, site = %config.site, api = %api_addr, cluster = %cluster_addr, "node started");
    Ok(RunningNode {
        config,
        site,
        directory,
        iam,
        gateway,
        generated_admin_password: is_directory_seed.then_some(generated_rx),
        api_addr,
        cluster_addr,
        mail_addrs: wired.addrs,
        stop,
        tasks,
    })
}

fn identity(
    config: &Config,
    cluster_secret: &str,
    site: SiteStore,
    directory: DirectoryStore,
    telemetry: Arc<Telemetry>,
) -> Result<Iam, StartError> {
    let settings = &config.iam;
    let hasher = PasswordHasher::new(&settings.argon2, settings.hash_threads)
        .map_err(|e| StartError::Iam(e.to_string()))?;
    let token_key = secrets::token_key(config)?;
    let service_key = match &settings.service_key_file {
        Some(path) => Some(secrets::read("service key", path)?),
        None => None,
    };
    let tokens = TokenKeys::new(
        &token_key,
        service_key
            .as_deref()
            .map(|key| (key, settings.service_key_algorithm)),
    )
    .map_err(|e| StartError::Iam(e.to_string()))?
    .with_federation_key(&iam::token::federation_key(cluster_secret));
    let master_domain: DomainName = config
        .master_domain
        .parse()
        .map_err(|e| ConfigError::Invalid(format!("master_domain: {e}")))?;
    Ok(Iam {
        site_name: config.site.clone(),
        node_label: config.node_label(),
        master_domain,
        site,
        directory,
        hasher,
        tokens,
        session_lifetime_ms: config.sessions.lifetime_secs.saturating_mul(1000),
        max_login_failures: settings.max_login_failures,
        login_failure_window_ms: settings.login_failure_window_secs.saturating_mul(1000),
        trusted_networks: settings.trusted_networks.clone(),
        telemetry,
    })
}

fn gateway_settings(config: &Config) -> GatewaySettings {
    let g = &config.gateway;
    GatewaySettings {
        ping_interval: Duration::from_millis(g.ping_interval_ms),
        idle_timeout: Duration::from_millis(g.idle_timeout_ms),
        send_timeout: Duration::from_millis(g.send_timeout_ms),
        max_message_bytes: g.max_message_bytes,
        reap_dead_node_after: Duration::from_millis(g.reap_dead_node_after_ms),
    }
}

fn site_members(config: &Config) -> MemberList {
    let nodes = config.site_members();
    MemberList {
        seed: nodes.first().map_or(config.node_id, |n| n.id),
        voters: nodes.iter().map(|n| n.id).collect(),
        members: nodes
            .into_iter()
            .map(|n| (n.id, Member { addr: n.cluster }))
            .collect(),
    }
}

/// Every node of the deployment belongs to the directory; the configured voters vote.
fn directory_members(config: &Config) -> MemberList {
    let voters = config.directory_voters();
    MemberList {
        seed: voters.first().copied().unwrap_or(config.node_id),
        voters: voters.into_iter().collect(),
        members: config
            .deployment_nodes()
            .into_iter()
            .map(|(_, n)| (n.id, Member { addr: n.cluster }))
            .collect(),
    }
}

/// The caps of the node's listeners, fitted in the open files the process may have.
struct ListenerCaps {
    api: Caps,
    cluster: Caps,
    mail: Caps,
}

fn connection_caps(config: &Config, with_mail: bool) -> ListenerCaps {
    let l = &config.limits;
    let limit = fds::raise_limit();
    let mail = Caps {
        max: config.mail.max_connections,
        per_source: l.mail_max_connections_per_source,
    };
    let mut wanted = vec![
        Caps {
            max: l.api_max_connections,
            per_source: l.api_max_connections_per_source,
        },
        Caps {
            max: l.cluster_max_connections,
            per_source: l.cluster_max_connections_per_source,
        },
    ];
    if with_mail {
        wanted.push(mail);
    }
    let fitted = fds::fit(limit, l.reserved_fds, &wanted);
    let caps = ListenerCaps {
        api: fitted[0],
        cluster: fitted[1],
        mail: fitted.get(2).copied().unwrap_or(mail),
    };
    tracing::info!(
        open_file_limit = limit,
        reserved = l.reserved_fds.min(limit / 2),
        api = ?caps.api,
        cluster = ?caps.cluster,
        mail = ?caps.mail,
        "connection caps"
    );
    caps
}

fn http_listener<H>(
    name: &'static str,
    listener: TcpListener,
    handshake: H,
    router: axum::Router,
    config: &Config,
    caps: Caps,
    error_body: ErrorBody,
) -> HttpListener<H> {
    HttpListener {
        name,
        listener,
        handshake,
        router,
        settings: config.limits.http(),
        limiter: ConnectionLimiter::new(name, caps),
        error_body,
    }
}

impl RunningNode {
    /// Waits until the site group has a leader that this node knows of.
    pub async fn wait_for_leader(&self, timeout: Duration) -> bool {
        self.site
            .group()
            .wait_until(timeout, "site leader", |m| m.current_leader.is_some())
            .await
    }

    /// Waits until the node serves what it promises: its site has a leader, and its copy of
    /// the directory holds the master domain (so the first administrator exists and can log
    /// in). The deadline covers both.
    pub async fn wait_until_ready(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        if !self.wait_for_leader(timeout).await {
            return false;
        }
        let master = &self.iam.master_domain;
        while !self.directory.read_local(|d| d.domain(master).is_some()) {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// Resolves when one of the node's groups has stopped for good (its storage failed, say):
    /// the node cannot serve that group again without a restart.
    pub async fn failed(&self) -> String {
        loop {
            let stopped = self
                .site
                .group()
                .stopped()
                .map(|r| format!("site group: {r}"));
            let stopped = stopped.or_else(|| {
                self.directory
                    .group()
                    .stopped()
                    .map(|r| format!("directory group: {r}"))
            });
            if let Some(reason) = stopped {
                return reason;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for task in &self.tasks {
            task.abort();
        }
        self.site.group().shutdown().await;
        self.directory.group().shutdown().await;
    }
}
