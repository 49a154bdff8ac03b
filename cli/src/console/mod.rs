//! `console`: a local web page for reviewers and auditors, served on 127.0.0.1 and acting with
//! the user's own kubeconfig identity: pending approvals to decide, recorded sessions to read.
//!
//! Everything the page shows comes through the same paths as the command line: decisions through
//! [`crate::approvals::record_decision`], sessions through [`sessions::SessionSource`] (the paths
//! of `sessions list/show/verify`: the audit API by default, S3 with `--bucket` or
//! `--recording-policy`). See docs/console.md.

mod access;
mod assets;
mod call_detail;
mod inbox;
mod routes;
mod server;
mod sessions;
mod token;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use crate::cluster::Cluster;
use crate::flags::{BucketFlags, TrustFlags};

/// `kubectl chaperone console` flags.
#[derive(Args, Debug)]
pub struct ConsoleArgs {
    /// A namespace to show (repeatable). Used when you may not list namespaces cluster-wide;
    /// default then: the kubeconfig context's namespace.
    #[arg(short = 'n', long)]
    pub namespace: Vec<String>,
    /// Path to the kubeconfig (default: KUBECONFIG, then ~/.kube/config).
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context (default: the current context).
    #[arg(long)]
    pub context: Option<String>,
    /// Port on 127.0.0.1 to serve on (default: a free one).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Do not try to open the page in a browser (xdg-open or open); only print its URL.
    #[arg(long)]
    pub no_open: bool,
    /// The direct S3 path of the sessions page: a bucket, or each namespace's RecordingPolicy.
    /// Without either, sessions are read through the audit API (audit.chaperone.dev) with your
    /// kubeconfig identity, as `kubectl chaperone sessions` does; with one, the console checks
    /// RBAC itself and verifies with --public-key/--public-keys-file/--cluster-keys.
    #[command(flatten)]
    pub recordings: BucketFlags,
    #[command(flatten)]
    pub trust: TrustFlags,
}

/// What every request handler shares.
pub struct Console {
    pub cluster: Cluster,
    pub requested_namespaces: Vec<String>,
    pub sessions: sessions::SessionSource,
}

pub async fn run(args: ConsoleArgs) -> anyhow::Result<ExitCode> {
    let cluster = Cluster::connect(args.kubeconfig.as_deref(), args.context.as_deref()).await?;
    let sessions = sessions::SessionSource::new(&args, &cluster)?;
    let console =
        Arc::new(Console { cluster, requested_namespaces: args.namespace.clone(), sessions });
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{}", args.port))?;
    let port = listener.local_addr().context("reading the listening port")?.port();
    let token = token::Token::generate()
        .map_err(|e| anyhow::anyhow!("drawing the console's random token failed: {e}"))?;
    let url = format!("http://127.0.0.1:{port}/?token={}", token.as_str());
    println!("Chaperone console: {url}");
    println!("(only this URL opens it; stop with Ctrl-C)");
    if !args.no_open {
        open_browser(&url);
    }
    server::serve(listener, port, token, console).await
}

/// Tries xdg-open (Linux) or open (macOS); a failure only means the user opens the URL.
fn open_browser(url: &str) {
    for opener in ["xdg-open", "open"] {
        let started = std::process::Command::new(opener)
            .arg(url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        if started.is_ok() {
            return;
        }
    }
}
