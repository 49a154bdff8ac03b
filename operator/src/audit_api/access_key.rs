//! The key the operator signs access-log entries with: generated once, kept in a Secret in the
//! operator's namespace that every replica reads, and its public half published in a ConfigMap
//! beside it (and, by the access-log writer, in each bucket) for auditors to pin.

use std::collections::BTreeMap;

use base64::{Engine, engine::general_purpose::STANDARD as B64};
use chaperone_recording::RecordingSigner;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

/// The Secret holding the access-log signing key (its 32-byte Ed25519 seed under `seed`).
pub const ACCESS_LOG_KEY_SECRET: &str = "chaperone-access-log-key";
/// The ConfigMap publishing the access-log public key (`publicKey`, `keyId`).
pub const ACCESS_LOG_KEY_CONFIG_MAP: &str = "chaperone-access-log-key";
const SEED_KEY: &str = "seed";
const ATTEMPTS: usize = 5;

/// Why the signing key could not be had.
#[derive(Debug, thiserror::Error)]
pub enum AccessKeyError {
    #[error("{action} {kind} {namespace}/{name}: {source}")]
    Kube {
        action: &'static str,
        kind: &'static str,
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error(
        "Secret {namespace}/{name} has no 32-byte {SEED_KEY:?}: it is not an access-log key; delete it and the operator makes a new one"
    )]
    Invalid { namespace: String, name: String },
    #[error("the system's random source failed while generating the access-log key")]
    Random,
    #[error("Secret {namespace}/{name} kept changing under this replica ({ATTEMPTS} attempts)")]
    Contended { namespace: String, name: String },
}

/// The access-log signer every replica shares, creating its Secret on first use, and the
/// published ConfigMap.
pub async fn ensure_access_log_key(
    client: &Client,
    namespace: &str,
) -> Result<RecordingSigner, AccessKeyError> {
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let kube = |action, kind, name: &str| {
        let namespace = namespace.to_owned();
        let name = name.to_owned();
        move |source| AccessKeyError::Kube { action, kind, namespace, name, source }
    };
    let mut signer = None;
    for _ in 0..ATTEMPTS {
        if let Some(secret) = secrets.get_opt(ACCESS_LOG_KEY_SECRET).await.map_err(kube(
            "reading",
            "Secret",
            ACCESS_LOG_KEY_SECRET,
        ))? {
            let seed: [u8; 32] = secret
                .data
                .and_then(|d| d.get(SEED_KEY).cloned())
                .and_then(|b| b.0.try_into().ok())
                .ok_or_else(|| AccessKeyError::Invalid {
                    namespace: namespace.to_owned(),
                    name: ACCESS_LOG_KEY_SECRET.to_owned(),
                })?;
            signer = Some(RecordingSigner::from_seed(&seed));
            break;
        }
        let mut seed = [0u8; 32];
        aws_lc_rs::rand::fill(&mut seed).map_err(|_| AccessKeyError::Random)?;
        let mut secret = Secret {
            data: Some(BTreeMap::from([(SEED_KEY.to_owned(), ByteString(seed.to_vec()))])),
            type_: Some("Opaque".to_owned()),
            ..Secret::default()
        };
        secret.metadata.name = Some(ACCESS_LOG_KEY_SECRET.to_owned());
        secret.metadata.labels = Some(crate::webhooks::certificate_store::webhook_secret_labels());
        match secrets.create(&PostParams::default(), &secret).await {
            Ok(_) => {
                tracing::info!(
                    secret = ACCESS_LOG_KEY_SECRET,
                    namespace,
                    "created the access-log key"
                );
                signer = Some(RecordingSigner::from_seed(&seed));
                break;
            }
            // Another replica created it first: use theirs.
            Err(kube::Error::Api(status)) if status.code == 409 => continue,
            Err(e) => return Err(kube("creating", "Secret", ACCESS_LOG_KEY_SECRET)(e)),
        }
    }
    let signer = signer.ok_or_else(|| AccessKeyError::Contended {
        namespace: namespace.to_owned(),
        name: ACCESS_LOG_KEY_SECRET.to_owned(),
    })?;
    let public_key = B64.encode(signer.verifying_key().as_bytes());
    let config_map = json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": ACCESS_LOG_KEY_CONFIG_MAP,
            "labels": crate::webhooks::certificate_store::webhook_secret_labels(),
        },
        "data": {"publicKey": public_key, "keyId": signer.key_id().to_string()},
    });
    Api::<ConfigMap>::namespaced(client.clone(), namespace)
        .patch(
            ACCESS_LOG_KEY_CONFIG_MAP,
            &PatchParams::apply(crate::FIELD_MANAGER).force(),
            &Patch::Apply(&config_map),
        )
        .await
        .map_err(kube("applying", "ConfigMap", ACCESS_LOG_KEY_CONFIG_MAP))?;
    Ok(signer)
}
