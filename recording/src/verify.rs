//! Verification of a session's objects: segments against manifests and digests, the event chain,
//! sequence numbers, signatures, and the digest timeline.
//!
//! [`SessionVerifier::verify`] never stops at the first problem: it reports every one it finds,
//! each naming the object key, seq and the expected and found values.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::digest::Digest;
use crate::event::{EndReason, Event, EventBody, FORMAT_VERSION, SessionStart};
use crate::hash::{Hash256, chain_genesis};
use crate::layout::{ObjectKey, ObjectName, SessionLocation, StreamLocation};
use crate::manifest::{Manifest, StreamStatus};
use crate::segment::{RecordedEvent, SegmentEntry, SegmentReader};
use crate::signed_object::SignedObjectError;
use crate::signing::{KeyId, SignatureError, TrustedKeys};
use crate::timestamp::Timestamp;

/// One thing wrong with a session's objects.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("no objects were given to verify")]
    NoObjects,
    #[error("{key}: not a recording object: {reason}")]
    UnrecognizedObject { key: String, reason: String },
    #[error("{key}: belongs to session {found}, not to {expected}")]
    ForeignSession { key: String, expected: String, found: String },
    #[error("{key}: segment is missing; {listed_in}")]
    SegmentMissing { key: String, listed_in: String },
    #[error("{key}: sha256 is {found} but {listed_in} lists {expected}")]
    SegmentHashMismatch { key: String, listed_in: String, expected: Hash256, found: Hash256 },
    #[error("{key}: {listed_in} lists {field} {expected} but the segment holds {found}")]
    SegmentEntryMismatch {
        key: String,
        listed_in: String,
        field: &'static str,
        expected: String,
        found: String,
    },
    #[error("{key}: segment is not listed in {missing_from}")]
    SegmentUnlisted { key: String, missing_from: String },
    #[error("{key}: cannot be read: {reason}")]
    SegmentUnreadable { key: String, reason: String },
    #[error("{key} line {line}: not an event: {reason}")]
    EventUnparseable { key: String, line: u64, reason: String },
    #[error("{key} line {line}: expected seq {expected}, found seq {found}")]
    SeqMismatch { key: String, line: u64, expected: u64, found: u64 },
    #[error("{key} seq {seq}: prev is {found}, expected {expected} (the hash of the line before)")]
    ChainBroken { key: String, seq: u64, expected: Hash256, found: Hash256 },
    #[error("{key} seq {seq}: {field} is {found:?}, expected {expected:?}")]
    EventFieldMismatch {
        key: String,
        seq: u64,
        field: &'static str,
        expected: String,
        found: String,
    },
    #[error("{key} seq {seq}: event after the stream's session.end")]
    EventAfterEnd { key: String, seq: u64 },
    #[error("{key}: manifest is missing; {why}")]
    ManifestMissing { key: String, why: String },
    #[error("{key}: manifest says {field} {expected} but {found}")]
    ManifestMismatch { key: String, field: &'static str, expected: String, found: String },
    #[error("{key}: not a valid {kind}: {reason}")]
    InvalidSignedObject { key: String, kind: &'static str, reason: String },
    #[error("{key}: signed with key {key_id}, which is not among the trusted keys")]
    UntrustedKey { key: String, key_id: KeyId },
    #[error("{key}: signature does not verify with key {key_id}; the object changed after signing")]
    BadSignature { key: String, key_id: KeyId },
    #[error("{key}: {field} is {found:?}, expected {expected:?}")]
    ObjectFieldMismatch { key: String, field: &'static str, expected: String, found: String },
    #[error("{first_key} to {last_key}: {count} objects are missing; {why}")]
    MissingRun { first_key: String, last_key: String, count: u64, why: String },
    #[error("{key}: digest {n} is missing; {why}")]
    DigestMissing { key: String, n: u64, why: String },
    #[error("{key}: prev_digest is {found}, expected {expected} ({why})")]
    DigestChainBroken { key: String, expected: String, found: String, why: String },
    #[error(
        "{key}: interval starts at {found}, but {after} ends at {expected}: the digest timeline has a gap"
    )]
    DigestTimelineGap { key: String, after: String, expected: Timestamp, found: Timestamp },
    #[error("{stream}: {why}; newer digests, and the segments they list, may have been deleted")]
    DigestTimelineIncomplete { stream: String, why: String },
}

/// Time-dependent expectations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerifyOptions {
    /// The time of verification.
    pub now: Timestamp,
    /// How far behind `now` (or past the session's end) the newest digest may be: a few digest
    /// intervals.
    pub digest_grace: Duration,
}

impl VerifyOptions {
    /// `now` with a grace of 15 minutes (three 5-minute digest intervals).
    pub fn at(now: Timestamp) -> Self {
        Self { now, digest_grace: Duration::from_secs(15 * 60) }
    }
}

/// What was found in one replica's stream.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamReport {
    pub stream: StreamLocation,
    pub status: Option<StreamStatus>,
    pub segments: usize,
    pub digests: usize,
    /// Every event that could be read, in stream order (including ones with problems).
    pub events: Vec<RecordedEvent>,
}

/// The outcome of verifying a session.
#[derive(Clone, Debug, PartialEq)]
pub struct VerificationReport {
    pub session: Option<SessionLocation>,
    pub streams: Vec<StreamReport>,
    pub problems: Vec<Problem>,
}

impl VerificationReport {
    /// True when no problem was found.
    pub fn is_valid(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Verifies the objects of one session against trusted keys.
#[derive(Clone, Debug)]
pub struct SessionVerifier {
    keys: TrustedKeys,
    options: VerifyOptions,
}

#[derive(Default)]
struct StreamObjects<'a> {
    segments: BTreeMap<u32, &'a [u8]>,
    manifest: Option<&'a [u8]>,
    digests: BTreeMap<u64, &'a [u8]>,
}

/// A digest that parsed and verified, with its key and the hash of its bytes.
struct CheckedDigest {
    key: String,
    sha256: Hash256,
    digest: Digest,
}

impl SessionVerifier {
    pub fn new(keys: TrustedKeys, options: VerifyOptions) -> Self {
        Self { keys, options }
    }

    /// Verifies every object of one session (key to bytes, keys relative to the bucket).
    pub fn verify(&self, objects: &BTreeMap<String, Vec<u8>>) -> VerificationReport {
        let mut problems = Vec::new();
        if objects.is_empty() {
            problems.push(Problem::NoObjects);
        }
        let mut session: Option<SessionLocation> = None;
        let mut streams: BTreeMap<StreamLocation, StreamObjects<'_>> = BTreeMap::new();
        for (key, bytes) in objects {
            let parsed = match ObjectKey::parse(key) {
                Ok(parsed) => parsed,
                Err(e) => {
                    problems.push(Problem::UnrecognizedObject {
                        key: key.clone(),
                        reason: e.to_string(),
                    });
                    continue;
                }
            };
            let this_session = parsed.stream.session();
            match &session {
                None => session = Some(this_session.clone()),
                Some(expected) if expected != this_session => {
                    problems.push(Problem::ForeignSession {
                        key: key.clone(),
                        expected: expected.key_prefix(),
                        found: this_session.key_prefix(),
                    });
                    continue;
                }
                Some(_) => {}
            }
            let entry = streams.entry(parsed.stream).or_default();
            match parsed.name {
                ObjectName::Segment(i) => {
                    entry.segments.insert(i, bytes);
                }
                ObjectName::Manifest => entry.manifest = Some(bytes),
                ObjectName::Digest(n) => {
                    entry.digests.insert(n, bytes);
                }
            }
        }
        let streams = streams
            .into_iter()
            .map(|(stream, objects)| {
                StreamCheck { verifier: self, stream: &stream, problems: &mut problems }
                    .run(&objects)
            })
            .collect();
        VerificationReport { session, streams, problems }
    }
}

/// Verification state of one stream.
struct StreamCheck<'v> {
    verifier: &'v SessionVerifier,
    stream: &'v StreamLocation,
    problems: &'v mut Vec<Problem>,
}

/// What walking the segments found.
#[derive(Default)]
struct Walk {
    events: Vec<RecordedEvent>,
    start: Option<(Timestamp, SessionStart)>,
    end: Option<(u64, Timestamp, EndReason)>,
}

impl StreamCheck<'_> {
    fn run(mut self, objects: &StreamObjects<'_>) -> StreamReport {
        let manifest_key = self.stream.manifest_key();
        let manifest = objects.manifest.and_then(|bytes| self.check_manifest(&manifest_key, bytes));
        let digests = self.check_digests(objects);
        let walk = self.walk_segments(objects, manifest.as_ref(), &digests);
        let started = manifest.as_ref().map(|m| m.started).or(walk.start.as_ref().map(|s| s.0));
        self.check_digest_timeline(&digests, started, manifest.as_ref(), &walk);
        self.check_manifest_against_content(objects, manifest.as_ref(), &digests, &walk);
        StreamReport {
            stream: self.stream.clone(),
            status: manifest.as_ref().map(|m| m.status),
            segments: objects.segments.len(),
            digests: objects.digests.len(),
            events: walk.events,
        }
    }

    fn signed_object_problem(&mut self, key: &str, kind: &'static str, error: SignedObjectError) {
        self.problems.push(match error {
            SignedObjectError::Signature(SignatureError::UntrustedKey { key_id }) => {
                Problem::UntrustedKey { key: key.to_owned(), key_id }
            }
            SignedObjectError::Signature(SignatureError::Invalid { key_id }) => {
                Problem::BadSignature { key: key.to_owned(), key_id }
            }
            other => Problem::InvalidSignedObject {
                key: key.to_owned(),
                kind,
                reason: other.to_string(),
            },
        });
    }

    fn check_identity(&mut self, key: &str, fields: [(&'static str, &str); 4]) {
        let session = self.stream.session();
        let expected =
            [session.session(), self.stream.replica(), session.namespace(), session.connection()];
        for ((field, found), expected) in fields.into_iter().zip(expected) {
            if found != expected {
                self.problems.push(Problem::ObjectFieldMismatch {
                    key: key.to_owned(),
                    field,
                    expected: expected.to_owned(),
                    found: found.to_owned(),
                });
            }
        }
    }

    fn check_manifest(&mut self, key: &str, bytes: &[u8]) -> Option<Manifest> {
        let manifest = match Manifest::verify(bytes, &self.verifier.keys) {
            Ok(m) => m,
            Err(e) => {
                self.signed_object_problem(key, "manifest", e);
                return None;
            }
        };
        self.check_identity(
            key,
            [
                ("session", &manifest.session),
                ("replica", &manifest.replica),
                ("namespace", &manifest.namespace),
                ("connection", &manifest.connection),
            ],
        );
        let genesis = chain_genesis(self.stream.session().session(), self.stream.replica());
        if manifest.genesis != genesis {
            self.problems.push(Problem::ObjectFieldMismatch {
                key: key.to_owned(),
                field: "genesis",
                expected: genesis.to_hex(),
                found: manifest.genesis.to_hex(),
            });
        }
        Some(manifest)
    }

    fn check_digests(&mut self, objects: &StreamObjects<'_>) -> BTreeMap<u64, CheckedDigest> {
        let mut checked = BTreeMap::new();
        for (&n, bytes) in &objects.digests {
            let key = self.stream.digest_key(n);
            let digest = match Digest::verify(bytes, &self.verifier.keys) {
                Ok(d) => d,
                Err(e) => {
                    self.signed_object_problem(&key, "digest", e);
                    continue;
                }
            };
            self.check_identity(
                &key,
                [
                    ("session", &digest.session),
                    ("replica", &digest.replica),
                    ("namespace", &digest.namespace),
                    ("connection", &digest.connection),
                ],
            );
            if digest.n != n {
                self.problems.push(Problem::ObjectFieldMismatch {
                    key: key.clone(),
                    field: "n",
                    expected: n.to_string(),
                    found: digest.n.to_string(),
                });
            }
            if digest.interval_end < digest.interval_start {
                self.problems.push(Problem::ObjectFieldMismatch {
                    key: key.clone(),
                    field: "interval_end",
                    expected: format!("not before interval_start {}", digest.interval_start),
                    found: digest.interval_end.to_string(),
                });
            }
            checked.insert(n, CheckedDigest { key, sha256: Hash256::of(bytes), digest });
        }
        // Numbering, chain and timeline between neighbours.
        let mut expected_n = 1u64;
        for &n in objects.digests.keys() {
            if n > expected_n {
                let before = expected_n.checked_sub(1).filter(|p| *p > 0);
                let why = match before {
                    Some(p) => format!("digests {p} and {n} exist"),
                    None => format!("digest {n} exists"),
                };
                self.problems.push(if n - expected_n == 1 {
                    Problem::DigestMissing {
                        key: self.stream.digest_key(expected_n),
                        n: expected_n,
                        why,
                    }
                } else {
                    Problem::MissingRun {
                        first_key: self.stream.digest_key(expected_n),
                        last_key: self.stream.digest_key(n - 1),
                        count: n - expected_n,
                        why,
                    }
                });
            }
            expected_n = n.saturating_add(1);
        }
        for (n, this) in &checked {
            if *n == 1 {
                if let Some(found) = this.digest.prev_digest {
                    self.problems.push(Problem::DigestChainBroken {
                        key: this.key.clone(),
                        expected: "null".to_owned(),
                        found: found.to_hex(),
                        why: "digest 1 starts the chain".to_owned(),
                    });
                }
                continue;
            }
            let Some(before) = checked.get(&(n - 1)) else {
                if objects.digests.contains_key(&(n - 1)) {
                    // Present but invalid: still check the hash link to its bytes.
                    let expected = objects.digests.get(&(n - 1)).map(Hash256::of);
                    if this.digest.prev_digest != expected {
                        self.problems.push(chain_broken(
                            this,
                            expected,
                            &self.stream.digest_key(n - 1),
                        ));
                    }
                }
                continue;
            };
            if this.digest.prev_digest != Some(before.sha256) {
                self.problems.push(chain_broken(this, Some(before.sha256), &before.key));
            }
            if this.digest.interval_start != before.digest.interval_end {
                self.problems.push(Problem::DigestTimelineGap {
                    key: this.key.clone(),
                    after: before.key.clone(),
                    expected: before.digest.interval_end,
                    found: this.digest.interval_start,
                });
            }
            if before.digest.is_final {
                self.problems.push(Problem::ObjectFieldMismatch {
                    key: before.key.clone(),
                    field: "final",
                    expected: "false (a later digest exists)".to_owned(),
                    found: "true".to_owned(),
                });
            }
        }
        checked
    }

    fn walk_segments(
        &mut self,
        objects: &StreamObjects<'_>,
        manifest: Option<&Manifest>,
        digests: &BTreeMap<u64, CheckedDigest>,
    ) -> Walk {
        let manifest_key = self.stream.manifest_key();
        // Every listing of each segment: (who lists it, entry).
        let mut listings: BTreeMap<u32, Vec<(String, &SegmentEntry)>> = BTreeMap::new();
        let mut unparseable_names = Vec::new();
        if let Some(m) = manifest {
            for entry in &m.segments {
                match entry.index() {
                    Some(i) => listings.entry(i).or_default().push((manifest_key.clone(), entry)),
                    None => unparseable_names.push((manifest_key.clone(), entry.name.clone())),
                }
            }
        }
        for d in digests.values() {
            for entry in &d.digest.segments {
                match entry.index() {
                    Some(i) => listings.entry(i).or_default().push((d.key.clone(), entry)),
                    None => unparseable_names.push((d.key.clone(), entry.name.clone())),
                }
            }
        }
        for (key, name) in unparseable_names {
            self.problems.push(Problem::ObjectFieldMismatch {
                key,
                field: "segments[].name",
                expected: "NNNNNN.jsonl.zst".to_owned(),
                found: name,
            });
        }
        let closed = manifest.is_some_and(|m| m.status != StreamStatus::Open);
        let final_digest = digests.values().any(|d| d.digest.is_final);
        let last_digested = listings
            .iter()
            .filter(|(_, l)| l.iter().any(|(k, _)| *k != manifest_key))
            .map(|(i, _)| *i)
            .next_back()
            .unwrap_or(0);
        let mut walk = Walk::default();
        let mut expected_seq = Some(1u64);
        let mut expected_prev =
            Some(chain_genesis(self.stream.session().session(), self.stream.replica()));
        let known: std::collections::BTreeSet<u32> =
            objects.segments.keys().chain(listings.keys()).copied().collect();
        let mut expected_index = 1u32;
        for index in known {
            if index > expected_index {
                let gap = u64::from(index - expected_index);
                let why = format!(
                    "no manifest or digest lists {}, but segment {index} exists",
                    if gap == 1 { "it" } else { "them" }
                );
                self.problems.push(if gap == 1 {
                    Problem::SegmentMissing {
                        key: self.stream.segment_key(expected_index),
                        listed_in: why,
                    }
                } else {
                    Problem::MissingRun {
                        first_key: self.stream.segment_key(expected_index),
                        last_key: self.stream.segment_key(index - 1),
                        count: gap,
                        why,
                    }
                });
                expected_seq = None;
                expected_prev = None;
            }
            expected_index = index.saturating_add(1);
            let key = self.stream.segment_key(index);
            let listed = listings.get(&index).map(Vec::as_slice).unwrap_or_default();
            let Some(bytes) = objects.segments.get(&index) else {
                let keys: Vec<&str> = listed.iter().map(|(k, _)| k.as_str()).collect();
                let listed_in = format!("it is listed in {}", keys.join(", "));
                self.problems.push(Problem::SegmentMissing { key, listed_in });
                // Resume the chain check after the gap from what the listing promised.
                let promised = listed.first().map(|(_, e)| *e);
                expected_seq = promised.and_then(|e| e.last_seq.checked_add(1));
                expected_prev = promised.map(|e| e.head);
                continue;
            };
            let sha256 = Hash256::of(bytes);
            let mut trusted_listings = Vec::new();
            for (listed_in, entry) in listed {
                if entry.sha256 != sha256 {
                    self.problems.push(Problem::SegmentHashMismatch {
                        key: key.clone(),
                        listed_in: listed_in.clone(),
                        expected: entry.sha256,
                        found: sha256,
                    });
                } else {
                    trusted_listings.push((listed_in, *entry));
                }
            }
            if closed && !listed.iter().any(|(k, _)| *k == manifest_key) {
                self.problems.push(Problem::SegmentUnlisted {
                    key: key.clone(),
                    missing_from: format!("the closing manifest {manifest_key}"),
                });
            }
            if (final_digest || index < last_digested)
                && !listed.iter().any(|(k, _)| *k != manifest_key)
            {
                self.problems.push(Problem::SegmentUnlisted {
                    key: key.clone(),
                    missing_from: "any digest".to_owned(),
                });
            }
            let summary =
                self.walk_segment(&key, bytes, &mut walk, &mut expected_seq, &mut expected_prev);
            if let Some(actual) = summary {
                for (listed_in, entry) in trusted_listings {
                    self.compare_entry(&key, listed_in, entry, &actual, bytes.len() as u64);
                }
            }
        }
        walk
    }

    /// Walks one segment's lines; returns what it holds when at least one event parsed.
    fn walk_segment(
        &mut self,
        key: &str,
        bytes: &[u8],
        walk: &mut Walk,
        expected_seq: &mut Option<u64>,
        expected_prev: &mut Option<Hash256>,
    ) -> Option<SegmentEntry> {
        let mut reader = match SegmentReader::new(bytes) {
            Ok(r) => r,
            Err(e) => {
                self.problems.push(Problem::SegmentUnreadable {
                    key: key.to_owned(),
                    reason: e.to_string(),
                });
                *expected_seq = None;
                *expected_prev = None;
                return None;
            }
        };
        let mut summary: Option<SegmentEntry> = None;
        loop {
            let line = match reader.next_line() {
                Ok(Some(line)) => line,
                Ok(None) => break,
                Err(e) => {
                    self.problems.push(Problem::SegmentUnreadable {
                        key: key.to_owned(),
                        reason: e.to_string(),
                    });
                    *expected_seq = None;
                    *expected_prev = None;
                    break;
                }
            };
            let hash = line.hash();
            let event = match line.parse() {
                Ok(event) => event,
                Err(e) => {
                    self.problems.push(Problem::EventUnparseable {
                        key: key.to_owned(),
                        line: line.number,
                        reason: e.to_string(),
                    });
                    *expected_seq = expected_seq.and_then(|s| s.checked_add(1));
                    *expected_prev = Some(hash);
                    continue;
                }
            };
            self.check_event(key, line.number, &event, walk, *expected_seq, *expected_prev);
            match summary.as_mut() {
                None => {
                    summary = Some(SegmentEntry {
                        name: String::new(),
                        sha256: hash,
                        size: 0,
                        first_seq: event.seq,
                        last_seq: event.seq,
                        first_ts: event.ts,
                        last_ts: event.ts,
                        prev: event.prev,
                        head: hash,
                    })
                }
                Some(s) => {
                    s.last_seq = event.seq;
                    s.last_ts = event.ts;
                    s.head = hash;
                }
            }
            *expected_seq = event.seq.checked_add(1);
            *expected_prev = Some(hash);
            walk.events.push(RecordedEvent { line: line.bytes, event });
        }
        summary
    }

    fn check_event(
        &mut self,
        key: &str,
        line: u64,
        event: &Event,
        walk: &mut Walk,
        expected_seq: Option<u64>,
        expected_prev: Option<Hash256>,
    ) {
        let seq = event.seq;
        if let Some(expected) = expected_seq.filter(|e| *e != seq) {
            self.problems.push(Problem::SeqMismatch {
                key: key.to_owned(),
                line,
                expected,
                found: seq,
            });
        }
        if let Some(expected) = expected_prev.filter(|e| *e != event.prev) {
            self.problems.push(Problem::ChainBroken {
                key: key.to_owned(),
                seq,
                expected,
                found: event.prev,
            });
        }
        let session = self.stream.session().session();
        let checks = [
            ("v", FORMAT_VERSION.to_string(), event.v.to_string()),
            ("session", session.to_owned(), event.session.clone()),
            ("replica", self.stream.replica().to_owned(), event.replica.clone()),
        ];
        for (field, expected, found) in checks {
            if expected != found {
                self.problems.push(Problem::EventFieldMismatch {
                    key: key.to_owned(),
                    seq,
                    field,
                    expected,
                    found,
                });
            }
        }
        if walk.end.is_some() {
            self.problems.push(Problem::EventAfterEnd { key: key.to_owned(), seq });
        }
        let first = seq == 1 && walk.start.is_none();
        match (&event.body, first) {
            (EventBody::SessionStart(start), true) => walk.start = Some((event.ts, start.clone())),
            (body, true) => self.problems.push(Problem::EventFieldMismatch {
                key: key.to_owned(),
                seq,
                field: "type",
                expected: "session.start (first event of a stream)".to_owned(),
                found: body.type_name().to_owned(),
            }),
            (EventBody::SessionStart(_), false) => {
                self.problems.push(Problem::EventFieldMismatch {
                    key: key.to_owned(),
                    seq,
                    field: "type",
                    expected: "anything but session.start after seq 1".to_owned(),
                    found: "session.start".to_owned(),
                })
            }
            (EventBody::SessionEnd(end), false) => walk.end = Some((seq, event.ts, end.reason)),
            _ => {}
        }
    }

    fn compare_entry(
        &mut self,
        key: &str,
        listed_in: &str,
        entry: &SegmentEntry,
        actual: &SegmentEntry,
        size: u64,
    ) {
        let fields: [(&'static str, String, String); 7] = [
            ("size", entry.size.to_string(), size.to_string()),
            ("first_seq", entry.first_seq.to_string(), actual.first_seq.to_string()),
            ("last_seq", entry.last_seq.to_string(), actual.last_seq.to_string()),
            ("first_ts", entry.first_ts.to_string(), actual.first_ts.to_string()),
            ("last_ts", entry.last_ts.to_string(), actual.last_ts.to_string()),
            ("prev", entry.prev.to_hex(), actual.prev.to_hex()),
            ("head", entry.head.to_hex(), actual.head.to_hex()),
        ];
        for (field, expected, found) in fields {
            if expected != found {
                self.problems.push(Problem::SegmentEntryMismatch {
                    key: key.to_owned(),
                    listed_in: listed_in.to_owned(),
                    field,
                    expected,
                    found,
                });
            }
        }
    }

    fn check_digest_timeline(
        &mut self,
        digests: &BTreeMap<u64, CheckedDigest>,
        started: Option<Timestamp>,
        manifest: Option<&Manifest>,
        walk: &Walk,
    ) {
        let options = self.verifier.options;
        let stream = self.stream.key_prefix();
        if let (Some(first), Some(started)) = (digests.get(&1), started)
            && first.digest.interval_start != started
        {
            self.problems.push(Problem::DigestTimelineGap {
                key: first.key.clone(),
                after: "the stream's first event".to_owned(),
                expected: started,
                found: first.digest.interval_start,
            });
        }
        let last = digests.values().next_back();
        if last.is_some_and(|d| d.digest.is_final) {
            return;
        }
        // The stream may still be live until it ended or its credentials expired.
        let live_until = manifest
            .and_then(|m| m.ended)
            .or(walk.end.map(|e| e.1))
            .or(manifest.map(|m| m.credentials_expire))
            .or(walk.start.as_ref().map(|s| s.1.credentials_expire));
        let last_end = last.map(|d| d.digest.interval_end).or(started);
        let Some(last_end) = last_end else {
            return;
        };
        let described = match last {
            Some(d) => format!("the newest digest {} ends at {last_end}", d.key),
            None => format!("no digest exists though the stream started at {last_end}"),
        };
        let overdue =
            |t: Timestamp| t.checked_add(options.digest_grace).is_some_and(|due| options.now > due);
        if let Some(until) = live_until
            && overdue(until)
        {
            self.problems.push(Problem::DigestTimelineIncomplete {
                stream,
                why: format!("{described} and is not final, though the stream ended by {until}"),
            });
        } else if overdue(last_end) {
            self.problems.push(Problem::DigestTimelineIncomplete {
                stream,
                why: format!(
                    "{described}, more than {:?} before {}",
                    options.digest_grace, options.now
                ),
            });
        }
    }

    fn check_manifest_against_content(
        &mut self,
        objects: &StreamObjects<'_>,
        manifest: Option<&Manifest>,
        digests: &BTreeMap<u64, CheckedDigest>,
        walk: &Walk,
    ) {
        let key = self.stream.manifest_key();
        let digested_manifest =
            digests.values().rev().find_map(|d| d.digest.manifest.map(|sha| (d.key.clone(), sha)));
        let Some(manifest) = manifest else {
            if objects.manifest.is_some() {
                return; // present but invalid: already reported
            }
            let final_digest = digests.values().find(|d| d.digest.is_final);
            let why = if let Some((digest_key, _)) = &digested_manifest {
                Some(format!("digest {digest_key} lists it"))
            } else if let Some(d) = final_digest {
                Some(format!("the stream's final digest {} exists", d.key))
            } else if let Some((seq, _, _)) = walk.end {
                Some(format!("the stream ended with session.end at seq {seq}"))
            } else {
                walk.start
                    .as_ref()
                    .map(|s| s.1.credentials_expire)
                    .filter(|expire| {
                        let options = self.verifier.options;
                        expire
                            .checked_add(options.digest_grace)
                            .is_some_and(|due| options.now > due)
                    })
                    .map(|expire| format!("the session's credentials expired at {expire}"))
            };
            if let Some(why) = why {
                self.problems.push(Problem::ManifestMissing { key, why });
            }
            return;
        };
        if let (Some((digest_key, expected)), Some(bytes)) = (&digested_manifest, objects.manifest)
        {
            let found = Hash256::of(bytes);
            if found != *expected {
                self.problems.push(Problem::ManifestMismatch {
                    key: key.clone(),
                    field: "sha256",
                    expected: format!("{expected} (as digest {digest_key} lists)"),
                    found: format!("the object's sha256 is {found}"),
                });
            }
        }
        let mut mismatch = |field: &'static str, expected: String, found: String| {
            self.problems.push(Problem::ManifestMismatch {
                key: key.clone(),
                field,
                expected,
                found,
            });
        };
        let listed_last = manifest.segments.last();
        if manifest.last_seq != listed_last.map_or(0, |e| e.last_seq) {
            mismatch(
                "last_seq",
                manifest.last_seq.to_string(),
                format!("its last segment ends at seq {}", listed_last.map_or(0, |e| e.last_seq)),
            );
        }
        if manifest.head != listed_last.map_or(manifest.genesis, |e| e.head) {
            mismatch(
                "head",
                manifest.head.to_hex(),
                format!(
                    "its last segment's head is {}",
                    listed_last.map_or(manifest.genesis, |e| e.head)
                ),
            );
        }
        if let Some((started, start)) = &walk.start {
            if manifest.started != *started {
                mismatch("started", manifest.started.to_string(), format!("seq 1 is at {started}"));
            }
            if manifest.agent != start.agent {
                mismatch(
                    "agent",
                    format!("{:?}", manifest.agent),
                    format!("session.start has {:?}", start.agent),
                );
            }
            if manifest.credentials_expire != start.credentials_expire {
                mismatch(
                    "credentials_expire",
                    manifest.credentials_expire.to_string(),
                    format!("session.start has {}", start.credentials_expire),
                );
            }
        }
        if manifest.status == StreamStatus::Open {
            if let Some((seq, _, _)) = walk.end {
                mismatch(
                    "status",
                    "open".to_owned(),
                    format!("the stream ended with session.end at seq {seq}"),
                );
            }
            if let Some(d) = digests.values().find(|d| d.digest.is_final) {
                mismatch("status", "open".to_owned(), format!("{} is the final digest", d.key));
            }
        } else {
            match walk.end {
                None => mismatch(
                    "status",
                    format!("{:?}", manifest.status).to_lowercase(),
                    "the stream has no session.end event".to_owned(),
                ),
                Some((seq, ts, reason)) => {
                    if manifest.end_reason != Some(reason) {
                        mismatch(
                            "end_reason",
                            format!("{:?}", manifest.end_reason),
                            format!("session.end at seq {seq} says {reason:?}"),
                        );
                    }
                    if manifest.ended != Some(ts) {
                        mismatch(
                            "ended",
                            format!("{:?}", manifest.ended),
                            format!("session.end is at {ts}"),
                        );
                    }
                    if manifest.last_seq != seq {
                        mismatch(
                            "last_seq",
                            manifest.last_seq.to_string(),
                            format!("session.end is seq {seq}"),
                        );
                    }
                }
            }
            let expected_status = match manifest.end_reason {
                Some(EndReason::Recovered) => StreamStatus::Recovered,
                _ => StreamStatus::Closed,
            };
            if manifest.status != expected_status {
                mismatch(
                    "status",
                    format!("{:?}", manifest.status).to_lowercase(),
                    format!("end_reason {:?} means {expected_status:?}", manifest.end_reason),
                );
            }
        }
    }
}

fn chain_broken(this: &CheckedDigest, expected: Option<Hash256>, before_key: &str) -> Problem {
    let show = |h: Option<Hash256>| h.map_or("null".to_owned(), |h| h.to_hex());
    Problem::DigestChainBroken {
        key: this.key.clone(),
        expected: show(expected),
        found: show(this.digest.prev_digest),
        why: format!("the sha256 of {before_key}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Request;
    use crate::fixtures::{SESSION, closed_stream, recorded_stream, request, signer, stream, ts};
    use crate::merge::merge_by_time;
    use crate::segment::{ResumePoint, SegmentWriter};
    use crate::signing::RecordingSigner;

    fn verify_at(objects: &BTreeMap<String, Vec<u8>>, now: u64) -> VerificationReport {
        let keys: TrustedKeys = [signer().verifying_key()].into_iter().collect();
        SessionVerifier::new(keys, VerifyOptions::at(ts(now))).verify(objects)
    }

    /// After the session's credentials expired (at 3600 s) and the grace passed.
    fn verify_later(objects: &BTreeMap<String, Vec<u8>>) -> VerificationReport {
        verify_at(objects, 10_000)
    }

    fn recompress(lines: &[Vec<u8>]) -> Vec<u8> {
        let mut text = Vec::new();
        for line in lines {
            text.extend_from_slice(line);
            text.push(b'\n');
        }
        zstd::encode_all(&text[..], 3).unwrap()
    }

    fn lines_of(bytes: &[u8]) -> Vec<Vec<u8>> {
        SegmentReader::read_all(bytes).unwrap().into_iter().map(|e| e.line).collect()
    }

    #[test]
    fn intact_session_of_two_replicas_verifies_and_merges_by_time() {
        let mut objects = closed_stream("gw-0");
        objects.extend(closed_stream("gw-1"));
        let report = verify_later(&objects);
        assert_eq!(report.problems, vec![]);
        assert!(report.is_valid());
        assert_eq!(report.streams.len(), 2);
        assert!(report.streams.iter().all(|s| s.status == Some(StreamStatus::Closed)));
        assert!(report.streams.iter().all(|s| s.events.len() == 20 && s.segments == 3));
        let merged = merge_by_time(report.streams.into_iter().map(|s| s.events).collect());
        assert_eq!(merged.len(), 40);
        assert!(merged.windows(2).all(|w| w[0].event.ts <= w[1].event.ts));
    }

    #[test]
    fn live_stream_verifies_while_its_digests_are_current() {
        let objects = recorded_stream("gw-0", None);
        assert_eq!(verify_at(&objects, 60).problems, vec![]);
    }

    #[test]
    fn one_flipped_byte_in_a_segment_is_a_hash_mismatch_against_manifest_and_digest() {
        let mut objects = closed_stream("gw-0");
        let key = stream("gw-0").segment_key(2);
        let bytes = objects.get_mut(&key).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0x01;
        let problems = verify_later(&objects).problems;
        for listed_in in [stream("gw-0").manifest_key(), stream("gw-0").digest_key(2)] {
            assert!(
                problems.iter().any(|p| matches!(p,
                    Problem::SegmentHashMismatch { key: k, listed_in: l, .. } if *k == key && *l == listed_in)),
                "{problems:#?}"
            );
        }
        let message = problems[0].to_string();
        assert!(message.starts_with(&key) && message.contains("sha256 is"), "{message}");
    }

    #[test]
    fn a_deleted_segment_is_missing_and_named_by_who_lists_it() {
        for index in [1, 2] {
            let mut objects = closed_stream("gw-0");
            let key = stream("gw-0").segment_key(index);
            objects.remove(&key);
            let problems = verify_later(&objects).problems;
            assert_eq!(
                problems,
                vec![Problem::SegmentMissing {
                    key: key.clone(),
                    listed_in: format!(
                        "it is listed in {}, {}",
                        stream("gw-0").manifest_key(),
                        stream("gw-0").digest_key(u64::from(index))
                    ),
                }]
            );
        }
    }

    #[test]
    fn two_reordered_events_break_seq_and_chain() {
        let mut objects = closed_stream("gw-0");
        let key = stream("gw-0").segment_key(2);
        let mut lines = lines_of(&objects[&key]);
        lines.swap(0, 1);
        objects.insert(key.clone(), recompress(&lines));
        let problems = verify_later(&objects).problems;
        // Segment 2 holds seq 8..=13; its first line now holds seq 9.
        assert!(
            problems.contains(&Problem::SeqMismatch {
                key: key.clone(),
                line: 1,
                expected: 8,
                found: 9
            }),
            "{problems:#?}"
        );
        assert!(
            problems.contains(&Problem::SeqMismatch {
                key: key.clone(),
                line: 2,
                expected: 10,
                found: 8
            }),
            "{problems:#?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| matches!(p, Problem::ChainBroken { key: k, seq: 9, .. } if *k == key))
        );
    }

    #[test]
    fn an_edited_manifest_fails_its_signature() {
        let mut objects = closed_stream("gw-0");
        let key = stream("gw-0").manifest_key();
        let text = String::from_utf8(objects[&key].clone()).unwrap();
        let edited = text.replacen("\"last_seq\": 20", "\"last_seq\": 19", 1);
        assert_ne!(text, edited);
        objects.insert(key.clone(), edited.into_bytes());
        let problems = verify_later(&objects).problems;
        assert_eq!(
            problems,
            vec![Problem::BadSignature { key: key.clone(), key_id: signer().key_id().clone() }]
        );
        assert!(problems[0].to_string().contains("changed after signing"));
    }

    #[test]
    fn a_deleted_last_segment_of_a_live_stream_is_caught_by_its_digest() {
        let mut objects = recorded_stream("gw-0", None);
        let key = stream("gw-0").segment_key(3);
        objects.remove(&key);
        let problems = verify_at(&objects, 60).problems;
        assert_eq!(
            problems,
            vec![Problem::SegmentMissing {
                key,
                listed_in: format!("it is listed in {}", stream("gw-0").digest_key(3)),
            }]
        );
    }

    #[test]
    fn deleting_the_newest_segment_manifest_and_digest_leaves_the_timeline_short() {
        let mut objects = closed_stream("gw-0");
        let s = stream("gw-0");
        for key in [s.segment_key(3), s.manifest_key(), s.digest_key(3)] {
            objects.remove(&key);
        }
        let problems = verify_later(&objects).problems;
        assert!(
            problems.iter().any(|p| matches!(p,
                Problem::DigestTimelineIncomplete { stream, why }
                    if *stream == s.key_prefix() && why.contains(&s.digest_key(2)))),
            "{problems:#?}"
        );
        assert!(
            problems.iter().any(
                |p| matches!(p, Problem::ManifestMissing { key, .. } if *key == s.manifest_key())
            ),
            "{problems:#?}"
        );
    }

    #[test]
    fn a_missing_digest_is_a_hole_in_the_timeline() {
        let mut objects = closed_stream("gw-0");
        let s = stream("gw-0");
        objects.remove(&s.digest_key(2));
        let problems = verify_later(&objects).problems;
        assert!(
            problems.contains(&Problem::DigestMissing {
                key: s.digest_key(2),
                n: 2,
                why: "digests 1 and 3 exist".to_owned()
            }),
            "{problems:#?}"
        );
    }

    #[test]
    fn objects_signed_with_an_untrusted_key_are_refused() {
        let objects = closed_stream("gw-0");
        let other: TrustedKeys =
            [RecordingSigner::from_seed(&[9; 32]).verifying_key()].into_iter().collect();
        let report = SessionVerifier::new(other, VerifyOptions::at(ts(10_000))).verify(&objects);
        let s = stream("gw-0");
        for key in [s.manifest_key(), s.digest_key(1), s.digest_key(2), s.digest_key(3)] {
            assert!(
                report
                    .problems
                    .contains(&Problem::UntrustedKey { key, key_id: signer().key_id().clone() }),
                "{:#?}",
                report.problems
            );
        }
    }

    #[test]
    fn a_forged_segment_after_the_close_is_unlisted_and_after_the_end() {
        let mut objects = closed_stream("gw-0");
        let s = stream("gw-0");
        let last = lines_of(&objects[&s.segment_key(3)]).pop().unwrap();
        let mut writer = SegmentWriter::resume(
            SESSION,
            "gw-0",
            ResumePoint { next_seq: 21, head: Hash256::of(&last), next_segment: 4 },
        );
        let forged: Request = request("forged");
        writer.append(ts(100), EventBody::Request(forged)).unwrap();
        let segment = writer.finish_segment().unwrap().unwrap();
        let key = s.segment_key(4);
        objects.insert(key.clone(), segment.bytes);
        let problems = verify_later(&objects).problems;
        assert!(problems.contains(&Problem::EventAfterEnd { key: key.clone(), seq: 21 }));
        assert!(problems.iter().any(|p| matches!(p,
            Problem::SegmentUnlisted { key: k, missing_from } if *k == key && missing_from.contains("manifest"))));
        assert!(problems.iter().any(|p| matches!(p,
            Problem::SegmentUnlisted { key: k, missing_from } if *k == key && missing_from == "any digest")));
    }

    #[test]
    fn a_stream_without_manifest_after_expiry_reports_the_manifest_missing() {
        let mut objects = recorded_stream("gw-0", None);
        let s = stream("gw-0");
        objects.retain(|k, _| !k.contains("/_digests/"));
        let problems = verify_later(&objects).problems;
        assert!(
            problems.iter().any(|p| matches!(p,
                Problem::ManifestMissing { key, why } if *key == s.manifest_key() && why.contains("expired"))),
            "{problems:#?}"
        );
        assert!(problems.iter().any(|p| matches!(p, Problem::DigestTimelineIncomplete { .. })));
    }

    #[test]
    fn objects_of_another_session_and_stray_keys_are_reported() {
        let mut objects = closed_stream("gw-0");
        objects.insert("agents/v1/team-a/prod/2026/11/25/other/gw-0/_manifest.json".into(), vec![]);
        objects.insert("agents/readme.txt".into(), vec![]);
        let problems = verify_later(&objects).problems;
        assert!(problems.iter().any(|p| matches!(p, Problem::ForeignSession { .. })));
        assert!(problems.iter().any(
            |p| matches!(p, Problem::UnrecognizedObject { key, .. } if key == "agents/readme.txt")
        ));
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert_eq!(verify_later(&BTreeMap::new()).problems, vec![Problem::NoObjects]);
    }

    #[test]
    fn a_far_numbered_object_reports_one_missing_run_not_one_problem_per_number() {
        let mut objects = closed_stream("gw-0");
        let s = stream("gw-0");
        let digest = objects[&s.digest_key(3)].clone();
        objects.insert(s.digest_key(999_999_999), digest);
        let segment = objects[&s.segment_key(3)].clone();
        objects.insert(s.segment_key(4_000_000_000), segment);
        let problems = verify_later(&objects).problems;
        assert!(problems.iter().any(|p| matches!(p,
            Problem::MissingRun { first_key, count: 999_999_995, .. } if *first_key == s.digest_key(4))));
        assert!(problems.iter().any(|p| matches!(p,
            Problem::MissingRun { first_key, count: 3_999_999_996, .. } if *first_key == s.segment_key(4))));
        assert!(problems.len() < 20, "{problems:#?}");
    }

    #[test]
    fn an_open_manifest_left_behind_by_a_closed_stream_is_a_mismatch() {
        let mut objects = closed_stream("gw-0");
        let s = stream("gw-0");
        let mut manifest = Manifest::verify(
            &objects[&s.manifest_key()],
            &[signer().verifying_key()].into_iter().collect(),
        )
        .unwrap();
        manifest.status = StreamStatus::Open;
        manifest.end_reason = None;
        manifest.ended = None;
        objects.insert(s.manifest_key(), manifest.sign(&signer(), ts(20)).unwrap());
        let problems = verify_later(&objects).problems;
        assert!(
            problems.iter().any(|p| matches!(p,
                Problem::ManifestMismatch { field: "status", found, .. } if found.contains("seq 20"))),
            "{problems:#?}"
        );
        // The final digest pinned the closing manifest's bytes, so the swap shows there too.
        assert!(
            problems.iter().any(|p| matches!(p, Problem::ManifestMismatch { field: "sha256", .. }))
        );
    }

    #[test]
    fn a_stream_closed_on_recovery_verifies_as_recovered() {
        let objects = recorded_stream("gw-0", Some(EndReason::Recovered));
        let report = verify_later(&objects);
        assert_eq!(report.problems, vec![]);
        assert_eq!(report.streams[0].status, Some(StreamStatus::Recovered));
    }
}
