//! `chaperone-env`: provisions and runs the local environment from the command line.

use clap::{Parser, Subcommand};

/// Chaperone's local environment: etcd, kube-apiserver and moto as processes.
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Build kube-apiserver, etcd, helm and kubeconform and install the Python tools and npm
    /// packages, unless cached.
    Provision,
    /// Start the environment, print how to reach it, and run until interrupted.
    Up,
    /// The whole story: operator, examples, gateway, an agent's AWS CLI session with an approved
    /// delete-bucket, and the recording shown and verified (`cargo xtask demo` runs this).
    Demo {
        /// Leave everything running, write target/demo/agent.env and target/demo/kubeconfig,
        /// print `demo ready` and wait for Ctrl-C.
        #[arg(long)]
        keep: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Provision => {
            let provisioned =
                tokio::task::spawn_blocking(chaperone_tests::provision::provision_all).await??;
            println!("kube-apiserver: {}", provisioned.kube_apiserver.display());
            println!("etcd:           {}", provisioned.etcd.display());
            println!("python venv:    {}", provisioned.python.root.display());
            println!("node packages:  {}", provisioned.node.root.display());
            let chart = tokio::task::spawn_blocking(chaperone_tests::provision::ensure_chart_tools)
                .await??;
            println!("helm:           {}", chart.helm.display());
            println!("kubeconform:    {}", chart.kubeconform.display());
        }
        Command::Demo { keep } => {
            chaperone_tests::demo::run(chaperone_tests::demo::DemoOptions { keep }).await?;
        }
        Command::Up => {
            let env = chaperone_tests::LocalEnv::start().await?;
            chaperone_tests::env::install_crds(&env.control_plane.client().await?).await?;
            println!("KUBECONFIG={}", env.control_plane.admin_kubeconfig().display());
            println!("S3/AWS endpoint (moto): {}", env.moto.endpoint());
            println!("logs: {}", env.dir().display());
            println!("environment ready; Ctrl-C stops it");
            tokio::signal::ctrl_c().await?;
        }
    }
    Ok(())
}
