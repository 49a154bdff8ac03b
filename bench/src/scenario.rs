//! The calls the benchmark makes, built and signed as an AWS SDK would: S3 path-style with
//! `x-amz-content-sha256` and single URI encoding, DynamoDB JSON with the body hash in the
//! signature only.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::{
    http_request::{
        PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
        UriPathNormalizationMode, sign,
    },
    sign::v4,
};
use bytes::Bytes;
use http::{HeaderValue, Method, Request};

use crate::upstream::DATA_BUCKET;

/// One small-call scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// `GetObject` of a 1 KiB object.
    GetObject1KiB,
    /// `PutObject` of a 1 KiB body (signed SHA-256).
    PutObject1KiB,
    /// DynamoDB `PutItem` with a ~1 KiB JSON item.
    DynamoDbPutItem,
}

impl Scenario {
    /// Every small-call scenario, in report order.
    pub const ALL: [Scenario; 3] =
        [Scenario::GetObject1KiB, Scenario::PutObject1KiB, Scenario::DynamoDbPutItem];

    /// The report's name.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::GetObject1KiB => "s3 GetObject 1 KiB",
            Scenario::PutObject1KiB => "s3 PutObject 1 KiB",
            Scenario::DynamoDbPutItem => "dynamodb PutItem",
        }
    }
}

/// Bytes that look like JSON records (what agents mostly move), deterministic per `seed`.
pub fn json_ish_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 64);
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    let mut n = 0u64;
    while out.len() < len {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let record = format!(
            "{{\"id\":{n},\"user\":\"agent-{:04}\",\"score\":{},\"tag\":\"{:08x}\"}}\n",
            (state >> 48) % 500,
            (state >> 20) % 100_000,
            state >> 32
        );
        out.extend_from_slice(record.as_bytes());
        n += 1;
    }
    out.truncate(len);
    out
}

/// The DynamoDB item body of `PutItem` number `n`.
fn put_item_body(n: u64) -> Vec<u8> {
    let payload = String::from_utf8(json_ish_bytes(800, n)).unwrap_or_default();
    serde_json::json!({
        "TableName": "bench-table",
        "Item": {
            "pk": {"S": format!("agent#{}", n % 1000)},
            "sk": {"S": format!("call#{n:012}")},
            "status": {"S": "ok"},
            "count": {"N": (n % 97).to_string()},
            "payload": {"S": payload},
        }
    })
    .to_string()
    .into_bytes()
}

/// Where requests go and with which credentials they are signed.
#[derive(Clone)]
pub struct Target {
    /// `http://127.0.0.1:<port>` the requests are sent to.
    pub base: String,
    /// The `Host` header and signed host (differs from `base` for a reverse proxy that rewrites
    /// `Host` to its upstream's).
    pub host: String,
    /// The signing credentials.
    pub credentials: Credentials,
}

impl Target {
    /// A target whose host is the one in `base`.
    pub fn new(base: &str, credentials: Credentials) -> Self {
        let host = base.trim_start_matches("http://").trim_end_matches('/').to_owned();
        Self { base: base.trim_end_matches('/').to_owned(), host, credentials }
    }
}

/// A signing failure (a bug in the bench: every input here is its own).
#[derive(Debug, thiserror::Error)]
#[error("signing a benchmark request: {0}")]
pub struct SignError(String);

/// Builds and signs request number `n` of `scenario`.
pub fn build(scenario: Scenario, target: &Target, n: u64) -> Result<Request<Bytes>, SignError> {
    match scenario {
        Scenario::GetObject1KiB => {
            let path = format!("/{DATA_BUCKET}/objects/doc-{:04}.json", n % 1000);
            signed(target, Method::GET, &path, &[], Bytes::new(), "s3", BodySigning::Sha256)
        }
        Scenario::PutObject1KiB => {
            let path = format!("/{DATA_BUCKET}/uploads/doc-{n:08}.json");
            let body = Bytes::from(json_ish_bytes(1024, n));
            let headers = [("content-type", "application/json")];
            signed(target, Method::PUT, &path, &headers, body, "s3", BodySigning::Sha256)
        }
        Scenario::DynamoDbPutItem => {
            let body = Bytes::from(put_item_body(n));
            let headers = [
                ("content-type", "application/x-amz-json-1.0"),
                ("x-amz-target", "DynamoDB_20120810.PutItem"),
            ];
            signed(target, Method::POST, "/", &headers, body, "dynamodb", BodySigning::InSignature)
        }
    }
}

/// Head of a streamed upload of `length` bytes to `key`: `UNSIGNED-PAYLOAD`, as the SDKs send
/// large S3 bodies over a connection they trust for integrity. The body is the caller's.
pub fn upload_head(target: &Target, key: &str, length: u64) -> Result<Request<()>, SignError> {
    let path = format!("/{DATA_BUCKET}/{key}");
    let length = length.to_string();
    let headers = [("content-type", "application/octet-stream"), ("content-length", &length)];
    let request =
        signed(target, Method::PUT, &path, &headers, Bytes::new(), "s3", BodySigning::Unsigned)?;
    Ok(request.map(|_| ()))
}

#[derive(Clone, Copy)]
enum BodySigning {
    /// `x-amz-content-sha256: <hex>` (S3).
    Sha256,
    /// The body's hash only inside the signature (JSON protocols).
    InSignature,
    /// `x-amz-content-sha256: UNSIGNED-PAYLOAD`.
    Unsigned,
}

fn signed(
    target: &Target,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
    body: Bytes,
    service: &str,
    body_signing: BodySigning,
) -> Result<Request<Bytes>, SignError> {
    let uri = format!("{}{}", target.base, path);
    let mut builder = Request::builder().method(method.clone()).uri(&uri);
    builder = builder.header("host", &target.host);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    if !matches!(body_signing, BodySigning::Unsigned) && (method != Method::GET) {
        builder = builder.header("content-length", body.len().to_string());
    }
    let mut request = builder.body(body).map_err(|e| SignError(e.to_string()))?;

    let mut settings = SigningSettings::default();
    match body_signing {
        BodySigning::Sha256 | BodySigning::Unsigned => {
            settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
            settings.percent_encoding_mode = PercentEncodingMode::Single;
            settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        }
        BodySigning::InSignature => {}
    }
    let identity = target.credentials.clone().into();
    let params: aws_sigv4::http_request::SigningParams<'_> = v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name(service)
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .map_err(|e| SignError(e.to_string()))?
        .into();
    let signable_body = match body_signing {
        BodySigning::Unsigned => SignableBody::UnsignedPayload,
        _ => SignableBody::Bytes(request.body()),
    };
    let instructions = {
        let header_pairs: Vec<(&str, &str)> = request
            .headers()
            .iter()
            .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)))
            .collect();
        let signable =
            SignableRequest::new(method.as_str(), &uri, header_pairs.into_iter(), signable_body)
                .map_err(|e| SignError(e.to_string()))?;
        sign(signable, &params).map_err(|e| SignError(e.to_string()))?.into_parts().0
    };
    instructions.apply_to_request_http1x(&mut request);
    let mut out = request;
    if matches!(body_signing, BodySigning::Unsigned) {
        out.headers_mut()
            .insert("x-amz-content-sha256", HeaderValue::from_static("UNSIGNED-PAYLOAD"));
    }
    Ok(out)
}
