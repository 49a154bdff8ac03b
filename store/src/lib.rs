//! Recordings as their S3 bucket holds them, for readers: the CLI's direct path (`--direct`, the
//! auditor's own AWS identity) and the operator's audit API (the RecordingPolicy's credentials)
//! share this code.
//!
//! - [`recording_bucket`]: list and get with errors that name bucket, endpoint and credentials,
//!   and conditional puts (the access log's appends).
//! - [`session_catalog`]: finding sessions by walking the layout's folders.
//! - [`session_reader`]: a session's streams, as stored.
//! - [`session_summary`]: one line's worth about a session.
//! - [`access_log`]: the signed, hash-chained log of reads served by the audit API.

pub mod access_log;
pub mod recording_bucket;
pub mod session_catalog;
pub mod session_reader;
pub mod session_summary;

pub use access_log::{AccessLogError, AccessLogWriter, read_access_log};
pub use recording_bucket::{BucketAddress, BucketError, RecordingBucket};
pub use session_catalog::{CatalogScope, LocateError, TimeRange, find_sessions, locate_session};
pub use session_reader::{ReplicaRecording, read_session, session_keys, streams_from_objects};
pub use session_summary::{ReplicaSummary, SessionSummary, status_name, summarize};
