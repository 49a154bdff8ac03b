//! ApprovalRequest: one held call, created by a gateway, decided by reviewers.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::Conditions;

/// One AWS call held for human approval.
///
/// Created by the namespace's gateway; reviewers decide by adding a review (`kubectl chaperone
/// approvals approve|deny`). The operator's admission webhook stamps each review with the identity
/// the API server authenticated and refuses reviewers the rule does not name.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "chaperone.dev",
    version = "v1alpha1",
    kind = "ApprovalRequest",
    namespaced,
    status = "ApprovalRequestStatus",
    shortname = "apreq",
    category = "chaperone",
    printcolumn = r#"{"name":"Action","type":"string","jsonPath":".spec.actions[0]"}"#,
    printcolumn = r#"{"name":"Resource","type":"string","jsonPath":".spec.resources[0]"}"#,
    printcolumn = r#"{"name":"Agent","type":"string","jsonPath":".spec.agent.serviceAccount"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".status.phase"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    printcolumn = r#"{"name":"Expires","type":"string","jsonPath":".spec.expiresAt"}"#,
    printcolumn = r#"{"name":"Connection","type":"string","priority":1,"jsonPath":".spec.connection"}"#,
    printcolumn = r#"{"name":"Notified","type":"string","priority":1,"jsonPath":".status.notifications[0].state"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.fingerprint == oldSelf.fingerprint && self.actions == oldSelf.actions && self.resources == oldSelf.resources && self.agent == oldSelf.agent && self.connection == oldSelf.connection && self.rule == oldSelf.rule",
        "message": "only reviews may change on an ApprovalRequest; the held call it describes is immutable"
    },
    {
        "rule": "size(self.reviews) >= size(oldSelf.reviews) && oldSelf.reviews.all(r, r in self.reviews)",
        "message": "reviews are append-only: a decision once made is final",
        "fieldPath": ".reviews"
    }
]))]
pub struct ApprovalRequestSpec {
    /// The AgentConnection the call came through.
    #[schemars(length(min = 1, max = 253))]
    pub connection: String,
    /// The ApprovalRule that holds the call.
    #[schemars(length(min = 1, max = 253))]
    pub rule: String,
    /// The recording session the call belongs to.
    #[schemars(length(min = 1, max = 64))]
    pub session_id: String,
    /// The agent that made the call, as the gateway authenticated it.
    pub agent: AgentIdentity,
    /// IAM actions of the call.
    #[schemars(length(min = 1, max = 64), inner(length(max = 128)))]
    pub actions: Vec<String>,
    /// Resource ARNs the call names.
    #[serde(default)]
    #[schemars(length(max = 1000), inner(length(max = 2048)))]
    pub resources: Vec<String>,
    /// A redacted preview of the call's parameters, for the reviewer.
    #[serde(default)]
    #[schemars(length(max = 16384))]
    pub parameters_preview: String,
    /// sha256 over connection, agent, action, resources and canonical parameters: only an identical
    /// call is admitted by this request's approval.
    #[schemars(regex(pattern = "^[0-9a-f]{64}$"))]
    pub fingerprint: String,
    /// Distinct reviewers who must approve.
    #[schemars(range(min = 1, max = 16))]
    pub required_approvals: i32,
    /// When an approval given now stops admitting the call (RFC 3339).
    pub expires_at: String,
    /// Reviews, appended by reviewers and stamped by the admission webhook.
    #[serde(default)]
    #[schemars(length(max = 32))]
    pub reviews: Vec<Review>,
}

/// Who made the held call.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AgentIdentity {
    /// The agent's ServiceAccount.
    #[schemars(length(max = 253))]
    pub service_account: String,
    /// The agent's pod, from its token's claims.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253))]
    pub pod: Option<String>,
    /// The role session name the agent asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub role_session_name: Option<String>,
}

/// One reviewer's decision.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Review {
    /// Approve or Deny.
    pub decision: Decision,
    /// The reviewer's reason; required when denying.
    #[serde(default)]
    #[schemars(length(max = 1024))]
    pub reason: String,
    /// The reviewer's user name, stamped by the admission webhook from the authenticated request.
    #[serde(default)]
    #[schemars(length(max = 253))]
    pub user: String,
    /// The reviewer's groups, stamped by the admission webhook.
    #[serde(default)]
    #[schemars(length(max = 64), inner(length(max = 253)))]
    pub groups: Vec<String>,
    /// When the review was made (RFC 3339), stamped by the admission webhook.
    #[serde(default)]
    #[schemars(length(max = 64))]
    pub time: String,
}

/// A reviewer's verdict.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum Decision {
    /// Let the call through.
    Approve,
    /// Refuse the call.
    Deny,
}

/// Lifecycle of an ApprovalRequest.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum ApprovalPhase {
    /// Waiting for reviewers.
    #[default]
    Pending,
    /// Enough reviewers approved; the next identical call goes through once.
    Approved,
    /// A reviewer denied it.
    Denied,
    /// An identical call went through on this approval; it admits nothing more.
    Consumed,
    /// No decision, or no retry, in time.
    Expired,
}

/// Observed state of an ApprovalRequest.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalRequestStatus {
    /// Pending, Approved, Denied, Consumed or Expired.
    #[serde(default)]
    pub phase: ApprovalPhase,
    /// When an approved request admitted its call (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumed_at: Option<String>,
    /// Delivery of the rule's notification of this request, one entry per target, written by the
    /// operator.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub notifications: Vec<NotificationDelivery>,
    /// Standard conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Conditions,
}

/// How the notification of one ApprovalRequest to one target went.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NotificationDelivery {
    /// The target, without its URL (webhook URLs are credentials), e.g.
    /// `webhook Secret/slack-approvals key url (slack)`.
    #[schemars(length(max = 512))]
    pub target: String,
    /// Retrying, Delivered, or Failed once the attempts ran out.
    pub state: NotificationState,
    /// Attempts made so far.
    #[serde(default)]
    pub attempts: i32,
    /// When the last attempt was made (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempt_at: Option<String>,
    /// When the receiver accepted it (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<String>,
    /// Why the last attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub last_error: Option<String>,
}

/// Where the delivery of a notification stands.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum NotificationState {
    /// Not delivered yet; another attempt follows after a backoff.
    #[default]
    Retrying,
    /// The receiver answered with a 2xx status.
    Delivered,
    /// Every attempt failed; no more are made.
    Failed,
}
