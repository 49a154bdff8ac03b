//! The agents' port: every AWS call an agent makes arrives here.
//!
//! One call: unsigned AssumeRoleWithWebIdentity is answered by the identity exchange; everything
//! else is SigV4-verified against the session the gateway minted, classified, decided by the
//! connection's policy, recorded write-ahead, re-signed with the connection's upstream
//! credentials and forwarded, and its response streamed back while it is captured for the
//! recording.

use std::{
    collections::HashMap,
    convert::Infallible,
    sync::{Arc, RwLock},
    time::Instant,
};

use bytes::Bytes;
use chaperone_crds::FailureMode;
use chaperone_recording::{
    AwsCall, Body as RecordedBody, Decision, Denied, Effect, EventBody, Hash256,
    Request as RequestEvent, Response as ResponseEvent, Timings,
};
use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use hyper::{body::Incoming, service::service_fn};
use hyper_util::rt::{TokioExecutor, TokioIo};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio::net::TcpListener;

use crate::{
    approval::{ApprovalGate, ApprovalRules, BodyDigest, CallUnderReview},
    aws_error::{AwsError, ErrorShape},
    body::{CapturingBody, DechunkingBody, buffer_body, split_prefix},
    classify::{AwsRequest, Classification, Classifier, Protocol, ResourceContext},
    config::{ConnectionConfig, GatewayConfig},
    forward::{BoxError, OutboundPayload, OutboundRequest, UpstreamForwarder},
    identity::{
        AssumeRoleWithWebIdentityRequest, CallerIdentity, SessionContext, SessionError,
        WebIdentityExchange, sts::new_request_id,
    },
    metrics::{CallLabels, CodeLabels, GatewayMetrics, ServiceLabels},
    policy::{CompiledPolicy, PolicyDecision},
    record::EventRecorder,
    sigv4::{
        CredentialRejection, PayloadMode, RequestParts, SessionSecret, SigV2Presigned,
        SigV2PresignedVerifier, SigV4Error, SigV4Verifier, Verification, VerifiedRequest,
        is_sigv2_presigned,
    },
    upstream::UpstreamCredentialsProvider,
};

/// The body type of every response the gateway sends.
pub type GatewayBody = UnsyncBoxBody<Bytes, BoxError>;

/// Largest body buffered for services whose signature covers the body hash (JSON and query
/// protocols): their payloads are small by AWS's own limits.
pub const MAX_BUFFERED_BODY: usize = 16 * 1024 * 1024;
/// Bodies up to this size are buffered before forwarding (for classification and an exact
/// recording); larger S3 bodies stream.
pub const STREAM_THRESHOLD: u64 = 1024 * 1024;
/// How much of a body the classifier looks at.
const CLASSIFY_BODY_LIMIT: usize = 64 * 1024;
/// Largest unsigned STS request accepted.
const MAX_STS_BODY: usize = 64 * 1024;

/// Everything derived from one configuration; swapped whole on reload.
pub struct GatewayRuntime {
    /// The configuration.
    pub config: GatewayConfig,
    /// Each connection's compiled policy.
    pub policies: HashMap<String, CompiledPolicy>,
    /// AssumeRoleWithWebIdentity and session opening.
    pub exchange: WebIdentityExchange,
    /// ApprovalRules and their ApprovalRequests; `None` when the namespace has no rules.
    pub approvals: Option<ApprovalGate>,
}

/// The gateway: shared by every connection task.
pub struct Gateway {
    runtime: RwLock<Arc<GatewayRuntime>>,
    classifier: Classifier,
    forwarder: UpstreamForwarder,
    credentials: Arc<UpstreamCredentialsProvider>,
    metrics: Arc<GatewayMetrics>,
    recorder: Arc<dyn EventRecorder>,
}

/// Why a call stops at the gateway: an AWS-shaped error to send back.
struct Refusal {
    error: AwsError,
    shape: ErrorShape,
}

impl Gateway {
    /// A gateway over a compiled runtime.
    pub fn new(
        runtime: GatewayRuntime,
        gateway_hosts: Vec<String>,
        metrics: Arc<GatewayMetrics>,
        recorder: Arc<dyn EventRecorder>,
    ) -> Self {
        let forwarder = UpstreamForwarder::new();
        let credentials =
            Arc::new(UpstreamCredentialsProvider::new(forwarder.clone(), metrics.clone()));
        Self {
            runtime: RwLock::new(Arc::new(runtime)),
            classifier: Classifier::new(gateway_hosts),
            forwarder,
            credentials,
            metrics,
            recorder,
        }
    }

    /// Replaces the configuration; calls in flight finish under the one they started with.
    pub fn reload(&self, runtime: GatewayRuntime) {
        if let Ok(mut current) = self.runtime.write() {
            *current = Arc::new(runtime);
        }
        self.prime_upstream_credentials();
    }

    /// Fetches the connections' web identity credentials in the background, so the first call
    /// does not wait for STS (failures are logged, counted, and retried by calls).
    pub fn prime_upstream_credentials(&self) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let runtime = self.runtime();
        let credentials = self.credentials.clone();
        handle.spawn(async move {
            for connection in &runtime.config.connections {
                credentials.prime(&runtime.config.namespace, connection).await;
            }
        });
    }

    fn runtime(&self) -> Arc<GatewayRuntime> {
        match self.runtime.read() {
            Ok(runtime) => runtime.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Serves agents on `listener` until the task is dropped.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        loop {
            let (stream, _peer) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accepting a connection failed");
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let gateway = self.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request: Request<Incoming>| {
                    let gateway = gateway.clone();
                    async move { Ok::<_, Infallible>(gateway.handle(request).await) }
                });
                if let Err(error) =
                    hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(stream), service)
                        .await
                {
                    tracing::debug!(%error, "agent connection ended with an error");
                }
            });
        }
    }

    /// Handles one request from an agent.
    pub async fn handle(self: Arc<Self>, request: Request<Incoming>) -> Response<GatewayBody> {
        let request_id = new_request_id();
        let started = Instant::now();
        let runtime = self.runtime();
        if is_unsigned_sts(&request) {
            return self.assume_role_with_web_identity(&runtime, request, &request_id).await;
        }
        match self.call(&runtime, request, &request_id, started).await {
            Ok(response) => response,
            Err(refusal) => full(refusal.error.render(refusal.shape)),
        }
    }

    async fn assume_role_with_web_identity(
        &self,
        runtime: &GatewayRuntime,
        request: Request<Incoming>,
        request_id: &str,
    ) -> Response<GatewayBody> {
        let (parts, body) = request.into_parts();
        let query = parts.uri.query().unwrap_or("").to_owned();
        let body = match buffer_body(body, MAX_STS_BODY).await {
            Ok(body) => body,
            Err(error) => {
                return xml(
                    StatusCode::BAD_REQUEST,
                    sts_error_xml("ValidationError", &error.to_string(), request_id),
                );
            }
        };
        let parsed = match AssumeRoleWithWebIdentityRequest::parse(&query, &body) {
            Ok(parsed) => parsed,
            Err(error) => {
                return xml(
                    StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::BAD_REQUEST),
                    error.to_xml(request_id),
                );
            }
        };
        match runtime.exchange.assume_role_with_web_identity(&parsed).await {
            Ok(result) => {
                self.metrics.sessions_issued_total.inc();
                xml(StatusCode::OK, result.to_xml(request_id))
            }
            Err(error) => {
                self.metrics
                    .authentication_failures_total
                    .get_or_create(&CodeLabels { code: error.code.as_str().to_owned() })
                    .inc();
                xml(
                    StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::FORBIDDEN),
                    error.to_xml(request_id),
                )
            }
        }
    }

    async fn call(
        &self,
        runtime: &Arc<GatewayRuntime>,
        request: Request<Incoming>,
        request_id: &str,
        started: Instant,
    ) -> Result<Response<GatewayBody>, Refusal> {
        let (parts, body) = request.into_parts();
        let path = parts.uri.path().to_owned();
        let mut query = parts.uri.query().unwrap_or("").to_owned();
        let guessed_shape = guess_shape(&parts.headers, &query);

        // 1. Authenticate.
        let now = OffsetDateTime::now_utc();
        let exchange = &runtime.exchange;
        let lookup = |access_key_id: &str, token: Option<&str>, now: OffsetDateTime| {
            open_session(exchange, access_key_id, token, now)
        };
        let verifier = SigV4Verifier::new(lookup);
        let request_parts = RequestParts {
            method: parts.method.as_str(),
            raw_path: &path,
            raw_query: &query,
            headers: &parts.headers,
        };
        let auth_refusal = |error: SigV4Error, service: &str, shape: ErrorShape| {
            let code = error.aws_code(service);
            self.metrics
                .authentication_failures_total
                .get_or_create(&CodeLabels { code: code.to_owned() })
                .inc();
            tracing::info!(code, %error, "refused a request that did not authenticate");
            Refusal {
                error: AwsError::new(
                    StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::FORBIDDEN),
                    code,
                    error.to_string(),
                    request_id,
                ),
                shape,
            }
        };
        // SigV2 presigned S3 URL: verified into the same VerifiedRequest; from here on the query
        // is the parameters its signature covers.
        let verification = if is_sigv2_presigned(&query) {
            let presigned = verify_sigv2_presigned(&self.classifier, runtime, &request_parts, now)
                .map_err(|e| auth_refusal(e, "s3", ErrorShape::S3Xml))?;
            query = presigned.forward_query;
            Verification::Verified(presigned.verified)
        } else {
            verifier.verify(&request_parts, now).map_err(|e| auth_refusal(e, "", guessed_shape))?
        };

        // 2. Read (small) or prepare to stream (large) the body; finish body-hash signatures.
        let (verified, inbound) = match verification {
            Verification::BodyHashRequired(pending) => {
                let service = pending_service(&parts.headers);
                let bytes = buffer_body(body, MAX_BUFFERED_BODY).await.map_err(|e| Refusal {
                    error: AwsError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "RequestEntityTooLarge",
                        e.to_string(),
                        request_id,
                    ),
                    shape: guessed_shape,
                })?;
                let verified = pending
                    .finish_with_body(&bytes)
                    .map_err(|e| auth_refusal(e, &service, guessed_shape))?;
                let hash = sha256(&bytes);
                (verified, Inbound::Buffered { payload: bytes.clone(), wire: bytes, hash })
            }
            Verification::Verified(verified) => {
                let shape = shape_for_service(&verified.scope.service, guessed_shape);
                let inbound = read_verified_body(&verified, &parts.headers, body).await.map_err(
                    |e| match e {
                        InboundError::Auth(e) => auth_refusal(e, &verified.scope.service, shape),
                        InboundError::Read(message) => Refusal {
                            error: AwsError::new(
                                StatusCode::BAD_REQUEST,
                                "IncompleteBody",
                                message,
                                request_id,
                            ),
                            shape,
                        },
                    },
                )?;
                (verified, inbound)
            }
        };
        let session = verified.session.clone();
        let service = verified.scope.service.clone();
        let region = verified.scope.region.clone();
        let shape = shape_for_service(&service, guessed_shape);

        // 3. Classify.
        let connection = runtime.config.connection(&session.connection).ok_or_else(|| Refusal {
            error: AwsError::access_denied(
                format!(
                    "AgentConnection {}/{} no longer exists; the session's credentials are void",
                    session.namespace, session.connection
                ),
                request_id,
            ),
            shape,
        })?;
        let header_pairs: Vec<(&str, &str)> = parts
            .headers
            .iter()
            .filter_map(|(n, v)| v.to_str().ok().map(|v| (n.as_str(), v)))
            .collect();
        let (classify_body, body_truncated) = match &inbound {
            Inbound::Buffered { payload, .. } => {
                let end = payload.len().min(CLASSIFY_BODY_LIMIT);
                (Some(&payload[..end]), payload.len() > CLASSIFY_BODY_LIMIT)
            }
            Inbound::Streamed { .. } => (None, true),
        };
        let partition = if region.starts_with("cn-") {
            "aws-cn"
        } else if region.starts_with("us-gov-") {
            "aws-us-gov"
        } else {
            "aws"
        };
        let classification = self.classifier.classify(
            &AwsRequest {
                signing_name: &service,
                method: parts.method.as_str(),
                path: &path,
                query: &query,
                headers: &header_pairs,
                body: classify_body,
                body_truncated,
            },
            &ResourceContext { partition, region: &region, account_id: "*" },
        );
        let shape = classification.protocol.map(shape_for_protocol).unwrap_or(shape);
        let actions: Vec<String> =
            classification.actions.iter().map(|a| a.action.clone()).collect();
        let resources: Vec<String> =
            classification.actions.iter().flat_map(|a| a.resources.iter().cloned()).collect();
        let first_action = actions.first().cloned().unwrap_or_else(|| format!("{service}:Unknown"));
        let aws_call = AwsCall {
            service: service.clone(),
            operation: classification.operation.unwrap_or("Unknown").to_owned(),
            actions: actions.clone(),
            resources,
        };
        let recording = runtime.config.recording_policies.get(&connection.recording_policy);
        let capture_limit = recording
            .map(|p| usize::try_from(p.capture.max_body_bytes).unwrap_or(usize::MAX))
            .unwrap_or(1024 * 1024);
        let fail_open = recording.is_some_and(|p| p.on_failure == FailureMode::FailOpen);
        let call_id = request_id.to_owned();
        let request_headers = header_list(&parts.headers);
        let request_query = query_pairs(&query);
        // Streamed bodies: the first `capture_limit` bytes are read (bounded) for the record.
        let inbound = match inbound {
            Inbound::Streamed { body, size, declared_sha256, payload, .. } if capture_limit > 0 => {
                let (prefix, rest) =
                    split_prefix(body, capture_limit).await.map_err(|e| Refusal {
                        error: AwsError::new(
                            StatusCode::BAD_REQUEST,
                            "IncompleteBody",
                            e.to_string(),
                            request_id,
                        ),
                        shape,
                    })?;
                Inbound::Streamed {
                    body: rest.boxed_unsync(),
                    size,
                    declared_sha256,
                    payload,
                    prefix,
                }
            }
            other => other,
        };
        let request_body = inbound.recorded_body(capture_limit);
        let decide_us = started.elapsed().as_micros() as u64;
        let labels = |decision: &str| CallLabels {
            connection: connection.name.clone(),
            service: service.clone(),
            action: first_action.clone(),
            decision: decision.to_owned(),
        };

        // 4. Decide.
        let policy = runtime.policies.get(&connection.name);
        let decision = match policy {
            Some(policy) => policy.decide(&classification.actions),
            None => PolicyDecision::Deny {
                object: format!("AgentConnection/{}/{}", session.namespace, connection.name),
                rule: "policy".into(),
                message: "the connection's policy did not compile; see the operator's conditions"
                    .into(),
            },
        };
        // 4b. Approval rules: an allowed call that one matches waits here for reviewers.
        let (decision, approval_us) = match (decision, &runtime.approvals) {
            (PolicyDecision::Allow, Some(gate)) => {
                let call = CallUnderReview {
                    session: &session,
                    actions: &actions,
                    resources: &aws_call.resources,
                    method: parts.method.as_str(),
                    raw_path: &path,
                    raw_query: &query,
                    content_type: parts
                        .headers
                        .get(header::CONTENT_TYPE)
                        .and_then(|v| v.to_str().ok()),
                    body: inbound.body_digest(),
                    body_preview: match &inbound {
                        Inbound::Buffered { payload, .. } => Some(&payload[..]),
                        Inbound::Streamed { .. } => None,
                    },
                };
                self.hold_for_approval(gate, call, &call_id).await
            }
            (decision, _) => (decision, None),
        };
        if let PolicyDecision::Deny { object, rule, message } = decision {
            self.metrics.calls_total.get_or_create(&labels("denied")).inc();
            let message = format!("{message} (Chaperone gateway; request {request_id})");
            tracing::info!(session = %session.session_id, connection = %connection.name, action = %first_action, %rule, "denied");
            let error = AwsError::access_denied(message.clone(), request_id);
            let event = EventBody::Denied(Denied {
                call: call_id,
                method: parts.method.to_string(),
                path: path.clone(),
                query: request_query,
                headers: request_headers,
                body: request_body,
                aws: aws_call,
                decision: Decision { effect: Effect::Deny, object: Some(object), rule: Some(rule) },
                timings: Timings { decide_us: Some(decide_us), approval_us, ..Default::default() },
                status: error.status.as_u16(),
                error_code: error.code.clone(),
                message,
                redacted: Vec::new(),
            });
            if let Err(failure) = self.recorder.append(&session, event).await {
                tracing::warn!(session = %session.session_id, %failure, "could not record a denial");
            }
            return Err(Refusal { error, shape });
        }

        // 5. Record the request, write-ahead.
        let request_event = EventBody::Request(RequestEvent {
            call: call_id.clone(),
            method: parts.method.to_string(),
            path: path.clone(),
            query: request_query,
            headers: request_headers,
            body: request_body,
            aws: aws_call,
            decision: Decision {
                effect: Effect::Allow,
                object: Some(format!("AgentConnection/{}/{}", session.namespace, connection.name)),
                rule: Some("policy.allow".into()),
            },
            timings: Timings { decide_us: Some(decide_us), approval_us, ..Default::default() },
            redacted: Vec::new(),
        });
        if let Err(failure) = self.recorder.append(&session, request_event).await {
            if fail_open {
                tracing::error!(session = %session.session_id, %failure, "forwarding UNRECORDED: RecordingPolicy onFailure is FailOpen");
                self.metrics.calls_total.get_or_create(&labels("forwarded_unrecorded")).inc();
            } else {
                self.metrics.calls_total.get_or_create(&labels("refused_unrecorded")).inc();
                tracing::error!(session = %session.session_id, %failure, "refused a call it could not record");
                return Err(Refusal {
                    error: AwsError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "ServiceUnavailable",
                        format!(
                            "the gateway cannot record this call ({failure}) and RecordingPolicy {} says FailClosed; retry later or ask the platform team to check the recorder (request {request_id})",
                            connection.recording_policy
                        ),
                        request_id,
                    ),
                    shape,
                });
            }
        }
        self.metrics.calls_total.get_or_create(&labels("allowed")).inc();

        // 6. Answer locally what only describes the session itself.
        if classification.operation == Some("GetCallerIdentity") && service == "sts" {
            let body = CallerIdentity::of_session(&session).to_xml(request_id);
            let response = xml(StatusCode::OK, body.clone());
            self.record_response(
                session,
                call_id,
                StatusCode::OK,
                &HeaderMap::new(),
                RecordedBody::complete(body.as_bytes()),
                None,
                started,
            );
            return Ok(response);
        }

        // 7. Re-sign and forward.
        let forward_started = Instant::now();
        let outbound =
            build_outbound(&parts, &verified, inbound, &classification, &path, &query, &region);
        let endpoint = UpstreamForwarder::endpoint_for(&connection.endpoints, &outbound);
        let upstream_credentials = match self
            .credentials
            .credentials(&runtime.config.namespace, connection, &session.service_account)
            .await
        {
            Ok(credentials) => credentials,
            Err(failure) => {
                tracing::warn!(session = %session.session_id, connection = %connection.name, %failure, "no upstream credentials for the call");
                let message = format!(
                    "the gateway could not get upstream credentials for AgentConnection {}/{}: {failure}; check the role's trust policy and the gateway's credentials, then retry (request {request_id})",
                    runtime.config.namespace, connection.name
                );
                return Err(self.upstream_failure(
                    session,
                    call_id,
                    &service,
                    StatusCode::SERVICE_UNAVAILABLE,
                    failure.to_string(),
                    message,
                    request_id,
                    shape,
                    started,
                ));
            }
        };
        let upstream = match self.forwarder.send(&endpoint, outbound, &upstream_credentials).await {
            Ok(response) => response,
            Err(error) => {
                tracing::warn!(session = %session.session_id, %error, "upstream call failed");
                let message = format!(
                    "the gateway could not reach {endpoint}: {error} (request {request_id})"
                );
                return Err(self.upstream_failure(
                    session,
                    call_id,
                    &service,
                    StatusCode::BAD_GATEWAY,
                    error.to_string(),
                    message,
                    request_id,
                    shape,
                    started,
                ));
            }
        };
        let first_byte_us = forward_started.elapsed().as_micros() as u64;
        self.metrics
            .call_duration_seconds
            .get_or_create(&ServiceLabels { service: service.clone() })
            .observe(started.elapsed().as_secs_f64());

        // 8. Stream the response back, captured for the recording.
        let (mut response_parts, upstream_body) = upstream.into_parts();
        strip_hop_by_hop(&mut response_parts.headers);
        let status = response_parts.status;
        let recorded_headers = response_parts.headers.clone();
        let recorder = self.recorder.clone();
        let body = CapturingBody::new(upstream_body, capture_limit, move |captured| {
            let event = EventBody::Response(ResponseEvent {
                call: call_id,
                status: Some(status.as_u16()),
                headers: header_list(&recorded_headers),
                body: RecordedBody::captured(
                    &captured.prefix,
                    captured.size,
                    Hash256::from_bytes(captured.sha256),
                ),
                timings: Timings {
                    upstream_first_byte_us: Some(first_byte_us),
                    upstream_total_us: Some(forward_started.elapsed().as_micros() as u64),
                    ..Default::default()
                },
                upstream_error: captured.error,
                redacted: Vec::new(),
            });
            tokio::spawn(async move {
                if let Err(failure) = recorder.append(&session, event).await {
                    tracing::error!(session = %session.session_id, %failure, "could not record a response");
                }
            });
        });
        Ok(Response::from_parts(
            response_parts,
            body.map_err(|e| -> BoxError { Box::new(e) }).boxed_unsync(),
        ))
    }

    /// Holds a call an ApprovalRule matches until reviewers decide and records its `approval`
    /// event (before the request event). Returns the decision and how long the call was held.
    async fn hold_for_approval(
        &self,
        gate: &ApprovalGate,
        call: CallUnderReview<'_>,
        call_id: &str,
    ) -> (PolicyDecision, Option<u64>) {
        let held_since = Instant::now();
        let Some(held) = gate.review(&call).await else {
            return (PolicyDecision::Allow, None);
        };
        let session = call.session;
        let decision = match held {
            Ok(result) => {
                let event = EventBody::Approval(result.event(call_id));
                if let Err(failure) = self.recorder.append(session, event).await {
                    tracing::warn!(session = %session.session_id, %failure, "could not record an approval");
                }
                result.decision()
            }
            Err(error) => {
                tracing::error!(session = %session.session_id, connection = %session.connection, action = ?call.actions, %error, "approval store failed; refusing the held call");
                error.decision(&session.namespace)
            }
        };
        (decision, Some(held_since.elapsed().as_micros() as u64))
    }

    /// A call that could not be forwarded (no upstream credentials, upstream unreachable):
    /// counted, its response recorded with `status` and the failure, and the agent answered
    /// 503 ServiceUnavailable with `message`.
    #[allow(clippy::too_many_arguments)]
    fn upstream_failure(
        &self,
        session: SessionContext,
        call: String,
        service: &str,
        status: StatusCode,
        failure: String,
        message: String,
        request_id: &str,
        shape: ErrorShape,
        started: Instant,
    ) -> Refusal {
        self.metrics
            .upstream_errors_total
            .get_or_create(&ServiceLabels { service: service.to_owned() })
            .inc();
        self.record_response(
            session,
            call,
            status,
            &HeaderMap::new(),
            RecordedBody::empty(),
            Some(failure),
            started,
        );
        Refusal {
            error: AwsError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailable",
                message,
                request_id,
            ),
            shape,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn record_response(
        &self,
        session: SessionContext,
        call: String,
        status: StatusCode,
        headers: &HeaderMap,
        body: RecordedBody,
        upstream_error: Option<String>,
        started: Instant,
    ) {
        let event = EventBody::Response(ResponseEvent {
            call,
            status: Some(status.as_u16()),
            headers: header_list(headers),
            body,
            timings: Timings {
                upstream_total_us: Some(started.elapsed().as_micros() as u64),
                ..Default::default()
            },
            upstream_error,
            redacted: Vec::new(),
        });
        let recorder = self.recorder.clone();
        tokio::spawn(async move {
            if let Err(failure) = recorder.append(&session, event).await {
                tracing::error!(session = %session.session_id, %failure, "could not record a response");
            }
        });
    }
}

/// The agent's request body, as the data path holds it.
enum Inbound {
    /// Read whole: `wire` as received, `payload` decoded (differs for aws-chunked), `hash` of payload.
    Buffered { wire: Bytes, payload: Bytes, hash: [u8; 32] },
    /// Streams through; `declared` is what the request says of its size and hash.
    Streamed {
        body: GatewayBody,
        size: Option<u64>,
        declared_sha256: Option<[u8; 32]>,
        payload: OutboundPayload,
        /// The first bytes, read ahead for the write-ahead record.
        prefix: Bytes,
    },
}

impl Inbound {
    fn recorded_body(&self, limit: usize) -> RecordedBody {
        match self {
            Inbound::Buffered { payload, hash, .. } => {
                let end = payload.len().min(limit);
                RecordedBody::captured(
                    &payload[..end],
                    payload.len() as u64,
                    Hash256::from_bytes(*hash),
                )
            }
            Inbound::Streamed { size, declared_sha256, prefix, .. } => RecordedBody::captured(
                &prefix[..prefix.len().min(limit)],
                size.unwrap_or(0),
                Hash256::from_bytes(declared_sha256.unwrap_or([0; 32])),
            ),
        }
    }
}

impl Inbound {
    /// The body as an approval fingerprint sees it.
    fn body_digest(&self) -> BodyDigest {
        match self {
            Inbound::Buffered { hash, .. } => BodyDigest::Sha256(*hash),
            Inbound::Streamed { declared_sha256: Some(hash), .. } => {
                BodyDigest::DeclaredSha256(*hash)
            }
            Inbound::Streamed { size, .. } => BodyDigest::DeclaredSize(*size),
        }
    }
}

enum InboundError {
    Auth(SigV4Error),
    Read(String),
}

async fn read_verified_body(
    verified: &VerifiedRequest<SessionContext>,
    headers: &HeaderMap,
    body: Incoming,
) -> Result<Inbound, InboundError> {
    let content_length = header_u64(headers, header::CONTENT_LENGTH.as_str());
    let decoded_length = header_u64(headers, "x-amz-decoded-content-length");
    let small = |length: Option<u64>| length.is_some_and(|l| l <= STREAM_THRESHOLD);
    match verified.payload {
        PayloadMode::Sha256 { expected } if small(content_length) || content_length.is_none() => {
            let bytes = buffer_body(body, MAX_BUFFERED_BODY)
                .await
                .map_err(|e| InboundError::Read(e.to_string()))?;
            let hash = sha256(&bytes);
            if hash != expected {
                return Err(InboundError::Auth(SigV4Error::ContentSha256Mismatch {
                    expected: hex::encode(expected),
                    computed: hex::encode(hash),
                }));
            }
            Ok(Inbound::Buffered { payload: bytes.clone(), wire: bytes, hash })
        }
        PayloadMode::Unsigned | PayloadMode::BodyHashVerified
            if small(content_length) || content_length.is_none() =>
        {
            let bytes = buffer_body(body, MAX_BUFFERED_BODY)
                .await
                .map_err(|e| InboundError::Read(e.to_string()))?;
            let hash = sha256(&bytes);
            Ok(Inbound::Buffered { payload: bytes.clone(), wire: bytes, hash })
        }
        PayloadMode::Sha256 { expected } => Ok(Inbound::Streamed {
            body: body.map_err(|e| -> BoxError { Box::new(e) }).boxed_unsync(),
            size: content_length,
            declared_sha256: Some(expected),
            payload: OutboundPayload::Sha256Hex(hex::encode(expected)),
            prefix: Bytes::new(),
        }),
        PayloadMode::Unsigned | PayloadMode::BodyHashVerified => Ok(Inbound::Streamed {
            body: body.map_err(|e| -> BoxError { Box::new(e) }).boxed_unsync(),
            size: content_length,
            declared_sha256: None,
            payload: OutboundPayload::Unsigned,
            prefix: Bytes::new(),
        }),
        PayloadMode::StreamingSigned { .. } | PayloadMode::StreamingUnsignedTrailer => {
            let Some(mut decoder) = verified.chunked_payload_verifier() else {
                return Err(InboundError::Read("an aws-chunked body without a decoder".into()));
            };
            if small(decoded_length) {
                let wire = buffer_body(body, MAX_BUFFERED_BODY)
                    .await
                    .map_err(|e| InboundError::Read(e.to_string()))?;
                let mut payload = Vec::new();
                decoder.feed(&wire, &mut payload).map_err(InboundError::Auth)?;
                decoder.finish().map_err(InboundError::Auth)?;
                let hash = sha256(&payload);
                Ok(Inbound::Buffered { wire, payload: Bytes::from(payload), hash })
            } else if matches!(verified.payload, PayloadMode::StreamingUnsignedTrailer) {
                Ok(Inbound::Streamed {
                    body: body.map_err(|e| -> BoxError { Box::new(e) }).boxed_unsync(),
                    size: decoded_length,
                    declared_sha256: None,
                    payload: OutboundPayload::StreamingUnsignedTrailer,
                    prefix: Bytes::new(),
                })
            } else {
                // Verified chunk by chunk here, re-chunked and re-signed upstream.
                let payload = match decoded_length {
                    Some(decoded_length) => OutboundPayload::StreamingSigned { decoded_length },
                    None => OutboundPayload::Unsigned,
                };
                Ok(Inbound::Streamed {
                    body: DechunkingBody::new(body, decoder).boxed_unsync(),
                    size: decoded_length,
                    declared_sha256: None,
                    payload,
                    prefix: Bytes::new(),
                })
            }
        }
    }
}

/// Headers that describe an aws-chunked encoding and go away once the gateway decoded it.
const CHUNKED_ONLY_HEADERS: &[&str] = &["x-amz-decoded-content-length", "x-amz-trailer"];

/// Unsigned headers forwarded anyway: transport and SDK bookkeeping that AWS accepts unsigned.
fn forward_unsigned(name: &str) -> bool {
    matches!(
        name,
        "content-length"
            | "content-type"
            | "content-encoding"
            | "content-md5"
            | "user-agent"
            | "x-amz-user-agent"
            | "amz-sdk-invocation-id"
            | "amz-sdk-request"
            | "x-amz-decoded-content-length"
            | "x-amz-trailer"
            | "x-amz-sdk-checksum-algorithm"
    ) || name.starts_with("x-amz-checksum-")
}

fn build_outbound(
    parts: &http::request::Parts,
    verified: &VerifiedRequest<SessionContext>,
    inbound: Inbound,
    classification: &Classification,
    path: &str,
    query: &str,
    region: &str,
) -> OutboundRequest {
    let mut headers = HeaderMap::new();
    for (name, value) in &parts.headers {
        if crate::forward::is_forwardable(name)
            && (verified.is_header_signed(name.as_str()) || forward_unsigned(name.as_str()))
        {
            headers.append(name.clone(), value.clone());
        }
    }
    let chunked = matches!(
        verified.payload,
        PayloadMode::StreamingSigned { .. } | PayloadMode::StreamingUnsignedTrailer
    );
    let (body, payload) = match inbound {
        Inbound::Buffered { wire, payload, hash } => {
            if matches!(verified.payload, PayloadMode::StreamingUnsignedTrailer) {
                (
                    Full::new(wire).map_err(|e| match e {}).boxed_unsync(),
                    OutboundPayload::StreamingUnsignedTrailer,
                )
            } else {
                if chunked {
                    decode_chunked_headers(&mut headers, payload.len() as u64);
                }
                (
                    Full::new(payload).map_err(|e| match e {}).boxed_unsync(),
                    OutboundPayload::Sha256Hex(hex::encode(hash)),
                )
            }
        }
        Inbound::Streamed { body, size, payload, .. } => {
            if chunked && payload != OutboundPayload::StreamingUnsignedTrailer {
                decode_chunked_headers(&mut headers, size.unwrap_or(0));
            }
            (body, payload)
        }
    };
    // Virtual-host-style S3 goes upstream path-style: the bucket moves from the Host into the path.
    let mut path_and_query = path.to_owned();
    if classification.s3_addressing == Some(crate::classify::S3Addressing::VirtualHost)
        && let Some(bucket) = &classification.s3_bucket
    {
        path_and_query = format!("/{bucket}{path}");
    }
    if !query.is_empty() {
        path_and_query.push('?');
        path_and_query.push_str(query);
    }
    OutboundRequest {
        method: parts.method.clone(),
        path_and_query,
        headers,
        body,
        service: verified.scope.service.clone(),
        endpoint_prefix: classification.endpoint_prefix.map(str::to_owned),
        region: region.to_owned(),
        payload,
    }
}

/// After decoding aws-chunked: the body is plain bytes of `length`.
fn decode_chunked_headers(headers: &mut HeaderMap, length: u64) {
    for name in CHUNKED_ONLY_HEADERS {
        headers.remove(*name);
    }
    if let Some(encoding) = headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok()) {
        let rest: Vec<&str> = encoding
            .split(',')
            .map(str::trim)
            .filter(|e| !e.eq_ignore_ascii_case("aws-chunked") && !e.is_empty())
            .collect();
        if rest.is_empty() {
            headers.remove(header::CONTENT_ENCODING);
        } else if let Ok(value) = HeaderValue::from_str(&rest.join(", ")) {
            headers.insert(header::CONTENT_ENCODING, value);
        }
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
}

fn open_session(
    exchange: &WebIdentityExchange,
    access_key_id: &str,
    token: Option<&str>,
    now: OffsetDateTime,
) -> Result<SessionSecret<SessionContext>, CredentialRejection> {
    let Some(token) = token else {
        return Err(CredentialRejection::InvalidToken {
            reason: "the request carries no X-Amz-Security-Token; sign with the session credentials the gateway issued".into(),
        });
    };
    match exchange.minter().open(access_key_id, token, now) {
        Ok(opened) => Ok(SessionSecret {
            secret_access_key: opened.secret_access_key.expose().to_owned(),
            session: opened.context,
        }),
        Err(SessionError::Expired { expired_at }) => {
            Err(CredentialRejection::Expired { expired_at: Some(expired_at) })
        }
        Err(error) => Err(CredentialRejection::InvalidToken { reason: error.to_string() }),
    }
}

/// Verifies an S3 SigV2 presigned URL: the session's secret as for SigV4, the bucket of a
/// virtual-host-style Host as the classifier reads it, the connection's region upstream.
fn verify_sigv2_presigned(
    classifier: &Classifier,
    runtime: &Arc<GatewayRuntime>,
    request: &RequestParts<'_>,
    now: OffsetDateTime,
) -> Result<SigV2Presigned<SessionContext>, SigV4Error> {
    let exchange = &runtime.exchange;
    let lookup = |access_key_id: &str, token: Option<&str>, now: OffsetDateTime| {
        open_session(exchange, access_key_id, token, now)
    };
    let config = &runtime.config;
    let verifier = SigV2PresignedVerifier::new(
        lookup,
        |session: &SessionContext| {
            config
                .connection(&session.connection)
                .map(|connection| connection.region.clone())
                .unwrap_or_default()
        },
        |session: &SessionContext| Some(session.expires_at),
    );
    let host = request.headers.get(header::HOST).and_then(|value| value.to_str().ok());
    let bucket = classifier.s3_virtual_host_bucket(host);
    verifier.verify(request, bucket.as_deref(), now)
}

/// An unsigned STS call: no Authorization header and no presigned signature.
fn is_unsigned_sts<B>(request: &Request<B>) -> bool {
    let query = request.uri().query().unwrap_or("");
    !request.headers().contains_key(header::AUTHORIZATION)
        && !query.to_ascii_lowercase().contains("x-amz-signature=")
        && (request.method() == http::Method::POST || query.contains("AssumeRoleWithWebIdentity"))
}

fn pending_service(headers: &HeaderMap) -> String {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|auth| auth.split("Credential=").nth(1))
        .and_then(|cred| cred.split('/').nth(3))
        .unwrap_or("")
        .to_owned()
}

fn guess_shape(headers: &HeaderMap, query: &str) -> ErrorShape {
    let service = pending_service(headers);
    if !service.is_empty() {
        return shape_for_service(&service, ErrorShape::Json);
    }
    if headers.contains_key("x-amz-target") {
        ErrorShape::Json
    } else if query.contains("X-Amz-Credential") || query.contains("x-amz-credential") {
        ErrorShape::S3Xml
    } else {
        ErrorShape::QueryXml
    }
}

fn shape_for_service(service: &str, fallback: ErrorShape) -> ErrorShape {
    match service {
        "s3" => ErrorShape::S3Xml,
        "ec2" => ErrorShape::Ec2Xml,
        "sts" | "iam" | "sns" | "cloudformation" | "monitoring" => ErrorShape::QueryXml,
        "dynamodb" | "kms" | "secretsmanager" | "ssm" | "logs" | "ecr" | "events" | "states"
        | "kinesis" | "sqs" => ErrorShape::Json,
        "lambda" | "eks" | "bedrock" => ErrorShape::RestJson,
        _ => fallback,
    }
}

fn shape_for_protocol(protocol: Protocol) -> ErrorShape {
    match protocol {
        Protocol::Json | Protocol::RpcV2Cbor => ErrorShape::Json,
        Protocol::Query => ErrorShape::QueryXml,
        Protocol::Ec2 => ErrorShape::Ec2Xml,
        Protocol::RestJson => ErrorShape::RestJson,
        Protocol::RestXml => ErrorShape::S3Xml,
    }
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse().ok())
}

fn header_list(headers: &HeaderMap) -> Vec<(String, String)> {
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

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    for name in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
        "te",
        "trailer",
    ] {
        headers.remove(HeaderName::from_static(name));
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn full(response: Response<Bytes>) -> Response<GatewayBody> {
    response.map(|b| Full::new(b).map_err(|e| match e {}).boxed_unsync())
}

fn xml(status: StatusCode, body: String) -> Response<GatewayBody> {
    let mut response =
        Response::new(Full::new(Bytes::from(body)).map_err(|e| match e {}).boxed_unsync());
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    response
}

fn sts_error_xml(code: &str, message: &str, request_id: &str) -> String {
    let rendered = AwsError::new(StatusCode::BAD_REQUEST, code, message, request_id)
        .render(ErrorShape::QueryXml);
    String::from_utf8_lossy(rendered.body()).into_owned()
}

impl GatewayRuntime {
    /// Compiles a configuration and the session keys into a runtime.
    pub fn build(
        config: GatewayConfig,
        session_keys: crate::identity::SessionKeys,
        kube: Option<kube::Client>,
    ) -> anyhow::Result<Self> {
        let policies = config
            .connections
            .iter()
            .map(|c: &ConnectionConfig| {
                CompiledPolicy::compile(&config.namespace, &c.name, &c.policy)
                    .map(|p| (c.name.clone(), p))
            })
            .collect::<Result<HashMap<_, _>, _>>()?;
        let exchange =
            WebIdentityExchange::from_config(config.identity_config(), session_keys, kube.clone())?;
        let rules = ApprovalRules::compile(&config.approval_rules)?;
        let approvals = match (rules.is_empty(), kube) {
            (true, _) => None,
            (false, Some(client)) => Some(ApprovalGate::new(client, &config.namespace, rules)),
            (false, None) => anyhow::bail!(
                "the configuration has approvalRules, which need the Kubernetes API for ApprovalRequests: run in a cluster or pass --kubeconfig"
            ),
        };
        Ok(Self { config, policies, exchange, approvals })
    }
}
