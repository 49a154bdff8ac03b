//! `chaperone-gateway`: parses flags and hands over to the library.

use std::{net::SocketAddr, path::PathBuf};

use clap::Parser;

/// Chaperone's per-namespace AWS gateway.
///
/// Serves agents' AWS calls on --listen and health, readiness and Prometheus metrics on --admin.
/// Its configuration is the file the operator writes into the namespace's config Secret.
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Args {
    /// Path of the gateway configuration (connections, policies, approval rules, recording).
    #[arg(long, env = "CHAPERONE_GATEWAY_CONFIG")]
    config: PathBuf,
    /// Path of the keys file (session MAC keys and recording signing key).
    #[arg(long, env = "CHAPERONE_GATEWAY_KEYS")]
    keys: PathBuf,
    /// Address agents' AWS calls arrive on.
    #[arg(long, default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, default_value = "0.0.0.0:9090")]
    admin: SocketAddr,
    /// Directory of the write-ahead recording spool.
    #[arg(long, default_value = "/var/lib/chaperone/spool")]
    spool_dir: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::bail!(
        "the gateway's data path is not built yet; nothing was served (config {})",
        args.config.display()
    )
}
