//! Why a request was refused, and the AWS error code an SDK understands for it.

use time::OffsetDateTime;

/// A SigV4 verification failure.
///
/// Every variant carries the values that explain it, and its message says what to fix. Map it to
/// the wire with [`SigV4Error::aws_code`] and [`SigV4Error::http_status`]; the protocol renderer
/// (XML, JSON, query) wraps code and message in the service's error shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigV4Error {
    /// Neither an `Authorization` header nor `X-Amz-Algorithm` query parameter was sent.
    #[error(
        "the request is not signed: send an Authorization header or a presigned URL made with the credentials the gateway issued"
    )]
    MissingAuthentication,

    /// An algorithm other than AWS4-HMAC-SHA256 (for example SigV4a, or SigV2 outside S3
    /// presigned URLs).
    #[error(
        "unsupported signing algorithm {algorithm:?}: the gateway accepts AWS4-HMAC-SHA256 (SigV4), and SigV2 only in S3 presigned URLs (AWSAccessKeyId, Expires, Signature); configure the client for SigV4"
    )]
    UnsupportedAlgorithm { algorithm: String },

    /// A required part of the signature is absent.
    #[error("the signature is incomplete: {missing} is missing")]
    IncompleteSignature { missing: String },

    /// The Authorization header or presigned parameters are present but malformed.
    #[error("the {location} is malformed: {detail}")]
    MalformedAuthorization {
        /// `Authorization header` or `presigned query`.
        location: &'static str,
        detail: String,
    },

    /// `X-Amz-Date` (or `Date`) does not parse.
    #[error(
        "invalid request date {value:?}: send X-Amz-Date as YYYYMMDD'T'HHMMSS'Z' (for example 20150830T123600Z)"
    )]
    InvalidDate { value: String },

    /// The credential scope's date is not the day of the request's timestamp.
    #[error(
        "the credential scope date {scope_date} does not match the request date {request_date}: sign with the date of X-Amz-Date"
    )]
    ScopeDateMismatch { scope_date: String, request_date: String },

    /// A header named in SignedHeaders is absent from the request, or `host` is not signed.
    #[error("{detail}")]
    SignedHeaderMissing { detail: String },

    /// The request's timestamp is more than the allowed skew away from the gateway's clock.
    #[error(
        "the difference between the request time {request_time} and the gateway's time {server_time} is more than {max_skew_minutes} minutes (Signature expired): fix the client's clock"
    )]
    RequestTimeTooSkewed {
        request_time: OffsetDateTime,
        server_time: OffsetDateTime,
        max_skew_minutes: i64,
    },

    /// `X-Amz-Expires` is not a number from 1 to 604800 (seven days).
    #[error(
        "X-Amz-Expires {value:?} is invalid: presigned URLs may be valid for 1 to 604800 seconds (7 days)"
    )]
    InvalidExpires { value: String },

    /// A SigV2 presigned URL's `Expires` is not a Unix time within seven days.
    #[error(
        "Expires {value:?} is invalid: a SigV2 presigned URL's Expires is a Unix time (seconds) at most 604800 seconds (7 days) from now"
    )]
    InvalidSigV2Expires { value: String },

    /// A SigV2 presigned URL carries a query parameter other than its signature's, the session
    /// token, S3 sub-resources and `response-*` overrides.
    #[error(
        "query parameter {name:?} is not accepted in a SigV2 presigned URL (AWSAccessKeyId/Signature), whose signature covers only S3 sub-resources, response-* overrides and the session token: remove it, or presign with SigV4 (boto3: Config(signature_version='s3v4'))"
    )]
    UnsignedQueryParameter { name: String },

    /// A presigned URL used after its expiry.
    #[error(
        "request has expired: the presigned URL expired at {expired_at}, it is now {now}; presign a new URL"
    )]
    PresignedUrlExpired { expired_at: OffsetDateTime, now: OffsetDateTime },

    /// The lookup does not know the access key id.
    #[error(
        "the access key id {access_key_id:?} was not issued by this gateway: use the credentials returned by AssumeRoleWithWebIdentity at the gateway"
    )]
    InvalidAccessKeyId { access_key_id: String },

    /// The session credentials have expired (SDKs refresh their credentials on this code).
    #[error(
        "the security token included in the request is expired{}: refresh the credentials with AssumeRoleWithWebIdentity",
        expired_at.map(|at| format!(" (at {at})")).unwrap_or_default()
    )]
    ExpiredToken { expired_at: Option<OffsetDateTime> },

    /// The session token is missing, malformed, or not the one issued with the access key id.
    #[error("the security token included in the request is invalid: {reason}")]
    InvalidToken { reason: String },

    /// The computed signature differs from the one sent.
    #[error(
        "the request signature we calculated does not match the signature you provided: check your secret access key and signing method (string to sign: {string_to_sign:?})"
    )]
    SignatureDoesNotMatch {
        /// The canonical request the gateway computed, for the client to compare with its own;
        /// the session token's value is redacted.
        canonical_request: String,
        string_to_sign: String,
    },

    /// A header that may appear once appears more than once.
    #[error("header {name} appears more than once: send it once")]
    DuplicateHeader { name: String },

    /// A header-signed S3 request without `x-amz-content-sha256`, which S3 requires.
    #[error(
        "missing required header for this request: x-amz-content-sha256 (S3 requests signed in the Authorization header must send the body's SHA-256, UNSIGNED-PAYLOAD or a STREAMING-* mode)"
    )]
    MissingContentSha256,

    /// `x-amz-content-sha256` is neither 64 hex digits nor a known payload mode.
    #[error(
        "x-amz-content-sha256 {value:?} is invalid: send the hex SHA-256 of the body, UNSIGNED-PAYLOAD, or a STREAMING-* mode signed with AWS4-HMAC-SHA256"
    )]
    InvalidContentSha256 { value: String },

    /// The body's SHA-256 differs from the hash the request was signed with.
    #[error(
        "the body's SHA-256 {computed} does not match the signed x-amz-content-sha256 {expected}: the body changed after signing"
    )]
    ContentSha256Mismatch { expected: String, computed: String },

    /// The aws-chunked body is malformed.
    #[error("the aws-chunked body is malformed at byte {offset}: {detail}")]
    MalformedChunk { offset: u64, detail: String },

    /// A chunk's (or the trailer's) signature does not continue the signature chain.
    #[error(
        "the signature of chunk {chunk_index} does not match: the body was altered or signed with another key"
    )]
    ChunkSignatureDoesNotMatch { chunk_index: u64 },

    /// The aws-chunked body ended before its final chunk, or its length disagrees with
    /// `x-amz-decoded-content-length`.
    #[error("the body is incomplete: {detail}")]
    IncompleteBody { detail: String },

    /// A trailing checksum does not match the decoded body.
    #[error("the trailing checksum {name} does not match the body: {detail}")]
    TrailerChecksumMismatch { name: String, detail: String },
}

impl SigV4Error {
    /// The AWS error code for this failure as `service` (the credential scope's service, or the
    /// endpoint's when the scope did not parse) would answer it.
    ///
    /// JSON-protocol services answer signature failures as `InvalidSignatureException` where query
    /// and XML services say `SignatureDoesNotMatch`; the protocol renderer may make that swap.
    pub fn aws_code(&self, service: &str) -> &'static str {
        let s3 = service == "s3";
        match self {
            Self::MissingAuthentication if s3 => "AccessDenied",
            Self::MissingAuthentication => "MissingAuthenticationToken",
            Self::UnsupportedAlgorithm { .. } if s3 => "AuthorizationHeaderMalformed",
            Self::UnsupportedAlgorithm { .. } => "IncompleteSignature",
            Self::IncompleteSignature { .. } => "IncompleteSignature",
            Self::MalformedAuthorization { location, .. } if s3 => {
                if location.starts_with("presigned") {
                    "AuthorizationQueryParametersError"
                } else {
                    "AuthorizationHeaderMalformed"
                }
            }
            Self::MalformedAuthorization { .. } => "IncompleteSignature",
            Self::InvalidDate { .. } if s3 => "AccessDenied",
            Self::InvalidDate { .. } => "IncompleteSignature",
            Self::ScopeDateMismatch { .. } if s3 => "AuthorizationHeaderMalformed",
            Self::ScopeDateMismatch { .. } => "SignatureDoesNotMatch",
            Self::SignedHeaderMissing { .. } if s3 => "AccessDenied",
            Self::SignedHeaderMissing { .. } => "SignatureDoesNotMatch",
            Self::RequestTimeTooSkewed { .. } if s3 => "RequestTimeTooSkewed",
            Self::RequestTimeTooSkewed { .. } => "SignatureDoesNotMatch",
            Self::InvalidExpires { .. } if s3 => "AuthorizationQueryParametersError",
            Self::InvalidExpires { .. } => "IncompleteSignature",
            Self::InvalidSigV2Expires { .. } => "AuthorizationQueryParametersError",
            Self::UnsignedQueryParameter { .. } => "AuthorizationQueryParametersError",
            Self::PresignedUrlExpired { .. } => "AccessDenied",
            Self::InvalidAccessKeyId { .. } if s3 => "InvalidAccessKeyId",
            Self::InvalidAccessKeyId { .. } => "InvalidClientTokenId",
            Self::ExpiredToken { .. } => "ExpiredToken",
            Self::InvalidToken { .. } if s3 => "InvalidToken",
            Self::InvalidToken { .. } => "InvalidClientTokenId",
            Self::SignatureDoesNotMatch { .. } => "SignatureDoesNotMatch",
            Self::DuplicateHeader { .. } => "InvalidArgument",
            Self::MissingContentSha256 => "InvalidRequest",
            Self::InvalidContentSha256 { .. } => "InvalidArgument",
            Self::ContentSha256Mismatch { .. } => "XAmzContentSHA256Mismatch",
            Self::MalformedChunk { .. } => "InvalidRequest",
            Self::ChunkSignatureDoesNotMatch { .. } => "SignatureDoesNotMatch",
            Self::IncompleteBody { .. } => "IncompleteBody",
            Self::TrailerChecksumMismatch { .. } => "BadDigest",
        }
    }

    /// The HTTP status that goes with [`SigV4Error::aws_code`].
    pub fn http_status(&self) -> u16 {
        match self {
            Self::MissingAuthentication
            | Self::ScopeDateMismatch { .. }
            | Self::SignedHeaderMissing { .. }
            | Self::RequestTimeTooSkewed { .. }
            | Self::PresignedUrlExpired { .. }
            | Self::InvalidAccessKeyId { .. }
            | Self::InvalidToken { .. }
            | Self::SignatureDoesNotMatch { .. }
            | Self::ChunkSignatureDoesNotMatch { .. } => 403,
            Self::ExpiredToken { .. } => 400,
            Self::UnsupportedAlgorithm { .. }
            | Self::IncompleteSignature { .. }
            | Self::MalformedAuthorization { .. }
            | Self::InvalidDate { .. }
            | Self::InvalidExpires { .. }
            | Self::InvalidSigV2Expires { .. }
            | Self::UnsignedQueryParameter { .. }
            | Self::DuplicateHeader { .. }
            | Self::MissingContentSha256
            | Self::InvalidContentSha256 { .. }
            | Self::ContentSha256Mismatch { .. }
            | Self::MalformedChunk { .. }
            | Self::IncompleteBody { .. }
            | Self::TrailerChecksumMismatch { .. } => 400,
        }
    }
}
