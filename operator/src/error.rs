//! What can go wrong while reconciling, with the object and value involved.

use chaperone_config::ConfigError;

use crate::gateway::keys::KeysPlanError;

/// A reconcile failure. The controller retries with backoff and counts it by [`Error::kind`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the API server failed.
    #[error("{action}: {source}")]
    Kube {
        /// What the operator was doing, e.g. `applying Deployment chaperone-gateway in agents`.
        action: String,
        /// The client's error.
        #[source]
        source: kube::Error,
    },
    /// The object lacks a field the API server always sets (name, namespace).
    #[error("{kind} without {field}: the API server always sets it")]
    MissingField {
        /// The object's kind.
        kind: &'static str,
        /// The missing field.
        field: &'static str,
    },
    /// The gateway's CA and serving certificate could not be issued or stored.
    #[error("the TLS certificate of the gateway of namespace {namespace}: {source}")]
    Certificates {
        /// The namespace.
        namespace: String,
        /// What failed.
        #[source]
        source: crate::webhooks::certificate_store::CertificateStoreError,
    },
    /// The namespace's configuration did not validate as the gateway's.
    #[error("the gateway configuration of namespace {namespace} does not validate: {source}")]
    Config {
        /// The namespace.
        namespace: String,
        /// The gateway's validation error, naming the field.
        #[source]
        source: ConfigError,
    },
    /// The configuration could not be written as YAML.
    #[error("writing the gateway configuration of namespace {namespace} as YAML: {source}")]
    Yaml {
        /// The namespace.
        namespace: String,
        /// The serializer's error.
        #[source]
        source: serde_yaml::Error,
    },
    /// Gateway keys could not be generated.
    #[error("gateway keys of namespace {namespace}: {source}")]
    Keys {
        /// The namespace.
        namespace: String,
        /// What went wrong.
        #[source]
        source: KeysPlanError,
    },
    /// A call to a RecordingPolicy's bucket failed where no condition can carry it (cleanup).
    #[error("RecordingPolicy {policy}: {message}")]
    S3 {
        /// The policy, `namespace/name`.
        policy: String,
        /// What failed, with the SDK's message.
        message: String,
    },
    /// Adding or removing the finalizer, or a step inside it, failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    /// A short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Kube { .. } => "kube",
            Error::MissingField { .. } => "missing_field",
            Error::Config { .. } => "config",
            Error::Yaml { .. } => "yaml",
            Error::Keys { .. } => "keys",
            Error::Certificates { .. } => "certificates",
            Error::S3 { .. } => "s3",
            Error::Finalizer(_) if self.is_stale_read() => "stale_read",
            Error::Finalizer(inner) => match inner.as_ref() {
                kube::runtime::finalizer::Error::ApplyFailed(e)
                | kube::runtime::finalizer::Error::CleanupFailed(e) => e.kind(),
                _ => "finalizer",
            },
        }
    }

    /// Whether the finalizer patch was refused because the object the controller read was
    /// older than the API server's: the patch tests the finalizer list it read (JSON Patch
    /// `test`), and a list changed since then fails that test with 422 (or 409). The watch
    /// delivers the newer object shortly; nothing is wrong with the object, so this is retried
    /// without a Warning event.
    pub fn is_stale_read(&self) -> bool {
        use kube::runtime::finalizer::Error as F;
        match self {
            Error::Finalizer(inner) => match inner.as_ref() {
                F::AddFinalizer(kube::Error::Api(status))
                | F::RemoveFinalizer(kube::Error::Api(status)) => {
                    status.code == 422 || status.code == 409
                }
                _ => false,
            },
            _ => false,
        }
    }

    /// Wraps a client error with what the operator was doing.
    pub fn kube(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Self {
        let action = action.into();
        move |source| Error::Kube { action, source }
    }
}

#[cfg(test)]
mod tests {
    use kube::core::Status;
    use kube::runtime::finalizer::Error as F;

    use super::Error;

    fn refused(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(
            Status::failure("the server rejected our request", "Invalid").with_code(code),
        ))
    }

    #[test]
    fn a_refused_finalizer_patch_is_a_stale_read_and_other_failures_are_not() {
        let stale = Error::Finalizer(Box::new(F::AddFinalizer(refused(422))));
        assert!(stale.is_stale_read());
        assert_eq!(stale.kind(), "stale_read");
        assert!(Error::Finalizer(Box::new(F::RemoveFinalizer(refused(409)))).is_stale_read());

        let forbidden = Error::Finalizer(Box::new(F::AddFinalizer(refused(403))));
        assert!(!forbidden.is_stale_read(), "a missing permission is reported, not hidden");
        let inside = Error::Finalizer(Box::new(F::ApplyFailed(Error::Kube {
            action: "applying PodDisruptionBudget chaperone-gateway".into(),
            source: refused(422),
        })));
        assert!(!inside.is_stale_read());
        assert_eq!(inside.kind(), "kube");
    }
}
