//! Segments: zstd-compressed JSON Lines holding a contiguous run of one stream's events.
//!
//! [`SegmentWriter`] numbers, chains and serializes events and compresses them as they come; the
//! caller decides when to cut ([`SegmentWriter::should_cut`]) and uploads what
//! [`SegmentWriter::finish_segment`] returns. [`SegmentReader`] gives back each line's exact bytes
//! and its parsed event.

use std::io::{BufRead, BufReader, Read, Write};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::event::{Event, EventBody, FORMAT_VERSION};
use crate::hash::{Hash256, chain_genesis, line_hash};
use crate::layout::{parse_segment_file_name, segment_file_name};
use crate::timestamp::Timestamp;

/// The envelope of an event line: what [`SegmentWriter::append_line`] checks.
#[derive(Deserialize)]
struct LineEnvelope<'a> {
    seq: u64,
    ts: Timestamp,
    #[serde(borrow)]
    session: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    replica: std::borrow::Cow<'a, str>,
    prev: Hash256,
    #[serde(rename = "type")]
    #[allow(dead_code)] // required: a line without a type is no event
    kind: serde::de::IgnoredAny,
}

/// The zstd level segments are written with.
pub const COMPRESSION_LEVEL: i32 = 3;

/// Longest line a reader accepts (64 MiB), so a hostile segment cannot exhaust memory.
pub const MAX_LINE_BYTES: usize = 64 << 20;

/// What went wrong writing or reading a segment.
#[derive(Debug, thiserror::Error)]
pub enum SegmentError {
    #[error("zstd failed: {0}")]
    Compression(#[source] std::io::Error),
    #[error("event could not be serialized: {0}")]
    Serialize(#[source] serde_json::Error),
    #[error("line {line}: not a v{FORMAT_VERSION} event: {reason}")]
    BadLine { line: u64, reason: String },
    #[error("line {line}: longer than {MAX_LINE_BYTES} bytes")]
    LineTooLong { line: u64 },
    #[error("line {line}: empty line")]
    EmptyLine { line: u64 },
    #[error("last line {line} does not end with a newline")]
    UnterminatedLine { line: u64 },
    #[error("spooled line is not a v{FORMAT_VERSION} event: {reason}")]
    BadSpooledLine { reason: String },
    #[error("spooled event {field}: expected {expected}, found {found}")]
    ResumeMismatch { field: &'static str, expected: String, found: String },
    #[error("segment index {0} exceeds the largest segment number")]
    TooManySegments(u32),
}

/// Where a writer continues a stream (after recovery from a spool).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResumePoint {
    /// `seq` of the next event.
    pub next_seq: u64,
    /// Hash of the last event line written (the next event's `prev`).
    pub head: Hash256,
    /// Number of the next segment.
    pub next_segment: u32,
}

/// An event as appended: its number, its chain hash and its exact line (without the LF).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppendedEvent {
    pub seq: u64,
    pub hash: Hash256,
    pub line: Vec<u8>,
}

/// When a segment should be cut; the caller chooses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CutPolicy {
    /// Cut once this many uncompressed bytes are pending.
    pub max_bytes: u64,
    /// Cut once the oldest pending event is this old.
    pub max_age: Duration,
}

/// What the open segment holds so far.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PendingSegment {
    pub index: u32,
    pub events: u64,
    pub uncompressed_bytes: u64,
    pub first_ts: Timestamp,
}

/// A segment's description, as listed in manifests and digests.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentEntry {
    /// File name within the stream folder, e.g. `000001.jsonl.zst`.
    pub name: String,
    /// SHA-256 of the compressed object bytes.
    pub sha256: Hash256,
    /// Size of the compressed object in bytes.
    pub size: u64,
    pub first_seq: u64,
    pub last_seq: u64,
    pub first_ts: Timestamp,
    pub last_ts: Timestamp,
    /// `prev` of the first event.
    pub prev: Hash256,
    /// Hash of the last event's line: the chain head after this segment.
    pub head: Hash256,
}

impl SegmentEntry {
    /// The segment number its name carries.
    pub fn index(&self) -> Option<u32> {
        parse_segment_file_name(&self.name)
    }
}

/// A cut segment, ready to upload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FinishedSegment {
    pub index: u32,
    /// The object bytes (a zstd frame).
    pub bytes: Vec<u8>,
    pub entry: SegmentEntry,
    /// Total length of the JSON Lines before compression.
    pub uncompressed_bytes: u64,
}

struct OpenSegment {
    encoder: zstd::stream::Encoder<'static, Vec<u8>>,
    first_seq: u64,
    last_seq: u64,
    prev: Hash256,
    first_ts: Timestamp,
    last_ts: Timestamp,
    events: u64,
    uncompressed_bytes: u64,
}

/// Writes one replica's stream of one session as segments.
pub struct SegmentWriter {
    session: String,
    replica: String,
    next_seq: u64,
    head: Hash256,
    next_segment: u32,
    open: Option<OpenSegment>,
}

impl SegmentWriter {
    /// A new stream: the first event gets `seq` 1 and the genesis `prev`.
    pub fn new(session: &str, replica: &str) -> Self {
        Self::resume(
            session,
            replica,
            ResumePoint { next_seq: 1, head: chain_genesis(session, replica), next_segment: 1 },
        )
    }

    /// Continues a stream at `point`.
    pub fn resume(session: &str, replica: &str, point: ResumePoint) -> Self {
        Self {
            session: session.to_owned(),
            replica: replica.to_owned(),
            next_seq: point.next_seq,
            head: point.head,
            next_segment: point.next_segment,
            open: None,
        }
    }

    /// The `prev` the next event will carry.
    pub fn head(&self) -> Hash256 {
        self.head
    }

    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Where this stream stands, to persist or to resume from.
    pub fn resume_point(&self) -> ResumePoint {
        ResumePoint { next_seq: self.next_seq, head: self.head, next_segment: self.next_segment }
    }

    /// Appends an event recorded at `ts`; returns its line so the caller can spool it.
    pub fn append(
        &mut self,
        ts: Timestamp,
        body: EventBody,
    ) -> Result<AppendedEvent, SegmentError> {
        let event = Event {
            v: FORMAT_VERSION,
            seq: self.next_seq,
            ts,
            session: self.session.clone(),
            replica: self.replica.clone(),
            prev: self.head,
            body,
        };
        let line = serde_json::to_vec(&event).map_err(SegmentError::Serialize)?;
        self.push(line, event.seq, ts)
    }

    /// Appends an already serialized event line (from a spool, during recovery) after checking
    /// that it is the next event of this stream.
    ///
    /// Only the envelope (`seq`, `ts`, `session`, `replica`, `prev`, `type`) is decoded: the
    /// line's bytes are kept as they are, and its body is checked by readers and verifiers.
    pub fn append_line(&mut self, line: &[u8]) -> Result<AppendedEvent, SegmentError> {
        let event: LineEnvelope<'_> = serde_json::from_slice(line)
            .map_err(|e| SegmentError::BadLine { line: 1, reason: e.to_string() })?;
        let mismatch = |field: &'static str, expected: String, found: String| {
            Err(SegmentError::ResumeMismatch { field, expected, found })
        };
        if event.seq != self.next_seq {
            return mismatch("seq", self.next_seq.to_string(), event.seq.to_string());
        }
        if event.prev != self.head {
            return mismatch("prev", self.head.to_hex(), event.prev.to_hex());
        }
        if event.session != self.session {
            return mismatch("session", self.session.clone(), event.session.into_owned());
        }
        if event.replica != self.replica {
            return mismatch("replica", self.replica.clone(), event.replica.into_owned());
        }
        self.push(line.to_vec(), event.seq, event.ts)
    }

    fn push(
        &mut self,
        line: Vec<u8>,
        seq: u64,
        ts: Timestamp,
    ) -> Result<AppendedEvent, SegmentError> {
        let open = match self.open.take() {
            Some(open) => self.open.insert(open),
            None => {
                let mut encoder = zstd::stream::Encoder::new(Vec::new(), COMPRESSION_LEVEL)
                    .map_err(SegmentError::Compression)?;
                encoder.include_checksum(true).map_err(SegmentError::Compression)?;
                self.open.insert(OpenSegment {
                    encoder,
                    first_seq: seq,
                    last_seq: seq,
                    prev: self.head,
                    first_ts: ts,
                    last_ts: ts,
                    events: 0,
                    uncompressed_bytes: 0,
                })
            }
        };
        open.encoder.write_all(&line).map_err(SegmentError::Compression)?;
        open.encoder.write_all(b"\n").map_err(SegmentError::Compression)?;
        open.events += 1;
        open.uncompressed_bytes += line.len() as u64 + 1;
        open.last_ts = ts;
        open.last_seq = seq;
        let hash = line_hash(&line);
        self.head = hash;
        self.next_seq = seq.saturating_add(1);
        Ok(AppendedEvent { seq, hash, line })
    }

    /// What the open segment holds, or `None` when nothing is pending.
    pub fn pending(&self) -> Option<PendingSegment> {
        self.open.as_ref().map(|open| PendingSegment {
            index: self.next_segment,
            events: open.events,
            uncompressed_bytes: open.uncompressed_bytes,
            first_ts: open.first_ts,
        })
    }

    /// Whether the open segment has reached `policy`'s size or age at `now`.
    pub fn should_cut(&self, policy: &CutPolicy, now: Timestamp) -> bool {
        let Some(pending) = self.pending() else {
            return false;
        };
        let aged = pending.first_ts.checked_add(policy.max_age).is_none_or(|due| now >= due);
        pending.uncompressed_bytes >= policy.max_bytes || aged
    }

    /// Closes the open segment and returns it, or `None` when no event is pending.
    pub fn finish_segment(&mut self) -> Result<Option<FinishedSegment>, SegmentError> {
        let Some(open) = self.open.take() else {
            return Ok(None);
        };
        let index = self.next_segment;
        self.next_segment = index.checked_add(1).ok_or(SegmentError::TooManySegments(index))?;
        let bytes = open.encoder.finish().map_err(SegmentError::Compression)?;
        let entry = SegmentEntry {
            name: segment_file_name(index),
            sha256: Hash256::of(&bytes),
            size: bytes.len() as u64,
            first_seq: open.first_seq,
            last_seq: open.last_seq,
            first_ts: open.first_ts,
            last_ts: open.last_ts,
            prev: open.prev,
            head: self.head,
        };
        Ok(Some(FinishedSegment {
            index,
            bytes,
            entry,
            uncompressed_bytes: open.uncompressed_bytes,
        }))
    }
}

/// One line of a segment: its exact bytes (without the LF) and its number within the segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawLine {
    /// 1-based line number within the segment.
    pub number: u64,
    pub bytes: Vec<u8>,
}

impl RawLine {
    /// The chain hash of this line.
    pub fn hash(&self) -> Hash256 {
        line_hash(&self.bytes)
    }

    /// Parses the line as an event.
    pub fn parse(&self) -> Result<Event, SegmentError> {
        serde_json::from_slice(&self.bytes)
            .map_err(|e| SegmentError::BadLine { line: self.number, reason: e.to_string() })
    }
}

/// An event as read back: the exact line bytes and the parsed event.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordedEvent {
    pub line: Vec<u8>,
    pub event: Event,
}

impl RecordedEvent {
    /// The chain hash of this event's line.
    pub fn hash(&self) -> Hash256 {
        line_hash(&self.line)
    }
}

/// Reads a segment's lines. Iterating yields parsed events; [`SegmentReader::next_line`] yields
/// raw lines for callers (like the verifier) that must keep going past a line that does not parse.
pub struct SegmentReader<'a> {
    lines: BufReader<zstd::stream::Decoder<'a, BufReader<&'a [u8]>>>,
    number: u64,
    done: bool,
}

impl<'a> SegmentReader<'a> {
    /// Starts decompressing `compressed`.
    pub fn new(compressed: &'a [u8]) -> Result<Self, SegmentError> {
        let decoder = zstd::stream::Decoder::new(compressed).map_err(SegmentError::Compression)?;
        Ok(Self { lines: BufReader::new(decoder), number: 0, done: false })
    }

    /// The next raw line, `None` at the end.
    pub fn next_line(&mut self) -> Result<Option<RawLine>, SegmentError> {
        if self.done {
            return Ok(None);
        }
        let mut bytes = Vec::new();
        let limit = MAX_LINE_BYTES as u64 + 1;
        let read = (&mut self.lines)
            .take(limit)
            .read_until(b'\n', &mut bytes)
            .map_err(SegmentError::Compression);
        let read = match read {
            Ok(n) => n,
            Err(e) => {
                self.done = true;
                return Err(e);
            }
        };
        if read == 0 {
            self.done = true;
            return Ok(None);
        }
        self.number += 1;
        if bytes.last() != Some(&b'\n') {
            self.done = true;
            return Err(if bytes.len() > MAX_LINE_BYTES {
                SegmentError::LineTooLong { line: self.number }
            } else {
                SegmentError::UnterminatedLine { line: self.number }
            });
        }
        bytes.pop();
        if bytes.is_empty() {
            return Err(SegmentError::EmptyLine { line: self.number });
        }
        Ok(Some(RawLine { number: self.number, bytes }))
    }

    /// Reads the whole segment, stopping at the first error.
    pub fn read_all(compressed: &'a [u8]) -> Result<Vec<RecordedEvent>, SegmentError> {
        Self::new(compressed)?.collect()
    }
}

impl Iterator for SegmentReader<'_> {
    type Item = Result<RecordedEvent, SegmentError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.next_line() {
            Ok(None) => None,
            Ok(Some(line)) => {
                Some(line.parse().map(|event| RecordedEvent { line: line.bytes, event }))
            }
            Err(e) => Some(Err(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{EndReason, SessionEnd};
    use crate::fixtures::{SESSION, request, response, session_start, ts};
    use proptest::prelude::*;

    #[test]
    fn events_round_trip_through_a_segment_with_a_continuous_chain() {
        let mut writer = SegmentWriter::new(SESSION, "gw-0");
        let first = writer.append(ts(0), EventBody::SessionStart(session_start())).unwrap();
        writer.append(ts(1), EventBody::Request(request("c1"))).unwrap();
        writer.append(ts(2), EventBody::Response(response("c1"))).unwrap();
        assert_eq!(first.seq, 1);
        let seg = writer.finish_segment().unwrap().unwrap();
        assert_eq!(seg.index, 1);
        assert_eq!(seg.entry.name, "000001.jsonl.zst");
        assert_eq!((seg.entry.first_seq, seg.entry.last_seq), (1, 3));
        assert_eq!(seg.entry.prev, chain_genesis(SESSION, "gw-0"));
        assert_eq!(seg.entry.sha256, Hash256::of(&seg.bytes));

        let events = SegmentReader::read_all(&seg.bytes).unwrap();
        assert_eq!(events.len(), 3);
        assert_eq!(events[0].line, first.line);
        assert_eq!(events[0].event.prev, chain_genesis(SESSION, "gw-0"));
        assert_eq!(events[1].event.prev, events[0].hash());
        assert_eq!(events[2].event.prev, events[1].hash());
        assert_eq!(seg.entry.head, events[2].hash());
        assert_eq!(events[1].event.body, EventBody::Request(request("c1")));

        writer
            .append(ts(3), EventBody::SessionEnd(SessionEnd { reason: EndReason::Expired }))
            .unwrap();
        let next = writer.finish_segment().unwrap().unwrap();
        assert_eq!((next.index, next.entry.first_seq, next.entry.prev), (2, 4, seg.entry.head));
        assert!(writer.finish_segment().unwrap().is_none());
    }

    /// Golden values: any change here is a format change and needs a new version.
    #[test]
    fn first_line_of_a_stream_is_byte_for_byte_stable() {
        let mut writer = SegmentWriter::new(SESSION, "gw-0");
        assert_eq!(
            writer.head().to_hex(),
            "8df557b8ded0642a5366c8cdc878f8de813b77320593429fb13453cb95e7330b"
        );
        let first = writer.append(ts(0), EventBody::SessionStart(session_start())).unwrap();
        assert_eq!(
            String::from_utf8(first.line).unwrap(),
            concat!(
                r#"{"v":1,"seq":1,"ts":"2026-11-25T17:00:00.000000000Z","#,
                r#""session":"019abc00-0000-7000-8000-000000000001","replica":"gw-0","#,
                r#""prev":"8df557b8ded0642a5366c8cdc878f8de813b77320593429fb13453cb95e7330b","#,
                r#""type":"session.start","connection":"prod","agent":{"namespace":"team-a","#,
                r#""service_account":"pr-bot","pod_name":"pr-bot-7d9f","pod_uid":"5f0c","#,
                r#""role_session_name":"pr-bot"},"credentials_expire":"2026-11-25T18:00:00.000000000Z"}"#
            )
        );
        assert_eq!(
            first.hash.to_hex(),
            "e0a7a29f3fe83bf07591977d534dd80dc103743413e61c0967ffe70724f44340"
        );
        assert_eq!(crate::fixtures::signer().key_id().as_str(), "b600306cfa76723f");
    }

    #[test]
    fn cut_is_due_by_size_or_by_age_of_the_oldest_pending_event() {
        let mut writer = SegmentWriter::new(SESSION, "gw-0");
        let policy = CutPolicy { max_bytes: 10_000, max_age: Duration::from_secs(60) };
        assert!(!writer.should_cut(&policy, ts(1000)));
        writer.append(ts(0), EventBody::SessionStart(session_start())).unwrap();
        assert!(!writer.should_cut(&policy, ts(59)));
        assert!(writer.should_cut(&policy, ts(60)));
        let small = CutPolicy { max_bytes: 100, ..policy };
        assert!(writer.should_cut(&small, ts(0)));
        assert_eq!(writer.pending().unwrap().events, 1);
    }

    #[test]
    fn resumed_writer_accepts_only_the_next_spooled_line() {
        let mut original = SegmentWriter::new(SESSION, "gw-0");
        let a = original.append(ts(0), EventBody::SessionStart(session_start())).unwrap();
        let b = original.append(ts(1), EventBody::Request(request("c1"))).unwrap();
        let c = original.append(ts(2), EventBody::Response(response("c1"))).unwrap();

        let mut recovered = SegmentWriter::new(SESSION, "gw-0");
        recovered.append_line(&a.line).unwrap();
        let err = recovered.append_line(&c.line).unwrap_err();
        assert!(
            matches!(&err, SegmentError::ResumeMismatch { field: "seq", expected, found } if expected == "2" && found == "3"),
            "{err}"
        );
        recovered.append_line(&b.line).unwrap();
        recovered.append_line(&c.line).unwrap();
        assert_eq!(recovered.resume_point(), original.resume_point());
    }

    #[test]
    fn reader_refuses_an_unterminated_last_line() {
        let bytes = zstd::encode_all(&b"{}\n{\"v\":1}"[..], 3).unwrap();
        let mut reader = SegmentReader::new(&bytes).unwrap();
        assert_eq!(reader.next_line().unwrap().unwrap().bytes, b"{}");
        assert!(matches!(reader.next_line(), Err(SegmentError::UnterminatedLine { line: 2 })));
    }

    proptest! {
        #[test]
        fn chain_links_every_event_to_the_exact_bytes_before_it(
            bodies in prop::collection::vec(("[ -~]{0,40}", any::<u16>(), prop::collection::vec(any::<u8>(), 0..64)), 1..30),
            cut_every in 1usize..10,
        ) {
            let mut writer = SegmentWriter::new(SESSION, "gw-1");
            let mut segments = vec![];
            for (i, (path, status, data)) in bodies.iter().enumerate() {
                let mut req = request(&format!("c{i}"));
                req.path = path.clone();
                req.body = Body::complete(data);
                writer.append(ts(i as u64), EventBody::Request(req)).unwrap();
                let mut resp = response(&format!("c{i}"));
                resp.status = Some(*status);
                writer.append(ts(i as u64), EventBody::Response(resp)).unwrap();
                if i % cut_every == 0 {
                    segments.extend(writer.finish_segment().unwrap());
                }
            }
            segments.extend(writer.finish_segment().unwrap());
            let mut prev = chain_genesis(SESSION, "gw-1");
            let mut seq = 1;
            for segment in &segments {
                prop_assert_eq!(segment.entry.prev, prev);
                for recorded in SegmentReader::read_all(&segment.bytes).unwrap() {
                    prop_assert_eq!(recorded.event.seq, seq);
                    prop_assert_eq!(recorded.event.prev, prev);
                    prop_assert_eq!(&serde_json::to_vec(&recorded.event).unwrap(), &recorded.line);
                    prev = recorded.hash();
                    seq += 1;
                }
                prop_assert_eq!(segment.entry.head, prev);
            }
            prop_assert_eq!(seq, 2 * bodies.len() as u64 + 1);
        }
    }

    use crate::event::Body;
}
