//! What the operator's flags decide about every gateway it runs.

use std::time::Duration;

use crate::runtime::gateway_pod::GatewayPodSettings;

/// How gateways are deployed and how their identity and keys are set up.
#[derive(Clone, Debug, PartialEq)]
pub struct GatewaySettings {
    /// Container image of the gateway.
    pub image: String,
    /// Replicas of each namespace's gateway Deployment.
    pub replicas: i32,
    /// The cluster's service-account token issuer (`iss` of agents' tokens).
    pub issuer: String,
    /// The JWKS URL the gateway fetches the issuer's keys from, as seen from a gateway pod.
    pub jwks_uri: String,
    /// How long a session MAC key signs before it is rotated (the previous key is still accepted,
    /// so this must exceed the longest session).
    pub session_key_rotation: Duration,
    /// The gateway's recording spool limit (`--max-spool-mib`); its `emptyDir` gets
    /// [`GatewaySettings::spool_volume_mib`].
    pub spool_mib: u64,
    /// Secrets (in each agent namespace) the gateway pods pull their image with.
    pub image_pull_secrets: Vec<String>,
    /// The gateway pods' resources, node selector, tolerations, affinity, topology spread and
    /// priority class (`--gateway-pod`).
    pub pod: GatewayPodSettings,
    /// The namespace whose pods may scrape the gateways' admin port (metrics); `None`: none may
    /// (kubelet probes are the CNI's to let through).
    pub metrics_namespace: Option<String>,
}

/// Whether `name` is a valid Kubernetes object name (RFC 1123 subdomain).
pub(crate) fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Whether `name` is a valid namespace name (RFC 1123 label).
fn is_dns_label(name: &str) -> bool {
    name.len() <= 63 && !name.contains('.') && is_dns_subdomain(name)
}

/// The default spool limit of a gateway, MiB.
pub const DEFAULT_SPOOL_MIB: u64 = 1024;
/// The smallest spool limit the operator accepts, MiB (one 8 MiB segment per session and room for
/// a few minutes of an outage).
pub const MIN_SPOOL_MIB: u64 = 64;

/// The longest session an AgentConnection may grant (`spec.session.maxDurationSeconds`).
pub const LONGEST_SESSION: Duration =
    Duration::from_secs(chaperone_config::MAX_SESSION_SECONDS.unsigned_abs());

impl GatewaySettings {
    /// The spool `emptyDir`'s `sizeLimit`, MiB: the spool limit plus a quarter (at least 64 MiB)
    /// for what the limit does not count (stream metadata and upload-state files, file-system
    /// blocks), so that a full spool refuses calls instead of getting the pod evicted, which
    /// would lose every recording not yet uploaded.
    pub fn spool_volume_mib(&self) -> u64 {
        self.spool_mib.saturating_add((self.spool_mib / 4).max(64))
    }

    /// Refuses settings a gateway cannot work with, naming the flag to change.
    pub fn check(&self) -> Result<(), String> {
        if self.image.trim().is_empty() {
            return Err("--gateway-image is empty: name the gateway's container image".into());
        }
        if self.replicas < 1 {
            return Err(format!("--gateway-replicas is {}: at least 1 is needed", self.replicas));
        }
        if self.session_key_rotation <= LONGEST_SESSION {
            return Err(format!(
                "--session-key-rotation-hours gives {} s, which does not exceed the longest session \
                 ({} s): sessions minted under a key would outlive the previous-key window; choose \
                 more than 12 hours",
                self.session_key_rotation.as_secs(),
                LONGEST_SESSION.as_secs()
            ));
        }
        if let Some(bad) = self.image_pull_secrets.iter().find(|s| !is_dns_subdomain(s)) {
            return Err(format!(
                "--gateway-image-pull-secret {bad:?} is not a Secret name (lowercase letters, digits, '-' and '.', at most 253)"
            ));
        }
        if let Some(bad) = self.metrics_namespace.as_deref().filter(|n| !is_dns_label(n)) {
            return Err(format!(
                "--gateway-metrics-namespace {bad:?} is not a namespace name (lowercase letters, digits and '-', at most 63)"
            ));
        }
        if self.spool_mib < MIN_SPOOL_MIB {
            return Err(format!(
                "--gateway-spool-mib is {}: at least {MIN_SPOOL_MIB} is needed",
                self.spool_mib
            ));
        }
        if !(self.jwks_uri.starts_with("https://") || self.jwks_uri.starts_with("http://")) {
            return Err(format!("--gateway-jwks-uri {:?} is not an http(s) URL", self.jwks_uri));
        }
        Ok(())
    }
}
