//! The gateway's configuration file: what the operator writes into each namespace's config Secret.
//!
//! It reuses the custom resources' own types for policy, recording and approval settings, so the
//! CRDs and the gateway can never disagree on a field. Upstream credentials are resolved by the
//! operator and carried inline: only the gateway's ServiceAccount can read the Secret.

use std::{collections::BTreeMap, path::Path};

use chaperone_crds::{
    ApprovalRuleSpec, ConnectionPolicy, DEFAULT_SESSION_SECONDS, MAX_SESSION_SECONDS,
    MIN_SESSION_SECONDS, RecordingPolicySpec,
};
use serde::{Deserialize, Serialize};

use crate::identity::{ConnectionAdmission, IdentityConfig, IdentitySource};
use crate::redacted::Redacted;

/// Version of the configuration schema this gateway understands.
pub const CONFIG_VERSION: u32 = 1;

/// The whole configuration of one namespace's gateway.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GatewayConfig {
    /// Schema version; must be [`CONFIG_VERSION`].
    pub version: u32,
    /// The namespace this gateway serves.
    pub namespace: String,
    /// How agents' projected tokens are verified (the API server's issuer and keys).
    pub identity: IdentitySource,
    /// The namespace's AgentConnections, compiled.
    pub connections: Vec<ConnectionConfig>,
    /// RecordingPolicies referenced by the connections, by name.
    #[serde(default)]
    pub recording_policies: BTreeMap<String, RecordingPolicySpec>,
    /// The namespace's ApprovalRules, by name.
    #[serde(default)]
    pub approval_rules: BTreeMap<String, ApprovalRuleSpec>,
    /// The recorder's own S3 keys per RecordingPolicy name, resolved by the operator from
    /// `spec.s3.credentials.secretRef`; a policy without an entry uses the gateway's ambient
    /// credentials (e.g. IRSA).
    #[serde(default)]
    pub recording_credentials: BTreeMap<String, UpstreamCredentials>,
}

/// One AgentConnection, compiled for the gateway.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConnectionConfig {
    /// The AgentConnection's name.
    pub name: String,
    /// ServiceAccounts of the namespace admitted through this connection.
    pub service_accounts: Vec<String>,
    /// Default AWS region.
    pub region: String,
    /// Credentials the gateway signs upstream calls with: static keys or a web identity, and
    /// optionally a role assumed with them.
    pub upstream: UpstreamConfig,
    /// Per-service endpoint overrides, keyed by signing name (`s3`, `dynamodb`, ...). `sts` is
    /// also where the gateway's own AssumeRole and AssumeRoleWithWebIdentity calls go.
    #[serde(default)]
    pub endpoints: BTreeMap<String, String>,
    /// Allow/deny policy over IAM actions.
    #[serde(default)]
    pub policy: ConnectionPolicy,
    /// Longest session the gateway mints, in seconds (the AgentConnection's
    /// `spec.session.maxDurationSeconds`).
    #[serde(default = "default_max_session_seconds")]
    pub max_session_seconds: i64,
    /// Name of the RecordingPolicy in [`GatewayConfig::recording_policies`].
    pub recording_policy: String,
    /// The upstream account id (`spec.aws.accountId`), when the AgentConnection names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
}

impl ConnectionConfig {
    /// The account the connection's calls act in: `accountId` when given, else the account of
    /// the role assumed upstream (or exchanged for with the web identity). `None` when unknown:
    /// resource ARNs are then built with `*` for the account and counted as incomplete.
    pub fn account_id(&self) -> Option<&str> {
        fn from_role(arn: &str) -> Option<&str> {
            is_role_arn(arn).then(|| arn.split(':').nth(4)).flatten()
        }
        let explicit = self
            .account_id
            .as_deref()
            .filter(|a| a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()));
        explicit
            .or_else(|| self.upstream.assume_role.as_ref().and_then(|r| from_role(&r.role_arn)))
            .or_else(|| self.upstream.web_identity.as_ref().and_then(|w| from_role(&w.role_arn)))
    }
}

fn default_max_session_seconds() -> i64 {
    DEFAULT_SESSION_SECONDS
}

/// Where a connection's upstream credentials come from: static keys (`accessKeyId`,
/// `secretAccessKey`, optional `sessionToken`) or `webIdentity`, exactly one; then optionally
/// `assumeRole`, assumed with them per agent before signing.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Static access key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id: Option<String>,
    /// Static secret access key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key: Option<Redacted<String>>,
    /// Session token of temporary static keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token: Option<Redacted<String>>,
    /// The gateway's own projected token, exchanged at STS (IRSA-style).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_identity: Option<WebIdentityConfig>,
    /// A role assumed with the base credentials, one role session per agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assume_role: Option<AssumeRoleConfig>,
}

impl UpstreamConfig {
    /// Static keys only.
    pub fn from_keys(keys: UpstreamCredentials) -> Self {
        Self {
            access_key_id: Some(keys.access_key_id),
            secret_access_key: Some(keys.secret_access_key),
            session_token: keys.session_token,
            ..Self::default()
        }
    }

    /// The static keys, when this connection has them.
    pub fn static_keys(&self) -> Option<UpstreamCredentials> {
        Some(UpstreamCredentials {
            access_key_id: self.access_key_id.clone()?,
            secret_access_key: self.secret_access_key.clone()?,
            session_token: self.session_token.clone(),
        })
    }

    /// What is wrong with the combination of fields, naming the field (relative to `upstream`).
    pub fn problem(&self) -> Option<(&'static str, String)> {
        let keys = self.access_key_id.is_some() || self.secret_access_key.is_some();
        match (keys, &self.web_identity) {
            (true, Some(_)) => {
                return Some((
                    "webIdentity",
                    "set either static keys (accessKeyId, secretAccessKey) or webIdentity, not both"
                        .into(),
                ));
            }
            (false, None) => {
                return Some((
                    "accessKeyId",
                    "no credentials: set accessKeyId and secretAccessKey, or webIdentity".into(),
                ));
            }
            (true, None) if self.static_keys().is_none() => {
                let missing =
                    if self.access_key_id.is_none() { "accessKeyId" } else { "secretAccessKey" };
                return Some((
                    missing,
                    "static keys need both accessKeyId and secretAccessKey".into(),
                ));
            }
            (false, Some(_)) if self.session_token.is_some() => {
                return Some(("sessionToken", "only goes with static keys".into()));
            }
            _ => {}
        }
        if let Some(web) = &self.web_identity {
            if !is_role_arn(&web.role_arn) {
                return Some((
                    "webIdentity.roleArn",
                    format!(
                        "{:?} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)",
                        web.role_arn
                    ),
                ));
            }
            if web.token_file.is_empty() {
                return Some((
                    "webIdentity.tokenFile",
                    "must name the projected token's file".into(),
                ));
            }
            if let Some(url) = &web.sts_endpoint
                && !is_http_url(url)
            {
                return Some((
                    "webIdentity.stsEndpoint",
                    format!("{url:?} is not an absolute http(s) URL"),
                ));
            }
        }
        if let Some(role) = &self.assume_role {
            if !is_role_arn(&role.role_arn) {
                return Some((
                    "assumeRole.roleArn",
                    format!(
                        "{:?} is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)",
                        role.role_arn
                    ),
                ));
            }
            if role.external_id.as_ref().is_some_and(|id| !(2..=1224).contains(&id.len())) {
                return Some(("assumeRole.externalId", "must be 2 to 1224 characters".into()));
            }
        }
        None
    }
}

/// The gateway's own web identity: a projected service-account token file exchanged for the
/// role's temporary credentials with `sts:AssumeRoleWithWebIdentity`, refreshed before expiry.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebIdentityConfig {
    /// The role the token is exchanged for.
    pub role_arn: String,
    /// The token's file, re-read at every exchange (the kubelet rotates it).
    pub token_file: String,
    /// STS endpoint for the exchange; else the connection's `endpoints.sts`, else regional STS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sts_endpoint: Option<String>,
}

/// A role the gateway assumes with the base credentials; the role session name is derived from
/// the agent's identity, so CloudTrail names the agent.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AssumeRoleConfig {
    /// The role to assume.
    pub role_arn: String,
    /// External id the role's trust policy asks for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

fn is_role_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    parts.len() == 6
        && parts[0] == "arn"
        && parts[1].starts_with("aws")
        && parts[2] == "iam"
        && parts[4].len() == 12
        && parts[4].bytes().all(|b| b.is_ascii_digit())
        && parts[5].strip_prefix("role/").is_some_and(|name| !name.is_empty())
}

fn is_http_url(url: &str) -> bool {
    (url.starts_with("http://") || url.starts_with("https://")) && url.parse::<http::Uri>().is_ok()
}

/// Static upstream keys, resolved by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpstreamCredentials {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: Redacted<String>,
    /// Session token, for temporary upstream credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token: Option<Redacted<String>>,
}

/// Why a configuration was refused; each names the field to fix.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read gateway config {path}: {source}")]
    Read {
        /// The path.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid YAML/JSON of the schema.
    #[error("gateway config {path} does not parse: {source}")]
    Parse {
        /// The path.
        path: String,
        /// The parser's error, with line and column.
        source: serde_yaml::Error,
    },
    /// A field has a value the gateway cannot use.
    #[error("gateway config field {field}: {problem}")]
    Invalid {
        /// The offending field, e.g. `connections[0].recordingPolicy`.
        field: String,
        /// What is wrong and what to do.
        problem: String,
    },
}

impl GatewayConfig {
    /// Reads, parses and validates a configuration file (YAML or JSON).
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
        Self::parse(&text).map_err(|e| match e {
            ConfigError::Parse { source, .. } => {
                ConfigError::Parse { path: path.display().to_string(), source }
            }
            other => other,
        })
    }

    /// Parses and validates a configuration from text.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let config: Self = serde_yaml::from_str(text)
            .map_err(|source| ConfigError::Parse { path: "<text>".into(), source })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what the schema alone cannot: versions, references, names, URLs.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |field: String, problem: String| Err(ConfigError::Invalid { field, problem });
        if self.version != CONFIG_VERSION {
            return invalid(
                "version".into(),
                format!(
                    "is {}, this gateway understands {CONFIG_VERSION}; upgrade the gateway or the operator so they match",
                    self.version
                ),
            );
        }
        if self.namespace.is_empty() {
            return invalid("namespace".into(), "must name the gateway's namespace".into());
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, connection) in self.connections.iter().enumerate() {
            let at = |field: &str| format!("connections[{i}].{field}");
            if !names.insert(connection.name.as_str()) {
                return invalid(at("name"), format!("{} appears twice", connection.name));
            }
            if connection.service_accounts.is_empty() {
                return invalid(at("serviceAccounts"), "must admit at least one".into());
            }
            if !self.recording_policies.contains_key(&connection.recording_policy) {
                return invalid(
                    at("recordingPolicy"),
                    format!(
                        "names {:?}, which is not among recordingPolicies; create the RecordingPolicy or fix recordingPolicyRef",
                        connection.recording_policy
                    ),
                );
            }
            if let Some((field, problem)) = connection.upstream.problem() {
                return invalid(at(&format!("upstream.{field}")), problem);
            }
            for (service, url) in &connection.endpoints {
                if !is_http_url(url) {
                    return invalid(
                        at(&format!("endpoints.{service}")),
                        format!("{url:?} is not an absolute http(s) URL"),
                    );
                }
            }
            if !(MIN_SESSION_SECONDS..=MAX_SESSION_SECONDS)
                .contains(&connection.max_session_seconds)
            {
                return invalid(
                    at("maxSessionSeconds"),
                    format!("must be within {MIN_SESSION_SECONDS}..={MAX_SESSION_SECONDS}"),
                );
            }
            if let Some(account) = &connection.account_id
                && !(account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()))
            {
                return invalid(
                    at("accountId"),
                    format!("{account:?} is not a 12-digit AWS account id"),
                );
            }
            for (j, service) in connection.policy.allow_unclassified.iter().enumerate() {
                let valid = !service.is_empty()
                    && service
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
                if !valid {
                    return invalid(
                        at(&format!("policy.allowUnclassified[{j}]")),
                        format!(
                            "{service:?} is not a signing name; name one service exactly (e.g. `cognito-idp`), no wildcards"
                        ),
                    );
                }
            }
        }
        for name in self.recording_credentials.keys() {
            if !self.recording_policies.contains_key(name) {
                return invalid(
                    format!("recordingCredentials.{name}"),
                    "names no entry of recordingPolicies".into(),
                );
            }
        }
        Ok(())
    }

    /// The connection named `name`.
    pub fn connection(&self, name: &str) -> Option<&ConnectionConfig> {
        self.connections.iter().find(|c| c.name == name)
    }

    /// What the identity exchange needs: the issuer and whom each connection admits.
    pub fn identity_config(&self) -> IdentityConfig {
        IdentityConfig {
            source: self.identity.clone(),
            namespace: self.namespace.clone(),
            connections: self
                .connections
                .iter()
                .map(|c| ConnectionAdmission {
                    name: c.name.clone(),
                    service_accounts: c.service_accounts.clone(),
                    max_session_seconds: c.max_session_seconds,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Why the example, with `from` replaced by `to`, is refused.
    fn refusal(from: &str, to: &str) -> String {
        GatewayConfig::parse(&EXAMPLE.replace(from, to)).unwrap_err().to_string()
    }

    const EXAMPLE: &str = r#"
version: 1
namespace: agents
identity:
  issuer: https://127.0.0.1:6443
connections:
- name: prod-aws
  serviceAccounts: [pr-bot]
  region: us-east-1
  upstream: {accessKeyId: AKIAEXAMPLE, secretAccessKey: secret}
  endpoints: {s3: "http://127.0.0.1:9000"}
  policy: {allow: ["s3:*"], deny: ["iam:*"]}
  recordingPolicy: default
recordingPolicies:
  default:
    s3: {bucket: audit, prefix: agents/, region: us-east-1}
    retention: {days: 30}
"#;

    #[test]
    fn a_complete_config_parses_with_defaults() {
        let config = GatewayConfig::parse(EXAMPLE).unwrap();
        assert_eq!(config.identity.audience, "chaperone.dev");
        let connection = config.connection("prod-aws").unwrap();
        assert_eq!(connection.max_session_seconds, 3600);
        assert_eq!(connection.policy.allow, ["s3:*"]);
        assert_eq!(config.recording_policies["default"].capture.max_body_bytes, 1024 * 1024);
    }

    #[test]
    fn a_dangling_recording_policy_reference_names_the_field() {
        let error = refusal("recordingPolicy: default", "recordingPolicy: missing");
        assert!(error.contains("connections[0].recordingPolicy"), "{error}");
        assert!(error.contains("\"missing\""), "{error}");
    }

    #[test]
    fn an_unknown_field_is_refused_with_its_line() {
        let text =
            EXAMPLE.replace("region: us-east-1\n  upstream", "regoin: us-east-1\n  upstream");
        let error = GatewayConfig::parse(&text).unwrap_err().to_string();
        assert!(error.contains("regoin"), "{error}");
        assert!(error.contains("line"), "{error}");
    }

    #[test]
    fn a_relative_endpoint_is_refused() {
        let error = refusal("\"http://127.0.0.1:9000\"", "\"127.0.0.1:9000\"");
        assert!(error.contains("connections[0].endpoints.s3"), "{error}");
    }

    #[test]
    fn upstream_secrets_never_appear_in_debug_output() {
        let config = GatewayConfig::parse(EXAMPLE).unwrap();
        let debug = format!("{config:?}");
        assert!(!debug.contains("secret\""), "{debug}");
        assert!(debug.contains("<redacted>"));
    }

    #[test]
    fn a_web_identity_with_an_assumed_role_parses() {
        let text = EXAMPLE.replace(
            "upstream: {accessKeyId: AKIAEXAMPLE, secretAccessKey: secret}",
            "upstream:\n    webIdentity: {roleArn: \"arn:aws:iam::123456789012:role/gw\", tokenFile: /var/run/secrets/eks.amazonaws.com/serviceaccount/token}\n    assumeRole: {roleArn: \"arn:aws:iam::123456789012:role/agents\", externalId: ext-1}",
        );
        let config = GatewayConfig::parse(&text).unwrap();
        let upstream = &config.connection("prod-aws").unwrap().upstream;
        assert!(upstream.static_keys().is_none());
        assert_eq!(
            upstream.web_identity.as_ref().unwrap().role_arn,
            "arn:aws:iam::123456789012:role/gw"
        );
        assert_eq!(upstream.assume_role.as_ref().unwrap().external_id.as_deref(), Some("ext-1"));
    }

    #[test]
    fn the_account_comes_from_account_id_else_the_upstream_role() {
        let config = GatewayConfig::parse(EXAMPLE).unwrap();
        assert_eq!(config.connection("prod-aws").unwrap().account_id(), None);
        let explicit = EXAMPLE.replace(
            "  recordingPolicy: default",
            "  recordingPolicy: default\n  accountId: \"111122223333\"",
        );
        let config = GatewayConfig::parse(&explicit).unwrap();
        assert_eq!(config.connection("prod-aws").unwrap().account_id(), Some("111122223333"));
        let role = EXAMPLE.replace(
            "secretAccessKey: secret}",
            "secretAccessKey: secret, assumeRole: {roleArn: \"arn:aws:iam::123456789012:role/agents\"}}",
        );
        let config = GatewayConfig::parse(&role).unwrap();
        assert_eq!(config.connection("prod-aws").unwrap().account_id(), Some("123456789012"));
        let error = refusal(
            "  recordingPolicy: default",
            "  recordingPolicy: default\n  accountId: \"12345\"",
        );
        assert!(error.contains("connections[0].accountId"), "{error}");
    }

    #[test]
    fn an_unclassified_opt_in_must_name_a_service_exactly() {
        let error = refusal(
            "policy: {allow: [\"s3:*\"], deny: [\"iam:*\"]}",
            "policy: {allow: [\"s3:*\"], allowUnclassified: [\"cognito-*\"]}",
        );
        assert!(error.contains("connections[0].policy.allowUnclassified[0]"), "{error}");
        assert!(error.contains("no wildcards"), "{error}");
    }

    #[test]
    fn static_keys_and_a_web_identity_together_are_refused() {
        let error = refusal(
            "secretAccessKey: secret}",
            "secretAccessKey: secret, webIdentity: {roleArn: \"arn:aws:iam::123456789012:role/gw\", tokenFile: /t}}",
        );
        assert!(error.contains("connections[0].upstream.webIdentity"), "{error}");
        assert!(error.contains("not both"), "{error}");
    }

    #[test]
    fn an_upstream_without_credentials_or_with_half_a_key_is_refused() {
        let error = refusal("{accessKeyId: AKIAEXAMPLE, secretAccessKey: secret}", "{}");
        assert!(error.contains("connections[0].upstream.accessKeyId"), "{error}");
        let error = refusal(", secretAccessKey: secret}", "}");
        assert!(error.contains("connections[0].upstream.secretAccessKey"), "{error}");
    }

    #[test]
    fn an_assumed_role_that_is_not_a_role_arn_is_refused() {
        let error = refusal(
            "secretAccessKey: secret}",
            "secretAccessKey: secret, assumeRole: {roleArn: \"arn:aws:iam::123456789012:user/x\"}}",
        );
        assert!(error.contains("connections[0].upstream.assumeRole.roleArn"), "{error}");
    }

    #[test]
    fn an_unknown_upstream_field_is_refused() {
        let text =
            EXAMPLE.replace("secretAccessKey: secret}", "secretAccessKey: secret, roleArn: x}");
        let error = GatewayConfig::parse(&text).unwrap_err().to_string();
        assert!(error.contains("roleArn"), "{error}");
    }

    #[test]
    fn another_schema_version_is_refused_with_advice() {
        let error = GatewayConfig::parse(&EXAMPLE.replace("version: 1", "version: 2"))
            .unwrap_err()
            .to_string();
        assert!(error.contains("version") && error.contains("upgrade"), "{error}");
    }
}
