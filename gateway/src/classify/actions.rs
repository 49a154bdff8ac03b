//! From an operation to the IAM actions it needs, with their resources: the default
//! `<iam-prefix>:<Operation>`, the overrides where IAM names differ (most of them S3's), and the
//! `iam:PassRole` an operation implies when it hands a role to a service.

use super::params::Params;
use super::resources::{ResourceContext, named_resources};
use super::s3;

/// One IAM action a call needs, and the resources it needs it on (empty when the request names
/// none, as for `s3:ListAllMyBuckets`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IamAction {
    /// `service:Action`, e.g. `s3:GetObjectVersion`.
    pub action: String,
    /// Resource ARNs.
    pub resources: Vec<String>,
}

impl IamAction {
    fn new(action: String, resources: Vec<String>) -> Self {
        IamAction { action, resources }
    }
}

/// Actions plus whether every resource the call touches is named in them.
pub(crate) struct Actions {
    pub actions: Vec<IamAction>,
    pub complete: bool,
}

/// IAM action names that differ from operation names, outside S3: (IAM prefix, operation, action).
pub(super) const ACTION_OVERRIDES: &[(&str, &str, &str)] = &[
    ("lambda", "Invoke", "InvokeFunction"),
    ("lambda", "InvokeWithResponseStream", "InvokeFunction"),
    ("bedrock", "Converse", "InvokeModel"),
    ("bedrock", "ConverseStream", "InvokeModelWithResponseStream"),
    ("bedrock", "StartAsyncInvoke", "InvokeModel"),
    ("bedrock", "InvokeGuardrailChecks", "ApplyGuardrail"),
];

/// S3 operations whose IAM action differs from the operation name:
/// (operation, action, action when the request names a `versionId`).
pub(super) const S3_ACTIONS: &[(&str, &str, Option<&str>)] = &[
    ("AbortMultipartUpload", "AbortMultipartUpload", None),
    ("CompleteMultipartUpload", "PutObject", None),
    ("CopyObject", "PutObject", None),
    ("CreateMultipartUpload", "PutObject", None),
    ("DeleteBucketAnalyticsConfiguration", "PutAnalyticsConfiguration", None),
    ("DeleteBucketCors", "PutBucketCORS", None),
    ("DeleteBucketEncryption", "PutEncryptionConfiguration", None),
    ("DeleteBucketIntelligentTieringConfiguration", "PutIntelligentTieringConfiguration", None),
    ("DeleteBucketInventoryConfiguration", "PutInventoryConfiguration", None),
    ("DeleteBucketLifecycle", "PutLifecycleConfiguration", None),
    ("DeleteBucketMetricsConfiguration", "PutMetricsConfiguration", None),
    ("DeleteBucketOwnershipControls", "PutBucketOwnershipControls", None),
    ("DeleteBucketReplication", "PutReplicationConfiguration", None),
    ("DeleteBucketTagging", "PutBucketTagging", None),
    ("DeleteObject", "DeleteObject", Some("DeleteObjectVersion")),
    ("DeleteObjectTagging", "DeleteObjectTagging", Some("DeleteObjectVersionTagging")),
    ("DeletePublicAccessBlock", "PutBucketPublicAccessBlock", None),
    ("GetBucketAccelerateConfiguration", "GetAccelerateConfiguration", None),
    ("GetBucketAnalyticsConfiguration", "GetAnalyticsConfiguration", None),
    ("GetBucketCors", "GetBucketCORS", None),
    ("GetBucketEncryption", "GetEncryptionConfiguration", None),
    ("GetBucketIntelligentTieringConfiguration", "GetIntelligentTieringConfiguration", None),
    ("GetBucketInventoryConfiguration", "GetInventoryConfiguration", None),
    ("GetBucketLifecycle", "GetLifecycleConfiguration", None),
    ("GetBucketLifecycleConfiguration", "GetLifecycleConfiguration", None),
    ("GetBucketMetricsConfiguration", "GetMetricsConfiguration", None),
    ("GetBucketNotificationConfiguration", "GetBucketNotification", None),
    ("GetBucketReplication", "GetReplicationConfiguration", None),
    ("GetObject", "GetObject", Some("GetObjectVersion")),
    ("GetObjectAcl", "GetObjectAcl", Some("GetObjectVersionAcl")),
    ("GetObjectAttributes", "GetObjectAttributes", Some("GetObjectVersionAttributes")),
    ("GetObjectLockConfiguration", "GetBucketObjectLockConfiguration", None),
    ("GetObjectTagging", "GetObjectTagging", Some("GetObjectVersionTagging")),
    ("GetObjectTorrent", "GetObjectTorrent", Some("GetObjectVersionTorrent")),
    ("GetPublicAccessBlock", "GetBucketPublicAccessBlock", None),
    ("HeadBucket", "ListBucket", None),
    ("HeadObject", "GetObject", Some("GetObjectVersion")),
    ("ListBucketAnalyticsConfigurations", "GetAnalyticsConfiguration", None),
    ("ListBucketIntelligentTieringConfigurations", "GetIntelligentTieringConfiguration", None),
    ("ListBucketInventoryConfigurations", "GetInventoryConfiguration", None),
    ("ListBucketMetricsConfigurations", "GetMetricsConfiguration", None),
    ("ListBuckets", "ListAllMyBuckets", None),
    ("ListMultipartUploads", "ListBucketMultipartUploads", None),
    ("ListObjectVersions", "ListBucketVersions", None),
    ("ListObjects", "ListBucket", None),
    ("ListObjectsV2", "ListBucket", None),
    ("ListParts", "ListMultipartUploadParts", None),
    ("PutBucketAccelerateConfiguration", "PutAccelerateConfiguration", None),
    ("PutBucketAnalyticsConfiguration", "PutAnalyticsConfiguration", None),
    ("PutBucketCors", "PutBucketCORS", None),
    ("PutBucketEncryption", "PutEncryptionConfiguration", None),
    ("PutBucketIntelligentTieringConfiguration", "PutIntelligentTieringConfiguration", None),
    ("PutBucketInventoryConfiguration", "PutInventoryConfiguration", None),
    ("PutBucketLifecycle", "PutLifecycleConfiguration", None),
    ("PutBucketLifecycleConfiguration", "PutLifecycleConfiguration", None),
    ("PutBucketMetricsConfiguration", "PutMetricsConfiguration", None),
    ("PutBucketNotificationConfiguration", "PutBucketNotification", None),
    ("PutBucketReplication", "PutReplicationConfiguration", None),
    ("PutObjectAcl", "PutObjectAcl", Some("PutObjectVersionAcl")),
    ("PutObjectLockConfiguration", "PutBucketObjectLockConfiguration", None),
    ("PutObjectTagging", "PutObjectTagging", Some("PutObjectVersionTagging")),
    ("PutPublicAccessBlock", "PutBucketPublicAccessBlock", None),
    ("SelectObjectContent", "GetObject", None),
    ("UploadPart", "PutObject", None),
    ("UploadPartCopy", "PutObject", None),
];

/// S3 operations authorised under another IAM prefix.
pub(super) const S3_FOREIGN_ACTIONS: &[(&str, &str)] = &[
    ("CreateSession", "s3express:CreateSession"),
    ("ListDirectoryBuckets", "s3express:ListAllMyDirectoryBuckets"),
    ("WriteGetObjectResponse", "s3-object-lambda:WriteGetObjectResponse"),
];

/// Where an operation hands a role to a service, so the caller needs `iam:PassRole` on it:
/// (IAM prefix, operation, parameter path, what the value is).
pub(super) const PASS_ROLE_PARAMETERS: &[(&str, &str, &str, PassedRole)] = &[
    ("lambda", "CreateFunction", "Role", PassedRole::Arn),
    ("lambda", "UpdateFunctionConfiguration", "Role", PassedRole::Arn),
    ("ec2", "RunInstances", "IamInstanceProfile.Arn", PassedRole::InstanceProfile),
    ("ec2", "RunInstances", "IamInstanceProfile.Name", PassedRole::InstanceProfile),
    ("ec2", "AssociateIamInstanceProfile", "IamInstanceProfile.Arn", PassedRole::InstanceProfile),
    ("ec2", "AssociateIamInstanceProfile", "IamInstanceProfile.Name", PassedRole::InstanceProfile),
    (
        "ec2",
        "ReplaceIamInstanceProfileAssociation",
        "IamInstanceProfile.Arn",
        PassedRole::InstanceProfile,
    ),
    (
        "ec2",
        "ReplaceIamInstanceProfileAssociation",
        "IamInstanceProfile.Name",
        PassedRole::InstanceProfile,
    ),
    ("cloudformation", "CreateStack", "RoleARN", PassedRole::Arn),
    ("cloudformation", "UpdateStack", "RoleARN", PassedRole::Arn),
    ("cloudformation", "DeleteStack", "RoleARN", PassedRole::Arn),
    ("cloudformation", "CreateChangeSet", "RoleARN", PassedRole::Arn),
    ("cloudformation", "ContinueUpdateRollback", "RoleARN", PassedRole::Arn),
    ("cloudformation", "RollbackStack", "RoleARN", PassedRole::Arn),
    ("cloudformation", "CreateStackSet", "AdministrationRoleARN", PassedRole::Arn),
    ("cloudformation", "UpdateStackSet", "AdministrationRoleARN", PassedRole::Arn),
    ("states", "CreateStateMachine", "roleArn", PassedRole::Arn),
    ("states", "UpdateStateMachine", "roleArn", PassedRole::Arn),
    ("events", "PutRule", "RoleArn", PassedRole::Arn),
    ("events", "PutTargets", "Targets[].RoleArn", PassedRole::Arn),
    ("eks", "CreateCluster", "roleArn", PassedRole::Arn),
    ("eks", "CreateNodegroup", "nodeRole", PassedRole::Arn),
    ("eks", "CreateFargateProfile", "podExecutionRoleArn", PassedRole::Arn),
    ("eks", "CreatePodIdentityAssociation", "roleArn", PassedRole::Arn),
    ("eks", "UpdatePodIdentityAssociation", "roleArn", PassedRole::Arn),
    ("logs", "PutDestination", "roleArn", PassedRole::Arn),
    ("logs", "PutSubscriptionFilter", "roleArn", PassedRole::Arn),
    ("ssm", "SendCommand", "ServiceRoleArn", PassedRole::Arn),
    ("ssm", "CreateActivation", "IamRole", PassedRole::Name),
    ("ssm", "UpdateManagedInstanceRole", "IamRole", PassedRole::Name),
    ("kinesis", "StartStreamEncryption", "RoleArn", PassedRole::Arn),
];

#[derive(Debug, Clone, Copy)]
pub(super) enum PassedRole {
    /// The value is a role ARN.
    Arn,
    /// The value is a role name.
    Name,
    /// The value names an instance profile; the role inside it is not in the request.
    InstanceProfile,
}

/// The S3 facts of a request that its IAM actions depend on.
pub(crate) struct S3Facts<'a> {
    pub bucket: Option<&'a str>,
    pub key: Option<&'a str>,
    pub version_id: Option<&'a str>,
    pub copy_source: Option<&'a str>,
    /// The body when it was passed whole.
    pub body: Option<&'a [u8]>,
    /// The request's headers: some carry permissions of their own (ACLs, tags, object lock,
    /// KMS keys).
    pub headers: &'a [(&'a str, &'a str)],
}

impl S3Facts<'_> {
    fn has_header(&self, predicate: impl Fn(&str) -> bool) -> bool {
        self.headers.iter().any(|(name, _)| predicate(&name.to_ascii_lowercase()))
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| *v)
    }
}

/// S3 operations that create an object, and so take the object's ACL, tags, lock and KMS key
/// from headers.
const S3_OBJECT_WRITES: &[&str] = &["PutObject", "CopyObject", "CreateMultipartUpload"];

/// The permissions S3 request headers carry beyond the operation's own action: an ACL or grant
/// (`s3:PutObjectAcl`/`s3:PutBucketAcl`), tags, object-lock retention and legal hold, governance
/// bypass, a bucket created with object lock, and the SSE-KMS key (`kms:GenerateDataKey` and
/// `kms:Decrypt` on it).
fn s3_header_actions(
    operation: &str,
    facts: &S3Facts<'_>,
    target: &[String],
    bucket_arn: Option<&str>,
    ctx: &ResourceContext<'_>,
) -> Vec<IamAction> {
    let mut out = Vec::new();
    let mut push = |action: &str, resources: Vec<String>| {
        if !out.iter().any(|a: &IamAction| a.action == action) {
            out.push(IamAction::new(action.to_owned(), resources));
        }
    };
    let writes_object = S3_OBJECT_WRITES.contains(&operation);
    let acl = facts.has_header(|h| h == "x-amz-acl" || h.starts_with("x-amz-grant-"));
    if acl && operation == "CreateBucket" {
        push("s3:PutBucketAcl", bucket_arn.map(str::to_owned).into_iter().collect());
    } else if acl && writes_object {
        push("s3:PutObjectAcl", target.to_vec());
    }
    if writes_object && facts.has_header(|h| h == "x-amz-tagging") {
        push("s3:PutObjectTagging", target.to_vec());
    }
    if writes_object
        && facts.has_header(|h| {
            h == "x-amz-object-lock-mode" || h == "x-amz-object-lock-retain-until-date"
        })
    {
        push("s3:PutObjectRetention", target.to_vec());
    }
    if writes_object && facts.has_header(|h| h == "x-amz-object-lock-legal-hold") {
        push("s3:PutObjectLegalHold", target.to_vec());
    }
    if facts
        .header("x-amz-bypass-governance-retention")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    {
        push("s3:BypassGovernanceRetention", target.to_vec());
    }
    if operation == "CreateBucket"
        && facts
            .header("x-amz-bucket-object-lock-enabled")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    {
        let bucket: Vec<String> = bucket_arn.map(str::to_owned).into_iter().collect();
        push("s3:PutBucketObjectLockConfiguration", bucket.clone());
        push("s3:PutBucketVersioning", bucket);
    }
    if let Some(key) = facts
        .header("x-amz-server-side-encryption-aws-kms-key-id")
        .map(str::trim)
        .filter(|k| !k.is_empty())
    {
        let arn = if key.starts_with("arn:") {
            key.to_owned()
        } else if key.starts_with("alias/") {
            format!("arn:{}:kms:{}:{}:{key}", ctx.partition, ctx.region, ctx.account_id)
        } else {
            format!("arn:{}:kms:{}:{}:key/{key}", ctx.partition, ctx.region, ctx.account_id)
        };
        push("kms:GenerateDataKey", vec![arn.clone()]);
        push("kms:Decrypt", vec![arn]);
    }
    out
}

/// The IAM actions of an operation of a (non-S3) service.
pub(crate) fn service_actions(
    iam_prefix: &str,
    operation: &str,
    params: &Params<'_>,
    ctx: &ResourceContext<'_>,
) -> Actions {
    let resources = named_resources(iam_prefix, operation, params, ctx);
    let name = ACTION_OVERRIDES
        .iter()
        .find(|(prefix, op, _)| *prefix == iam_prefix && *op == operation)
        .map(|(_, _, action)| *action)
        .or_else(|| dynamodb_partiql_action(iam_prefix, operation, params))
        .unwrap_or(operation);
    let mut actions = vec![IamAction::new(format!("{iam_prefix}:{name}"), resources)];
    let complete = push_pass_role(iam_prefix, operation, params, ctx, &mut actions);
    Actions { actions, complete }
}

/// PartiQL statements are authorised per verb (`dynamodb:PartiQLSelect`...).
fn dynamodb_partiql_action(
    iam_prefix: &str,
    operation: &str,
    params: &Params<'_>,
) -> Option<&'static str> {
    if iam_prefix != "dynamodb" || operation != "ExecuteStatement" {
        return None;
    }
    let statement = params.string("Statement")?;
    let verb = statement.split_whitespace().next()?;
    [
        ("SELECT", "PartiQLSelect"),
        ("INSERT", "PartiQLInsert"),
        ("UPDATE", "PartiQLUpdate"),
        ("DELETE", "PartiQLDelete"),
    ]
    .iter()
    .find(|(v, _)| verb.eq_ignore_ascii_case(v))
    .map(|(_, action)| *action)
}

/// Appends `iam:PassRole` where the operation passes a role. Returns false when the request
/// passes a role it does not name (an EC2 instance profile).
fn push_pass_role(
    iam_prefix: &str,
    operation: &str,
    params: &Params<'_>,
    ctx: &ResourceContext<'_>,
    actions: &mut Vec<IamAction>,
) -> bool {
    let mut roles: Vec<String> = Vec::new();
    let mut complete = true;
    for (_, _, path, kind) in PASS_ROLE_PARAMETERS
        .iter()
        .filter(|(prefix, op, _, _)| *prefix == iam_prefix && *op == operation)
    {
        for value in params.values(path) {
            if value.is_empty() {
                continue;
            }
            let arn = match kind {
                PassedRole::Arn => value.to_owned(),
                PassedRole::Name => {
                    format!("arn:{}:iam::{}:role/{value}", ctx.partition, ctx.account_id)
                }
                PassedRole::InstanceProfile => {
                    complete = false;
                    format!("arn:{}:iam::{}:role/*", ctx.partition, ctx.account_id)
                }
            };
            if !roles.contains(&arn) {
                roles.push(arn);
            }
        }
    }
    if !roles.is_empty() {
        actions.push(IamAction::new("iam:PassRole".to_owned(), roles));
    }
    complete
}

/// The IAM actions of an S3 operation.
pub(crate) fn s3_actions(
    operation: &str,
    facts: &S3Facts<'_>,
    ctx: &ResourceContext<'_>,
) -> Actions {
    let partition = ctx.partition;
    let bucket_arn = facts.bucket.map(|b| format!("arn:{partition}:s3:::{b}"));
    let object_arn = match (facts.bucket, facts.key) {
        (Some(b), Some(k)) => Some(format!("arn:{partition}:s3:::{b}/{k}")),
        _ => None,
    };
    let target: Vec<String> = object_arn.clone().or(bucket_arn.clone()).into_iter().collect();

    if let Some((_, action)) = S3_FOREIGN_ACTIONS.iter().find(|(op, _)| *op == operation) {
        return Actions {
            actions: vec![IamAction::new((*action).to_owned(), target)],
            complete: true,
        };
    }
    if operation == "DeleteObjects" {
        let mut result = delete_objects_actions(facts, bucket_arn.as_deref(), partition);
        let objects: Vec<String> = bucket_arn.iter().map(|b| format!("{b}/*")).collect();
        result.actions.extend(s3_header_actions(
            operation,
            facts,
            &objects,
            bucket_arn.as_deref(),
            ctx,
        ));
        return result;
    }

    let versioned = facts.version_id.is_some_and(|v| !v.is_empty());
    let action = match S3_ACTIONS.iter().find(|(op, _, _)| *op == operation) {
        Some((_, _, Some(version_action))) if versioned => *version_action,
        Some((_, action, _)) => *action,
        None => operation,
    };
    let mut actions = vec![IamAction::new(format!("s3:{action}"), target.clone())];
    let mut complete = true;
    if matches!(operation, "CopyObject" | "UploadPartCopy") || facts.copy_source.is_some() {
        // A copy source is a read of the source, whatever operation carries it.
        match facts.copy_source.and_then(|raw| s3::parse_copy_source(raw, partition)) {
            Some(source) => {
                let read = if source.version_id.is_some() {
                    "s3:GetObjectVersion"
                } else {
                    "s3:GetObject"
                };
                actions.push(IamAction::new(read.to_owned(), vec![source.arn]));
            }
            None => complete = false,
        }
    }
    actions.extend(s3_header_actions(operation, facts, &target, bucket_arn.as_deref(), ctx));
    Actions { actions, complete }
}

/// DeleteObjects needs `s3:DeleteObject` (or `s3:DeleteObjectVersion`) on every key in its body.
/// Without a parseable body it names the whole bucket (`bucket/*`) and says it is incomplete.
fn delete_objects_actions(
    facts: &S3Facts<'_>,
    bucket_arn: Option<&str>,
    partition: &str,
) -> Actions {
    let Some(bucket) = facts.bucket else {
        return Actions {
            actions: vec![IamAction::new("s3:DeleteObject".to_owned(), Vec::new())],
            complete: false,
        };
    };
    let entries = facts.body.and_then(s3::parse_delete_objects);
    let Some(entries) = entries else {
        let everything = format!("{}/*", bucket_arn.unwrap_or_default());
        return Actions {
            actions: vec![IamAction::new("s3:DeleteObject".to_owned(), vec![everything])],
            complete: false,
        };
    };
    let mut plain = Vec::new();
    let mut versioned = Vec::new();
    for entry in entries {
        let arn = format!("arn:{partition}:s3:::{bucket}/{}", entry.key);
        let list = if entry.version_id.is_some_and(|v| !v.is_empty()) {
            &mut versioned
        } else {
            &mut plain
        };
        if !list.contains(&arn) {
            list.push(arn);
        }
    }
    let mut actions = Vec::new();
    if !plain.is_empty() || versioned.is_empty() {
        actions.push(IamAction::new("s3:DeleteObject".to_owned(), plain));
    }
    if !versioned.is_empty() {
        actions.push(IamAction::new("s3:DeleteObjectVersion".to_owned(), versioned));
    }
    Actions { actions, complete: true }
}
