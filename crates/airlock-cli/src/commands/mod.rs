//! One module per group of verbs.

pub mod agent;
mod cp;
mod exec;
mod fs;
mod sandboxes;
pub mod serve;
mod sync;
mod templates;
mod tokens;
mod transfer;

use std::process::ExitCode;

use airlock_client::Client;

use crate::args::{Command, Connection};

/// Runs a client verb.
pub async fn run_client(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(_) | Command::Agent(_) => {
            unreachable!("serve and agent are not client verbs")
        }
        Command::Create(args) => sandboxes::create(args).await,
        Command::Ls(out) => sandboxes::list(out).await,
        Command::Inspect(args) => sandboxes::inspect(args).await,
        Command::Start(args) => sandboxes::start(args).await,
        Command::Stop(args) => sandboxes::stop(args).await,
        Command::Rm(args) => sandboxes::remove(args).await,
        Command::Exec(args) => exec::run(args).await,
        Command::Template(cmd) => templates::run(cmd).await,
        Command::Token(cmd) => tokens::run(cmd).await,
        Command::Sign(args) => tokens::sign(args).await,
        Command::Cp(args) => cp::run(args).await,
        Command::Fs(cmd) => fs::run(cmd).await,
        Command::Watch(args) => fs::watch(args).await,
        Command::Sync(args) => sync::run(args).await,
        Command::Completions { shell } => {
            let mut command = <crate::args::Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "airlock", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// A client from flags, environment, or the local daemon's defaults.
pub fn connect(conn: &Connection) -> anyhow::Result<Client> {
    let url = conn.url.clone().unwrap_or_else(airlock_client::default_url);
    let token = match &conn.token {
        Some(token) => token.clone(),
        None => airlock_client::discover_token()?,
    };
    Ok(Client::new(url, token))
}
