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
    Up {
        /// Also write the environment's description (endpoints, certificates, moto's users) as
        /// JSON to this file once it is ready; test binaries given its path in
        /// CHAPERONE_TEST_ENV use this environment instead of starting their own.
        #[arg(long, value_name = "FILE")]
        describe: Option<std::path::PathBuf>,
        /// Also stop when standard input closes (how `cargo xtask test` ends the environment,
        /// even when it is itself killed).
        #[arg(long)]
        until_stdin_closes: bool,
    },
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
        Command::Up { describe, until_stdin_closes } => {
            let started = std::time::Instant::now();
            let env = chaperone_tests::LocalEnv::start().await?;
            chaperone_tests::env::install_crds(&env.control_plane.client().await?).await?;
            println!("KUBECONFIG={}", env.control_plane.admin_kubeconfig().display());
            println!("S3/AWS endpoint (moto): {}", env.moto.endpoint());
            println!("logs: {}", env.dir().display());
            if let Some(path) = &describe {
                env.describe().write(path)?;
                println!("description: {}", path.display());
            }
            println!(
                "environment ready in {:.1} s; Ctrl-C stops it",
                started.elapsed().as_secs_f64()
            );
            // A plain thread: the runtime does not wait for it when main returns.
            let (closed, stdin_closed) = tokio::sync::oneshot::channel::<()>();
            if until_stdin_closes {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
                    let _ = closed.send(());
                });
            } else {
                std::mem::forget(closed);
            }
            let stdin_closed = async {
                let _ = stdin_closed.await;
            };
            tokio::select! {
                signal = tokio::signal::ctrl_c() => signal?,
                () = stdin_closed => {}
            }
            if let Some(path) = &describe {
                let _ = std::fs::remove_file(path);
            }
        }
    }
    Ok(())
}
