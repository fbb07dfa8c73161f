//! `sessionplane-bench`: the same session workloads against sessionplane, etcd and Redis, over
//! loopback, with the same client concurrency and the same records (`bench/compare.sh` runs it
//! all and writes the table into docs/BENCHMARKS.md).
#![forbid(unsafe_code)]

mod dataset;
mod measure;
mod systems;
mod table;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};

use measure::{Measured, Outcome};
use systems::sessionplane::Endpoints;
use systems::System;

#[derive(Parser)]
#[command(about = "Session workloads against sessionplane, etcd and Redis")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs one workload against one system and appends its result (a JSON line) to `--out`.
    Run(Box<Run>),
    /// Prints the Markdown table of a results file.
    Table { results: PathBuf },
}

#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    Sessionplane,
    Etcd,
    Redis,
}

#[derive(clap::Args)]
struct Run {
    #[arg(long, value_enum)]
    system: Kind,
    /// How the table names this setup, e.g. "etcd 3.4, 3 members".
    #[arg(long)]
    label: String,
    /// sessionplane: api URLs; etcd: client URLs; Redis: one redis:// URL.
    #[arg(long, value_delimiter = ',', required = true)]
    endpoints: Vec<String>,
    /// sessionplane: the nodes' cluster listeners (host:port).
    #[arg(long, value_delimiter = ',')]
    cluster: Vec<String>,
    /// sessionplane: the site's name.
    #[arg(long, default_value = "bench")]
    site: String,
    #[arg(long, env = "SESSIONPLANE_BENCH_SECRET", default_value = "")]
    secret: String,
    #[arg(long, env = "SESSIONPLANE_BENCH_ADMIN_PASSWORD", default_value = "")]
    admin_password: String,
    /// etcd: revoke a user's leases one after the other (default: all at once).
    #[arg(long)]
    sequential_revokes: bool,
    /// The server processes, whose CPU time and resident memory are measured.
    #[arg(long, value_delimiter = ',')]
    pids: Vec<u32>,
    #[arg(long)]
    out: Option<PathBuf>,
    #[command(subcommand)]
    workload: Workload,
}

#[derive(Subcommand, Clone)]
enum Workload {
    /// sessionplane: creates the benchmark's domain and directory users.
    Prepare,
    /// Stores sessions `from..to` of the data set, `concurrency` at a time.
    Seed {
        #[arg(long)]
        from: u64,
        #[arg(long)]
        to: u64,
        #[arg(long, default_value_t = 256)]
        concurrency: usize,
    },
    /// Creates new sessions for `seconds` at each client count.
    Create {
        #[arg(long, value_delimiter = ',', default_value = "1,16,64,256")]
        clients: Vec<usize>,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Revokes single sessions, one after the other.
    RevokeOne {
        #[arg(long, default_value_t = 1000)]
        rounds: u64,
    },
    /// Revokes every session of a user (10 each), one user after the other.
    RevokeUser {
        #[arg(long, default_value_t = 50)]
        rounds: u64,
        /// The first of the users revoked (0 to 99).
        #[arg(long, default_value_t = 0)]
        first: u64,
    },
    /// Reads a user's sessions, one user after the other.
    ListUser {
        #[arg(long, default_value_t = 1000)]
        rounds: u64,
    },
    /// Reads every session.
    ListAll {
        #[arg(long, default_value_t = 5)]
        rounds: u64,
        /// At least this many sessions must come back.
        #[arg(long)]
        expect: usize,
    },
    /// sessionplane: from a revocation's request to the close frame on a websocket elsewhere.
    SocketClose {
        #[arg(long, default_value_t = 200)]
        rounds: u64,
    },
}

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Table { results } => {
            let text = std::fs::read_to_string(&results)
                .with_context(|| format!("read {}", results.display()))?;
            print!("{}", table::render(&table::parse(&text)?));
            Ok(())
        }
        Command::Run(run) => {
            let system = connect(&run).await?;
            for outcome in workload(&system, &run).await? {
                let line = serde_json::to_string(&outcome)?;
                println!("{line}");
                if let Some(out) = &run.out {
                    use std::io::Write;
                    let mut file = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(out)?;
                    writeln!(file, "{line}")?;
                }
            }
            Ok(())
        }
    }
}

async fn connect(run: &Run) -> Result<System> {
    Ok(match run.system {
        Kind::Sessionplane => System::Sessionplane(
            systems::sessionplane::Sessionplane::connect(Endpoints {
                api: run.endpoints.clone(),
                cluster: run.cluster.clone(),
                site: run.site.clone(),
                secret: run.secret.clone(),
                admin_password: run.admin_password.clone(),
            })
            .await?,
        ),
        Kind::Etcd => System::Etcd(Box::new(
            systems::etcd::Etcd::connect(&run.endpoints, run.sequential_revokes).await?,
        )),
        Kind::Redis => System::Redis(systems::redis::Redis::connect(&run.endpoints[0]).await?),
    })
}

async fn workload(system: &System, run: &Run) -> Result<Vec<Outcome>> {
    let measured = Measured::new(&run.label, &run.pids);
    let outcome = match run.workload.clone() {
        Workload::Prepare => {
            if let System::Sessionplane(node) = system {
                let mut node = node.clone();
                node.prepare().await?;
            }
            return Ok(Vec::new());
        }
        Workload::Seed {
            from,
            to,
            concurrency,
        } => {
            let system = system.clone();
            measured
                .spread(
                    &format!("seed {from}..{to}"),
                    concurrency,
                    from..to,
                    move |n| {
                        let system = system.clone();
                        async move { system.create(n).await }
                    },
                )
                .await?
        }
        Workload::Create { clients, seconds } => {
            let mut outcomes = Vec::new();
            for level in clients {
                let base = dataset::FIRST_CREATED + (measure::now_secs() & 0xF_FFFF) * (1 << 28);
                let system = system.clone();
                let outcome = measured
                    .closed_loop(
                        "create",
                        level,
                        Duration::from_secs(seconds),
                        move |c, i| {
                            let system = system.clone();
                            async move { system.create(base + (c << 20) + i).await }
                        },
                    )
                    .await?;
                measure::all_succeeded(&outcome)?;
                outcomes.push(outcome);
            }
            return Ok(outcomes);
        }
        Workload::RevokeOne { rounds } => {
            let first = dataset::FIRST_SINGLE_REVOCATION;
            let outcome = measured
                .rounds("revoke one", rounds, |r| system.revoke_one(first + r * 7))
                .await?;
            for r in [0, rounds / 2, rounds.saturating_sub(1)] {
                ensure!(
                    !system.exists(first + r * 7).await?,
                    "a revoked session is still there"
                );
            }
            outcome
        }
        Workload::RevokeUser { rounds, first } => {
            ensure!(
                first + rounds <= dataset::REVOKED_USERS,
                "users 0 to {} only",
                dataset::REVOKED_USERS - 1
            );
            measured
                .rounds("revoke all of a user", rounds, |r| async move {
                    let user = first + r;
                    let closed = system.revoke_user(user).await?;
                    ensure!(
                        closed == dataset::SESSIONS_PER_USER as usize,
                        "user {user}: {closed} revoked"
                    );
                    Ok(())
                })
                .await?
        }
        Workload::ListUser { rounds } => {
            measured
                .rounds("list a user's sessions", rounds, |r| async move {
                    let user = dataset::REVOKED_USERS + r % dataset::LISTED_USERS;
                    let found = system.list_user(user).await?;
                    ensure!(
                        found == dataset::SESSIONS_PER_USER as usize,
                        "user {user}: {found} listed"
                    );
                    Ok(())
                })
                .await?
        }
        Workload::ListAll { rounds, expect } => {
            measured
                .rounds(&format!("list all ({expect})"), rounds, |_| async move {
                    let found = system.list_all().await?;
                    ensure!(found >= expect, "{found} listed, {expect} expected");
                    Ok(())
                })
                .await?
        }
        Workload::SocketClose { rounds } => {
            let System::Sessionplane(node) = system else {
                anyhow::bail!("socket-close is sessionplane's alone");
            };
            measured
                .timed_rounds("revocation to socket close", rounds, |r| {
                    node.socket_close(r)
                })
                .await?
        }
    };
    Ok(vec![outcome])
}
