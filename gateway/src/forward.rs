//! Re-signing and forwarding to AWS (or a connection's endpoint override), streaming both ways.
//!
//! The agent's request arrives signed with credentials the gateway minted; here it is signed again
//! with the connection's upstream credentials by `aws-sigv4` and sent through one pooled hyper client
//! (rustls, HTTP/1.1 and h2). Bodies are never buffered here: for S3 the client's own payload hash
//! (or UNSIGNED-PAYLOAD) is reused, so an upload streams straight through.

use std::{collections::BTreeMap, time::SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::{
    http_request::{
        PayloadChecksumKind, PercentEncodingMode, SessionTokenMode, SignableBody, SignableRequest,
        SigningSettings, UriPathNormalizationMode, sign,
    },
    sign::v4,
};
use bytes::Bytes;
use chaperone_recording::{AWS_CHUNKED_HEADERS, HOP_HEADERS};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, Uri, header};
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use hyper::body::Incoming;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};

use crate::{
    body::Inbound,
    classify::{Classification, OperationTable, S3Addressing},
    identity::SessionContext,
    partition::{Partition, is_region_name, is_signing_name},
    sigv4::{PayloadMode, VerifiedRequest},
};
use chaperone_config::UpstreamCredentials;

/// The body type sent upstream.
pub type OutboundBody = UnsyncBoxBody<Bytes, BoxError>;
/// Errors carried by bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How the outbound payload is signed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutboundPayload {
    /// The payload's hex sha256 is known (the client's `x-amz-content-sha256`, or computed over a
    /// small buffered body).
    Sha256Hex(String),
    /// `UNSIGNED-PAYLOAD` (S3 only).
    Unsigned,
    /// `STREAMING-UNSIGNED-PAYLOAD-TRAILER` (S3 aws-chunked with trailing checksums).
    StreamingUnsignedTrailer,
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`: the body (plain payload of `decoded_length` bytes,
    /// already verified chunk by chunk) is re-chunked and every chunk signed with the gateway's
    /// credentials, chained from the outbound request's signature.
    StreamingSigned {
        /// Payload bytes (`x-amz-decoded-content-length`).
        decoded_length: u64,
    },
}

/// Chunk size of re-signed aws-chunked uploads.
pub const RESIGNED_CHUNK_BYTES: usize = 64 * 1024;

/// A request ready to be re-signed and sent.
pub struct OutboundRequest {
    /// HTTP method.
    pub method: Method,
    /// Path and query exactly as the client sent them (still percent-encoded).
    pub path_and_query: String,
    /// Headers to forward (hop-by-hop and the client's auth headers already removed).
    pub headers: HeaderMap,
    /// The body, streamed.
    pub body: OutboundBody,
    /// Signing name of the service, e.g. `s3`, `dynamodb`.
    pub service: String,
    /// Endpoint prefix of the service when it differs from the signing name (e.g.
    /// `bedrock-runtime` for signing name `bedrock`).
    pub endpoint_prefix: Option<String>,
    /// Region to sign for and send to.
    pub region: String,
    /// How the payload is signed.
    pub payload: OutboundPayload,
}

/// Why a call could not be forwarded.
#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    /// The endpoint override or the derived endpoint is not a usable URL.
    #[error("upstream endpoint {endpoint:?} for service {service} is not a valid URL: {reason}")]
    Endpoint {
        /// The endpoint.
        endpoint: String,
        /// The service.
        service: String,
        /// Why.
        reason: String,
    },
    /// Signing failed.
    #[error("re-signing the call for {service} failed: {0}", service = .1)]
    Signing(String, String),
    /// The upstream could not be reached or broke the connection.
    #[error("upstream {endpoint} did not answer: {source}")]
    Upstream {
        /// The endpoint.
        endpoint: String,
        /// The transport error.
        source: hyper_util::client::legacy::Error,
    },
}

/// Whether a header from the agent is forwarded upstream.
pub fn is_forwardable(name: &HeaderName) -> bool {
    !HOP_HEADERS.contains(&name.as_str())
}

/// Unsigned headers forwarded anyway: transport and SDK bookkeeping that AWS accepts unsigned.
pub(crate) fn forward_unsigned(name: &str) -> bool {
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

impl OutboundRequest {
    /// The outbound form of an agent's verified request: its signed (and harmless unsigned)
    /// headers, its body (aws-chunked decoded where the gateway verified the chunks), and, for
    /// virtual-host-style S3, the bucket moved from the Host into the path.
    pub fn from_agent(
        parts: &http::request::Parts,
        verified: &VerifiedRequest<SessionContext>,
        inbound: Inbound,
        classification: &Classification,
    ) -> Self {
        let mut headers = HeaderMap::new();
        for (name, value) in &parts.headers {
            if is_forwardable(name)
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
                        OutboundPayload::Sha256Hex(chaperone_recording::lower_hex(hash)),
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
        let path = parts.uri.path();
        let query = parts.uri.query().unwrap_or("");
        // Virtual-host-style S3 goes upstream path-style: the bucket moves from the Host into the path.
        let mut path_and_query = path.to_owned();
        if classification.s3_addressing == Some(S3Addressing::VirtualHost)
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
            region: verified.scope.region.clone(),
            payload,
        }
    }
}

/// After decoding aws-chunked: the body is plain bytes of `length`.
fn decode_chunked_headers(headers: &mut HeaderMap, length: u64) {
    for name in AWS_CHUNKED_HEADERS {
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

/// Removes the hop-by-hop headers of an upstream response before it goes back to the agent.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
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

/// The default AWS endpoint for a service in a region.
pub fn default_endpoint(endpoint_prefix: &str, region: &str) -> String {
    let partition = Partition::of_region(region);
    match endpoint_prefix {
        // Global services, signed in us-east-1.
        "iam" if partition.has_global_iam() => "https://iam.amazonaws.com".into(),
        prefix => format!("https://{prefix}.{region}.{}", partition.dns_suffix()),
    }
}

/// Why a call has no upstream endpoint. Nothing from the client's credential scope goes into an
/// upstream URL unless it passed the grammar checked here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// The credential scope's region is not a region name.
    #[error(
        "the credential scope names region {region:?}, which is not an AWS region name (lowercase words and a number, such as us-east-1 or us-gov-west-1); sign the request for the region you mean (AWS_REGION, or the client's region setting)"
    )]
    Region {
        /// The region as the client wrote it.
        region: String,
    },
    /// The credential scope's service is not a signing name.
    #[error(
        "the credential scope names service {service:?}, which is not an AWS signing name (lowercase letters, digits and '-', such as s3 or execute-api); sign the request with the service's own signing name"
    )]
    Service {
        /// The service as the client wrote it.
        service: String,
    },
    /// Neither a model nor the connection says where the service is.
    #[error(
        "no endpoint is known for service {service}: the gateway has no model of it and AgentConnection {connection} names none; set spec.aws.endpoints.{service} on the AgentConnection"
    )]
    UnknownService {
        /// The service.
        service: String,
        /// `<namespace>/<name>` of the connection.
        connection: String,
    },
}

/// Checks the credential scope's region and service against their grammar (before either is
/// used anywhere: resources, endpoints, signing).
pub fn check_scope(region: &str, service: &str) -> Result<(), EndpointError> {
    if !is_region_name(region) {
        return Err(EndpointError::Region { region: region.to_owned() });
    }
    if !is_signing_name(service) {
        return Err(EndpointError::Service { service: service.to_owned() });
    }
    Ok(())
}

/// Where a call for `service` in `region` goes upstream: the connection's `endpoints` override
/// for the service, else the partition's endpoint for the model's endpoint prefix (`model_prefix`,
/// the classified operation's, or the one the models signed as `service` share). Region and
/// service must pass [`check_scope`] first, override or not; a service with neither is refused.
pub fn resolve_endpoint(
    overrides: &BTreeMap<String, String>,
    namespace: &str,
    connection: &str,
    service: &str,
    model_prefix: Option<&'static str>,
    region: &str,
) -> Result<String, EndpointError> {
    check_scope(region, service)?;
    if let Some(endpoint) = overrides.get(service) {
        return Ok(endpoint.clone());
    }
    let prefix = model_prefix.or_else(|| model_endpoint_prefix(service)).ok_or_else(|| {
        EndpointError::UnknownService {
            service: service.to_owned(),
            connection: format!("{namespace}/{connection}"),
        }
    })?;
    Ok(default_endpoint(prefix, region))
}

/// The endpoint prefix of the models signed as `service`: the one named like the service, else the
/// one they all share; `None` when there is no model or the models disagree.
fn model_endpoint_prefix(service: &str) -> Option<&'static str> {
    let models = OperationTable::get().services_signed_as(service);
    if let Some(model) = models.iter().find(|m| m.endpoint_prefix == service) {
        return Some(model.endpoint_prefix);
    }
    let first = models.first()?.endpoint_prefix;
    models.iter().all(|m| m.endpoint_prefix == first).then_some(first)
}

/// The region a service is signed for (IAM is global, signed in us-east-1).
pub fn signing_region<'a>(service: &str, region: &'a str) -> &'a str {
    if service == "iam" && Partition::of_region(region).has_global_iam() {
        "us-east-1"
    } else {
        region
    }
}

/// Sends re-signed calls upstream over a shared connection pool.
#[derive(Clone)]
pub struct UpstreamForwarder {
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, OutboundBody>,
}

impl Default for UpstreamForwarder {
    fn default() -> Self {
        Self::new()
    }
}

impl UpstreamForwarder {
    /// A forwarder with a pooled HTTPS (and plain HTTP, for endpoint overrides) client.
    pub fn new() -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_webpki_roots()
            .https_or_http()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(std::time::Duration::from_secs(60))
            .pool_max_idle_per_host(64)
            .build(https);
        Self { client }
    }

    /// Builds the signed upstream request (separate from sending, so it can be tested).
    pub fn sign(
        endpoint: &str,
        request: OutboundRequest,
        credentials: &UpstreamCredentials,
        now: SystemTime,
    ) -> Result<Request<OutboundBody>, ForwardError> {
        let endpoint_error = |reason: String| ForwardError::Endpoint {
            endpoint: endpoint.to_owned(),
            service: request.service.clone(),
            reason,
        };
        let base: Uri =
            endpoint.parse().map_err(|e: http::uri::InvalidUri| endpoint_error(e.to_string()))?;
        let authority =
            base.authority().ok_or_else(|| endpoint_error("it has no host".into()))?.clone();
        let scheme = base.scheme_str().unwrap_or("https");
        let base_path = base.path().trim_end_matches('/');
        let uri: Uri = format!("{scheme}://{authority}{base_path}{}", request.path_and_query)
            .parse()
            .map_err(|e: http::uri::InvalidUri| endpoint_error(e.to_string()))?;

        let is_s3 = request.service == "s3";
        let mut headers = request.headers;
        headers.insert(
            header::HOST,
            HeaderValue::from_str(authority.as_str()).map_err(|e| endpoint_error(e.to_string()))?,
        );
        let payload_header = match &request.payload {
            OutboundPayload::Sha256Hex(hash) => hash.clone(),
            OutboundPayload::Unsigned => "UNSIGNED-PAYLOAD".into(),
            OutboundPayload::StreamingUnsignedTrailer => {
                "STREAMING-UNSIGNED-PAYLOAD-TRAILER".into()
            }
            OutboundPayload::StreamingSigned { .. } => "STREAMING-AWS4-HMAC-SHA256-PAYLOAD".into(),
        };
        if let OutboundPayload::StreamingSigned { decoded_length } = request.payload {
            let encoding = match headers.get(header::CONTENT_ENCODING).and_then(|v| v.to_str().ok())
            {
                Some(other) if !other.is_empty() => format!("aws-chunked, {other}"),
                _ => "aws-chunked".to_owned(),
            };
            let value = HeaderValue::from_str(&encoding)
                .map_err(|e| ForwardError::Signing(e.to_string(), request.service.clone()))?;
            headers.insert(header::CONTENT_ENCODING, value);
            headers.insert("x-amz-decoded-content-length", HeaderValue::from(decoded_length));
            headers.insert(
                header::CONTENT_LENGTH,
                HeaderValue::from(crate::body::signed_chunked_length(
                    decoded_length,
                    RESIGNED_CHUNK_BYTES as u64,
                )),
            );
        }
        if is_s3 {
            headers.insert(
                "x-amz-content-sha256",
                HeaderValue::from_str(&payload_header)
                    .map_err(|e| ForwardError::Signing(e.to_string(), request.service.clone()))?,
            );
        }

        let mut settings = SigningSettings::default();
        settings.percent_encoding_mode =
            if is_s3 { PercentEncodingMode::Single } else { PercentEncodingMode::Double };
        settings.uri_path_normalization_mode = if is_s3 {
            UriPathNormalizationMode::Disabled
        } else {
            UriPathNormalizationMode::Enabled
        };
        settings.payload_checksum_kind = PayloadChecksumKind::NoHeader;
        settings.session_token_mode = SessionTokenMode::Include;

        let identity = Credentials::new(
            &credentials.access_key_id,
            credentials.secret_access_key.as_str(),
            credentials.session_token.as_ref().map(|t| t.0.clone()),
            None,
            "chaperone-gateway",
        )
        .into();
        let region = signing_region(&request.service, &request.region).to_owned();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&region)
            .name(&request.service)
            .time(now)
            .settings(settings)
            .build()
            .map_err(|e| ForwardError::Signing(e.to_string(), request.service.clone()))?
            .into();
        let header_pairs: Vec<(&str, &str)> = headers
            .iter()
            .filter_map(|(name, value)| value.to_str().ok().map(|v| (name.as_str(), v)))
            .collect();
        let body = match &request.payload {
            OutboundPayload::Sha256Hex(hash) => SignableBody::Precomputed(hash.clone()),
            OutboundPayload::Unsigned => SignableBody::UnsignedPayload,
            OutboundPayload::StreamingUnsignedTrailer => {
                SignableBody::StreamingUnsignedPayloadTrailer
            }
            OutboundPayload::StreamingSigned { .. } => {
                SignableBody::Precomputed("STREAMING-AWS4-HMAC-SHA256-PAYLOAD".into())
            }
        };
        let uri_string = uri.to_string();
        let signable = SignableRequest::new(
            request.method.as_str(),
            &uri_string,
            header_pairs.into_iter(),
            body,
        )
        .map_err(|e| ForwardError::Signing(e.to_string(), request.service.clone()))?;
        let (instructions, seed_signature) = sign(signable, &params)
            .map_err(|e| ForwardError::Signing(e.to_string(), request.service.clone()))?
            .into_parts();

        let mut outbound = Request::builder()
            .method(request.method)
            .uri(uri)
            .body(())
            .map_err(|e| ForwardError::Signing(e.to_string(), request.service.clone()))?;
        *outbound.headers_mut() = headers;
        instructions.apply_to_request_http1x(&mut outbound);
        let body = if matches!(request.payload, OutboundPayload::StreamingSigned { .. }) {
            let amz_date = outbound
                .headers()
                .get("x-amz-date")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let date = amz_date.get(..8).unwrap_or_default().to_owned();
            let key = crate::sigv4::SigningKey::derive(
                &credentials.secret_access_key,
                &date,
                &region,
                &request.service,
            );
            let scope = format!("{date}/{region}/{}/aws4_request", request.service);
            crate::body::ChunkSigningBody::new(
                request.body,
                RESIGNED_CHUNK_BYTES,
                key,
                amz_date,
                scope,
                seed_signature,
            )
            .boxed_unsync()
        } else {
            request.body
        };
        Ok(outbound.map(|()| body))
    }

    /// Signs and sends; the response body streams back untouched.
    pub async fn send(
        &self,
        endpoint: &str,
        request: OutboundRequest,
        credentials: &UpstreamCredentials,
    ) -> Result<Response<Incoming>, ForwardError> {
        let outbound = Self::sign(endpoint, request, credentials, SystemTime::now())?;
        self.send_signed(endpoint, outbound).await
    }

    /// Sends a request that is already signed (or needs no signature) to `endpoint`.
    pub async fn send_signed(
        &self,
        endpoint: &str,
        request: Request<OutboundBody>,
    ) -> Result<Response<Incoming>, ForwardError> {
        self.client
            .request(request)
            .await
            .map_err(|source| ForwardError::Upstream { endpoint: endpoint.to_owned(), source })
    }
}

#[cfg(test)]
mod tests {
    use chaperone_config::Redacted;
    use http_body_util::{BodyExt, Empty};

    use super::*;

    fn credentials() -> UpstreamCredentials {
        UpstreamCredentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: Redacted("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into()),
            session_token: None,
        }
    }

    fn request(service: &str, path: &str, payload: OutboundPayload) -> OutboundRequest {
        OutboundRequest {
            method: Method::GET,
            path_and_query: path.into(),
            headers: HeaderMap::new(),
            body: Empty::new().map_err(|e| match e {}).boxed_unsync(),
            service: service.into(),
            endpoint_prefix: None,
            region: "eu-west-1".into(),
            payload,
        }
    }

    #[test]
    fn default_endpoints_are_regional_except_iam() {
        assert_eq!(default_endpoint("s3", "eu-west-1"), "https://s3.eu-west-1.amazonaws.com");
        assert_eq!(default_endpoint("iam", "eu-west-1"), "https://iam.amazonaws.com");
        assert_eq!(
            default_endpoint("sts", "cn-north-1"),
            "https://sts.cn-north-1.amazonaws.com.cn"
        );
        assert_eq!(signing_region("iam", "eu-west-1"), "us-east-1");
    }

    #[test]
    fn endpoints_come_from_overrides_or_the_models_never_from_client_text() {
        let overrides: BTreeMap<String, String> =
            [("execute-api".to_owned(), "https://api.example.com".to_owned())].into();
        let resolve = |service: &str, prefix: Option<&'static str>, region: &str| {
            resolve_endpoint(&overrides, "ns", "conn", service, prefix, region)
        };
        assert_eq!(resolve("s3", None, "eu-west-1").unwrap(), "https://s3.eu-west-1.amazonaws.com");
        assert_eq!(
            resolve("ecr", None, "cn-north-1").unwrap(),
            "https://api.ecr.cn-north-1.amazonaws.com.cn"
        );
        assert_eq!(
            resolve("monitoring", None, "us-gov-west-1").unwrap(),
            "https://monitoring.us-gov-west-1.amazonaws.com"
        );
        assert_eq!(resolve("iam", None, "eu-west-1").unwrap(), "https://iam.amazonaws.com");
        assert_eq!(
            resolve("bedrock", Some("bedrock-runtime"), "us-east-1").unwrap(),
            "https://bedrock-runtime.us-east-1.amazonaws.com"
        );
        assert_eq!(
            resolve("bedrock", None, "us-east-1").unwrap(),
            "https://bedrock.us-east-1.amazonaws.com"
        );
        assert_eq!(resolve("execute-api", None, "us-east-1").unwrap(), "https://api.example.com");
        let unknown = resolve("route66", None, "us-east-1").unwrap_err();
        assert_eq!(
            unknown,
            EndpointError::UnknownService {
                service: "route66".into(),
                connection: "ns/conn".into()
            }
        );
        assert!(unknown.to_string().contains("set spec.aws.endpoints.route66"), "{unknown}");
        // The grammar comes first, override or not.
        assert!(matches!(
            resolve("s3", None, "us-east-1@evil:1234"),
            Err(EndpointError::Region { .. })
        ));
        assert!(matches!(resolve("s3", None, "x#"), Err(EndpointError::Region { .. })));
        assert!(matches!(resolve("execute-api", None, "a/b"), Err(EndpointError::Region { .. })));
        assert!(matches!(
            resolve("s3.evil:1#", None, "us-east-1"),
            Err(EndpointError::Service { .. })
        ));
        let error = resolve("s3", None, "US-EAST-1").unwrap_err().to_string();
        assert!(
            error.contains("\"US-EAST-1\"") && error.contains("not an AWS region name"),
            "{error}"
        );
    }

    #[test]
    fn s3_requests_keep_the_raw_path_and_carry_the_clients_payload_hash() {
        let hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        let signed = UpstreamForwarder::sign(
            "http://127.0.0.1:9000",
            request("s3", "/bucket/a%20key+x?versionId=1", OutboundPayload::Sha256Hex(hash.into())),
            &credentials(),
            SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000),
        )
        .unwrap();
        assert_eq!(signed.uri().to_string(), "http://127.0.0.1:9000/bucket/a%20key+x?versionId=1");
        assert_eq!(signed.headers()["x-amz-content-sha256"], hash);
        assert_eq!(signed.headers()["host"], "127.0.0.1:9000");
        let auth = signed.headers()["authorization"].to_str().unwrap();
        assert!(
            auth.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20231114/eu-west-1/s3/aws4_request"
            ),
            "{auth}"
        );
        assert!(auth.contains("x-amz-content-sha256"), "{auth}");
    }

    #[test]
    fn upstream_session_tokens_are_added_and_signed() {
        let mut creds = credentials();
        creds.session_token = Some(Redacted("upstream-token".into()));
        let signed = UpstreamForwarder::sign(
            "https://dynamodb.eu-west-1.amazonaws.com",
            request("dynamodb", "/", OutboundPayload::Sha256Hex("00".repeat(32))),
            &creds,
            SystemTime::now(),
        )
        .unwrap();
        assert_eq!(signed.headers()["x-amz-security-token"], "upstream-token");
        assert!(!signed.headers().contains_key("x-amz-content-sha256"));
    }

    #[test]
    fn an_endpoint_without_a_host_is_refused_with_the_service_named() {
        let error = UpstreamForwarder::sign(
            "/relative",
            request("s3", "/", OutboundPayload::Unsigned),
            &credentials(),
            SystemTime::now(),
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("s3") && error.contains("/relative"), "{error}");
    }

    #[test]
    fn the_agents_authentication_headers_are_never_forwarded() {
        for name in ["authorization", "x-amz-security-token", "x-amz-date", "host", "connection"] {
            assert!(!is_forwardable(&HeaderName::from_static(name)), "{name}");
        }
        assert!(is_forwardable(&HeaderName::from_static("content-type")));
        assert!(is_forwardable(&HeaderName::from_static("x-amz-target")));
    }
}
