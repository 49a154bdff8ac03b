//! Stage 6, forward and stream back: what only describes the session is answered here; anything
//! else is re-signed with the connection's upstream credentials, sent, and its response streamed
//! back to the agent while it is captured for the response event.

use std::time::Instant;

use chaperone_recording::{
    Body as RecordedBody, EventBody, Hash256, Response as ResponseEvent, Timings,
};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::{Call, Refusal, classify::Classified, record::header_list};
use crate::{
    body::{CapturingBody, Inbound, PayloadMismatch, StreamedPayload},
    forward::{BoxError, OutboundRequest, strip_hop_by_hop},
    identity::{CallerIdentity, SessionContext},
    metrics::ServiceLabels,
    server::{GatewayBody, xml},
    sigv4::VerifiedRequest,
};

/// The upstream's answer, and when the call was sent.
pub(super) struct Forwarded {
    response: Response<Incoming>,
    sent: Instant,
    first_byte_us: u64,
}

impl Call<'_> {
    /// The answer to a call that only describes the session itself (`sts:GetCallerIdentity`),
    /// given by the gateway: upstream would describe the gateway's role instead.
    pub(super) fn answer_locally(
        &self,
        verified: &VerifiedRequest<SessionContext>,
        classified: &Classified<'_>,
    ) -> Option<Response<GatewayBody>> {
        if classified.classification.operation != Some("GetCallerIdentity")
            || verified.scope.service != "sts"
        {
            return None;
        }
        let session = &verified.session;
        let body = CallerIdentity::of_session(session).to_xml(self.request_id);
        let response = xml(StatusCode::OK, body.clone());
        self.record_response(
            session.clone(),
            StatusCode::OK,
            &HeaderMap::new(),
            RecordedBody::complete(body.as_bytes()),
            None,
            None,
        );
        Some(response)
    }

    /// Re-signs the call with the connection's upstream credentials and sends it to the
    /// connection's endpoint for the service.
    pub(super) async fn forward(
        &self,
        verified: &VerifiedRequest<SessionContext>,
        classified: &Classified<'_>,
        inbound: Inbound,
        streamed: Option<&StreamedPayload>,
    ) -> Result<Forwarded, Refusal> {
        let (session, service) = (&verified.session, &verified.scope.service);
        let connection = classified.connection;
        let namespace = &self.runtime.config.namespace;
        let request_id = self.request_id;
        let sent = Instant::now();
        let outbound =
            OutboundRequest::from_agent(&self.parts, verified, inbound, &classified.classification);
        let endpoint = &classified.endpoint;
        let credentials = match self
            .gateway
            .credentials
            .credentials(namespace, connection, &session.service_account)
            .await
        {
            Ok(credentials) => credentials,
            Err(failure) => {
                tracing::warn!(session = %session.session_id, connection = %connection.name, %failure, "no upstream credentials for the call");
                let message = format!(
                    "the gateway could not get upstream credentials for AgentConnection {namespace}/{}: {failure}; check the role's trust policy and the gateway's credentials, then retry (request {request_id})",
                    connection.name
                );
                return Err(self.upstream_failure(
                    session,
                    service,
                    StatusCode::SERVICE_UNAVAILABLE,
                    failure.to_string(),
                    message,
                    streamed,
                ));
            }
        };
        let response = match self.gateway.forwarder.send(endpoint, outbound, &credentials).await {
            Ok(response) => response,
            Err(error) => {
                if let Some(mismatch) = payload_mismatch(&error) {
                    return Err(self.switched_body(session, mismatch, streamed));
                }
                // The causes name what broke: a connection, or the agent's body (broken off).
                let error = error_with_causes(&error);
                tracing::warn!(session = %session.session_id, %error, "upstream call failed");
                let message = format!(
                    "the gateway could not reach {endpoint}: {error} (request {request_id})"
                );
                return Err(self.upstream_failure(
                    session,
                    service,
                    StatusCode::BAD_GATEWAY,
                    error,
                    message,
                    streamed,
                ));
            }
        };
        let first_byte_us = sent.elapsed().as_micros() as u64;
        self.gateway
            .metrics
            .call_duration_seconds
            .get_or_create(&ServiceLabels { service: service.clone() })
            .observe(self.started.elapsed().as_secs_f64());
        Ok(Forwarded { response, sent, first_byte_us })
    }

    /// The upstream's response on its way back to the agent; once its body has passed (or the
    /// agent dropped it), the response event is recorded with what was captured, and with what
    /// was measured of a streamed request body (`streamed`).
    pub(super) fn stream_back(
        &self,
        session: SessionContext,
        forwarded: Forwarded,
        capture_limit: usize,
        streamed: Option<StreamedPayload>,
    ) -> Response<GatewayBody> {
        let Forwarded { response, sent, first_byte_us } = forwarded;
        let (mut parts, upstream_body) = response.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        let status = parts.status;
        let recorded_headers = parts.headers.clone();
        let recorder = self.gateway.recorder.clone();
        let call = self.request_id.to_owned();
        let body = CapturingBody::new(upstream_body, capture_limit, move |captured| {
            let event = EventBody::Response(ResponseEvent {
                call,
                status: Some(status.as_u16()),
                headers: header_list(&recorded_headers),
                body: RecordedBody::captured(
                    &captured.prefix,
                    captured.size,
                    Hash256::from_bytes(captured.sha256),
                ),
                timings: Timings {
                    upstream_first_byte_us: Some(first_byte_us),
                    upstream_total_us: Some(sent.elapsed().as_micros() as u64),
                    ..Default::default()
                },
                upstream_error: captured.error,
                redacted: Vec::new(),
                request_body: streamed.as_ref().and_then(StreamedPayload::get),
            });
            if let Err(failure) = recorder.append_detached(&session, event) {
                tracing::error!(session = %session.session_id, %failure, "could not record a response");
            }
        });
        Response::from_parts(parts, body.map_err(|e| -> BoxError { Box::new(e) }).boxed_unsync())
    }

    /// A streamed body that did not match its declared sha256, cut off before its end: recorded
    /// with what the agent sent, and refused as S3 refuses it.
    fn switched_body(
        &self,
        session: &SessionContext,
        mismatch: &PayloadMismatch,
        streamed: Option<&StreamedPayload>,
    ) -> Refusal {
        let message = format!("{mismatch} (Chaperone gateway; request {})", self.request_id);
        self.record_response(
            session.clone(),
            StatusCode::BAD_REQUEST,
            &HeaderMap::new(),
            RecordedBody::empty(),
            Some(mismatch.to_string()),
            streamed.and_then(StreamedPayload::get),
        );
        self.refuse(StatusCode::BAD_REQUEST, "XAmzContentSHA256Mismatch", message)
    }

    /// A call that could not be forwarded (no upstream credentials, upstream unreachable):
    /// counted, its response recorded with `status` and the failure, and the agent answered
    /// 503 ServiceUnavailable with `message`.
    fn upstream_failure(
        &self,
        session: &SessionContext,
        service: &str,
        status: StatusCode,
        failure: String,
        message: String,
        streamed: Option<&StreamedPayload>,
    ) -> Refusal {
        self.gateway
            .metrics
            .upstream_errors_total
            .get_or_create(&ServiceLabels { service: service.to_owned() })
            .inc();
        self.record_response(
            session.clone(),
            status,
            &HeaderMap::new(),
            RecordedBody::empty(),
            Some(failure),
            streamed.and_then(StreamedPayload::get),
        );
        self.refuse(StatusCode::SERVICE_UNAVAILABLE, "ServiceUnavailable", message)
    }
}

/// An error and its causes, `: `-separated (a hyper error alone says only "error sending
/// request").
fn error_with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let inner_text = inner.to_string();
        if !text.contains(&inner_text) {
            text.push_str(": ");
            text.push_str(&inner_text);
        }
        cause = inner.source();
    }
    text
}

/// The payload mismatch among an error's causes, if the agent's body was cut off for one.
fn payload_mismatch<'e>(
    error: &'e (dyn std::error::Error + 'static),
) -> Option<&'e PayloadMismatch> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(inner) = cause {
        if let Some(mismatch) = inner.downcast_ref::<PayloadMismatch>() {
            return Some(mismatch);
        }
        cause = inner.source();
    }
    None
}
