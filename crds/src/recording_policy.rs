//! RecordingPolicy: where recordings go and how long they stay.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{Conditions, LocalObjectReference};

/// Largest `capture.maxBodyBytes` accepted: 16 MiB.
pub const MAX_CAPTURE_BODY_BYTES: i64 = 16 * 1024 * 1024;

/// Where the sessions of the connections that reference this policy are recorded, how long the
/// recordings are kept, what is captured and what is redacted.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "chaperone.dev",
    version = "v1alpha1",
    kind = "RecordingPolicy",
    namespaced,
    status = "RecordingPolicyStatus",
    shortname = "recpol",
    category = "chaperone",
    printcolumn = r#"{"name":"Bucket","type":"string","jsonPath":".spec.s3.bucket"}"#,
    printcolumn = r#"{"name":"Prefix","type":"string","jsonPath":".spec.s3.prefix"}"#,
    printcolumn = r#"{"name":"Retention","type":"integer","jsonPath":".spec.retention.days"}"#,
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!has(self.objectLock) || self.retention.days >= self.objectLock.days",
    "message": "retention.days must be at least objectLock.days: objects cannot expire while locked",
    "fieldPath": ".retention.days"
}]))]
pub struct RecordingPolicySpec {
    /// The S3 bucket and prefix recordings are written under.
    pub s3: S3Destination,
    /// How long recordings are kept; the operator writes matching lifecycle rules for the prefix.
    pub retention: Retention,
    /// S3 Object Lock retention applied to every recording object. The bucket must have Object Lock
    /// enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_lock: Option<ObjectLock>,
    /// How much of each request and response body is captured.
    #[serde(default)]
    pub capture: Capture,
    /// Values replaced by their sha256 before anything is written.
    #[serde(default)]
    pub redact: Redaction,
    /// What the gateway does when it cannot record: FailClosed refuses new calls (the default),
    /// FailOpen forwards them unrecorded and says so in logs and metrics.
    #[serde(default)]
    pub on_failure: FailureMode,
    /// When a request event counts as recorded, so that the call may go upstream: Fsync (the
    /// default) once it is fsynced to the gateway's spool (survives a crash of the gateway and of
    /// its node); Written once it is written to the spool file, fsynced at most 10 ms later
    /// (survives a crash of the gateway, not of its node). docs/recorder.md, "Durability".
    #[serde(default)]
    pub durability: RecordingDurability,
    /// Who may read and write the recordings directly in S3, locked down by the operator with
    /// bucket-policy statements it owns, Block Public Access and S3 server access logging. When
    /// unset the operator leaves the bucket's policy, public access block and logging alone, and
    /// the condition BucketLockedDown says so (reason NotManaged). docs/auditing.md, "The direct
    /// S3 path".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<BucketAccess>,
}

/// The rule every `spec.access` principal ARN must match: an IAM role, user or account root.
pub const PRINCIPAL_ARN_PATTERN: &str =
    r"^arn:aws(-[a-z]+)*:iam::[0-9]{12}:((role|user)/[A-Za-z0-9+=,.@_/-]{1,512}|root)$";

/// Direct access to the recordings in the bucket.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BucketAccess {
    /// IAM principal ARNs allowed to read this policy's recordings directly (s3:GetObject,
    /// s3:GetObjectVersion), e.g. `arn:aws:iam::123456789012:role/auditor`: roles, users or
    /// `arn:aws:iam::<account>:root`. Not assumed-role session ARNs
    /// (`arn:aws:sts::<account>:assumed-role/<role>/<session>`): give the role's ARN,
    /// `arn:aws:iam::<account>:role/<role>`. Everyone else, the account's administrators
    /// included, is denied by the bucket policy; the writer may always read.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32), inner(length(max = 600)))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self.all(r, r.matches('^arn:aws(-[a-z]+)*:iam::[0-9]{12}:((role|user)/[A-Za-z0-9+=,.@_/-]{1,512}|root)$'))",
        "message": "each reader must be an IAM role, user or root ARN such as arn:aws:iam::123456789012:role/auditor; for an assumed-role session (arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION) give the role's ARN, arn:aws:iam::ACCOUNT:role/ROLE"
    }]))]
    pub readers: Vec<String>,
    /// The IAM principal the gateways record with, the only one allowed to write recordings.
    /// Default: the identity the policy's credentials belong to (sts:GetCallerIdentity). Set it
    /// when `spec.s3.credentials` is unset and the gateways' role differs from the operator's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 600))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self.matches('^arn:aws(-[a-z]+)*:iam::[0-9]{12}:((role|user)/[A-Za-z0-9+=,.@_/-]{1,512}|root)$')",
        "message": "writer must be an IAM role, user or root ARN such as arn:aws:iam::123456789012:role/recorder; for an assumed-role session give the role's ARN, arn:aws:iam::ACCOUNT:role/ROLE"
    }]))]
    pub writer: Option<String>,
    /// S3 server access logging of the bucket (bucket-wide), so that direct reads are audited by
    /// S3 too. An existing logging configuration to another target is never overwritten.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_logging: Option<AccessLogging>,
    /// Turn on all four Block Public Access settings of the bucket (the default). `false` leaves
    /// them as they are; the operator never turns them off.
    #[serde(default = "enabled")]
    pub block_public_access: bool,
    /// Merge the bucket-policy statements that lock the recordings down into the bucket's policy
    /// (the default), keeping every statement the operator does not own. `false` writes none and
    /// removes those written before.
    #[serde(default = "enabled")]
    pub manage_bucket_policy: bool,
}

fn enabled() -> bool {
    true
}

/// Where S3 delivers the bucket's server access logs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessLogging {
    /// The bucket that receives the logs, in the same region and account; it must allow the
    /// service principal `logging.s3.amazonaws.com` to put objects under `targetPrefix`.
    #[schemars(length(max = 63))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self.matches('^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$') && !self.contains('..')",
        "message": "must be a valid S3 bucket name: 3-63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit"
    }]))]
    pub target_bucket: String,
    /// Key prefix of the log objects in the target bucket.
    #[serde(default = "default_access_log_prefix")]
    #[schemars(length(max = 512))]
    pub target_prefix: String,
}

fn default_access_log_prefix() -> String {
    "chaperone-access/".into()
}

/// The S3 location of recordings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3Destination {
    /// Bucket name: 3 to 63 lowercase letters, digits, dots and hyphens, starting and ending with a
    /// letter or digit.
    #[schemars(length(max = 63))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self.matches('^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$') && !self.contains('..')",
        "message": "must be a valid S3 bucket name: 3-63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit"
    }]))]
    pub bucket: String,
    /// Key prefix, e.g. `agents/`. Recordings land under `<prefix>v1/<namespace>/<connection>/`.
    #[serde(default)]
    #[schemars(length(max = 512))]
    #[schemars(extend("x-kubernetes-validations" = [{
        "rule": "self == '' || (self.endsWith('/') && !self.startsWith('/'))",
        "message": "prefix must be empty or end with '/' and not start with '/', e.g. agents/"
    }]))]
    pub prefix: String,
    /// The bucket's region.
    #[schemars(regex(pattern = r"^[a-z]{2}(-[a-z]+)+-\d+$"), length(max = 32))]
    pub region: String,
    /// Endpoint URL of an S3-compatible store; AWS's regional endpoint when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://.+"), length(max = 2048))]
    pub endpoint: Option<String>,
    /// Credentials for writing recordings. When unset, the gateways record and the operator manages
    /// the bucket with their own ambient credentials: the AWS SDK's default chain (environment
    /// keys, IRSA web identity, EKS Pod Identity, the instance profile).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<RecorderCredentials>,
    /// Server-side encryption of recording objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_side_encryption: Option<ServerSideEncryption>,
}

/// Credentials the recorder writes with.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecorderCredentials {
    /// Secret in this namespace with keys AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY.
    pub secret_ref: LocalObjectReference,
}

/// Server-side encryption settings.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerSideEncryption {
    /// KMS key id or ARN for SSE-KMS; SSE-S3 (AES256) when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2048))]
    pub kms_key_id: Option<String>,
}

/// Retention of recording objects.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Retention {
    /// Days after which recording objects expire (at least 1).
    #[schemars(range(min = 1, max = 36500))]
    pub days: i32,
    /// Storage-class transitions before expiry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub transitions: Vec<Transition>,
}

/// A lifecycle transition to another storage class.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Transition {
    /// Days after creation at which objects move.
    #[schemars(range(min = 0, max = 36500))]
    pub days: i32,
    /// Target storage class.
    pub storage_class: StorageClass,
}

/// S3 storage classes a transition may target.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[allow(non_camel_case_types, clippy::upper_case_acronyms)]
pub enum StorageClass {
    /// S3 Standard-Infrequent Access.
    STANDARD_IA,
    /// S3 One Zone-Infrequent Access.
    ONEZONE_IA,
    /// S3 Intelligent-Tiering.
    INTELLIGENT_TIERING,
    /// S3 Glacier Instant Retrieval.
    GLACIER_IR,
    /// S3 Glacier Flexible Retrieval.
    GLACIER,
    /// S3 Glacier Deep Archive.
    DEEP_ARCHIVE,
}

/// Object Lock retention for recording objects.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObjectLock {
    /// Governance (removable by privileged users) or Compliance (removable by no one).
    pub mode: ObjectLockMode,
    /// Days each object stays locked.
    #[schemars(range(min = 1, max = 36500))]
    pub days: i32,
}

/// S3 Object Lock modes.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum ObjectLockMode {
    /// Privileged users may shorten or remove the lock.
    Governance,
    /// No one may shorten or remove the lock until it expires.
    Compliance,
}

/// Body capture limits.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Capture {
    /// Bytes of each body stored (0 to 16 MiB). Beyond it the body is truncated, flagged so, and its
    /// full length and full sha256 are still recorded.
    #[serde(default = "default_max_body_bytes")]
    #[schemars(range(min = 0, max = 16777216))]
    pub max_body_bytes: i64,
}

fn default_max_body_bytes() -> i64 {
    1024 * 1024
}

impl Default for Capture {
    fn default() -> Self {
        Self { max_body_bytes: default_max_body_bytes() }
    }
}

/// Redaction applied before recording. Credentials are always redacted whatever this says.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Redaction {
    /// Header names (case-insensitive) whose values are replaced by their sha256.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 256)))]
    pub headers: Vec<String>,
    /// Per IAM action, JSON pointers (RFC 6901) into the request or response body whose values are
    /// replaced by their sha256, e.g. `{action: secretsmanager:GetSecretValue, pointers: [/SecretString]}`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 128))]
    pub actions: Vec<ActionRedaction>,
}

/// Body values redacted for one IAM action.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ActionRedaction {
    /// The IAM action, e.g. `secretsmanager:GetSecretValue`.
    #[schemars(regex(pattern = r"^[a-z0-9-]+:[A-Za-z0-9*?]+$"), length(max = 128))]
    pub action: String,
    /// JSON pointers into the request and response bodies, each starting with `/`.
    #[schemars(length(min = 1, max = 32), inner(regex(pattern = r"^/.*$"), length(max = 512)))]
    pub pointers: Vec<String>,
}

/// What the gateway does when recording is impossible.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum FailureMode {
    /// Refuse new calls with a clear error until recording works again.
    #[default]
    FailClosed,
    /// Forward calls unrecorded, loudly.
    FailOpen,
}

/// When a request event counts as recorded (RecordingPolicy `durability`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum RecordingDurability {
    /// Fsynced to the spool before the call is forwarded: survives a crash of the gateway and of
    /// its node (power loss, kernel panic).
    #[default]
    Fsync,
    /// Written to the spool file (the kernel's page cache) before the call is forwarded, fsynced
    /// within 10 ms: survives a crash of the gateway process, not of its node.
    Written,
}

/// Observed state of a RecordingPolicy.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecordingPolicyStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, BucketReachable, LifecycleApplied, ObjectLockVerified, PublicKeysPublished and
    /// BucketLockedDown conditions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Conditions,
}

#[cfg(test)]
mod tests {
    use kube::CustomResourceExt;

    use super::*;

    #[test]
    fn the_examples_commented_access_block_parses_with_its_defaults() {
        let path = std::path::Path::new(&std::env::var_os("CARGO_MANIFEST_DIR").unwrap())
            .join("../examples/recordingpolicy.yaml");
        let text = std::fs::read_to_string(path).unwrap();
        // Uncomment the block from `# access:` on, as a reader of the example would.
        let mut lines = Vec::new();
        let mut in_block = false;
        for line in text.lines() {
            in_block |= line.trim_start() == "# access:";
            lines.push(if in_block { line.replacen("# ", "", 1) } else { line.to_owned() });
        }
        assert!(in_block, "examples/recordingpolicy.yaml has a commented `access:` block");
        let policy: RecordingPolicy = serde_yaml::from_str(&lines.join("\n")).unwrap();
        let access = policy.spec.access.expect("the uncommented block is spec.access");
        assert_eq!(access.readers, ["arn:aws:iam::123456789012:role/auditor"]);
        assert!(access.block_public_access && access.manage_bucket_policy);
        let logging = access.access_logging.unwrap();
        assert_eq!(logging.target_prefix, "chaperone-access/");
        assert_eq!(access.writer, None);
    }

    #[test]
    fn the_crd_checks_principal_arns_with_the_pattern_the_operator_uses() {
        let crd = serde_json::to_string(&RecordingPolicy::crd()).unwrap();
        let rule = PRINCIPAL_ARN_PATTERN.replace('\\', "\\\\");
        assert_eq!(crd.matches(&format!("matches('{rule}')")).count(), 2, "readers and writer");
        let without: RecordingPolicySpec = serde_json::from_value(serde_json::json!({
            "s3": {"bucket": "audit", "region": "us-east-1"},
            "retention": {"days": 1},
        }))
        .unwrap();
        assert_eq!(without.access, None, "no access: nothing is locked down");
    }
}
