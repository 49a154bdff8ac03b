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
    Append {
        stream: Box<StreamSpec>,
        payload: Vec<u8>,
        /// When the event must be durable: a request waits for it before the call goes upstream
        /// ([`Durability::Now`]); a response gates nothing ([`Durability::Soon`]).
        durability: Durability,
        /// Who waits for the outcome; `None` for a detached event (a response: nobody waits,
        /// and the writer logs a failure itself).
        ack: Option<oneshot::Sender<Result<(), RecordError>>>,
    },
    /// Cut segments that aged, close streams whose credentials expired.
    Sweep { now: Timestamp },
    /// Close every open stream (graceful shutdown).
    CloseAll { reason: EndReason, done: oneshot::Sender<()> },
}

/// When an appended event must be durable (fsynced) and acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// In this batch's group commit: the caller waits for it (a request before it is forwarded).
    Now,
    /// Written to the spool file at once, fsynced with the next group commit that has a
    /// [`Durability::Now`] event, a cut or a close, and at the latest
    /// [`SpoolSettings::soon_within`] later. Nothing waits on it (a response event).
    Soon,
    /// Written to the spool file (the page cache: it survives the process, not the node) and
    /// acknowledged at once; fsynced like [`Durability::Soon`] (RecordingPolicy `durability:
    /// Written`, a request before it is forwarded).
    Written,
}

/// Settings of the spool writer.
#[derive(Clone, Debug)]
pub struct SpoolSettings {
    pub dir: PathBuf,
    pub replica: String,
    pub cut: CutPolicy,
    /// How long after its credentials expire a stream is closed.
    pub expiry_grace: Duration,
    /// Longest time a [`Durability::Soon`] or [`Durability::Written`] event stays written but not
    /// fsynced.
    pub soon_within: Duration,
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
    /// Bytes of the file including `unwritten`.
    len: u64,
    /// Lines of this batch not yet handed to the kernel: one `write` per stream per batch.
    unwritten: Vec<u8>,
    first_seq: u64,
    first_prev: Hash256,
    first_ts: Timestamp,
}

/// Lines at least this long are written at once instead of buffered for the batch's write.
const DIRECT_WRITE_BYTES: usize = 64 << 10;

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
                unwritten: Vec::new(),
                first_seq: self.next_seq,
                first_prev: self.head,
                first_ts: ts,
            });
        }
        let Some(open) = self.open.as_mut() else {
            return Err(RecordError::Unavailable { reason: "spool file vanished".into() });
        };
        if line.len() >= DIRECT_WRITE_BYTES {
            // A large line (a captured body) goes straight to the file, not copied.
            let written = match std::mem::take(&mut open.unwritten) {
                pending if pending.is_empty() => open.file.write_all(&line),
                pending => open.file.write_all(&pending).and_then(|()| open.file.write_all(&line)),
            };
            written.map_err(|e| spool_io("write the spool", &open.path, &e))?;
        } else {
            open.unwritten.extend_from_slice(&line);
        }
        open.len += line.len() as u64;
        self.next_seq += 1;
        self.head = hash;
        Ok(line.len() as u64)
    }

    /// Hands the lines written since the last flush to the kernel (one `write`).
    fn flush(&mut self) -> Result<(), RecordError> {
        match &mut self.open {
            Some(open) if !open.unwritten.is_empty() => {
                let written = open.file.write_all(&open.unwritten);
                open.unwritten.clear();
                written.map_err(|e| spool_io("write the spool", &open.path, &e))
            }
            _ => Ok(()),
        }
    }

    /// Fsyncs what was flushed.
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
            (Some(len), Some(mut open)) => {
                open.unwritten.clear();
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
    /// Written, not yet fsynced [`Durability::Soon`] events.
    deferred: Deferred,
}

struct Waiter {
    session: String,
    ack: Ack,
    durability: Durability,
}

/// Who learns the outcome of a written event.
enum Ack {
    /// The appender, waiting on this sender.
    Waiting(oneshot::Sender<Result<(), RecordError>>),
    /// Told already: a [`Durability::Written`] event is acknowledged once in the file, before
    /// its fsync.
    Answered,
    /// Nobody ([`SpoolCommand::Append`] without `ack`: a response); the writer logs a failure.
    Detached,
}

/// Tells the appender the outcome, or, for a detached event, logs a failure: nobody else will.
fn answer(
    ack: Option<oneshot::Sender<Result<(), RecordError>>>,
    session: &str,
    result: Result<(), RecordError>,
) {
    match (ack, result) {
        (Some(ack), result) => {
            let _ = ack.send(result);
        }
        (None, Err(error)) => {
            tracing::error!(%session, %error, "could not record an event nobody waits for (a response)");
        }
        (None, Ok(())) => {}
    }
}

/// What a batch of only [`Durability::Soon`] events left for the next group commit.
#[derive(Default)]
struct Deferred {
    waiters: Vec<Waiter>,
    /// The streams written since their last fsync, with where they stood before.
    touched: HashMap<String, Snapshot>,
    /// When the oldest deferred event was written.
    since: Option<std::time::Instant>,
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
        Self {
            settings,
            streams: HashMap::new(),
            ended,
            jobs,
            metrics,
            deferred: Deferred::default(),
        }
    }

    /// Runs until every command sender is gone (deferred events are fsynced before it returns).
    pub fn run(mut self, mut commands: mpsc::Receiver<SpoolCommand>) {
        // Waiting for a command with a deadline (deferred events) needs a timer: a small runtime
        // of this thread's own. Without one, every event is made durable in its own batch.
        let timer = tokio::runtime::Builder::new_current_thread().enable_time().build();
        if let Err(error) = &timer {
            tracing::warn!(%error, "no timer for deferred fsyncs; every spooled event is fsynced in its own batch");
        }
        loop {
            let first = match (&timer, self.deferred.since) {
                (Ok(timer), Some(since)) => {
                    let deadline =
                        tokio::time::Instant::from_std(since + self.settings.soon_within);
                    // The timeout is made inside the runtime (its timer is that runtime's).
                    let next = timer.block_on(async {
                        tokio::time::timeout_at(deadline, commands.recv()).await
                    });
                    match next {
                        Ok(Some(command)) => command,
                        Ok(None) => break,
                        Err(_elapsed) => {
                            self.process(Vec::new(), true);
                            continue;
                        }
                    }
                }
                (Err(_), Some(_)) => {
                    self.process(Vec::new(), true);
                    continue;
                }
                (_, None) => match commands.blocking_recv() {
                    Some(command) => command,
                    None => break,
                },
            };
            let mut batch = vec![first];
            while batch.len() < 4096 {
                match commands.try_recv() {
                    Ok(command) => batch.push(command),
                    Err(_) => break,
                }
            }
            self.process(batch, false);
        }
        self.process(Vec::new(), true);
        tracing::debug!("spool writer stopped");
    }

    /// Writes a batch, then fsyncs every stream it (or an earlier, deferred batch) wrote to
    /// unless the batch holds only [`Durability::Soon`] events whose deadline has not come
    /// (or `flush` is set: fsync whatever is deferred).
    fn process(&mut self, batch: Vec<SpoolCommand>, flush: bool) {
        // Deferred writes join this batch: one fsync covers them, and a failure rolls them back.
        let mut waiters: Vec<Waiter> = std::mem::take(&mut self.deferred.waiters);
        let mut touched: HashMap<String, Snapshot> = std::mem::take(&mut self.deferred.touched);
        let deferred_since = self.deferred.since.take();
        let mut failed: HashMap<String, RecordError> = HashMap::new();
        let mut later = Vec::new();
        let now = Timestamp::now();
        for command in batch {
            let SpoolCommand::Append { stream, payload, durability, ack } = command else {
                later.push(command);
                continue;
            };
            let session = stream.session.clone();
            if let Some(error) = failed.get(&session) {
                answer(ack, &session, Err(error.clone()));
                continue;
            }
            if let Some((_, why)) = self.ended.get(&session) {
                let ended =
                    RecordError::SessionEnded { session: session.clone(), why: (*why).to_owned() };
                answer(ack, &session, Err(ended));
                continue;
            }
            let result = self.write_one(&stream, &payload, now, &mut touched);
            match result {
                Ok(_) => {
                    let ack = ack.map_or(Ack::Detached, Ack::Waiting);
                    waiters.push(Waiter { session, ack, durability });
                }
                Err(error) => {
                    self.fail_stream(&session, &touched);
                    failed.insert(session.clone(), error.clone());
                    answer(ack, &session, Err(error));
                }
            }
        }
        // One write per stream for the batch's lines.
        let mut unflushed = Vec::new();
        for session in touched.keys().filter(|s| !failed.contains_key(*s)) {
            if let Some(Err(error)) = self.streams.get_mut(session).map(SpoolStream::flush) {
                unflushed.push((session.clone(), error));
            }
        }
        for (session, error) in unflushed {
            self.fail_stream(&session, &touched);
            failed.insert(session, error);
        }
        // Written events are acknowledged once in the file, before their fsync.
        for waiter in waiters.iter_mut().filter(|w| w.durability == Durability::Written) {
            if failed.contains_key(&waiter.session) || !matches!(waiter.ack, Ack::Waiting(_)) {
                continue;
            }
            if let Ack::Waiting(ack) = std::mem::replace(&mut waiter.ack, Ack::Answered) {
                self.metrics.events_recorded_total.fetch_add(1, Ordering::Relaxed);
                let _ = ack.send(Ok(()));
            }
        }
        let due_for_cut = |this: &Self, session: &String| {
            this.streams
                .get(session)
                .and_then(|s| s.open.as_ref())
                .is_some_and(|o| o.len >= this.settings.cut.max_bytes)
        };
        let must_sync = flush
            || !later.is_empty()
            || !failed.is_empty()
            || waiters.iter().any(|w| w.durability == Durability::Now)
            || deferred_since.is_some_and(|t| t.elapsed() >= self.settings.soon_within)
            || touched.keys().any(|s| due_for_cut(self, s));
        if !must_sync {
            if !touched.is_empty() || !waiters.is_empty() {
                self.deferred = Deferred {
                    waiters,
                    touched,
                    since: Some(deferred_since.unwrap_or_else(std::time::Instant::now)),
                };
            }
            return;
        }
        for (session, error) in self.sync_touched(&touched, &failed) {
            self.fail_stream(&session, &touched);
            failed.insert(session, error);
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
            self.metrics.spool_grew(&stream.meta.connection, now_len.saturating_sub(before));
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
            match (failed.get(&waiter.session), waiter.ack) {
                (Some(error), Ack::Waiting(ack)) => {
                    let _ = ack.send(Err(error.clone()));
                }
                (None, Ack::Waiting(ack)) => {
                    self.metrics.events_recorded_total.fetch_add(1, Ordering::Relaxed);
                    let _ = ack.send(Ok(()));
                }
                (Some(error), Ack::Detached) => {
                    answer(None, &waiter.session, Err(error.clone()));
                }
                (None, Ack::Detached) => {
                    self.metrics.events_recorded_total.fetch_add(1, Ordering::Relaxed);
                }
                (Some(error), Ack::Answered) => {
                    // Acknowledged when written (durability Written): its call went upstream;
                    // the fsync failed and the stream was rolled back past it.
                    tracing::error!(
                        session = %waiter.session,
                        %error,
                        "an event acknowledged when written (durability Written) is lost: its fsync failed after the call was forwarded"
                    );
                }
                (None, Ack::Answered) => {}
            }
        }
        for session in touched.keys() {
            if due_for_cut(self, session) {
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

    /// Fsyncs each touched, not failed stream's file once, the files in parallel (the file
    /// system can commit them together); returns the streams whose fsync failed.
    fn sync_touched(
        &self,
        touched: &HashMap<String, Snapshot>,
        failed: &HashMap<String, RecordError>,
    ) -> Vec<(String, RecordError)> {
        let to_sync: Vec<&SpoolStream> = touched
            .keys()
            .filter(|session| !failed.contains_key(*session))
            .filter_map(|session| self.streams.get(session))
            .collect();
        if to_sync.len() <= 1 {
            to_sync
                .iter()
                .filter_map(|s| s.sync().err().map(|e| (s.meta.session.clone(), e)))
                .collect()
        } else {
            std::thread::scope(|scope| {
                let syncing: Vec<_> = to_sync
                    .iter()
                    .map(|s| (s.meta.session.clone(), scope.spawn(|| s.sync())))
                    .collect();
                syncing
                    .into_iter()
                    .filter_map(|(session, sync)| {
                        let result = sync.join().unwrap_or_else(|_| {
                            Err(RecordError::Unavailable {
                                reason: "an fsync thread panicked".into(),
                            })
                        });
                        result.err().map(|e| (session, e))
                    })
                    .collect()
            })
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
            .and_then(|bytes| stream.flush().and_then(|()| stream.sync()).map(|()| bytes));
        match written {
            Ok(bytes) => {
                self.metrics.spool_grew(&stream.meta.connection, bytes);
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
pub(crate) mod tests {
    use super::*;
    use chaperone_recording::{AgentIdentity, Body, Event, Response, SegmentWriter, Timings};

    pub(crate) const SESSION: &str = "019abc00-0000-7000-8000-000000000001";

    pub(crate) fn start() -> SessionStart {
        SessionStart {
            connection: "prod".into(),
            agent: AgentIdentity {
                namespace: "team-a".into(),
                service_account: "bot".into(),
                pod_name: "bot-1".into(),
                pod_uid: "uid".into(),
                role_session_name: "bot".into(),
            },
            credentials_expire: Timestamp::now().checked_add(Duration::from_secs(3600)).unwrap(),
        }
    }

    /// A 200 response of `call` with body `{}`.
    pub(crate) fn response(call: &str) -> EventBody {
        EventBody::Response(Response {
            call: call.into(),
            status: Some(200),
            headers: vec![],
            body: Body::complete(b"{}"),
            timings: Timings::default(),
            upstream_error: None,
            redacted: vec![],
            request_body: None,
        })
    }

    pub(crate) fn response_payload(call: &str) -> Vec<u8> {
        payload_of(&response(call)).unwrap()
    }

    /// Runs a spool writer over `calls` appends queued before it starts (so they form one batch);
    /// returns the acknowledgements, the jobs it emitted and its metrics.
    pub(crate) fn spool_calls(
        dir: &Path,
        calls: usize,
    ) -> (Vec<Result<(), RecordError>>, Vec<UploadJob>, Arc<RecorderMetrics>) {
        let (writer, mut jobs_rx, metrics) = writer(dir, Duration::from_millis(10));
        let (commands, receiver) = mpsc::channel(calls + 1);
        let mut done = Vec::new();
        for i in 0..calls {
            let (ack, acked) = oneshot::channel();
            let payload = response_payload(&format!("c{i}"));
            commands
                .try_send(SpoolCommand::Append {
                    stream: stream_spec(),
                    payload,
                    durability: Durability::Now,
                    ack: Some(ack),
                })
                .unwrap();
            done.push(acked);
        }
        drop(commands);
        writer.run(receiver);
        let acks = done.into_iter().map(|d| d.blocking_recv().unwrap()).collect();
        let mut jobs = Vec::new();
        while let Ok(job) = jobs_rx.try_recv() {
            jobs.push(job);
        }
        (acks, jobs, metrics)
    }

    fn stream_spec() -> Box<StreamSpec> {
        Box::new(StreamSpec {
            session: SESSION.into(),
            namespace: "team-a".into(),
            connection: "prod".into(),
            bucket: "audit".into(),
            prefix: "agents/".into(),
            start: start(),
        })
    }

    /// A spool writer of replica `gw-0` in `dir`, with its upload jobs and metrics.
    fn writer(
        dir: &Path,
        soon_within: Duration,
    ) -> (SpoolWriter, mpsc::UnboundedReceiver<UploadJob>, Arc<RecorderMetrics>) {
        let (jobs_tx, jobs_rx) = mpsc::unbounded_channel();
        let metrics = Arc::new(RecorderMetrics::default());
        let settings = SpoolSettings {
            dir: dir.to_owned(),
            replica: "gw-0".into(),
            cut: CutPolicy { max_bytes: 1 << 20, max_age: Duration::from_secs(3600) },
            expiry_grace: Duration::from_secs(30),
            soon_within,
        };
        (SpoolWriter::new(settings, [], jobs_tx, metrics.clone()), jobs_rx, metrics)
    }

    /// A spool writer running on its own thread, as the recorder runs it.
    fn running_writer(
        dir: &Path,
        soon_within: Duration,
    ) -> (mpsc::Sender<SpoolCommand>, std::thread::JoinHandle<()>, Arc<RecorderMetrics>) {
        // Upload jobs are not looked at here (the writer ignores a closed job queue).
        let (writer, _, metrics) = writer(dir, soon_within);
        let (commands, receiver) = mpsc::channel(64);
        let thread = std::thread::spawn(move || writer.run(receiver));
        (commands, thread, metrics)
    }

    fn append(
        commands: &mpsc::Sender<SpoolCommand>,
        call: &str,
        durability: Durability,
    ) -> oneshot::Receiver<Result<(), RecordError>> {
        let (ack, acked) = oneshot::channel();
        let payload = response_payload(call);
        commands
            .blocking_send(SpoolCommand::Append {
                stream: stream_spec(),
                payload,
                durability,
                ack: Some(ack),
            })
            .unwrap();
        acked
    }

    #[test]
    fn a_response_waits_for_the_next_request_and_shares_its_fsync() {
        let dir = tempfile::tempdir().unwrap();
        let (commands, thread, metrics) = running_writer(dir.path(), Duration::from_secs(600));
        let mut responses: Vec<_> =
            (0..3).map(|i| append(&commands, &format!("r{i}"), Durability::Soon)).collect();
        // Written at once (readable in the spool file), not yet fsynced nor acknowledged.
        let spool_file = dir.path().join(SESSION).join("000001.jsonl");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while fs::read(&spool_file).map_or(0, |b| b.split(|c| *c == b'\n').count()) < 5 {
            assert!(std::time::Instant::now() < deadline, "the responses were not written");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(metrics.snapshot().fsyncs_total, 0);
        assert!(responses.iter_mut().all(|r| r.try_recv().is_err()), "acknowledged before fsync");
        // A request makes everything durable in one fsync.
        let request = append(&commands, "q", Durability::Now);
        assert!(request.blocking_recv().unwrap().is_ok());
        for response in responses {
            assert!(response.blocking_recv().unwrap().is_ok());
        }
        let m = metrics.snapshot();
        assert_eq!((m.fsyncs_total, m.events_recorded_total), (1, 4));
        drop(commands);
        thread.join().unwrap();
    }

    #[test]
    fn a_written_event_is_acknowledged_once_in_the_file_and_fsynced_within_its_deadline() {
        let dir = tempfile::tempdir().unwrap();
        // A long deadline: the acknowledgement cannot be waiting for an fsync.
        let (commands, thread, metrics) = running_writer(dir.path(), Duration::from_secs(600));
        let written = append(&commands, "w", Durability::Written);
        assert!(written.blocking_recv().unwrap().is_ok());
        let spool_file = dir.path().join(SESSION).join("000001.jsonl");
        let lines = fs::read(&spool_file).unwrap();
        assert_eq!(lines.split(|c| *c == b'\n').filter(|l| !l.is_empty()).count(), 2);
        let m = metrics.snapshot();
        assert_eq!((m.fsyncs_total, m.events_recorded_total), (0, 1));
        // The next event that needs an fsync takes the written one with it.
        assert!(append(&commands, "q", Durability::Now).blocking_recv().unwrap().is_ok());
        let m = metrics.snapshot();
        assert_eq!((m.fsyncs_total, m.events_recorded_total), (1, 2));
        drop(commands);
        thread.join().unwrap();

        // Alone, it is fsynced once its deadline passes, with no other event to carry it.
        let dir = tempfile::tempdir().unwrap();
        let (commands, thread, metrics) = running_writer(dir.path(), Duration::from_millis(20));
        assert!(append(&commands, "w", Durability::Written).blocking_recv().unwrap().is_ok());
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while metrics.snapshot().fsyncs_total == 0 {
            assert!(std::time::Instant::now() < deadline, "the written event was never fsynced");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(metrics.snapshot().fsyncs_total, 1);
        drop(commands);
        thread.join().unwrap();
    }

    #[test]
    fn a_lone_response_is_fsynced_within_its_deadline_and_at_shutdown() {
        let dir = tempfile::tempdir().unwrap();
        let (commands, thread, metrics) = running_writer(dir.path(), Duration::from_millis(20));
        let response = append(&commands, "r", Durability::Soon);
        assert!(response.blocking_recv().unwrap().is_ok());
        assert_eq!(metrics.snapshot().fsyncs_total, 1);
        drop(commands);
        thread.join().unwrap();

        // A writer stopped with deferred events fsyncs them before it returns.
        let dir = tempfile::tempdir().unwrap();
        let (commands, thread, metrics) = running_writer(dir.path(), Duration::from_secs(600));
        let response = append(&commands, "r", Durability::Soon);
        drop(commands);
        thread.join().unwrap();
        assert!(response.blocking_recv().unwrap().is_ok());
        assert_eq!(metrics.snapshot().fsyncs_total, 1);
    }

    #[test]
    fn appends_queued_together_share_one_fsync_and_are_chained_in_the_spool() {
        let dir = tempfile::tempdir().unwrap();
        let (acks, jobs, metrics) = spool_calls(dir.path(), 10);
        assert!(acks.iter().all(Result::is_ok), "{acks:?}");
        let m = metrics.snapshot();
        assert_eq!((m.fsyncs_total, m.events_recorded_total, m.open_streams), (1, 10, 1));
        assert!(matches!(&jobs[..], [UploadJob::Opened { .. }]));
        let bytes = fs::read(dir.path().join(SESSION).join("000001.jsonl")).unwrap();
        assert_eq!(m.spool_bytes, bytes.len() as u64);
        let mut chain = SegmentWriter::new(SESSION, "gw-0");
        let lines: Vec<&[u8]> = bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
        assert_eq!(lines.len(), 11);
        for line in lines {
            chain.append_line(line).unwrap();
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
