//! Chaperone's session-record format: the contract between gateways and auditors.
//!
//! Events (JSON Lines, zstd segments), the hash chain, signed manifests and digests, the writer,
//! the reader and the verifier. Documented for other implementations in docs/recording-format.md.

pub mod access_log;
pub mod canonical;
pub mod digest;
pub mod event;
pub mod hash;
pub mod layout;
pub mod manifest;
pub mod merge;
pub mod redaction;
pub mod segment;
pub mod session_id;
pub mod signed_object;
pub mod signing;
pub mod timestamp;
pub mod verify;

#[cfg(test)]
mod fixtures;

pub use access_log::{
    ACCESS_FORMAT, AccessEntry, AccessLogProblem, AccessLogReport, AccessRecord, access_log_folder,
    access_log_key, access_log_number, access_log_public_key_object, verify_access_log,
};
pub use canonical::canonical_json;
pub use digest::{DIGEST_FORMAT, Digest, DigestChain, SignedDigest};
pub use event::{
    AWS_CHUNKED_HEADERS, AgentIdentity, Approval, ApprovalDecision, Approver, AwsCall, Body,
    BodyEncoding, Decision, Denied, Effect, EndReason, Event, EventBody, FORMAT_VERSION,
    HOP_HEADERS, Request, Response, SessionEnd, SessionStart, StreamedBody, Timings,
};
pub use hash::{Hash256, chain_genesis, line_hash, lower_hex};
pub use layout::{LayoutError, ObjectKey, ObjectName, SessionLocation, StreamLocation};
pub use manifest::{MANIFEST_FORMAT, Manifest, StreamStatus};
pub use merge::merge_by_time;
pub use redaction::{
    redact_body, redact_credentials, redact_headers, redact_pointer, redact_query, redaction_marker,
};
pub use segment::{
    AppendedEvent, CutPolicy, FinishedSegment, PendingSegment, RecordedEvent, ResumePoint,
    SegmentEntry, SegmentError, SegmentReader, SegmentWriter,
};
pub use session_id::{new_session_id, session_id_time};
pub use signed_object::SignedObjectError;
pub use signing::{KeyId, RecordingSigner, SignatureError, TrustedKeys};
pub use timestamp::Timestamp;
pub use verify::{Problem, SessionVerifier, StreamReport, VerificationReport, VerifyOptions};
