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
    /// Check the toolchain (README.md, Requirements), build kube-apiserver, etcd, helm,
    /// kubeconform and actionlint, install the Python tools and npm packages and fetch the images'
    /// Debian packages, unless cached.
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
        /// Run the binaries of the images in this folder (`cargo xtask images`' output, e.g.
        /// target/images) instead of the workspace's debug builds.
        #[arg(long, value_name = "DIR")]
        images: Option<std::path::PathBuf>,
    },
    /// Run the S3 session with the Rust aws-sdk-s3 configured by this process's environment
    /// alone, as an agent's program is; print one JSON step line per step (exit 1 if one failed).
    RustS3Session {
        /// The bucket the session creates, writes, reads and deletes.
        bucket: String,
        /// This step must be denied with AccessDenied; the session stops there.
        #[arg(long)]
        expect_denied: Option<String>,
    },
    /// Build the operator, gateway and CLI images as OCI layouts from binaries already built
    /// (`cargo xtask images` builds release binaries first; docs/images.md).
    Images {
        /// `ARCH=DIR`: the images for ARCH (amd64 or arm64) take their binaries from DIR.
        /// Repeatable (one image index per image, one manifest per platform). Default: this
        /// machine's architecture from `<target>/release`.
        #[arg(long = "platform", value_name = "ARCH=DIR", conflicts_with = "binaries")]
        platforms: Vec<String>,
        /// This machine's architecture only, with the binaries in DIR (e.g. target/debug).
        #[arg(long, value_name = "DIR")]
        binaries: Option<std::path::PathBuf>,
        /// Where the layouts go (`<out>/<image>/`, plus `<out>/digests.json`).
        #[arg(long, value_name = "DIR")]
        out: Option<std::path::PathBuf>,
        /// The tag recorded in the layouts and labels; default: the workspace version.
        #[arg(long, default_value = env!("CARGO_PKG_VERSION"))]
        version: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Provision => {
            for tool in chaperone_tests::provision::check_toolchain()? {
                println!("found {tool}");
            }
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
            let actionlint = tokio::task::spawn_blocking(|| {
                chaperone_tests::provision::ensure_go_program(
                    chaperone_tests::provision::ACTIONLINT,
                )
            })
            .await??;
            println!("actionlint:     {}", actionlint.display());
            let kubectl = tokio::task::spawn_blocking(|| {
                chaperone_tests::provision::ensure_go_program(chaperone_tests::provision::KUBECTL)
            })
            .await??;
            println!("kubectl:        {}", kubectl.display());
            let debs = tokio::task::spawn_blocking(|| {
                chaperone_tests::provision::ensure_debian_packages(
                    chaperone_tests::images::host_arch(),
                )
            })
            .await??;
            println!("image packages: {} .debs (containers/debian-packages.txt)", debs.len());
            let chromium =
                tokio::task::spawn_blocking(chaperone_tests::provision::ensure_chromium).await??;
            println!(
                "chromium:       {} (driver {})",
                chromium.browser.display(),
                chromium.driver.display()
            );
        }
        Command::RustS3Session { bucket, expect_denied } => {
            use chaperone_tests::clients::{
                S3Step, first_failure, rust_s3_session_in_this_process,
            };
            let expect_denied = match expect_denied.as_deref() {
                None => None,
                Some(name) => Some(S3Step::from_name(name).ok_or_else(|| {
                    anyhow::anyhow!("--expect-denied {name:?} is not a step of the session")
                })?),
            };
            let steps = rust_s3_session_in_this_process(&bucket, expect_denied).await;
            for step in &steps {
                println!("{}", serde_json::to_string(step)?);
            }
            if first_failure(&steps).is_some() {
                std::process::exit(1);
            }
        }
        Command::Demo { keep, images } => {
            chaperone_tests::demo::run(chaperone_tests::demo::DemoOptions { keep, images }).await?;
        }
        Command::Images { platforms, binaries, out, version } => {
            let platforms = if platforms.is_empty() {
                vec![chaperone_tests::images::Platform {
                    arch: chaperone_tests::images::host_arch().into(),
                    binaries: binaries
                        .unwrap_or_else(|| chaperone_tests::paths::target_dir().join("release")),
                }]
            } else {
                platforms
                    .iter()
                    .map(|spec| chaperone_tests::images::parse_platform(spec))
                    .collect::<anyhow::Result<_>>()?
            };
            let out = out.unwrap_or_else(|| chaperone_tests::paths::target_dir().join("images"));
            let built = tokio::task::spawn_blocking(move || {
                chaperone_tests::images::build_and_record(&platforms, &version, &out)
            })
            .await??;
            for image in built {
                println!("{}: {} ({})", image.name, image.digest, image.layout.display());
            }
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
