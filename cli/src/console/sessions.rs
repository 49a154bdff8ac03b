//! The console's one way to sessions: the same functions `sessions list`, `show` and `verify`
//! call (the catalog, the reader, the summary and the verifier over the recording bucket).
//!
//! The direct S3 path knows nothing of Kubernetes RBAC, so before reading a namespace's sessions
//! this adapter asks the API server (SelfSubjectAccessReview) whether the user may `list`
//! `sessions` in `audit.chaperone.dev` there: the rule the sessions API enforces. Once that API
//! serves sessions, this file is the one to switch to it.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use chaperone_recording::{
    ApprovalDecision, EventBody, KeyId, RecordedEvent, SessionLocation, SessionVerifier, Timestamp,
    VerifyOptions, merge_by_time,
};
use kube::Client;
use serde::Serialize;
use tokio::sync::Mutex;

use crate::commands::verify::TrustSources;
use crate::commands::{RecordingSource, open_source};
use crate::console::access::{self, SESSIONS_GROUP, SESSIONS_RESOURCE, Skipped};
use crate::console::{ConsoleArgs, RecordingFlags};
use crate::flags::{ClusterFlags, SourceFlags, TrustFlags};
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
    /// `denied`: sessions with a denied call; `approved`: with an approved hold.
    pub calls: Option<String>,
}

/// A session in the list.
#[derive(Debug, Clone, Serialize)]
pub struct ListedSession {
    #[serde(flatten)]
    pub summary: SessionSummary,
    /// Calls released by a reviewer's approval.
    pub approved: u64,
}

/// One session read whole.
pub struct SessionRecording {
    pub summary: SessionSummary,
    pub events: Vec<RecordedEvent>,
}

/// The verifier's answer.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// `intact`, `broken`, or `unverified` (no trusted keys were given).
    pub status: &'static str,
    pub problems: Vec<String>,
    pub keys: Vec<String>,
}

/// Where sessions are read, opened per namespace and kept.
pub struct SessionSource {
    recordings: RecordingFlags,
    cluster: ClusterFlags,
    trust: TrustFlags,
    opened: Mutex<HashMap<String, Arc<RecordingSource>>>,
}

impl SessionSource {
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

    /// True when the console was told where recordings are.
    pub fn configured(&self) -> bool {
        self.recordings.bucket.is_some() || self.recordings.recording_policy.is_some()
    }

    /// The recording source of `namespace` (`--bucket`, or its RecordingPolicy).
    async fn source(&self, namespace: &str) -> anyhow::Result<Arc<RecordingSource>> {
        let mut opened = self.opened.lock().await;
        if let Some(source) = opened.get(namespace) {
            return Ok(Arc::clone(source));
        }
        let flags = SourceFlags {
            bucket: self.recordings.bucket.clone(),
            prefix: self.recordings.prefix.clone(),
            region: self.recordings.region.clone(),
            endpoint_url: self.recordings.endpoint_url.clone(),
            profile: self.recordings.profile.clone(),
            recording_policy: self.recordings.recording_policy.clone(),
            direct: true,
            cluster: ClusterFlags { namespace: Some(namespace.to_owned()), ..self.cluster.clone() },
        };
        let source = Arc::new(open_source(&flags, false).await?);
        opened.insert(namespace.to_owned(), Arc::clone(&source));
        Ok(source)
    }

    /// Whether the user may read `namespace`'s sessions; the refusal to show when not.
    pub async fn check_access(&self, client: &Client, namespace: &str) -> Result<(), String> {
        match access::may(client, namespace, "list", SESSIONS_GROUP, SESSIONS_RESOURCE).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(access::sessions_forbidden(namespace)),
            Err(e) => Err(format!(
                "could not ask the API server whether you may list sessions in {namespace:?}: {e}"
            )),
        }
    }

    /// The sessions of `namespaces` that pass `filter`, oldest first; namespaces left out (no
    /// RBAC, or unreadable) are returned with their reason.
    pub async fn list(
        &self,
        client: &Client,
        namespaces: &[String],
        filter: &SessionFilter,
    ) -> anyhow::Result<(Vec<ListedSession>, Vec<Skipped>)> {
        let now = Timestamp::now();
        let bound = |text: &Option<String>, what: &str| {
            text.as_deref()
                .filter(|t| !t.trim().is_empty())
                .map(|t| parse_time_bound(t.trim(), now))
                .transpose()
                .with_context(|| format!("reading the {what} filter"))
        };
        let range = TimeRange {
            since: bound(&filter.since, "since")?,
            until: bound(&filter.until, "until")?,
        };
        let mut listed = Vec::new();
        let mut skipped = Vec::new();
        for namespace in namespaces {
            if filter.namespace.as_ref().is_some_and(|n| n != namespace) {
                continue;
            }
            if let Err(reason) = self.check_access(client, namespace).await {
                skipped.push(Skipped { namespace: namespace.clone(), reason });
                continue;
            }
            match self.list_namespace(namespace, filter, range).await {
                Ok(found) => listed.extend(found),
                Err(e) => {
                    skipped.push(Skipped { namespace: namespace.clone(), reason: format!("{e:#}") })
                }
            }
        }
        listed.sort_by(|a, b| {
            (b.summary.started, &b.summary.session).cmp(&(a.summary.started, &a.summary.session))
        });
        Ok((listed, skipped))
    }

    async fn list_namespace(
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
            if let Some(agent) = filter.agent.as_ref().filter(|a| !a.is_empty())
                && summary.agent.as_ref().is_none_or(|a| &a.service_account != agent)
            {
                continue;
            }
            let approved = approved_calls(&streams);
            let keep = match filter.calls.as_deref() {
                Some("denied") => summary.denied > 0,
                Some("approved") => approved > 0,
                _ => true,
            };
            if keep {
                listed.push(ListedSession { summary, approved });
            }
        }
        Ok(listed)
    }

    /// Session `id` of `namespace` (in `connection` when given), every replica merged by time.
    pub async fn show(
        &self,
        client: &Client,
        namespace: &str,
        connection: Option<&str>,
        id: &str,
    ) -> anyhow::Result<SessionRecording> {
        self.check_access(client, namespace).await.map_err(anyhow::Error::msg)?;
        let source = self.source(namespace).await?;
        let bucket = &source.bucket;
        let location = locate_session(bucket, id, Some(namespace), connection).await?;
        let streams = read_session(bucket, &location, &[]).await?;
        let summary = summarize(&location, bucket.url(&location.key_prefix()), &streams);
        let events = merge_by_time(streams.into_iter().map(|s| s.events).collect());
        Ok(SessionRecording { summary, events })
    }

    /// Verifies session `id` as `sessions verify` does, with the keys the console was given.
    pub async fn verify(
        &self,
        client: &Client,
        namespace: &str,
        connection: Option<&str>,
        id: &str,
    ) -> anyhow::Result<Verdict> {
        self.check_access(client, namespace).await.map_err(anyhow::Error::msg)?;
        let trust = TrustSources::from(&self.trust);
        if let Err(e) = trust.ensure_any() {
            return Ok(Verdict {
                status: "unverified",
                problems: vec![e.to_string()],
                keys: vec![],
            });
        }
        let source = self.source(namespace).await?;
        let bucket = &source.bucket;
        let location: SessionLocation =
            locate_session(bucket, id, Some(namespace), connection).await?;
        let cluster =
            ClusterFlags { namespace: Some(namespace.to_owned()), ..self.cluster.clone() };
        let (keys, key_ids) = trust.load(&source, &cluster, &location).await?;
        let objects = bucket.get_all(&session_keys(bucket, &location).await?).await?;
        let options = VerifyOptions { now: Timestamp::now(), digest_grace: self.trust.grace()? };
        let report = SessionVerifier::new(keys, options).verify(&objects);
        Ok(Verdict {
            status: if report.is_valid() { "intact" } else { "broken" },
            problems: report.problems.iter().map(ToString::to_string).collect(),
            keys: key_ids.iter().map(KeyId::as_str).map(str::to_owned).collect(),
        })
    }
}

/// Calls a reviewer's approval released.
fn approved_calls(streams: &[ReplicaRecording]) -> u64 {
    let approvals = streams.iter().flat_map(|s| &s.events).filter(|recorded| {
        matches!(&recorded.event.body, EventBody::Approval(a) if a.outcome == ApprovalDecision::Approved)
    });
    approvals.count() as u64
}
