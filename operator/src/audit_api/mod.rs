//! The audit API: recorded sessions served through the Kubernetes aggregation layer as the
//! read-only, namespaced resource `sessions` of group `audit.chaperone.dev` (version `v1alpha1`),
//! with the subresource `sessions/events`. See docs/auditing.md.
//!
//! The API server authenticates the user and authorizes the read with ordinary RBAC before it
//! proxies the request here; this server does not authorize anything itself. It only believes the
//! API server's front proxy ([`front_proxy`]), reads the namespace's recordings with its
//! RecordingPolicies' credentials ([`sessions`]), appends each read to the namespace's signed
//! access log in the bucket (a read that cannot be logged is refused), then answers.
//!
//! Pure core: [`routes`] (paths, paging), [`objects`] (the JSON answers), [`front_proxy`]'s
//! authentication. Thin shell: [`server`], [`sessions`], [`access_key`], [`registration`], and
//! [`run_audit_api`] here.

pub mod access_key;
pub mod front_proxy;
pub mod objects;
pub mod registration;
pub mod routes;
pub mod server;
pub mod sessions;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chaperone_recording_store::AccessLogWriter;
use kube::Client;
use rustls::ServerConfig;
use tokio::net::TcpListener;

use crate::runtime::stopping::Stopped;
use crate::webhooks::certificate_store::{
    CertificateSecret, CertificateStoreError, ensure_certificates, webhook_secret_labels,
};
use crate::webhooks::tls::{CertificateLifetimes, ServingCertificate, WebhookCertificates};
use front_proxy::{FrontProxy, RequestClientCertificate};
use registration::{AuditService, register_api_service};
use server::AuditState;

/// The Secret holding the audit API's CA and serving certificate.
pub const AUDIT_API_TLS_SECRET: &str = "chaperone-audit-api-tls";
/// The common name of the audit API's CA (the APIService's caBundle).
pub const AUDIT_API_CA_NAME: &str = "chaperone-audit-api-ca";

/// Everything the audit API of one replica needs.
#[derive(Clone, Debug)]
pub struct AuditApiOptions {
    /// The Service the APIService points at.
    pub service: AuditService,
    /// The operator's namespace (TLS and signing-key Secrets).
    pub namespace: String,
    /// Lifetimes of the CA and of serving certificates.
    pub lifetimes: CertificateLifetimes,
    /// How often the certificates and front-proxy settings are re-read and the APIService
    /// re-applied.
    pub refresh_every: Duration,
}

/// Why the audit API could not start.
#[derive(Debug, thiserror::Error)]
pub enum AuditApiError {
    #[error(transparent)]
    Tls(#[from] crate::webhooks::tls::WebhookTlsError),
}

/// The rustls configuration: the current serving certificate, and a client certificate asked of
/// every client (checked per request against the front proxy's CA).
fn server_config(serving: Arc<ServingCertificate>) -> Arc<ServerConfig> {
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map(|builder| {
                builder
                    .with_client_cert_verifier(RequestClientCertificate::new())
                    .with_cert_resolver(serving.clone())
            })
            .unwrap_or_else(|_| {
                ServerConfig::builder_with_protocol_versions(rustls::DEFAULT_VERSIONS)
                    .with_client_cert_verifier(RequestClientCertificate::new())
                    .with_cert_resolver(serving)
            });
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

async fn fetch(
    client: &Client,
    options: &AuditApiOptions,
) -> Result<WebhookCertificates, CertificateStoreError> {
    let secret = CertificateSecret {
        namespace: options.namespace.clone(),
        name: AUDIT_API_TLS_SECRET.to_owned(),
        ca_name: AUDIT_API_CA_NAME.to_owned(),
        labels: webhook_secret_labels(),
    };
    ensure_certificates(client, &secret, &options.service.serving_names(), options.lifetimes)
        .await
        .map(|(c, _)| c)
}

/// Runs the audit API until `shutdown` completes. Failures to reach the API server
/// (certificates, signing key, registration, front-proxy settings) are retried with backoff.
pub async fn run_audit_api<F>(
    client: Client,
    listener: TcpListener,
    options: AuditApiOptions,
    shutdown: F,
) -> Result<(), AuditApiError>
where
    F: Future<Output = ()> + Send + 'static,
{
    let stopped = Stopped::on(shutdown);
    let attempt = || async {
        let certificates = fetch(&client, &options).await.map_err(|e| e.to_string())?;
        let signer = access_key::ensure_access_log_key(&client, &options.namespace)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>((certificates, signer))
    };
    let Some((mut current, signer)) = stopped.retry("audit API not ready", attempt).await else {
        return Ok(());
    };
    let serving = ServingCertificate::new(&current)?;
    let tls = server_config(serving.clone());
    let state = AuditState::new(client.clone(), AccessLogWriter::new(signer));
    tracing::info!(service = ?options.service, "serving the audit API");

    let refresher = {
        let client = client.clone();
        let options = options.clone();
        let state = state.clone();
        let stopped = stopped.clone();
        async move {
            loop {
                state.set_front_proxy(FrontProxy::load(&client).await.map_err(|e| {
                    tracing::warn!(error = %e, "reading the front-proxy settings failed");
                    e.to_string()
                }));
                let registered = match register_api_service(
                    &client,
                    &options.service,
                    current.ca_pem(),
                )
                .await
                {
                    Ok(_) => true,
                    Err(error) => {
                        tracing::warn!(%error, "registering the audit APIService failed; retrying");
                        false
                    }
                };
                let wait = if registered { options.refresh_every } else { Duration::from_secs(5) };
                if !stopped.sleep(wait).await {
                    return;
                }
                match fetch(&client, &options).await {
                    Ok(certificates) if certificates != current => {
                        match serving.replace(&certificates) {
                            Ok(()) => current = certificates,
                            Err(error) => {
                                tracing::warn!(%error, "the renewed audit API certificate is unusable")
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(%error, "re-reading the audit API certificates failed")
                    }
                }
            }
        }
    };
    let refresher = tokio::spawn(refresher);
    server::serve_until(listener, tls, state, stopped.wait()).await;
    refresher.abort();
    Ok(())
}
