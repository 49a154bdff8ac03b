//! Compiles a namespace's AgentConnections, the RecordingPolicies they reference and the
//! namespace's ApprovalRules into the gateway's configuration file, with upstream credentials
//! resolved from the connections' Secrets.
//!
//! Pure: the caller fetches the objects and Secrets; this decides, for each connection, whether it
//! can be served and, when not, what the user must create or fix. A connection that cannot be
//! served is left out of the configuration (the others keep working) and says why in its
//! conditions.

use std::collections::BTreeMap;

use chaperone_config::{
    AssumeRoleConfig, CONFIG_VERSION, ConfigError, ConnectionConfig, GatewayConfig, IdentitySource,
    Redacted, UpstreamConfig, UpstreamCredentials, WebIdentityConfig,
};
use chaperone_crds::{AgentConnection, ApprovalRuleSpec, RecordingPolicy};
use kube::ResourceExt;

use crate::runtime::scaffolding::{SESSION_TOKEN_KEY, aws_keys};

/// The data of the Secrets a namespace's connections reference, by Secret name; a Secret that
/// does not exist is absent.
pub type SecretData = BTreeMap<String, BTreeMap<String, Vec<u8>>>;

/// Everything a namespace's gateway configuration is compiled from.
#[derive(Clone, Debug)]
pub struct NamespaceInputs<'a> {
    /// The namespace.
    pub namespace: &'a str,
    /// How the gateway verifies agents' tokens.
    pub identity: IdentitySource,
    /// The namespace's live AgentConnections (not being deleted).
    pub connections: &'a [AgentConnection],
    /// The Secrets referenced by `spec.aws.credentials.secretRef`.
    pub secrets: &'a SecretData,
    /// The namespace's RecordingPolicies, by name.
    pub recording_policies: &'a BTreeMap<String, RecordingPolicy>,
    /// The namespace's ApprovalRules, by name.
    pub approval_rules: &'a BTreeMap<String, ApprovalRuleSpec>,
}

/// The outcome of one check on a connection: the material of a condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// Whether the check passed.
    pub passed: bool,
    /// CamelCase reason.
    pub reason: String,
    /// A sentence the user can act on.
    pub message: String,
}

impl Check {
    fn pass(reason: &str, message: String) -> Self {
        Self { passed: true, reason: reason.into(), message }
    }
    fn fail(reason: &str, message: String) -> Self {
        Self { passed: false, reason: reason.into(), message }
    }
}

/// What compiling one connection found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionOutcome {
    /// Upstream credentials: resolved, or what to create.
    pub credentials: Check,
    /// The referenced RecordingPolicy: found, or what to create.
    pub recording_policy: Check,
    /// Whether the connection is in the gateway configuration, and if not why.
    pub compiled: Check,
}

/// A namespace's gateway configuration and the outcome for each connection.
#[derive(Clone, Debug)]
pub struct Compilation {
    /// The configuration file's content, validated.
    pub config: GatewayConfig,
    /// Per connection name.
    pub outcomes: BTreeMap<String, ConnectionOutcome>,
}

impl Compilation {
    /// The configuration as the YAML written under `gateway.yaml`.
    pub fn to_yaml(&self) -> Result<String, serde_yaml::Error> {
        serde_yaml::to_string(&self.config)
    }

    /// The role of the first compiled connection (by name) whose upstream is a web identity:
    /// what the gateway's ServiceAccount is annotated with for the EKS pod identity webhook.
    pub fn web_identity_role_arn(&self) -> Option<&str> {
        self.config
            .connections
            .iter()
            .find_map(|c| c.upstream.web_identity.as_ref().map(|w| w.role_arn.as_str()))
    }
}

/// Compiles the namespace's gateway configuration.
///
/// Fails only when the whole configuration does not validate, which per-connection checks should
/// make impossible; the error names the field.
pub fn compile(inputs: &NamespaceInputs<'_>) -> Result<Compilation, ConfigError> {
    let mut connections = Vec::new();
    let mut recording_policies = BTreeMap::new();
    let mut outcomes = BTreeMap::new();
    let mut sorted: Vec<&AgentConnection> = inputs.connections.iter().collect();
    sorted.sort_by_key(|c| c.name_any());
    for connection in sorted {
        let name = connection.name_any();
        let credentials = resolve_credentials(inputs.namespace, connection, inputs.secrets);
        let policy_name = connection.spec.recording_policy_ref.name.clone();
        let policy = inputs.recording_policies.get(&policy_name);
        let recording_policy = match policy {
            Some(policy) => match not_ready(policy) {
                // Still compiled: the gateway itself refuses calls it cannot record (FailClosed).
                Some(ready) => Check::fail(
                    "RecordingPolicyNotReady",
                    format!(
                        "RecordingPolicy {}/{policy_name} is not ready ({}): {}",
                        inputs.namespace, ready.reason, ready.message
                    ),
                ),
                None => Check::pass(
                    "Found",
                    format!(
                        "RecordingPolicy {}/{policy_name} is compiled into the gateway.",
                        inputs.namespace
                    ),
                ),
            },
            None => Check::fail(
                "RecordingPolicyNotFound",
                format!(
                    "RecordingPolicy {ns}/{policy_name} does not exist: create a RecordingPolicy named \
                     {policy_name} in namespace {ns}, or point spec.recordingPolicyRef.name at an \
                     existing one. Until then this connection is not served.",
                    ns = inputs.namespace
                ),
            ),
        };
        let compiled = match (&credentials, policy) {
            (Ok(upstream), Some(policy)) => {
                let candidate = ConnectionConfig {
                    name: name.clone(),
                    service_accounts: connection.spec.agents.service_accounts.clone(),
                    region: connection.spec.aws.region.clone(),
                    upstream: upstream.clone(),
                    endpoints: connection.spec.aws.endpoints.clone(),
                    policy: connection.spec.policy.clone(),
                    max_session_seconds: connection.spec.session.max_duration_seconds,
                    recording_policy: policy_name.clone(),
                    account_id: connection.spec.aws.account_id.clone(),
                };
                match single_connection_config(inputs, &candidate, &policy_name, policy).validate()
                {
                    Ok(()) => {
                        connections.push(candidate);
                        recording_policies.insert(policy_name.clone(), policy.spec.clone());
                        Check::pass(
                            "Compiled",
                            format!(
                                "The connection is in the gateway configuration (Secret {}/{}).",
                                inputs.namespace,
                                crate::gateway::objects::CONFIG_SECRET_NAME
                            ),
                        )
                    }
                    Err(e) => Check::fail(
                        "InvalidForGateway",
                        format!("The gateway cannot use this connection: {e}. Fix the AgentConnection's spec."),
                    ),
                }
            }
            _ => Check::fail(
                "NotCompiled",
                "The connection is not in the gateway configuration until its credentials and \
                 RecordingPolicy are resolved (see the CredentialsResolved and RecordingPolicyReady \
                 conditions)."
                    .into(),
            ),
        };
        let credentials = match credentials {
            Ok(upstream) => Check::pass(
                "Resolved",
                credentials_summary(inputs.namespace, connection, &upstream),
            ),
            Err(check) => check,
        };
        outcomes.insert(name, ConnectionOutcome { credentials, recording_policy, compiled });
    }
    let recording_credentials = recorder_credentials(&recording_policies, inputs.secrets);
    let config = GatewayConfig {
        version: CONFIG_VERSION,
        namespace: inputs.namespace.to_owned(),
        identity: inputs.identity.clone(),
        connections,
        recording_policies,
        approval_rules: inputs.approval_rules.clone(),
        recording_credentials,
    };
    config.validate()?;
    Ok(Compilation { config, outcomes })
}

/// The RecordingPolicy's own Ready condition when it is False for its current generation.
fn not_ready(
    policy: &RecordingPolicy,
) -> Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> {
    let status = policy.status.as_ref()?;
    status.conditions.iter().find(|c| {
        c.type_ == "Ready"
            && c.status == "False"
            && c.observed_generation.is_none_or(|g| Some(g) == policy.metadata.generation)
    })
}

fn single_connection_config(
    inputs: &NamespaceInputs<'_>,
    connection: &ConnectionConfig,
    policy_name: &str,
    policy: &RecordingPolicy,
) -> GatewayConfig {
    GatewayConfig {
        version: CONFIG_VERSION,
        namespace: inputs.namespace.to_owned(),
        identity: inputs.identity.clone(),
        connections: vec![connection.clone()],
        recording_policies: BTreeMap::from([(policy_name.to_owned(), policy.spec.clone())]),
        approval_rules: BTreeMap::new(),
        recording_credentials: BTreeMap::new(),
    }
}

/// The recorder's own keys per RecordingPolicy, from the Secret its `s3.credentials.secretRef`
/// names (keys `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, optional `AWS_SESSION_TOKEN`). A
/// policy without one, or whose Secret is incomplete, is left out: the gateway then records with
/// its ambient credentials, and an upload failure says so.
pub fn recorder_credentials(
    policies: &BTreeMap<String, chaperone_crds::RecordingPolicySpec>,
    secrets: &SecretData,
) -> BTreeMap<String, UpstreamCredentials> {
    policies
        .iter()
        .filter_map(|(name, policy)| {
            let secret = &policy.s3.credentials.as_ref()?.secret_ref.name;
            Some((name.clone(), aws_keys(secrets.get(secret)?)?))
        })
        .collect()
}

/// What the gateway signs a resolved connection's calls with, as the CredentialsResolved message.
fn credentials_summary(
    namespace: &str,
    connection: &AgentConnection,
    upstream: &UpstreamConfig,
) -> String {
    let base = match (&connection.spec.aws.credentials.secret_ref, &upstream.web_identity) {
        (_, Some(web)) => format!(
            "The gateway exchanges its own projected token (audience {}, {}) for role {} at STS.",
            crate::gateway::objects::AWS_TOKEN_AUDIENCE,
            web.token_file,
            web.role_arn
        ),
        (Some(reference), None) => {
            format!("Upstream credentials are read from Secret {namespace}/{}.", reference.name)
        }
        (None, None) => String::new(),
    };
    match &upstream.assume_role {
        Some(role) => format!(
            "{base} With them it assumes role {} once per agent (role session name \
             <namespace>.<service account>).",
            role.role_arn
        ),
        None => base,
    }
}

/// The connection's upstream credentials: keys from its Secret, or its web identity role, and
/// the role to assume; or the check that says what to create.
fn resolve_credentials(
    namespace: &str,
    connection: &AgentConnection,
    secrets: &SecretData,
) -> Result<UpstreamConfig, Check> {
    let aws = &connection.spec.aws;
    let assume_role = aws.assume_role.as_ref().map(|role| AssumeRoleConfig {
        role_arn: role.role_arn.clone(),
        external_id: role.external_id.clone(),
    });
    let mut upstream = match (&aws.credentials.secret_ref, &aws.credentials.web_identity) {
        (Some(_), Some(_)) => {
            return Err(Check::fail(
                "AmbiguousCredentialsSource",
                "spec.aws.credentials sets both secretRef and webIdentity: keep exactly one."
                    .into(),
            ));
        }
        (None, Some(web)) => UpstreamConfig {
            web_identity: Some(WebIdentityConfig {
                role_arn: web.role_arn.clone(),
                token_file: crate::gateway::objects::aws_web_identity_token_file(),
                sts_endpoint: None,
            }),
            ..UpstreamConfig::default()
        },
        (Some(reference), None) => {
            UpstreamConfig::from_keys(secret_keys(namespace, reference, secrets)?)
        }
        (None, None) => {
            return Err(Check::fail(
                "NoCredentialsSource",
                "spec.aws.credentials names no source: set secretRef to a Secret with the \
                 gateway's AWS keys, or webIdentity to the IAM role the gateway's own token is \
                 exchanged for."
                    .into(),
            ));
        }
    };
    upstream.assume_role = assume_role;
    Ok(upstream)
}

/// Static keys from the Secret `reference` names.
fn secret_keys(
    namespace: &str,
    reference: &chaperone_crds::AwsSecretReference,
    secrets: &SecretData,
) -> Result<UpstreamCredentials, Check> {
    let name = &reference.name;
    let create_hint = format!(
        "kubectl -n {namespace} create secret generic {name} --from-literal={}=... --from-literal={}=...",
        reference.access_key_id_key, reference.secret_access_key_key
    );
    let Some(data) = secrets.get(name) else {
        return Err(Check::fail(
            "SecretNotFound",
            format!(
                "Secret {namespace}/{name} does not exist: create it with keys {} and {} ({create_hint}).",
                reference.access_key_id_key, reference.secret_access_key_key
            ),
        ));
    };
    let value = |key: &str| -> Result<String, Check> {
        match data.get(key) {
            None => Err(Check::fail(
                "KeyMissing",
                format!(
                    "Secret {namespace}/{name} has no key {key}: add it (it must hold the AWS {}), \
                     or set spec.aws.credentials.secretRef to the key that does.",
                    if key == reference.access_key_id_key {
                        "access key id"
                    } else {
                        "secret access key"
                    }
                ),
            )),
            Some(bytes) => match std::str::from_utf8(bytes).map(str::trim) {
                Ok(text) if !text.is_empty() => Ok(text.to_owned()),
                _ => Err(Check::fail(
                    "KeyInvalid",
                    format!(
                        "Secret {namespace}/{name} key {key} is empty or not UTF-8 text: put the \
                         AWS key there as plain text."
                    ),
                )),
            },
        }
    };
    let access_key_id = value(&reference.access_key_id_key)?;
    let secret_access_key = Redacted(value(&reference.secret_access_key_key)?);
    let session_token = match data.get(SESSION_TOKEN_KEY) {
        Some(_) => Some(Redacted(value(SESSION_TOKEN_KEY)?)),
        None => None,
    };
    Ok(UpstreamCredentials { access_key_id, secret_access_key, session_token })
}

/// Names of the Secrets the connections' credentials reference.
pub fn referenced_secrets(connections: &[AgentConnection]) -> Vec<String> {
    let mut names: Vec<String> = connections
        .iter()
        .filter_map(|c| c.spec.aws.credentials.secret_ref.as_ref().map(|r| r.name.clone()))
        .collect();
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> IdentitySource {
        IdentitySource::for_issuer("https://127.0.0.1:6443")
    }

    #[test]
    fn recorder_keys_come_from_the_secret_the_recording_policy_names() {
        let mut policies = BTreeMap::new();
        let mut spec: chaperone_crds::RecordingPolicySpec = serde_json::from_value(serde_json::json!({
            "s3": {"bucket": "audit", "region": "us-east-1", "credentials": {"secretRef": {"name": "recorder"}}},
            "retention": {"days": 30}
        }))
        .unwrap();
        policies.insert("default".to_owned(), spec.clone());
        spec.s3.credentials = None;
        policies.insert("ambient".to_owned(), spec);
        let mut secrets = SecretData::new();
        secrets.insert(
            "recorder".into(),
            BTreeMap::from([
                ("AWS_ACCESS_KEY_ID".to_owned(), b"AKIAREC".to_vec()),
                ("AWS_SECRET_ACCESS_KEY".to_owned(), b"s3cret\n".to_vec()),
            ]),
        );
        let resolved = recorder_credentials(&policies, &secrets);
        assert_eq!(resolved.len(), 1);
        assert_eq!(resolved["default"].access_key_id, "AKIAREC");
        assert!(!resolved.contains_key("ambient"));
    }

    fn connection(name: &str, secret: &str, policy: &str) -> AgentConnection {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "chaperone.dev/v1alpha1",
            "kind": "AgentConnection",
            "metadata": {"name": name, "namespace": "agents"},
            "spec": {
                "agents": {"serviceAccounts": ["pr-bot"]},
                "aws": {"region": "us-east-1", "credentials": {"secretRef": {"name": secret}}},
                "policy": {"allow": ["s3:*"], "deny": ["iam:*"]},
                "recordingPolicyRef": {"name": policy},
            }
        }))
        .unwrap()
    }

    fn recording_policy(name: &str) -> RecordingPolicy {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "chaperone.dev/v1alpha1",
            "kind": "RecordingPolicy",
            "metadata": {"name": name, "namespace": "agents"},
            "spec": {"s3": {"bucket": "audit", "prefix": "agents/", "region": "us-east-1"}, "retention": {"days": 30}},
        }))
        .unwrap()
    }

    fn aws_secret() -> SecretData {
        BTreeMap::from([(
            "aws-prod".to_owned(),
            BTreeMap::from([
                ("AWS_ACCESS_KEY_ID".to_owned(), b"AKIAEXAMPLE".to_vec()),
                ("AWS_SECRET_ACCESS_KEY".to_owned(), b"secret\n".to_vec()),
            ]),
        )])
    }

    fn compile_with(
        connections: &[AgentConnection],
        secrets: &SecretData,
        policies: &[&str],
    ) -> Compilation {
        let policies = policies.iter().map(|p| ((*p).to_owned(), recording_policy(p))).collect();
        compile(&NamespaceInputs {
            namespace: "agents",
            identity: identity(),
            connections,
            secrets,
            recording_policies: &policies,
            approval_rules: &BTreeMap::new(),
        })
        .unwrap()
    }

    #[test]
    fn a_connection_with_its_secret_and_policy_is_compiled_with_resolved_keys() {
        let compilation = compile_with(
            &[connection("prod-aws", "aws-prod", "default")],
            &aws_secret(),
            &["default", "unused"],
        );
        let c = compilation.config.connection("prod-aws").unwrap();
        let keys = c.upstream.static_keys().unwrap();
        assert_eq!(keys.access_key_id, "AKIAEXAMPLE");
        assert_eq!(*keys.secret_access_key, "secret", "trailing newline trimmed");
        assert_eq!(c.recording_policy, "default");
        assert_eq!(compilation.config.recording_policies.keys().collect::<Vec<_>>(), ["default"]);
        let outcome = &compilation.outcomes["prod-aws"];
        assert!(
            outcome.credentials.passed
                && outcome.recording_policy.passed
                && outcome.compiled.passed
        );
        let yaml = compilation.to_yaml().unwrap();
        assert_eq!(GatewayConfig::parse(&yaml).unwrap(), compilation.config);
    }

    #[test]
    fn a_missing_secret_says_which_secret_and_keys_to_create() {
        let compilation = compile_with(
            &[connection("prod-aws", "aws-prod", "default")],
            &BTreeMap::new(),
            &["default"],
        );
        let outcome = &compilation.outcomes["prod-aws"];
        assert_eq!(outcome.credentials.reason, "SecretNotFound");
        let m = &outcome.credentials.message;
        assert!(
            m.contains("agents/aws-prod")
                && m.contains("AWS_ACCESS_KEY_ID")
                && m.contains("AWS_SECRET_ACCESS_KEY"),
            "{m}"
        );
        assert!(!outcome.compiled.passed);
        assert!(compilation.config.connections.is_empty());
    }

    #[test]
    fn a_missing_key_names_the_secret_and_the_key() {
        let mut secrets = aws_secret();
        secrets.get_mut("aws-prod").unwrap().remove("AWS_SECRET_ACCESS_KEY");
        let compilation =
            compile_with(&[connection("prod-aws", "aws-prod", "default")], &secrets, &["default"]);
        let check = &compilation.outcomes["prod-aws"].credentials;
        assert_eq!(check.reason, "KeyMissing");
        assert!(
            check.message.contains("agents/aws-prod")
                && check.message.contains("AWS_SECRET_ACCESS_KEY")
        );
    }

    #[test]
    fn a_missing_recording_policy_is_named_and_other_connections_still_compile() {
        let compilation = compile_with(
            &[
                connection("broken", "aws-prod", "nowhere"),
                connection("prod-aws", "aws-prod", "default"),
            ],
            &aws_secret(),
            &["default"],
        );
        let check = &compilation.outcomes["broken"].recording_policy;
        assert_eq!(check.reason, "RecordingPolicyNotFound");
        assert!(check.message.contains("RecordingPolicy named nowhere"), "{}", check.message);
        assert_eq!(compilation.config.connections.len(), 1);
        assert_eq!(compilation.config.connections[0].name, "prod-aws");
    }

    #[test]
    fn a_recording_policy_that_is_not_ready_is_compiled_but_reported_with_its_reason() {
        let mut policy = recording_policy("default");
        policy.status = Some(chaperone_crds::RecordingPolicyStatus {
            observed_generation: None,
            conditions: vec![k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition {
                type_: "Ready".into(),
                status: "False".into(),
                reason: "BucketUnreachable".into(),
                message: "Bucket audit does not exist: create it.".into(),
                observed_generation: None,
                last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    "2026-11-25T18:00:00Z".parse().unwrap(),
                ),
            }],
        });
        let policies = BTreeMap::from([("default".to_owned(), policy)]);
        let compilation = compile(&NamespaceInputs {
            namespace: "agents",
            identity: identity(),
            connections: &[connection("prod-aws", "aws-prod", "default")],
            secrets: &aws_secret(),
            recording_policies: &policies,
            approval_rules: &BTreeMap::new(),
        })
        .unwrap();
        let outcome = &compilation.outcomes["prod-aws"];
        assert_eq!(outcome.recording_policy.reason, "RecordingPolicyNotReady");
        assert!(outcome.recording_policy.message.contains("BucketUnreachable"));
        assert!(outcome.recording_policy.message.contains("Bucket audit does not exist"));
        assert!(outcome.compiled.passed);
        assert!(compilation.config.connection("prod-aws").is_some());
    }

    fn web_identity_connection(name: &str, role: &str) -> AgentConnection {
        let mut c = connection(name, "unused", "default");
        c.spec.aws.credentials.secret_ref = None;
        c.spec.aws.credentials.web_identity =
            Some(chaperone_crds::WebIdentity { role_arn: role.into() });
        c
    }

    #[test]
    fn assume_role_is_compiled_on_top_of_the_secrets_keys() {
        let mut c = connection("prod-aws", "aws-prod", "default");
        c.spec.aws.assume_role = Some(chaperone_crds::AssumeRole {
            role_arn: "arn:aws:iam::123456789012:role/agents".into(),
            external_id: Some("ext-1".into()),
        });
        let compilation = compile_with(&[c], &aws_secret(), &["default"]);
        let upstream = &compilation.config.connection("prod-aws").unwrap().upstream;
        assert_eq!(upstream.static_keys().unwrap().access_key_id, "AKIAEXAMPLE");
        assert_eq!(
            upstream.assume_role,
            Some(AssumeRoleConfig {
                role_arn: "arn:aws:iam::123456789012:role/agents".into(),
                external_id: Some("ext-1".into()),
            })
        );
        let check = &compilation.outcomes["prod-aws"].credentials;
        assert!(check.passed);
        assert!(
            check.message.contains("assumes role arn:aws:iam::123456789012:role/agents"),
            "{}",
            check.message
        );
        let yaml = compilation.to_yaml().unwrap();
        assert_eq!(GatewayConfig::parse(&yaml).unwrap(), compilation.config);
        assert_eq!(compilation.web_identity_role_arn(), None);
    }

    #[test]
    fn a_web_identity_is_compiled_with_the_mounted_token_and_no_secret() {
        let role = "arn:aws:iam::123456789012:role/chaperone-gateway";
        let compilation = compile_with(
            &[web_identity_connection("prod-aws", role)],
            &BTreeMap::new(),
            &["default"],
        );
        let upstream = &compilation.config.connection("prod-aws").unwrap().upstream;
        assert!(upstream.static_keys().is_none());
        assert_eq!(
            upstream.web_identity,
            Some(WebIdentityConfig {
                role_arn: role.into(),
                token_file: "/var/run/secrets/chaperone.dev/aws/token".into(),
                sts_endpoint: None,
            })
        );
        let outcome = &compilation.outcomes["prod-aws"];
        assert!(outcome.credentials.passed && outcome.compiled.passed);
        assert!(
            outcome.credentials.message.contains("sts.amazonaws.com"),
            "{}",
            outcome.credentials.message
        );
        assert_eq!(compilation.web_identity_role_arn(), Some(role));
        let yaml = compilation.to_yaml().unwrap();
        assert!(!yaml.contains("accessKeyId"), "{yaml}");
        assert_eq!(GatewayConfig::parse(&yaml).unwrap(), compilation.config);
    }

    #[test]
    fn a_web_identity_with_an_assumed_role_keeps_both() {
        let mut c = web_identity_connection("prod-aws", "arn:aws:iam::123456789012:role/gw");
        c.spec.aws.assume_role = Some(chaperone_crds::AssumeRole {
            role_arn: "arn:aws:iam::210987654321:role/agents".into(),
            external_id: None,
        });
        let compilation = compile_with(&[c], &BTreeMap::new(), &["default"]);
        let upstream = &compilation.config.connection("prod-aws").unwrap().upstream;
        assert!(upstream.web_identity.is_some());
        assert_eq!(
            upstream.assume_role.as_ref().unwrap().role_arn,
            "arn:aws:iam::210987654321:role/agents"
        );
    }

    #[test]
    fn the_service_account_role_is_the_first_web_identity_connections() {
        let compilation = compile_with(
            &[
                connection("static", "aws-prod", "default"),
                web_identity_connection("b", "arn:aws:iam::123456789012:role/b"),
                web_identity_connection("a", "arn:aws:iam::123456789012:role/a"),
            ],
            &aws_secret(),
            &["default"],
        );
        assert_eq!(compilation.web_identity_role_arn(), Some("arn:aws:iam::123456789012:role/a"));
    }

    #[test]
    fn both_credential_sources_at_once_are_refused_naming_the_fields() {
        let mut c = connection("prod-aws", "aws-prod", "default");
        c.spec.aws.credentials.web_identity = Some(chaperone_crds::WebIdentity {
            role_arn: "arn:aws:iam::123456789012:role/x".into(),
        });
        let compilation = compile_with(&[c], &aws_secret(), &["default"]);
        let check = &compilation.outcomes["prod-aws"].credentials;
        assert_eq!(check.reason, "AmbiguousCredentialsSource");
        assert!(check.message.contains("secretRef") && check.message.contains("webIdentity"));
        assert!(compilation.config.connections.is_empty());
    }

    #[test]
    fn compiling_twice_gives_the_same_yaml() {
        let cs = [connection("b", "aws-prod", "default"), connection("a", "aws-prod", "default")];
        let one = compile_with(&cs, &aws_secret(), &["default"]).to_yaml().unwrap();
        let two = compile_with(&cs, &aws_secret(), &["default"]).to_yaml().unwrap();
        assert_eq!(one, two);
        assert!(one.find("name: a").unwrap() < one.find("name: b").unwrap());
    }
}
