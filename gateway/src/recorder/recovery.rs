//! Recovery of a spool left behind by a process that died: every complete line is kept and
//! uploaded, each stream is closed with `session.end` reason `recovered`, and a torn last line
//! (a write the crash interrupted, never acknowledged) is dropped and reported.

use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use chaperone_recording::{
    EndReason, Event, EventBody, Hash256, ResumePoint, SessionEnd, Timestamp, chain_genesis,
    line_hash,
};

use super::spool::{
    STREAM_META_FILE, SpooledSegment, StreamMeta, event_line, parse_spool_file_name, payload_of,
    spool_file_name, sync_dir,
};
use super::stream::UploadState;

/// What recovery found and did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Streams found in the spool and handed over for upload and closing.
    pub streams: usize,
    /// Complete event lines found (each will be uploaded).
    pub events: u64,
    /// Spool segments to upload.
    pub segments: usize,
    /// Partial last lines dropped: the spool file and how many bytes were cut.
    pub torn_lines: Vec<(PathBuf, u64)>,
    /// Anything else that could not be recovered, as sentences.
    pub problems: Vec<String>,
}

/// A stream found in the spool, ready to be uploaded and closed.
#[derive(Debug)]
pub struct RecoveredStream {
    pub meta: StreamMeta,
    pub dir: PathBuf,
    pub state: UploadState,
    pub segments: Vec<SpooledSegment>,
    pub reason: EndReason,
    pub ended: Timestamp,
}

/// Scans `spool_dir` and prepares every stream found for upload and closing.
pub fn recover_spool(spool_dir: &Path) -> std::io::Result<(Vec<RecoveredStream>, RecoveryReport)> {
    let mut report = RecoveryReport::default();
    let mut streams = Vec::new();
    let mut dirs: Vec<PathBuf> =
        fs::read_dir(spool_dir)?.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
    dirs.sort();
    for dir in dirs {
        match recover_stream(&dir, &mut report) {
            Ok(Some(stream)) => {
                report.streams += 1;
                report.segments += stream.segments.len();
                streams.push(stream);
            }
            Ok(None) => {}
            Err(problem) => {
                tracing::error!(dir = %dir.display(), %problem, "spooled stream not recoverable");
                report.problems.push(problem);
            }
        }
    }
    Ok((streams, report))
}

fn recover_stream(
    dir: &Path,
    report: &mut RecoveryReport,
) -> Result<Option<RecoveredStream>, String> {
    let meta_path = dir.join(STREAM_META_FILE);
    let meta: StreamMeta = match fs::read(&meta_path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| format!("{} does not parse: {e}", meta_path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // The stream died before its first line was written: nothing was acknowledged.
            let _ = fs::remove_dir_all(dir);
            return Ok(None);
        }
        Err(e) => return Err(format!("cannot read {}: {e}", meta_path.display())),
    };
    let state =
        UploadState::load(dir).map_err(|e| format!("{}: upload state: {e}", dir.display()))?;
    let (mut next_seq, mut head, mut next_index) = match state.uploaded.last() {
        Some(last) => {
            (last.last_seq + 1, last.head, last.index().map_or(1, |i| i.saturating_add(1)))
        }
        None => (1, chain_genesis(&meta.session, &meta.replica), 1),
    };
    let mut files: Vec<(u32, PathBuf)> = fs::read_dir(dir)
        .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            parse_spool_file_name(&name).map(|i| (i, e.path()))
        })
        .collect();
    files.sort();
    let mut segments = Vec::new();
    let mut last: Option<(EventBody, Timestamp)> = None;
    let mut broken = false;
    for (index, path) in files {
        if index < next_index || broken {
            // Already uploaded (deleted late), or after a line that broke the chain.
            if broken {
                report.problems.push(format!(
                    "{} follows a line that does not continue the chain; kept as .unrecoverable",
                    path.display()
                ));
                let _ = fs::rename(&path, path.with_extension("unrecoverable"));
            } else {
                let _ = fs::remove_file(&path);
            }
            continue;
        }
        let bytes = fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
        if complete < bytes.len() {
            let torn = (bytes.len() - complete) as u64;
            tracing::warn!(path = %path.display(), bytes = torn, "torn last spool line dropped (its write was never acknowledged)");
            report.torn_lines.push((path.clone(), torn));
        }
        let first = (next_seq, head);
        let mut kept = 0usize;
        let mut lines = 0u64;
        for line in bytes[..complete].split(|b| *b == b'\n') {
            if line.is_empty() {
                kept += 1;
                continue;
            }
            let event: Result<Event, _> = serde_json::from_slice(line);
            let continues = match &event {
                Ok(e) => {
                    e.seq == next_seq
                        && e.prev == head
                        && e.session == meta.session
                        && e.replica == meta.replica
                }
                Err(_) => false,
            };
            let Ok(event) = event.map_err(|e| e.to_string()).and_then(|e| {
                if continues { Ok(e) } else { Err(format!("expected seq {next_seq}")) }
            }) else {
                report.problems.push(format!(
                    "{} line {}: does not continue the chain at seq {next_seq}; it and the lines after it are dropped",
                    path.display(),
                    lines + 1
                ));
                broken = true;
                break;
            };
            next_seq += 1;
            head = line_hash(line);
            last = Some((event.body, event.ts));
            kept += line.len() + 1;
            lines += 1;
        }
        if kept < bytes.len() {
            let truncated = OpenOptions::new().write(true).open(&path).and_then(|f| {
                f.set_len(kept as u64)?;
                f.sync_all()
            });
            truncated.map_err(|e| format!("cannot truncate {}: {e}", path.display()))?;
        }
        if lines == 0 {
            let _ = fs::remove_file(&path);
            continue;
        }
        report.events += lines;
        next_index = index.saturating_add(1);
        segments.push(SpooledSegment {
            index,
            path,
            resume: ResumePoint { next_seq: first.0, head: first.1, next_segment: index },
            bytes: kept as u64,
        });
    }
    if segments.is_empty() && state.uploaded.is_empty() {
        // Not even session.start is durable: nothing of this stream was acknowledged.
        let _ = fs::remove_dir_all(dir);
        return Ok(None);
    }
    let (reason, ended) = match last {
        Some((EventBody::SessionEnd(SessionEnd { reason }), ts)) => (reason, ts),
        _ => {
            let ended = Timestamp::now();
            append_recovered_end(dir, &meta, &mut segments, next_seq, head, next_index, ended)?;
            report.events += 1;
            (EndReason::Recovered, ended)
        }
    };
    Ok(Some(RecoveredStream { meta, dir: dir.to_owned(), state, segments, reason, ended }))
}

/// Appends `session.end` (recovered) to the last spool segment, or to a new one.
fn append_recovered_end(
    dir: &Path,
    meta: &StreamMeta,
    segments: &mut Vec<SpooledSegment>,
    next_seq: u64,
    head: Hash256,
    next_index: u32,
    ended: Timestamp,
) -> Result<(), String> {
    let payload = payload_of(&EventBody::SessionEnd(SessionEnd { reason: EndReason::Recovered }))
        .map_err(|e| e.to_string())?;
    let mut line = event_line(next_seq, ended, &meta.session, &meta.replica, head, &payload)
        .map_err(|e| e.to_string())?;
    line.push(b'\n');
    if segments.is_empty() {
        segments.push(SpooledSegment {
            index: next_index,
            path: dir.join(spool_file_name(next_index)),
            resume: ResumePoint { next_seq, head, next_segment: next_index },
            bytes: 0,
        });
    }
    let Some(segment) = segments.last_mut() else {
        return Err("no segment to end".into());
    };
    let written = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&segment.path)
        .and_then(|mut f| {
            f.write_all(&line)?;
            f.sync_all()
        })
        .and_then(|()| sync_dir(dir));
    written.map_err(|e| format!("cannot write session.end to {}: {e}", segment.path.display()))?;
    segment.bytes += line.len() as u64;
    Ok(())
}
