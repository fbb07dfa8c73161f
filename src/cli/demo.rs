//! `sessionplane demo`: a whole deployment (one or more sites of N nodes) on loopback, real
//! sockets between them, in this one process. Prints ONE line of JSON on stdout once every site
//! has a leader, every node votes and the directory has reached every node; the friendlier text
//! goes to stderr.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde::Serialize;

use crate::config::{Config, DirectorySettings, IamSettings, Listen, RemoteSite, Secret, SiteNode};
use crate::iam::bootstrap;
use crate::iam::password::random_hex;
use crate::node::{self, secrets, Listeners, RunningNode};

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// The sites, comma-separated (`central,east`).
    #[arg(long, value_delimiter = ',', default_value = "local")]
    pub sites: Vec<String>,
    /// Nodes in each site.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=9))]
    pub nodes: u64,
    /// Where the nodes keep their data (reused on the next run). Default: a new temporary dir.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Node k (numbered across sites from 1) has its cluster listener on port BASE+k, its api
    /// on BASE+1000+k, IMAP (STARTTLS) on BASE+2000+k, IMAPS on BASE+3000+k, SMTP on
    /// BASE+4000+k, SMTPS on BASE+5000+k.
    #[arg(long, default_value_t = 17000)]
    pub port_base: u16,
}

#[derive(Serialize)]
struct DemoNode {
    site: String,
    name: String,
    api: String,
    cluster: String,
    /// The mail listeners the node runs (`smtp`, `smtps`), as `host:port`.
    #[serde(flatten)]
    mail: std::collections::BTreeMap<&'static str, String>,
}

#[derive(Serialize)]
struct DemoLine {
    admin_password: Option<String>,
    nodes: Vec<DemoNode>,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let data_dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("sessionplane-demo-{}", std::process::id())),
    };
    let mut stop = super::StopSignals::install()?;
    // It holds the administrator's password and the secrets every node shares.
    sessionplane_cluster::private_fs::keep_private(&data_dir)?;
    let admin_password = admin_password(&data_dir)?;
    let mut configs = configs(&args, &data_dir)?;
    for config in &mut configs {
        config.initial_admin_password = Some(Secret(admin_password.password.clone()));
    }
    let mut nodes = Vec::new();
    for config in configs {
        let listeners = Listeners::bind(&config).await?;
        nodes.push(node::start(config, listeners, crate::api::service()).await?);
    }
    if !site_formed(&nodes, args.nodes as usize, Duration::from_secs(30)).await {
        anyhow::bail!("the demo sites did not form within 30 s");
    }
    if !directory_ready(&nodes, Duration::from_secs(30)).await {
        anyhow::bail!("the demo directory was not ready within 30 s");
    }
    let line = DemoLine {
        admin_password: Some(admin_password.password.clone()),
        nodes: nodes
            .iter()
            .map(|n| DemoNode {
                site: n.config.site.clone(),
                name: n.config.node_name.clone(),
                api: format!("http://{}", n.api_addr),
                cluster: format!("http://{}", n.cluster_addr),
                mail: n
                    .mail_addrs
                    .iter()
                    .map(|(name, addr)| (*name, addr.to_string()))
                    .collect(),
            })
            .collect(),
    };
    println!("{}", serde_json::to_string(&line)?);
    crate::say!(
        "sessionplane demo: {} nodes of site {} are up (data in {}).",
        nodes.len(),
        args.sites.join(", "),
        data_dir.display()
    );
    for n in &nodes {
        let mail: String = n
            .mail_addrs
            .iter()
            .map(|(name, addr)| format!("  {name} {addr}"))
            .collect();
        crate::say!(
            "  {:<10} {:<4} api http://{}  cluster http://{}{mail}",
            n.config.site,
            n.config.node_name,
            n.api_addr,
            n.cluster_addr
        );
    }
    if let Some(first) = nodes.first() {
        let admin = format!("{}@{}", bootstrap::FIRST_ADMIN, first.iam.master_domain);
        crate::say!("Administrator: {admin}, {}.", admin_password.whereabouts());
    }
    crate::say!("Press Ctrl-C to stop.");
    stop.recv().await;
    for n in nodes {
        n.shutdown().await;
    }
    if args.data_dir.is_none() {
        let _ = std::fs::remove_dir_all(&data_dir);
    }
    Ok(())
}

/// The first administrator's password, and where a person finds it again.
struct AdminPassword {
    password: String,
    /// The file that keeps it; `None` when it came from the environment.
    kept_in: Option<PathBuf>,
}

impl AdminPassword {
    fn whereabouts(&self) -> String {
        match &self.kept_in {
            Some(file) => format!(
                "password in {} (and in the JSON line on stdout)",
                file.display()
            ),
            None => "password from SESSIONPLANE_ADMIN_PASSWORD".to_string(),
        }
    }
}

/// `SESSIONPLANE_ADMIN_PASSWORD`, else the one this demo's data dir was first started with,
/// else a new one (kept in the data dir so that a rerun prints the password that works).
fn admin_password(data_dir: &std::path::Path) -> anyhow::Result<AdminPassword> {
    if let Ok(given) = std::env::var("SESSIONPLANE_ADMIN_PASSWORD") {
        if !given.is_empty() {
            return Ok(AdminPassword {
                password: given,
                kept_in: None,
            });
        }
    }
    let file = data_dir.join("admin_password");
    let password = match std::fs::read_to_string(&file) {
        Ok(kept) => kept.trim().to_string(),
        Err(_) => {
            let fresh = random_hex(16)?;
            secrets::write_private(&file, &fresh)?;
            fresh
        }
    };
    Ok(AdminPassword {
        password,
        kept_in: Some(file),
    })
}

/// Whether every node sees the master domain (the first administrator exists).
async fn directory_ready(nodes: &[RunningNode], timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    for node in nodes {
        let master = node.iam.master_domain.clone();
        while !node.directory.read_local(|d| d.domain(&master).is_some()) {
            if tokio::time::Instant::now() > deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    true
}

/// One node of the demo: its site, and where it listens.
struct Planned {
    site: String,
    node: SiteNode,
}

fn configs(args: &DemoArgs, data_dir: &std::path::Path) -> anyhow::Result<Vec<Config>> {
    let secret_file = data_dir.join("cluster_secret");
    if !secret_file.exists() {
        secrets::write_private(&secret_file, &random_hex(32)?)?;
    }
    let token_key_file = data_dir.join("token_key");
    if !token_key_file.exists() {
        secrets::write_private(&token_key_file, &random_hex(32)?)?;
    }
    let port = |offset: u64| -> anyhow::Result<u16> {
        u16::try_from(u64::from(args.port_base) + offset)
            .map_err(|_| anyhow::anyhow!("--port-base too high"))
    };
    let planned = plan(args, &port)?;
    let mut configs = Vec::new();
    for this in &planned {
        let k = this.node.id;
        let same_site = |p: &&Planned| p.site == this.site;
        let other_sites = args
            .sites
            .iter()
            .filter(|s| **s != this.site)
            .map(|name| RemoteSite {
                name: name.clone(),
                nodes: planned
                    .iter()
                    .filter(|p| p.site == *name)
                    .map(|p| p.node.clone())
                    .collect(),
            })
            .collect();
        configs.push(Config {
            node_id: k,
            node_name: this.node.name.clone(),
            site: this.site.clone(),
            data_dir: data_dir.join(&this.node.name),
            cluster_secret_file: Some(secret_file.clone()),
            iam: IamSettings {
                token_key_file: Some(token_key_file.clone()),
                ..IamSettings::default()
            },
            listen: Listen {
                api: format!("127.0.0.1:{}", port(1000 + k)?).parse()?,
                cluster: format!("127.0.0.1:{}", port(k)?).parse()?,
                imap: format!("127.0.0.1:{}", port(2000 + k)?).parse()?,
                imaps: format!("127.0.0.1:{}", port(3000 + k)?).parse()?,
                smtp: format!("127.0.0.1:{}", port(4000 + k)?).parse()?,
                smtps: format!("127.0.0.1:{}", port(5000 + k)?).parse()?,
                ..Listen::default()
            },
            site_nodes: planned
                .iter()
                .filter(same_site)
                .map(|p| p.node.clone())
                .collect(),
            sites: other_sites,
            directory: DirectorySettings {
                voters: directory_voters(args, &planned),
            },
            ..Config::default()
        });
    }
    Ok(configs)
}

/// Every node of every site, numbered from 1 across sites.
fn plan(
    args: &DemoArgs,
    port: &dyn Fn(u64) -> anyhow::Result<u16>,
) -> anyhow::Result<Vec<Planned>> {
    let mut distinct = args.sites.clone();
    distinct.sort();
    distinct.dedup();
    if distinct.len() != args.sites.len() || args.sites.iter().any(|s| s.is_empty()) {
        anyhow::bail!("--sites: distinct, non-empty names");
    }
    let initials: std::collections::BTreeSet<char> =
        args.sites.iter().filter_map(|s| s.chars().next()).collect();
    let mut planned = Vec::new();
    for (s, site) in args.sites.iter().enumerate() {
        for k in 1..=args.nodes {
            let id = s as u64 * args.nodes + k;
            let prefix = match initials.len() == args.sites.len() && args.sites.len() > 1 {
                true => site.chars().take(1).collect::<String>(),
                false if args.sites.len() == 1 => "n".to_string(),
                false => site.clone(),
            };
            planned.push(Planned {
                site: site.clone(),
                node: SiteNode {
                    id,
                    name: format!("{prefix}{k}"),
                    cluster: format!("127.0.0.1:{}", port(id)?),
                    api: Some(format!("http://127.0.0.1:{}", port(1000 + id)?)),
                },
            });
        }
    }
    Ok(planned)
}

/// One site: its own nodes vote. Several: three voters (five from five sites), taken from the
/// sites in turn, so that no site alone holds the directory.
fn directory_voters(args: &DemoArgs, planned: &[Planned]) -> Vec<u64> {
    if args.sites.len() == 1 {
        return Vec::new();
    }
    let wanted = if args.sites.len() >= 5 { 5 } else { 3 }.min(planned.len());
    let mut voters = Vec::new();
    for k in 0..args.nodes as usize {
        for site in &args.sites {
            if let Some(p) = planned.iter().filter(|p| p.site == *site).nth(k) {
                if voters.len() < wanted {
                    voters.push(p.node.id);
                }
            }
        }
    }
    voters
}

async fn site_formed(nodes: &[RunningNode], voters: usize, timeout: Duration) -> bool {
    for node in nodes {
        let formed = node
            .site
            .group()
            .wait_until(timeout, "site formed", |m| {
                m.current_leader.is_some()
                    && m.membership_config.membership().voter_ids().count() == voters
            })
            .await;
        if !formed {
            return false;
        }
    }
    true
}
