//! The webhooks as the operator binary runs them on every replica: the shared certificates from
//! the Secret, the webhook configuration applied with their CA, the listener serving them, and a
//! refresh loop that picks up renewed certificates (its own or another replica's) and re-applies
//! the configuration, until shutdown.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use kube::Client;
use tokio::net::TcpListener;

use super::certificate_store::{CertificateSecret, CertificateStoreError, ensure_certificates};
use super::tls::{CertificateLifetimes, ServingCertificate, WebhookTlsError};
use super::{WebhookEndpoint, WebhookSettings, register_webhooks};
use crate::runtime::readiness::Readiness;
use crate::runtime::stopping::Stopped;

/// Everything the webhooks of one replica need.
#[derive(Clone, Debug)]
pub struct WebhookOptions {
    /// Where the API server sends AdmissionReviews.
    pub endpoint: WebhookEndpoint,
    /// The MutatingWebhookConfiguration's name.
    pub configuration_name: String,
    /// The operator's namespace, where the TLS Secret lives.
    pub namespace: String,
    /// The TLS Secret's name.
    pub tls_secret: String,
    /// Lifetimes of the CA and of serving certificates.
    pub lifetimes: CertificateLifetimes,
    /// How often the Secret is re-read (renewal) and the configuration re-applied.
    pub refresh_every: Duration,
    /// The webhooks' settings.
    pub settings: WebhookSettings,
}

/// What stops the webhooks from starting.
#[derive(Debug, thiserror::Error)]
pub enum RunWebhooksError {
    #[error(transparent)]
    Tls(#[from] WebhookTlsError),
}

/// Runs the webhooks until `shutdown` completes, then stops accepting and lets in-flight requests
/// finish. Failures to reach the API server (certificates, registration) are retried with
/// backoff; only a certificate rustls refuses ends it early.
pub async fn run_webhooks<F>(
    client: Client,
    listener: TcpListener,
    options: WebhookOptions,
    shutdown: F,
) -> Result<(), RunWebhooksError>
where
    F: Future<Output = ()> + Send + 'static,
{
    let readiness = Readiness::new("the webhook serving certificate is not loaded yet");
    run_webhooks_reporting(client, listener, options, readiness, shutdown).await
}

/// [`run_webhooks`], reporting in `readiness` whether the API server can call them: ready once the
/// serving certificate is loaded and the applied configuration's every caBundle is its CA.
pub async fn run_webhooks_reporting<F>(
    client: Client,
    listener: TcpListener,
    options: WebhookOptions,
    readiness: Readiness,
    shutdown: F,
) -> Result<(), RunWebhooksError>
where
    F: Future<Output = ()> + Send + 'static,
{
    readiness.set_not_ready("the webhook serving certificate is not loaded yet");
    let stopped = Stopped::on(shutdown);
    let names = options.endpoint.serving_names();
    let attempt = || fetch(&client, &options, &names);
    let Some(mut current) = stopped.retry("webhook certificates not ready", attempt).await else {
        return Ok(());
    };
    let serving = ServingCertificate::new(&current)?;
    let tls = serving.clone().server_config();
    readiness.set_not_ready(format!(
        "the webhook configuration {:?} is not registered with this replica's CA yet",
        options.configuration_name
    ));
    tracing::info!(
        endpoint = ?options.endpoint,
        configuration = %options.configuration_name,
        not_after = %current.cert_not_after(),
        "serving admission webhooks"
    );

    let refresher = {
        let client = client.clone();
        let options = options.clone();
        let stopped = stopped.clone();
        async move {
            loop {
                let registered = match register_webhooks(
                    &client,
                    &options.configuration_name,
                    &options.endpoint,
                    current.ca_pem(),
                )
                .await
                {
                    Ok(applied) => {
                        match mismatched_ca_bundle(&applied, current.ca_pem()) {
                            None => readiness.set_ready(),
                            Some(webhook) => readiness.set_not_ready(format!(
                                "the caBundle of webhook {webhook:?} in {:?} is not the CA of the \
                                 serving certificate",
                                options.configuration_name
                            )),
                        }
                        true
                    }
                    Err(error) => {
                        tracing::warn!(%error, "registering the webhooks failed; retrying");
                        // A registered configuration stays valid through a failed re-apply.
                        if !readiness.is_ready() {
                            readiness.set_not_ready(format!("{error}; retrying"));
                        }
                        false
                    }
                };
                let wait = if registered { options.refresh_every } else { Duration::from_secs(5) };
                if !stopped.sleep(wait).await {
                    return;
                }
                match fetch(&client, &options, &names).await {
                    Ok(certificates) if certificates != current => {
                        match serving.replace(&certificates) {
                            Ok(()) => {
                                if certificates.ca_pem() != current.ca_pem() {
                                    // Until the loop re-applies the configuration with it.
                                    readiness.set_not_ready(
                                        "the webhook CA changed; re-registering the configuration",
                                    );
                                }
                                tracing::info!(
                                    not_after = %certificates.cert_not_after(),
                                    ca_changed = certificates.ca_pem() != current.ca_pem(),
                                    "serving the renewed webhook certificate"
                                );
                                current = certificates;
                            }
                            Err(error) => {
                                tracing::warn!(%error, "the renewed webhook certificate is unusable");
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(%error, "re-reading the webhook certificates failed")
                    }
                }
            }
        }
    };
    let refresher = tokio::spawn(refresher);
    super::serve_webhooks_until(listener, tls, client, options.settings.clone(), stopped.wait())
        .await;
    refresher.abort();
    Ok(())
}

/// The first webhook of `configuration` whose caBundle is not `ca_pem`.
pub fn mismatched_ca_bundle(
    configuration: &MutatingWebhookConfiguration,
    ca_pem: &str,
) -> Option<String> {
    configuration
        .webhooks
        .iter()
        .flatten()
        .find(|w| {
            w.client_config.ca_bundle.as_ref().map(|b| b.0.as_slice()) != Some(ca_pem.as_bytes())
        })
        .map(|w| w.name.clone())
}

async fn fetch(
    client: &Client,
    options: &WebhookOptions,
    names: &[String],
) -> Result<super::WebhookCertificates, CertificateStoreError> {
    let secret = CertificateSecret::webhooks(&options.namespace, &options.tls_secret);
    ensure_certificates(client, &secret, names, options.lifetimes).await.map(|(c, _)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_configuration_matches_only_when_every_webhook_carries_the_ca() {
        let endpoint = WebhookEndpoint::Url("https://127.0.0.1:9443".into());
        let mut configuration = super::super::webhook_configuration("chaperone", &endpoint, "CA1");
        assert_eq!(mismatched_ca_bundle(&configuration, "CA1"), None);
        assert_eq!(
            mismatched_ca_bundle(&configuration, "CA2").as_deref(),
            Some("approvalrequests.chaperone.dev")
        );
        if let Some(webhooks) = configuration.webhooks.as_mut() {
            webhooks[1].client_config.ca_bundle = None;
        }
        assert_eq!(
            mismatched_ca_bundle(&configuration, "CA1").as_deref(),
            Some("pods.chaperone.dev")
        );
    }
}
