//! One line's worth about a session, for `sessions list`: who, when, how many calls, how it ended.

use std::collections::BTreeSet;

use chaperone_crds::{
    AUDIT_API_VERSION, Session, SessionAgent, SessionStatus, SessionVerification,
};
use chaperone_recording::{
    AgentIdentity, EventBody, SessionLocation, StreamStatus, Timestamp, session_id_time,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde::Serialize;

use crate::session_reader::ReplicaRecording;

/// A session as `sessions list` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct SessionSummary {
    pub session: String,
    pub namespace: String,
    pub connection: String,
    /// `s3://bucket/<prefix>v1/.../<session>/`
    pub location: String,
    pub agent: Option<AgentIdentity>,
    pub started: Option<Timestamp>,
    /// Calls recorded (forwarded or denied), over all replicas.
    pub calls: u64,
    /// Of those, calls denied by policy or by a reviewer.
    pub denied: u64,
    /// Approval decisions recorded.
    pub approvals: u64,
    /// When the last stream ended; None while any stream is open or has no manifest.
    pub ended: Option<Timestamp>,
    /// The replicas' statuses joined with `,`: `open`, `closed`, `recovered`, `no-manifest`.
    pub status: String,
    pub replicas: Vec<ReplicaSummary>,
    /// What could not be read.
    pub unreadable: Vec<String>,
}

impl SessionSummary {
    /// The audit API's Session object of this summary, with `verification` as its status says:
    /// what the operator serves, and what the console shows on both of its paths.
    pub fn to_session(&self, verification: SessionVerification) -> Session {
        let start = self.started.map(|t| t.to_string());
        let creation_timestamp =
            start.as_deref().and_then(|s| s.parse::<k8s_openapi::jiff::Timestamp>().ok()).map(Time);
        Session {
            api_version: AUDIT_API_VERSION.to_owned(),
            kind: "Session".to_owned(),
            metadata: ObjectMeta {
                name: Some(self.session.clone()),
                namespace: Some(self.namespace.clone()),
                creation_timestamp,
                ..ObjectMeta::default()
            },
            status: SessionStatus {
                agent: self.agent.as_ref().map(|a| SessionAgent {
                    service_account: a.service_account.clone(),
                    pod_name: a.pod_name.clone(),
                    pod_uid: a.pod_uid.clone(),
                    role_session_name: a.role_session_name.clone(),
                }),
                connection: self.connection.clone(),
                start,
                end: self.ended.map(|t| t.to_string()),
                calls: self.calls,
                denied: self.denied,
                approvals: self.approvals,
                state: self.status.clone(),
                replicas: self.replicas.iter().map(|r| r.replica.clone()).collect(),
                location: self.location.clone(),
                verification,
            },
        }
    }
}

/// One replica's stream of a session.
#[derive(Clone, Debug, Serialize)]
pub struct ReplicaSummary {
    pub replica: String,
    pub status: String,
    pub segments: usize,
    pub events: usize,
}

/// Summarizes the replica streams of the session at `location` (found at `url`).
pub fn summarize(
    location: &SessionLocation,
    url: String,
    streams: &[ReplicaRecording],
) -> SessionSummary {
    let mut agent = None;
    let mut started: Option<Timestamp> = None;
    let (mut calls, mut denied, mut approvals) = (0, 0, 0);
    let mut ended: Option<Timestamp> = None;
    let mut all_ended = !streams.is_empty();
    let mut replicas = Vec::new();
    let mut statuses = BTreeSet::new();
    let mut unreadable = Vec::new();
    for stream in streams {
        for recorded in &stream.events {
            match &recorded.event.body {
                EventBody::SessionStart(start) => {
                    agent.get_or_insert_with(|| start.agent.clone());
                    started = Some(started.map_or(recorded.event.ts, |s| s.min(recorded.event.ts)));
                }
                EventBody::Request(_) => calls += 1,
                EventBody::Denied(_) => {
                    calls += 1;
                    denied += 1;
                }
                EventBody::Approval(_) => approvals += 1,
                _ => {}
            }
        }
        if let Some(manifest) = &stream.manifest {
            agent.get_or_insert_with(|| manifest.agent.clone());
            started = Some(started.map_or(manifest.started, |s| s.min(manifest.started)));
        }
        match stream.manifest.as_ref().and_then(|m| m.ended) {
            Some(at) => ended = Some(ended.map_or(at, |e| e.max(at))),
            None => all_ended = false,
        }
        let status = status_name(stream.manifest.as_ref().map(|m| m.status));
        statuses.insert(status);
        replicas.push(ReplicaSummary {
            replica: stream.replica.clone(),
            status: status.to_owned(),
            segments: stream.segments,
            events: stream.events.len(),
        });
        unreadable.extend(stream.unreadable.iter().cloned());
    }
    SessionSummary {
        session: location.session().to_owned(),
        namespace: location.namespace().to_owned(),
        connection: location.connection().to_owned(),
        location: url,
        agent,
        started: started.or_else(|| session_id_time(location.session())),
        calls,
        denied,
        approvals,
        ended: ended.filter(|_| all_ended),
        status: statuses.into_iter().collect::<Vec<_>>().join(","),
        replicas,
        unreadable,
    }
}

/// `open`, `closed`, `recovered`, or `no-manifest` for a stream without one.
pub fn status_name(status: Option<StreamStatus>) -> &'static str {
    match status {
        Some(StreamStatus::Open) => "open",
        Some(StreamStatus::Closed) => "closed",
        Some(StreamStatus::Recovered) => "recovered",
        None => "no-manifest",
    }
}
