//! `chaperone-operator`: parses flags, sets up logging, the Kubernetes client and the admin port,
//! and hands over to the controller until SIGTERM.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context as _;
use chaperone_operator::{
    Context, GatewaySettings, OperatorMetrics, approvals,
    approvals::lifecycle::LifecycleSettings,
    audit_api::{AuditApiOptions, run_audit_api},
    gateway, recording_policy,
    runtime::admin,
    runtime::gateway_pod::GatewayPodSettings,
    runtime::leader_election::LeaderLease,
    runtime::readiness::Readiness,
    runtime::service_account_issuer::discover_issuer,
    webhooks::{
        PodWebhookSettings, WebhookEndpoint, WebhookSettings,
        run::{WebhookOptions, run_webhooks_reporting},
        tls::CertificateLifetimes,
    },
};
use clap::{Parser, ValueEnum};
use tokio::sync::watch;
use tracing::{info, warn};

/// How long a Lease holder that stopped renewing keeps it.
const LEASE_DURATION: Duration = Duration::from_secs(15);
/// How often the leader renews, and followers retry.
const LEASE_RENEW_EVERY: Duration = Duration::from_secs(5);

/// Why the controller stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    Running,
    Signalled,
    LostLease,
}

/// Chaperone's Kubernetes operator.
///
/// Reconciles AgentConnections (with the RecordingPolicies, ApprovalRules and Secrets they use)
/// into one gateway per namespace. The Kubernetes client is configured as usual: $KUBECONFIG,
/// ~/.kube/config, or the pod's in-cluster service account.
#[derive(Parser, Debug)]
#[command(version, about, long_about)]
struct Args {
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, default_value = "0.0.0.0:8080")]
    admin: SocketAddr,
    /// Namespace the operator runs in.
    #[arg(long, env = "POD_NAMESPACE", default_value = "chaperone-system")]
    namespace: String,
    /// Reconcile only this namespace's AgentConnections (default: every namespace).
    #[arg(long, env = "CHAPERONE_WATCH_NAMESPACE")]
    watch_namespace: Option<String>,
    /// Container image of the gateway Deployments the operator creates.
    #[arg(
        long,
        env = "CHAPERONE_GATEWAY_IMAGE",
        default_value = "ghcr.io/chaperone-dev/chaperone-gateway:latest"
    )]
    gateway_image: String,
    /// Replicas of each gateway Deployment.
    #[arg(long, env = "CHAPERONE_GATEWAY_REPLICAS", default_value_t = 2)]
    gateway_replicas: i32,
    /// Each gateway's recording spool limit in MiB: calls are refused (FailClosed) when unuploaded
    /// recordings reach it. The spool emptyDir is sized a quarter larger (at least 64 MiB more).
    #[arg(long, env = "CHAPERONE_GATEWAY_SPOOL_MIB", default_value_t = chaperone_operator::runtime::settings::DEFAULT_SPOOL_MIB)]
    gateway_spool_mib: u64,
    /// A Secret the gateway pods pull their image with (repeat for several). It must exist in
    /// every namespace that has an AgentConnection, as for any pod.
    #[arg(long = "gateway-image-pull-secret", value_name = "SECRET")]
    gateway_image_pull_secrets: Vec<String>,
    /// The gateway pods' resources and scheduling, as one JSON object with any of the keys
    /// resources, nodeSelector, tolerations, affinity, topologySpreadConstraints and
    /// priorityClassName (the chart renders it from its `gateway.*` values).
    #[arg(long, env = "CHAPERONE_GATEWAY_POD", default_value = "{}")]
    gateway_pod: String,
    /// The namespace whose pods may scrape the gateways' admin port (metrics) through the
    /// gateway's NetworkPolicy; unset: no namespace may.
    #[arg(long, env = "CHAPERONE_GATEWAY_METRICS_NAMESPACE")]
    gateway_metrics_namespace: Option<String>,
    /// The cluster's service-account token issuer; discovered from the API server when unset.
    #[arg(long, env = "CHAPERONE_SERVICE_ACCOUNT_ISSUER")]
    service_account_issuer: Option<String>,
    /// The JWKS URL gateways fetch the issuer's keys from, as seen from a gateway pod.
    #[arg(long, default_value = "https://kubernetes.default.svc/openid/v1/jwks")]
    gateway_jwks_uri: String,
    /// Hours a session MAC key signs before it is rotated (more than 12: the longest session).
    #[arg(long, default_value_t = 168)]
    session_key_rotation_hours: u64,
    /// Reconcile only while holding the Lease `--leader-election-lease` in `--namespace`, so that
    /// one replica reconciles at a time.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    leader_election: bool,
    /// Name of the leader-election Lease.
    #[arg(long, default_value = "chaperone-operator")]
    leader_election_lease: String,
    /// Seconds a decided, consumed or expired ApprovalRequest is kept after its expiry before
    /// it is deleted.
    #[arg(long, default_value_t = 86_400)]
    approval_retention_seconds: u64,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Json)]
    log_format: LogFormat,
    /// Serve and register the admission webhooks (every replica serves them, leader or not).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    webhooks: bool,
    /// Address the admission webhooks listen on (TLS).
    #[arg(long, default_value = "0.0.0.0:9443")]
    webhook_listen: SocketAddr,
    /// The URL the API server calls the webhooks at, `https://<host>:<port>` without a path
    /// (e.g. `https://127.0.0.1:9443` when the API server reaches the operator over loopback).
    /// Without it, the webhooks are registered through `--webhook-service`.
    #[arg(long, conflicts_with = "webhook_service")]
    webhook_url: Option<String>,
    /// The operator's Service the API server calls the webhooks through:
    /// `<namespace>/<name>[:<port>]` or `<name>[:<port>]` (in `--namespace`), port 443 by default.
    #[arg(long, default_value = "chaperone-operator")]
    webhook_service: String,
    /// Name of the MutatingWebhookConfiguration the operator applies (and keeps the caBundle of).
    #[arg(long, default_value = "chaperone")]
    webhook_config_name: String,
    /// Secret in `--namespace` holding the webhook CA and serving certificate shared by replicas.
    #[arg(long, default_value = chaperone_operator::webhooks::certificate_store::WEBHOOK_TLS_SECRET)]
    webhook_tls_secret: String,
    /// Hours a webhook serving certificate is valid; it is reissued by the same CA when less than
    /// a third remains.
    #[arg(long, default_value_t = 2160)]
    webhook_cert_validity_hours: u64,
    /// `expirationSeconds` of the projected token (audience `chaperone.dev`) injected into agents'
    /// pods; the kubelet refreshes it at 80% of its life. At least 600 (the API server's minimum).
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(i64).range(600..=86400))]
    agent_token_expiration_seconds: i64,
    /// Seconds between re-reads of the webhook TLS Secret (renewal) and re-applies of the webhook
    /// configuration.
    #[arg(long, default_value_t = 300)]
    webhook_refresh_seconds: u64,
    /// Serve the audit API (sessions through the aggregation layer) and register its APIService
    /// (every replica serves it, leader or not).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    audit_api: bool,
    /// Address the audit API listens on (TLS; only the API server's front proxy is answered).
    #[arg(long, default_value = "0.0.0.0:9444")]
    audit_api_listen: SocketAddr,
    /// The Service the APIService v1alpha1.audit.chaperone.dev points at:
    /// `<namespace>/<name>[:<port>]` or `<name>[:<port>]` (in `--namespace`).
    #[arg(long, default_value = "chaperone-operator:8443")]
    audit_api_service: String,
    /// Seconds between re-reads of the audit API's TLS Secret and front-proxy settings, and
    /// re-applies of its APIService.
    #[arg(long, default_value_t = 60)]
    audit_api_refresh_seconds: u64,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    /// One JSON object per line (containers).
    Json,
    /// Human-readable lines.
    Text,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    match args.log_format {
        LogFormat::Json => tracing_subscriber::fmt().json().with_env_filter(filter).init(),
        LogFormat::Text => tracing_subscriber::fmt().with_env_filter(filter).init(),
    }

    let gateway_pod =
        GatewayPodSettings::from_json(&args.gateway_pod).map_err(anyhow::Error::msg)?;
    let webhook_endpoint = match &args.webhook_url {
        Some(url) => WebhookEndpoint::url(url),
        None => WebhookEndpoint::service(&args.webhook_service, &args.namespace),
    }
    .map_err(anyhow::Error::msg)?;

    let audit_service = chaperone_operator::audit_api::registration::AuditService::parse(
        &args.audit_api_service,
        &args.namespace,
    )
    .map_err(anyhow::Error::msg)?;

    chaperone_operator::runtime::tls::install_crypto_provider();
    let client = kube::Client::try_default().await.context(
        "building the Kubernetes client (from $KUBECONFIG, ~/.kube/config or in-cluster)",
    )?;
    let issuer = match args.service_account_issuer {
        Some(issuer) => issuer,
        None => discover_issuer(&client).await?,
    };
    let settings = GatewaySettings {
        image: args.gateway_image,
        replicas: args.gateway_replicas,
        issuer,
        jwks_uri: args.gateway_jwks_uri,
        session_key_rotation: Duration::from_secs(
            args.session_key_rotation_hours.saturating_mul(3600),
        ),
        spool_mib: args.gateway_spool_mib,
        image_pull_secrets: args.gateway_image_pull_secrets,
        pod: gateway_pod,
        metrics_namespace: args.gateway_metrics_namespace,
    };
    settings.check().map_err(anyhow::Error::msg)?;

    let metrics = Arc::new(OperatorMetrics::new());
    let listener = tokio::net::TcpListener::bind(args.admin)
        .await
        .with_context(|| format!("binding the admin address {}", args.admin))?;
    let (stop, stopping) = watch::channel(Stop::Running);
    let readiness = if args.webhooks {
        Readiness::new("the webhook serving certificate is not loaded yet")
    } else {
        Readiness::ready()
    };
    let admin = tokio::spawn(admin::serve_admin(listener, metrics.clone(), readiness.clone(), {
        let mut stopping = stopping.clone();
        async move {
            let _ = stopping.wait_for(|s| *s != Stop::Running).await;
        }
    }));
    tokio::spawn({
        let stop = stop.clone();
        async move {
            shutdown_signal().await;
            info!("shutting down: letting running reconciles finish");
            let _ = stop.send(Stop::Signalled);
        }
    });
    let webhooks = if args.webhooks {
        let listener = tokio::net::TcpListener::bind(args.webhook_listen)
            .await
            .with_context(|| format!("binding the webhook address {}", args.webhook_listen))?;
        let options = WebhookOptions {
            endpoint: webhook_endpoint,
            configuration_name: args.webhook_config_name.clone(),
            namespace: args.namespace.clone(),
            tls_secret: args.webhook_tls_secret.clone(),
            lifetimes: CertificateLifetimes {
                serving: Duration::from_secs(args.webhook_cert_validity_hours.saturating_mul(3600)),
                ..CertificateLifetimes::default()
            },
            refresh_every: Duration::from_secs(args.webhook_refresh_seconds.max(1)),
            settings: WebhookSettings {
                pods: PodWebhookSettings {
                    token_expiration_seconds: args.agent_token_expiration_seconds,
                },
                ..WebhookSettings::default()
            },
        };
        let mut stopping = stopping.clone();
        Some(tokio::spawn(run_webhooks_reporting(
            client.clone(),
            listener,
            options,
            readiness,
            async move {
                let _ = stopping.wait_for(|s| *s != Stop::Running).await;
            },
        )))
    } else {
        None
    };
    let audit_api = if args.audit_api {
        let listener = tokio::net::TcpListener::bind(args.audit_api_listen)
            .await
            .with_context(|| format!("binding the audit API address {}", args.audit_api_listen))?;
        let options = AuditApiOptions {
            service: audit_service,
            namespace: args.namespace.clone(),
            lifetimes: CertificateLifetimes {
                serving: Duration::from_secs(args.webhook_cert_validity_hours.saturating_mul(3600)),
                ..CertificateLifetimes::default()
            },
            refresh_every: Duration::from_secs(args.audit_api_refresh_seconds.max(1)),
        };
        let mut stopping = stopping.clone();
        Some(tokio::spawn(run_audit_api(client.clone(), listener, options, async move {
            let _ = stopping.wait_for(|s| *s != Stop::Running).await;
        })))
    } else {
        None
    };
    info!(
        admin = %args.admin,
        audit_api = %args.audit_api_listen,
        webhooks = %args.webhook_listen,
        operator_namespace = %args.namespace,
        watch_namespace = args.watch_namespace.as_deref().unwrap_or("<all>"),
        image = %settings.image,
        issuer = %settings.issuer,
        "chaperone-operator starting"
    );

    let lease = args.leader_election.then(|| {
        let identity = std::env::var("POD_NAME")
            .unwrap_or_else(|_| format!("chaperone-operator-{}", std::process::id()));
        LeaderLease::new(
            client.clone(),
            &args.namespace,
            &args.leader_election_lease,
            &identity,
            LEASE_DURATION,
        )
    });
    if let Some(lease) = &lease {
        info!(lease = %args.leader_election_lease, identity = lease.identity(), "waiting to lead");
        if !wait_to_lead(lease, stopping.clone()).await {
            let _ = admin.await;
            stop_webhooks(webhooks).await;
            stop_audit_api(audit_api).await;
            return Ok(());
        }
        info!(identity = lease.identity(), "leading");
        tokio::spawn(keep_leading(lease.clone(), stop.clone(), stopping.clone()));
    }

    let policies =
        Arc::new(recording_policy::controller::Context::new(client.clone(), metrics.clone()));
    let approval_settings = LifecycleSettings {
        retention: Duration::from_secs(args.approval_retention_seconds),
        ..LifecycleSettings::default()
    };
    let approvals = approvals::controller::ApprovalContext::new(
        client.clone(),
        approval_settings,
        metrics.clone(),
    )
    .context("setting up ApprovalRequest notifications")?;
    let approvals = tokio::spawn(approvals::controller::run(
        Arc::new(approvals),
        args.watch_namespace.clone(),
        {
            let mut stopping = stopping.clone();
            async move {
                let _ = stopping.wait_for(|s| *s != Stop::Running).await;
            }
        },
    ));
    let context = Arc::new(Context::new(client, settings, metrics));
    let controller_stop = |mut stopping: watch::Receiver<Stop>| async move {
        let _ = stopping.wait_for(|s| *s != Stop::Running).await;
    };
    tokio::join!(
        gateway::controller::run(
            context,
            args.watch_namespace.clone(),
            controller_stop(stopping.clone())
        ),
        recording_policy::controller::run(
            policies,
            args.watch_namespace,
            controller_stop(stopping.clone())
        ),
    );
    let _ = stop.send(Stop::Signalled);
    let _ = approvals.await;
    let _ = admin.await;
    stop_webhooks(webhooks).await;
    stop_audit_api(audit_api).await;
    if *stopping.borrow() == Stop::LostLease {
        anyhow::bail!(
            "lost the leader-election Lease; exiting so that a fresh start contends again"
        );
    }
    if let Some(lease) = &lease
        && let Err(error) = lease.release().await
    {
        warn!(%error, "could not release the leader-election Lease; it expires by itself");
    }
    info!("chaperone-operator stopped");
    Ok(())
}

/// Waits for the webhooks (already told to stop) to finish their in-flight requests.
async fn stop_webhooks(
    webhooks: Option<
        tokio::task::JoinHandle<Result<(), chaperone_operator::webhooks::run::RunWebhooksError>>,
    >,
) {
    let Some(webhooks) = webhooks else { return };
    match webhooks.await {
        Ok(Ok(())) => info!("webhooks stopped"),
        Ok(Err(error)) => warn!(%error, "the webhooks had stopped with an error"),
        Err(error) => warn!(%error, "the webhook task failed"),
    }
}

/// Waits for the audit API (already told to stop) to finish its in-flight reads.
async fn stop_audit_api(
    audit_api: Option<
        tokio::task::JoinHandle<Result<(), chaperone_operator::audit_api::AuditApiError>>,
    >,
) {
    let Some(audit_api) = audit_api else { return };
    match audit_api.await {
        Ok(Ok(())) => info!("audit API stopped"),
        Ok(Err(error)) => warn!(%error, "the audit API had stopped with an error"),
        Err(error) => warn!(%error, "the audit API task failed"),
    }
}

/// Retries the Lease until this replica holds it (true) or the process is asked to stop (false).
async fn wait_to_lead(lease: &LeaderLease, mut stopping: watch::Receiver<Stop>) -> bool {
    loop {
        match lease.try_acquire_or_renew().await {
            Ok(true) => return true,
            Ok(false) => {}
            Err(error) => warn!(%error, "contending for the leader-election Lease failed"),
        }
        tokio::select! {
            () = tokio::time::sleep(LEASE_RENEW_EVERY) => {}
            _ = stopping.wait_for(|s| *s != Stop::Running) => return false,
        }
    }
}

/// Renews the Lease; when it could not be renewed for a whole lease duration, stops the
/// controller, since another replica may have taken over.
async fn keep_leading(
    lease: LeaderLease,
    stop: watch::Sender<Stop>,
    mut stopping: watch::Receiver<Stop>,
) {
    let mut renewed = std::time::Instant::now();
    loop {
        tokio::select! {
            () = tokio::time::sleep(LEASE_RENEW_EVERY) => {}
            _ = stopping.wait_for(|s| *s != Stop::Running) => return,
        }
        match lease.try_acquire_or_renew().await {
            Ok(true) => renewed = std::time::Instant::now(),
            Ok(false) => {
                warn!("another replica holds the leader-election Lease");
                let _ = stop.send(Stop::LostLease);
                return;
            }
            Err(error) => warn!(%error, "renewing the leader-election Lease failed"),
        }
        if renewed.elapsed() >= LEASE_DURATION {
            warn!("the leader-election Lease was not renewed in time");
            let _ = stop.send(Stop::LostLease);
            return;
        }
    }
}

/// Completes on SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}
