//! `kubectl-chaperone`: the auditors' and reviewers' command line, run as `kubectl chaperone ...`.

use clap::{Parser, Subcommand};

/// Read, verify and replay Chaperone recordings; decide approval requests.
#[derive(Parser, Debug)]
#[command(name = "kubectl-chaperone", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Recorded sessions: list, show, verify.
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// Approval requests: list, approve, deny.
    #[command(subcommand)]
    Approvals(ApprovalsCommand),
}

#[derive(Subcommand, Debug)]
enum SessionsCommand {
    /// List recorded sessions.
    List,
    /// Show one session's calls as a timeline.
    Show {
        /// Session id.
        session: String,
    },
    /// Verify a session's chain, digests and signatures; exits non-zero on any break.
    Verify {
        /// Session id.
        session: String,
    },
}

#[derive(Subcommand, Debug)]
enum ApprovalsCommand {
    /// List approval requests.
    List,
    /// Approve a held call.
    Approve {
        /// ApprovalRequest name.
        name: String,
        /// Why you approve.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Deny a held call.
    Deny {
        /// ApprovalRequest name.
        name: String,
        /// Why you deny (shown to the agent).
        #[arg(long)]
        reason: String,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    anyhow::bail!("`{:?}` is not built yet; nothing was read or changed", cli.command)
}
