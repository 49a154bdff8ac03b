//! The status of one RecordingPolicy from what the controller found at its bucket: the conditions
//! BucketReachable, LifecycleApplied, ObjectLockVerified, PublicKeysPublished and, summing them
//! up, Ready; and BucketLockedDown, which Ready does not sum up: the lockdown of the direct S3
//! path guards the recordings once written, and recording goes on without it. Pure, so an
//! unchanged situation gives an identical status.

use chaperone_crds::RecordingPolicyStatus;
use k8s_openapi::{apimachinery::pkg::apis::meta::v1::Condition, jiff::Timestamp};

use crate::{gateway::config_compiler::Check, gateway::connection_status::condition};

/// Condition: the bucket answers HeadBucket with the policy's credentials.
pub const BUCKET_REACHABLE: &str = "BucketReachable";
/// Condition: the bucket's lifecycle rules for the policy's prefix match `spec.retention`.
pub const LIFECYCLE_APPLIED: &str = "LifecycleApplied";
/// Condition: versioning and Object Lock are on when `spec.objectLock` asks for them.
pub const OBJECT_LOCK_VERIFIED: &str = "ObjectLockVerified";
/// Condition: the recording public keys are in the bucket.
pub const PUBLIC_KEYS_PUBLISHED: &str = "PublicKeysPublished";
/// Condition: the bucket-policy statements, Block Public Access and access logging that
/// `spec.access` asks for are applied. Not part of Ready.
pub const BUCKET_LOCKED_DOWN: &str = "BucketLockedDown";
/// Condition: all of the above but BucketLockedDown.
pub const READY: &str = "Ready";

/// What one reconcile found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyChecks {
    /// HeadBucket.
    pub bucket: Check,
    /// The lifecycle rules.
    pub lifecycle: Check,
    /// Versioning and Object Lock.
    pub object_lock: Check,
    /// The public keys in the bucket.
    pub public_keys: Check,
    /// The direct S3 path's lockdown (not part of Ready).
    pub lockdown: Check,
}

impl PolicyChecks {
    /// Checks after the bucket could not be reached: the others wait for it.
    pub fn unreachable(bucket: Check) -> Self {
        let waiting = |what: &str| Check {
            passed: false,
            reason: "BucketUnreachable".into(),
            message: format!("{what} waits until the bucket is reachable (see BucketReachable)."),
        };
        Self {
            lifecycle: waiting("Applying the lifecycle rules"),
            object_lock: waiting("Checking Object Lock"),
            public_keys: waiting("Publishing the recording public keys"),
            lockdown: waiting("Locking the bucket down"),
            bucket,
        }
    }

    /// The first failed check, in the order a user should fix them (the lockdown is not one:
    /// recording works without it).
    pub fn first_failure(&self) -> Option<&Check> {
        [&self.bucket, &self.lifecycle, &self.object_lock, &self.public_keys]
            .into_iter()
            .find(|c| !c.passed)
    }
}

/// The policy's status: Ready first, then the checks. `ready_message` describes a Ready policy.
pub fn policy_status(
    checks: &PolicyChecks,
    ready_message: String,
    generation: Option<i64>,
    previous: Option<&RecordingPolicyStatus>,
    now: Timestamp,
) -> RecordingPolicyStatus {
    let ready = match checks.first_failure() {
        Some(failed) => failed.clone(),
        None => Check { passed: true, reason: "Ready".into(), message: ready_message },
    };
    let previous = previous.map(|s| s.conditions.as_slice()).unwrap_or_default();
    let condition = |type_: &str, check: &Check| condition(type_, check, generation, now, previous);
    RecordingPolicyStatus {
        observed_generation: generation,
        conditions: vec![
            condition(READY, &ready),
            condition(BUCKET_REACHABLE, &checks.bucket),
            condition(LIFECYCLE_APPLIED, &checks.lifecycle),
            condition(OBJECT_LOCK_VERIFIED, &checks.object_lock),
            condition(PUBLIC_KEYS_PUBLISHED, &checks.public_keys),
            condition(BUCKET_LOCKED_DOWN, &checks.lockdown),
        ],
    }
}

/// The condition of `type_` in `status`, if any.
pub fn find<'a>(status: Option<&'a RecordingPolicyStatus>, type_: &str) -> Option<&'a Condition> {
    status?.conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pass(reason: &str) -> Check {
        Check { passed: true, reason: reason.into(), message: "fine.".into() }
    }

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    #[test]
    fn an_unreachable_bucket_makes_ready_false_with_the_buckets_reason_and_message() {
        let checks = PolicyChecks::unreachable(Check {
            passed: false,
            reason: "BucketNotFound".into(),
            message: "Bucket audit does not exist: create it.".into(),
        });
        let status = policy_status(&checks, "ok".into(), Some(2), None, at("2026-11-29T20:00:00Z"));
        let ready = find(Some(&status), READY).unwrap();
        assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "BucketNotFound"));
        assert!(ready.message.contains("create it"));
        assert_eq!(ready.observed_generation, Some(2));
        assert_eq!(find(Some(&status), LIFECYCLE_APPLIED).unwrap().reason, "BucketUnreachable");
    }

    #[test]
    fn all_checks_passing_is_ready_and_an_unchanged_status_keeps_its_times() {
        let checks = PolicyChecks {
            bucket: pass("Reachable"),
            lifecycle: pass("Applied"),
            object_lock: pass("NotRequested"),
            public_keys: pass("Published"),
            lockdown: pass("Applied"),
        };
        let first = policy_status(&checks, "ok".into(), Some(1), None, at("2026-11-29T20:00:00Z"));
        assert_eq!(find(Some(&first), READY).unwrap().status, "True");
        let second =
            policy_status(&checks, "ok".into(), Some(1), Some(&first), at("2026-11-29T21:00:00Z"));
        assert_eq!(first, second);
    }

    #[test]
    fn a_bucket_that_is_not_locked_down_leaves_ready_true_and_says_so_in_its_own_condition() {
        let checks = PolicyChecks {
            bucket: pass("Reachable"),
            lifecycle: pass("Applied"),
            object_lock: pass("NotRequested"),
            public_keys: pass("Published"),
            lockdown: Check {
                passed: false,
                reason: "BucketPolicyFailed".into(),
                message: "needs s3:PutBucketPolicy.".into(),
            },
        };
        assert_eq!(checks.first_failure(), None);
        let status = policy_status(&checks, "ok".into(), Some(1), None, at("2026-11-29T20:00:00Z"));
        assert_eq!(find(Some(&status), READY).unwrap().status, "True");
        let lockdown = find(Some(&status), BUCKET_LOCKED_DOWN).unwrap();
        assert_eq!(
            (lockdown.status.as_str(), lockdown.reason.as_str()),
            ("False", "BucketPolicyFailed")
        );
    }
}
