//! Stage 5, record: the request event is durable before the call is forwarded. When it cannot
//! be recorded, the connection's RecordingPolicy decides: FailClosed refuses the call (a session
//! that already ended is told to get new credentials; a full spool or a broken recorder, to retry
//! later), FailOpen forwards it unrecorded. Response events are written without holding the agent.

use chaperone_crds::FailureMode;
use chaperone_recording::{
    AwsCall, Body as RecordedBody, Decision, Effect, EventBody, Request as RequestEvent,
    Response as ResponseEvent, StreamedBody, Timings,
};
use http::{HeaderMap, StatusCode};

use super::{Call, Refusal, classify::Classified};
use crate::{body::Inbound, identity::SessionContext, record::RecordError, sigv4::VerifiedRequest};
use chaperone_config::ConnectionConfig;

/// Body bytes captured when the connection's RecordingPolicy is not configured in the gateway.
const DEFAULT_CAPTURE_LIMIT: usize = 1024 * 1024;

/// What the connection's RecordingPolicy asks of the call.
pub(super) struct Recording<'a> {
    /// The RecordingPolicy's name.
    pub(super) policy: &'a str,
    /// How much of each body is captured.
    pub(super) capture_limit: usize,
    /// Whether a call that cannot be recorded is forwarded anyway.
    pub(super) fail_open: bool,
}

/// The agent's request as its `request` or `denied` event records it.
pub(super) struct RequestRecord {
    pub(super) call: String,
    pub(super) method: String,
    pub(super) path: String,
    pub(super) query: Vec<(String, String)>,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: RecordedBody,
    pub(super) aws: AwsCall,
    pub(super) decide_us: u64,
    pub(super) approval_us: Option<u64>,
}

impl<'a> Call<'a> {
    /// The connection's RecordingPolicy settings.
    pub(super) fn recording(&self, connection: &'a ConnectionConfig) -> Recording<'a> {
        let policy = self.runtime.config.recording_policies.get(&connection.recording_policy);
        Recording {
            policy: &connection.recording_policy,
            capture_limit: policy
                .map(|p| usize::try_from(p.capture.max_body_bytes).unwrap_or(usize::MAX))
                .unwrap_or(DEFAULT_CAPTURE_LIMIT),
            fail_open: policy.is_some_and(|p| p.on_failure == FailureMode::FailOpen),
        }
    }

    /// The request as recorded: line, headers, the first `capture_limit` body bytes, and how long
    /// the gateway took to get here.
    pub(super) fn request_record(
        &self,
        aws: AwsCall,
        inbound: &Inbound,
        capture_limit: usize,
    ) -> RequestRecord {
        RequestRecord {
            call: self.request_id.to_owned(),
            method: self.parts.method.to_string(),
            path: self.path().to_owned(),
            query: query_pairs(self.query()),
            headers: header_list(&self.parts.headers),
            body: inbound.recorded_body(capture_limit),
            aws,
            decide_us: self.started.elapsed().as_micros() as u64,
            approval_us: None,
        }
    }

    /// Records the allowed request, write-ahead, and counts the call.
    pub(super) async fn record_request(
        &self,
        verified: &VerifiedRequest<SessionContext>,
        classified: &Classified<'_>,
        recording: &Recording<'_>,
        request: RequestRecord,
    ) -> Result<(), Refusal> {
        let metrics = &self.gateway.metrics;
        let (session, service) = (&verified.session, &verified.scope.service);
        let event = EventBody::Request(RequestEvent {
            call: request.call,
            method: request.method,
            path: request.path,
            query: request.query,
            headers: request.headers,
            body: request.body,
            aws: request.aws,
            decision: Decision {
                effect: Effect::Allow,
                object: Some(format!(
                    "AgentConnection/{}/{}",
                    session.namespace, classified.connection.name
                )),
                rule: Some("policy.allow".into()),
            },
            timings: Timings {
                decide_us: Some(request.decide_us),
                approval_us: request.approval_us,
                ..Default::default()
            },
            redacted: Vec::new(),
        });
        if let Err(failure) = self.gateway.recorder.append(session, event).await {
            if recording.fail_open {
                tracing::error!(session = %session.session_id, %failure, "forwarding UNRECORDED: RecordingPolicy onFailure is FailOpen");
                metrics
                    .calls_total
                    .get_or_create(&classified.labels(service, "forwarded_unrecorded"))
                    .inc();
            } else {
                metrics
                    .calls_total
                    .get_or_create(&classified.labels(service, "refused_unrecorded"))
                    .inc();
                tracing::error!(session = %session.session_id, %failure, "refused a call it could not record");
                return Err(self.unrecorded(&failure, recording));
            }
        }
        metrics.calls_total.get_or_create(&classified.labels(service, "allowed")).inc();
        Ok(())
    }

    /// The refusal of a call the recorder would not take (FailClosed), by why: a session that
    /// already ended needs new credentials, anything else clears up by itself or by the
    /// platform team.
    fn unrecorded(&self, failure: &RecordError, recording: &Recording<'_>) -> Refusal {
        let request_id = self.request_id;
        match failure {
            RecordError::SessionEnded { .. } => self.refuse(
                StatusCode::FORBIDDEN,
                "ExpiredToken",
                format!(
                    "the gateway records no more calls of this session: {failure} by calling AssumeRoleWithWebIdentity again (restart the agent; the AWS CLI also caches them in ~/.aws/cli/cache); retrying with these credentials fails the same way (request {request_id})"
                ),
            ),
            RecordError::SpoolFull { .. }
            | RecordError::ConnectionQuota { .. }
            | RecordError::Unavailable { .. }
            | RecordError::BadEvent { .. } => self.refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                format!(
                    "the gateway cannot record this call ({failure}) and RecordingPolicy {} says FailClosed; retry later or ask the platform team to check the recorder (request {request_id})",
                    recording.policy
                ),
            ),
        }
    }

    /// Records the call's response (status, headers, body, or why there is none) without holding
    /// the agent.
    pub(super) fn record_response(
        &self,
        session: SessionContext,
        status: StatusCode,
        headers: &HeaderMap,
        body: RecordedBody,
        upstream_error: Option<String>,
        request_body: Option<StreamedBody>,
    ) {
        let event = EventBody::Response(ResponseEvent {
            call: self.request_id.to_owned(),
            status: Some(status.as_u16()),
            headers: header_list(headers),
            body,
            timings: Timings {
                upstream_total_us: Some(self.started.elapsed().as_micros() as u64),
                ..Default::default()
            },
            upstream_error,
            redacted: Vec::new(),
            request_body,
        });
        if let Err(failure) = self.gateway.recorder.append_detached(&session, event) {
            tracing::error!(session = %session.session_id, %failure, "could not record a response");
        }
    }
}

/// Headers as the recording holds them.
pub(super) fn header_list(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
        .collect()
}

fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.to_owned()),
            None => (p.to_owned(), String::new()),
        })
        .collect()
}
