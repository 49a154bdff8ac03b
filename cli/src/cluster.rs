//! What the CLI reads from the cluster (with the kubeconfig, as kubectl does): a RecordingPolicy's
//! bucket, and an AgentConnection's published recording public keys.

use std::path::Path;

use chaperone_crds::{AgentConnection, RecordingPolicy, S3Destination};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

/// What went wrong talking to the cluster.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot load the kubeconfig{path}: {reason}")]
    Kubeconfig { path: String, reason: String },
    #[error("{kind} {name:?} does not exist in namespace {namespace:?}")]
    NotFound { kind: &'static str, name: String, namespace: String },
    #[error("your kubeconfig's user may not get {resource} in namespace {namespace:?}: {message}")]
    Forbidden { resource: &'static str, namespace: String, message: String },
    #[error("reading {kind} {name:?} in namespace {namespace:?} failed: {reason}")]
    Request { kind: &'static str, name: String, namespace: String, reason: String },
}

/// A client for the cluster named by the kubeconfig.
#[derive(Clone)]
pub struct Cluster {
    client: Client,
    default_namespace: String,
}

impl Cluster {
    /// Connects with `kubeconfig` (else KUBECONFIG or ~/.kube/config, or the in-cluster
    /// service account) and `context` (else the current context).
    pub async fn connect(
        kubeconfig: Option<&Path>,
        context: Option<&str>,
    ) -> Result<Self, ClusterError> {
        let options =
            KubeConfigOptions { context: context.map(str::to_owned), ..Default::default() };
        let path = kubeconfig.map(|p| format!(" {}", p.display())).unwrap_or_default();
        let fail = |reason: String| ClusterError::Kubeconfig { path: path.clone(), reason };
        let config = match kubeconfig {
            Some(file) => {
                let kubeconfig = Kubeconfig::read_from(file).map_err(|e| fail(e.to_string()))?;
                Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .map_err(|e| fail(e.to_string()))?
            }
            None if context.is_some() => {
                Config::from_kubeconfig(&options).await.map_err(|e| fail(e.to_string()))?
            }
            None => Config::infer().await.map_err(|e| fail(e.to_string()))?,
        };
        let default_namespace = config.default_namespace.clone();
        let client = Client::try_from(config).map_err(|e| fail(e.to_string()))?;
        Ok(Self { client, default_namespace })
    }

    /// The client, for commands that read or write other objects.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The kubeconfig context's namespace (`default` when it names none).
    pub fn default_namespace(&self) -> &str {
        &self.default_namespace
    }

    /// The S3 destination of RecordingPolicy `name` in `namespace`.
    pub async fn recording_destination(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<S3Destination, ClusterError> {
        let api: Api<RecordingPolicy> = Api::namespaced(self.client.clone(), namespace);
        let policy = api.get(name).await.map_err(|e| {
            classify(e, "RecordingPolicy", "recordingpolicies.chaperone.dev", namespace, name)
        })?;
        Ok(policy.spec.s3)
    }

    /// The recording public keys AgentConnection `name` in `namespace` publishes in its status.
    pub async fn recording_public_keys(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Vec<String>, ClusterError> {
        let api: Api<AgentConnection> = Api::namespaced(self.client.clone(), namespace);
        let connection = api.get(name).await.map_err(|e| {
            classify(e, "AgentConnection", "agentconnections.chaperone.dev", namespace, name)
        })?;
        Ok(connection.status.map(|s| s.recording_public_keys).unwrap_or_default())
    }
}

fn classify(
    error: kube::Error,
    kind: &'static str,
    resource: &'static str,
    namespace: &str,
    name: &str,
) -> ClusterError {
    match error {
        kube::Error::Api(status) if status.code == 404 => {
            ClusterError::NotFound { kind, name: name.to_owned(), namespace: namespace.to_owned() }
        }
        kube::Error::Api(status) if status.code == 403 => ClusterError::Forbidden {
            resource,
            namespace: namespace.to_owned(),
            message: status.message.clone(),
        },
        other => ClusterError::Request {
            kind,
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            reason: other.to_string(),
        },
    }
}
