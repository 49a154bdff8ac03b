//! Reading a namespace's sessions for the audit API: its RecordingPolicies' buckets (opened with
//! the credentials the RecordingPolicy controller uses), the sessions in them, their summaries and
//! the operator's verification against the keys the sessions' AgentConnections publish.

use std::collections::{BTreeMap, BTreeSet};

use chaperone_crds::{AgentConnection, RecordingPolicy, SessionVerification};
use chaperone_recording::{
    SessionLocation, SessionVerifier, Timestamp, TrustedKeys, VerifyOptions, merge_by_time,
};
use chaperone_recording_store::{
    BucketError, CatalogScope, LocateError, RecordingBucket, ReplicaRecording, SessionSummary,
    find_sessions, locate_session, session_keys, streams_from_objects, summarize,
};
use kube::api::ListParams;
use kube::{Api, Client};

use crate::recording_policy::controller::policy_bucket;

/// How far behind now a live session's newest digest may be before verification calls it
/// incomplete (the CLI's default `--grace`).
const DIGEST_GRACE: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// Why sessions could not be read. Each maps to an HTTP status and a message naming what to fix.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("reading RecordingPolicies or AgentConnections in {namespace}: {source}")]
    Kube {
        namespace: String,
        #[source]
        source: kube::Error,
    },
    #[error("RecordingPolicy {namespace}/{policy}: {message}")]
    Policy { namespace: String, policy: String, message: String },
    #[error("session {session} was not found in namespace {namespace}: {detail}")]
    NotFound { namespace: String, session: String, detail: String },
    #[error(
        "session {session} is recorded in several buckets of namespace {namespace} ({locations}); read it with kubectl chaperone --direct"
    )]
    Ambiguous { namespace: String, session: String, locations: String },
    #[error(transparent)]
    Bucket(#[from] BucketError),
}

/// Every distinct bucket and prefix the namespace's RecordingPolicies record to, opened with
/// each policy's credentials; empty when the namespace has no RecordingPolicy.
pub async fn namespace_buckets(
    client: &Client,
    namespace: &str,
) -> Result<Vec<RecordingBucket>, ReadError> {
    let kube = |source| ReadError::Kube { namespace: namespace.to_owned(), source };
    let policies = Api::<RecordingPolicy>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .map_err(kube)?;
    let mut seen = BTreeSet::new();
    let mut buckets = Vec::new();
    let mut sorted = policies.items;
    sorted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    for policy in sorted {
        let name = policy.metadata.name.clone().unwrap_or_default();
        let s3 = &policy.spec.s3;
        if !seen.insert((s3.endpoint.clone(), s3.bucket.clone(), s3.prefix.clone())) {
            continue;
        }
        match policy_bucket(client, namespace, &policy.spec).await {
            Ok(Ok(bucket)) => buckets.push(RecordingBucket::with_client(
                bucket.client,
                &bucket.bucket,
                &s3.prefix,
                &bucket.location,
                &bucket.credentials,
            )),
            Ok(Err(check)) => {
                return Err(ReadError::Policy {
                    namespace: namespace.to_owned(),
                    policy: name,
                    message: check.message,
                });
            }
            Err(error) => {
                return Err(ReadError::Policy {
                    namespace: namespace.to_owned(),
                    policy: name,
                    message: error.to_string(),
                });
            }
        }
    }
    Ok(buckets)
}

/// Namespaces that have a RecordingPolicy, for a list across namespaces.
pub async fn recorded_namespaces(client: &Client) -> Result<Vec<String>, ReadError> {
    let policies =
        Api::<RecordingPolicy>::all(client.clone())
            .list(&ListParams::default())
            .await
            .map_err(|source| ReadError::Kube { namespace: "all namespaces".to_owned(), source })?;
    let namespaces: BTreeSet<String> =
        policies.items.into_iter().filter_map(|p| p.metadata.namespace).collect();
    Ok(namespaces.into_iter().collect())
}

/// A session as read: its objects' streams, summary and verification.
pub struct ReadSession {
    pub summary: SessionSummary,
    pub verification: SessionVerification,
    pub streams: Vec<ReplicaRecording>,
}

impl ReadSession {
    /// Every event, all replicas merged by time, exactly as recorded (one JSON object each).
    pub fn events(&self) -> Vec<serde_json::Value> {
        merge_by_time(self.streams.iter().map(|s| s.events.clone()).collect())
            .into_iter()
            .filter_map(|e| serde_json::from_slice(&e.line).ok())
            .collect()
    }
}

/// Public keys AgentConnections publish, cached for one request.
#[derive(Default)]
pub struct ConnectionKeys {
    keys: BTreeMap<(String, String), Vec<String>>,
}

impl ConnectionKeys {
    async fn get(
        &mut self,
        client: &Client,
        namespace: &str,
        connection: &str,
    ) -> Result<&[String], ReadError> {
        let key = (namespace.to_owned(), connection.to_owned());
        if !self.keys.contains_key(&key) {
            let found = Api::<AgentConnection>::namespaced(client.clone(), namespace)
                .get_opt(connection)
                .await
                .map_err(|source| ReadError::Kube { namespace: namespace.to_owned(), source })?;
            let keys =
                found.and_then(|c| c.status).map(|s| s.recording_public_keys).unwrap_or_default();
            self.keys.insert(key.clone(), keys);
        }
        Ok(self.keys.get(&key).map(Vec::as_slice).unwrap_or_default())
    }
}

/// Reads, summarizes and verifies the session at `location`.
pub async fn read_session(
    client: &Client,
    bucket: &RecordingBucket,
    location: &SessionLocation,
    keys: &mut ConnectionKeys,
) -> Result<ReadSession, ReadError> {
    let object_keys = session_keys(bucket, location).await?;
    let objects = bucket.get_all(&object_keys).await?;
    let streams = streams_from_objects(bucket, &objects, &[]);
    let summary = summarize(location, bucket.url(&location.key_prefix()), &streams);
    let published = keys.get(client, location.namespace(), location.connection()).await?;
    let verification = verify(&objects, published, location);
    Ok(ReadSession { summary, verification, streams })
}

/// The verification of a session's objects against `published` keys.
fn verify(
    objects: &BTreeMap<String, Vec<u8>>,
    published: &[String],
    location: &SessionLocation,
) -> SessionVerification {
    let mut trusted = TrustedKeys::new();
    let mut key_ids = Vec::new();
    for text in published {
        if let Ok(id) = trusted.insert_encoded(text) {
            key_ids.push(id.to_string());
        }
    }
    if trusted.is_empty() {
        return SessionVerification {
            state: "Unverifiable".to_owned(),
            reason: format!(
                "AgentConnection {}/{} publishes no status.recordingPublicKeys (deleted, or not \
                 reconciled yet); verify with kubectl chaperone sessions verify --direct and keys \
                 you trust",
                location.namespace(),
                location.connection()
            ),
        };
    }
    let options = VerifyOptions { now: Timestamp::now(), digest_grace: DIGEST_GRACE };
    let report = SessionVerifier::new(trusted, options).verify(objects);
    if report.is_valid() {
        SessionVerification {
            state: "Verified".to_owned(),
            reason: format!(
                "{} objects: signatures, hash chain and digests intact with the keys of \
                 AgentConnection {}/{} ({})",
                objects.len(),
                location.namespace(),
                location.connection(),
                key_ids.join(", ")
            ),
        }
    } else {
        let problems: Vec<String> = report.problems.iter().take(5).map(|p| p.to_string()).collect();
        SessionVerification {
            state: "Failed".to_owned(),
            reason: format!(
                "{} problem(s): {}{}",
                report.problems.len(),
                problems.join("; "),
                if report.problems.len() > 5 { "; ..." } else { "" }
            ),
        }
    }
}

/// Every session of `namespace` in `bucket`, read and verified.
pub async fn list_sessions(
    client: &Client,
    bucket: &RecordingBucket,
    namespace: &str,
    keys: &mut ConnectionKeys,
) -> Result<Vec<ReadSession>, ReadError> {
    let scope = CatalogScope { namespace: Some(namespace.to_owned()), ..CatalogScope::default() };
    let mut sessions = Vec::new();
    for location in find_sessions(bucket, &scope).await? {
        sessions.push(read_session(client, bucket, &location, keys).await?);
    }
    Ok(sessions)
}

/// Finds session `session` of `namespace` among `buckets`: the bucket and its location.
pub async fn locate(
    buckets: &[RecordingBucket],
    namespace: &str,
    session: &str,
) -> Result<(RecordingBucket, SessionLocation), ReadError> {
    let mut found = Vec::new();
    let mut looked = Vec::new();
    for bucket in buckets {
        match locate_session(bucket, session, Some(namespace), None).await {
            Ok(location) => found.push((bucket.clone(), location)),
            Err(LocateError::Bucket(e)) => return Err(e.into()),
            Err(e) => looked.push(e.to_string()),
        }
    }
    match found.len() {
        1 => Ok(found.remove(0)),
        0 => Err(ReadError::NotFound {
            namespace: namespace.to_owned(),
            session: session.to_owned(),
            detail: if looked.is_empty() {
                format!(
                    "namespace {namespace} has no RecordingPolicy, so nothing is recorded there"
                )
            } else {
                looked.join("; ")
            },
        }),
        _ => Err(ReadError::Ambiguous {
            namespace: namespace.to_owned(),
            session: session.to_owned(),
            locations: found
                .iter()
                .map(|(b, l)| b.url(&l.key_prefix()))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}
