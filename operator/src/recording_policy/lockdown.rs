//! Locks the direct S3 path to a policy's recordings down, as `spec.access` asks: merges the
//! policy's bucket-policy statements ([`crate::recording_policy::bucket_policy`]) into the
//! bucket's policy, turns Block Public Access on, and points the bucket's server access logging
//! at the named target. Each step that fails is reported with the permission it needed, and the
//! others still run. The result is the `BucketLockedDown` check.

use aws_sdk_s3::{
    error::ProvideErrorMetadata,
    types::{BucketLoggingStatus, LoggingEnabled, PublicAccessBlockConfiguration},
};
use chaperone_crds::{AccessLogging, RecordingPolicySpec};
use serde_json::Value;

use crate::{
    gateway::config_compiler::Check,
    recording_policy::{
        bucket_policy,
        controller::{PolicyBucket, check, sdk_text},
    },
};

/// What one step could not do: the condition reason and a sentence saying what to fix.
struct Failure {
    reason: &'static str,
    message: String,
}

/// What the steps did so far: the changes written, what holds, what could not be applied.
struct Outcome {
    written: Vec<String>,
    applied: Vec<String>,
    failures: Vec<Failure>,
}

impl Outcome {
    /// Takes one step's result: `(summary, changed)` is applied (and written, said with `verb`,
    /// when it changed the bucket), or a failure.
    fn take(&mut self, step: Result<(String, bool), Failure>, verb: &str) {
        match step {
            Ok((summary, changed)) => {
                if changed {
                    self.written.push(format!("{verb} {summary}."));
                }
                self.applied.push(summary);
            }
            Err(failure) => self.failures.push(failure),
        }
    }
}

/// The check and the changes written to the bucket (for an event).
pub(crate) struct Lockdown {
    /// The `BucketLockedDown` check.
    pub(crate) check: Check,
    /// What was written this time, one sentence each.
    pub(crate) written: Vec<String>,
}

/// Applies `spec.access` to the bucket (or, without it, removes statements an earlier
/// `spec.access` left and reports `NotManaged`).
pub(crate) async fn apply(
    bucket: &PolicyBucket,
    namespace: &str,
    name: &str,
    spec: &RecordingPolicySpec,
) -> Lockdown {
    let mut written = Vec::new();
    let Some(access) = &spec.access else {
        // Statements of an earlier spec.access would otherwise stay unmanaged. Best effort: the
        // credentials of a policy that never set spec.access need not read bucket policies.
        if let Ok(Some(removed)) = remove_statements(bucket, namespace, name).await {
            written.push(removed);
        }
        return Lockdown {
            check: check(
                false,
                "NotManaged",
                format!(
                    "spec.access is unset, so the operator does not lock bucket {} down: whoever \
                     the account's IAM policies allow can read, overwrite or delete the \
                     recordings directly. Set spec.access with the readers allowed (see \
                     docs/auditing.md, \"The direct S3 path\").",
                    bucket.bucket
                ),
            ),
            written,
        };
    };
    let mut outcome = Outcome { written, applied: Vec::new(), failures: Vec::new() };
    if access.manage_bucket_policy {
        outcome.take(apply_statements(bucket, namespace, name, spec).await, "Wrote");
    } else {
        if let Ok(Some(removed)) = remove_statements(bucket, namespace, name).await {
            outcome.written.push(removed);
        }
        outcome.failures.push(Failure {
            reason: "NotManaged",
            message: format!(
                "spec.access.manageBucketPolicy is false, so the operator writes no \
                 bucket-policy statements: reads, writes and deletes of the recordings are \
                 limited only by the policies you manage on bucket {}.",
                bucket.bucket
            ),
        });
    }
    if access.block_public_access {
        outcome.take(block_public_access(bucket).await, "Turned on");
    } else {
        outcome.applied.push(
            "Block Public Access left as it is (spec.access.blockPublicAccess is false)".into(),
        );
    }
    if let Some(logging) = &access.access_logging {
        outcome.take(access_logging(bucket, logging).await, "Turned on");
    } else {
        outcome
            .applied
            .push("no access logging asked for (spec.access.accessLogging is unset)".into());
    }
    let Outcome { written, applied, failures } = outcome;
    let applied_text = applied.join("; ");
    let check = match failures.first() {
        None => check(
            true,
            "Applied",
            format!(
                "Bucket {} is locked down for the recordings of namespace {namespace}: \
                 {applied_text}.",
                bucket.bucket
            ),
        ),
        Some(first) => {
            let problems: Vec<&str> = failures.iter().map(|f| f.message.as_str()).collect();
            let applied_text = if applied.is_empty() { "nothing".into() } else { applied_text };
            check(false, first.reason, format!("{} Applied: {applied_text}.", problems.join(" ")))
        }
    };
    Lockdown { check, written }
}

/// The writer's `aws:PrincipalArn` patterns: `spec.access.writer`, or whose the credentials are.
async fn writer(bucket: &PolicyBucket, spec: &RecordingPolicySpec) -> Result<Vec<String>, Failure> {
    if let Some(writer) = spec.access.as_ref().and_then(|a| a.writer.as_deref()) {
        return bucket_policy::configured_writer(writer)
            .map_err(|e| Failure { reason: "InvalidAccess", message: format!("{e}.") });
    }
    let identity = bucket.sts.get_caller_identity().send().await.map_err(|error| Failure {
        reason: "WriterUnknown",
        message: format!(
            "Could not learn whose the credentials in {} are (sts:GetCallerIdentity, asked at \
             spec.s3.endpoint when set, else at the STS of region {}): {}. Let the operator \
             reach STS, or set spec.access.writer to the ARN of the IAM role or user the \
             gateways record with.",
            bucket.credentials,
            spec.s3.region,
            sdk_text(&error)
        ),
    })?;
    let arn = identity.arn().unwrap_or_default();
    bucket_policy::writer_patterns(arn)
        .map_err(|e| Failure { reason: "WriterUnknown", message: format!("{e}.") })
}

/// The bucket's policy text (`None`: it has none).
async fn current_policy(bucket: &PolicyBucket) -> Result<Option<String>, String> {
    match bucket.client.get_bucket_policy().bucket(&bucket.bucket).send().await {
        Ok(output) => Ok(output.policy().map(str::to_owned)),
        Err(error) if error.code() == Some("NoSuchBucketPolicy") => Ok(None),
        Err(error) => Err(format!(
            "Reading the policy of bucket {} failed (the credentials in {} need \
             s3:GetBucketPolicy): {}.",
            bucket.bucket,
            bucket.credentials,
            sdk_text(&error)
        )),
    }
}

/// Puts `document` as the bucket's policy, or deletes the policy when `None`.
async fn write_policy(bucket: &PolicyBucket, document: Option<String>) -> Result<(), String> {
    let name = &bucket.bucket;
    let credentials = &bucket.credentials;
    match document {
        Some(document) => bucket
            .client
            .put_bucket_policy()
            .bucket(name)
            .policy(document)
            .send()
            .await
            .map(|_| ())
            .map_err(|error| {
                format!(
                    "Writing the policy of bucket {name} failed (the credentials in {credentials} \
                     need s3:PutBucketPolicy; S3 also refuses it when the merged policy would be \
                     public while Block Public Access blocks public policies): {}.",
                    sdk_text(&error)
                )
            }),
        None => bucket.client.delete_bucket_policy().bucket(name).send().await.map(|_| ()).map_err(
            |error| {
                format!(
                    "Deleting the policy of bucket {name}, which held only the operator's \
                         statements, failed (the credentials in {credentials} need \
                         s3:DeleteBucketPolicy): {}.",
                    sdk_text(&error)
                )
            },
        ),
    }
}

/// Merges the policy's statements into the bucket's policy; returns a summary and whether it
/// wrote.
async fn apply_statements(
    bucket: &PolicyBucket,
    namespace: &str,
    name: &str,
    spec: &RecordingPolicySpec,
) -> Result<(String, bool), Failure> {
    let writer = writer(bucket, spec).await?;
    let desired = bucket_policy::desired_statements(namespace, name, spec, &writer)
        .map_err(|e| Failure { reason: "InvalidAccess", message: format!("{e}.") })?;
    let failed = |message: String| Failure { reason: "BucketPolicyFailed", message };
    let current = current_policy(bucket).await.map_err(failed)?;
    let owner = bucket_policy::owner_prefix(namespace, name);
    let plan = bucket_policy::merge(current.as_deref(), &owner, &desired)
        .map_err(|e| failed(format!("Bucket {}: {e}.", bucket.bucket)))?;
    if plan.changed {
        write_policy(bucket, plan.document).await.map_err(failed)?;
    }
    let readers = spec.access.as_ref().map(|a| a.readers.join(", ")).unwrap_or_default();
    let summary = format!(
        "bucket-policy statements {} on {} (writer {}; readers {}), {} statement(s) the \
         operator does not own kept",
        bucket_policy::sids(&desired).join(", "),
        bucket_policy::recordings_arn(spec, namespace),
        writer.join(" or "),
        if readers.is_empty() { "none but the writer".into() } else { readers },
        plan.foreign
    );
    Ok((summary, plan.changed))
}

/// Removes the statements policy `namespace/name` owns from the bucket's policy; `Some`
/// describes what was removed, `None` that there was nothing to remove.
pub(crate) async fn remove_statements(
    bucket: &PolicyBucket,
    namespace: &str,
    name: &str,
) -> Result<Option<String>, String> {
    let current = current_policy(bucket).await?;
    let owner = bucket_policy::owner_prefix(namespace, name);
    let plan = bucket_policy::merge(current.as_deref(), &owner, &[])
        .map_err(|e| format!("Bucket {}: {e}.", bucket.bucket))?;
    if !plan.changed {
        return Ok(None);
    }
    let deleted = plan.document.is_none();
    write_policy(bucket, plan.document).await?;
    Ok(Some(format!(
        "Removed the bucket-policy statements {owner}* from bucket {}{}; {} other statement(s) \
         kept.",
        bucket.bucket,
        if deleted { " (and the policy, which held nothing else)" } else { "" },
        plan.foreign
    )))
}

/// All four Block Public Access settings on; returns a summary and whether it wrote.
async fn block_public_access(bucket: &PolicyBucket) -> Result<(String, bool), Failure> {
    let name = &bucket.bucket;
    let summary = "Block Public Access (all four settings)".to_owned();
    if let Ok(output) = bucket.client.get_public_access_block().bucket(name).send().await
        && let Some(c) = output.public_access_block_configuration()
        && [c.block_public_acls(), c.ignore_public_acls(), c.block_public_policy()]
            .into_iter()
            .chain([c.restrict_public_buckets()])
            .all(|v| v == Some(true))
    {
        return Ok((summary, false));
    }
    let all_on = PublicAccessBlockConfiguration::builder()
        .block_public_acls(true)
        .ignore_public_acls(true)
        .block_public_policy(true)
        .restrict_public_buckets(true)
        .build();
    bucket
        .client
        .put_public_access_block()
        .bucket(name)
        .public_access_block_configuration(all_on)
        .send()
        .await
        .map_err(|error| Failure {
            reason: "PublicAccessBlockFailed",
            message: format!(
                "Turning on Block Public Access of bucket {name} failed (the credentials in {} \
                 need s3:PutBucketPublicAccessBlock and s3:GetBucketPublicAccessBlock): {}.",
                bucket.credentials,
                sdk_text(&error)
            ),
        })?;
    Ok((summary, true))
}

/// Server access logging to `logging`'s target, unless the bucket logs elsewhere already;
/// returns a summary and whether it wrote.
async fn access_logging(
    bucket: &PolicyBucket,
    logging: &AccessLogging,
) -> Result<(String, bool), Failure> {
    let name = &bucket.bucket;
    let target = format!("s3://{}/{}", logging.target_bucket, logging.target_prefix);
    let summary = format!("server access logging to {target}");
    let current =
        bucket.client.get_bucket_logging().bucket(name).send().await.map_err(|error| Failure {
            reason: "LoggingFailed",
            message: format!(
                "Reading the logging configuration of bucket {name} failed (the credentials in \
                 {} need s3:GetBucketLogging): {}.",
                bucket.credentials,
                sdk_text(&error)
            ),
        })?;
    if let Some(enabled) = current.logging_enabled() {
        if enabled.target_bucket() == logging.target_bucket
            && enabled.target_prefix() == logging.target_prefix
        {
            return Ok((summary, false));
        }
        return Err(Failure {
            reason: "LoggingConflict",
            message: format!(
                "Bucket {name} already logs its accesses to s3://{}/{}, not to {target} as \
                 spec.access.accessLogging asks; the operator does not overwrite another \
                 logging configuration: set spec.access.accessLogging to that target, remove it, \
                 or turn the bucket's logging off first (aws s3api put-bucket-logging --bucket \
                 {name} --bucket-logging-status '{{}}').",
                enabled.target_bucket(),
                enabled.target_prefix()
            ),
        });
    }
    let enabled = LoggingEnabled::builder()
        .target_bucket(&logging.target_bucket)
        .target_prefix(&logging.target_prefix)
        .build()
        .map_err(|e| Failure {
            reason: "LoggingFailed",
            message: format!("Building the logging configuration failed: {e}."),
        })?;
    bucket
        .client
        .put_bucket_logging()
        .bucket(name)
        .bucket_logging_status(BucketLoggingStatus::builder().logging_enabled(enabled).build())
        .send()
        .await
        .map_err(|error| Failure {
            reason: "LoggingFailed",
            message: format!(
                "Turning on access logging of bucket {name} to {target} failed (the credentials \
                 in {} need s3:PutBucketLogging, and bucket {} must exist in the same region and \
                 allow the service principal logging.s3.amazonaws.com to s3:PutObject under \
                 {}): {}.",
                bucket.credentials,
                logging.target_bucket,
                logging.target_prefix,
                sdk_text(&error)
            ),
        })?;
    Ok((summary, true))
}

/// The statements of `policy` (a bucket's policy text) that policy `namespace/name` owns (for
/// tests and tooling that compare the bucket with the policy).
pub fn owned_statements(policy: &str, namespace: &str, name: &str) -> Vec<Value> {
    let owner = bucket_policy::owner_prefix(namespace, name);
    bucket_policy::owned_statements(Some(policy), &owner).unwrap_or_default()
}
