//! SigV4 verification of agents' requests: the first step of the data path.
//!
//! The gateway mints its own short-lived credentials; every call an agent sends must carry a
//! valid AWS4-HMAC-SHA256 signature made with them. [`SigV4Verifier`] checks it over the request
//! exactly as it arrived (raw wire path, the client's own SignedHeaders), in the Authorization
//! header or a presigned URL, within the clock skew or presigned validity. What the signature
//! does not cover yet is left to the caller with the tool to check it as the body streams:
//! [`BodyHashVerifier`] for a signed hex payload hash, [`ChunkedPayloadVerifier`] for aws-chunked
//! bodies, [`PendingBodyHash`] for bodies whose hash was not sent.

mod authorization;
mod canonical_request;
mod chunked;
mod error;
mod payload;
mod signing_key;
mod uri_encoding;
mod verifier;

pub use authorization::CredentialScope;
pub use canonical_request::{CanonicalRequest, RequestParts};
pub use chunked::{ChunkedPayloadSummary, ChunkedPayloadVerifier, DEFAULT_MAX_CHUNK_BYTES};
pub use error::SigV4Error;
pub use payload::{BodyHashVerifier, PayloadMode};
pub use signing_key::{ALGORITHM, SigningKey};
pub use uri_encoding::{CanonicalPathRules, canonical_path, canonical_query};
pub use verifier::{
    CredentialRejection, MAX_CLOCK_SKEW, MAX_PRESIGNED_EXPIRES_SECONDS, PendingBodyHash,
    SecretLookup, SessionSecret, SigV4Verifier, SignatureLocation, Verification, VerifiedRequest,
};
