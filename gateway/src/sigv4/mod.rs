//! SigV4 verification of agents' requests: the first step of the data path.
//!
//! The gateway mints its own short-lived credentials; every call an agent sends must carry a
//! valid AWS4-HMAC-SHA256 signature made with them. [`SigV4Verifier`] checks it over the request
//! exactly as it arrived (raw wire path, the client's own SignedHeaders), in the Authorization
//! header or a presigned URL, within the clock skew or presigned validity. What the signature
//! does not cover yet is left to the caller with the tool to check it as the body streams:
//! [`BodyHashVerifier`] for a signed hex payload hash, [`ChunkedPayloadVerifier`] for aws-chunked
//! bodies, [`PendingBodyHash`] for bodies whose hash was not sent.
//!
//! ```no_run
//! use chaperone_gateway::sigv4::{
//!     CredentialRejection, PayloadMode, RequestParts, SessionSecret, SigV4Verifier, Verification,
//! };
//! # fn derive_secret(_: &str) -> String { String::new() }
//! # fn demo(headers: &http::HeaderMap, body: &[u8]) -> Result<(), chaperone_gateway::sigv4::SigV4Error> {
//! let verifier = SigV4Verifier::new(|access_key_id: &str, _token: Option<&str>, _now| {
//!     // The gateway derives the secret from its key and checks the session token here.
//!     Ok::<_, CredentialRejection>(SessionSecret {
//!         secret_access_key: chaperone_config::Redacted(derive_secret(access_key_id)),
//!         session: (),
//!     })
//! });
//! let request = RequestParts { method: "PUT", raw_path: "/bucket/a%20key", raw_query: "", headers };
//! let verified = match verifier.verify(&request, time::OffsetDateTime::now_utc())? {
//!     Verification::Verified(verified) => verified,
//!     // No x-amz-content-sha256: the body's hash is part of the signature.
//!     Verification::BodyHashRequired(pending) => pending.finish_with_body(body)?,
//! };
//! match verified.payload {
//!     PayloadMode::Sha256 { .. } => { /* verified.body_hash_verifier() while streaming */ }
//!     mode if mode.is_chunked() => { /* verified.chunked_payload_verifier() */ }
//!     _ => {}
//! }
//! # Ok(())
//! # }
//! ```
//!
//! Decisions worth knowing:
//! - **Path.** S3 signs the path as sent; every other service removes dot and empty segments and
//!   encodes the wire path once more ([`CanonicalPathRules::for_service`]).
//! - **Query.** Parameters are decoded as form data (`+` is a space, a stray `%` stays literal),
//!   re-encoded with RFC 3986's unreserved set and sorted by name, then value, as aws-sigv4 does.
//! - **Headers.** Exactly the client's SignedHeaders, which must include `host`; the rest are
//!   ignored for the signature and must not be forwarded as trusted
//!   ([`VerifiedRequest::signed_headers`]).
//! - **Body.** A header-signed S3 request must send `x-amz-content-sha256` (as S3 requires), so
//!   no S3 body is buffered to be hashed; a presigned S3 URL is `UNSIGNED-PAYLOAD`. A signed
//!   chunk is held until its signature checks, up to [`DEFAULT_MAX_CHUNK_BYTES`]. Of trailing
//!   checksums, `x-amz-checksum-sha256` is checked here; CRC checksums are passed on for the
//!   upstream to check.
//! - **Errors.** [`SigV4Error::aws_code`] gives the code SDKs act on: `ExpiredToken` for
//!   expired session credentials, `RequestTimeTooSkewed` (S3) or `SignatureDoesNotMatch` with
//!   "Signature expired" (others) for skew, `AccessDenied` for an expired presigned URL.

mod authorization;
mod canonical_request;
mod chunked;
mod error;
mod payload;
mod signing_key;
mod sigv2_presigned;
mod uri_encoding;
mod verifier;

pub use authorization::CredentialScope;
pub use canonical_request::{CanonicalRequest, RequestParts};
pub use chunked::{ChunkedPayloadSummary, ChunkedPayloadVerifier, DEFAULT_MAX_CHUNK_BYTES};
pub use error::SigV4Error;
pub use payload::{BodyHashVerifier, PayloadMode};
pub use signing_key::{ALGORITHM, SigningKey};
pub use sigv2_presigned::{
    SIGNED_SUBRESOURCES, SigV2Presigned, SigV2PresignedVerifier, is_sigv2_presigned,
};
pub use uri_encoding::{CanonicalPathRules, canonical_path, canonical_query};
pub use verifier::{
    CredentialRejection, MAX_CLOCK_SKEW, MAX_PRESIGNED_EXPIRES_SECONDS, PendingBodyHash,
    SecretLookup, SessionSecret, SigV4Verifier, SignatureLocation, Verification, VerifiedRequest,
};
