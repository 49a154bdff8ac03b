//! ApprovalRule: which calls wait for which human reviewers.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{Conditions, SecretKeyReference};

/// Holds matching in-flight AWS calls until reviewers approve them.
///
/// When a call matches, the gateway creates an ApprovalRequest and holds the call up to
/// `holdSeconds`. An approval that arrives later admits one identical retry within
/// `approvalValidSeconds`.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "chaperone.dev",
    version = "v1alpha1",
    kind = "ApprovalRule",
    namespaced,
    status = "ApprovalRuleStatus",
    shortname = "aprule",
    category = "chaperone",
    printcolumn = r#"{"name":"Actions","type":"string","jsonPath":".spec.match.actions"}"#,
    printcolumn = r#"{"name":"Hold","type":"integer","jsonPath":".spec.holdSeconds"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.holdSeconds < self.approvalValidSeconds",
    "message": "holdSeconds must be less than approvalValidSeconds, so an approval outlives the hold",
    "fieldPath": ".holdSeconds"
}]))]
pub struct ApprovalRuleSpec {
    /// Names of the AgentConnections this rule applies to; empty means every connection in the
    /// namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 253)))]
    pub connections: Vec<String>,
    /// Which calls the rule holds.
    #[serde(rename = "match")]
    pub matches: CallMatch,
    /// Who may decide, and how many distinct reviewers must approve.
    pub reviewers: Reviewers,
    /// Seconds the gateway holds the in-flight call waiting for a decision (1 to 600). Keep it below
    /// your SDKs' read timeout (about 60 s by default).
    #[serde(default = "default_hold_seconds")]
    #[schemars(range(min = 1, max = 600))]
    pub hold_seconds: i32,
    /// Seconds an approval stays valid for one identical retry after the hold has ended.
    #[serde(default = "default_approval_valid_seconds")]
    #[schemars(range(min = 2, max = 86400))]
    pub approval_valid_seconds: i32,
    /// Where new ApprovalRequests are announced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<Notify>,
}

fn default_hold_seconds() -> i32 {
    45
}
fn default_approval_valid_seconds() -> i32 {
    900
}

/// The calls a rule matches: any of the actions, on any of the resources.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CallMatch {
    /// IAM action patterns, e.g. `s3:DeleteBucket`, `dynamodb:Delete*`.
    #[schemars(length(min = 1, max = 128), inner(length(min = 1, max = 128)))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": crate::common::ACTION_LIST_RULE,
        "message": "each entry must be an IAM action pattern 'service:Action' (wildcards * and ? allowed), e.g. s3:DeleteBucket"
    }]))]
    pub actions: Vec<String>,
    /// Resource ARN patterns; empty means any resource.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 128), inner(length(min = 1, max = 2048)))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self.all(r, r == '*' || r.startsWith('arn:'))",
        "message": "each resource must be an ARN pattern starting with 'arn:' (or '*')"
    }]))]
    pub resources: Vec<String>,
}

/// Reviewers of a rule, as the Kubernetes API server authenticates them.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "size(self.groups) + size(self.users) > 0",
    "message": "name at least one reviewer in groups or users"
}]))]
pub struct Reviewers {
    /// Kubernetes groups whose members may decide.
    #[serde(default)]
    #[schemars(length(max = 64), inner(length(min = 1, max = 253)))]
    pub groups: Vec<String>,
    /// Kubernetes user names who may decide.
    #[serde(default)]
    #[schemars(length(max = 64), inner(length(min = 1, max = 253)))]
    pub users: Vec<String>,
    /// Distinct reviewers who must approve (at least 1).
    #[serde(default = "default_required")]
    #[schemars(range(min = 1, max = 16))]
    pub required: i32,
}

fn default_required() -> i32 {
    1
}

/// Notification of new ApprovalRequests.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Notify {
    /// An HTTP webhook, e.g. a Slack incoming webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookNotify>,
}

/// A webhook receiver.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookNotify {
    /// The Secret key holding the webhook URL (URLs of incoming webhooks are credentials).
    pub url_secret_ref: SecretKeyReference,
    /// Payload format.
    #[serde(default)]
    pub format: WebhookFormat,
}

/// Webhook payload formats.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// Slack-compatible `{"text": ..., "blocks": ...}`.
    Slack,
    /// Chaperone's own JSON document.
    #[default]
    Json,
}

/// Observed state of an ApprovalRule.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalRuleStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready condition, false with a reason when the rule cannot be compiled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Conditions,
}
