//! Digests: signed objects a replica writes at a fixed interval, even when empty, listing the
//! segments (and manifest versions) it uploaded in that interval and chaining to the previous
//! digest, so deleting the newest segments, or a digest, is detectable.

use serde::{Deserialize, Serialize};

use crate::canonical::signing_bytes_of;
use crate::event::FORMAT_VERSION;
use crate::hash::Hash256;
use crate::layout::StreamLocation;
use crate::segment::SegmentEntry;
use crate::signed_object::{SignedObjectError, verify_signed};
use crate::signing::{KeyId, RecordingSigner, TrustedKeys};
use crate::timestamp::Timestamp;

/// The `format` member of every digest.
pub const DIGEST_FORMAT: &str = "chaperone.digest";

/// One digest object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Digest {
    /// Always [`DIGEST_FORMAT`].
    pub format: String,
    pub v: u32,
    pub session: String,
    pub replica: String,
    pub namespace: String,
    pub connection: String,
    /// Number of this digest in the stream, from 1, contiguous; also its key's number.
    pub n: u64,
    /// Start of the interval: the previous digest's `interval_end`, or the stream's start.
    pub interval_start: Timestamp,
    pub interval_end: Timestamp,
    /// SHA-256 of the previous digest object's exact bytes; null for digest 1.
    pub prev_digest: Option<Hash256>,
    /// Segments uploaded in this interval, in order.
    pub segments: Vec<SegmentEntry>,
    /// SHA-256 of the manifest bytes last uploaded in this interval, if any.
    pub manifest: Option<Hash256>,
    /// True for the stream's last digest, written after its closing manifest.
    #[serde(rename = "final")]
    pub is_final: bool,
    pub key_id: KeyId,
    pub signature: String,
}

impl Digest {
    /// Parses digest bytes and checks the signature against `keys`.
    pub fn verify(bytes: &[u8], keys: &TrustedKeys) -> Result<Self, SignedObjectError> {
        verify_signed(bytes, keys, DIGEST_FORMAT)
    }
}

/// A signed digest, ready to upload under `stream.digest_key(n)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedDigest {
    pub n: u64,
    pub bytes: Vec<u8>,
    pub digest: Digest,
}

/// Builds a stream's digests one interval at a time.
#[derive(Clone, Debug)]
pub struct DigestChain {
    stream: StreamLocation,
    next_n: u64,
    prev: Option<Hash256>,
    interval_start: Timestamp,
    segments: Vec<SegmentEntry>,
    manifest: Option<Hash256>,
}

impl DigestChain {
    /// A chain for a stream that started at `started` (the `ts` of its first event).
    pub fn new(stream: &StreamLocation, started: Timestamp) -> Self {
        Self {
            stream: stream.clone(),
            next_n: 1,
            prev: None,
            interval_start: started,
            segments: Vec::new(),
            manifest: None,
        }
    }

    /// Continues a chain whose last digest was `last` (with `last_bytes` as stored).
    pub fn resume(stream: &StreamLocation, last: &Digest, last_bytes: &[u8]) -> Self {
        Self {
            stream: stream.clone(),
            next_n: last.n + 1,
            prev: Some(Hash256::of(last_bytes)),
            interval_start: last.interval_end,
            segments: Vec::new(),
            manifest: None,
        }
    }

    /// Notes a segment whose upload succeeded.
    pub fn record_segment(&mut self, entry: SegmentEntry) {
        self.segments.push(entry);
    }

    /// Notes a manifest whose upload succeeded (by the SHA-256 of its bytes).
    pub fn record_manifest(&mut self, sha256: Hash256) {
        self.manifest = Some(sha256);
    }

    /// Closes the interval at `interval_end`, signs the digest and starts the next interval.
    /// Upload the returned bytes (retrying the same bytes on failure).
    pub fn emit(
        &mut self,
        interval_end: Timestamp,
        is_final: bool,
        signer: &RecordingSigner,
    ) -> Result<SignedDigest, SignedObjectError> {
        let session = self.stream.session();
        let mut digest = Digest {
            format: DIGEST_FORMAT.to_owned(),
            v: FORMAT_VERSION,
            session: session.session().to_owned(),
            replica: self.stream.replica().to_owned(),
            namespace: session.namespace().to_owned(),
            connection: session.connection().to_owned(),
            n: self.next_n,
            interval_start: self.interval_start,
            interval_end,
            prev_digest: self.prev,
            segments: self.segments.clone(),
            manifest: self.manifest,
            is_final,
            key_id: signer.key_id().clone(),
            signature: String::new(),
        };
        digest.signature = signer.sign_base64(&signing_bytes_of(&digest)?);
        let bytes = serde_json::to_vec_pretty(&digest).map_err(SignedObjectError::Schema)?;
        self.next_n += 1;
        self.prev = Some(Hash256::of(&bytes));
        self.interval_start = interval_end;
        self.segments.clear();
        self.manifest = None;
        Ok(SignedDigest { n: digest.n, bytes, digest })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{closed_stream, signer, stream};

    #[test]
    fn digests_chain_by_hash_and_tile_the_timeline() {
        let objects = closed_stream("gw-0");
        let keys: TrustedKeys = [signer().verifying_key()].into_iter().collect();
        let s = stream("gw-0");
        let bytes: Vec<&Vec<u8>> = (1..=3).map(|n| &objects[&s.digest_key(n)]).collect();
        let digests: Vec<Digest> =
            bytes.iter().map(|b| Digest::verify(b, &keys).unwrap()).collect();
        assert_eq!(digests[0].prev_digest, None);
        assert_eq!(digests[1].prev_digest, Some(Hash256::of(bytes[0])));
        assert_eq!(digests[2].prev_digest, Some(Hash256::of(bytes[1])));
        assert_eq!(digests[1].interval_start, digests[0].interval_end);
        assert!(digests[2].is_final && !digests[1].is_final);
        assert_eq!(digests[2].manifest, Some(Hash256::of(&objects[&s.manifest_key()])));
        assert_eq!(digests[0].segments[0].name, "000001.jsonl.zst");
    }

    #[test]
    fn an_empty_interval_still_yields_a_signed_digest() {
        let mut chain = DigestChain::new(&stream("gw-0"), crate::fixtures::ts(0));
        let d = chain.emit(crate::fixtures::ts(300), false, &signer()).unwrap();
        assert!(d.digest.segments.is_empty());
        let keys: TrustedKeys = [signer().verifying_key()].into_iter().collect();
        assert_eq!(Digest::verify(&d.bytes, &keys).unwrap(), d.digest);
    }
}
