//! The write-ahead spool: event lines are fsynced here before `append` returns.
//!
//! Layout, one directory per stream (a session as recorded by this replica):
//!
//! ```text
//! <spool_dir>/<session>/stream.json     StreamMeta: who, where it uploads, its session.start
//! <spool_dir>/<session>/upload.json     UploadState: segments uploaded, digest chain position
//! <spool_dir>/<session>/000007.jsonl    the exact event lines of segment 7, each ending in LF
//! ```
//!
//! A spool file holds the lines of one segment, byte for byte as they will be compressed into
//! `NNNNNN.jsonl.zst`. It is deleted once its segment is uploaded. One thread, the
//! [`SpoolWriter`], owns every open file and the chain position of every stream: it takes the
//! appends queued since its last batch, writes their lines, fsyncs each touched file once
//! (group commit), then acknowledges every waiter.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use chaperone_recording::{
    CutPolicy, EndReason, EventBody, FORMAT_VERSION, Hash256, ResumePoint, SessionEnd,
    SessionLocation, SessionStart, StreamLocation, Timestamp, chain_genesis, line_hash,
};
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

use super::error::RecordError;
use super::metrics::RecorderMetrics;

/// Name of a stream's metadata file.
pub const STREAM_META_FILE: &str = "stream.json";
/// Name of a stream's upload state file.
pub const UPLOAD_STATE_FILE: &str = "upload.json";

/// What a stream is and where it goes; written once when the stream opens.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StreamMeta {
    pub session: String,
    /// The replica whose stream this is (a recovering process keeps the dead replica's name).
    pub replica: String,
    pub namespace: String,
    pub connection: String,
    /// Bucket and prefix, fixed for the stream's life so it never splits across locations.
    pub bucket: String,
    pub prefix: String,
    pub start: SessionStart,
    /// `ts` of the stream's `session.start`.
    pub started: Timestamp,
}

impl StreamMeta {
    /// Where the stream's objects go.
    pub fn location(&self) -> Result<StreamLocation, chaperone_recording::LayoutError> {
        let session = SessionLocation::from_session_id(
            &self.prefix,
            &self.namespace,
            &self.connection,
            &self.session,
        )
        .or_else(|_| {
            SessionLocation::new(
                &self.prefix,
                &self.namespace,
                &self.connection,
                self.started.date(),
                &self.session,
            )
        })?;
        session.stream(&self.replica)
    }
}

/// A cut segment's spool file, ready to be compressed and uploaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpooledSegment {
    pub index: u32,
    pub path: PathBuf,
    /// Where the segment's first line continues the chain.
    pub resume: ResumePoint,
    /// Bytes of the spool file.
    pub bytes: u64,
}

/// What the spool writer hands to the uploaders, in stream order.
#[derive(Debug)]
pub enum UploadJob {
    /// A stream's first line is durable.
    Opened { meta: StreamMeta, dir: PathBuf },
    /// A stream found in the spool at start-up, with what of it was already uploaded.
    Recovered { meta: StreamMeta, dir: PathBuf, state: super::stream::UploadState },
    /// A segment was cut.
    Segment { session: String, segment: SpooledSegment },
    /// The stream's `session.end` is in its last cut segment.
    Closed { session: String, reason: EndReason, ended: Timestamp },
}

/// Who a new stream belongs to, sent with every append (used only for the first).
#[derive(Clone, Debug)]
pub struct StreamSpec {
    pub session: String,
    pub namespace: String,
    pub connection: String,
    pub bucket: String,
    pub prefix: String,
    pub start: SessionStart,
}

/// A request to the spool writer.
pub enum SpoolCommand {
    /// Spool one event (`payload` is the serialized [`EventBody`]).
    Append { stream: StreamSpec, payload: Vec<u8>, ack: oneshot::Sender<Result<(), RecordError>> },
    /// Cut segments that aged, close streams whose credentials expired.
    Sweep { now: Timestamp },
    /// Close every open stream (graceful shutdown).
    CloseAll { reason: EndReason, done: oneshot::Sender<()> },
}

/// Settings of the spool writer.
#[derive(Clone, Debug)]
pub struct SpoolSettings {
    pub dir: PathBuf,
    pub replica: String,
    pub cut: CutPolicy,
    /// How long after its credentials expire a stream is closed.
    pub expiry_grace: Duration,
}

#[derive(Serialize)]
struct Envelope<'a> {
    v: u32,
    seq: u64,
    ts: Timestamp,
    session: &'a str,
    replica: &'a str,
    prev: Hash256,
}

/// The event line for a payload (a serialized [`EventBody`], `{"type":...}`): byte for byte what
/// serializing the recording crate's `Event` gives, built without re-serializing the payload so
/// large bodies are serialized once, by the caller's task.
pub fn event_line(
    seq: u64,
    ts: Timestamp,
    session: &str,
    replica: &str,
    prev: Hash256,
    payload: &[u8],
) -> Result<Vec<u8>, RecordError> {
    let bad = |reason: &str| RecordError::BadEvent { reason: reason.to_owned() };
    let rest = payload.strip_prefix(b"{").ok_or_else(|| bad("payload is not a JSON object"))?;
    if rest.first() == Some(&b'}') {
        return Err(bad("payload has no type"));
    }
    let envelope =
        serde_json::to_vec(&Envelope { v: FORMAT_VERSION, seq, ts, session, replica, prev })
            .map_err(|e| bad(&e.to_string()))?;
    let mut line = envelope;
    line.pop(); // the closing brace
    line.reserve(rest.len() + 1);
    line.push(b',');
    line.extend_from_slice(rest);
    Ok(line)
}

/// The serialized payload of an event body.
pub fn payload_of(body: &EventBody) -> Result<Vec<u8>, RecordError> {
    serde_json::to_vec(body).map_err(|e| RecordError::BadEvent { reason: e.to_string() })
}

/// `000007.jsonl` for segment 7.
pub fn spool_file_name(index: u32) -> String {
    format!("{index:06}.jsonl")
}

/// The segment number of a spool file name.
pub fn parse_spool_file_name(name: &str) -> Option<u32> {
    let digits = name.strip_suffix(".jsonl")?;
    if digits.len() < 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|n| *n >= 1)
}

/// Writes `bytes` to `path` atomically and durably (temporary file, fsync, rename, fsync dir).
pub fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

/// Fsyncs a directory so entries created in it survive a crash.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

struct OpenSpoolFile {
    index: u32,
    file: File,
    path: PathBuf,
    len: u64,
    first_seq: u64,
    first_prev: Hash256,
    first_ts: Timestamp,
}

/// One stream's chain position and open spool file.
struct SpoolStream {
    meta: StreamMeta,
    dir: PathBuf,
    next_seq: u64,
    head: Hash256,
    next_segment: u32,
    open: Option<OpenSpoolFile>,
}

/// Where a stream stood before a batch, to undo a failed write.
enum Snapshot {
    New,
    Existing { next_seq: u64, head: Hash256, next_segment: u32, open_len: Option<u64> },
}

impl SpoolStream {
    fn snapshot(&self) -> Snapshot {
        Snapshot::Existing {
            next_seq: self.next_seq,
            head: self.head,
            next_segment: self.next_segment,
            open_len: self.open.as_ref().map(|o| o.len),
        }
    }

    /// Writes one line (not yet fsynced); returns the bytes written.
    fn write(&mut self, ts: Timestamp, payload: &[u8]) -> Result<u64, RecordError> {
        let mut line = event_line(
            self.next_seq,
            ts,
            &self.meta.session,
            &self.meta.replica,
            self.head,
            payload,
        )?;
        let hash = line_hash(&line);
        line.push(b'\n');
        if self.open.is_none() {
            let index = self.next_segment;
            let path = self.dir.join(spool_file_name(index));
            let file = OpenOptions::new()
                .create_new(true)
                .append(true)
                .open(&path)
                .and_then(|f| sync_dir(&self.dir).map(|()| f))
                .map_err(|e| spool_io("create a spool file", &path, &e))?;
            self.next_segment = index.saturating_add(1);
            self.open = Some(OpenSpoolFile {
                index,
                file,
                path,
                len: 0,
                first_seq: self.next_seq,
                first_prev: self.head,
                first_ts: ts,
            });
        }
        let Some(open) = self.open.as_mut() else {
            return Err(RecordError::Unavailable { reason: "spool file vanished".into() });
        };
        open.file.write_all(&line).map_err(|e| spool_io("write the spool", &open.path, &e))?;
        open.len += line.len() as u64;
        self.next_seq += 1;
        self.head = hash;
        Ok(line.len() as u64)
    }

    fn sync(&self) -> Result<(), RecordError> {
        match &self.open {
            Some(open) => {
                open.file.sync_data().map_err(|e| spool_io("fsync the spool", &open.path, &e))
            }
            None => Ok(()),
        }
    }

    fn roll_back(&mut self, snapshot: &Snapshot) {
        let Snapshot::Existing { next_seq, head, next_segment, open_len } = snapshot else {
            return;
        };
        self.next_seq = *next_seq;
        self.head = *head;
        self.next_segment = *next_segment;
        match (open_len, self.open.take()) {
            (Some(len), Some(open)) => {
                if let Err(error) = open.file.set_len(*len) {
                    tracing::error!(path = %open.path.display(), %error, "could not truncate a spool file after a failed write");
                }
                self.open = Some(OpenSpoolFile { len: *len, ..open });
            }
            (None, Some(open)) => {
                let _ = fs::remove_file(&open.path);
            }
            (_, None) => {}
        }
    }

    fn cut(&mut self) -> Option<SpooledSegment> {
        let open = self.open.take()?;
        Some(SpooledSegment {
            index: open.index,
            path: open.path,
            resume: ResumePoint {
                next_seq: open.first_seq,
                head: open.first_prev,
                next_segment: open.index,
            },
            bytes: open.len,
        })
    }
}

fn spool_io(what: &str, path: &Path, error: &std::io::Error) -> RecordError {
    RecordError::Unavailable {
        reason: format!(
            "could not {what} {}: {error}; check the spool volume (space, permissions)",
            path.display()
        ),
    }
}

/// The thread that owns the spool's open files: group commit of appends, segment cuts, stream
/// closes.
pub struct SpoolWriter {
    settings: SpoolSettings,
    streams: HashMap<String, SpoolStream>,
    /// Sessions whose stream ended on this replica, with their credentials' expiry.
    ended: HashMap<String, (Timestamp, &'static str)>,
    jobs: mpsc::UnboundedSender<UploadJob>,
    metrics: Arc<RecorderMetrics>,
}

struct Waiter {
    session: String,
    ack: oneshot::Sender<Result<(), RecordError>>,
}

impl SpoolWriter {
    pub fn new(
        settings: SpoolSettings,
        ended: impl IntoIterator<Item = (String, Timestamp)>,
        jobs: mpsc::UnboundedSender<UploadJob>,
        metrics: Arc<RecorderMetrics>,
    ) -> Self {
        let ended = ended
            .into_iter()
            .map(|(s, expires)| (s, (expires, "its stream was closed on recovery after a restart")))
            .collect();
        Self { settings, streams: HashMap::new(), ended, jobs, metrics }
    }

    /// Runs until every command sender is gone.
    pub fn run(mut self, mut commands: mpsc::Receiver<SpoolCommand>) {
        while let Some(first) = commands.blocking_recv() {
            let mut batch = vec![first];
            while batch.len() < 4096 {
                match commands.try_recv() {
                    Ok(command) => batch.push(command),
                    Err(_) => break,
                }
            }
            self.process(batch);
        }
        tracing::debug!("spool writer stopped");
    }

    fn process(&mut self, batch: Vec<SpoolCommand>) {
        let mut waiters: Vec<Waiter> = Vec::new();
        let mut touched: HashMap<String, Snapshot> = HashMap::new();
        let mut failed: HashMap<String, RecordError> = HashMap::new();
        let mut later = Vec::new();
        let now = Timestamp::now();
        for command in batch {
            let SpoolCommand::Append { stream, payload, ack } = command else {
                later.push(command);
                continue;
            };
            let session = stream.session.clone();
            if let Some(error) = failed.get(&session) {
                let _ = ack.send(Err(error.clone()));
                continue;
            }
            if let Some((_, why)) = self.ended.get(&session) {
                let _ = ack.send(Err(RecordError::SessionEnded {
                    session: session.clone(),
                    why: (*why).to_owned(),
                }));
                continue;
            }
            let result = self.write_one(&stream, &payload, now, &mut touched);
            match result {
                Ok(_) => waiters.push(Waiter { session, ack }),
                Err(error) => {
                    self.fail_stream(&session, &touched);
                    failed.insert(session.clone(), error.clone());
                    let _ = ack.send(Err(error));
                }
            }
        }
        // One fsync per touched file, then the acknowledgements.
        for session in touched.keys() {
            if failed.contains_key(session) {
                continue;
            }
            if let Some(stream) = self.streams.get(session)
                && let Err(error) = stream.sync()
            {
                self.fail_stream(session, &touched);
                failed.insert(session.clone(), error);
            }
        }
        self.metrics.fsyncs_total.fetch_add(touched.len() as u64, Ordering::Relaxed);
        for (session, snapshot) in &touched {
            if failed.contains_key(session) {
                continue;
            }
            if let (Snapshot::New, Some(stream)) = (snapshot, self.streams.get(session)) {
                self.metrics.open_streams.fetch_add(1, Ordering::Relaxed);
                let _ = self
                    .jobs
                    .send(UploadJob::Opened { meta: stream.meta.clone(), dir: stream.dir.clone() });
            }
        }
        for waiter in waiters {
            match failed.get(&waiter.session) {
                Some(error) => {
                    let _ = waiter.ack.send(Err(error.clone()));
                }
                None => {
                    self.metrics.events_recorded_total.fetch_add(1, Ordering::Relaxed);
                    let _ = waiter.ack.send(Ok(()));
                }
            }
        }
        // Count what the files grew by (session.start lines included).
        for (session, snapshot) in &touched {
            if failed.contains_key(session) {
                continue;
            }
            let Some(stream) = self.streams.get(session) else { continue };
            let now_len = stream.open.as_ref().map_or(0, |o| o.len);
            let before = match snapshot {
                Snapshot::New => 0,
                Snapshot::Existing { open_len, .. } => open_len.unwrap_or(0),
            };
            self.metrics.spool_bytes.fetch_add(now_len.saturating_sub(before), Ordering::Relaxed);
        }
        for session in touched.keys() {
            let due = self
                .streams
                .get(session)
                .and_then(|s| s.open.as_ref())
                .is_some_and(|o| o.len >= self.settings.cut.max_bytes);
            if due {
                self.cut(session);
            }
        }
        for command in later {
            match command {
                SpoolCommand::Sweep { now } => self.sweep(now),
                SpoolCommand::CloseAll { reason, done } => {
                    let sessions: Vec<String> = self.streams.keys().cloned().collect();
                    for session in sessions {
                        self.close(&session, reason, "its stream was closed at shutdown");
                    }
                    let _ = done.send(());
                }
                SpoolCommand::Append { .. } => {}
            }
        }
    }

    fn write_one(
        &mut self,
        spec: &StreamSpec,
        payload: &[u8],
        now: Timestamp,
        touched: &mut HashMap<String, Snapshot>,
    ) -> Result<u64, RecordError> {
        if !self.streams.contains_key(&spec.session) {
            touched.insert(spec.session.clone(), Snapshot::New);
            let stream = self.open_stream(spec, now)?;
            self.streams.insert(spec.session.clone(), stream);
        }
        let Some(stream) = self.streams.get_mut(&spec.session) else {
            return Err(RecordError::Unavailable { reason: "stream vanished".into() });
        };
        touched.entry(spec.session.clone()).or_insert_with(|| stream.snapshot());
        stream.write(now, payload)
    }

    /// Creates a stream's directory and metadata and writes its `session.start`.
    fn open_stream(&self, spec: &StreamSpec, now: Timestamp) -> Result<SpoolStream, RecordError> {
        let meta = StreamMeta {
            session: spec.session.clone(),
            replica: self.settings.replica.clone(),
            namespace: spec.namespace.clone(),
            connection: spec.connection.clone(),
            bucket: spec.bucket.clone(),
            prefix: spec.prefix.clone(),
            start: spec.start.clone(),
            started: now,
        };
        meta.location().map_err(|e| RecordError::BadEvent {
            reason: format!("session {} cannot be laid out in the bucket: {e}", spec.session),
        })?;
        let dir = self.settings.dir.join(&spec.session);
        let meta_bytes = serde_json::to_vec_pretty(&meta)
            .map_err(|e| RecordError::BadEvent { reason: e.to_string() })?;
        fs::create_dir_all(&dir)
            .and_then(|()| sync_dir(&self.settings.dir))
            .and_then(|()| write_durably(&dir.join(STREAM_META_FILE), &meta_bytes))
            .map_err(|e| spool_io("create the stream's spool directory", &dir, &e))?;
        let mut stream = SpoolStream {
            head: chain_genesis(&meta.session, &meta.replica),
            meta,
            dir,
            next_seq: 1,
            next_segment: 1,
            open: None,
        };
        let start = payload_of(&EventBody::SessionStart(spec.start.clone()))?;
        stream.write(now, &start)?;
        Ok(stream)
    }

    fn fail_stream(&mut self, session: &str, touched: &HashMap<String, Snapshot>) {
        match touched.get(session) {
            Some(Snapshot::New) => {
                if let Some(stream) = self.streams.remove(session) {
                    let _ = fs::remove_dir_all(&stream.dir);
                }
            }
            Some(snapshot) => {
                if let Some(stream) = self.streams.get_mut(session) {
                    stream.roll_back(snapshot);
                }
            }
            None => {}
        }
    }

    fn cut(&mut self, session: &str) {
        let Some(segment) = self.streams.get_mut(session).and_then(SpoolStream::cut) else {
            return;
        };
        tracing::debug!(session, segment = segment.index, bytes = segment.bytes, "segment cut");
        self.metrics.upload_backlog_segments.fetch_add(1, Ordering::Relaxed);
        let _ = self.jobs.send(UploadJob::Segment { session: session.to_owned(), segment });
    }

    fn sweep(&mut self, now: Timestamp) {
        let max_age = self.settings.cut.max_age;
        let grace = self.settings.expiry_grace;
        let mut aged = Vec::new();
        let mut expired = Vec::new();
        for (session, stream) in &self.streams {
            let expiry = stream.meta.start.credentials_expire.checked_add(grace);
            if expiry.is_none_or(|at| now >= at) {
                expired.push(session.clone());
            } else if let Some(open) = &stream.open
                && open.first_ts.checked_add(max_age).is_none_or(|due| now >= due)
            {
                aged.push(session.clone());
            }
        }
        for session in aged {
            self.cut(&session);
        }
        for session in expired {
            self.close(&session, EndReason::Expired, "its credentials expired");
        }
        self.ended.retain(|_, (expires, _)| {
            expires.checked_add(grace * 2 + Duration::from_secs(3600)).is_some_and(|t| now < t)
        });
    }

    /// Writes `session.end`, cuts the last segment and hands the stream over for closing.
    fn close(&mut self, session: &str, reason: EndReason, why: &'static str) {
        let Some(stream) = self.streams.get_mut(session) else { return };
        let snapshot = stream.snapshot();
        let now = Timestamp::now();
        let written = payload_of(&EventBody::SessionEnd(SessionEnd { reason }))
            .and_then(|payload| stream.write(now, &payload))
            .and_then(|bytes| stream.sync().map(|()| bytes));
        match written {
            Ok(bytes) => {
                self.metrics.spool_bytes.fetch_add(bytes, Ordering::Relaxed);
                let expires = stream.meta.start.credentials_expire;
                self.cut(session);
                self.streams.remove(session);
                self.ended.insert(session.to_owned(), (expires, why));
                self.metrics.open_streams.fetch_sub(1, Ordering::Relaxed);
                tracing::info!(session, ?reason, "recording stream ended");
                let _ = self.jobs.send(UploadJob::Closed {
                    session: session.to_owned(),
                    reason,
                    ended: now,
                });
            }
            Err(error) => {
                stream.roll_back(&snapshot);
                tracing::error!(session, %error, "could not write session.end; will retry");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chaperone_recording::{AgentIdentity, Event};

    fn start() -> SessionStart {
        SessionStart {
            connection: "prod".into(),
            agent: AgentIdentity {
                namespace: "team-a".into(),
                service_account: "bot".into(),
                pod_name: "bot-1".into(),
                pod_uid: "uid".into(),
                role_session_name: "bot".into(),
            },
            credentials_expire: Timestamp::parse("2026-11-25T18:00:00Z").unwrap(),
        }
    }

    #[test]
    fn spliced_event_line_equals_the_serialized_event() {
        let ts = Timestamp::parse("2026-11-25T17:00:00Z").unwrap();
        let body = EventBody::SessionStart(start());
        let prev = chain_genesis("s", "r");
        let line = event_line(1, ts, "s", "r", prev, &payload_of(&body).unwrap()).unwrap();
        let event = Event {
            v: FORMAT_VERSION,
            seq: 1,
            ts,
            session: "s".into(),
            replica: "r".into(),
            prev,
            body,
        };
        assert_eq!(line, serde_json::to_vec(&event).unwrap());
    }

    #[test]
    fn spool_file_names_round_trip_and_others_are_ignored() {
        assert_eq!(spool_file_name(7), "000007.jsonl");
        assert_eq!(parse_spool_file_name("000007.jsonl"), Some(7));
        assert_eq!(parse_spool_file_name("stream.json"), None);
        assert_eq!(parse_spool_file_name("000000.jsonl"), None);
    }
}
