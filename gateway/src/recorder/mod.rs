//! The gateway's recorder: the I/O around the recording format (`chaperone-recording`).
//!
//! [`Recorder::append`] applies the RecordingPolicy's capture and redaction ([`redact`]), then
//! hands the event to the [`SpoolWriter`] thread, which writes it to the local spool and fsyncs
//! it together with everything else queued meanwhile (group commit) before `append` returns: the
//! write-ahead the gateway needs before forwarding a call. Segments are cut from the spool by
//! size or age; a [`StreamUploader`] task per stream compresses them, PUTs them to the
//! connection's [`RecordingBucket`] (retrying until it succeeds), writes signed digests at the
//! digest interval and, when the stream ends, its manifest and final digest. [`Recorder::open`]
//! first recovers whatever a dead process left in the spool ([`recovery`]).
//!
//! docs/recorder.md describes the spool format and the recovery rules.

pub mod bucket;
pub mod error;
pub mod metrics;
pub mod recovery;
pub mod redact;
pub mod spool;
pub mod stream;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use chaperone_crds::{RecordingDurability, RecordingPolicySpec};
use chaperone_recording::{
    CutPolicy, EndReason, EventBody, RecordingSigner, SessionStart, Timestamp,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

pub use bucket::{ObjectKind, RecordingBucket};
pub use error::{RecordError, RecorderError};
pub use metrics::{RecorderMetrics, RecorderMetricsSnapshot};
pub use recovery::RecoveryReport;
pub use redact::{CallContext, CapturePolicy};
pub use spool::SpoolWriter;
pub use stream::StreamUploader;

use chaperone_config::{GatewayConfig, UpstreamCredentials};
use spool::{SpoolCommand, SpoolSettings, StreamSpec, UploadJob};
use stream::StreamJob;

/// How a replica records.
#[derive(Clone, Debug)]
pub struct RecorderSettings {
    /// Where the write-ahead spool lives (a volume that survives container restarts).
    pub spool_dir: PathBuf,
    /// This replica's name (its pod name): the `<replica>` of every stream it writes.
    pub replica: String,
    /// Signs manifests and digests.
    pub signer: RecordingSigner,
    /// Spool bytes beyond which appends are refused with [`RecordError::SpoolFull`].
    pub max_spool_bytes: u64,
    /// Spool bytes one connection may hold before its appends are refused with
    /// [`RecordError::ConnectionQuota`], so one agent whose recordings do not drain cannot
    /// starve the others. `None` (the default): an equal share, `max_spool_bytes` divided by the
    /// number of connections with a RecordingPolicy.
    pub max_connection_spool_bytes: Option<u64>,
    /// When segments are cut.
    pub cut: CutPolicy,
    /// How often each open stream writes a digest.
    pub digest_interval: Duration,
    /// How long after its credentials expire a stream is closed (`session.end` expired).
    pub expiry_grace: Duration,
    /// Longest time an event is written to the spool but not yet fsynced: a response (fsynced
    /// earlier with the next request's group commit), or a request under a RecordingPolicy with
    /// `durability: Written`. Under `durability: Fsync` (the default) requests are fsynced
    /// before they are forwarded.
    pub sync_within: Duration,
    /// Longest wait between retries of a failing upload.
    pub max_upload_backoff: Duration,
    /// How long [`Recorder::shutdown`] waits for uploads before leaving them to recovery.
    pub shutdown_timeout: Duration,
    /// When set, appends for a connection whose uploads have failed without a success for
    /// longer than this are refused with [`RecordError::Unavailable`] even before the spool is
    /// full. `None` (the default): only the spool limit refuses.
    pub max_upload_outage: Option<Duration>,
}

impl RecorderSettings {
    /// Settings with defaults: 1 GiB spool, segments cut at 8 MiB or 60 s, digests every 5
    /// minutes, 30 s expiry grace, written events fsynced within 10 ms, retries at most 5 s apart, 30 s shutdown.
    pub fn new(spool_dir: PathBuf, replica: impl Into<String>, signer: RecordingSigner) -> Self {
        Self {
            spool_dir,
            replica: replica.into(),
            signer,
            max_spool_bytes: 1 << 30,
            max_connection_spool_bytes: None,
            cut: CutPolicy { max_bytes: 8 << 20, max_age: Duration::from_secs(60) },
            digest_interval: Duration::from_secs(300),
            expiry_grace: Duration::from_secs(30),
            sync_within: Duration::from_millis(10),
            max_upload_backoff: Duration::from_secs(5),
            shutdown_timeout: Duration::from_secs(30),
            max_upload_outage: None,
        }
    }
}

/// Where one connection's sessions are recorded.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordingTarget {
    /// The gateway's namespace.
    pub namespace: String,
    /// The AgentConnection's name.
    pub connection: String,
    /// Its RecordingPolicy.
    pub policy: RecordingPolicySpec,
    /// The recorder's own S3 keys, resolved by the operator; `None`: the process environment's.
    pub credentials: Option<UpstreamCredentials>,
}

impl RecordingTarget {
    /// Where each connection of `config` records its sessions.
    pub fn all(config: &GatewayConfig) -> Vec<Self> {
        config
            .connections
            .iter()
            .filter_map(|c| {
                let policy = config.recording_policies.get(&c.recording_policy)?;
                Some(Self {
                    namespace: config.namespace.clone(),
                    connection: c.name.clone(),
                    policy: policy.clone(),
                    credentials: config.recording_credentials.get(&c.recording_policy).cloned(),
                })
            })
            .collect()
    }
}

/// The session an event belongs to.
#[derive(Clone, Debug, PartialEq)]
pub struct SessionHandle {
    /// Session id (UUIDv7).
    pub session: String,
    /// The AgentConnection the session came in through.
    pub connection: String,
    /// The stream's first event, written lazily before the first event this replica records.
    pub start: SessionStart,
}

/// How the recorder is doing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecorderStatus {
    pub spool_bytes_used: u64,
    pub spool_bytes_limit: u64,
    /// Cut segments not yet uploaded.
    pub upload_backlog_segments: u64,
    pub open_streams: u64,
    /// The most recent upload error of a connection whose uploads are failing.
    pub last_upload_error: Option<String>,
    /// Since when the longest-failing connection's uploads have been failing without a success.
    pub uploads_failing_since: Option<SystemTime>,
}

struct ResolvedTarget {
    target: RecordingTarget,
    capture: CapturePolicy,
    bucket: RecordingBucket,
}

/// Upload failures of one connection since its last successful upload.
struct UploadHealth {
    last_error: String,
    failing_since: SystemTime,
    last_failure: SystemTime,
}

/// State shared by the recorder's handle, its uploaders and its sweeper.
pub struct Shared {
    settings: RecorderSettings,
    targets: RwLock<HashMap<String, Arc<ResolvedTarget>>>,
    targets_version: watch::Sender<u64>,
    metrics: Arc<RecorderMetrics>,
    /// Connections whose uploads are failing.
    health: Mutex<HashMap<String, UploadHealth>>,
    calls: Mutex<HashMap<(String, String), (CallContext, Instant)>>,
}

impl Shared {
    fn bucket(&self, connection: &str) -> Option<RecordingBucket> {
        let targets = self.targets.read().unwrap_or_else(|e| e.into_inner());
        targets.get(connection).map(|t| t.bucket.clone())
    }

    /// The spool bytes one connection may hold, and how many connections share the spool.
    fn connection_share(&self) -> (u64, usize) {
        let connections = self.targets.read().unwrap_or_else(|e| e.into_inner()).len().max(1);
        let share = self
            .settings
            .max_connection_spool_bytes
            .unwrap_or(self.settings.max_spool_bytes / connections as u64);
        (share, connections)
    }

    fn target(&self, connection: &str) -> Option<Arc<ResolvedTarget>> {
        let targets = self.targets.read().unwrap_or_else(|e| e.into_inner());
        targets.get(connection).cloned()
    }

    fn upload_succeeded(&self, connection: &str, bytes: u64) {
        self.metrics.objects_uploaded_total.fetch_add(1, Ordering::Relaxed);
        self.metrics.uploaded_bytes_total.fetch_add(bytes, Ordering::Relaxed);
        self.health.lock().unwrap_or_else(|e| e.into_inner()).remove(connection);
    }

    fn upload_failed(&self, connection: &str, error: String) {
        self.metrics.upload_failures_total.fetch_add(1, Ordering::Relaxed);
        let now = SystemTime::now();
        let mut health = self.health.lock().unwrap_or_else(|e| e.into_inner());
        let entry = health.entry(connection.to_owned()).or_insert_with(|| UploadHealth {
            last_error: String::new(),
            failing_since: now,
            last_failure: now,
        });
        entry.last_error = error;
        entry.last_failure = now;
    }

    /// The newest upload error of any failing connection.
    fn last_upload_error(&self) -> Option<String> {
        let health = self.health.lock().unwrap_or_else(|e| e.into_inner());
        health.values().max_by_key(|h| h.last_failure).map(|h| h.last_error.clone())
    }

    /// The last upload error of `connection`, if its uploads are failing.
    fn last_upload_error_of(&self, connection: &str) -> Option<String> {
        let health = self.health.lock().unwrap_or_else(|e| e.into_inner());
        health.get(connection).map(|h| h.last_error.clone())
    }

    /// Refuses when `connection`'s uploads have failed for longer than the allowed outage.
    fn check_outage(&self, connection: &str, bucket: &str) -> Result<(), RecordError> {
        let Some(max) = self.settings.max_upload_outage else { return Ok(()) };
        let health = self.health.lock().unwrap_or_else(|e| e.into_inner());
        let Some(failing) = health.get(connection) else { return Ok(()) };
        let outage = failing.failing_since.elapsed().unwrap_or_default();
        if outage <= max {
            return Ok(());
        }
        Err(RecordError::Unavailable {
            reason: format!(
                "uploads to recording bucket {bucket:?} for connection {connection:?} have failed for {} s (last error: {}); fix the bucket, its credentials or endpoint in the RecordingPolicy",
                outage.as_secs(),
                failing.last_error
            ),
        })
    }

    /// The context a response is redacted with: remembered from its request.
    fn call_context(&self, session: &str, body: &EventBody) -> CallContext {
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        match body {
            EventBody::Request(r) => {
                let context = CallContext::of_request(&r.aws.actions, &r.body);
                calls.insert(
                    (session.to_owned(), r.call.clone()),
                    (context.clone(), Instant::now()),
                );
                context
            }
            EventBody::Denied(d) => CallContext::of_request(&d.aws.actions, &d.body),
            EventBody::Response(r) => calls
                .remove(&(session.to_owned(), r.call.clone()))
                .map(|(c, _)| c)
                .unwrap_or_default(),
            _ => CallContext::default(),
        }
    }

    fn forget_stale_calls(&self) {
        let mut calls = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        calls.retain(|_, (_, at)| at.elapsed() < Duration::from_secs(3600));
    }
}

/// Records sessions: write-ahead to the spool, then segments, manifests and digests to S3.
pub struct Recorder {
    shared: Arc<Shared>,
    commands: Mutex<Option<mpsc::Sender<SpoolCommand>>>,
    dispatcher: Mutex<Option<JoinHandle<()>>>,
    sweeper: JoinHandle<()>,
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    recovery: RecoveryReport,
}

impl Recorder {
    /// Opens the spool, recovers what a previous process left in it (uploading and closing those
    /// streams in the background) and starts recording. Must be called within a Tokio runtime.
    pub async fn open(
        settings: RecorderSettings,
        targets: Vec<RecordingTarget>,
    ) -> Result<Self, RecorderError> {
        if settings.max_spool_bytes == 0 {
            return Err(RecorderError::Setting {
                field: "max_spool_bytes",
                problem: "must be more than 0".into(),
            });
        }
        if settings.digest_interval.is_zero() {
            return Err(RecorderError::Setting {
                field: "digest_interval",
                problem: "must be more than 0".into(),
            });
        }
        let dir = settings.spool_dir.clone();
        let spool_error = |source| RecorderError::SpoolDir { path: dir.clone(), source };
        std::fs::create_dir_all(&dir).map_err(spool_error)?;
        let recover_dir = dir.clone();
        let (recovered, recovery) =
            tokio::task::spawn_blocking(move || recovery::recover_spool(&recover_dir))
                .await
                .map_err(|e| spool_error(std::io::Error::other(e)))?
                .map_err(spool_error)?;
        if recovery.streams > 0 || !recovery.torn_lines.is_empty() || !recovery.problems.is_empty()
        {
            tracing::warn!(
                streams = recovery.streams,
                events = recovery.events,
                torn_lines = recovery.torn_lines.len(),
                problems = recovery.problems.len(),
                "recovered a spool left by a previous process; its streams are closed as recovered"
            );
        }
        let metrics = Arc::new(RecorderMetrics::default());
        let (targets_version, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            settings: settings.clone(),
            targets: RwLock::new(HashMap::new()),
            targets_version,
            metrics: metrics.clone(),
            health: Mutex::new(HashMap::new()),
            calls: Mutex::new(HashMap::new()),
        });
        let recorder_targets = resolve_targets(targets, &HashMap::new());
        *shared.targets.write().unwrap_or_else(|e| e.into_inner()) = recorder_targets;

        let (jobs_tx, jobs_rx) = mpsc::unbounded_channel();
        let mut ended = Vec::new();
        for stream in recovered {
            let spooled: u64 = stream.segments.iter().map(|s| s.bytes).sum();
            metrics.spool_grew(&stream.meta.connection, spooled);
            metrics
                .upload_backlog_segments
                .fetch_add(stream.segments.len() as u64, Ordering::Relaxed);
            ended.push((stream.meta.session.clone(), stream.meta.start.credentials_expire));
            let session = stream.meta.session.clone();
            let _ = jobs_tx.send(UploadJob::Recovered {
                meta: stream.meta,
                dir: stream.dir,
                state: stream.state,
            });
            for segment in stream.segments {
                let _ = jobs_tx.send(UploadJob::Segment { session: session.clone(), segment });
            }
            let _ = jobs_tx.send(UploadJob::Closed {
                session,
                reason: stream.reason,
                ended: stream.ended,
            });
        }
        let dispatcher = tokio::spawn(dispatch_uploads(shared.clone(), jobs_rx));

        let (commands_tx, commands_rx) = mpsc::channel(8192);
        let writer = SpoolWriter::new(
            SpoolSettings {
                dir: settings.spool_dir.clone(),
                replica: settings.replica.clone(),
                cut: settings.cut,
                expiry_grace: settings.expiry_grace,
                soon_within: settings.sync_within,
            },
            ended,
            jobs_tx,
            metrics,
        );
        let writer_thread = std::thread::Builder::new()
            .name("chaperone-spool-writer".into())
            .spawn(move || writer.run(commands_rx))
            .map_err(RecorderError::WriterThread)?;

        let sweeper = tokio::spawn(sweep(shared.clone(), commands_tx.downgrade()));
        Ok(Self {
            shared,
            commands: Mutex::new(Some(commands_tx)),
            dispatcher: Mutex::new(Some(dispatcher)),
            sweeper,
            writer_thread: Mutex::new(Some(writer_thread)),
            recovery,
        })
    }

    /// Replaces the recording targets (configuration reload). Streams keep their bucket and
    /// prefix; clients, endpoints, credentials and capture rules change at once, and failing
    /// uploads retry immediately.
    pub fn update_targets(&self, targets: Vec<RecordingTarget>) {
        let mut current = self.shared.targets.write().unwrap_or_else(|e| e.into_inner());
        let resolved = resolve_targets(targets, &current);
        *current = resolved;
        drop(current);
        self.shared.targets_version.send_modify(|v| *v += 1);
    }

    /// Records one event of `session`; returns once its line is fsynced in the spool. The first
    /// event this replica records for a session is preceded by its `session.start`.
    pub async fn append(
        &self,
        session: &SessionHandle,
        body: EventBody,
    ) -> Result<(), RecordError> {
        let (ack, done) = oneshot::channel();
        let (commands, append) = self.prepare(session, body, Some(ack))?;
        commands.send(append).await.map_err(|_| shut_down())?;
        done.await.map_err(|_| shut_down())?
    }

    /// Records one event of `session` that nobody waits for (a response): it is checked,
    /// redacted and serialized by the caller, then queued for the spool writer, which logs it if
    /// it cannot be written. No task and no acknowledgement per event: the data path's
    /// response costs one channel send. A refusal before the queue is returned.
    pub fn append_detached(
        &self,
        session: &SessionHandle,
        body: EventBody,
    ) -> Result<(), RecordError> {
        let (commands, append) = self.prepare(session, body, None)?;
        match commands.try_send(append) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(append)) => {
                // The writer is behind: wait for room off the data path. Events queued after
                // this one may be written before it; each line is chained where it is written,
                // and a response names its call.
                let session = session.session.clone();
                let Ok(runtime) = tokio::runtime::Handle::try_current() else {
                    return Err(RecordError::Unavailable {
                        reason: "the spool writer's queue is full".into(),
                    });
                };
                runtime.spawn(async move {
                    if commands.send(append).await.is_err() {
                        tracing::error!(%session, "could not record a response: the recorder stopped");
                    }
                });
                Ok(())
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(shut_down()),
        }
    }

    /// Checks, redacts and serializes an event for the spool writer: the command, answered on
    /// `ack` (`None`: detached), and the queue it goes to.
    fn prepare(
        &self,
        session: &SessionHandle,
        mut body: EventBody,
        ack: Option<oneshot::Sender<Result<(), RecordError>>>,
    ) -> Result<(mpsc::Sender<SpoolCommand>, SpoolCommand), RecordError> {
        if matches!(body, EventBody::SessionStart(_)) {
            return Err(RecordError::BadEvent {
                reason: "session.start is written by the recorder from the session handle".into(),
            });
        }
        let target = self.shared.target(&session.connection).ok_or_else(|| {
            RecordError::Unavailable {
                reason: format!(
                    "no RecordingPolicy is configured for connection {:?}; check the AgentConnection's recordingPolicyRef",
                    session.connection
                ),
            }
        })?;
        self.shared.check_outage(&session.connection, &target.target.policy.s3.bucket)?;
        // A response gates nothing: it is written now and fsynced with the next request's group
        // commit (or within `sync_within`), so requests never queue behind its fsync. Other
        // events wait for their fsync, or only for their write under `durability: Written`.
        let durability = match (&body, target.target.policy.durability) {
            (EventBody::Response(_), _) => spool::Durability::Soon,
            (_, RecordingDurability::Fsync) => spool::Durability::Now,
            (_, RecordingDurability::Written) => spool::Durability::Written,
        };
        let call = self.shared.call_context(&session.session, &body);
        target.capture.apply(&mut body, &call);
        let payload = spool::payload_of(&body)?;
        let used = self.shared.metrics.spool_bytes.load(Ordering::Relaxed);
        let limit = self.shared.settings.max_spool_bytes;
        if used.saturating_add(payload.len() as u64) > limit {
            self.shared.metrics.spool_full_refusals_total.fetch_add(1, Ordering::Relaxed);
            return Err(RecordError::SpoolFull {
                used,
                limit,
                last_error: self.shared.last_upload_error(),
            });
        }
        let (share, connections) = self.shared.connection_share();
        let used = self.shared.metrics.connection_spool_bytes(&session.connection);
        if used.saturating_add(payload.len() as u64) > share {
            self.shared.metrics.connection_quota_refusals_total.fetch_add(1, Ordering::Relaxed);
            return Err(RecordError::ConnectionQuota {
                connection: session.connection.clone(),
                used,
                share,
                connections,
                last_error: self.shared.last_upload_error_of(&session.connection),
            });
        }
        let commands = self
            .commands
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(shut_down)?;
        let stream = Box::new(StreamSpec {
            session: session.session.clone(),
            namespace: target.target.namespace.clone(),
            connection: session.connection.clone(),
            bucket: target.target.policy.s3.bucket.clone(),
            prefix: target.target.policy.s3.prefix.clone(),
            start: session.start.clone(),
        });
        Ok((commands, SpoolCommand::Append { stream, payload, durability, ack }))
    }

    /// Spool usage, upload backlog and the last upload error.
    pub fn status(&self) -> RecorderStatus {
        let m = self.shared.metrics.snapshot();
        let health = self.shared.health.lock().unwrap_or_else(|e| e.into_inner());
        RecorderStatus {
            spool_bytes_used: m.spool_bytes,
            spool_bytes_limit: self.shared.settings.max_spool_bytes,
            upload_backlog_segments: m.upload_backlog_segments,
            open_streams: m.open_streams,
            last_upload_error: health
                .values()
                .max_by_key(|h| h.last_failure)
                .map(|h| h.last_error.clone()),
            uploads_failing_since: health.values().map(|h| h.failing_since).min(),
        }
    }

    /// The recorder's counters and gauges, for the metrics exporter.
    pub fn metrics(&self) -> Arc<RecorderMetrics> {
        self.shared.metrics.clone()
    }

    /// What [`Recorder::open`] recovered from the spool.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// Closes every open stream (`session.end` shutdown), waits up to `shutdown_timeout` for the
    /// uploads, manifests and final digests, and stops. What is not uploaded by then stays in
    /// the spool for the next start to recover. Appends after this fail with `Unavailable`.
    pub async fn shutdown(&self) {
        let commands = self.commands.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(commands) = commands {
            let (done, closed) = oneshot::channel();
            if commands
                .send(SpoolCommand::CloseAll { reason: EndReason::Shutdown, done })
                .await
                .is_ok()
            {
                let _ = closed.await;
            }
        }
        self.sweeper.abort();
        let writer = self.writer_thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(writer) = writer {
            let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        }
        let dispatcher = self.dispatcher.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(mut dispatcher) = dispatcher {
            let timeout = self.shared.settings.shutdown_timeout;
            if tokio::time::timeout(timeout, &mut dispatcher).await.is_err() {
                tracing::warn!(
                    timeout_s = timeout.as_secs(),
                    "recordings not uploaded within the shutdown timeout stay in the spool for recovery"
                );
                dispatcher.abort();
            }
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.sweeper.abort();
        if let Some(dispatcher) = self.dispatcher.lock().unwrap_or_else(|e| e.into_inner()).take() {
            dispatcher.abort();
        }
    }
}

fn shut_down() -> RecordError {
    RecordError::Unavailable { reason: "the recorder is shut down; the gateway is stopping".into() }
}

fn resolve_targets(
    targets: Vec<RecordingTarget>,
    current: &HashMap<String, Arc<ResolvedTarget>>,
) -> HashMap<String, Arc<ResolvedTarget>> {
    targets
        .into_iter()
        .map(|target| {
            let resolved = match current.get(&target.connection) {
                Some(existing) if existing.target == target => existing.clone(),
                _ => Arc::new(ResolvedTarget {
                    capture: CapturePolicy::from_spec(&target.policy),
                    bucket: RecordingBucket::new(&target.policy, target.credentials.as_ref()),
                    target: target.clone(),
                }),
            };
            (target.connection, resolved)
        })
        .collect()
}

/// Ticks the spool writer: aged segments are cut, expired streams closed.
async fn sweep(shared: Arc<Shared>, commands: mpsc::WeakSender<SpoolCommand>) {
    let period =
        (shared.settings.cut.max_age / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(commands) = commands.upgrade() else { return };
        if commands.send(SpoolCommand::Sweep { now: Timestamp::now() }).await.is_err() {
            return;
        }
        shared.forget_stale_calls();
    }
}

/// Routes upload jobs to one [`StreamUploader`] task per stream; ends when the spool writer has
/// stopped and every stream's uploads are done.
async fn dispatch_uploads(shared: Arc<Shared>, mut jobs: mpsc::UnboundedReceiver<UploadJob>) {
    let mut streams: HashMap<String, mpsc::UnboundedSender<StreamJob>> = HashMap::new();
    let mut tasks = tokio::task::JoinSet::new();
    while let Some(job) = jobs.recv().await {
        let (session, job) = match job {
            UploadJob::Opened { meta, dir } => {
                start_stream(&shared, &mut streams, &mut tasks, meta, dir, Default::default());
                continue;
            }
            UploadJob::Recovered { meta, dir, state } => {
                start_stream(&shared, &mut streams, &mut tasks, meta, dir, state);
                continue;
            }
            UploadJob::Segment { session, segment } => (session, StreamJob::Segment(segment)),
            UploadJob::Closed { session, reason, ended } => {
                (session, StreamJob::Closed { reason, ended })
            }
        };
        let closing = matches!(job, StreamJob::Closed { .. });
        match streams.get(&session) {
            Some(stream) => {
                let _ = stream.send(job);
            }
            None => tracing::error!(%session, "upload job for a stream that was never opened"),
        }
        if closing {
            streams.remove(&session);
        }
        while tasks.try_join_next().is_some() {}
    }
    drop(streams);
    while tasks.join_next().await.is_some() {}
}

fn start_stream(
    shared: &Arc<Shared>,
    streams: &mut HashMap<String, mpsc::UnboundedSender<StreamJob>>,
    tasks: &mut tokio::task::JoinSet<()>,
    meta: spool::StreamMeta,
    dir: PathBuf,
    state: stream::UploadState,
) {
    let session = meta.session.clone();
    match StreamUploader::new(meta, dir, state, shared.clone()) {
        Ok(uploader) => {
            let (tx, rx) = mpsc::unbounded_channel();
            streams.insert(session, tx);
            tasks.spawn(uploader.run(rx));
        }
        Err(error) => {
            tracing::error!(%session, %error, "stream cannot be uploaded; its spool is kept");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chaperone_crds::{Capture, Redaction, Retention, S3Destination};
    use chaperone_recording::{Body, Response, Timings};

    fn target() -> RecordingTarget {
        RecordingTarget {
            namespace: "team-a".into(),
            connection: "prod".into(),
            policy: RecordingPolicySpec {
                s3: S3Destination {
                    bucket: "audit".into(),
                    prefix: "agents/".into(),
                    region: "us-east-1".into(),
                    // Nothing listens here; this test never cuts a segment.
                    endpoint: Some("http://127.0.0.1:9".into()),
                    ..S3Destination::default()
                },
                retention: Retention { days: 1, transitions: vec![] },
                object_lock: None,
                capture: Capture::default(),
                redact: Redaction::default(),
                on_failure: Default::default(),
                durability: Default::default(),
                access: None,
            },
            credentials: None,
        }
    }

    /// Settings of replica `gw-0` spooling in `dir`; segments are cut only at 1 GiB or an hour.
    fn settings(dir: &std::path::Path) -> RecorderSettings {
        let mut settings =
            RecorderSettings::new(dir.to_owned(), "gw-0", RecordingSigner::from_seed(&[1; 32]));
        settings.cut = CutPolicy { max_bytes: 1 << 30, max_age: Duration::from_secs(3600) };
        settings
    }

    fn handle() -> SessionHandle {
        let start = spool::tests::start();
        SessionHandle {
            session: chaperone_recording::new_session_id(Timestamp::now()),
            connection: start.connection.clone(),
            start,
        }
    }

    /// An approval event of `call` (timed out): a small event that needs no request before it.
    fn approval(call: &str) -> EventBody {
        EventBody::Approval(chaperone_recording::Approval {
            call: call.into(),
            approval_request: "r".into(),
            rule: "r".into(),
            outcome: chaperone_recording::ApprovalDecision::TimedOut,
            approvers: vec![],
            reason: None,
            waited_ms: 0,
            fingerprint: "f".into(),
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_are_acknowledged_after_shared_fsyncs() {
        let spool = tempfile::tempdir().unwrap();
        let recorder =
            Arc::new(Recorder::open(settings(spool.path()), vec![target()]).await.unwrap());
        let sessions: Vec<SessionHandle> = (0..8).map(|_| handle()).collect();
        let opened = Instant::now();
        for session in &sessions {
            // Opening a stream costs its directory, metadata and first file (several fsyncs).
            recorder.append(session, approval("warm-up")).await.unwrap();
        }
        let opening = opened.elapsed() / 8;
        let fsyncs_before = recorder.metrics().snapshot().fsyncs_total;
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..400usize {
            let recorder = recorder.clone();
            let session = sessions[i % sessions.len()].clone();
            tasks.spawn(async move {
                let started = Instant::now();
                let body = spool::tests::response(&format!("c{i}"));
                recorder.append(&session, body).await.map(|()| started.elapsed())
            });
        }
        let mut latencies = Vec::new();
        while let Some(done) = tasks.join_next().await {
            latencies.push(done.unwrap().unwrap());
        }
        latencies.sort();
        let m = recorder.metrics().snapshot();
        let fsyncs = m.fsyncs_total - fsyncs_before;
        println!(
            "first append of a session {opening:?}; then 400 concurrent appends over 8 sessions: {fsyncs} fsyncs, p50 {:?}, p99 {:?}",
            latencies[200], latencies[396]
        );
        assert_eq!(m.events_recorded_total, 408);
        assert_eq!(m.open_streams, 8);
        assert!(fsyncs < 400, "{fsyncs} fsyncs for 400 appends");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn detached_responses_are_spooled_in_order_without_anyone_waiting() {
        let spool = tempfile::tempdir().unwrap();
        let recorder = Recorder::open(settings(spool.path()), vec![target()]).await.unwrap();
        let session = handle();
        recorder.append(&session, approval("first")).await.unwrap();
        for i in 0..50 {
            let body = spool::tests::response(&format!("c{i}"));
            recorder.append_detached(&session, body).unwrap();
        }
        // An acknowledged append queued behind them is written after them.
        recorder.append(&session, approval("last")).await.unwrap();
        let m = recorder.metrics().snapshot();
        assert_eq!(m.events_recorded_total, 52, "the detached events were written and counted");
        let file = spool.path().join(&session.session).join(spool::spool_file_name(1));
        let text = std::fs::read_to_string(&file).unwrap();
        let calls: Vec<String> = text
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter_map(|event| event["call"].as_str().map(str::to_owned))
            .collect();
        let expected: Vec<String> = std::iter::once("first".to_owned())
            .chain((0..50).map(|i| format!("c{i}")))
            .chain(std::iter::once("last".to_owned()))
            .collect();
        assert_eq!(calls, expected);

        // A detached event refused before the queue says why, as an acknowledged one does.
        let mut unknown = handle();
        unknown.connection = "no-such-connection".into();
        let refused = recorder.append_detached(&unknown, spool::tests::response("x"));
        assert!(matches!(refused, Err(RecordError::Unavailable { .. })), "{refused:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn appends_are_unavailable_once_uploads_failed_longer_than_the_allowed_outage() {
        let spool = tempfile::tempdir().unwrap();
        let mut settings = settings(spool.path());
        settings.cut.max_bytes = 1;
        settings.max_upload_outage = Some(Duration::from_millis(300));
        let recorder = Recorder::open(settings, vec![target()]).await.unwrap();
        let session = handle();
        recorder.append(&session, approval("c")).await.unwrap();
        let started = Instant::now();
        let error = loop {
            match recorder.append(&session, approval("c")).await {
                Err(error) => break error,
                Ok(()) => assert!(started.elapsed() < Duration::from_secs(20), "never refused"),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert!(started.elapsed() >= Duration::from_millis(200), "refused before the outage");
        assert!(matches!(error, RecordError::Unavailable { .. }), "{error:?}");
        let message = error.to_string();
        assert!(message.contains("\"audit\"") && message.contains("fix the bucket"), "{message}");
        assert!(recorder.status().uploads_failing_since.is_some());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_connection_over_its_spool_share_is_refused_and_the_others_keep_recording() {
        let spool = tempfile::tempdir().unwrap();
        let mut settings = settings(spool.path());
        settings.max_spool_bytes = 64 * 1024;
        let mut staging = target();
        staging.connection = "staging".into();
        let recorder = Recorder::open(settings, vec![target(), staging]).await.unwrap();
        let prod = handle();
        let mut noisy = handle();
        noisy.session = chaperone_recording::new_session_id(Timestamp::now());
        noisy.connection = "staging".into();
        let event = || {
            EventBody::Response(Response {
                call: "c".into(),
                status: Some(200),
                headers: vec![],
                body: Body::complete(&[b'x'; 2048]),
                timings: Timings::default(),
                upstream_error: None,
                redacted: vec![],
                request_body: None,
            })
        };
        let error = loop {
            match recorder.append(&noisy, event()).await {
                Err(error) => break error,
                Ok(()) => {
                    assert!(recorder.metrics().snapshot().spool_bytes <= 64 * 1024, "never refused")
                }
            }
        };
        assert!(
            matches!(&error, RecordError::ConnectionQuota { connection, share: 32768, connections: 2, .. } if connection == "staging"),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(
            message
                .contains("AgentConnection staging holds its whole share of the recording spool")
                && message.contains("--max-connection-spool-mib"),
            "{message}"
        );
        assert!(recorder.metrics().connection_spool_bytes("staging") <= 32768);
        // The other connection's calls keep being recorded.
        for _ in 0..4 {
            recorder.append(&prod, event()).await.unwrap();
        }
        assert_eq!(recorder.metrics().snapshot().connection_quota_refusals_total, 1);
    }

    #[tokio::test]
    async fn an_append_for_a_connection_without_a_recording_policy_is_unavailable_and_says_why() {
        let spool = tempfile::tempdir().unwrap();
        let recorder = Recorder::open(settings(spool.path()), vec![]).await.unwrap();
        let error = recorder
            .append(
                &handle(),
                EventBody::SessionEnd(chaperone_recording::SessionEnd {
                    reason: EndReason::Shutdown,
                }),
            )
            .await
            .unwrap_err();
        assert!(matches!(error, RecordError::Unavailable { .. }), "{error:?}");
        assert!(error.to_string().contains("\"prod\""), "{error}");
    }
}
