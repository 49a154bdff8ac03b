//! AgentConnection: who may come in through the namespace's gateway, and what the gateway signs with.

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{Conditions, LocalObjectReference};

/// Who may use the namespace's gateway, with which AWS credentials, under which policy.
///
/// The operator compiles every AgentConnection of a namespace into that namespace's gateway.
/// A pod labelled `chaperone.dev/connection: <name>` is injected with the environment that sends
/// its AWS SDK or CLI through the gateway.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "chaperone.dev",
    version = "v1alpha1",
    kind = "AgentConnection",
    namespaced,
    status = "AgentConnectionStatus",
    shortname = "agentconn",
    category = "chaperone",
    printcolumn = r#"{"name":"Region","type":"string","jsonPath":".spec.aws.region"}"#,
    printcolumn = r#"{"name":"Endpoint","type":"string","jsonPath":".status.endpoint"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct AgentConnectionSpec {
    /// The agents admitted through this connection.
    pub agents: AgentSelector,
    /// The AWS account the gateway signs for: region, upstream credentials, optional role to assume,
    /// and per-service endpoint overrides.
    pub aws: AwsTarget,
    /// Which IAM actions agents may call. Anything not allowed is denied; deny wins over allow.
    #[serde(default)]
    pub policy: ConnectionPolicy,
    /// The RecordingPolicy (same namespace) that says where this connection's sessions are recorded.
    pub recording_policy_ref: LocalObjectReference,
    /// Limits on one credential issuance (a session).
    #[serde(default)]
    pub session: SessionSettings,
    /// Security checks the operator performs on the admitted service accounts.
    #[serde(default)]
    pub security: SecuritySettings,
    /// Where the connection's pods (labelled `chaperone.dev/connection: <name>`) may send
    /// traffic: the NetworkPolicy the operator manages for them.
    #[serde(default)]
    pub network: NetworkSettings,
}

/// Which workloads may use the connection.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentSelector {
    /// Names of ServiceAccounts in this namespace whose projected tokens (audience `chaperone.dev`)
    /// the gateway accepts for this connection.
    #[schemars(length(min = 1, max = 64), inner(length(min = 1, max = 253)))]
    pub service_accounts: Vec<String>,
}

/// The upstream AWS account and how the gateway reaches it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsTarget {
    /// AWS region the agents' calls go to unless a call names another, e.g. `us-east-1`.
    #[schemars(regex(pattern = r"^[a-z]{2}(-[a-z]+)+-\d+$"), length(max = 32))]
    pub region: String,
    /// The credentials the gateway signs with. Agents never see them.
    pub credentials: AwsCredentials,
    /// A role the gateway assumes with its credentials before signing; the role session name
    /// carries the agent's identity so CloudTrail shows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assume_role: Option<AssumeRole>,
    /// Per-service endpoint overrides, keyed by the service's signing name (`s3`, `dynamodb`, ...):
    /// S3-compatible stores, emulators, VPC endpoints. Values are absolute http(s) URLs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self.all(k, self[k].startsWith('http://') || self[k].startsWith('https://'))",
        "message": "every endpoint must be an absolute http:// or https:// URL"
    }]))]
    #[schemars(extend("maxProperties" = 64))]
    pub endpoints: BTreeMap<String, String>,
    /// The 12-digit id of the AWS account the calls act in. Policy statements and ApprovalRules
    /// match resource ARNs that carry it; without it (and without an `assumeRole` or
    /// `webIdentity` role ARN to read it from) those ARNs are built with `*` for the account and a
    /// resource-scoped Deny or ApprovalRule treats every such call as matching.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^\d{12}$"))]
    pub account_id: Option<String>,
}

/// Where the gateway's own AWS credentials come from. Exactly one source must be set.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.secretRef) != has(self.webIdentity)",
    "message": "set exactly one credentials source: secretRef or webIdentity"
}]))]
pub struct AwsCredentials {
    /// Static access keys in a Secret of this namespace that only the gateway can read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<AwsSecretReference>,
    /// The gateway pod's own projected token exchanged at the real STS (IRSA-style).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub web_identity: Option<WebIdentity>,
}

/// A Secret holding static AWS access keys.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AwsSecretReference {
    /// Name of the Secret in this namespace.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key of the access key id in the Secret.
    #[serde(default = "default_access_key_id_key")]
    #[schemars(length(min = 1, max = 253))]
    pub access_key_id_key: String,
    /// Key of the secret access key in the Secret.
    #[serde(default = "default_secret_access_key_key")]
    #[schemars(length(min = 1, max = 253))]
    pub secret_access_key_key: String,
}

fn default_access_key_id_key() -> String {
    "AWS_ACCESS_KEY_ID".into()
}
fn default_secret_access_key_key() -> String {
    "AWS_SECRET_ACCESS_KEY".into()
}

/// Credentials from the gateway pod's own web identity token.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebIdentity {
    /// ARN of the IAM role the gateway's token is exchanged for.
    #[schemars(regex(pattern = r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$"), length(max = 2048))]
    pub role_arn: String,
}

/// A role assumed by the gateway before signing agents' calls.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AssumeRole {
    /// ARN of the role to assume.
    #[schemars(regex(pattern = r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$"), length(max = 2048))]
    pub role_arn: String,
    /// External id required by the role's trust policy, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1224))]
    pub external_id: Option<String>,
}

/// Allow and deny lists over IAM actions. Deny wins over allow; anything not allowed is denied.
///
/// Actions that hand out real credentials (sts:AssumeRole, sts:GetSessionToken, iam:CreateAccessKey,
/// sso:GetRoleCredentials and the like) stay denied unless `allow` names them exactly, without
/// wildcards.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionPolicy {
    /// IAM action patterns agents may call, e.g. `s3:*`, `dynamodb:Query`, `s3:Get*`.
    #[serde(default)]
    #[schemars(length(max = 256), inner(length(min = 1, max = 128)))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": crate::common::ACTION_LIST_RULE,
        "message": "each entry must be an IAM action pattern 'service:Action' (wildcards * and ? allowed), e.g. s3:Get*"
    }]))]
    pub allow: Vec<String>,
    /// IAM action patterns agents may never call, whatever `allow` says.
    #[serde(default)]
    #[schemars(length(max = 256), inner(length(min = 1, max = 128)))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": crate::common::ACTION_LIST_RULE,
        "message": "each entry must be an IAM action pattern 'service:Action' (wildcards * and ? allowed), e.g. iam:*"
    }]))]
    pub deny: Vec<String>,
    /// Resource-scoped statements, evaluated after `allow` and `deny`: an Allow statement admits its
    /// actions only on the listed resource ARN patterns; a Deny statement refuses them there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 128))]
    pub statements: Vec<PolicyStatement>,
    /// Signing names (`s3`, `cognito-idp`) whose calls the gateway may forward even when it cannot
    /// classify them (an operation or service its tables lack). Exact names only: no wildcard in
    /// `allow` ever covers an unclassified call. Ambiguous requests and credential-returning
    /// operations stay refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 64),
        inner(length(min = 1, max = 64), regex(pattern = r"^[a-z0-9-]+$"))
    )]
    pub allow_unclassified: Vec<String>,
}

/// One resource-scoped policy statement.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PolicyStatement {
    /// Allow or Deny.
    pub effect: Effect,
    /// IAM action patterns this statement covers.
    #[schemars(length(min = 1, max = 128), inner(length(min = 1, max = 128)))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": crate::common::ACTION_LIST_RULE,
        "message": "each entry must be an IAM action pattern 'service:Action' (wildcards * and ? allowed)"
    }]))]
    pub actions: Vec<String>,
    /// Resource ARN patterns (wildcards * and ? allowed), e.g. `arn:aws:s3:::prod-*`.
    #[schemars(length(min = 1, max = 128), inner(length(min = 1, max = 2048)))]
    pub resources: Vec<String>,
}

/// A policy statement's effect.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Effect {
    /// Admit the matching calls.
    Allow,
    /// Refuse the matching calls.
    Deny,
}

/// Session length when an AgentConnection sets no `spec.session.maxDurationSeconds` (STS's
/// default), in seconds.
pub const DEFAULT_SESSION_SECONDS: i64 = 3600;
/// The shortest session STS grants, in seconds; shorter `DurationSeconds` are refused as STS
/// refuses them.
pub const MIN_SESSION_SECONDS: i64 = 900;
/// The longest session STS grants at all, in seconds.
pub const MAX_SESSION_SECONDS: i64 = 43_200;

/// Limits on a session (one credential issuance at the gateway).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionSettings {
    /// Longest lifetime of the credentials the gateway mints for an agent, in seconds (900 to 43200).
    /// A shorter DurationSeconds asked for by the agent is honoured.
    #[serde(default = "default_max_duration_seconds")]
    #[schemars(range(min = MIN_SESSION_SECONDS, max = MAX_SESSION_SECONDS))]
    pub max_duration_seconds: i64,
}

fn default_max_duration_seconds() -> i64 {
    DEFAULT_SESSION_SECONDS
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self { max_duration_seconds: default_max_duration_seconds() }
    }
}

/// Security checks on the agents' service accounts.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecuritySettings {
    /// Refuse to serve the connection (not only warn in a condition) when an admitted service
    /// account could read the Secrets that hold upstream credentials.
    #[serde(default)]
    pub refuse_if_agent_can_read_credentials: bool,
}

/// The egress the operator's NetworkPolicy leaves the connection's pods.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!has(self.allowedEgressCidrs) || size(self.allowedEgressCidrs) == 0 || (has(self.egress) && self.egress == 'GatewayOnly')",
    "message": "allowedEgressCidrs applies only with egress: GatewayOnly (with MetadataDenied every destination but the metadata endpoints is open already)"
}]))]
pub struct NetworkSettings {
    /// `MetadataDenied` (the default): the pods may reach anything except the cloud metadata and
    /// pod-identity endpoints (169.254.169.254, 169.254.170.2, 169.254.170.23, fd00:ec2::254,
    /// fd00:ec2::23). `GatewayOnly`: the pods may reach only the namespace's gateway, the cluster
    /// DNS and `allowedEgressCidrs`.
    #[serde(default)]
    pub egress: EgressMode,
    /// With `egress: GatewayOnly`, further destinations (every port) as CIDRs, e.g.
    /// `10.20.0.0/16` or `2001:db8::/64`. The metadata endpoints stay denied inside them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 64)))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self.all(c, isCIDR(c))",
        "message": "each entry must be a CIDR such as 10.20.0.0/16 or 2001:db8::/64"
    }]))]
    pub allowed_egress_cidrs: Vec<String>,
}

/// How far the connection's pods' egress is restricted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum EgressMode {
    /// Everything but the cloud metadata and pod-identity endpoints.
    #[default]
    MetadataDenied,
    /// Only the namespace's gateway, the cluster DNS and `allowedEgressCidrs`.
    GatewayOnly,
}

/// Observed state of an AgentConnection.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentConnectionStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The gateway URL injected into agents' pods as AWS_ENDPOINT_URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Ed25519 public keys (base64) that verify this connection's recording manifests, newest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recording_public_keys: Vec<String>,
    /// Ready, CredentialsResolved, RecordingPolicyReady and AgentsIsolated conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Conditions,
}
