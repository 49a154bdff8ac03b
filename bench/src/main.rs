//! `chaperone-bench`: parses flags and hands over to the library (see `cargo xtask bench`).

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context;
use chaperone_bench::{load::Budget, peers::SigV4ProxyFrom, report, run};
use clap::{Parser, Subcommand};

/// The same allocator as `chaperone-gateway`, so that the pass-through proxy and the "recording
/// off" gateway (both served by this binary) compare with the gateway on equal terms.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Measures the gateway against direct calls and peers, and writes docs/benchmarks.md.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    #[command(subcommand)]
    command: Option<Task>,
    /// A short smoke run (seconds): concurrency 1 and 8, a fixed number of calls per cell, a
    /// 64 MiB upload, no profile.
    #[arg(long)]
    quick: bool,
    /// Calls per (scenario, concurrency, way) cell instead of timed cells.
    #[arg(long)]
    requests: Option<u64>,
    /// Measured seconds per cell in a full run.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Concurrency levels (comma-separated).
    #[arg(long, value_delimiter = ',')]
    concurrency: Option<Vec<usize>>,
    /// Size of the streamed upload in MiB (default 1024; 64 with --quick).
    #[arg(long)]
    upload_mib: Option<u64>,
    /// The `chaperone-gateway` executable (a release build for numbers).
    /// Required to run the benchmark (not for `serve-unrecorded-gateway`).
    #[arg(long)]
    gateway_binary: Option<PathBuf>,
    /// Where the peers are installed; without it, no peers are measured.
    #[arg(long)]
    peers_dir: Option<PathBuf>,
    /// aws-sigv4-proxy's source (a checkout or a .tar.gz of one, with its vendor/ folder; from
    /// https://github.com/awslabs/aws-sigv4-proxy), built offline with `go build -mod=vendor`.
    #[arg(long, conflicts_with = "sigv4_proxy_binary")]
    sigv4_proxy_source: Option<PathBuf>,
    /// An aws-sigv4-proxy executable to measure instead of building one.
    #[arg(long)]
    sigv4_proxy_binary: Option<PathBuf>,
    /// Measure each cell only unpinned (by default each is measured a second time with the
    /// proxy under test on a core of its own and the load generator and upstream on another).
    #[arg(long)]
    no_pin: bool,
    /// Calls of the callgrind profile (0: no profile; default 3000, none with --quick).
    #[arg(long)]
    profile_requests: Option<u64>,
    /// Write the report into this Markdown file (between its generated-section markers).
    #[arg(long)]
    docs: Option<PathBuf>,
}

#[derive(Subcommand, Debug)]
enum Task {
    /// Serve the gateway's data path with recording discarded (the "recording off" way).
    #[command(hide = true)]
    ServeUnrecordedGateway {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        keys: PathBuf,
        #[arg(long)]
        listen: SocketAddr,
    },
    /// Serve the pass-through reference proxy (forwards unchanged to `--upstream`).
    #[command(hide = true)]
    ServePassThrough {
        #[arg(long)]
        upstream: SocketAddr,
        #[arg(long)]
        listen: SocketAddr,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("chaperone-bench: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run_args(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("chaperone-bench: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run_args(args: Args) -> anyhow::Result<()> {
    match args.command {
        Some(Task::ServeUnrecordedGateway { config, keys, listen }) => {
            let _ = rustls_provider();
            return chaperone_bench::unrecorded::serve_unrecorded_gateway(&config, &keys, listen)
                .await;
        }
        Some(Task::ServePassThrough { upstream, listen }) => {
            return chaperone_bench::passthrough::serve_pass_through(upstream, listen).await;
        }
        None => {}
    }
    let concurrency = args
        .concurrency
        .clone()
        .unwrap_or_else(|| if args.quick { vec![1, 8] } else { vec![1, 8, 32] });
    let budget = match (args.requests, args.quick) {
        (Some(n), _) => Budget::Requests(n),
        (None, true) => Budget::Requests(300),
        (None, false) => Budget::Time {
            warmup: Duration::from_millis(500),
            measure: Duration::from_secs_f64(args.seconds.max(0.1)),
        },
    };
    let options = run::Options {
        concurrency,
        budget,
        upload_bytes: args.upload_mib.unwrap_or(if args.quick { 64 } else { 1024 }) * 1024 * 1024,
        gateway_binary: args.gateway_binary.clone().context(
            "--gateway-binary is required: the chaperone-gateway executable to measure \
             (cargo xtask bench passes the release build)",
        )?,
        bench_binary: std::env::current_exe().context("locating chaperone-bench itself")?,
        peers_dir: args.peers_dir.clone(),
        sigv4_proxy: match (&args.sigv4_proxy_binary, &args.sigv4_proxy_source) {
            (Some(binary), _) => Some(SigV4ProxyFrom::Binary(binary.clone())),
            (None, Some(source)) => Some(SigV4ProxyFrom::Source(source.clone())),
            (None, None) => None,
        },
        pin: !args.no_pin,
        profile_requests: match args.profile_requests {
            Some(0) => None,
            Some(n) => Some(n),
            None if args.quick => None,
            None => Some(3000),
        },
        settle: Duration::from_secs(3),
    };
    let measurements = run::run(options).await?;
    let section = report::render(&measurements);
    println!("\n{section}");
    if let Some(docs) = &args.docs {
        report::write_into(docs, &section)
            .with_context(|| format!("writing {}", docs.display()))?;
        println!("wrote {}", docs.display());
    }
    Ok(())
}

fn rustls_provider() -> Result<(), std::sync::Arc<rustls::crypto::CryptoProvider>> {
    rustls::crypto::ring::default_provider().install_default()
}
