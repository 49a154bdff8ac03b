//! The bucket-policy statements a RecordingPolicy owns, and how they merge with the statements
//! already in the bucket's policy. Pure: the controller reads the bucket's policy, asks [`merge`]
//! what to write, and writes it only when [`PolicyPlan::changed`] says so.
//!
//! A policy owns exactly the statements whose `Sid` starts with [`owner_prefix`]
//! (`Chaperone` and 16 hex digits of the SHA-256 of `<namespace>/<policy>`: a Sid may only hold
//! letters and digits). Every other statement is kept as it is, in its place, and so are the
//! document's `Version` and `Id`. A policy's statements cover its namespace's recordings,
//! `arn:<partition>:s3:::<bucket>/<prefix>v1/<namespace>/*`, and all deny:
//!
//! - `DenyInsecureTransport`: every `s3:*` action over plain HTTP (`aws:SecureTransport` false),
//!   on the recordings and on the bucket itself.
//! - `DenyWritesButGateway`: writing objects, their ACLs, tags, retention and legal holds, and
//!   bypassing governance retention, to every principal but the writer (the identity the
//!   gateways record with).
//! - `DenyReadsButReaders`: `s3:GetObject` and `s3:GetObjectVersion` to every principal but the
//!   readers of `spec.access.readers` and the writer.
//! - `DenyDeletes`: `s3:DeleteObject` and `s3:DeleteObjectVersion` to everyone. Left out when
//!   `spec.objectLock` is set: S3 then refuses deletes of locked versions itself, and a policy
//!   that denies every delete would also stop the removal of unlocked ones. Lifecycle expiration
//!   is not subject to bucket policies, so the retention rule still removes recordings.

use chaperone_crds::{PRINCIPAL_ARN_PATTERN, RecordingPolicySpec};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use crate::recording_policy::lifecycle_rules::recordings_prefix;

/// The policy language version of a new bucket policy.
pub const POLICY_VERSION: &str = "2012-10-17";
/// Statement names after the owner prefix, in the order they are written.
pub const DENY_INSECURE_TRANSPORT: &str = "DenyInsecureTransport";
/// See the module documentation.
pub const DENY_WRITES_BUT_GATEWAY: &str = "DenyWritesButGateway";
/// See the module documentation.
pub const DENY_READS_BUT_READERS: &str = "DenyReadsButReaders";
/// See the module documentation.
pub const DENY_DELETES: &str = "DenyDeletes";

/// The actions only the writer may take on recordings.
pub const WRITE_ACTIONS: [&str; 10] = [
    "s3:PutObject",
    "s3:PutObjectAcl",
    "s3:PutObjectVersionAcl",
    "s3:PutObjectTagging",
    "s3:PutObjectVersionTagging",
    "s3:DeleteObjectTagging",
    "s3:DeleteObjectVersionTagging",
    "s3:PutObjectRetention",
    "s3:PutObjectLegalHold",
    "s3:BypassGovernanceRetention",
];
/// The actions only readers and the writer may take on recordings.
pub const READ_ACTIONS: [&str; 2] = ["s3:GetObject", "s3:GetObjectVersion"];
/// The actions no one may take on recordings (without Object Lock).
pub const DELETE_ACTIONS: [&str; 2] = ["s3:DeleteObject", "s3:DeleteObjectVersion"];

/// Why the statements cannot be planned, naming what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    /// A reader that is not an IAM role, user or root ARN.
    #[error(
        "spec.access.readers[{index}] is {value:?}, not an IAM role, user or root ARN such as \
         arn:aws:iam::123456789012:role/auditor{hint}"
    )]
    InvalidReader {
        /// Its index.
        index: usize,
        /// The value.
        value: String,
        /// More advice for a session ARN.
        hint: String,
    },
    /// A writer that is not an IAM role, user or root ARN.
    #[error(
        "spec.access.writer is {value:?}, not an IAM role, user or root ARN such as \
         arn:aws:iam::123456789012:role/recorder{hint}"
    )]
    InvalidWriter {
        /// The value.
        value: String,
        /// More advice for a session ARN.
        hint: String,
    },
    /// A caller identity whose IAM principal cannot be named.
    #[error(
        "the policy's credentials belong to {arn}, which is not an IAM user, an IAM role's \
         session or an account root, so the bucket policy cannot name it: set spec.access.writer \
         to the ARN of the IAM role or user the gateways record with"
    )]
    UnnamedCaller {
        /// The ARN sts:GetCallerIdentity returned.
        arn: String,
    },
}

/// Why the bucket's current policy cannot be merged with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyDocumentError {
    /// Not JSON, or not an object with a `Statement`.
    #[error(
        "the bucket's policy is not a JSON object whose Statement is a statement or a list of \
         them ({0}): fix it by hand (aws s3api get-bucket-policy), then the operator merges its \
         statements"
    )]
    Unreadable(String),
}

/// What to write back to the bucket.
#[derive(Clone, Debug, PartialEq)]
pub struct PolicyPlan {
    /// The whole policy document to put, or `None` to delete the bucket policy (nothing remains).
    pub document: Option<String>,
    /// Whether the bucket's owned statements differ from the wanted ones (write only then).
    pub changed: bool,
    /// How many statements the policy does not own (kept untouched).
    pub foreign: usize,
}

/// The Sid prefix marking the statements of policy `namespace/name`. Sids may only hold letters
/// and digits, so the names are hashed; the prefix has a fixed length, so one policy's prefix
/// never starts another's.
pub fn owner_prefix(namespace: &str, name: &str) -> String {
    let digest = Sha256::digest(format!("{namespace}/{name}").as_bytes());
    let hash: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("Chaperone{hash}")
}

/// The AWS partition of a region: `aws-cn` in China, `aws-us-gov` in GovCloud, else `aws`.
pub fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// The ARN of the objects the policy's statements cover: the namespace's recordings.
pub fn recordings_arn(spec: &RecordingPolicySpec, namespace: &str) -> String {
    format!(
        "arn:{}:s3:::{}/{}*",
        partition(&spec.s3.region),
        spec.s3.bucket,
        recordings_prefix(spec, namespace)
    )
}

fn is_principal_arn(value: &str) -> bool {
    // Mirrors PRINCIPAL_ARN_PATTERN, which the CRD also checks, without a regex engine:
    // arn:aws[-x[-y]]:iam::<12 digits>:(role/...|user/...|root).
    let Some(rest) = value.strip_prefix("arn:") else { return false };
    let mut parts = rest.splitn(5, ':');
    let (Some(partition), Some(service), Some(region), Some(account), Some(resource)) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let partition_ok = partition == "aws"
        || partition.strip_prefix("aws-").is_some_and(|p| {
            p.split('-').all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_lowercase()))
        });
    let path_ok = |path: &str| {
        (1..=512).contains(&path.len())
            && path.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@_/-".contains(&b))
    };
    partition_ok
        && service == "iam"
        && region.is_empty()
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && (resource == "root"
            || resource.strip_prefix("role/").is_some_and(path_ok)
            || resource.strip_prefix("user/").is_some_and(path_ok))
}

/// Advice for a value that looks like an assumed-role session ARN.
fn session_hint(value: &str) -> String {
    match assumed_role(value) {
        Some((partition, account, role)) => format!(
            "; it is a session of a role: give the role's ARN, arn:{partition}:iam::{account}:role/{role}"
        ),
        None => format!(" (pattern {PRINCIPAL_ARN_PATTERN})"),
    }
}

/// `(partition, account, role name)` of `arn:<partition>:sts::<account>:assumed-role/<role>/<session>`.
fn assumed_role(arn: &str) -> Option<(&str, &str, &str)> {
    let rest = arn.strip_prefix("arn:")?;
    let mut parts = rest.splitn(5, ':');
    let (partition, service, _region, account, resource) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if service != "sts" {
        return None;
    }
    let role = resource.strip_prefix("assumed-role/")?.split('/').next()?;
    (!role.is_empty()).then_some((partition, account, role))
}

/// The `aws:PrincipalArn` patterns of the identity sts:GetCallerIdentity returned: a user or
/// root as it is; an assumed-role session as its role, `role/<name>` and `role/*/<name>` (STS
/// drops the role's path, and a role's name is unique in its account whatever its path).
pub fn writer_patterns(caller_arn: &str) -> Result<Vec<String>, AccessError> {
    if is_principal_arn(caller_arn) {
        return Ok(vec![caller_arn.to_owned()]);
    }
    match assumed_role(caller_arn) {
        Some((partition, account, role)) => Ok(vec![
            format!("arn:{partition}:iam::{account}:role/{role}"),
            format!("arn:{partition}:iam::{account}:role/*/{role}"),
        ]),
        None => Err(AccessError::UnnamedCaller { arn: caller_arn.to_owned() }),
    }
}

/// Checks `spec.access.writer`, when set, and returns it as the writer's one pattern.
pub fn configured_writer(writer: &str) -> Result<Vec<String>, AccessError> {
    if is_principal_arn(writer) {
        Ok(vec![writer.to_owned()])
    } else {
        Err(AccessError::InvalidWriter { value: writer.to_owned(), hint: session_hint(writer) })
    }
}

/// The statements policy `namespace/name` wants in its bucket's policy, `writer` being the
/// writer's `aws:PrincipalArn` patterns ([`writer_patterns`]). Empty when the spec has no
/// `access` or `access.manageBucketPolicy` is false.
pub fn desired_statements(
    namespace: &str,
    name: &str,
    spec: &RecordingPolicySpec,
    writer: &[String],
) -> Result<Vec<Value>, AccessError> {
    let Some(access) = spec.access.as_ref().filter(|a| a.manage_bucket_policy) else {
        return Ok(Vec::new());
    };
    for (index, reader) in access.readers.iter().enumerate() {
        if !is_principal_arn(reader) {
            return Err(AccessError::InvalidReader {
                index,
                value: reader.clone(),
                hint: session_hint(reader),
            });
        }
    }
    let owner = owner_prefix(namespace, name);
    let objects = recordings_arn(spec, namespace);
    let bucket = format!("arn:{}:s3:::{}", partition(&spec.s3.region), spec.s3.bucket);
    let mut readers: Vec<String> = access.readers.iter().chain(writer).cloned().collect();
    readers.sort();
    readers.dedup();
    // Every statement denies, to anyone, what its condition does not exempt.
    let deny = |sid: &str, action: Value, resource: Value, condition: Option<Value>| {
        let mut statement = json!({
            "Sid": format!("{owner}{sid}"),
            "Effect": "Deny",
            "Principal": "*",
            "Action": action,
            "Resource": resource,
        });
        if let Some(condition) = condition {
            statement["Condition"] = condition;
        }
        statement
    };
    let mut statements = vec![
        deny(
            DENY_INSECURE_TRANSPORT,
            json!("s3:*"),
            json!([bucket, objects]),
            Some(json!({"Bool": {"aws:SecureTransport": "false"}})),
        ),
        deny(
            DENY_WRITES_BUT_GATEWAY,
            json!(WRITE_ACTIONS),
            json!(objects),
            Some(json!({"ArnNotLike": {"aws:PrincipalArn": writer}})),
        ),
        deny(
            DENY_READS_BUT_READERS,
            json!(READ_ACTIONS),
            json!(objects),
            Some(json!({"ArnNotLike": {"aws:PrincipalArn": readers}})),
        ),
    ];
    if spec.object_lock.is_none() {
        statements.push(deny(DENY_DELETES, json!(DELETE_ACTIONS), json!(objects), None));
    }
    Ok(statements)
}

/// Whether `statement` belongs to the owner with Sid prefix `owner`.
pub fn is_owned(statement: &Value, owner: &str) -> bool {
    statement.get("Sid").and_then(Value::as_str).is_some_and(|sid| sid.starts_with(owner))
}

/// A statement in a form where equal meanings compare equal: a one-element list is its element,
/// lists of strings are sorted (S3 may hand a policy back reformatted).
fn normalized(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), normalized(v))).collect())
        }
        Value::Array(items) => {
            let mut items: Vec<Value> = items.iter().map(normalized).collect();
            if items.iter().all(Value::is_string) {
                items.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
                items.dedup();
            }
            if items.len() == 1 { items.remove(0) } else { Value::Array(items) }
        }
        other => other.clone(),
    }
}

/// The document and its statements, from the bucket's policy text (`None`: no policy).
fn parse(current: Option<&str>) -> Result<(Map<String, Value>, Vec<Value>), PolicyDocumentError> {
    let Some(text) = current.filter(|t| !t.trim().is_empty()) else {
        let mut document = Map::new();
        document.insert("Version".into(), json!(POLICY_VERSION));
        return Ok((document, Vec::new()));
    };
    let value: Value =
        serde_json::from_str(text).map_err(|e| PolicyDocumentError::Unreadable(e.to_string()))?;
    let Value::Object(mut document) = value else {
        return Err(PolicyDocumentError::Unreadable("not a JSON object".into()));
    };
    let statements = match document.remove("Statement") {
        None => Vec::new(),
        Some(Value::Array(items)) => items,
        Some(item @ Value::Object(_)) => vec![item],
        Some(_) => {
            return Err(PolicyDocumentError::Unreadable(
                "Statement is neither an object nor a list".into(),
            ));
        }
    };
    Ok((document, statements))
}

/// The statements of `current` (the bucket's policy text) that `owner` owns.
pub fn owned_statements(
    current: Option<&str>,
    owner: &str,
) -> Result<Vec<Value>, PolicyDocumentError> {
    let (_, statements) = parse(current)?;
    Ok(statements.into_iter().filter(|s| is_owned(s, owner)).collect())
}

/// The policy to write: `current`'s statements that `owner` does not own, in their places,
/// followed by `desired` (none on cleanup), with `current`'s `Version`, `Id` and other members.
/// `changed` is false when the bucket already has exactly the owned statements wanted, so a
/// second reconcile writes nothing. `document` is `None` when no statement remains.
pub fn merge(
    current: Option<&str>,
    owner: &str,
    desired: &[Value],
) -> Result<PolicyPlan, PolicyDocumentError> {
    let (mut document, statements) = parse(current)?;
    let (owned, foreign): (Vec<Value>, Vec<Value>) =
        statements.into_iter().partition(|s| is_owned(s, owner));
    let key = |s: &Value| s.get("Sid").and_then(Value::as_str).unwrap_or_default().to_owned();
    let mut have: Vec<Value> = owned.iter().map(normalized).collect();
    have.sort_by_key(key);
    let mut want: Vec<Value> = desired.iter().map(normalized).collect();
    want.sort_by_key(key);
    let changed = have != want;
    let count = foreign.len();
    let all: Vec<Value> = foreign.into_iter().chain(desired.iter().cloned()).collect();
    if all.is_empty() {
        return Ok(PolicyPlan { document: None, changed, foreign: 0 });
    }
    document.entry("Version").or_insert_with(|| json!(POLICY_VERSION));
    document.insert("Statement".into(), Value::Array(all));
    let text = serde_json::to_string(&Value::Object(document))
        .map_err(|e| PolicyDocumentError::Unreadable(e.to_string()))?;
    Ok(PolicyPlan { document: Some(text), changed, foreign: count })
}

/// The Sids of `statements`, for conditions and events.
pub fn sids(statements: &[Value]) -> Vec<String> {
    statements.iter().filter_map(|s| s.get("Sid")?.as_str().map(str::to_owned)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRITER: &str = "arn:aws:iam::123456789012:user/chaperone-gateway";
    const READER: &str = "arn:aws:iam::123456789012:role/auditor";

    fn spec(access: Value, object_lock: bool) -> RecordingPolicySpec {
        let mut spec = json!({
            "s3": {"bucket": "audit", "prefix": "agents/", "region": "us-east-1"},
            "retention": {"days": 30},
            "access": access,
        });
        if object_lock {
            spec["objectLock"] = json!({"mode": "Governance", "days": 10});
        }
        serde_json::from_value(spec).unwrap()
    }

    fn foreign() -> Value {
        json!({
            "Sid": "TeamAuditRead",
            "Effect": "Allow",
            "Principal": {"AWS": "arn:aws:iam::123456789012:role/team"},
            "Action": "s3:GetObject",
            "Resource": "arn:aws:s3:::audit/reports/*",
        })
    }

    fn document(statements: Vec<Value>) -> String {
        json!({"Version": "2008-10-17", "Id": "team", "Statement": statements}).to_string()
    }

    fn wanted(readers: &[&str], object_lock: bool) -> Vec<Value> {
        desired_statements(
            "team-a",
            "default",
            &spec(json!({"readers": readers}), object_lock),
            &writer_patterns(WRITER).unwrap(),
        )
        .unwrap()
    }

    fn statement<'a>(statements: &'a [Value], name: &str) -> &'a Value {
        statements
            .iter()
            .find(|s| s["Sid"].as_str().unwrap().ends_with(name))
            .unwrap_or_else(|| panic!("no {name} in {statements:?}"))
    }

    #[test]
    fn the_statements_cover_the_namespaces_recordings_and_name_the_writer_and_readers() {
        let statements = wanted(&[READER], false);
        let owner = owner_prefix("team-a", "default");
        assert_eq!(
            sids(&statements),
            [
                format!("{owner}DenyInsecureTransport"),
                format!("{owner}DenyWritesButGateway"),
                format!("{owner}DenyReadsButReaders"),
                format!("{owner}DenyDeletes"),
            ]
        );
        assert!(statements.iter().all(|s| s["Effect"] == "Deny" && s["Principal"] == "*"));
        let objects = "arn:aws:s3:::audit/agents/v1/team-a/*";
        let tls = statement(&statements, DENY_INSECURE_TRANSPORT);
        assert_eq!(tls["Resource"], json!(["arn:aws:s3:::audit", objects]));
        assert_eq!(tls["Condition"], json!({"Bool": {"aws:SecureTransport": "false"}}));
        let writes = statement(&statements, DENY_WRITES_BUT_GATEWAY);
        assert_eq!(writes["Resource"], objects);
        assert_eq!(writes["Condition"]["ArnNotLike"]["aws:PrincipalArn"], json!([WRITER]));
        assert!(writes["Action"].as_array().unwrap().contains(&json!("s3:PutObject")));
        let reads = statement(&statements, DENY_READS_BUT_READERS);
        assert_eq!(reads["Condition"]["ArnNotLike"]["aws:PrincipalArn"], json!([READER, WRITER]));
        assert_eq!(reads["Action"], json!(["s3:GetObject", "s3:GetObjectVersion"]));
        let deletes = statement(&statements, DENY_DELETES);
        assert!(deletes.get("Condition").is_none(), "no one deletes recordings: {deletes}");
    }

    #[test]
    fn with_object_lock_there_is_no_delete_statement() {
        let statements = wanted(&[], true);
        assert_eq!(statements.len(), 3);
        assert!(!sids(&statements).iter().any(|s| s.ends_with(DENY_DELETES)));
    }

    #[test]
    fn without_access_or_with_the_policy_unmanaged_nothing_is_wanted() {
        let writer = writer_patterns(WRITER).unwrap();
        let unmanaged = spec(json!({"readers": [READER], "manageBucketPolicy": false}), false);
        assert_eq!(
            desired_statements("ns", "p", &unmanaged, &writer).unwrap(),
            Vec::<Value>::new()
        );
        let mut none = unmanaged.clone();
        none.access = None;
        assert_eq!(desired_statements("ns", "p", &none, &writer).unwrap(), Vec::<Value>::new());
    }

    #[test]
    fn foreign_statements_and_the_version_are_kept_in_place_and_owned_ones_replaced() {
        let owner = owner_prefix("team-a", "default");
        let other_policy = desired_statements(
            "team-a",
            "other",
            &spec(json!({}), false),
            &writer_patterns(WRITER).unwrap(),
        )
        .unwrap();
        let mut current = vec![foreign()];
        current.extend(wanted(&[], false));
        current.push(other_policy[0].clone());
        let new = wanted(&[READER], false);
        let plan = merge(Some(&document(current)), &owner, &new).unwrap();
        assert!(plan.changed);
        assert_eq!(plan.foreign, 2, "another policy's statement is not ours");
        let written: Value = serde_json::from_str(&plan.document.unwrap()).unwrap();
        assert_eq!(written["Version"], "2008-10-17");
        assert_eq!(written["Id"], "team");
        let statements = written["Statement"].as_array().unwrap();
        assert_eq!(statements[0], foreign());
        assert_eq!(statements[1], other_policy[0]);
        assert_eq!(&statements[2..], new.as_slice());
    }

    #[test]
    fn a_bucket_that_already_has_the_statements_needs_no_write_even_reformatted() {
        let owner = owner_prefix("team-a", "default");
        let mut statements = wanted(&[READER], false);
        // S3 may hand back a one-element list as a string, and lists in another order.
        statements[1]["Condition"]["ArnNotLike"]["aws:PrincipalArn"] = json!(WRITER);
        statements[2]["Action"] = json!(["s3:GetObjectVersion", "s3:GetObject"]);
        statements.insert(0, foreign());
        let plan = merge(Some(&document(statements)), &owner, &wanted(&[READER], false)).unwrap();
        assert!(!plan.changed);
        let changed = merge(
            Some(&document(wanted(&[READER], false))),
            &owner,
            &wanted(&[READER, "arn:aws:iam::123456789012:user/bob"], false),
        )
        .unwrap();
        assert!(changed.changed, "a new reader is a change");
    }

    #[test]
    fn a_bucket_without_a_policy_gets_a_new_one_and_cleanup_removes_only_the_owned_statements() {
        let owner = owner_prefix("team-a", "default");
        let fresh = merge(None, &owner, &wanted(&[], false)).unwrap();
        assert!(fresh.changed);
        let written: Value = serde_json::from_str(fresh.document.as_deref().unwrap()).unwrap();
        assert_eq!(written["Version"], POLICY_VERSION);
        assert_eq!(written["Statement"].as_array().unwrap().len(), 4);

        let mut statements = wanted(&[], false);
        statements.push(foreign());
        let cleanup = merge(Some(&document(statements)), &owner, &[]).unwrap();
        assert!(cleanup.changed);
        let left: Value = serde_json::from_str(&cleanup.document.unwrap()).unwrap();
        assert_eq!(left["Statement"], json!([foreign()]));

        let only_ours = merge(Some(&document(wanted(&[], false))), &owner, &[]).unwrap();
        assert_eq!((only_ours.document, only_ours.changed), (None, true), "delete the policy");
        assert!(!merge(Some(&document(vec![foreign()])), &owner, &[]).unwrap().changed);
        assert!(!merge(None, &owner, &[]).unwrap().changed);
    }

    #[test]
    fn a_single_statement_object_is_read_as_a_list_and_garbage_is_refused_with_advice() {
        let owner = owner_prefix("ns", "p");
        let single = json!({"Version": POLICY_VERSION, "Statement": foreign()}).to_string();
        let plan = merge(Some(&single), &owner, &[]).unwrap();
        assert_eq!(plan.foreign, 1);
        assert!(!plan.changed);
        for bad in ["not json", "[1]", r#"{"Statement": 3}"#] {
            let error = merge(Some(bad), &owner, &[]).unwrap_err();
            assert!(error.to_string().contains("fix it by hand"), "{error}");
        }
    }

    #[test]
    fn readers_must_be_iam_principals_and_a_session_arn_names_its_role() {
        let writer = writer_patterns(WRITER).unwrap();
        let session = "arn:aws:sts::123456789012:assumed-role/auditor/alice";
        let error = desired_statements(
            "ns",
            "p",
            &spec(json!({"readers": [READER, session]}), false),
            &writer,
        )
        .unwrap_err();
        let text = error.to_string();
        assert!(text.contains("spec.access.readers[1]"), "{text}");
        assert!(text.contains("arn:aws:iam::123456789012:role/auditor"), "{text}");
        for bad in [
            "*",
            "arn:aws:iam::123:role/x",
            "arn:aws:s3:::audit",
            "arn:aws:iam::123456789012:group/g",
        ] {
            assert!(
                desired_statements("ns", "p", &spec(json!({"readers": [bad]}), false), &writer)
                    .is_err(),
                "{bad}"
            );
        }
        for good in [
            "arn:aws:iam::123456789012:root",
            "arn:aws-us-gov:iam::123456789012:role/path/to/auditor",
            "arn:aws-iso-b:iam::123456789012:user/bob@example.com",
        ] {
            assert!(is_principal_arn(good), "{good}");
        }
        assert!(configured_writer(session).unwrap_err().to_string().contains("role/auditor"));
        assert_eq!(configured_writer(READER).unwrap(), [READER]);
    }

    #[test]
    fn the_writer_of_a_role_session_is_its_role_at_any_path_and_of_a_user_the_user() {
        assert_eq!(writer_patterns(WRITER).unwrap(), [WRITER]);
        assert_eq!(
            writer_patterns("arn:aws:sts::123456789012:assumed-role/recorder/i-0abc").unwrap(),
            [
                "arn:aws:iam::123456789012:role/recorder",
                "arn:aws:iam::123456789012:role/*/recorder"
            ]
        );
        let federated =
            writer_patterns("arn:aws:sts::123456789012:federated-user/bob").unwrap_err();
        assert!(federated.to_string().contains("set spec.access.writer"), "{federated}");
    }

    #[test]
    fn owner_prefixes_are_letters_and_digits_of_one_length_and_distinct() {
        let a = owner_prefix("team-a", "default");
        let b = owner_prefix("team-a", "default2");
        assert_ne!(a, b);
        assert_eq!(a.len(), b.len());
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()), "{a}");
        assert_eq!(partition("cn-north-1"), "aws-cn");
        assert_eq!(partition("us-gov-west-1"), "aws-us-gov");
    }
}
