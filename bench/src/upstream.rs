//! [`FastUpstream`]: a local stand-in for S3 and DynamoDB that answers in their shapes and
//! verifies every request's SigV4 signature with the gateway's own verifier, so the gateway's
//! re-signing is exercised on every benchmarked call.
//!
//! - S3 (path style): `GET /<bucket>/<key>` answers [`OBJECT_BYTES`] bytes; `PUT /<bucket>/<key>`
//!   reads the body (checking its signed SHA-256 or its aws-chunked signatures) and answers with
//!   an ETag; errors are S3 XML.
//! - DynamoDB (`POST /`, `X-Amz-Target: DynamoDB_20120810.*`): `PutItem` answers `{}`, `GetItem`
//!   an item; errors are DynamoDB JSON.
//! - Bytes PUT to any bucket other than [`DATA_BUCKET`] are the recorder's uploads: counted in
//!   [`UpstreamCounters::recording_bytes`], and per bucket ([`UpstreamCounters::recording_bytes_in`]).

use std::{
    collections::HashMap,
    convert::Infallible,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use bytes::Bytes;
use chaperone_gateway::sigv4::{
    CredentialRejection, RequestParts, SessionSecret, SigV4Verifier, Verification,
};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::{body::Incoming, service::service_fn};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// The bucket the load generator reads and writes.
pub const DATA_BUCKET: &str = "bench-data";
/// Size of every object `GET` answers.
pub const OBJECT_BYTES: usize = 1024;

/// What the upstream saw.
#[derive(Debug, Default)]
pub struct UpstreamCounters {
    /// Requests whose signature (and body hash or chunk signatures) verified.
    pub verified: AtomicU64,
    /// Requests refused because their signature did not verify.
    pub signature_failures: AtomicU64,
    /// Body bytes of PUTs to buckets other than [`DATA_BUCKET`] (the recorder's objects).
    pub recording_bytes: AtomicU64,
    /// Recorder objects received.
    pub recording_objects: AtomicU64,
    /// Body bytes received in total.
    pub body_bytes: AtomicU64,
    /// [`UpstreamCounters::recording_bytes`] by bucket (each recording gateway has its own).
    pub recording_bytes_by_bucket: Mutex<HashMap<String, u64>>,
}

impl UpstreamCounters {
    /// (verified, signature failures).
    pub fn verification(&self) -> (u64, u64) {
        (self.verified.load(Ordering::Relaxed), self.signature_failures.load(Ordering::Relaxed))
    }

    /// Recorder bytes PUT to `bucket` so far.
    pub fn recording_bytes_in(&self, bucket: &str) -> u64 {
        let by_bucket = self.recording_bytes_by_bucket.lock().unwrap_or_else(|e| e.into_inner());
        by_bucket.get(bucket).copied().unwrap_or(0)
    }
}

/// The running upstream.
pub struct FastUpstream {
    /// `127.0.0.1:<port>`.
    pub address: SocketAddr,
    /// What it saw so far.
    pub counters: Arc<UpstreamCounters>,
    /// The last signature failure's message, for reports.
    pub last_failure: Arc<std::sync::Mutex<Option<String>>>,
}

struct Keys {
    access_key_id: String,
    secret_access_key: String,
}

struct State {
    keys: Keys,
    counters: Arc<UpstreamCounters>,
    last_failure: Arc<std::sync::Mutex<Option<String>>>,
    object: Bytes,
}

impl FastUpstream {
    /// Starts serving on a free loopback port; requests must be signed with these keys.
    pub async fn start(access_key_id: &str, secret_access_key: &str) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let counters = Arc::new(UpstreamCounters::default());
        let last_failure = Arc::new(std::sync::Mutex::new(None));
        let state = Arc::new(State {
            keys: Keys {
                access_key_id: access_key_id.into(),
                secret_access_key: secret_access_key.into(),
            },
            counters: counters.clone(),
            last_failure: last_failure.clone(),
            object: Bytes::from(crate::scenario::json_ish_bytes(OBJECT_BYTES, 7)),
        });
        tokio::spawn(serve(listener, state));
        Ok(Self { address, counters, last_failure })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }
}

async fn serve(listener: TcpListener, state: Arc<State>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let _ = stream.set_nodelay(true);
        let state = state.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(handle(&state, request).await) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

enum Shape {
    S3,
    DynamoDb,
}

fn shape(headers: &HeaderMap) -> Shape {
    if headers.contains_key("x-amz-target") { Shape::DynamoDb } else { Shape::S3 }
}

async fn handle(state: &State, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let shape = shape(&parts.headers);
    let raw_path = parts.uri.path().to_owned();
    let raw_query = parts.uri.query().unwrap_or("").to_owned();
    let verifier = SigV4Verifier::new(
        |access_key_id: &str, _token: Option<&str>, _now: time::OffsetDateTime| {
            if access_key_id == state.keys.access_key_id {
                Ok(SessionSecret {
                    secret_access_key: chaperone_config::Redacted(
                        state.keys.secret_access_key.clone(),
                    ),
                    session: (),
                })
            } else {
                Err(CredentialRejection::UnknownAccessKey)
            }
        },
    );
    let now = time::OffsetDateTime::now_utc();
    let request_parts = RequestParts {
        method: parts.method.as_str(),
        raw_path: &raw_path,
        raw_query: &raw_query,
        headers: &parts.headers,
    };
    let verification = verifier.verify(&request_parts, now);
    let (_verified, (body_bytes, body_length)) = match verification {
        Err(error) => return refuse(state, &shape, error.to_string()),
        Ok(Verification::BodyHashRequired(pending)) => {
            let body = match body.collect().await {
                Ok(body) => body.to_bytes(),
                Err(error) => return refuse(state, &shape, format!("reading the body: {error}")),
            };
            match pending.finish_with_body(&body) {
                Ok(verified) => {
                    let length = body.len() as u64;
                    (verified, (body, length))
                }
                Err(error) => return refuse(state, &shape, error.to_string()),
            }
        }
        Ok(Verification::Verified(verified)) => match read_checked_body(&verified, body).await {
            Ok(body) => (verified, body),
            Err(message) => return refuse(state, &shape, message),
        },
    };
    state.counters.verified.fetch_add(1, Ordering::Relaxed);
    match shape {
        Shape::DynamoDb => dynamodb(&parts.headers, &body_bytes),
        Shape::S3 => s3(state, &parts.method, &raw_path, body_length),
    }
}

/// Reads a body, checking it against its signed SHA-256 or decoding and checking its aws-chunked
/// signatures; keeps its first 64 KiB and returns its full (decoded) length.
async fn read_checked_body(
    verified: &chaperone_gateway::sigv4::VerifiedRequest<()>,
    mut body: Incoming,
) -> Result<(Bytes, u64), String> {
    const KEEP: usize = 64 * 1024;
    let mut kept = Vec::new();
    let mut hash = verified.body_hash_verifier();
    let mut chunked = verified.chunked_payload_verifier();
    let mut decoded = Vec::new();
    let mut total = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("reading the body: {e}"))?;
        let Ok(data) = frame.into_data() else { continue };
        let payload: &[u8] = if let Some(chunked) = chunked.as_mut() {
            decoded.clear();
            chunked.feed(&data, &mut decoded).map_err(|e| e.to_string())?;
            &decoded
        } else {
            &data
        };
        if let Some(hash) = hash.as_mut() {
            hash.update(payload);
        }
        total += payload.len() as u64;
        if kept.len() < KEEP {
            let room = KEEP - kept.len();
            kept.extend_from_slice(&payload[..payload.len().min(room)]);
        }
    }
    if let Some(hash) = hash {
        hash.finish().map_err(|e| e.to_string())?;
    }
    if let Some(chunked) = chunked {
        chunked.finish().map_err(|e| e.to_string())?;
    }
    Ok((Bytes::from(kept), total))
}

fn refuse(state: &State, shape: &Shape, message: String) -> Response<Full<Bytes>> {
    state.counters.signature_failures.fetch_add(1, Ordering::Relaxed);
    if let Ok(mut last) = state.last_failure.lock() {
        *last = Some(message.clone());
    }
    match shape {
        Shape::S3 => xml(
            StatusCode::FORBIDDEN,
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SignatureDoesNotMatch</Code><Message>{}</Message><RequestId>bench</RequestId></Error>",
                escape(&message)
            ),
        ),
        Shape::DynamoDb => json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"__type": "com.amazon.coral.service#InvalidSignatureException", "message": message})
                .to_string(),
        ),
    }
}

fn s3(state: &State, method: &Method, raw_path: &str, length: u64) -> Response<Full<Bytes>> {
    let mut segments = raw_path.trim_start_matches('/').splitn(2, '/');
    let bucket = segments.next().unwrap_or_default();
    let key = segments.next().unwrap_or_default();
    match *method {
        Method::GET if !key.is_empty() => Response::builder()
            .status(StatusCode::OK)
            .header("content-type", "application/octet-stream")
            .header("etag", "\"0123456789abcdef0123456789abcdef\"")
            .header("x-amz-request-id", "BENCH0000000000")
            .body(Full::new(state.object.clone()))
            .unwrap_or_default(),
        Method::PUT if !key.is_empty() => {
            state.counters.body_bytes.fetch_add(length, Ordering::Relaxed);
            if bucket != DATA_BUCKET {
                state.counters.recording_bytes.fetch_add(length, Ordering::Relaxed);
                state.counters.recording_objects.fetch_add(1, Ordering::Relaxed);
                let mut by_bucket = state
                    .counters
                    .recording_bytes_by_bucket
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                *by_bucket.entry(bucket.to_owned()).or_default() += length;
            }
            Response::builder()
                .status(StatusCode::OK)
                .header("etag", "\"0123456789abcdef0123456789abcdef\"")
                .header("x-amz-request-id", "BENCH0000000000")
                .body(Full::new(Bytes::new()))
                .unwrap_or_default()
        }
        _ => xml(
            StatusCode::NOT_IMPLEMENTED,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NotImplemented</Code><Message>the bench upstream serves GetObject and PutObject</Message></Error>".into(),
        ),
    }
}

fn dynamodb(headers: &HeaderMap, body: &Bytes) -> Response<Full<Bytes>> {
    let target = headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or_default();
    match target {
        "DynamoDB_20120810.PutItem" => json(StatusCode::OK, "{}".into()),
        "DynamoDB_20120810.GetItem" => {
            let key = serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v.get("Key").cloned())
                .unwrap_or_default();
            json(StatusCode::OK, serde_json::json!({"Item": key}).to_string())
        }
        other => json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({"__type": "com.amazon.coral.service#UnknownOperationException", "message": format!("the bench upstream does not serve {other}")})
                .to_string(),
        ),
    }
}

fn xml(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/xml")
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default()
}

fn json(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.0")
        .header("x-amzn-requestid", "BENCH0000000000")
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
