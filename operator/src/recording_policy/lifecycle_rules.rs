//! The bucket lifecycle rules a RecordingPolicy owns, and how they merge with the rules already on
//! the bucket. Pure: the controller reads the bucket's configuration, asks [`merge`] what to write,
//! and writes it only when [`LifecyclePlan::changed`] says so.
//!
//! A policy owns exactly the rules whose ID starts with [`owner_prefix`]
//! (`chaperone:<namespace>/<policy>:`). Every other rule on the bucket is kept as it is, in its
//! place. A policy's one rule covers its namespace's recordings, `<prefix>v1/<namespace>/`: it
//! expires objects after `retention.days`, moves them through `retention.transitions`, removes
//! versions that stopped being current a day later (so a versioned bucket keeps nothing past the
//! retention either), and aborts multipart uploads left incomplete for a day.

use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, ExpirationStatus, LifecycleExpiration, LifecycleRule,
    LifecycleRuleFilter, NoncurrentVersionExpiration, Transition, TransitionStorageClass,
};
use chaperone_crds::{RecordingPolicySpec, StorageClass};
use sha2::{Digest, Sha256};

/// Longest rule ID S3 accepts.
pub const MAX_RULE_ID_LEN: usize = 255;
/// Days after which a version that stopped being current is removed.
pub const NONCURRENT_VERSION_DAYS: i32 = 1;
/// Days after which an incomplete multipart upload is aborted.
pub const ABORT_INCOMPLETE_UPLOAD_DAYS: i32 = 1;
/// Storage classes S3 moves objects to only after at least 30 days.
const THIRTY_DAY_MINIMUM: [StorageClass; 2] = [StorageClass::STANDARD_IA, StorageClass::ONEZONE_IA];

/// The rule a policy wants, in the terms this module compares.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedRule {
    /// The rule ID, starting with the policy's [`owner_prefix`].
    pub id: String,
    /// The key prefix the rule covers.
    pub prefix: String,
    /// Days after creation at which objects expire.
    pub expiration_days: i32,
    /// `(days, storage class)` transitions, by days.
    pub transitions: Vec<(i32, String)>,
    /// Days after which noncurrent versions are removed.
    pub noncurrent_days: Option<i32>,
    /// Days after which incomplete multipart uploads are aborted.
    pub abort_incomplete_days: Option<i32>,
    /// Whether the rule is enabled.
    pub enabled: bool,
}

/// A retention S3 would refuse, with the field to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RetentionError {
    /// A transition at or after expiry.
    #[error(
        "spec.retention.transitions[{index}] moves objects to {class} after {days} days, but they \
         expire after {expiry} days (spec.retention.days): a transition must come before expiry"
    )]
    TransitionAfterExpiry {
        /// The transition's index.
        index: usize,
        /// Its storage class.
        class: String,
        /// Its days.
        days: i32,
        /// `retention.days`.
        expiry: i32,
    },
    /// STANDARD_IA and ONEZONE_IA need 30 days.
    #[error(
        "spec.retention.transitions[{index}] moves objects to {class} after {days} days: S3 moves \
         objects to {class} only after at least 30 days"
    )]
    TooEarlyForClass {
        /// The transition's index.
        index: usize,
        /// Its storage class.
        class: String,
        /// Its days.
        days: i32,
    },
    /// Two transitions to one class.
    #[error(
        "spec.retention.transitions lists {class} twice: keep one transition per storage class"
    )]
    DuplicateClass {
        /// The repeated storage class.
        class: String,
    },
}

/// What to write back to the bucket.
#[derive(Clone, Debug, PartialEq)]
pub struct LifecyclePlan {
    /// The whole configuration: foreign rules in their places, then the policy's.
    pub rules: Vec<LifecycleRule>,
    /// Whether `rules` differs from what the bucket has (write only then).
    pub changed: bool,
    /// How many rules the policy does not own (kept untouched).
    pub foreign: usize,
}

/// The ID prefix marking the rules of policy `namespace/name`. Names are DNS subdomains, which
/// never contain `:`, so one policy's prefix never starts another's. Very long names are shortened
/// with a hash so that IDs stay within S3's 255 characters.
pub fn owner_prefix(namespace: &str, name: &str) -> String {
    let full = format!("chaperone:{namespace}/{name}:");
    // Room for the longest rule suffix ("retention").
    if full.len() + "retention".len() <= MAX_RULE_ID_LEN {
        return full;
    }
    let digest = Sha256::digest(format!("{namespace}/{name}").as_bytes());
    let hash: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
    let keep = (MAX_RULE_ID_LEN - "retention".len() - "chaperone:".len() - 15)
        .saturating_sub(namespace.len());
    let short: String = name.chars().take(keep).collect();
    format!("chaperone:{namespace}/{short}~{hash}:")
}

/// Where the namespace's recordings live under the policy's prefix: `<prefix>v1/<namespace>/`.
pub fn recordings_prefix(spec: &RecordingPolicySpec, namespace: &str) -> String {
    format!("{}v1/{namespace}/", spec.s3.prefix)
}

/// The rule policy `namespace/name` wants on its bucket, or why S3 would refuse its retention.
pub fn desired_rule(
    namespace: &str,
    name: &str,
    spec: &RecordingPolicySpec,
) -> Result<OwnedRule, RetentionError> {
    let retention = &spec.retention;
    let mut seen = Vec::new();
    for (index, transition) in retention.transitions.iter().enumerate() {
        let class = storage_class_name(transition.storage_class).to_owned();
        if transition.days >= retention.days {
            return Err(RetentionError::TransitionAfterExpiry {
                index,
                class,
                days: transition.days,
                expiry: retention.days,
            });
        }
        if THIRTY_DAY_MINIMUM.contains(&transition.storage_class) && transition.days < 30 {
            return Err(RetentionError::TooEarlyForClass { index, class, days: transition.days });
        }
        if seen.contains(&class) {
            return Err(RetentionError::DuplicateClass { class });
        }
        seen.push(class);
    }
    let mut transitions: Vec<(i32, String)> = retention
        .transitions
        .iter()
        .map(|t| (t.days, storage_class_name(t.storage_class).to_owned()))
        .collect();
    transitions.sort();
    Ok(OwnedRule {
        id: format!("{}retention", owner_prefix(namespace, name)),
        prefix: recordings_prefix(spec, namespace),
        expiration_days: retention.days,
        transitions,
        noncurrent_days: Some(NONCURRENT_VERSION_DAYS),
        abort_incomplete_days: Some(ABORT_INCOMPLETE_UPLOAD_DAYS),
        enabled: true,
    })
}

/// The S3 name of a storage class.
pub fn storage_class_name(class: StorageClass) -> &'static str {
    match class {
        StorageClass::STANDARD_IA => "STANDARD_IA",
        StorageClass::ONEZONE_IA => "ONEZONE_IA",
        StorageClass::INTELLIGENT_TIERING => "INTELLIGENT_TIERING",
        StorageClass::GLACIER_IR => "GLACIER_IR",
        StorageClass::GLACIER => "GLACIER",
        StorageClass::DEEP_ARCHIVE => "DEEP_ARCHIVE",
    }
}

impl OwnedRule {
    /// The rule as the SDK writes it.
    pub fn to_sdk(&self) -> LifecycleRule {
        let mut builder = LifecycleRule::builder()
            .id(&self.id)
            .filter(LifecycleRuleFilter::builder().prefix(&self.prefix).build())
            .status(if self.enabled {
                ExpirationStatus::Enabled
            } else {
                ExpirationStatus::Disabled
            })
            .expiration(LifecycleExpiration::builder().days(self.expiration_days).build());
        for (days, class) in &self.transitions {
            builder = builder.transitions(
                Transition::builder()
                    .days(*days)
                    .storage_class(TransitionStorageClass::from(class.as_str()))
                    .build(),
            );
        }
        if let Some(days) = self.noncurrent_days {
            builder = builder.noncurrent_version_expiration(
                NoncurrentVersionExpiration::builder().noncurrent_days(days).build(),
            );
        }
        if let Some(days) = self.abort_incomplete_days {
            builder = builder.abort_incomplete_multipart_upload(
                AbortIncompleteMultipartUpload::builder().days_after_initiation(days).build(),
            );
        }
        // `build` fails only without a status, which is always set above.
        builder.build().expect("a lifecycle rule with a status builds")
    }

    /// An SDK rule in this module's terms (a legacy rule's top-level `Prefix`, deprecated but still
    /// returned for rules written that way, counts as its filter's prefix;
    /// fields the operator never writes are ignored).
    #[allow(deprecated)]
    pub fn from_sdk(rule: &LifecycleRule) -> Self {
        let mut transitions: Vec<(i32, String)> = rule
            .transitions()
            .iter()
            .map(|t| {
                (
                    t.days().unwrap_or_default(),
                    t.storage_class().map(|c| c.as_str().to_owned()).unwrap_or_default(),
                )
            })
            .collect();
        transitions.sort();
        Self {
            id: rule.id().unwrap_or_default().to_owned(),
            prefix: rule
                .filter()
                .and_then(LifecycleRuleFilter::prefix)
                .or(rule.prefix())
                .unwrap_or_default()
                .to_owned(),
            expiration_days: rule.expiration().and_then(LifecycleExpiration::days).unwrap_or(0),
            transitions,
            noncurrent_days: rule
                .noncurrent_version_expiration()
                .and_then(NoncurrentVersionExpiration::noncurrent_days),
            abort_incomplete_days: rule
                .abort_incomplete_multipart_upload()
                .and_then(AbortIncompleteMultipartUpload::days_after_initiation),
            enabled: *rule.status() == ExpirationStatus::Enabled,
        }
    }
}

/// Whether `rule` belongs to the owner with ID prefix `owner`.
pub fn is_owned(rule: &LifecycleRule, owner: &str) -> bool {
    rule.id().is_some_and(|id| id.starts_with(owner))
}

/// The configuration to write: `current`'s rules that `owner` does not own, in their places,
/// followed by `desired` (none on cleanup). `changed` is false when the bucket already has exactly
/// the owned rules wanted, so a second reconcile writes nothing.
pub fn merge(current: &[LifecycleRule], owner: &str, desired: &[OwnedRule]) -> LifecyclePlan {
    let foreign: Vec<LifecycleRule> =
        current.iter().filter(|r| !is_owned(r, owner)).cloned().collect();
    let mut have: Vec<OwnedRule> =
        current.iter().filter(|r| is_owned(r, owner)).map(OwnedRule::from_sdk).collect();
    have.sort_by(|a, b| a.id.cmp(&b.id));
    let mut want = desired.to_vec();
    want.sort_by(|a, b| a.id.cmp(&b.id));
    let changed = have != want;
    let count = foreign.len();
    let rules = foreign.into_iter().chain(want.iter().map(OwnedRule::to_sdk)).collect();
    LifecyclePlan { rules, changed, foreign: count }
}

/// A one-line description of `rule`, for conditions and events.
pub fn describe(rule: &OwnedRule) -> String {
    let mut text = format!(
        "rule {} on prefix {}: expire after {} days",
        rule.id, rule.prefix, rule.expiration_days
    );
    for (days, class) in &rule.transitions {
        text.push_str(&format!(", to {class} after {days} days"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(days: i32, transitions: serde_json::Value) -> RecordingPolicySpec {
        serde_json::from_value(serde_json::json!({
            "s3": {"bucket": "audit", "prefix": "agents/", "region": "us-east-1"},
            "retention": {"days": days, "transitions": transitions},
        }))
        .unwrap()
    }

    fn foreign(id: &str) -> LifecycleRule {
        LifecycleRule::builder()
            .id(id)
            .filter(LifecycleRuleFilter::builder().prefix("logs/").build())
            .status(ExpirationStatus::Enabled)
            .expiration(LifecycleExpiration::builder().days(7).build())
            .build()
            .unwrap()
    }

    #[test]
    fn the_rule_covers_the_namespaces_recordings_with_the_retention_and_transitions() {
        let rule = desired_rule(
            "team-a",
            "default",
            &spec(400, serde_json::json!([{"days": 30, "storageClass": "GLACIER_IR"}])),
        )
        .unwrap();
        assert_eq!(rule.id, "chaperone:team-a/default:retention");
        assert_eq!(rule.prefix, "agents/v1/team-a/");
        assert_eq!(rule.expiration_days, 400);
        assert_eq!(rule.transitions, [(30, "GLACIER_IR".to_owned())]);
        assert_eq!(rule.noncurrent_days, Some(1));
        assert_eq!(rule.abort_incomplete_days, Some(1));
        assert_eq!(OwnedRule::from_sdk(&rule.to_sdk()), rule);
    }

    #[test]
    fn foreign_rules_are_kept_in_place_and_owned_ones_replaced() {
        let owner = owner_prefix("team-a", "default");
        let old = desired_rule("team-a", "default", &spec(30, serde_json::json!([]))).unwrap();
        let new = desired_rule("team-a", "default", &spec(60, serde_json::json!([]))).unwrap();
        let other_policy =
            desired_rule("team-a", "default2", &spec(10, serde_json::json!([]))).unwrap();
        let current = vec![foreign("logs"), old.to_sdk(), other_policy.to_sdk()];
        let plan = merge(&current, &owner, std::slice::from_ref(&new));
        assert!(plan.changed);
        assert_eq!(plan.foreign, 2, "another policy's rule is not ours");
        let ids: Vec<&str> = plan.rules.iter().filter_map(LifecycleRule::id).collect();
        assert_eq!(ids, ["logs", "chaperone:team-a/default2:retention", &new.id]);
        assert_eq!(plan.rules[0], foreign("logs"));
        assert_eq!(OwnedRule::from_sdk(&plan.rules[2]).expiration_days, 60);
    }

    #[test]
    fn a_bucket_that_already_has_the_rule_needs_no_write() {
        let owner = owner_prefix("team-a", "default");
        let rule = desired_rule("team-a", "default", &spec(30, serde_json::json!([]))).unwrap();
        let plan = merge(&[foreign("logs"), rule.to_sdk()], &owner, std::slice::from_ref(&rule));
        assert!(!plan.changed);
    }

    #[test]
    fn cleanup_removes_only_the_owned_rules() {
        let owner = owner_prefix("team-a", "default");
        let rule = desired_rule("team-a", "default", &spec(30, serde_json::json!([]))).unwrap();
        let plan = merge(&[rule.to_sdk(), foreign("logs")], &owner, &[]);
        assert!(plan.changed);
        assert_eq!(plan.rules, [foreign("logs")]);
        assert!(!merge(&[foreign("logs")], &owner, &[]).changed);
    }

    #[test]
    fn retentions_s3_would_refuse_name_the_field_to_fix() {
        let late = desired_rule(
            "ns",
            "p",
            &spec(30, serde_json::json!([{"days": 30, "storageClass": "GLACIER"}])),
        )
        .unwrap_err();
        assert!(late.to_string().contains("spec.retention.transitions[0]"), "{late}");
        let early = desired_rule(
            "ns",
            "p",
            &spec(400, serde_json::json!([{"days": 10, "storageClass": "STANDARD_IA"}])),
        )
        .unwrap_err();
        assert!(matches!(early, RetentionError::TooEarlyForClass { .. }), "{early}");
        let twice = desired_rule(
            "ns",
            "p",
            &spec(
                400,
                serde_json::json!([
                    {"days": 40, "storageClass": "GLACIER"},
                    {"days": 50, "storageClass": "GLACIER"}
                ]),
            ),
        )
        .unwrap_err();
        assert!(matches!(twice, RetentionError::DuplicateClass { .. }), "{twice}");
    }

    #[test]
    fn long_names_give_ids_within_s3s_limit_that_stay_distinct() {
        let ns = "n".repeat(63);
        let a = owner_prefix(&ns, &"a".repeat(253));
        let b = owner_prefix(&ns, &format!("{}b", "a".repeat(252)));
        assert_ne!(a, b);
        assert!(a.len() + "retention".len() <= MAX_RULE_ID_LEN, "{}", a.len());
        assert!(!owner_prefix("ns", "p").starts_with(&owner_prefix("ns", "p2")));
    }
}
