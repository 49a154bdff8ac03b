//! What can go wrong opening the recorder, and why one event could not be recorded.

use std::path::PathBuf;

/// The recorder could not start.
#[derive(Debug, thiserror::Error)]
pub enum RecorderError {
    /// The spool directory could not be created or read.
    #[error(
        "recorder spool directory {path}: {source}; make it writable by the gateway (an emptyDir or a persistent volume)"
    )]
    SpoolDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The spool writer thread could not be started.
    #[error("the recorder's spool writer thread could not start: {0}")]
    WriterThread(#[source] std::io::Error),
    /// A setting is unusable.
    #[error("recorder setting {field}: {problem}")]
    Setting {
        /// The setting.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
}

/// Why an event was not recorded. The caller refuses the call (FailClosed) or forwards it
/// unrecorded (FailOpen); the message says what happened and what to do.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    /// The local spool holds as much as it may; uploads to S3 must catch up first.
    #[error(
        "the recording spool is full ({used} of {limit} bytes used): recordings are not reaching S3 fast enough{}; calls are refused until the backlog uploads (check the recording bucket, its credentials and endpoint, or raise the spool limit)",
        last_error.as_deref().map(|e| format!(" (last upload error: {e})")).unwrap_or_default()
    )]
    SpoolFull {
        /// Bytes in the spool.
        used: u64,
        /// The configured limit.
        limit: u64,
        /// The last upload error, if uploads are failing.
        last_error: Option<String>,
    },
    /// The connection's share of the local spool is used up: its recordings are not reaching
    /// S3 as fast as it makes them. Other connections keep recording.
    #[error(
        "AgentConnection {connection} holds its whole share of the recording spool ({used} of {share} bytes, 1/{connections} of the spool): its recordings are not reaching S3 fast enough{}; its calls are refused until its backlog uploads, other connections keep recording (check its RecordingPolicy's bucket, credentials and endpoint, or give each connection more with the gateway's --max-spool-mib or --max-connection-spool-mib)",
        last_error.as_deref().map(|e| format!(" (last upload error: {e})")).unwrap_or_default()
    )]
    ConnectionQuota {
        /// The AgentConnection.
        connection: String,
        /// Its bytes in the spool.
        used: u64,
        /// Its share.
        share: u64,
        /// How many connections share the spool.
        connections: usize,
        /// The connection's last upload error, if its uploads are failing.
        last_error: Option<String>,
    },
    /// Recording is not possible at all right now.
    #[error("recording is unavailable: {reason}")]
    Unavailable {
        /// What is wrong and what to do.
        reason: String,
    },
    /// The session's stream on this replica has already ended.
    #[error(
        "session {session} already ended on this gateway replica ({why}); the agent must obtain new credentials"
    )]
    SessionEnded {
        /// The session id.
        session: String,
        /// Why it ended.
        why: String,
    },
    /// The event itself cannot be recorded.
    #[error("the event cannot be recorded: {reason}")]
    BadEvent {
        /// What is wrong with it.
        reason: String,
    },
}
