#![forbid(unsafe_code)]
// A panic on a request, network or storage path is a crash waiting for bad input; tests may.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use clap::Parser;
use sessionplane::cli::{self, Cli, Command};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let mut cli = Cli::parse();
    cli::init_logging(cli.log_format);
    if let Some(api) = cli.command.api_mut() {
        api.json = cli.json;
    }
    let result = match cli.command {
        Command::Serve { config } => cli::serve::run(config.as_deref()).await,
        Command::Demo(args) => cli::demo::run(args).await,
        Command::Users { api, command } => cli::users::users(&api, command).await,
        Command::Domains { api, command } => cli::users::domains(&api, command).await,
        Command::Sessions { api, command } => cli::sessions::sessions(&api, command).await,
        Command::Channels { api, command } => cli::channels::channels(&api, command).await,
        Command::Certs { api, command } => cli::channels::certs(&api, command).await,
        Command::Cluster { api, command } => cli::cluster::cluster(&api, command).await,
        Command::Groups { api, command } => cli::groups::groups(&api, command).await,
        Command::Tasks { api, command } => cli::tasks::tasks(&api, command).await,
        Command::Health { api } => cli::health::health(&api).await,
        Command::Incident { api, command } => cli::incidents::incident(&api, command).await,
        Command::Locks { api, command } => cli::incidents::locks(&api, command).await,
        Command::Audit { api, args, command } => cli::audit::audit(&api, args, command).await,
        Command::Events { api, args } => cli::events::events(&api, args).await,
        Command::Completions { shell } => {
            let mut command = <cli::Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "sessionplane", &mut std::io::stdout());
            Ok(())
        }
        Command::Token { command } => cli::token::run(command, cli.json),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            sessionplane::say!("sessionplane: {}", cli::error_line(&e));
            std::process::ExitCode::FAILURE
        }
    }
}
