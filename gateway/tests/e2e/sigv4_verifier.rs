//! Requests signed by the `aws-sigv4` crate (the AWS SDK for Rust's signer) verify; tampered
//! ones are refused with the error an SDK understands.

use std::time::{Duration as StdDuration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SignatureLocation,
    SigningSettings, UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use base64::Engine;
use chaperone_gateway::sigv4::{
    ChunkedPayloadVerifier, CredentialRejection, PayloadMode, RequestParts, SecretLookup,
    SessionSecret, SigV4Error, SigV4Verifier, SignatureLocation as VerifiedLocation, Verification,
    VerifiedRequest,
};
use http::{HeaderName, HeaderValue};
use proptest::prelude::*;
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime, macros::datetime};

const ACCESS_KEY_ID: &str = "ASIAGATEWAYISSUED01";
const SECRET: &str = "gateway-derived/secret+key=value";
const TOKEN: &str = "session-token-with-claims";
const SIGNED_AT: OffsetDateTime = datetime!(2026-11-25 17:00:00 UTC);

/// What the test lookup hands back as the session.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Agent(&'static str);

fn system_time(at: OffsetDateTime) -> SystemTime {
    SystemTime::UNIX_EPOCH + StdDuration::from_secs(u64::try_from(at.unix_timestamp()).unwrap())
}

/// How a test request is signed.
#[derive(Clone)]
struct Signing<'a> {
    service: &'a str,
    presigned: Option<StdDuration>,
    body: SignableBody<'a>,
    content_sha256_header: bool,
    secret: &'a str,
}

impl<'a> Signing<'a> {
    fn s3() -> Self {
        Self {
            service: "s3",
            presigned: None,
            body: SignableBody::Bytes(b""),
            content_sha256_header: true,
            secret: SECRET,
        }
    }

    fn service(service: &'a str) -> Self {
        Self {
            service,
            presigned: None,
            body: SignableBody::Bytes(b""),
            content_sha256_header: false,
            secret: SECRET,
        }
    }

    fn presigned(mut self, expires: StdDuration) -> Self {
        self.presigned = Some(expires);
        self.content_sha256_header = false;
        if self.service == "s3" {
            self.body = SignableBody::UnsignedPayload;
        }
        self
    }

    fn body(mut self, body: SignableBody<'a>) -> Self {
        self.body = body;
        self
    }

    fn settings(&self) -> SigningSettings {
        let mut settings = SigningSettings::default();
        if self.service == "s3" {
            settings.percent_encoding_mode = PercentEncodingMode::Single;
            settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
        }
        if self.content_sha256_header {
            settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        }
        if let Some(expires) = self.presigned {
            settings.signature_location = SignatureLocation::QueryParams;
            settings.expires_in = Some(expires);
        }
        settings
    }
}

/// A request signed by aws-sigv4, with the seed signature and the signing parameters'
/// ingredients kept for signing chunks.
struct SignedRequest {
    request: http::Request<()>,
    signature: String,
}

fn sign_request(
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    signing: &Signing<'_>,
) -> SignedRequest {
    let identity =
        Credentials::new(ACCESS_KEY_ID, signing.secret, Some(TOKEN.to_owned()), None, "test")
            .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region("eu-west-1")
        .name(signing.service)
        .time(system_time(SIGNED_AT))
        .settings(signing.settings())
        .build()
        .unwrap()
        .into();
    let signable =
        SignableRequest::new(method, uri, headers.iter().copied(), signing.body.clone()).unwrap();
    let (instructions, signature) = sign(signable, &params).unwrap().into_parts();
    let parsed: http::Uri = uri.parse().unwrap();
    let mut builder = http::Request::builder().method(method).uri(parsed.clone());
    builder = builder.header("host", parsed.authority().unwrap().as_str());
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let mut request = builder.body(()).unwrap();
    instructions.apply_to_request_http1x(&mut request);
    SignedRequest { request, signature }
}

/// The gateway's lookup in miniature: one issued key, bound to its session token.
struct IssuedCredentials {
    secret: &'static str,
}

impl SecretLookup for IssuedCredentials {
    type Session = Agent;

    fn lookup(
        &self,
        access_key_id: &str,
        security_token: Option<&str>,
        _now: OffsetDateTime,
    ) -> Result<SessionSecret<Agent>, CredentialRejection> {
        if access_key_id != ACCESS_KEY_ID {
            return Err(CredentialRejection::UnknownAccessKey);
        }
        if security_token != Some(TOKEN) {
            return Err(CredentialRejection::InvalidToken {
                reason: "not the token issued with this key".to_owned(),
            });
        }
        Ok(SessionSecret {
            secret_access_key: chaperone_config::Redacted(self.secret.to_owned()),
            session: Agent("pr-bot"),
        })
    }
}

fn verify_at(
    request: &http::Request<()>,
    body: &[u8],
    now: OffsetDateTime,
    secret: &'static str,
) -> Result<VerifiedRequest<Agent>, SigV4Error> {
    let parts = RequestParts {
        method: request.method().as_str(),
        raw_path: request.uri().path(),
        raw_query: request.uri().query().unwrap_or(""),
        headers: request.headers(),
    };
    match SigV4Verifier::new(IssuedCredentials { secret }).verify(&parts, now)? {
        Verification::Verified(verified) => {
            if let Some(mut check) = verified.body_hash_verifier() {
                check.update(body);
                check.finish()?;
            }
            Ok(verified)
        }
        Verification::BodyHashRequired(pending) => pending.finish_with_body(body),
    }
}

fn verify(request: &http::Request<()>, body: &[u8]) -> Result<VerifiedRequest<Agent>, SigV4Error> {
    verify_at(request, body, SIGNED_AT + Duration::seconds(3), SECRET)
}

/// Paths that need encoding, as an SDK puts them on the wire.
const ENCODED_PATHS: &[&str] = &[
    "/bucket/key%20with%20spaces",
    "/bucket/%E2%9C%93-unicode-%C3%BC",
    "/bucket/plus+equals=raw",
    "/bucket/plus%2Bequals%3Dencoded",
    "/bucket//double//slashes",
    "/bucket/./dot/../segments/",
    "/bucket/percent%2525-twice",
    "/",
];

#[test]
fn s3_requests_signed_by_aws_sigv4_verify_over_paths_that_need_encoding() {
    for path in ENCODED_PATHS {
        let uri = format!("http://10.96.0.12:8080{path}?list-type=2&prefix=a%20b&x=c+d&empty");
        let body = b"object body";
        let signed = sign_request(
            "PUT",
            &uri,
            &[("x-amz-meta-note", "  spaced   value ")],
            &Signing::s3().body(SignableBody::Bytes(body)),
        );
        let verified =
            verify(&signed.request, body).unwrap_or_else(|e| panic!("{path}: {e} ({e:?})"));
        assert_eq!(verified.scope.service, "s3");
        assert_eq!(verified.scope.region, "eu-west-1");
        assert_eq!(verified.scope.access_key_id, ACCESS_KEY_ID);
        assert_eq!(verified.session, Agent("pr-bot"));
        assert_eq!(verified.security_token.as_deref(), Some(TOKEN));
        assert!(verified.security_token_signed);
        assert!(matches!(verified.payload, PayloadMode::Sha256 { .. }));
        assert!(verified.is_header_signed("X-Amz-Meta-Note"));
        assert_eq!(verified.location, VerifiedLocation::AuthorizationHeader);
    }
}

#[test]
fn s3_presigned_urls_signed_by_aws_sigv4_verify_over_paths_that_need_encoding() {
    for path in ENCODED_PATHS {
        let uri = format!("http://10.96.0.12:8080{path}?response-content-type=text%2Fplain");
        let signed =
            sign_request("GET", &uri, &[], &Signing::s3().presigned(StdDuration::from_secs(900)));
        let verified =
            verify(&signed.request, b"").unwrap_or_else(|e| panic!("{path}: {e} ({e:?})"));
        assert_eq!(verified.payload, PayloadMode::Unsigned);
        assert_eq!(
            verified.location,
            VerifiedLocation::PresignedUrl { expires_at: SIGNED_AT + Duration::seconds(900) }
        );
        assert!(verified.security_token_signed);
    }
}

#[test]
fn non_s3_requests_signed_by_aws_sigv4_verify_in_header_and_presigned_form() {
    let body = br#"{"TableName":"agents"}"#;
    for path in ENCODED_PATHS.iter().chain(&[
        "/2015-03-31/functions/arn%3Aaws%3Alambda%3Aeu-west-1%3A123456789012%3Afunction%3Af/invocations",
    ]) {
        let uri = format!("http://10.96.0.12:8080{path}?Action=List&Version=2011-06-15&a=%2F");
        let signed = sign_request(
            "POST",
            &uri,
            &[("content-type", "application/x-amz-json-1.0"), ("x-amz-target", "DynamoDB_20120810.Query")],
            &Signing::service("lambda").body(SignableBody::Bytes(body)),
        );
        let verified = verify(&signed.request, body)
            .unwrap_or_else(|e| panic!("{path}: {e} ({e:?})"));
        assert_eq!(verified.payload, PayloadMode::BodyHashVerified);
        assert!(verified.is_header_signed("x-amz-target"));

        let presigned = sign_request(
            "GET",
            &uri,
            &[],
            &Signing::service("sts").presigned(StdDuration::from_secs(60)),
        );
        verify(&presigned.request, b"").unwrap_or_else(|e| panic!("presigned {path}: {e}"));
    }
}

#[test]
fn a_wrong_secret_is_refused_as_signature_does_not_match() {
    let signed = sign_request(
        "GET",
        "http://gw/bucket/key",
        &[],
        &Signing { secret: "the-wrong-secret", ..Signing::s3() },
    );
    let error = verify(&signed.request, b"").unwrap_err();
    assert!(matches!(error, SigV4Error::SignatureDoesNotMatch { .. }), "{error:?}");
    assert_eq!(error.aws_code("s3"), "SignatureDoesNotMatch");
    assert_eq!(error.http_status(), 403);
}

#[test]
fn a_body_changed_after_signing_is_refused_in_hex_mode_and_in_body_hash_mode() {
    let signed = sign_request(
        "PUT",
        "http://gw/bucket/key",
        &[],
        &Signing::s3().body(SignableBody::Bytes(b"approved body")),
    );
    let error = verify(&signed.request, b"approved bodY").unwrap_err();
    assert!(matches!(error, SigV4Error::ContentSha256Mismatch { .. }), "{error:?}");
    assert_eq!(error.aws_code("s3"), "XAmzContentSHA256Mismatch");

    let signed = sign_request(
        "POST",
        "http://gw/",
        &[],
        &Signing::service("dynamodb").body(SignableBody::Bytes(b"{\"a\":1}")),
    );
    let error = verify(&signed.request, b"{\"a\":2}").unwrap_err();
    assert!(matches!(error, SigV4Error::SignatureDoesNotMatch { .. }), "{error:?}");
}

#[test]
fn an_unsigned_header_is_ignored_and_refused_once_claimed_signed() {
    let mut signed = sign_request("GET", "http://gw/bucket/key", &[], &Signing::s3());
    signed.request.headers_mut().insert("x-amz-acl", HeaderValue::from_static("public-read"));
    let verified = verify(&signed.request, b"").unwrap();
    assert!(!verified.is_header_signed("x-amz-acl"));
    assert!(!verified.signed_headers.iter().any(|h| h == "x-amz-acl"));

    let authorization = signed.request.headers()["authorization"].to_str().unwrap().to_owned();
    let claimed = authorization.replace("SignedHeaders=host;", "SignedHeaders=host;x-amz-acl;");
    assert_ne!(claimed, authorization);
    signed.request.headers_mut().insert("authorization", HeaderValue::from_str(&claimed).unwrap());
    let error = verify(&signed.request, b"").unwrap_err();
    assert!(matches!(error, SigV4Error::SignatureDoesNotMatch { .. }), "{error:?}");
}

#[test]
fn a_request_more_than_fifteen_minutes_off_the_clock_is_refused() {
    let signed = sign_request("GET", "http://gw/bucket/key", &[], &Signing::s3());
    for offset in [Duration::minutes(14), Duration::minutes(-14)] {
        verify_at(&signed.request, b"", SIGNED_AT + offset, SECRET).unwrap();
    }
    for offset in [Duration::minutes(16), Duration::minutes(-16)] {
        let error = verify_at(&signed.request, b"", SIGNED_AT + offset, SECRET).unwrap_err();
        assert!(matches!(error, SigV4Error::RequestTimeTooSkewed { .. }), "{error:?}");
        assert_eq!(error.aws_code("s3"), "RequestTimeTooSkewed");
        assert_eq!(error.aws_code("dynamodb"), "SignatureDoesNotMatch");
        assert!(error.to_string().contains("Signature expired"));
    }
}

#[test]
fn an_expired_presigned_url_is_refused_as_access_denied() {
    let signed = sign_request(
        "GET",
        "http://gw/bucket/key",
        &[],
        &Signing::s3().presigned(StdDuration::from_secs(60)),
    );
    verify_at(&signed.request, b"", SIGNED_AT + Duration::seconds(60), SECRET).unwrap();
    let error =
        verify_at(&signed.request, b"", SIGNED_AT + Duration::seconds(61), SECRET).unwrap_err();
    assert!(matches!(error, SigV4Error::PresignedUrlExpired { .. }), "{error:?}");
    assert_eq!(error.aws_code("s3"), "AccessDenied");
    assert_eq!(error.http_status(), 403);
}

#[test]
fn a_presigned_url_valid_for_more_than_seven_days_is_refused() {
    let signed = sign_request(
        "GET",
        "http://gw/bucket/key",
        &[],
        &Signing::s3().presigned(StdDuration::from_secs(60)),
    );
    let uri = signed.request.uri().to_string().replace("X-Amz-Expires=60", "X-Amz-Expires=604801");
    let mut request = signed.request;
    *request.uri_mut() = uri.parse().unwrap();
    let error = verify(&request, b"").unwrap_err();
    assert!(matches!(error, SigV4Error::InvalidExpires { .. }), "{error:?}");
}

#[test]
fn unknown_keys_and_expired_sessions_get_the_codes_sdks_act_on() {
    let signed = sign_request("GET", "http://gw/bucket/key", &[], &Signing::s3());
    let parts = RequestParts {
        method: "GET",
        raw_path: signed.request.uri().path(),
        raw_query: "",
        headers: signed.request.headers(),
    };
    let now = SIGNED_AT;
    let unknown = SigV4Verifier::new(|_: &str, _: Option<&str>, _: OffsetDateTime| {
        Err::<SessionSecret<()>, _>(CredentialRejection::UnknownAccessKey)
    })
    .verify(&parts, now)
    .unwrap_err();
    assert_eq!(unknown.aws_code("s3"), "InvalidAccessKeyId");
    let expired = SigV4Verifier::new(|_: &str, _: Option<&str>, _: OffsetDateTime| {
        Err::<SessionSecret<()>, _>(CredentialRejection::Expired {
            expired_at: Some(SIGNED_AT - Duration::minutes(1)),
        })
    })
    .verify(&parts, now)
    .unwrap_err();
    assert_eq!(expired.aws_code("s3"), "ExpiredToken");
    assert_eq!(expired.aws_code("sts"), "ExpiredToken");
}

// ---- aws-chunked bodies ----

fn v4_params<'a>(
    identity: &'a aws_smithy_runtime_api::client::identity::Identity,
) -> v4::SigningParams<'a, ()> {
    v4::SigningParams::builder()
        .identity(identity)
        .region("eu-west-1")
        .name("s3")
        .time(system_time(SIGNED_AT))
        .settings(())
        .build()
        .unwrap()
}

struct ChunkedUpload {
    request: http::Request<()>,
    wire_body: Vec<u8>,
}

/// A PUT with a signed aws-chunked body of `chunks`, signed chunk by chunk by aws-sigv4.
fn signed_chunked_upload(chunks: &[&[u8]], trailer: Option<(&str, String)>) -> ChunkedUpload {
    let decoded_length: usize = chunks.iter().map(|c| c.len()).sum();
    let decoded_length = decoded_length.to_string();
    let (mode, body) = if trailer.is_some() {
        ("STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER", SignableBody::StreamingSignedPayloadTrailer)
    } else {
        (
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
            SignableBody::Precomputed("STREAMING-AWS4-HMAC-SHA256-PAYLOAD".to_owned()),
        )
    };
    let mut headers = vec![
        ("content-encoding", "aws-chunked"),
        ("x-amz-decoded-content-length", decoded_length.as_str()),
    ];
    if let Some((name, _)) = &trailer {
        headers.push(("x-amz-trailer", name));
    }
    let signed =
        sign_request("PUT", "http://gw/bucket/big%20object", &headers, &Signing::s3().body(body));
    assert_eq!(signed.request.headers()["x-amz-content-sha256"], mode);

    let identity =
        Credentials::new(ACCESS_KEY_ID, SECRET, Some(TOKEN.to_owned()), None, "test").into();
    let params = v4_params(&identity);
    let mut previous = signed.signature;
    let mut wire_body = Vec::new();
    for chunk in chunks.iter().copied().chain(std::iter::once(&b""[..])) {
        let signature = v4::sign_chunk(&bytes::Bytes::copy_from_slice(chunk), &previous, &params)
            .unwrap()
            .into_parts()
            .1;
        wire_body.extend_from_slice(
            format!("{:x};chunk-signature={signature}\r\n", chunk.len()).as_bytes(),
        );
        if !chunk.is_empty() {
            wire_body.extend_from_slice(chunk);
            wire_body.extend_from_slice(b"\r\n");
        }
        previous = signature;
    }
    if let Some((name, value)) = trailer {
        let mut trailers = aws_smithy_runtime_api::http::Headers::new();
        trailers.insert(name.to_owned(), value.clone());
        let signature = v4::sign_trailer(&trailers, &previous, &params).unwrap().into_parts().1;
        wire_body.extend_from_slice(
            format!("{name}:{value}\r\nx-amz-trailer-signature:{signature}\r\n").as_bytes(),
        );
    }
    wire_body.extend_from_slice(b"\r\n");
    ChunkedUpload { request: signed.request, wire_body }
}

/// Feeds `wire` in pieces of `piece` bytes; returns the verified payload.
fn decode_in_pieces(
    mut decoder: ChunkedPayloadVerifier,
    wire: &[u8],
    piece: usize,
) -> Result<(Vec<u8>, chaperone_gateway::sigv4::ChunkedPayloadSummary), SigV4Error> {
    let mut out = Vec::new();
    for part in wire.chunks(piece.max(1)) {
        decoder.feed(part, &mut out)?;
    }
    let summary = decoder.finish()?;
    Ok((out, summary))
}

fn sha256_base64(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(data))
}

#[test]
fn a_signed_chunked_upload_decodes_to_its_payload_whatever_the_feed_sizes() {
    let chunks: [&[u8]; 3] = [&[b'a'; 8192], b"second chunk\r\nwith CRLF inside", b"z"];
    let payload = chunks.concat();
    let upload = signed_chunked_upload(&chunks, None);
    let verified = verify(&upload.request, b"").unwrap();
    assert_eq!(verified.payload, PayloadMode::StreamingSigned { trailer: false });
    for piece in [1, 2, 7, 64, 100_000] {
        let decoder = verified.chunked_payload_verifier().unwrap();
        let (out, summary) = decode_in_pieces(decoder, &upload.wire_body, piece).unwrap();
        assert_eq!(out, payload, "piece size {piece}");
        assert_eq!(summary.decoded_length, payload.len() as u64);
        assert_eq!(summary.chunk_count, 4);
    }
}

#[test]
fn a_tampered_chunk_is_refused_and_none_of_its_bytes_come_out() {
    let chunks: [&[u8]; 3] = [b"first chunk", b"second chunk", b"third chunk"];
    let upload = signed_chunked_upload(&chunks, None);
    let verified = verify(&upload.request, b"").unwrap();
    let mut wire = upload.wire_body.clone();
    let at = wire.windows(12).position(|w| w == b"second chunk").unwrap();
    wire[at] = b'S';
    let mut decoder = verified.chunked_payload_verifier().unwrap();
    let mut out = Vec::new();
    let error = decoder.feed(&wire, &mut out).unwrap_err();
    assert_eq!(error, SigV4Error::ChunkSignatureDoesNotMatch { chunk_index: 1 });
    assert_eq!(out, b"first chunk");
    assert_eq!(error.aws_code("s3"), "SignatureDoesNotMatch");
}

#[test]
fn a_chunked_body_cut_short_is_incomplete() {
    let upload = signed_chunked_upload(&[b"only chunk"], None);
    let verified = verify(&upload.request, b"").unwrap();
    let cut = &upload.wire_body[..upload.wire_body.len() - 5];
    let error = decode_in_pieces(verified.chunked_payload_verifier().unwrap(), cut, 3).unwrap_err();
    assert!(matches!(error, SigV4Error::IncompleteBody { .. }), "{error:?}");
}

#[test]
fn a_signed_chunked_upload_with_a_signed_checksum_trailer_verifies() {
    let chunks: [&[u8]; 2] = [b"hello ", b"trailer"];
    let checksum = sha256_base64(&chunks.concat());
    let upload = signed_chunked_upload(&chunks, Some(("x-amz-checksum-sha256", checksum.clone())));
    let verified = verify(&upload.request, b"").unwrap();
    assert_eq!(verified.payload, PayloadMode::StreamingSigned { trailer: true });
    let (out, summary) =
        decode_in_pieces(verified.chunked_payload_verifier().unwrap(), &upload.wire_body, 5)
            .unwrap();
    assert_eq!(out, b"hello trailer");
    assert_eq!(summary.trailers, [("x-amz-checksum-sha256".to_owned(), checksum)]);

    let forged = String::from_utf8(upload.wire_body.clone())
        .unwrap()
        .replace(&sha256_base64(b"hello trailer"), &sha256_base64(b"other"));
    let error =
        decode_in_pieces(verified.chunked_payload_verifier().unwrap(), forged.as_bytes(), 5)
            .unwrap_err();
    assert!(matches!(error, SigV4Error::ChunkSignatureDoesNotMatch { .. }), "{error:?}");
}

fn unsigned_trailer_upload(payload: &[u8], checksum: &str) -> (http::Request<()>, Vec<u8>) {
    let length = payload.len().to_string();
    let signed = sign_request(
        "PUT",
        "http://gw/bucket/key",
        &[
            ("content-encoding", "aws-chunked"),
            ("x-amz-decoded-content-length", &length),
            ("x-amz-trailer", "x-amz-checksum-sha256"),
        ],
        &Signing::s3().body(SignableBody::StreamingUnsignedPayloadTrailer),
    );
    let mut wire = Vec::new();
    for chunk in payload.chunks(4) {
        wire.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        wire.extend_from_slice(chunk);
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(format!("0\r\nx-amz-checksum-sha256:{checksum}\r\n\r\n").as_bytes());
    (signed.request, wire)
}

#[test]
fn an_unsigned_payload_with_a_checksum_trailer_streams_and_checks_the_checksum() {
    let payload = b"streamed without chunk signatures";
    let (request, wire) = unsigned_trailer_upload(payload, &sha256_base64(payload));
    let verified = verify(&request, b"").unwrap();
    assert_eq!(verified.payload, PayloadMode::StreamingUnsignedTrailer);
    let (out, summary) =
        decode_in_pieces(verified.chunked_payload_verifier().unwrap(), &wire, 3).unwrap();
    assert_eq!(out, payload);
    assert_eq!(summary.trailers.len(), 1);

    let (request, wire) = unsigned_trailer_upload(payload, &sha256_base64(b"different"));
    let verified = verify(&request, b"").unwrap();
    let error =
        decode_in_pieces(verified.chunked_payload_verifier().unwrap(), &wire, 3).unwrap_err();
    assert!(matches!(error, SigV4Error::TrailerChecksumMismatch { .. }), "{error:?}");
    assert_eq!(error.aws_code("s3"), "BadDigest");
}

// ---- properties ----

/// Percent-encodes `raw` for a URI path or query component, leaving unreserved characters and
/// (when `keep_sub_delims`) `+ = : @ ! $ ' ( ) * , ;` as they are, as various clients do.
fn wire_encode(raw: &str, keep_sub_delims: bool, keep_slash: bool) -> String {
    let mut out = String::new();
    for byte in raw.bytes() {
        let keep = byte.is_ascii_alphanumeric()
            || b"-_.~".contains(&byte)
            || (keep_slash && byte == b'/')
            || (keep_sub_delims && b"+=:@!$'()*,;".contains(&byte));
        if keep {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn path_strategy() -> impl Strategy<Value = String> {
    proptest::collection::vec("[a-zA-Z0-9 ._~+=:@!$'()*,;%/ü✓-]{0,8}", 0..5)
        .prop_map(|segments| format!("/{}", segments.join("/")))
}

fn query_strategy() -> impl Strategy<Value = Vec<(String, String)>> {
    proptest::collection::vec(("[a-zA-Z0-9 ._~+=&%/ü-]{1,6}", "[a-zA-Z0-9 ._~+=&%/ü-]{0,6}"), 0..4)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn any_path_and_query_signed_by_aws_sigv4_verifies(
        path in path_strategy(),
        query in query_strategy(),
        keep_sub_delims in any::<bool>(),
        s3 in any::<bool>(),
        presigned in any::<bool>(),
    ) {
        let wire_path = wire_encode(&path, keep_sub_delims, true);
        let wire_query: Vec<String> = query
            .iter()
            .map(|(k, v)| format!("{}={}", wire_encode(k, false, false), wire_encode(v, keep_sub_delims, false)))
            .collect();
        let mut uri = format!("http://gw{wire_path}");
        if !wire_query.is_empty() {
            uri.push('?');
            uri.push_str(&wire_query.join("&"));
        }
        let mut signing = if s3 { Signing::s3() } else { Signing::service("execute-api") };
        if presigned {
            signing = signing.presigned(StdDuration::from_secs(300));
        }
        let signed = sign_request("GET", &uri, &[], &signing);
        let verified = verify(&signed.request, b"");
        prop_assert!(verified.is_ok(), "{uri}: {verified:?}");
    }

    #[test]
    fn a_chunked_body_decodes_the_same_whatever_the_split_points(
        chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..300), 0..5),
        splits in proptest::collection::vec(1usize..64, 1..40),
    ) {
        let borrowed: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
        let upload = signed_chunked_upload(&borrowed, None);
        let verified = verify(&upload.request, b"").unwrap();
        let mut decoder = verified.chunked_payload_verifier().unwrap();
        let mut out = Vec::new();
        let mut rest = upload.wire_body.as_slice();
        let mut sizes = splits.iter().cycle();
        while !rest.is_empty() {
            let take = sizes.next().copied().unwrap_or(1).min(rest.len());
            let (piece, tail) = rest.split_at(take);
            decoder.feed(piece, &mut out).unwrap();
            rest = tail;
        }
        prop_assert!(decoder.is_complete());
        decoder.finish().unwrap();
        prop_assert_eq!(out, chunks.concat());
    }
}

#[test]
fn header_names_in_any_case_and_repeated_values_verify() {
    let signed = sign_request(
        "GET",
        "http://gw/bucket/key",
        &[("X-Amz-Meta-Mixed", "a"), ("x-amz-meta-mixed", "b  c")],
        &Signing::s3(),
    );
    let name = HeaderName::from_static("x-amz-meta-mixed");
    assert_eq!(signed.request.headers().get_all(&name).iter().count(), 2);
    verify(&signed.request, b"").unwrap();
}

#[test]
fn an_s3_request_signed_in_the_header_without_content_sha256_is_refused() {
    let signed = sign_request(
        "GET",
        "http://gw/bucket/key",
        &[],
        &Signing { content_sha256_header: false, ..Signing::s3() },
    );
    let error = verify(&signed.request, b"").unwrap_err();
    assert_eq!(error, SigV4Error::MissingContentSha256);
    assert_eq!(error.http_status(), 400);
}

#[test]
fn a_signature_mismatch_reports_the_canonical_request_without_the_session_token() {
    for signing in [Signing::s3(), Signing::s3().presigned(StdDuration::from_secs(60))] {
        let signed = sign_request(
            "GET",
            "http://gw/bucket/key",
            &[],
            &Signing { secret: "wrong", ..signing },
        );
        let SigV4Error::SignatureDoesNotMatch { canonical_request, .. } =
            verify(&signed.request, b"").unwrap_err()
        else {
            panic!("expected SignatureDoesNotMatch");
        };
        assert!(!canonical_request.contains(TOKEN), "{canonical_request}");
        assert!(canonical_request.contains("<redacted>"), "{canonical_request}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_authorization_headers_and_queries_are_refused_without_panicking(
        authorization in "(AWS4-HMAC-SHA256 )?(Credential=[A-Za-z0-9/_-]{0,40}|SignedHeaders=[a-z;-]{0,20}|Signature=[0-9a-f]{0,64}|[ ,=;]){0,8}",
        query in "[A-Za-z0-9%&=+._-]{0,60}",
        path in "/[A-Za-z0-9%/._-]{0,30}",
    ) {
        let mut headers = http::HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("gw"));
        headers.insert("x-amz-date", HeaderValue::from_static("20261125T170000Z"));
        if let Ok(value) = HeaderValue::from_str(&authorization) {
            headers.insert("authorization", value);
        }
        let parts = RequestParts { method: "GET", raw_path: &path, raw_query: &query, headers: &headers };
        let outcome = SigV4Verifier::new(IssuedCredentials { secret: SECRET }).verify(&parts, SIGNED_AT);
        prop_assert!(outcome.is_err());
    }

    #[test]
    fn arbitrary_bytes_fed_to_the_chunk_decoder_never_panic(
        wire in proptest::collection::vec(any::<u8>(), 0..512),
        prefix in "[0-9a-f]{1,3}(;chunk-signature=[0-9a-f]{64})?\r\n",
    ) {
        let upload = signed_chunked_upload(&[b"x"], None);
        let verified = verify(&upload.request, b"").unwrap();
        let mut decoder = verified.chunked_payload_verifier().unwrap();
        let mut out = Vec::new();
        let mut body = prefix.into_bytes();
        body.extend_from_slice(&wire);
        let _ = decoder.feed(&body, &mut out);
        prop_assert!(out.is_empty(), "unverified bytes came out: {out:?}");
        prop_assert!(decoder.finish().is_err());
    }
}
