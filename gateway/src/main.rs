//! `chaperone-gateway`: parses flags, loads configuration and keys, and hands over to the library.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::ExitCode,
    sync::{Arc, atomic::AtomicBool},
    time::{Duration, SystemTime},
};

use anyhow::Context;
use chaperone_config::{GatewayConfig, GatewayKeys};
use chaperone_gateway::{
    admin::{AdminState, serve_admin},
    metrics::GatewayMetrics,
    recorder::{Recorder, RecorderSettings, RecordingTarget},
    server::{Gateway, GatewayRuntime},
    serving_tls::ServingFiles,
};
use chaperone_recording::RecordingSigner;
use clap::Parser;
use tokio::net::TcpListener;

/// mimalloc instead of glibc's malloc: a call allocates many small short-lived values (headers,
/// event fields, JSON), and glibc's allocator spent about a sixth of the data path's instructions
/// on them (docs/benchmarks.md, "Reading the run below").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Chaperone's per-namespace AWS gateway.
///
/// Serves agents' AWS calls on --listen (over TLS with --tls-cert and --tls-key, or in plain HTTP
/// only with --plaintext) and health, readiness and Prometheus metrics on --admin.
/// Its configuration is the file the operator writes into the namespace's config Secret; it is
/// reloaded when it changes, without dropping calls in flight.
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
    /// The agents' port's certificate chain (PEM), re-read when it changes (rotation).
    #[arg(long, requires = "tls_key", conflicts_with = "plaintext")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM), re-read when it changes.
    #[arg(long, requires = "tls_cert", conflicts_with = "plaintext")]
    tls_key: Option<PathBuf>,
    /// Serve the agents' port in plain HTTP: agents' tokens, credentials and bodies cross the
    /// network in clear. Only for a cluster whose AgentConnections opt in.
    #[arg(long)]
    plaintext: bool,
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, default_value = "0.0.0.0:9090")]
    admin: SocketAddr,
    /// Directory of the write-ahead recording spool (a volume that survives restarts).
    #[arg(long, default_value = "/var/lib/chaperone/spool")]
    spool_dir: PathBuf,
    /// This replica's name in recordings (the pod name in a cluster).
    #[arg(long, env = "POD_NAME", default_value = "gateway-0")]
    replica: String,
    /// Host names agents reach the gateway by (the Service's names); used to tell them apart
    /// from virtual-host-style S3 bucket names. The listen address is always included.
    #[arg(long = "gateway-host")]
    gateway_hosts: Vec<String>,
    /// Spool size beyond which calls are refused (FailClosed) until uploads catch up, in MiB.
    #[arg(long, default_value_t = 1024)]
    max_spool_mib: u64,
    /// Spool one AgentConnection may hold before its calls are refused (FailClosed) until its
    /// uploads catch up, in MiB; default: an equal share of --max-spool-mib per connection.
    #[arg(long)]
    max_connection_spool_mib: Option<u64>,
    /// Seconds between signed digest objects per open stream.
    #[arg(long, default_value_t = 300)]
    digest_interval_seconds: u64,
    /// Seconds after which an open segment is cut and uploaded even if small.
    #[arg(long, default_value_t = 60)]
    segment_max_age_seconds: u64,
    /// Seconds between checks of the config and keys files for changes.
    #[arg(long, default_value_t = 2)]
    reload_interval_seconds: u64,
    /// Kubeconfig for the Kubernetes API (ApprovalRequests, TokenReview); the in-cluster
    /// service account when unset.
    #[arg(long, env = "CHAPERONE_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    init_tracing();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("chaperone-gateway: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "gateway stopped");
            eprintln!("chaperone-gateway: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if std::env::var("CHAPERONE_LOG_FORMAT").is_ok_and(|f| f == "text") {
        builder.init();
    } else {
        builder.json().flatten_event(true).init();
    }
}

async fn load(
    config: &Path,
    keys: &Path,
    kubeconfig: Option<&Path>,
) -> anyhow::Result<(GatewayRuntime, GatewayKeys)> {
    let config = GatewayConfig::load(config)?;
    let keys = GatewayKeys::load(keys).with_context(|| format!("loading {}", keys.display()))?;
    let kube = if config.identity.token_review || !config.approval_rules.is_empty() {
        Some(kube_client(kubeconfig).await.context(
            "identity.tokenReview or approvalRules need the Kubernetes API: run in a cluster or pass --kubeconfig",
        )?)
    } else {
        None
    };
    Ok((GatewayRuntime::build(config, keys.session.clone(), kube)?, keys))
}

/// A client from `--kubeconfig`, else the in-cluster (or default) configuration.
async fn kube_client(kubeconfig: Option<&Path>) -> anyhow::Result<kube::Client> {
    let Some(path) = kubeconfig else {
        return Ok(kube::Client::try_default().await?);
    };
    let kubeconfig = kube::config::Kubeconfig::read_from(path)
        .with_context(|| format!("reading the kubeconfig {}", path.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
        .await
        .with_context(|| format!("loading the kubeconfig {}", path.display()))?;
    Ok(kube::Client::try_from(config)?)
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

async fn run(args: Args) -> anyhow::Result<()> {
    let tls = match (&args.tls_cert, &args.tls_key, args.plaintext) {
        (Some(cert), Some(key), false) => Some(ServingFiles::load(cert, key)?),
        (None, None, true) => None,
        _ => anyhow::bail!(
            "the agents' port needs --tls-cert and --tls-key (the certificate the operator issues into Secret chaperone-gateway-tls), or --plaintext to serve plain HTTP"
        ),
    };
    let (runtime, keys) = load(&args.config, &args.keys, args.kubeconfig.as_deref()).await?;
    let metrics = Arc::new(GatewayMetrics::new());
    let admin_state = Arc::new(AdminState {
        metrics: metrics.clone(),
        ready: AtomicBool::new(false),
        not_ready_reason: std::sync::Mutex::new("starting".into()),
    });
    let admin = TcpListener::bind(args.admin)
        .await
        .with_context(|| format!("binding the admin address {}", args.admin))?;
    tokio::spawn(serve_admin(admin, admin_state.clone()));

    let mut settings = RecorderSettings::new(
        args.spool_dir.clone(),
        args.replica.clone(),
        RecordingSigner::from_seed(keys.recording_signing_key.seed()),
    );
    settings.max_spool_bytes = args.max_spool_mib.saturating_mul(1024 * 1024);
    settings.max_connection_spool_bytes =
        args.max_connection_spool_mib.map(|mib| mib.saturating_mul(1024 * 1024));
    settings.digest_interval = Duration::from_secs(args.digest_interval_seconds.max(1));
    settings.cut.max_age = Duration::from_secs(args.segment_max_age_seconds.max(1));
    let recorder = Arc::new(
        Recorder::open(settings, RecordingTarget::all(&runtime.config))
            .await
            .with_context(|| format!("opening the recording spool {}", args.spool_dir.display()))?,
    );

    metrics.attach_recorder(recorder.metrics());
    let mut hosts = args.gateway_hosts.clone();
    hosts.push(args.listen.to_string());
    hosts.push(args.listen.ip().to_string());
    let gateway = Arc::new(Gateway::new(runtime, hosts, metrics, recorder.clone()));
    gateway.prime_upstream_credentials();
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("binding the agents' address {}", args.listen))?;
    tracing::info!(
        listen = %args.listen,
        admin = %args.admin,
        replica = %args.replica,
        tls = tls.is_some(),
        "gateway serving"
    );
    admin_state.set_ready(true, "");
    let serving = match &tls {
        Some(files) => tokio::spawn(gateway.clone().serve_tls(listener, files.server_config())),
        None => tokio::spawn(gateway.clone().serve(listener)),
    };

    // Reload the configuration and keys when their files change.
    let reload_gateway = gateway.clone();
    let reload_recorder = recorder.clone();
    let (config_path, keys_path) = (args.config.clone(), args.keys.clone());
    let kubeconfig = args.kubeconfig.clone();
    let interval = Duration::from_secs(args.reload_interval_seconds.max(1));
    let mut tls = tls;
    tokio::spawn(async move {
        let mut seen = (modified(&config_path), modified(&keys_path));
        loop {
            tokio::time::sleep(interval).await;
            match tls.as_mut().map(ServingFiles::reload_if_changed) {
                Some(Ok(true)) => tracing::info!("serving the changed TLS certificate"),
                Some(Err(error)) => tracing::error!(
                    error = %error,
                    "the changed TLS certificate was refused; still serving the previous one"
                ),
                Some(Ok(false)) | None => {}
            }
            let now = (modified(&config_path), modified(&keys_path));
            if now == seen {
                continue;
            }
            seen = now;
            match load(&config_path, &keys_path, kubeconfig.as_deref()).await {
                Ok((runtime, _keys)) => {
                    reload_recorder.update_targets(RecordingTarget::all(&runtime.config));
                    reload_gateway.reload(runtime);
                    tracing::info!("configuration reloaded");
                }
                Err(error) => tracing::error!(
                    error = format!("{error:#}"),
                    "the changed configuration was refused; still serving the previous one"
                ),
            }
        }
    });

    shutdown_signal().await;
    tracing::info!("shutting down: closing recording streams");
    admin_state.set_ready(false, "shutting down");
    serving.abort();
    recorder.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate => {}
    }
}
