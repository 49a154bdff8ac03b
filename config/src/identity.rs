//! How the gateway authenticates agents: the identity part of the configuration file
//! ([`IdentitySource`]), the runtime view the gateway derives from the whole file
//! ([`IdentityConfig`]), and the defaults both sides share.

use serde::{Deserialize, Serialize};

/// The audience of the projected service-account tokens agents present (never `sts.amazonaws.com`).
pub const DEFAULT_AUDIENCE: &str = "chaperone.dev";
/// Clock skew tolerated on a token's `exp` and `nbf`, in seconds.
pub const DEFAULT_LEEWAY_SECONDS: u64 = 30;

/// Where the service-account token issuer publishes its keys, and what agents' tokens must carry.
///
/// ```json
/// {
///   "issuer": "https://kubernetes.default.svc.cluster.local",
///   "caFile": "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
///   "tokenFile": "/var/run/secrets/kubernetes.io/serviceaccount/token",
///   "audience": "chaperone.dev",
///   "leewaySeconds": 30,
///   "tokenReview": true
/// }
/// ```
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IdentitySource {
    /// The issuer (`iss`) of the cluster's service-account tokens, e.g. the API server's
    /// `--service-account-issuer`.
    pub issuer: String,
    /// JWKS URL; OIDC discovery at `<issuer>/.well-known/openid-configuration` when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// PEM bundle of the CAs that may sign the issuer's serving certificate (the cluster CA in a
    /// pod); when unset, the system's roots are used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// File holding a bearer token sent when fetching discovery and JWKS (in a cluster, the
    /// gateway's own projected service-account token; the API server serves `/openid/v1/jwks`
    /// only to identities bound to `system:service-account-issuer-discovery`). Re-read on every
    /// fetch, so kubelet's rotation of it is picked up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<String>,
    /// The audience agents' tokens must carry.
    #[serde(default = "default_audience")]
    pub audience: String,
    /// Clock skew tolerated on token `exp` and `nbf`, in seconds.
    #[serde(default = "default_leeway_seconds")]
    pub leeway_seconds: u64,
    /// Confirm with a TokenReview that the agent's pod still exists, so a token whose pod was
    /// deleted is refused before it expires (needs the ClusterRole `system:auth-delegator`).
    #[serde(default)]
    pub token_review: bool,
}

impl IdentitySource {
    /// Tokens of `issuer`, with every other field at its default.
    pub fn for_issuer(issuer: impl Into<String>) -> Self {
        Self {
            issuer: issuer.into(),
            jwks_uri: None,
            ca_file: None,
            token_file: None,
            audience: default_audience(),
            leeway_seconds: DEFAULT_LEEWAY_SECONDS,
            token_review: false,
        }
    }
}

fn default_audience() -> String {
    DEFAULT_AUDIENCE.to_owned()
}

fn default_leeway_seconds() -> u64 {
    DEFAULT_LEEWAY_SECONDS
}

/// What the gateway's identity exchange works from: whose tokens it trusts and which connection
/// admits whom. Derived from the configuration file ([`crate::GatewayConfig::identity_config`]);
/// it has no file format of its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityConfig {
    /// Whose tokens are trusted.
    pub source: IdentitySource,
    /// The namespace this gateway serves; tokens from any other namespace are refused.
    pub namespace: String,
    /// The namespace's AgentConnections and whom each admits.
    pub connections: Vec<ConnectionAdmission>,
}

/// Who may assume one AgentConnection's role, and for how long.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionAdmission {
    /// The AgentConnection's name (the last segment of its role ARN).
    pub name: String,
    /// Service accounts of the gateway's namespace that may use it (`spec.agents.serviceAccounts`).
    pub service_accounts: Vec<String>,
    /// The longest session it grants, in seconds (`spec.session.maxDurationSeconds`).
    pub max_session_seconds: i64,
}

impl IdentityConfig {
    /// Trusts `source` for `namespace`, admitting no one yet.
    pub fn new(source: IdentitySource, namespace: impl Into<String>) -> Self {
        Self { source, namespace: namespace.into(), connections: Vec::new() }
    }

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minimal_source_gets_the_chaperone_audience_and_default_leeway() {
        let source: IdentitySource =
            serde_json::from_value(serde_json::json!({"issuer": "https://kubernetes.default.svc"}))
                .unwrap();
        assert_eq!(source, IdentitySource::for_issuer("https://kubernetes.default.svc"));
        assert_eq!(source.audience, "chaperone.dev");
        assert_eq!(source.leeway_seconds, 30);
        assert!(!source.token_review);
    }

    #[test]
    fn a_misspelled_field_is_refused_rather_than_ignored() {
        let result: Result<IdentitySource, _> = serde_json::from_value(serde_json::json!({
            "issuer": "https://kubernetes.default.svc",
            "jwksUrl": "https://example.com/jwks"
        }));
        assert!(result.unwrap_err().to_string().contains("jwksUrl"));
    }

    #[test]
    fn a_connection_admits_only_its_service_accounts() {
        let mut config = IdentityConfig::new(IdentitySource::for_issuer("https://i"), "team-a");
        config.connections.push(ConnectionAdmission {
            name: "prod-aws".into(),
            service_accounts: vec!["pr-bot".into()],
            max_session_seconds: 3600,
        });
        let connection = config.connection("prod-aws").unwrap();
        assert!(connection.admits("pr-bot"));
        assert!(!connection.admits("default"));
        assert!(config.connection("staging").is_none());
    }
}
