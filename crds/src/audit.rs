//! The audit API's objects (group `audit.chaperone.dev`, version `v1alpha1`): read-only views of
//! recorded sessions that the operator serves through the Kubernetes aggregation layer. They are
//! not custom resources (nothing is stored in etcd); the operator's `audit_api` serves them and
//! the CLI reads them, both with these types.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ListMeta, ObjectMeta};
use serde::{Deserialize, Serialize};

/// The audit API's group.
pub const AUDIT_GROUP: &str = "audit.chaperone.dev";
/// The audit API's version.
pub const AUDIT_VERSION: &str = "v1alpha1";
/// `apiVersion` of every object the audit API serves.
pub const AUDIT_API_VERSION: &str = "audit.chaperone.dev/v1alpha1";
/// The APIService that registers the group with the aggregation layer.
pub const AUDIT_API_SERVICE: &str = "v1alpha1.audit.chaperone.dev";

/// One recorded session: `metadata.name` is the session id, `metadata.namespace` the agents'
/// namespace, `metadata.creationTimestamp` the session's start.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Session {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub status: SessionStatus,
}

/// What the recording says about a session.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionStatus {
    /// The agent the credentials were issued to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<SessionAgent>,
    /// The AgentConnection.
    pub connection: String,
    /// `ts` of the first event, RFC 3339.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// When the last replica stream ended, RFC 3339 (absent while any is open).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<String>,
    /// Calls recorded (forwarded or denied), over all replicas.
    pub calls: u64,
    /// Of those, calls denied by policy or by a reviewer.
    pub denied: u64,
    /// Approval decisions recorded.
    pub approvals: u64,
    /// The replicas' manifest statuses joined with `,`: `open`, `closed`, `recovered`,
    /// `no-manifest`.
    pub state: String,
    /// Gateway replicas that recorded the session.
    pub replicas: Vec<String>,
    /// `s3://bucket/<prefix>v1/.../<session>/`.
    pub location: String,
    /// The operator's check of signatures, chain and digests.
    pub verification: SessionVerification,
}

/// The agent of a session.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionAgent {
    pub service_account: String,
    pub pod_name: String,
    pub pod_uid: String,
    /// The role session name the gateway's upstream calls carry for this agent (absent from
    /// servers older than this field).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub role_session_name: String,
}

/// The operator's verification of a session against the keys its AgentConnection publishes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionVerification {
    /// `Verified`, `Failed`, or `Unverifiable` (no trusted keys were found).
    pub state: String,
    /// Why, in a sentence: the problems found, or which keys verified it.
    pub reason: String,
}

/// `kind: SessionList`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionList {
    pub api_version: String,
    pub kind: String,
    pub metadata: ListMeta,
    pub items: Vec<Session>,
}

/// `kind: SessionEventList`, the `events` subresource: a page of the session's events, all
/// replicas merged by time, each exactly as recorded. `metadata.continue` names the next page.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionEventList {
    pub api_version: String,
    pub kind: String,
    pub metadata: ListMeta,
    pub items: Vec<serde_json::Value>,
}
