//! `sessionplane token issue`: a service token for automation, signed here with the private
//! side of the service key; the nodes hold only what verifies it.

use clap::{Args, Subcommand};

use crate::config::ServiceKeyAlgorithm;
use crate::iam::token::{sign_service, ServiceClaims};
use crate::node::secrets;

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Print a service token (`sub`, `admin: true`) on standard output.
    Issue(IssueArgs),
}

#[derive(Args, Debug)]
pub struct IssueArgs {
    /// Who the token is for (shown in the nodes' logs).
    #[arg(long)]
    pub sub: String,
    /// The key: the shared secret for HS256, a PEM private key for RS256 or EdDSA.
    #[arg(long)]
    pub key_file: std::path::PathBuf,
    #[arg(long, value_enum, default_value = "hs256")]
    pub algorithm: Algorithm,
    /// Lifetime in seconds.
    #[arg(long, default_value_t = 3600)]
    pub ttl_secs: u64,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Algorithm {
    Hs256,
    Rs256,
    Eddsa,
}

pub fn run(command: TokenCommand, json: bool) -> anyhow::Result<()> {
    let TokenCommand::Issue(args) = command;
    anyhow::ensure!(
        !args.sub.trim().is_empty(),
        "--sub must name the token's holder"
    );
    anyhow::ensure!(args.ttl_secs > 0, "--ttl-secs must be positive");
    let key = secrets::read("service key", &args.key_file)?;
    let now = sessionplane_cluster::now_ms() / 1000;
    let claims = ServiceClaims {
        sub: args.sub,
        admin: true,
        exp: now.saturating_add(args.ttl_secs),
        iat: Some(now),
        nbf: None,
    };
    let algorithm = match args.algorithm {
        Algorithm::Hs256 => ServiceKeyAlgorithm::HS256,
        Algorithm::Rs256 => ServiceKeyAlgorithm::RS256,
        Algorithm::Eddsa => ServiceKeyAlgorithm::EdDSA,
    };
    let token = sign_service(&claims, &key, algorithm)?;
    super::done(json, &token, serde_json::json!({ "token": token }));
    Ok(())
}
