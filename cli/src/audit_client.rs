//! Reading sessions through the operator's audit API (group audit.chaperone.dev) with the
//! kubeconfig's identity: the API server authorizes each read with RBAC, and the operator logs it
//! in the namespace's access log. The default path of `sessions list/show/verify`, `replay` and
//! `policy suggest`; `--direct` reads S3 instead.

use chaperone_crds::{AUDIT_API_VERSION, Session, SessionEventList, SessionList};
use chaperone_recording::{Event, RecordedEvent};
use chaperone_recording_store::ReplicaRecording;
use kube::Client;

use crate::cluster::Cluster;

/// Events fetched per request.
const EVENTS_PAGE: usize = 500;

/// What went wrong reading through the audit API.
#[derive(Debug, thiserror::Error)]
pub enum AuditApiError {
    #[error(
        "the audit API is not registered in this cluster (no {AUDIT_API_VERSION}); install the chart, or use --direct with --bucket or --recording-policy to read S3 with your own AWS identity"
    )]
    NotRegistered,
    #[error(
        "{user} may not {verb} sessions in namespace {namespace}: ask for a RoleBinding in {namespace} to the ClusterRole chaperone-session-auditor (kubectl -n {namespace} create rolebinding session-auditors --clusterrole=chaperone-session-auditor --user=<you>); the API server said: {message}"
    )]
    Forbidden { user: String, verb: &'static str, namespace: String, message: String },
    #[error("{0}")]
    Refused(String),
    #[error("reading {path} through the API server failed: {reason}")]
    Request { path: String, reason: String },
    #[error("{path} answered with something that is not a {kind}: {reason}")]
    Unreadable { path: String, kind: &'static str, reason: String },
}

/// A client of the audit API.
pub struct AuditClient {
    client: Client,
}

impl AuditClient {
    pub fn new(cluster: &Cluster) -> Self {
        Self { client: cluster.client().clone() }
    }

    /// Every session in `namespace` (all namespaces the user may list when None).
    pub async fn list(&self, namespace: Option<&str>) -> Result<SessionList, AuditApiError> {
        let path = match namespace {
            Some(ns) => format!("/apis/{AUDIT_API_VERSION}/namespaces/{ns}/sessions"),
            None => format!("/apis/{AUDIT_API_VERSION}/sessions"),
        };
        self.get_json(&path, "list", namespace.unwrap_or("(all namespaces)"), "SessionList").await
    }

    /// Session `session` of `namespace`.
    pub async fn get(&self, namespace: &str, session: &str) -> Result<Session, AuditApiError> {
        let path = format!("/apis/{AUDIT_API_VERSION}/namespaces/{namespace}/sessions/{session}");
        self.get_json(&path, "get", namespace, "Session").await
    }

    /// Every event of the session, all replicas merged by time, exactly as recorded.
    pub async fn events(
        &self,
        namespace: &str,
        session: &str,
    ) -> Result<Vec<RecordedEvent>, AuditApiError> {
        let base =
            format!("/apis/{AUDIT_API_VERSION}/namespaces/{namespace}/sessions/{session}/events");
        let mut events = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut path = format!("{base}?limit={EVENTS_PAGE}");
            if let Some(token) = &token {
                path.push_str("&continue=");
                path.extend(form_urlencoded::byte_serialize(token.as_bytes()));
            }
            let page: SessionEventList =
                self.get_json(&path, "get", namespace, "SessionEventList").await?;
            for item in page.items {
                let line = serde_json::to_vec(&item).map_err(|e| AuditApiError::Unreadable {
                    path: path.clone(),
                    kind: "event",
                    reason: e.to_string(),
                })?;
                let event: Event =
                    serde_json::from_value(item).map_err(|e| AuditApiError::Unreadable {
                        path: path.clone(),
                        kind: "event",
                        reason: e.to_string(),
                    })?;
                events.push(RecordedEvent { line, event });
            }
            match page.metadata.continue_ {
                Some(next) if !next.is_empty() => token = Some(next),
                _ => return Ok(events),
            }
        }
    }

    /// The session's events as one stream per replica, as the direct path reads them.
    pub async fn streams(
        &self,
        namespace: &str,
        session: &str,
    ) -> Result<Vec<ReplicaRecording>, AuditApiError> {
        let mut streams: Vec<ReplicaRecording> = Vec::new();
        for recorded in self.events(namespace, session).await? {
            let replica = recorded.event.replica.clone();
            match streams.iter_mut().find(|s| s.replica == replica) {
                Some(stream) => stream.events.push(recorded),
                None => streams.push(ReplicaRecording {
                    replica,
                    manifest: None,
                    segments: 0,
                    events: vec![recorded],
                    unreadable: Vec::new(),
                }),
            }
        }
        streams.sort_by(|a, b| a.replica.cmp(&b.replica));
        Ok(streams)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        verb: &'static str,
        namespace: &str,
        kind: &'static str,
    ) -> Result<T, AuditApiError> {
        let request = http::Request::get(path)
            .body(Vec::new())
            .map_err(|e| AuditApiError::Request { path: path.to_owned(), reason: e.to_string() })?;
        let text = match self.client.request_text(request).await {
            Ok(text) => text,
            Err(kube::Error::Api(status)) => {
                return Err(refusal(status.code, &status.message, verb, namespace));
            }
            Err(e) => {
                return Err(AuditApiError::Request {
                    path: path.to_owned(),
                    reason: e.to_string(),
                });
            }
        };
        serde_json::from_str(&text).map_err(|e| AuditApiError::Unreadable {
            path: path.to_owned(),
            kind,
            reason: e.to_string(),
        })
    }
}

/// The error for an API server's refusal with `code` and `message`.
fn refusal(code: u16, message: &str, verb: &'static str, namespace: &str) -> AuditApiError {
    match code {
        // The API server's own 404 for an unknown group; the audit API's 404s name the session.
        404 if message.contains("could not find the requested resource") => {
            AuditApiError::NotRegistered
        }
        403 => AuditApiError::Forbidden {
            user: message
                .split('"')
                .nth(1)
                .map_or("your kubeconfig's user".to_owned(), |u| format!("user {u:?}")),
            verb,
            namespace: namespace.to_owned(),
            message: message.to_owned(),
        },
        _ => AuditApiError::Refused(format!("the audit API refused the read ({code}): {message}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_refusal_says_what_to_do() {
        let missing = refusal(404, "the server could not find the requested resource", "list", "a");
        assert!(missing.to_string().contains("install the chart, or use --direct"), "{missing}");
        let forbidden = refusal(
            403,
            "sessions.audit.chaperone.dev is forbidden: User \"bob\" cannot list resource \"sessions\" in API group \"audit.chaperone.dev\" in the namespace \"team-b\"",
            "list",
            "team-b",
        );
        let text = forbidden.to_string();
        assert!(text.contains("user \"bob\" may not list sessions in namespace team-b"), "{text}");
        assert!(text.contains("chaperone-session-auditor"), "{text}");
        let gone = refusal(404, "session x was not found in namespace a: ...", "get", "a");
        assert!(gone.to_string().contains("session x was not found"), "{gone}");
    }
}
