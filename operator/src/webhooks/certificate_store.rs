//! A CA and serving certificate kept in one Secret and shared by every operator replica: the
//! webhooks' in the operator's namespace (`chaperone-webhook-tls`), each gateway's in its
//! namespace ([`crate::gateway::objects::TLS_SECRET_NAME`]). Whichever replica gets there first creates it (a
//! `create`, so two replicas cannot both win), the others read it, and a replica that finds it
//! due for renewal replaces it under a resourceVersion precondition (the loser of a race re-reads
//! and uses the winner's). Every replica re-reads it periodically and serves what it holds, so all
//! replicas serve certificates signed by the same CA.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;
use time::OffsetDateTime;

use super::tls::{CertificateLifetimes, WEBHOOK_CA_NAME, WebhookCertificates, WebhookTlsError};

/// The default name of the Secret holding the webhook CA and serving certificate.
pub const WEBHOOK_TLS_SECRET: &str = "chaperone-webhook-tls";

/// How often a replica gives up on a contended Secret before reporting an error.
const ATTEMPTS: usize = 5;

/// Why the shared certificates could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CertificateStoreError {
    #[error("{action} Secret {namespace}/{name} failed: {source}")]
    Kube { action: &'static str, namespace: String, name: String, source: kube::Error },
    #[error(transparent)]
    Tls(#[from] WebhookTlsError),
    #[error(
        "Secret {namespace}/{name} kept changing under this replica ({ATTEMPTS} attempts); another replica is rotating it"
    )]
    Contended { namespace: String, name: String },
}

/// What to do with the Secret as it is.
#[derive(Debug, PartialEq, Eq)]
pub enum StorePlan {
    /// Serve these, stored as they are.
    Use(WebhookCertificates),
    /// No Secret yet: create it with these.
    Create(WebhookCertificates),
    /// Replace the stored (unusable or due) certificates with these, if the Secret is still at
    /// this resourceVersion.
    Replace { certificates: WebhookCertificates, resource_version: Option<String> },
}

/// Decides, from the Secret as read (or its absence), what to serve and write: the pure core of
/// [`ensure_certificates`].
pub fn plan(
    secret: Option<&Secret>,
    ca_name: &str,
    names: &[String],
    now: OffsetDateTime,
    lifetimes: CertificateLifetimes,
) -> Result<StorePlan, WebhookTlsError> {
    let Some(secret) = secret else {
        return Ok(StorePlan::Create(WebhookCertificates::generate_at(
            ca_name, names, now, lifetimes,
        )?));
    };
    let data: BTreeMap<String, Vec<u8>> = secret
        .data
        .iter()
        .flatten()
        .map(|(key, ByteString(bytes))| (key.clone(), bytes.clone()))
        .collect();
    let annotations = secret.metadata.annotations.clone().unwrap_or_default();
    let resource_version = secret.metadata.resource_version.clone();
    match WebhookCertificates::from_secret(&data, &annotations) {
        Ok(stored) => match stored.renewed(names, now, lifetimes)? {
            None => Ok(StorePlan::Use(stored)),
            Some(certificates) => Ok(StorePlan::Replace { certificates, resource_version }),
        },
        Err(unusable) => {
            tracing::warn!(error = %unusable, "the TLS Secret is unusable; replacing it");
            Ok(StorePlan::Replace {
                certificates: WebhookCertificates::generate_at(ca_name, names, now, lifetimes)?,
                resource_version,
            })
        }
    }
}

/// The labels of the webhooks' Secret.
pub fn webhook_secret_labels() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), "chaperone-operator".to_owned()),
        ("app.kubernetes.io/managed-by".to_owned(), crate::FIELD_MANAGER.to_owned()),
    ])
}

/// Which Secret holds a CA and its serving certificate, and what the CA is called.
#[derive(Clone, Debug)]
pub struct CertificateSecret {
    /// The Secret's namespace.
    pub namespace: String,
    /// The Secret's name.
    pub name: String,
    /// The CA's common name (when one is made).
    pub ca_name: String,
    /// The Secret's labels.
    pub labels: BTreeMap<String, String>,
}

impl CertificateSecret {
    /// The webhooks' Secret `namespace/name`.
    pub fn webhooks(namespace: &str, name: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            ca_name: WEBHOOK_CA_NAME.to_owned(),
            labels: webhook_secret_labels(),
        }
    }
}

fn secret_manifest(
    name: &str,
    labels: &BTreeMap<String, String>,
    certificates: &WebhookCertificates,
) -> Secret {
    let (data, annotations) = certificates.to_secret();
    let mut secret = Secret {
        data: Some(data.into_iter().map(|(k, v)| (k, ByteString(v))).collect()),
        type_: Some("Opaque".to_owned()),
        ..Default::default()
    };
    secret.metadata.name = Some(name.to_owned());
    secret.metadata.annotations = Some(annotations);
    secret.metadata.labels = Some(labels.clone());
    secret
}

/// Returns the certificates every replica serves for `names`, creating or renewing the Secret
/// `secret` when needed, and whether it wrote the Secret. Conflict-safe: a lost create or replace
/// re-reads the Secret.
pub async fn ensure_certificates(
    client: &Client,
    secret: &CertificateSecret,
    names: &[String],
    lifetimes: CertificateLifetimes,
) -> Result<(WebhookCertificates, bool), CertificateStoreError> {
    let (namespace, name) = (secret.namespace.as_str(), secret.name.as_str());
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let kube = |action: &'static str| {
        move |source: kube::Error| CertificateStoreError::Kube {
            action,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            source,
        }
    };
    for _ in 0..ATTEMPTS {
        let current = api.get_opt(name).await.map_err(kube("reading"))?;
        match plan(current.as_ref(), &secret.ca_name, names, OffsetDateTime::now_utc(), lifetimes)?
        {
            StorePlan::Use(certificates) => return Ok((certificates, false)),
            StorePlan::Create(certificates) => {
                match api
                    .create(
                        &PostParams::default(),
                        &secret_manifest(name, &secret.labels, &certificates),
                    )
                    .await
                {
                    Ok(_) => {
                        tracing::info!(
                            secret = name,
                            namespace,
                            "created the CA and serving certificate"
                        );
                        return Ok((certificates, true));
                    }
                    // Another replica created it first: use theirs.
                    Err(kube::Error::Api(status)) if status.code == 409 => continue,
                    Err(e) => return Err(kube("creating")(e)),
                }
            }
            StorePlan::Replace { certificates, resource_version } => {
                let manifest = secret_manifest(name, &secret.labels, &certificates);
                // A merge patch carrying the resourceVersion it was computed from: the API server
                // refuses it (409) if another replica wrote in between.
                let patch = json!({
                    "metadata": {
                        "resourceVersion": resource_version,
                        "annotations": manifest.metadata.annotations,
                        "labels": manifest.metadata.labels,
                    },
                    "data": manifest.data,
                });
                match api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await {
                    Ok(_) => {
                        tracing::info!(
                            secret = name,
                            namespace,
                            not_after = %certificates.cert_not_after(),
                            "renewed the serving certificate"
                        );
                        return Ok((certificates, true));
                    }
                    Err(kube::Error::Api(status)) if status.code == 409 || status.code == 404 => {
                        continue;
                    }
                    Err(e) => return Err(kube("renewing")(e)),
                }
            }
        }
    }
    Err(CertificateStoreError::Contended { namespace: namespace.to_owned(), name: name.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec!["127.0.0.1".to_owned()]
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    fn stored(certificates: &WebhookCertificates) -> Secret {
        let mut secret =
            secret_manifest(WEBHOOK_TLS_SECRET, &webhook_secret_labels(), certificates);
        secret.metadata.resource_version = Some("7".to_owned());
        secret
    }

    #[test]
    fn no_secret_plans_a_create_and_a_fresh_secret_is_used_as_it_is() {
        let lifetimes = CertificateLifetimes::default();
        let Ok(StorePlan::Create(created)) =
            plan(None, WEBHOOK_CA_NAME, &names(), now(), lifetimes)
        else {
            panic!("a create");
        };
        let secret = stored(&created);
        let used = plan(
            Some(&secret),
            WEBHOOK_CA_NAME,
            &names(),
            now() + time::Duration::days(1),
            lifetimes,
        );
        assert!(matches!(used, Ok(StorePlan::Use(ref c)) if *c == created), "{used:?}");
    }

    #[test]
    fn a_due_or_unusable_secret_is_replaced_at_the_resource_version_it_was_read_at() {
        let lifetimes = CertificateLifetimes::default();
        let Ok(StorePlan::Create(created)) =
            plan(None, WEBHOOK_CA_NAME, &names(), now(), lifetimes)
        else {
            panic!("a create");
        };
        let secret = stored(&created);
        let later = now() + time::Duration::days(80);
        let Ok(StorePlan::Replace { certificates, resource_version }) =
            plan(Some(&secret), WEBHOOK_CA_NAME, &names(), later, lifetimes)
        else {
            panic!("a replace");
        };
        assert_eq!(resource_version.as_deref(), Some("7"));
        assert_eq!(certificates.ca_pem(), created.ca_pem());

        let mut broken = secret.clone();
        broken.data = Some(BTreeMap::new());
        let Ok(StorePlan::Replace { certificates, .. }) =
            plan(Some(&broken), WEBHOOK_CA_NAME, &names(), now(), lifetimes)
        else {
            panic!("a replace");
        };
        assert_ne!(certificates.ca_pem(), created.ca_pem());
    }
}
