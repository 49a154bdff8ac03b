//! `kubectl-chaperone`: the auditors' and reviewers' command line, run as `kubectl chaperone ...`.

mod action_glob;
mod approvals;
mod audit_client;
mod cluster;
mod commands;
mod console;
mod flags;
mod install_checks;
mod policy_builder;
mod replay_diff;
mod replay_plan;
mod text_table;
mod time_bound;
mod timeline;

use std::process::ExitCode;

use clap::Parser;

use crate::flags::{ApprovalsCommand, Cli, Command, PolicyCommand, SessionsCommand};

/// Exit status when the command could not do its work (as opposed to `verify` finding problems,
/// which exits 1).
const EXIT_ERROR: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Both ring (kube) and aws-lc-rs (the AWS SDK) are compiled into rustls; name one for clients
    // that use the process default. An error only means a default is already installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime =
        match tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build() {
            Ok(runtime) => runtime,
            Err(e) => {
                eprintln!("error: cannot start the async runtime: {e}");
                return ExitCode::from(EXIT_ERROR);
            }
        };
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Sessions(SessionsCommand::List(args)) => commands::list::run(*args).await,
            Command::Sessions(SessionsCommand::Show(args)) => commands::show::run(*args).await,
            Command::Sessions(SessionsCommand::Verify(args)) => commands::verify::run(*args).await,
            Command::Sessions(SessionsCommand::AccessLog(args)) => {
                commands::access_log::run(*args).await
            }
            Command::Approvals(ApprovalsCommand::List(args)) => approvals::list(args).await,
            Command::Approvals(ApprovalsCommand::Approve(args)) => approvals::approve(args).await,
            Command::Approvals(ApprovalsCommand::Deny(args)) => approvals::deny(args).await,
            Command::Replay(args) => commands::replay::run(*args).await,
            Command::Policy(PolicyCommand::Suggest(args)) => {
                commands::policy_suggest::run(*args).await
            }
            Command::Doctor(args) => commands::doctor::run(args).await,
            Command::Console(args) => console::run(*args).await,
        }
    });
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}
