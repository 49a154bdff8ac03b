//! The identity part of the gateway's configuration file, as the operator writes it.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The audience of the projected service-account tokens agents present (never `sts.amazonaws.com`).
pub const DEFAULT_AUDIENCE: &str = "chaperone.dev";
/// Clock skew tolerated on a token's `exp` and `nbf`, in seconds.
pub const DEFAULT_LEEWAY_SECONDS: u64 = 30;
/// Session length when an AgentConnection sets no `session.maxDurationSeconds` (STS's default).
pub const DEFAULT_MAX_SESSION_SECONDS: u32 = 3600;
/// The shortest session STS grants; shorter `DurationSeconds` are refused as STS refuses them.
pub const MIN_SESSION_SECONDS: u32 = 900;

/// How the gateway authenticates agents: whose tokens it trusts, and which connection admits whom.
///
/// ```json
/// {
///   "issuer": "https://kubernetes.default.svc.cluster.local",
///   "caFile": "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
///   "bearerTokenFile": "/var/run/secrets/kubernetes.io/serviceaccount/token",
///   "audience": "chaperone.dev",
///   "leewaySeconds": 30,
///   "tokenReview": true,
///   "namespace": "team-a",
///   "connections": [
///     {"name": "prod-aws", "serviceAccounts": ["pr-bot"], "maxSessionSeconds": 3600}
///   ]
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IdentityConfig {
    /// The service-account token issuer (`iss`), e.g. the API server's `--service-account-issuer`.
    pub issuer: String,
    /// Where the issuer's JWKS is; when absent, OIDC discovery at
    /// `<issuer>/.well-known/openid-configuration` tells.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// PEM bundle of the CAs that may sign the issuer's serving certificate; when absent, the
    /// system's roots are used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// File holding a bearer token sent when fetching discovery and JWKS (in a cluster, the
    /// gateway's own projected service-account token; the API server serves `/openid/v1/jwks`
    /// only to identities bound to `system:service-account-issuer-discovery`). Re-read on every
    /// fetch, so kubelet's rotation of it is picked up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_file: Option<PathBuf>,
    /// The audience agents' tokens must carry.
    #[serde(default = "default_audience")]
    pub audience: String,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds.
    #[serde(default = "default_leeway_seconds")]
    pub leeway_seconds: u64,
    /// Whether every token is also confirmed by a TokenReview, so a token whose pod was deleted
    /// is refused before it expires (the gateway's service account then needs the ClusterRole
    /// `system:auth-delegator`).
    #[serde(default)]
    pub token_review: bool,
    /// The namespace this gateway serves; tokens from any other namespace are refused.
    pub namespace: String,
    /// The namespace's AgentConnections and whom each admits.
    #[serde(default)]
    pub connections: Vec<ConnectionAdmission>,
}

/// Who may assume one AgentConnection's role, and for how long.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectionAdmission {
    /// The AgentConnection's name (the last segment of its role ARN).
    pub name: String,
    /// Service accounts of the gateway's namespace that may use it (`spec.agents.serviceAccounts`).
    #[serde(default)]
    pub service_accounts: Vec<String>,
    /// The longest session it grants (`spec.session.maxDurationSeconds`).
    #[serde(default = "default_max_session_seconds")]
    pub max_session_seconds: u32,
}

impl IdentityConfig {
    /// The connection called `name`, if this namespace has it.
    pub fn connection(&self, name: &str) -> Option<&ConnectionAdmission> {
        self.connections.iter().find(|c| c.name == name)
    }
}

impl ConnectionAdmission {
    /// Whether the service account `name` (of the gateway's namespace) may use this connection.
    pub fn admits(&self, service_account: &str) -> bool {
        self.service_accounts.iter().any(|sa| sa == service_account)
    }
}

fn default_audience() -> String {
    DEFAULT_AUDIENCE.to_owned()
}

fn default_leeway_seconds() -> u64 {
    DEFAULT_LEEWAY_SECONDS
}

fn default_max_session_seconds() -> u32 {
    DEFAULT_MAX_SESSION_SECONDS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minimal_config_gets_the_chaperone_audience_and_default_limits() {
        let config: IdentityConfig = serde_json::from_value(serde_json::json!({
            "issuer": "https://kubernetes.default.svc",
            "namespace": "team-a",
            "connections": [{"name": "prod-aws", "serviceAccounts": ["pr-bot"]}]
        }))
        .unwrap();
        assert_eq!(config.audience, "chaperone.dev");
        assert_eq!(config.leeway_seconds, 30);
        assert_eq!(config.jwks_uri, None);
        assert!(!config.token_review);
        let connection = config.connection("prod-aws").unwrap();
        assert_eq!(connection.max_session_seconds, 3600);
        assert!(connection.admits("pr-bot"));
        assert!(!connection.admits("default"));
        assert!(config.connection("staging").is_none());
    }

    #[test]
    fn a_misspelled_field_is_refused_rather_than_ignored() {
        let result: Result<IdentityConfig, _> = serde_json::from_value(serde_json::json!({
            "issuer": "https://kubernetes.default.svc",
            "namespace": "team-a",
            "jwksUrl": "https://example.com/jwks"
        }));
        assert!(result.unwrap_err().to_string().contains("jwksUrl"));
    }
}
