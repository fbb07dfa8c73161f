//! The `sessionplane` command line: `serve` runs a node, `demo` a whole local deployment, the
//! other commands speak a node's REST API.

pub mod audit;
pub mod channels;
pub mod client;
pub mod cluster;
pub mod demo;
pub mod events;
pub mod groups;
pub mod health;
pub mod incidents;
pub mod serve;
pub mod sessions;
pub mod tasks;
pub mod token;
pub mod users;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use tokio::signal::unix::{signal, Signal, SignalKind};

#[derive(Parser, Debug)]
#[command(
    name = "sessionplane",
    version,
    about = "Multi-site session control plane"
)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human, env = "SESSIONPLANE_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Print JSON instead of tables and sentences, for scripts.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run one node. Without --config: one node of site `local`, data in ./data,
    /// api on 127.0.0.1:8080, cluster on 127.0.0.1:7000.
    Serve {
        /// A TOML file (see config/sessionplane.toml); every field has a default.
        #[arg(long, short, env = "SESSIONPLANE_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Start a whole local site on loopback and print one line of JSON describing it.
    Demo(demo::DemoArgs),
    /// Users, through the REST API of a node.
    Users {
        #[command(flatten)]
        api: client::ApiArgs,
        #[command(subcommand)]
        command: users::UsersCommand,
    },
    /// Domains, through the REST API of a node.
    Domains {
        #[command(flatten)]
        api: client::ApiArgs,
        #[command(subcommand)]
        command: users::DomainsCommand,
    },
    /// Sessions and their websockets, through the REST API of a node.
    Sessions {
        #[command(flatten)]
        api: client::ApiArgs,
        #[command(subcommand)]
        command: sessions::SessionsCommand,
    },
    /// Mail channels (IMAP, SMTP, JMAP), through the REST API of a node.
    Channels {
        #[command(flatten)]
        api: client::ApiArgs,
        #[command(subcommand)]
        command: channels::ChannelsCommand,
    },
    /// TLS certificates of the site's nodes, through the REST API of a node.
    Certs {
        #[command(flatten)]
        api: client::ApiArgs,
        #[command(subcommand)]
        command: channels::CertsCommand,
    },
    /// The Raft groups as a node sees them, through the REST API of that node.
    Cluster {
        #[command(flatten)]
        api: client::ApiArgs,
        #[command(subcommand)]
        command: cluster::ClusterCommand,
    },
    /// Groups of users, through the REST API of a node.
    Groups {
        #[command(flatten)]
        api: client::ApiArgs,
        #[command(subcommand)]
        command: groups::GroupsCommand,
    },
    /// The site's durable tasks, through the REST API of a node.
    Tasks {
        #[command(flatten)]
        api: client::ApiArgs,
        #[command(subcommand)]
        command: tasks::TasksCommand,
    },
    /// The audit trail of the selected sites (`audit verify`: each site's hash chain).
    #[command(args_conflicts_with_subcommands = true)]
    Audit {
        #[command(flatten)]
        api: client::ApiArgs,
        #[command(flatten)]
        args: audit::AuditArgs,
        #[command(subcommand)]
        command: Option<audit::AuditCommand>,
    },
    /// The audit and session lifecycle events of the selected sites, from the event stream.
    Events {
        #[command(flatten)]
        api: client::ApiArgs,
        #[command(flatten)]
        args: events::EventsArgs,
    },
    /// A node's health checks (exit status 1 when it is unhealthy).
    Health {
        #[command(flatten)]
        api: client::ApiArgs,
    },
    /// Contain an account: one call, a receipt per site and per node.
    Incident {
        #[command(flatten)]
        api: client::ApiArgs,
        #[command(subcommand)]
        command: incidents::IncidentCommand,
    },
    /// Locks that keep a user, a domain, a network or a session out.
    Locks {
        #[command(flatten)]
        api: client::ApiArgs,
        #[command(subcommand)]
        command: incidents::LocksCommand,
    },
    /// Prints a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// Service tokens for automation.
    Token {
        #[command(subcommand)]
        command: token::TokenCommand,
    },
}

impl Command {
    /// The REST API arguments of a command that speaks to a node.
    pub fn api_mut(&mut self) -> Option<&mut client::ApiArgs> {
        match self {
            Command::Users { api, .. }
            | Command::Domains { api, .. }
            | Command::Sessions { api, .. }
            | Command::Channels { api, .. }
            | Command::Certs { api, .. }
            | Command::Cluster { api, .. }
            | Command::Groups { api, .. }
            | Command::Tasks { api, .. }
            | Command::Incident { api, .. }
            | Command::Locks { api, .. }
            | Command::Audit { api, .. }
            | Command::Events { api, .. }
            | Command::Health { api } => Some(api),
            Command::Serve { .. }
            | Command::Demo(_)
            | Command::Completions { .. }
            | Command::Token { .. } => None,
        }
    }
}

pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=error"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(|| Stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Standard error that never fails: a node must keep serving when whoever read its stderr has
/// gone away (a closed pipe, a vanished terminal), so what cannot be written is dropped.
pub struct Stderr;

impl std::io::Write for Stderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let _ = std::io::stderr().flush();
        Ok(())
    }
}

/// An error and its causes on one line, each said once: an error whose message already quotes
/// its source (`cannot listen on 127.0.0.1:8080: Address in use`) does not repeat it.
pub fn error_line(error: &anyhow::Error) -> String {
    let mut line = error.to_string();
    for cause in error.chain().skip(1) {
        let cause = cause.to_string();
        if !line.contains(&cause) {
            line = format!("{line}: {cause}");
        }
    }
    line
}

/// What a command did: a sentence for people, or the same as JSON for scripts.
pub fn done(json: bool, sentence: &str, value: serde_json::Value) {
    match json {
        true => println!("{value}"),
        false => println!("{sentence}"),
    }
}

/// Prints a line for people on stderr, dropping it if stderr is gone.
#[macro_export]
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!($crate::cli::Stderr, $($arg)*);
    }};
}

/// SIGINT and SIGTERM, listened to from the moment this is created: install it before the
/// process announces itself, so that a stop sent right after the announcement is a clean one.
pub struct StopSignals {
    interrupt: Signal,
    terminate: Signal,
}

impl StopSignals {
    pub fn install() -> std::io::Result<Self> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt())?,
            terminate: signal(SignalKind::terminate())?,
        })
    }

    /// Resolves when the process is asked to stop.
    pub async fn recv(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_line_says_each_cause_once() {
        let io = std::io::Error::from(std::io::ErrorKind::AddrInUse);
        let quoted = anyhow::Error::new(crate::node::StartError::Bind {
            addr: "127.0.0.1:8080".parse().unwrap(),
            source: io,
        });
        let line = error_line(&quoted);
        assert_eq!(
            line.matches(&std::io::ErrorKind::AddrInUse.to_string())
                .count(),
            1
        );
        let wrapped = anyhow::anyhow!("root cause").context("what was being done");
        assert_eq!(error_line(&wrapped), "what was being done: root cause");
    }
}
