//! The console's one way to sessions, on the same two paths as `sessions list`, `show` and
//! `verify`:
//!
//! - by default, the audit API (`audit.chaperone.dev`) through [`AuditClient`] with the
//!   kubeconfig's identity: the API server authorizes each read with RBAC (a 403 skips the
//!   namespace with its refusal), the operator logs it in the namespace's access log, and the
//!   badge is the operator's verification;
//! - with `--bucket` or `--recording-policy`, the recording bucket read directly (the catalog, the
//!   reader, the summary and the verifier) with the user's AWS identity. S3 knows nothing of
//!   Kubernetes RBAC, so before reading a namespace this path asks the API server
//!   (SelfSubjectAccessReview) whether the user may `list` `sessions` in `audit.chaperone.dev`
//!   there: the rule the audit API enforces.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use chaperone_crds::{Session, SessionVerification};
use chaperone_recording::{
    ApprovalDecision, EventBody, KeyId, RecordedEvent, SessionLocation, SessionVerifier, Timestamp,
    VerifyOptions, merge_by_time,
};
use kube::Client;
use serde::Serialize;
use tokio::sync::Mutex;

use crate::audit_client::{AuditApiError, AuditClient};
use crate::commands::verify::TrustSources;
use crate::commands::{RecordingSource, open_source};
use crate::console::ConsoleArgs;
use crate::console::access::{self, SESSIONS_GROUP, SESSIONS_RESOURCE, Skipped};
use crate::flags::{BucketFlags, ClusterFlags, SourceFlags, TrustFlags};
use crate::time_bound::parse_time_bound;
use chaperone_recording_store::{
    CatalogScope, ReplicaRecording, SessionSummary, TimeRange, find_sessions, locate_session,
    read_session, session_keys, summarize,
};

/// What the sessions list is narrowed to.
#[derive(Debug, Default, Clone)]
pub struct SessionFilter {
    pub namespace: Option<String>,
    pub connection: Option<String>,
    pub agent: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    /// `denied`: sessions with a denied call; `approved`: with an approved hold (direct path);
    /// `approvals`: with an approval decision (audit API, which counts decisions).
    pub calls: Option<String>,
}

/// Which session a page asks for: `id` of `namespace`, in `connection` when given.
#[derive(Debug, Clone)]
pub struct SessionKey {
    pub namespace: String,
    pub connection: Option<String>,
    pub id: String,
}

/// A session as the page lists and shows it: the audit API's Session object on both paths (the
/// direct path builds it from the recording's summary as the operator does), flattened, and what
/// only the direct path knows.
#[derive(Debug, Clone, Serialize)]
pub struct ListedSession {
    #[serde(flatten)]
    pub session: Session,
    /// Calls released by a reviewer's approval: the direct path counts them; the audit API
    /// counts approval decisions (`status.approvals`) and leaves this out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approved: Option<u64>,
    /// What could not be read (the direct path; the API serves what it could read).
    pub unreadable: Vec<String>,
}

impl ListedSession {
    /// A session the audit API served.
    pub fn from_api(session: Session) -> Self {
        Self { session, approved: None, unreadable: Vec::new() }
    }

    /// A session read from the bucket; its verification is left empty (the page asks for it
    /// when the session is opened).
    pub fn from_summary(summary: SessionSummary, approved: u64) -> Self {
        Self {
            session: summary.to_session(SessionVerification::default()),
            approved: Some(approved),
            unreadable: summary.unreadable,
        }
    }

    fn start(&self) -> Option<Timestamp> {
        self.session.status.start.as_deref().and_then(|s| Timestamp::parse(s).ok())
    }

    /// Whether the session passes `filter` (its namespace was chosen before the read); `range`
    /// bounds the start.
    fn passes(&self, filter: &SessionFilter, range: TimeRange) -> anyhow::Result<bool> {
        let st = &self.session.status;
        let given = |v: &Option<String>| v.clone().filter(|v| !v.is_empty());
        if given(&filter.connection).is_some_and(|c| c != st.connection)
            || given(&filter.agent)
                .is_some_and(|a| st.agent.as_ref().is_none_or(|x| x.service_account != a))
            || self.start().is_some_and(|t| !range.contains(t))
        {
            return Ok(false);
        }
        Ok(match filter.calls.as_deref() {
            Some("denied") => st.denied > 0,
            Some("approvals") => st.approvals > 0,
            Some("approved") => match self.approved {
                Some(approved) => approved > 0,
                None => anyhow::bail!(
                    "the audit API counts approval decisions, not approved calls: filter on calls=approvals, or start the console with --bucket or --recording-policy to read S3 directly"
                ),
            },
            _ => true,
        })
    }
}

/// Newest first (then by id, descending).
fn newest_first(sessions: &mut [ListedSession]) {
    sessions
        .sort_by_cached_key(|s| std::cmp::Reverse((s.start(), s.session.metadata.name.clone())));
}

/// One session read whole: its summary as the page shows it, and its events.
pub struct SessionRecording {
    pub summary: ListedSession,
    pub events: Vec<RecordedEvent>,
}

/// The verifier's answer.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// `intact`, `broken`, or `unverified` (no trusted keys were given or found).
    pub status: &'static str,
    pub problems: Vec<String>,
    pub keys: Vec<String>,
    /// Who verified: `operator` (the audit API's verification) or `console` (here, with the
    /// keys the console was given).
    pub by: &'static str,
    /// The operator's sentence about a verified session (which keys verified it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Which path sessions are read on.
pub enum SessionSource {
    /// The audit API, with the kubeconfig's identity.
    Api(AuditClient),
    /// The recording bucket (`--bucket` or `--recording-policy`).
    Direct(Box<DirectSource>),
}

/// The page's verdict for the operator's verification of a session.
pub fn operator_verdict(session: &Session) -> Verdict {
    let v = &session.status.verification;
    let (status, problems, detail) = match v.state.as_str() {
        "Verified" => ("intact", vec![], Some(v.reason.clone())),
        "Failed" => ("broken", vec![v.reason.clone()], None),
        "Unverifiable" => ("unverified", vec![v.reason.clone()], None),
        other => (
            "unverified",
            vec![format!("the operator answered verification state {other:?}: {}", v.reason)],
            None,
        ),
    };
    Verdict { status, problems, keys: vec![], by: "operator", detail }
}

impl SessionSource {
    pub fn new(args: &ConsoleArgs, cluster: &crate::cluster::Cluster) -> anyhow::Result<Self> {
        if args.recordings.bucket.is_some() || args.recordings.recording_policy.is_some() {
            Ok(Self::Direct(Box::new(DirectSource::new(args)?)))
        } else {
            let trust = &args.trust;
            if !trust.public_key.is_empty()
                || trust.public_keys_file.is_some()
                || trust.cluster_keys
            {
                anyhow::bail!(
                    "--public-key, --public-keys-file and --cluster-keys verify recordings the console reads from S3 itself: add --bucket or --recording-policy (without them, the console reads through the audit API and shows the operator's verification)"
                );
            }
            Ok(Self::Api(AuditClient::new(cluster)))
        }
    }

    /// `api` or `direct`: where sessions are read.
    pub fn via(&self) -> &'static str {
        match self {
            Self::Api(_) => "api",
            Self::Direct(_) => "direct",
        }
    }

    /// The sessions of `namespaces` that pass `filter`, newest first; namespaces left out (no
    /// RBAC, or unreadable) are returned with their reason.
    pub async fn list(
        &self,
        client: &Client,
        namespaces: &[String],
        filter: &SessionFilter,
    ) -> anyhow::Result<(Vec<ListedSession>, Vec<Skipped>)> {
        let range = time_range(filter)?;
        let mut listed = Vec::new();
        let mut skipped = Vec::new();
        for namespace in namespaces {
            if filter.namespace.as_ref().is_some_and(|n| n != namespace) {
                continue;
            }
            let found = match self {
                Self::Direct(direct) => {
                    direct.list_namespace(client, namespace, filter, range).await
                }
                Self::Api(api) => match api.list(Some(namespace)).await {
                    Ok(list) => Ok(list.items.into_iter().map(ListedSession::from_api).collect()),
                    // Not registered: the same for every namespace, so the page's error.
                    Err(e @ AuditApiError::NotRegistered) => return Err(for_the_console(e)),
                    Err(e) => Err(e.to_string()),
                },
            };
            match found {
                Ok(found) => {
                    for session in found {
                        if session.passes(filter, range)? {
                            listed.push(session);
                        }
                    }
                }
                Err(reason) => skipped.push(Skipped { namespace: namespace.clone(), reason }),
            }
        }
        newest_first(&mut listed);
        Ok((listed, skipped))
    }

    /// The session `key` names, every replica merged by time.
    pub async fn show(
        &self,
        client: &Client,
        key: &SessionKey,
    ) -> anyhow::Result<SessionRecording> {
        let api = match self {
            Self::Direct(direct) => return direct.show(client, key).await,
            Self::Api(api) => api,
        };
        let SessionKey { namespace, connection, id } = key;
        let session = api.get(namespace, id).await.map_err(for_the_console)?;
        if let Some(connection) = connection.as_ref().filter(|c| **c != session.status.connection) {
            anyhow::bail!(
                "session {id} of namespace {namespace} is of connection {:?}, not {connection:?}",
                session.status.connection
            );
        }
        let events = api.events(namespace, id).await.map_err(for_the_console)?;
        Ok(SessionRecording { summary: ListedSession::from_api(session), events })
    }

    /// The session's verification: the operator's (audit API), or the console's own with the
    /// keys it was given (direct path).
    pub async fn verify(&self, client: &Client, key: &SessionKey) -> anyhow::Result<Verdict> {
        match self {
            Self::Direct(direct) => direct.verify(client, key).await,
            Self::Api(api) => Ok(operator_verdict(
                &api.get(&key.namespace, &key.id).await.map_err(for_the_console)?,
            )),
        }
    }
}

/// The audit API's error as the console says it: the console's `--direct` is `--bucket` or
/// `--recording-policy`.
fn for_the_console(error: AuditApiError) -> anyhow::Error {
    match error {
        AuditApiError::NotRegistered => anyhow::anyhow!(
            "{error}; the console has no --direct: start it with --bucket (and --prefix, --region, --endpoint-url) or --recording-policy NAME"
        ),
        other => other.into(),
    }
}

/// The since/until bounds of `filter`.
fn time_range(filter: &SessionFilter) -> anyhow::Result<TimeRange> {
    let now = Timestamp::now();
    let bound = |text: &Option<String>, what: &str| {
        text.as_deref()
            .filter(|t| !t.trim().is_empty())
            .map(|t| parse_time_bound(t.trim(), now))
            .transpose()
            .with_context(|| format!("reading the {what} filter"))
    };
    Ok(TimeRange { since: bound(&filter.since, "since")?, until: bound(&filter.until, "until")? })
}

/// The recording bucket, opened per namespace and kept.
pub struct DirectSource {
    recordings: BucketFlags,
    cluster: ClusterFlags,
    trust: TrustFlags,
    opened: Mutex<HashMap<String, Arc<RecordingSource>>>,
}

impl DirectSource {
    pub fn new(args: &ConsoleArgs) -> anyhow::Result<Self> {
        let trust = &args.trust;
        // The grace is read now so that a bad value fails at start, not on the first page.
        trust.grace()?;
        Ok(Self {
            recordings: args.recordings.clone(),
            cluster: ClusterFlags {
                namespace: None,
                kubeconfig: args.kubeconfig.clone(),
                context: args.context.clone(),
            },
            trust: TrustFlags {
                public_key: trust.public_key.clone(),
                public_keys_file: trust.public_keys_file.clone(),
                cluster_keys: trust.cluster_keys,
                grace: trust.grace.clone(),
            },
            opened: Mutex::new(HashMap::new()),
        })
    }

    /// The recording source of `namespace` (`--bucket`, or its RecordingPolicy).
    async fn source(&self, namespace: &str) -> anyhow::Result<Arc<RecordingSource>> {
        let mut opened = self.opened.lock().await;
        if let Some(source) = opened.get(namespace) {
            return Ok(Arc::clone(source));
        }
        let flags = SourceFlags {
            s3: self.recordings.clone(),
            direct: true,
            cluster: ClusterFlags { namespace: Some(namespace.to_owned()), ..self.cluster.clone() },
        };
        let source = Arc::new(open_source(&flags, false).await?);
        opened.insert(namespace.to_owned(), Arc::clone(&source));
        Ok(source)
    }

    /// Whether the user may read `namespace`'s sessions; the refusal to show when not.
    async fn check_access(&self, client: &Client, namespace: &str) -> Result<(), String> {
        match access::may(client, namespace, "list", SESSIONS_GROUP, SESSIONS_RESOURCE).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(access::sessions_forbidden(namespace)),
            Err(e) => Err(format!(
                "could not ask the API server whether you may list sessions in {namespace:?}: {e}"
            )),
        }
    }

    /// The sessions of `namespace` in the catalog's scope of `filter`, or why the namespace is
    /// left out (no RBAC, or unreadable).
    async fn list_namespace(
        &self,
        client: &Client,
        namespace: &str,
        filter: &SessionFilter,
        range: TimeRange,
    ) -> Result<Vec<ListedSession>, String> {
        self.check_access(client, namespace).await?;
        self.read_namespace(namespace, filter, range).await.map_err(|e| format!("{e:#}"))
    }

    async fn read_namespace(
        &self,
        namespace: &str,
        filter: &SessionFilter,
        range: TimeRange,
    ) -> anyhow::Result<Vec<ListedSession>> {
        let source = self.source(namespace).await?;
        let bucket = &source.bucket;
        let connection = filter.connection.clone().filter(|c| !c.is_empty());
        let scope = CatalogScope { namespace: Some(namespace.to_owned()), connection, range };
        let mut listed = Vec::new();
        for location in find_sessions(bucket, &scope).await? {
            let streams = read_session(bucket, &location, &[]).await?;
            let summary = summarize(&location, bucket.url(&location.key_prefix()), &streams);
            listed.push(ListedSession::from_summary(summary, approved_calls(&streams)));
        }
        Ok(listed)
    }

    /// The recording source of the key's namespace and where the session is in it, once the
    /// user may read the namespace.
    async fn locate(
        &self,
        key: &SessionKey,
    ) -> anyhow::Result<(Arc<RecordingSource>, SessionLocation)> {
        let source = self.source(&key.namespace).await?;
        let location = locate_session(
            &source.bucket,
            &key.id,
            Some(&key.namespace),
            key.connection.as_deref(),
        )
        .await?;
        Ok((source, location))
    }

    async fn show(&self, client: &Client, key: &SessionKey) -> anyhow::Result<SessionRecording> {
        self.check_access(client, &key.namespace).await.map_err(anyhow::Error::msg)?;
        let (source, location) = self.locate(key).await?;
        let bucket = &source.bucket;
        let streams = read_session(bucket, &location, &[]).await?;
        let summary = summarize(&location, bucket.url(&location.key_prefix()), &streams);
        let approved = approved_calls(&streams);
        let events = merge_by_time(streams.into_iter().map(|s| s.events).collect());
        Ok(SessionRecording { summary: ListedSession::from_summary(summary, approved), events })
    }

    /// Verifies the session as `sessions verify --direct` does, with the keys the console was
    /// given.
    async fn verify(&self, client: &Client, key: &SessionKey) -> anyhow::Result<Verdict> {
        self.check_access(client, &key.namespace).await.map_err(anyhow::Error::msg)?;
        let trust = TrustSources::from(&self.trust);
        let verdict = |status, problems, keys| Verdict {
            status,
            problems,
            keys,
            by: "console",
            detail: None,
        };
        if let Err(e) = trust.ensure_any() {
            return Ok(verdict("unverified", vec![e.to_string()], vec![]));
        }
        let (source, location) = self.locate(key).await?;
        let bucket = &source.bucket;
        let cluster =
            ClusterFlags { namespace: Some(key.namespace.clone()), ..self.cluster.clone() };
        let (keys, key_ids) = trust.load(&source, &cluster, &location).await?;
        let objects = bucket.get_all(&session_keys(bucket, &location).await?).await?;
        let options = VerifyOptions { now: Timestamp::now(), digest_grace: self.trust.grace()? };
        let report = SessionVerifier::new(keys, options).verify(&objects);
        Ok(verdict(
            if report.is_valid() { "intact" } else { "broken" },
            report.problems.iter().map(ToString::to_string).collect(),
            key_ids.iter().map(KeyId::as_str).map(str::to_owned).collect(),
        ))
    }
}

/// Calls a reviewer's approval released.
fn approved_calls(streams: &[ReplicaRecording]) -> u64 {
    let approvals = streams.iter().flat_map(|s| &s.events).filter(|recorded| {
        matches!(&recorded.event.body, EventBody::Approval(a) if a.outcome == ApprovalDecision::Approved)
    });
    approvals.count() as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use chaperone_crds::{SessionAgent, SessionStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn session(state: &str, reason: &str) -> Session {
        Session {
            api_version: "audit.chaperone.dev/v1alpha1".into(),
            kind: "Session".into(),
            metadata: ObjectMeta {
                name: Some("s-1".into()),
                namespace: Some("team-a".into()),
                ..ObjectMeta::default()
            },
            status: SessionStatus {
                agent: Some(SessionAgent {
                    service_account: "pr-bot".into(),
                    pod_name: "pr-bot-0".into(),
                    pod_uid: "u".into(),
                    role_session_name: String::new(),
                }),
                connection: "prod-aws".into(),
                start: Some("2026-12-06T10:00:00Z".into()),
                calls: 3,
                denied: 0,
                approvals: 2,
                state: "open".into(),
                verification: SessionVerification { state: state.into(), reason: reason.into() },
                ..SessionStatus::default()
            },
        }
    }

    #[test]
    fn the_operators_verification_becomes_the_badge_with_its_reason() {
        let verified = operator_verdict(&session("Verified", "signed by key k1"));
        assert_eq!((verified.status, verified.by), ("intact", "operator"));
        assert_eq!(verified.detail.as_deref(), Some("signed by key k1"));
        let failed = operator_verdict(&session("Failed", "segment 2: bad signature"));
        assert_eq!(
            (failed.status, failed.problems.as_slice()),
            ("broken", &["segment 2: bad signature".to_owned()][..])
        );
        let unknown = operator_verdict(&session("Unverifiable", "no keys published"));
        assert_eq!(unknown.status, "unverified");
        assert_eq!(unknown.problems, vec!["no keys published".to_owned()]);
    }

    #[test]
    fn an_unregistered_api_tells_the_console_user_which_flags_read_s3_instead() {
        let text = for_the_console(AuditApiError::NotRegistered).to_string();
        assert!(text.contains("not registered in this cluster"), "{text}");
        assert!(text.contains("start it with --bucket"), "{text}");
        let refused = for_the_console(AuditApiError::Refused("x".into())).to_string();
        assert_eq!(refused, "x");
    }

    #[test]
    fn api_sessions_filter_on_approval_decisions_and_refuse_the_approved_calls_filter() {
        let row = ListedSession::from_api(session("Verified", ""));
        let range = TimeRange::default();
        let with =
            |calls: &str| SessionFilter { calls: Some(calls.into()), ..SessionFilter::default() };
        assert!(row.passes(&with("approvals"), range).unwrap());
        assert!(!row.passes(&with("denied"), range).unwrap());
        let refused = row.passes(&with("approved"), range).unwrap_err().to_string();
        assert!(refused.contains("calls=approvals"), "{refused}");
        // The direct path counts approved calls, and filters on them.
        let direct = ListedSession { approved: Some(1), ..row.clone() };
        assert!(direct.passes(&with("approved"), range).unwrap());
        assert!(
            !ListedSession { approved: Some(0), ..row.clone() }
                .passes(&with("approved"), range)
                .unwrap()
        );
        let other = SessionFilter { agent: Some("someone".into()), ..SessionFilter::default() };
        assert!(!row.passes(&other, range).unwrap());
        let later = TimeRange {
            since: Some(Timestamp::parse("2026-12-07T00:00:00Z").unwrap()),
            until: None,
        };
        assert!(!row.passes(&SessionFilter::default(), later).unwrap());
    }
}
