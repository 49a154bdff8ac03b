//! In-process tests of `Gateway::handle`: the real data path (SigV4 verification of credentials
//! the gateway minted, classification, policy, re-signing, forwarding) between an agent request
//! signed by `aws-sigv4` and a local upstream that counts what reaches it. At the recorder seam an
//! in-memory [`EventRecorder`] keeps the events in order, and can refuse them with a given
//! [`RecordError`] to exercise FailClosed and FailOpen.

use std::{
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use bytes::Bytes;
use chaperone_recording::EventBody;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};
use tokio::net::TcpListener;

use crate::{
    forward::{OutboundPayload, OutboundRequest, UpstreamForwarder},
    identity::AgentIdentity,
    metrics::GatewayMetrics,
    record::{EventRecorder, RecordError, RecordFuture},
    server::{Gateway, GatewayRuntime},
};
use chaperone_config::{GatewayConfig, SessionKey, SessionKeys, UpstreamCredentials};

/// Keeps every event it accepts, in order; refuses all of them with `failure` when one is set.
#[derive(Default)]
struct MemoryRecorder {
    events: Mutex<Vec<EventBody>>,
    failure: Mutex<Option<RecordError>>,
}

impl MemoryRecorder {
    fn failing(failure: RecordError) -> Self {
        Self { events: Mutex::default(), failure: Mutex::new(Some(failure)) }
    }

    /// The kinds of the events recorded so far (`request`, `response`, `denied`, ...).
    fn kinds(&self) -> Vec<&'static str> {
        self.events.lock().unwrap().iter().map(EventBody::type_name).collect()
    }

    /// The call id each event names.
    fn calls(&self) -> Vec<String> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter_map(|event| match event {
                EventBody::Request(e) => Some(e.call.clone()),
                EventBody::Response(e) => Some(e.call.clone()),
                EventBody::Denied(e) => Some(e.call.clone()),
                _ => None,
            })
            .collect()
    }
}

impl EventRecorder for MemoryRecorder {
    fn append<'a>(
        &'a self,
        session: &'a crate::identity::SessionContext,
        event: EventBody,
    ) -> RecordFuture<'a> {
        let result = self.append_detached(session, event);
        Box::pin(async move { result })
    }

    fn append_detached(
        &self,
        _session: &crate::identity::SessionContext,
        event: EventBody,
    ) -> Result<(), crate::record::RecordError> {
        match self.failure.lock().unwrap().clone() {
            Some(failure) => Err(failure),
            None => {
                self.events.lock().unwrap().push(event);
                Ok(())
            }
        }
    }
}

/// A plain-HTTP upstream that answers every request 200 and counts them.
async fn counting_upstream() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                let service = service_fn(move |_request| {
                    counted.fetch_add(1, Ordering::SeqCst);
                    async {
                        let mut response = Response::new(Full::new(Bytes::from_static(
                            b"<ListAllMyBucketsResult><Buckets/></ListAllMyBucketsResult>",
                        )));
                        response.headers_mut().insert(
                            header::CONTENT_TYPE,
                            HeaderValue::from_static("application/xml"),
                        );
                        Ok::<_, std::convert::Infallible>(response)
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (address, count)
}

/// A gateway for namespace `agents` with one connection, `prod-aws`, whose S3 and STS go to
/// `upstream`, allowing `s3:ListAllMyBuckets` and `sts:GetCallerIdentity` and denying `s3:Delete*`,
/// recorded under a RecordingPolicy with `on_failure`.
struct Harness {
    address: SocketAddr,
    credentials: UpstreamCredentials,
    recorder: Arc<MemoryRecorder>,
    upstream_calls: Arc<AtomicUsize>,
}

impl Harness {
    async fn start(on_failure: &str, recorder: MemoryRecorder) -> Self {
        // The forwarder's TLS client needs a provider, as in the binary's main.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (upstream, upstream_calls) = counting_upstream().await;
        let config = GatewayConfig::parse(&format!(
            r#"
version: 1
namespace: agents
identity:
  issuer: https://127.0.0.1:6443
connections:
- name: prod-aws
  serviceAccounts: [pr-bot]
  region: us-east-1
  upstream: {{accessKeyId: AKIAUPSTREAM, secretAccessKey: upstream-secret}}
  endpoints: {{s3: "http://{upstream}", sts: "http://{upstream}"}}
  policy: {{allow: ["s3:ListAllMyBuckets", "sts:GetCallerIdentity"], deny: ["s3:Delete*"]}}
  recordingPolicy: default
recordingPolicies:
  default:
    s3: {{bucket: audit, prefix: agents/, region: us-east-1}}
    retention: {{days: 30}}
    onFailure: {on_failure}
"#
        ))
        .unwrap();
        let keys = SessionKeys::new(SessionKey::new("test", vec![7u8; 32]).unwrap(), None).unwrap();
        let runtime = GatewayRuntime::build(config, keys, None).unwrap();
        let minted = runtime
            .exchange
            .minter()
            .mint(
                &AgentIdentity {
                    subject: "system:serviceaccount:agents:pr-bot".into(),
                    namespace: "agents".into(),
                    service_account: "pr-bot".into(),
                    service_account_uid: "0b1c".into(),
                    pod: None,
                    token_id: None,
                    token_expires_at: OffsetDateTime::now_utc() + Duration::hours(1),
                },
                "prod-aws",
                "pr-bot",
                Duration::minutes(15),
            )
            .unwrap();
        let credentials = UpstreamCredentials {
            access_key_id: minted.access_key_id,
            secret_access_key: chaperone_config::Redacted(
                minted.secret_access_key.expose().to_owned(),
            ),
            session_token: Some(chaperone_config::Redacted(minted.session_token)),
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let recorder = Arc::new(recorder);
        let gateway = Arc::new(Gateway::new(
            runtime,
            vec![address.to_string()],
            Arc::new(GatewayMetrics::default()),
            recorder.clone(),
        ));
        tokio::spawn(gateway.serve(listener));
        Self { address, credentials, recorder, upstream_calls }
    }

    /// Sends one SigV4-signed call as an agent holding the minted session credentials would.
    async fn send(
        &self,
        service: &str,
        method: Method,
        path: &str,
        body: &'static [u8],
    ) -> (StatusCode, String) {
        let mut headers = HeaderMap::new();
        if service != "s3" {
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-www-form-urlencoded; charset=utf-8"),
            );
        }
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        let request = OutboundRequest {
            method,
            path_and_query: path.to_owned(),
            headers,
            body: Full::new(Bytes::from_static(body)).map_err(|e| match e {}).boxed_unsync(),
            service: service.to_owned(),
            endpoint_prefix: None,
            region: "us-east-1".into(),
            payload: OutboundPayload::Sha256Hex(hex::encode(Sha256::digest(body))),
        };
        let response = UpstreamForwarder::new()
            .send(&format!("http://{}", self.address), request, &self.credentials)
            .await
            .unwrap();
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        (parts.status, String::from_utf8_lossy(&body).into_owned())
    }

    async fn list_buckets(&self) -> (StatusCode, String) {
        self.send("s3", Method::GET, "/", b"").await
    }

    /// The recorded events once the response event (written after the body ends) is in.
    async fn settled_kinds(&self, expected: usize) -> Vec<&'static str> {
        for _ in 0..500 {
            if self.recorder.kinds().len() >= expected {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        self.recorder.kinds()
    }
}

#[tokio::test]
async fn an_allowed_call_is_recorded_before_it_is_forwarded_and_its_response_after() {
    let harness = Harness::start("FailClosed", MemoryRecorder::default()).await;
    let (status, body) = harness.list_buckets().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("ListAllMyBucketsResult"), "{body}");
    assert_eq!(harness.upstream_calls.load(Ordering::SeqCst), 1);
    assert_eq!(harness.settled_kinds(2).await, ["request", "response"]);
    let calls = harness.recorder.calls();
    assert_eq!(calls[0], calls[1], "request and response name the same call");
}

#[tokio::test]
async fn a_denied_call_is_recorded_as_denied_and_never_forwarded() {
    let harness = Harness::start("FailClosed", MemoryRecorder::default()).await;
    let (status, body) = harness.send("s3", Method::DELETE, "/some-bucket", b"").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("<Code>AccessDenied</Code>"), "{body}");
    assert!(body.contains("s3:DeleteBucket"), "{body}");
    assert_eq!(harness.upstream_calls.load(Ordering::SeqCst), 0);
    assert_eq!(harness.recorder.kinds(), ["denied"]);
}

#[tokio::test]
async fn a_denied_call_keeps_only_a_small_part_of_its_body_and_marks_it_truncated() {
    let harness = Harness::start("FailClosed", MemoryRecorder::default()).await;
    let body: &'static [u8] =
        Vec::leak((0..64 * 1024).map(|i| b'a' + (i % 26) as u8).collect::<Vec<u8>>());
    let (status, answer) = harness.send("s3", Method::DELETE, "/some-bucket", body).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert_eq!(harness.upstream_calls.load(Ordering::SeqCst), 0);
    let events = harness.recorder.events.lock().unwrap();
    let [EventBody::Denied(denied)] = events.as_slice() else {
        panic!("one denied event: {events:?}");
    };
    assert!(denied.body.truncated);
    assert_eq!(denied.body.captured_bytes().unwrap(), &body[..super::decide::DENIED_BODY_CAP]);
    assert_eq!(denied.body.size, body.len() as u64);
    assert_eq!(denied.body.sha256.to_string(), hex::encode(Sha256::digest(body)));
}

#[tokio::test]
async fn get_caller_identity_is_answered_by_the_gateway_and_recorded() {
    let harness = Harness::start("FailClosed", MemoryRecorder::default()).await;
    let (status, body) = harness
        .send("sts", Method::POST, "/", b"Action=GetCallerIdentity&Version=2011-06-15")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.contains("<GetCallerIdentityResult>"), "{body}");
    assert_eq!(harness.upstream_calls.load(Ordering::SeqCst), 0);
    assert_eq!(harness.settled_kinds(2).await, ["request", "response"]);
}

#[tokio::test]
async fn fail_closed_refuses_a_call_when_the_spool_is_full_and_says_to_retry_later() {
    let recorder = MemoryRecorder::failing(RecordError::SpoolFull {
        used: 1024,
        limit: 1024,
        last_error: Some("AccessDenied".into()),
    });
    let harness = Harness::start("FailClosed", recorder).await;
    let (status, body) = harness.list_buckets().await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("<Code>ServiceUnavailable</Code>"), "{body}");
    assert!(body.contains("the recording spool is full (1024 of 1024 bytes used)"), "{body}");
    assert!(body.contains("RecordingPolicy default says FailClosed; retry later"), "{body}");
    assert_eq!(
        harness.upstream_calls.load(Ordering::SeqCst),
        0,
        "nothing unrecorded goes upstream"
    );
}

#[tokio::test]
async fn fail_closed_tells_a_session_that_already_ended_to_get_new_credentials() {
    let recorder = MemoryRecorder::failing(RecordError::SessionEnded {
        session: "0193".into(),
        why: "recovered".into(),
    });
    let harness = Harness::start("FailClosed", recorder).await;
    let (status, body) = harness.list_buckets().await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(body.contains("<Code>ExpiredToken</Code>"), "{body}");
    assert!(
        body.contains("session 0193 already ended on this gateway replica (recovered); the agent must obtain new credentials by calling AssumeRoleWithWebIdentity again"),
        "{body}"
    );
    assert!(!body.contains("retry later"), "{body}");
    assert_eq!(harness.upstream_calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn fail_open_forwards_a_call_it_cannot_record() {
    let recorder =
        MemoryRecorder::failing(RecordError::Unavailable { reason: "spool volume failed".into() });
    let harness = Harness::start("FailOpen", recorder).await;
    let (status, body) = harness.list_buckets().await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(harness.upstream_calls.load(Ordering::SeqCst), 1);
    assert!(harness.recorder.kinds().is_empty());
}
