//! The manifest: one per replica stream, signed, naming every segment with its hash, seq range
//! and chain head, and saying how the stream ended.

use serde::{Deserialize, Serialize};

use crate::canonical::signing_bytes_of;
use crate::event::{AgentIdentity, EndReason, FORMAT_VERSION, SessionStart};
use crate::hash::Hash256;
use crate::layout::StreamLocation;
use crate::segment::SegmentEntry;
use crate::signed_object::{SignedObjectError, verify_signed};
use crate::signing::{KeyId, RecordingSigner, TrustedKeys};
use crate::timestamp::Timestamp;

/// The `format` member of every manifest.
pub const MANIFEST_FORMAT: &str = "chaperone.manifest";

/// How a stream stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamStatus {
    /// Still being written; a later manifest will replace this one.
    Open,
    /// Ended by the replica that wrote it (credentials expired or replica shut down).
    Closed,
    /// The replica died; the stream was closed on recovery.
    Recovered,
}

/// A replica stream's manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always [`MANIFEST_FORMAT`].
    pub format: String,
    pub v: u32,
    pub session: String,
    pub replica: String,
    pub namespace: String,
    pub connection: String,
    pub agent: AgentIdentity,
    /// `ts` of the stream's first event.
    pub started: Timestamp,
    pub credentials_expire: Timestamp,
    pub status: StreamStatus,
    /// Why the stream ended (absent while open).
    pub end_reason: Option<EndReason>,
    /// `ts` of the `session.end` event (absent while open).
    pub ended: Option<Timestamp>,
    /// The chain's genesis value (`prev` of seq 1).
    pub genesis: Hash256,
    pub segments: Vec<SegmentEntry>,
    /// `seq` of the last event in the listed segments (0 when none).
    pub last_seq: u64,
    /// Chain head after the listed segments (the genesis value when none).
    pub head: Hash256,
    /// When this manifest was written.
    pub written: Timestamp,
    pub key_id: KeyId,
    /// Standard base64 Ed25519 signature over the canonical form without this member.
    pub signature: String,
}

impl Manifest {
    /// An open, unsigned manifest for a stream that began with `start` at `started`.
    pub fn new(
        stream: &StreamLocation,
        start: &SessionStart,
        started: Timestamp,
        genesis: Hash256,
    ) -> Self {
        Self {
            format: MANIFEST_FORMAT.to_owned(),
            v: FORMAT_VERSION,
            session: stream.session().session().to_owned(),
            replica: stream.replica().to_owned(),
            namespace: stream.session().namespace().to_owned(),
            connection: stream.session().connection().to_owned(),
            agent: start.agent.clone(),
            started,
            credentials_expire: start.credentials_expire,
            status: StreamStatus::Open,
            end_reason: None,
            ended: None,
            genesis,
            segments: Vec::new(),
            last_seq: 0,
            head: genesis,
            written: started,
            key_id: KeyId::default(),
            signature: String::new(),
        }
    }

    /// Lists an uploaded segment (in order) and moves the head past it.
    pub fn add_segment(&mut self, entry: SegmentEntry) {
        self.last_seq = entry.last_seq;
        self.head = entry.head;
        self.segments.push(entry);
    }

    /// Marks the stream ended by a `session.end` with `reason` at `ended`.
    pub fn close(&mut self, reason: EndReason, ended: Timestamp) {
        self.status = match reason {
            EndReason::Recovered => StreamStatus::Recovered,
            EndReason::Expired | EndReason::Shutdown => StreamStatus::Closed,
        };
        self.end_reason = Some(reason);
        self.ended = Some(ended);
    }

    /// Signs as of `written` and returns the object bytes (pretty-printed JSON).
    pub fn sign(
        &mut self,
        signer: &RecordingSigner,
        written: Timestamp,
    ) -> Result<Vec<u8>, SignedObjectError> {
        self.written = written;
        self.key_id = signer.key_id().clone();
        self.signature = String::new();
        self.signature = signer.sign_base64(&signing_bytes_of(self)?);
        serde_json::to_vec_pretty(self).map_err(SignedObjectError::Schema)
    }

    /// Parses manifest bytes and checks the signature against `keys`.
    pub fn verify(bytes: &[u8], keys: &TrustedKeys) -> Result<Self, SignedObjectError> {
        verify_signed(bytes, keys, MANIFEST_FORMAT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{closed_stream, signer, stream};
    use crate::signing::SignatureError;
    use serde_json::Value;

    fn manifest_bytes() -> Vec<u8> {
        closed_stream("gw-0").remove(&stream("gw-0").manifest_key()).unwrap()
    }

    #[test]
    fn signed_manifest_verifies_and_lists_the_closed_stream() {
        let keys: TrustedKeys = [signer().verifying_key()].into_iter().collect();
        let manifest = Manifest::verify(&manifest_bytes(), &keys).unwrap();
        assert_eq!(manifest.status, StreamStatus::Closed);
        assert_eq!(manifest.end_reason, Some(EndReason::Expired));
        assert_eq!(manifest.segments.len(), 3);
        assert_eq!(manifest.last_seq, 20);
        assert_eq!(manifest.head, manifest.segments[2].head);
        assert_eq!(manifest.key_id, *signer().key_id());
    }

    #[test]
    fn any_edit_or_foreign_key_breaks_the_signature() {
        let keys: TrustedKeys = [signer().verifying_key()].into_iter().collect();
        let text = String::from_utf8(manifest_bytes()).unwrap();
        let edited = text.replace("\"closed\"", "\"recovered\"");
        assert_ne!(edited, text);
        assert!(matches!(
            Manifest::verify(edited.as_bytes(), &keys),
            Err(SignedObjectError::Signature(SignatureError::Invalid { .. }))
        ));
        let other: TrustedKeys =
            [RecordingSigner::from_seed(&[1; 32]).verifying_key()].into_iter().collect();
        assert!(matches!(
            Manifest::verify(text.as_bytes(), &other),
            Err(SignedObjectError::Signature(SignatureError::UntrustedKey { .. }))
        ));
    }

    #[test]
    fn signature_survives_reformatting_and_member_reordering() {
        let keys: TrustedKeys = [signer().verifying_key()].into_iter().collect();
        let value: Value = serde_json::from_slice(&manifest_bytes()).unwrap();
        let compact = serde_json::to_vec(&value).unwrap();
        assert!(Manifest::verify(&compact, &keys).is_ok());
    }
}
